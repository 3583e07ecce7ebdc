//! A private ejabberd (Debian 12: 23.01) instance on 127.0.0.1.
//!
//! The stock `ejabberdctl` sources /etc/ejabberd/ejabberdctl.cfg (which sets
//! EJABBERD_CONFIG_PATH, overriding `--config`) and `su`s to the ejabberd user,
//! so the harness runs `erl` directly, the way ejabberdctl would:
//! `erl -name NODE -noinput -mnesia dir '"SPOOL"' -s ejabberd` with
//! EJABBERD_CONFIG_PATH / EJABBERD_LOG_PATH / ERL_LIBS / HOME in the
//! environment. Erlang distribution listens on 127.0.0.1 on a free port
//! without epmd (`-erl_epmd_port P -start_epmd false`), with a random cookie
//! and a unique node name, so no epmd daemon is left behind and parallel runs
//! don't collide. Users are registered by an `-eval` run right after
//! `ejabberd:start()`, which also writes a `ready` marker file.

use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use super::{START_TIMEOUT, free_port, read_lossy, tail};

const ERL: &str = "/usr/bin/erl";

/// Where Debian installs ejabberd's Erlang applications:
/// /usr/lib/<multiarch triplet> (the directory holding `ejabberd-<version>`).
fn erl_libs() -> PathBuf {
    let candidates = fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_dir());
    for dir in candidates {
        let has_ejabberd = fs::read_dir(&dir).into_iter().flatten().flatten().any(|e| {
            e.file_name().to_string_lossy().starts_with("ejabberd-")
                && e.path().join("ebin").is_dir()
        });
        if has_ejabberd {
            return dir;
        }
    }
    panic!("ejabberd's Erlang libraries not found in /usr/lib/*: run scripts/install-deps.sh");
}

/// A running (or stopped) private ejabberd. Dropping it kills the VM and
/// removes its directory.
pub struct Ejabberd {
    /// The one virtual host: "localhost".
    pub domain: String,
    /// Client-to-server port (no TLS, PLAIN allowed) on 127.0.0.1.
    pub c2s_port: u16,
    /// XEP-0114 (`ejabberd_service`) port on 127.0.0.1.
    pub component_port: u16,
    /// Erlang distribution port on 127.0.0.1 (used by [`Ejabberd::ctl`]).
    pub dist_port: u16,
    /// Erlang node name, e.g. "satellite-test-1234-0@127.0.0.1".
    pub node: String,
    /// The instance's directory: config, spool (Mnesia), logs, HOME.
    pub dir: PathBuf,
    /// Components declared: (jid, secret).
    pub components: Vec<(String, String)>,
    users: Vec<(String, String)>,
    /// More `modules:` entries (YAML, indented by two spaces).
    extra_modules: String,
    cookie: String,
    tempdir: Option<tempfile::TempDir>,
    child: Option<Child>,
}

impl Ejabberd {
    /// Starts a private ejabberd on 127.0.0.1 with free ports and a temp dir.
    ///
    /// `components`: (jid, secret), served by an `ejabberd_service` listener.
    /// `users`: (localpart, password) accounts on "localhost", registered at
    /// startup. Returns once the users are registered and both ports accept
    /// connections.
    pub async fn start(components: &[(&str, &str)], users: &[(&str, &str)]) -> Ejabberd {
        Self::start_with(components, users, "").await
    }

    /// Like [`start`](Self::start), with more entries for `modules:`
    /// (YAML, each line indented by two spaces, e.g. `  mod_http_upload:`).
    pub async fn start_with(
        components: &[(&str, &str)],
        users: &[(&str, &str)],
        extra_modules: &str,
    ) -> Ejabberd {
        super::require_executable(ERL);
        super::require_executable("/usr/sbin/ejabberdctl");
        let tempdir = super::temp_dir("satellite-ejabberd-");
        let dir = tempdir.path().to_path_buf();
        for sub in ["spool", "log", "home"] {
            fs::create_dir_all(dir.join(sub)).expect("create ejabberd dirs");
        }
        let tag = super::unique_tag();
        let mut ejabberd = Ejabberd {
            domain: "localhost".to_string(),
            c2s_port: free_port(),
            component_port: free_port(),
            dist_port: free_port(),
            node: format!("satellite-test-{tag}@127.0.0.1"),
            dir: dir.clone(),
            components: components
                .iter()
                .map(|(j, s)| (j.to_string(), s.to_string()))
                .collect(),
            users: users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
            extra_modules: extra_modules.to_owned(),
            cookie: format!(
                "satellite{}{}",
                tag.replace('-', "x"),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0)
            ),
            tempdir: Some(tempdir),
            child: None,
        };
        fs::write(ejabberd.config_path(), ejabberd.config()).expect("write ejabberd.yml");
        ejabberd.spawn().await;
        ejabberd
    }

    /// Starts it again after [`stop`](Self::stop): same ports, same node,
    /// same directory (Mnesia data survives), same config.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "Ejabberd::start_again: still running");
        self.spawn().await;
    }

    /// SIGTERM (the Erlang VM then shuts down cleanly), waits for exit
    /// (SIGKILL after a timeout).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            super::terminate(&mut child).await;
        }
    }

    /// Whether the VM is running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Pid of the Erlang VM (beam.smp), if started.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Path of the config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("ejabberd.yml")
    }

    /// Contents of ejabberd.log, error.log and the VM's stdout/stderr.
    pub fn log(&self) -> String {
        let mut log = read_lossy(&self.dir.join("log/ejabberd.log"));
        let error = self.dir.join("log/error.log");
        if error.exists() {
            log.push_str("\n--- error.log ---\n");
            log.push_str(&read_lossy(&error));
        }
        let console = read_lossy(&self.dir.join("console.log"));
        if !console.trim().is_empty() {
            log.push_str("\n--- erl stdout/stderr ---\n");
            log.push_str(&console);
        }
        log
    }

    /// Runs an ejabberdctl command against this instance, e.g.
    /// `ctl(&["register", "carol", "localhost", "pw"])`. Returns stdout;
    /// panics if it fails. (Runs `erl -s ejabberd_ctl` the way ejabberdctl does;
    /// takes ~0.4 s.)
    pub async fn ctl(&self, args: &[&str]) -> String {
        let output = tokio::process::Command::new(ERL)
            .args(["-name", &format!("ctl-{}@127.0.0.1", super::unique_tag())])
            .args(["-setcookie", &self.cookie])
            .args(["-hidden", "-noinput"])
            .args(["-erl_epmd_port", &self.dist_port.to_string()])
            .args(["-start_epmd", "false", "-dist_listen", "false"])
            .args(["-s", "ejabberd_ctl", "-extra", &self.node])
            .args(args)
            .env("HOME", self.dir.join("home"))
            .env("ERL_LIBS", erl_libs())
            .env("ERL_CRASH_DUMP_BYTES", "0")
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap_or_else(|e| panic!("spawn {ERL}: {e}"));
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            panic!(
                "ejabberdctl {args:?} failed ({}):\n{stdout}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        stdout
    }

    fn config(&self) -> String {
        let mut cfg = String::new();
        let _ = write!(
            cfg,
            r#"# Private ejabberd instance for satellite's integration tests.
hosts:
  - {domain}
loglevel: info
log_rotate_count: 0
certfiles: []
listen:
  -
    port: {c2s}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    max_stanza_size: 262144
    access: c2s
    starttls: false
    starttls_required: false
  -
    port: {component}
    ip: "127.0.0.1"
    module: ejabberd_service
"#,
            domain = yaml_str(&self.domain),
            c2s = self.c2s_port,
            component = self.component_port,
        );
        if self.components.is_empty() {
            // No component may log in.
            let _ = writeln!(cfg, "    password: {}", yaml_str(&self.cookie));
        } else {
            cfg.push_str("    hosts:\n");
            for (jid, secret) in &self.components {
                let _ = writeln!(
                    cfg,
                    "      {}:\n        password: {}",
                    yaml_str(jid),
                    yaml_str(secret)
                );
            }
        }
        cfg.push_str(
            r#"auth_method: internal
auth_password_format: plain
acl:
  local:
    user_regexp: ""
  loopback:
    ip:
      - 127.0.0.0/8
access_rules:
  local:
    allow: local
  c2s:
    allow: all
api_permissions:
  "console commands":
    from:
      - ejabberd_ctl
    who: all
    what: "*"
modules:
  mod_admin_extra: {}
  mod_caps: {}
  mod_disco: {}
  mod_offline: {}
  mod_ping: {}
  mod_roster: {}
  mod_version: {}
"#,
        );
        cfg.push_str(&self.extra_modules);
        cfg
    }

    /// The `-eval` run after `ejabberd:start()`: registers the users, then
    /// writes the `ready` marker.
    fn startup_eval(&self) -> String {
        let users: Vec<String> = self
            .users
            .iter()
            .map(|(u, p)| format!("{{{}, {}}}", erl_bin(u), erl_bin(p)))
            .collect();
        format!(
            "lists:foreach(fun({{U, P}}) -> ejabberd_auth:try_register(U, {host}, P) end, [{users}]), \
             ok = file:write_file({ready}, <<\"ok\">>).",
            host = erl_bin(&self.domain),
            users = users.join(", "),
            ready = erl_str(&self.dir.join("ready").to_string_lossy()),
        )
    }

    async fn spawn(&mut self) {
        let started = Instant::now();
        let ready_marker = self.dir.join("ready");
        let _ = fs::remove_file(&ready_marker);
        let console = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("console.log"))
            .expect("open console.log");
        let spool = erl_str(&self.dir.join("spool").to_string_lossy());
        let mut cmd = Command::new(ERL);
        cmd.args(["-name", &self.node])
            .args(["-setcookie", &self.cookie])
            .args(["-erl_epmd_port", &self.dist_port.to_string()])
            .args(["-start_epmd", "false"])
            .args(["-kernel", "inet_dist_use_interface", "{127,0,0,1}"])
            .arg("-noinput")
            .args(["-mnesia", "dir", &spool])
            // Console: critical messages only (the log file has everything).
            .args(["-ejabberd", "quiet", "true"])
            .args(["-s", "ejabberd"])
            .args(["-eval", &self.startup_eval()])
            .env("HOME", self.dir.join("home"))
            .env("ERL_LIBS", erl_libs())
            .env("EJABBERD_CONFIG_PATH", self.config_path())
            .env("EJABBERD_LOG_PATH", self.dir.join("log/ejabberd.log"))
            .env("ERL_CRASH_DUMP", self.dir.join("log/erl_crash.dump"))
            .env("ERL_CRASH_DUMP_BYTES", "0")
            .env_remove("EJABBERD_PID_PATH")
            .env_remove("NOTIFY_SOCKET")
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(console.try_clone().expect("clone console.log handle"))
            .stderr(console);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {ERL}: {e}"));
        let ports = [self.c2s_port, self.component_port];
        let child = self.child.insert(child);
        let marker = ready_marker.clone();
        if let Err(e) =
            super::wait_ready(child, &ports, move || marker.exists(), START_TIMEOUT).await
        {
            super::kill_now(child);
            self.child = None;
            panic!(
                "ejabberd failed to start: {e}\nconfig {}:\n{}\n--- log ---\n{}",
                self.config_path().display(),
                read_lossy(&self.config_path()),
                tail(&self.log(), 20_000)
            );
        }
        super::verbose(&format!(
            "ejabberd started in {:?} (c2s {}, component {})",
            started.elapsed(),
            self.c2s_port,
            self.component_port
        ));
    }
}

impl Drop for Ejabberd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            super::kill_now(&mut child);
        }
        if std::env::var_os("SATELLITE_TEST_KEEP_DIRS").is_some()
            && let Some(dir) = self.tempdir.take()
        {
            eprintln!("keeping ejabberd dir {}", dir.keep().display());
        }
    }
}

/// A double-quoted YAML scalar.
fn yaml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An Erlang string literal.
fn erl_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An Erlang UTF-8 binary literal.
fn erl_bin(s: &str) -> String {
    format!("<<{}/utf8>>", erl_str(s))
}
