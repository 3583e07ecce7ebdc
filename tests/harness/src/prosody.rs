//! A private Prosody 0.12 instance on 127.0.0.1.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use super::{START_TIMEOUT, chown_recursive, free_port, is_root, read_lossy, tail, user_ids};

const PROSODY: &str = "/usr/bin/prosody";

/// Modules enabled by default (the global `modules_enabled`). To enable more,
/// reassign `modules_enabled` in `extra_global_lua`, e.g. with
/// [`Prosody::modules_enabled_lua`].
pub const DEFAULT_MODULES: &[&str] = &[
    "roster", "saslauth", "disco", "ping", "version", "time", "uptime", "posix",
];

/// A running (or stopped) private Prosody. Dropping it kills the process and
/// removes its directory.
pub struct Prosody {
    /// The one VirtualHost: "localhost".
    pub domain: String,
    /// Client-to-server port (plaintext allowed) on 127.0.0.1.
    pub c2s_port: u16,
    /// XEP-0114 component port on 127.0.0.1. Only listens when at least one
    /// component was declared.
    pub component_port: u16,
    /// HTTP port on 127.0.0.1 (only listens if an HTTP module is enabled).
    pub http_port: u16,
    /// The instance's directory: config, data, logs.
    pub dir: PathBuf,
    /// Components declared: (jid, secret).
    pub components: Vec<(String, String)>,
    tempdir: Option<tempfile::TempDir>,
    child: Option<Child>,
    /// (uid, gid) to run as when the tests run as root.
    run_as: Option<(u32, u32)>,
}

impl Prosody {
    /// Starts a private Prosody on 127.0.0.1 with free ports and a temp data
    /// dir (as the `prosody` user when running as root: Prosody refuses root).
    ///
    /// `components`: (jid, secret), declared as `Component "jid"
    /// component_secret = "secret"`. `users`: (localpart, password) accounts
    /// on "localhost", created before start. `extra_global_lua` is appended to
    /// the global section (may be "").
    ///
    /// Returns once the c2s port (and the component port, if any components)
    /// accept connections.
    pub async fn start(
        components: &[(&str, &str)],
        users: &[(&str, &str)],
        extra_global_lua: &str,
    ) -> Prosody {
        Self::start_with(components, users, extra_global_lua, "").await
    }

    /// Like [`start`](Self::start), with `trailing_lua` appended at the
    /// very end of the config, after the VirtualHost and the external
    /// components: the place for sections of Prosody's own, such as
    /// `Component "proxy.localhost" "proxy65"`.
    pub async fn start_with(
        components: &[(&str, &str)],
        users: &[(&str, &str)],
        extra_global_lua: &str,
        trailing_lua: &str,
    ) -> Prosody {
        super::require_executable(PROSODY);
        let tempdir = super::temp_dir("satellite-prosody-");
        let dir = tempdir.path().to_path_buf();
        let domain = "localhost".to_string();
        let mut prosody = Prosody {
            domain: domain.clone(),
            c2s_port: free_port(),
            component_port: free_port(),
            http_port: free_port(),
            dir: dir.clone(),
            components: components
                .iter()
                .map(|(j, s)| (j.to_string(), s.to_string()))
                .collect(),
            tempdir: Some(tempdir),
            child: None,
            run_as: if is_root() {
                Some(user_ids("prosody"))
            } else {
                None
            },
        };

        fs::create_dir_all(dir.join("data")).expect("create data dir");
        fs::create_dir_all(dir.join("certs")).expect("create certs dir");
        fs::write(
            dir.join("prosody.cfg.lua"),
            prosody.config(extra_global_lua, trailing_lua),
        )
        .expect("write prosody.cfg.lua");
        for (user, password) in users {
            prosody.write_account(user, password);
        }
        if let Some((uid, gid)) = prosody.run_as {
            chown_recursive(&dir, uid, gid);
        }
        prosody.spawn().await;
        prosody
    }

    /// Starts it again after [`stop`](Self::stop): same ports, same directory
    /// (so same accounts and data), same config.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "Prosody::start_again: still running");
        self.spawn().await;
    }

    /// SIGTERM, waits for the process to exit (SIGKILL after a timeout).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            super::terminate(&mut child).await;
        }
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Pid of the Prosody process, if started.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Contents of its log file (debug level) and of its stdout/stderr.
    pub fn log(&self) -> String {
        let console = read_lossy(&self.dir.join("console.log"));
        let mut log = read_lossy(&self.dir.join("prosody.log"));
        if !console.trim().is_empty() {
            log.push_str("\n--- prosody stdout/stderr ---\n");
            log.push_str(&console);
        }
        log
    }

    /// Path of the config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("prosody.cfg.lua")
    }

    /// A `modules_enabled = { ... }` line with [`DEFAULT_MODULES`] plus `extra`,
    /// for `extra_global_lua`.
    pub fn modules_enabled_lua(extra: &[&str]) -> String {
        let all: Vec<String> = DEFAULT_MODULES
            .iter()
            .chain(extra)
            .map(|m| lua_str(m))
            .collect();
        format!("modules_enabled = {{ {} }}\n", all.join(", "))
    }

    fn config(&self, extra_global_lua: &str, trailing_lua: &str) -> String {
        let dir = &self.dir;
        let p = |name: &str| lua_str(&dir.join(name).to_string_lossy());
        let mut cfg = String::new();
        let _ = write!(
            cfg,
            r#"-- Private Prosody instance for satellite's integration tests.
pidfile = {pidfile}
data_path = {data}
certificates = {certs}
log = {{
	{{ levels = {{ min = "debug" }}, to = "file", filename = {log} }};
}}
interfaces = {{ "127.0.0.1" }}
local_interfaces = {{ "127.0.0.1" }}
c2s_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s} }}
c2s_direct_tls_ports = {{}}
legacy_ssl_ports = {{}}
component_interfaces = {{ "127.0.0.1" }}
component_ports = {{ {component} }}
s2s_interfaces = {{ "127.0.0.1" }}
s2s_ports = {{}}
http_interfaces = {{ "127.0.0.1" }}
http_ports = {{ {http} }}
http_external_url = "http://127.0.0.1:{http}/"
https_interfaces = {{ "127.0.0.1" }}
https_ports = {{}}
c2s_require_encryption = false
s2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_plain"
storage = "internal"
modules_enabled = {{ {modules} }}
modules_disabled = {{ "s2s", "s2s_auth_certs" }}
"#,
            pidfile = p("prosody.pid"),
            data = p("data"),
            certs = p("certs"),
            log = p("prosody.log"),
            c2s = self.c2s_port,
            component = self.component_port,
            http = self.http_port,
            modules = DEFAULT_MODULES
                .iter()
                .map(|m| lua_str(m))
                .collect::<Vec<_>>()
                .join(", "),
        );
        if !extra_global_lua.is_empty() {
            cfg.push_str("\n-- extra_global_lua\n");
            cfg.push_str(extra_global_lua);
            cfg.push('\n');
        }
        let _ = writeln!(cfg, "\nVirtualHost {}", lua_str(&self.domain));
        for (jid, secret) in &self.components {
            let _ = writeln!(
                cfg,
                "\nComponent {}\n\tcomponent_secret = {}",
                lua_str(jid),
                lua_str(secret)
            );
        }
        if !trailing_lua.is_empty() {
            cfg.push_str("\n-- trailing_lua\n");
            cfg.push_str(trailing_lua);
            cfg.push('\n');
        }
        cfg
    }

    /// Creates (or changes the password of) an account on "localhost", also
    /// while running (internal_plain reads the account file at each login).
    pub fn add_user(&self, user: &str, password: &str) {
        self.write_account(user, password);
        if let Some((uid, gid)) = self.run_as {
            chown_recursive(&self.dir.join("data"), uid, gid);
        }
    }

    /// Writes an internal_plain account file: data/<host>/accounts/<user>.dat.
    fn write_account(&self, user: &str, password: &str) {
        let dir = self
            .dir
            .join("data")
            .join(encode_path_component(&self.domain))
            .join("accounts");
        fs::create_dir_all(&dir).expect("create accounts dir");
        let file = dir.join(format!("{}.dat", encode_path_component(user)));
        fs::write(
            &file,
            format!(
                "return {{\n\t[\"password\"] = {};\n}};\n",
                lua_str(password)
            ),
        )
        .unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
    }

    async fn spawn(&mut self) {
        let started = Instant::now();
        let console = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("console.log"))
            .expect("open console.log");
        if let Some((uid, gid)) = self.run_as {
            chown_recursive(&self.dir.join("console.log"), uid, gid);
        }
        let mut cmd = Command::new(PROSODY);
        cmd.arg("-F")
            .arg("--config")
            .arg(self.config_path())
            .current_dir(&self.dir)
            .env("HOME", &self.dir)
            .stdin(Stdio::null())
            .stdout(console.try_clone().expect("clone console.log handle"))
            .stderr(console);
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {PROSODY}: {e}"));
        let mut ports = vec![self.c2s_port];
        if !self.components.is_empty() {
            ports.push(self.component_port);
        }
        let child = self.child.insert(child);
        if let Err(e) = super::wait_ready(child, &ports, || true, START_TIMEOUT).await {
            super::kill_now(child);
            self.child = None;
            panic!(
                "Prosody failed to start: {e}\nconfig {}:\n{}\n--- log ---\n{}",
                self.config_path().display(),
                read_lossy(&self.config_path()),
                tail(&self.log(), 20_000)
            );
        }
        super::verbose(&format!(
            "prosody started in {:?} (c2s {}, component {})",
            started.elapsed(),
            self.c2s_port,
            self.component_port
        ));
    }
}

impl Drop for Prosody {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            super::kill_now(&mut child);
        }
        if std::env::var_os("SATELLITE_TEST_KEEP_DIRS").is_some()
            && let Some(dir) = self.tempdir.take()
        {
            eprintln!("keeping Prosody dir {}", dir.keep().display());
        }
        // Otherwise the TempDir removes the directory.
    }
}

/// A Lua string literal.
pub fn lua_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Prosody's datamanager file-name encoding: every non-alphanumeric byte
/// becomes %xx.
fn encode_path_component(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02x}");
        }
    }
    out
}
