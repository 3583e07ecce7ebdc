//! Deployment as documented: the README's install steps run as written
//! (under a scratch root, with `systemctl` recorded instead of run), every
//! example config in `dist/config` passes `satellite check`, and the upload
//! config's direct-HTTPS lines work with their files handed over as
//! systemd credentials, as `dist/systemd/upload-https.conf` does.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_satellite");

fn project() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The README's fenced `sh` block that contains `line`.
fn readme_block(line: &str) -> String {
    let readme = std::fs::read_to_string(project().join("README.md")).expect("README");
    readme
        .split("```sh\n")
        .skip(1)
        .filter_map(|rest| rest.split("\n```").next())
        .find(|block| block.lines().any(|l| l == line))
        .unwrap_or_else(|| panic!("no sh block in README.md with `{line}`"))
        .to_owned()
}

fn write_executable(path: &Path, body: &str) {
    std::fs::write(path, body).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn readme_install_steps_run_as_written() {
    let block = readme_block("install -m 0755 target/release/satellite /usr/bin/satellite");
    let scratch = tempfile::tempdir().expect("temp dir");
    let root = scratch.path().join("root");
    let stubs = scratch.path().join("stubs");
    std::fs::create_dir_all(&stubs).expect("stubs");
    let calls = scratch.path().join("systemctl.calls");
    write_executable(
        &stubs.join("systemctl"),
        &format!("#!/bin/sh\necho \"$*\" >> '{}'\n", calls.display()),
    );
    // The same commands, with /usr and /etc under the scratch root and the
    // binary this test was built with as target/release/satellite.
    let script = block
        .replace("target/release/satellite", BIN)
        .replace(" /usr/", &format!(" {}/usr/", root.display()))
        .replace(" /etc/", &format!(" {}/etc/", root.display()));
    let path = format!(
        "{}:{}/usr/bin:{}",
        stubs.display(),
        root.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // What a Debian system has before the steps.
    for dir in ["usr/bin", "usr/share", "etc/systemd/system"] {
        std::fs::create_dir_all(root.join(dir)).expect("system dir");
    }
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(project())
        .env("PATH", path)
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "the install steps failed:\n{script}\n--- stdout\n{}\n--- stderr\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("echo.toml: OK"), "{stdout}");
    assert!(
        stdout.contains("Component \"echo.example.net\""),
        "{stdout}"
    );

    assert!(root.join("usr/bin/satellite").is_file());
    for page in ["satellite.1", "satellite-run.1", "satellite-check.1"] {
        assert!(
            root.join("usr/share/man/man1").join(page).is_file(),
            "{page}"
        );
    }
    assert!(root.join("etc/systemd/system/satellite@.service").is_file());
    let secret = root.join("etc/satellite/echo.secret");
    let mode = std::fs::metadata(&secret)
        .expect("secret")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "echo.secret mode {mode:o}");
    let value = std::fs::read_to_string(&secret).expect("secret");
    assert!(
        value.len() >= 32 && value.chars().all(|c| c.is_ascii_hexdigit()),
        "secret {value:?}"
    );
    let calls = std::fs::read_to_string(&calls).expect("systemctl calls");
    assert_eq!(calls, "daemon-reload\nenable --now satellite@echo\n");
}

/// `satellite check --no-bind` on `config`, with `envs` set.
fn check(config: &Path, envs: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["check", "--no-bind", "-c"])
        .arg(config)
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("STATE_DIRECTORY");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run satellite check")
}

#[test]
fn every_example_config_passes_check() {
    let dist = project().join("dist/config");
    let mut checked = 0;
    let mut with_metrics_example = 0;
    for entry in std::fs::read_dir(&dist).expect("dist/config") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let name = path
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .into_owned();
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join(format!("{name}.toml"));
        std::fs::copy(&path, &config).expect("copy config");
        std::fs::write(
            dir.path().join(format!("{name}.secret")),
            "0123456789abcdef\n",
        )
        .expect("secret");
        let state = dir.path().join("state");
        let out = check(&config, &[("STATE_DIRECTORY", &state)]);
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            text(&out.stderr)
        );
        // The commented [metrics] lines, uncommented, are valid too.
        let example = std::fs::read_to_string(&config).expect("config");
        if example.contains("\n#[metrics]\n#listen") {
            let with_metrics = example.replace("\n#[metrics]\n#listen", "\n[metrics]\nlisten");
            std::fs::write(&config, with_metrics).expect("write");
            let out = check(&config, &[("STATE_DIRECTORY", &state)]);
            assert!(
                out.status.success(),
                "{name} with [metrics]: {}",
                text(&out.stderr)
            );
            with_metrics_example += 1;
        }
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} example configs");
    assert!(
        with_metrics_example >= 3,
        "[metrics] in {with_metrics_example} configs"
    );
}

#[test]
fn upload_direct_https_reads_its_files_as_credentials() {
    let dir = tempfile::tempdir().expect("temp dir");
    let etc = dir.path().join("etc");
    let credentials = dir.path().join("credentials");
    std::fs::create_dir_all(&etc).expect("etc");
    std::fs::create_dir_all(&credentials).expect("credentials");
    // The direct-HTTPS lines of the example, uncommented.
    let example =
        std::fs::read_to_string(project().join("dist/config/upload.toml")).expect("upload.toml");
    let mut config = String::new();
    for line in example.lines() {
        let uncommented = line.strip_prefix("# ").unwrap_or(line);
        if ["listen = \"0.0.0.0:443\"", "tls_cert = ", "tls_key = "]
            .iter()
            .any(|k| uncommented.starts_with(k))
        {
            config.push_str(uncommented);
        } else if line.starts_with("listen = \"127.0.0.1:8363\"") {
            continue;
        } else {
            config.push_str(line);
        }
        config.push('\n');
    }
    assert!(config.contains("\ntls_key = \"upload.key\""), "{config}");
    let config_path = etc.join("upload.toml");
    std::fs::write(&config_path, &config).expect("config");
    // Every file the unit hands over, in $CREDENTIALS_DIRECTORY only.
    std::fs::write(credentials.join("upload.secret"), "0123456789abcdef\n").expect("secret");
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args([
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=upload.example.org",
            "-keyout",
        ])
        .arg(credentials.join("upload.key"))
        .arg("-out")
        .arg(credentials.join("upload.crt"))
        .output()
        .expect("openssl (scripts/install-deps.sh installs it)");
    assert!(made.status.success(), "{}", text(&made.stderr));
    let state = dir.path().join("state");
    let out = check(
        &config_path,
        &[
            ("CREDENTIALS_DIRECTORY", &credentials),
            ("STATE_DIRECTORY", &state),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Without the credentials the key is looked for next to the config,
    // and the error names the key.
    let out = check(&config_path, &[("STATE_DIRECTORY", &state)]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("upload.secret") || err.contains("tls_"),
        "{err}"
    );
    std::fs::write(etc.join("upload.secret"), "0123456789abcdef\n").expect("secret");
    let out = check(&config_path, &[("STATE_DIRECTORY", &state)]);
    let err = text(&out.stderr);
    assert!(
        err.contains("settings.tls_cert") && err.contains("upload.crt"),
        "{err}"
    );
}
