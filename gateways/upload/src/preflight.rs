//! What the upload service needs from the machine, checked before it
//! starts: its TLS files read and parsed, its HTTP listener bindable, its
//! storage directory writable. `satellite check` runs these checks, and
//! `satellite run` runs the same ones before starting the service (also
//! on reload), so the two never disagree.
//!
//! Every error names the file, the key and what was expected:
//!
//! ```text
//! /etc/satellite/upload.toml: component[0].settings.tls_cert: cannot read `/etc/ssl/upload.crt`: No such file or directory (os error 2); expected a PEM certificate chain
//! ```

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use satellite::{BoxError, ComponentConfig, ConfigError};

use crate::config::{Settings, TlsFiles};

/// Runs every check for the upload service of `config` (its settings
/// already read). With `bind` false the listener is not test-bound: a
/// running satellite holds its own.
pub fn check(config: &ComponentConfig, settings: &Settings, bind: bool) -> Result<(), BoxError> {
    if let Some(files) = &settings.tls {
        tls(config, files)?;
    }
    if bind {
        listener(config, settings.listen)?;
    }
    storage_dir(config, &settings.storage_dir, settings.slot_key.is_some())?;
    Ok(())
}

/// The certificate chain and key can be read and make a TLS server
/// config: the same code that builds the service's TLS acceptor.
pub fn tls(config: &ComponentConfig, files: &TlsFiles) -> Result<(), ConfigError> {
    for (key, path, what) in [
        ("tls_cert", &files.cert, "a PEM certificate chain"),
        ("tls_key", &files.key, "the PEM private key of tls_cert"),
    ] {
        std::fs::File::open(path).map_err(|e| {
            config.settings_error(
                key,
                format!("cannot read `{}`: {e}; expected {what}", path.display()),
            )
        })?;
    }
    crate::http::tls_acceptor(files).map_err(|e| {
        config.settings_error(
            "tls_cert",
            format!("{e}; expected a PEM certificate chain and its private key in tls_key"),
        )
    })?;
    Ok(())
}

/// `listen` can be bound now (the test listener closes at once).
pub fn listener(config: &ComponentConfig, listen: SocketAddr) -> Result<(), ConfigError> {
    std::net::TcpListener::bind(listen).map(drop).map_err(|e| {
        config.settings_error(
            "listen",
            format!("cannot listen on {listen}: {e}; expected a free address of this host"),
        )
    })
}

/// The storage directory, and the `files/` and `partial/` directories
/// under it, exist or can be created, and files can be created in them;
/// an existing catalog opens for writing and is a database; an existing
/// `slot.key` (used unless `slot_key_file` is set) holds a key.
/// Directories created for the check are removed again.
pub fn storage_dir(
    config: &ComponentConfig,
    dir: &Path,
    slot_key_file: bool,
) -> Result<(), ConfigError> {
    let at = |m: String| config.settings_error("storage_dir", m);
    let expected = "expected a directory this user can write (created when missing)";
    let mut created = Vec::new();
    let result = (|| {
        for d in [dir.to_owned(), dir.join("files"), dir.join("partial")] {
            create_missing(&d, &mut created).map_err(|(p, e)| {
                at(format!("cannot create `{}`: {e}; {expected}", p.display()))
            })?;
            probe_write(&d).map_err(|e| {
                at(format!(
                    "cannot write in `{}`: {e}; {expected}",
                    d.display()
                ))
            })?;
        }
        let mut rw = std::fs::OpenOptions::new();
        rw.read(true).write(true);
        for name in [
            "catalog.sqlite3",
            "catalog.sqlite3-wal",
            "catalog.sqlite3-shm",
        ] {
            open_existing(&dir.join(name), &rw).map_err(|(p, e)| {
                at(format!(
                    "cannot open `{}` for writing: {e}; expected the catalog to belong to this user",
                    p.display()
                ))
            })?;
        }
        catalog(&dir.join("catalog.sqlite3")).map_err(at)?;
        if !slot_key_file {
            slot_key(&dir.join("slot.key")).map_err(at)?;
        }
        Ok(())
    })();
    for d in created.iter().rev() {
        let _ = std::fs::remove_dir(d);
    }
    result
}

/// An existing catalog is an SQLite database: empty, or starting with
/// SQLite's header. Only the header is read: opening the database, even
/// read-only, would leave `-wal`/`-shm` files owned by whoever checks.
fn catalog(path: &Path) -> Result<(), String> {
    use std::io::Read as _;
    const HEADER: &[u8; 16] = b"SQLite format 3\0";
    let mut file = match std::fs::File::open(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other.map_err(|e| format!("cannot read `{}`: {e}", path.display()))?,
    };
    let mut head = Vec::with_capacity(HEADER.len());
    file.by_ref()
        .take(HEADER.len() as u64)
        .read_to_end(&mut head)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    if head.is_empty() || head == HEADER {
        return Ok(());
    }
    Err(format!(
        "the catalog `{}` is not an SQLite database; expected the service's catalog (move a damaged one away)",
        path.display()
    ))
}

/// An existing slot key is read as the service reads it.
fn slot_key(path: &Path) -> Result<(), String> {
    let text = match std::fs::read_to_string(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other.map_err(|e| format!("cannot read `{}`: {e}", path.display()))?,
    };
    crate::token::SlotKey::new(text.trim().as_bytes().to_vec())
        .map(drop)
        .ok_or_else(|| {
            format!(
                "`{}` holds fewer than 16 bytes; expected the generated slot key (remove it to get a new one; issued URLs then stop working)",
                path.display()
            )
        })
}

/// Creates `dir` and its missing parents, recording each one created.
fn create_missing(dir: &Path, created: &mut Vec<PathBuf>) -> Result<(), (PathBuf, io::Error)> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|p| !p.exists()).collect();
    for d in missing.into_iter().rev() {
        if d.as_os_str().is_empty() {
            continue;
        }
        std::fs::create_dir(d).map_err(|e| (d.to_owned(), e))?;
        created.push(d.to_owned());
    }
    if !dir.is_dir() {
        return Err((
            dir.to_owned(),
            io::Error::new(io::ErrorKind::AlreadyExists, "it is not a directory"),
        ));
    }
    Ok(())
}

/// Creates and removes a probe file in `dir`.
fn probe_write(dir: &Path) -> io::Result<()> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let probe = dir.join(format!(".satellite-check-{}-{nanos}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    std::fs::remove_file(&probe)
}

/// Opens `path` with `options` if it exists.
fn open_existing(path: &Path, options: &std::fs::OpenOptions) -> Result<(), (PathBuf, io::Error)> {
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err((path.to_owned(), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, settings: &str) -> (ComponentConfig, Settings) {
        let source = dir.join("upload.toml");
        let c = ComponentConfig::with_settings(
            "upload.example.org",
            source.to_str().expect("utf8"),
            settings,
        )
        .expect("config");
        let s = Settings::load(&c).expect("settings");
        (c, s)
    }

    #[test]
    fn missing_tls_files_are_named_by_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (c, s) = config(
            dir.path(),
            "tls_cert = \"/nonexistent.crt\"\ntls_key = \"/nonexistent.key\"\nstorage_dir = \"files\"",
        );
        let err = check(&c, &s, false).expect_err("no cert").to_string();
        assert!(
            err.contains("component[0].settings.tls_cert: cannot read `/nonexistent.crt`"),
            "{err}"
        );
    }

    #[test]
    fn a_tls_file_that_is_not_pem_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("c.pem"), "not a certificate").expect("write");
        std::fs::write(dir.path().join("k.pem"), "not a key").expect("write");
        let (c, s) = config(
            dir.path(),
            "tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\nstorage_dir = \"files\"",
        );
        let err = check(&c, &s, false).expect_err("no cert").to_string();
        assert!(err.contains("component[0].settings.tls_cert: "), "{err}");
        assert!(err.contains("no certificate"), "{err}");
    }

    #[test]
    fn a_taken_listen_address_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("addr");
        let (c, s) = config(
            dir.path(),
            &format!("listen = \"{addr}\"\nstorage_dir = \"files\""),
        );
        let err = check(&c, &s, true).expect_err("taken").to_string();
        assert!(
            err.contains(&format!(
                "component[0].settings.listen: cannot listen on {addr}"
            )),
            "{err}"
        );
        check(&c, &s, false).expect("not bound without `bind`");
    }

    #[test]
    fn storage_dir_is_probed_and_left_as_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (c, s) = config(dir.path(), "storage_dir = \"a/b\"");
        check(&c, &s, false).expect("creatable");
        assert!(!dir.path().join("a").exists(), "the check left directories");

        std::fs::write(dir.path().join("plain"), "").expect("write");
        let (c, s) = config(dir.path(), "storage_dir = \"plain\"");
        let err = check(&c, &s, false).expect_err("a file").to_string();
        assert!(
            err.contains("component[0].settings.storage_dir: cannot create"),
            "{err}"
        );
    }

    #[test]
    fn a_damaged_catalog_or_slot_key_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dir.path().join("store");
        std::fs::create_dir(&store).expect("mkdir");
        let (c, s) = config(dir.path(), "storage_dir = \"store\"");
        std::fs::write(store.join("slot.key"), "short\n").expect("write");
        let err = check(&c, &s, false).expect_err("short key").to_string();
        assert!(err.contains("holds fewer than 16 bytes"), "{err}");
        std::fs::write(store.join("slot.key"), "0123456789abcdef0123\n").expect("write");
        check(&c, &s, false).expect("a key");
        std::fs::write(store.join("catalog.sqlite3"), vec![b'x'; 4096]).expect("write");
        let err = check(&c, &s, false).expect_err("garbage").to_string();
        assert!(
            err.contains("component[0].settings.storage_dir: the catalog"),
            "{err}"
        );
        std::fs::remove_file(store.join("catalog.sqlite3")).expect("rm");
        let catalog =
            crate::catalog::Catalog::open(&store.join("catalog.sqlite3")).expect("catalog");
        drop(catalog);
        let files = || {
            let mut names: Vec<_> = std::fs::read_dir(&store)
                .expect("read_dir")
                .map(|e| e.expect("entry").file_name())
                .collect();
            names.sort();
            names
        };
        let before = files();
        check(&c, &s, false).expect("a real catalog");
        assert_eq!(
            files(),
            before,
            "the check leaves the catalog's files as they were"
        );
    }

    #[test]
    fn a_read_only_storage_dir_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let ro = dir.path().join("ro");
        std::fs::create_dir(&ro).expect("mkdir");
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).expect("chmod");
        if probe_write(&ro).is_ok() {
            // Running as root: permissions do not stop writes.
            return;
        }
        let (c, s) = config(dir.path(), "storage_dir = \"ro\"");
        let err = check(&c, &s, false).expect_err("read-only").to_string();
        assert!(
            err.contains("component[0].settings.storage_dir: cannot"),
            "{err}"
        );
    }
}
