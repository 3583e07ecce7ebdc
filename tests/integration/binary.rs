//! The `satellite` binary against a real Prosody (and ejabberd): check
//! and run refusing the same configs, reload on SIGHUP (a component that
//! cannot start is left out, the rest runs on), READY=1 and STATUS= as
//! systemd sees them, graceful stop on SIGTERM, and the generated server
//! snippets.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::prosody::{ECHO, SECRET, T, echo_round_trip};
use crate::support::{Client, Prosody};

const BIN: &str = env!("CARGO_BIN_EXE_satellite");
const ECHO2: &str = "echo2.localhost";

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("satellite-bin-")
        .tempdir()
        .expect("temp dir")
}

fn component(jid: &str, port: u16, secret_file: &str) -> String {
    format!(
        "[[component]]\nservice = \"echo\"\njid = \"{jid}\"\nserver = \"127.0.0.1:{port}\"\nsecret_file = \"{secret_file}\"\n\n"
    )
}

async fn satellite(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .await
        .expect("run satellite");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn check_reports_ok_and_names_file_and_key_on_errors() {
    let dir = temp_dir();
    std::fs::write(dir.path().join("echo.secret"), format!("{SECRET}\n")).expect("secret");
    let good = dir.path().join("good.toml");
    std::fs::write(&good, component(ECHO, 5347, "echo.secret")).expect("write");
    let (code, out, err) = satellite(&["check", "-c", good.to_str().expect("utf8")]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("OK") && out.contains(ECHO), "{out}");
    assert!(
        !out.contains(SECRET) && !err.contains(SECRET),
        "the secret is never printed by check"
    );

    // A relative secret_file is found in $CREDENTIALS_DIRECTORY (systemd
    // LoadCredential=) before the config's own directory.
    let creds = temp_dir();
    std::fs::write(creds.path().join("cred.secret"), SECRET).expect("credential");
    let via_creds = dir.path().join("creds.toml");
    std::fs::write(&via_creds, component(ECHO, 5347, "cred.secret")).expect("write");
    let out = Command::new(BIN)
        .args(["check", "-c", via_creds.to_str().expect("utf8")])
        .env("CREDENTIALS_DIRECTORY", creds.path())
        .output()
        .await
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Exit code 2: the file or a secret; 1: a component cannot start.
    let cases = [
        (
            "unknown-key.toml",
            format!("{}sekret = \"x\"\n", component(ECHO, 5347, "echo.secret")),
            "unknown field `sekret`",
            2,
        ),
        (
            "bad-service.toml",
            component(ECHO, 5347, "echo.secret").replace("\"echo\"", "\"ecco\""),
            "component[0].service: unknown service `ecco`; expected one of announce, echo, muc, proxy65, upload",
            1,
        ),
        (
            "no-secret.toml",
            component(ECHO, 5347, "missing.secret"),
            "component[0].secret_file: cannot read",
            2,
        ),
        (
            "bad-setting.toml",
            format!(
                "{}[component.settings]\nprefix = 5\n",
                component(ECHO, 5347, "echo.secret")
            ),
            "component[0].settings",
            1,
        ),
    ];
    for (name, text, expected, exit) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        let (code, _, err) = satellite(&["check", "-c", path.to_str().expect("utf8")]).await;
        assert_eq!(code, exit, "{name}: {err}");
        assert!(err.contains(name), "{name}: the file is not named: {err}");
        assert!(
            err.contains(expected),
            "{name}: expected {expected:?} in {err}"
        );
    }
}

#[tokio::test]
async fn prosody_snippet_matches_the_config() {
    let dir = temp_dir();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        component(ECHO, 5347, "s").replace("secret_file = \"s\"", "secret = \"p\\\"w\""),
    )
    .expect("write");
    let (code, out, err) = satellite(&["prosody-config", "-c", path.to_str().expect("utf8")]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!(
            "Component \"{ECHO}\"\n    component_secret = \"p\\\"w\""
        )),
        "{out}"
    );
    let (code, out, err) =
        satellite(&["ejabberd-config", "-c", path.to_str().expect("utf8")]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("module: ejabberd_service") && out.contains("password: \"p\\\"w\""),
        "{out}"
    );
}

struct Daemon {
    child: Child,
    log: PathBuf,
    notify: tokio::net::UnixDatagram,
    /// Every notification received so far, in order.
    history: std::sync::Mutex<Vec<String>>,
}

impl Daemon {
    /// Starts `satellite run` with a NOTIFY_SOCKET of our own, as systemd
    /// would for `Type=notify`.
    fn start(config: &Path, log: PathBuf) -> Daemon {
        Self::start_with(config, log, Some("info"))
    }

    /// Like [`Daemon::start`], with `RUST_LOG` set to `rust_log` (or unset:
    /// the config's `[log] level` decides).
    fn start_with(config: &Path, log: PathBuf, rust_log: Option<&str>) -> Daemon {
        let file = std::fs::File::create(&log).expect("log file");
        let socket = log.with_extension("notify");
        let notify = tokio::net::UnixDatagram::bind(&socket).expect("notify socket");
        let mut command = Command::new(BIN);
        command
            .args(["run", "-c", config.to_str().expect("utf8")])
            .env("NOTIFY_SOCKET", &socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .kill_on_drop(true);
        match rust_log {
            Some(filter) => command.env("RUST_LOG", filter),
            None => command.env_remove("RUST_LOG"),
        };
        let child = command.spawn().expect("spawn satellite run");
        Daemon {
            child,
            log,
            notify,
            history: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The next notification, recorded in the history.
    async fn next_notification(&self) -> String {
        let mut buf = vec![0u8; 4096];
        let n = self.notify.recv(&mut buf).await.expect("recv");
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        self.history.lock().expect("history").push(msg.clone());
        msg
    }

    /// Waits for a notification containing `state` (e.g. "READY=1").
    async fn notified(&self, state: &str) {
        let mut seen = Vec::new();
        let found = tokio::time::timeout(T, async {
            loop {
                let msg = self.next_notification().await;
                if msg.lines().any(|l| l == state) {
                    return;
                }
                seen.push(msg);
            }
        })
        .await;
        assert!(
            found.is_ok(),
            "no {state} notification; got {seen:?}\n{}",
            self.log()
        );
    }

    /// The first STATUS= line, received so far or next, containing every
    /// one of `parts`.
    async fn status_containing(&self, parts: &[&str]) -> String {
        let matches = |msg: &str| {
            msg.lines()
                .find(|l| l.starts_with("STATUS=") && parts.iter().all(|p| l.contains(p)))
                .map(str::to_owned)
        };
        let earlier = self
            .history
            .lock()
            .expect("history")
            .iter()
            .find_map(|m| matches(m));
        if let Some(line) = earlier {
            return line;
        }
        let found = tokio::time::timeout(T, async {
            loop {
                if let Some(line) = matches(&self.next_notification().await) {
                    return line;
                }
            }
        })
        .await;
        match found {
            Ok(line) => line,
            Err(_) => panic!(
                "no STATUS= with {parts:?}; got {:?}\n{}",
                self.history.lock().expect("history"),
                self.log()
            ),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, signal: Signal) {
        let pid = self.child.id().expect("running") as i32;
        kill(Pid::from_raw(pid), signal).expect("signal");
    }

    /// SIGTERM, and a clean exit.
    async fn stop(mut self) {
        self.signal(Signal::SIGTERM);
        self.notified("STOPPING=1").await;
        let status = tokio::time::timeout(T, self.child.wait())
            .await
            .expect("exits in time")
            .expect("wait");
        assert!(status.success(), "exit status {status:?}\n{}", self.log());
    }
}

/// A plain HTTP/1.1 GET on loopback; returns the whole response.
async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    tokio::time::timeout(T, tcp.read_to_string(&mut response))
        .await
        .expect("in time")
        .expect("read");
    response
}

/// Pings `jid` until it answers with a result (the component is connected).
async fn wait_answering(alice: &mut Client, jid: &str, daemon: &Daemon) {
    let deadline = tokio::time::Instant::now() + T;
    let mut n = 0;
    loop {
        n += 1;
        let id = format!("w-{jid}-{n}");
        let reply = alice
            .iq(&format!(
                "<iq type='get' id='{id}' to='{jid}'><ping xmlns='urn:xmpp:ping'/></iq>"
            ))
            .await;
        if reply.attr("type") == Some("result") {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{jid} never answered\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn run_reload_and_graceful_stop() {
    let prosody = Prosody::start(
        &[(ECHO, SECRET), (ECHO2, SECRET)],
        &[("alice", "alice-pw")],
        "",
    )
    .await;
    let dir = temp_dir();
    std::fs::write(dir.path().join("echo.secret"), SECRET).expect("secret");
    let config = dir.path().join("satellite.toml");
    let metrics_port = crate::support::free_port();
    let metrics = format!("[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\n");
    let first = component(ECHO, prosody.component_port, "echo.secret");
    std::fs::write(&config, format!("{metrics}{first}")).expect("config");
    let mut daemon = Daemon::start(&config, dir.path().join("satellite.log"));
    // READY=1 only once the component's handshake is done.
    daemon.notified("READY=1").await;
    assert!(
        daemon.log().contains("connected"),
        "READY before the handshake:\n{}",
        daemon.log()
    );
    let mut alice = Client::connect(prosody.c2s_port, "alice@localhost", "alice-pw").await;
    wait_answering(&mut alice, ECHO, &daemon).await;
    assert_eq!(
        echo_round_trip(&mut alice, "b1", "via the binary").await,
        "via the binary"
    );
    let scraped = http_get(metrics_port, "/metrics").await;
    let up = format!("satellite_link_up{{component=\"{ECHO}\"}} 1");
    assert!(scraped.contains(&up), "{scraped}");
    assert!(
        scraped.contains("satellite_stanzas_received_total"),
        "{scraped}"
    );

    // Reload: add a component; the unchanged one keeps its link.
    let both = format!(
        "{metrics}{}{}",
        component(ECHO, prosody.component_port, "echo.secret"),
        component(ECHO2, prosody.component_port, "echo.secret")
    );
    std::fs::write(&config, both).expect("config");
    daemon.signal(Signal::SIGHUP);
    daemon.notified("RELOADING=1").await;
    daemon.notified("READY=1").await;
    wait_answering(&mut alice, ECHO2, &daemon).await;
    let log = daemon.log();
    assert!(log.contains("reloaded"), "{log}");
    let echo_connects = log
        .lines()
        .filter(|l| l.contains("connected") && l.contains(&format!("jid={ECHO} ")))
        .count();
    assert_eq!(
        echo_connects, 1,
        "the unchanged component reconnected:\n{log}"
    );

    // A broken config is refused on reload; the running one stays.
    std::fs::write(&config, "[[component]]\njid = 3\n").expect("config");
    daemon.signal(Signal::SIGHUP);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(daemon.log().contains("reload failed"), "{}", daemon.log());
    assert_eq!(
        echo_round_trip(&mut alice, "b2", "still running").await,
        "still running"
    );

    // SIGTERM: a clean exit, streams closed.
    daemon.signal(Signal::SIGTERM);
    daemon.notified("STOPPING=1").await;
    let status = tokio::time::timeout(T, daemon.child.wait())
        .await
        .expect("exits in time")
        .expect("wait");
    assert!(status.success(), "exit status {status:?}\n{}", daemon.log());
    assert!(daemon.log().contains("stopped"), "{}", daemon.log());
    drop(prosody);
}

/// An upload component's table with these settings.
fn upload(jid: &str, server_port: u16, settings: &str) -> String {
    format!(
        "[[component]]\nservice = \"upload\"\njid = \"{jid}\"\nserver = \"127.0.0.1:{server_port}\"\n\
         secret_file = \"echo.secret\"\n[component.settings]\n{settings}\n\n"
    )
}

/// A proxy65 component's table listening on `port`.
fn proxy65(jid: &str, server_port: u16, port: u16) -> String {
    format!(
        "[[component]]\nservice = \"proxy65\"\njid = \"{jid}\"\nserver = \"127.0.0.1:{server_port}\"\n\
         secret_file = \"echo.secret\"\n[component.settings]\nlisten = \"127.0.0.1:{port}\"\n\n"
    )
}

#[tokio::test]
async fn check_refuses_what_run_would_refuse_and_run_refuses_it_too() {
    // What a service needs from the machine: TLS files, a listen address,
    // a writable storage directory; and the process's own [log] and
    // [metrics]. `check` refuses each with exit code 1, naming the file
    // and the key, and `run` refuses the same with the same words.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let free = crate::support::free_port();
    let dir = temp_dir();
    std::fs::write(dir.path().join("echo.secret"), SECRET).expect("secret");
    std::fs::write(dir.path().join("plain"), "").expect("a file");
    let jid = "upload.localhost";
    let cases = [
        (
            "tls.toml",
            upload(
                jid,
                1,
                &format!(
                    "listen = \"127.0.0.1:{free}\"\nstorage_dir = \"files\"\n\
                     tls_cert = \"/nonexistent.crt\"\ntls_key = \"/nonexistent.key\""
                ),
            ),
            "component[0].settings.tls_cert: cannot read `/nonexistent.crt`".to_owned(),
        ),
        (
            "listen.toml",
            upload(
                jid,
                1,
                &format!("listen = \"127.0.0.1:{port}\"\nstorage_dir = \"files\""),
            ),
            format!("component[0].settings.listen: cannot listen on 127.0.0.1:{port}"),
        ),
        (
            "storage.toml",
            upload(
                jid,
                1,
                &format!("listen = \"127.0.0.1:{free}\"\nstorage_dir = \"plain/files\""),
            ),
            "component[0].settings.storage_dir: cannot create".to_owned(),
        ),
        (
            "proxy.toml",
            proxy65("proxy.localhost", 1, port),
            format!("component[0].settings.listen: cannot listen on 127.0.0.1:{port}"),
        ),
        (
            "twice.toml",
            format!(
                "{}{}",
                proxy65("proxy.localhost", 1, free),
                proxy65("proxy2.localhost", 1, free)
            ),
            format!(
                "component[1].settings.listen: 127.0.0.1:{free} overlaps component[0].settings.listen"
            ),
        ),
        (
            "metrics.toml",
            format!(
                "[metrics]\nlisten = \"127.0.0.1:{port}\"\n\n{}",
                component(ECHO, 1, "echo.secret")
            ),
            format!("metrics.listen: cannot listen on 127.0.0.1:{port}"),
        ),
        (
            "log.toml",
            format!(
                "[log]\nlevel = \"satellite=loud\"\n\n{}",
                component(ECHO, 1, "echo.secret")
            ),
            "log.level: `satellite=loud` is not a tracing filter".to_owned(),
        ),
    ];
    for (name, text, expected) in &cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        let path = path.to_str().expect("utf8");
        let (code, _, err) = satellite(&["check", "-c", path]).await;
        assert_eq!(code, 1, "check {name}: {err}");
        assert!(
            err.contains(&format!("{path}: {expected}")),
            "check {name}: expected {expected:?} in {err}"
        );
        let out = tokio::time::timeout(T, Command::new(BIN).args(["run", "-c", path]).output())
            .await
            .expect("run exits by itself")
            .expect("run");
        let run_err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "run {name}: {run_err}");
        assert!(
            run_err.contains(&format!("{path}: {expected}")),
            "run {name}: expected {expected:?} in {run_err}"
        );
    }
    // The checks leave nothing behind.
    assert!(!dir.path().join("files").exists(), "check created storage");

    // While this config's satellite runs, its listeners are its own:
    // --no-bind checks everything else.
    let listen = dir.path().join("listen.toml");
    let listen = listen.to_str().expect("utf8");
    let (code, out, err) = satellite(&["check", "--no-bind", "-c", listen]).await;
    assert_eq!(code, 0, "{out}{err}");
    drop(taken);
    let (code, out, err) = satellite(&["check", "-c", listen]).await;
    assert_eq!(code, 0, "a free address passes: {out}{err}");

    // The help says what the exit codes mean.
    let (_, help, _) = satellite(&["check", "--help"]).await;
    assert!(
        help.contains("Exit codes: 0 OK; 1 a component cannot start"),
        "{help}"
    );
}

#[tokio::test]
async fn a_component_that_cannot_start_on_reload_is_left_out_and_the_rest_runs_on() {
    let prosody = Prosody::start(&[(ECHO, SECRET)], &[("alice", "alice-pw")], "").await;
    let dir = temp_dir();
    std::fs::write(dir.path().join("echo.secret"), SECRET).expect("secret");
    let config = dir.path().join("satellite.toml");
    let echo = component(ECHO, prosody.component_port, "echo.secret");
    std::fs::write(&config, format!("[log]\nlevel = \"warn\"\n\n{echo}")).expect("config");
    // No RUST_LOG: the config's level decides, and a reload can change it.
    let daemon = Daemon::start_with(&config, dir.path().join("satellite.log"), None);
    daemon.notified("READY=1").await;
    let mut alice = Client::connect(prosody.c2s_port, "alice@localhost", "alice-pw").await;
    wait_answering(&mut alice, ECHO, &daemon).await;
    assert!(
        !daemon.log().contains("connected"),
        "level warn logs no connects:\n{}",
        daemon.log()
    );

    // Added: an upload whose TLS files are missing and one whose catalog
    // is not a database (their preflight refuses them), and two proxies
    // on one port (the second is refused by its preflight, or fails when
    // it starts, whichever comes first). The level goes to info;
    // [metrics] needs a restart.
    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).expect("mkdir");
    std::fs::write(broken.join("catalog.sqlite3"), vec![b'x'; 4096]).expect("catalog");
    let metrics_port = crate::support::free_port();
    let port = crate::support::free_port();
    let text = format!(
        "[log]\nlevel = \"info\"\n\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\n{echo}{}{}{}{}",
        upload(
            "upload.localhost",
            prosody.component_port,
            "storage_dir = \"files\"\ntls_cert = \"/nonexistent.crt\"\ntls_key = \"/nonexistent.key\""
        ),
        upload(
            "upload2.localhost",
            prosody.component_port,
            &format!(
                "storage_dir = \"broken\"\nlisten = \"127.0.0.1:{}\"",
                crate::support::free_port()
            )
        ),
        proxy65("proxy1.localhost", prosody.component_port, port),
        proxy65("proxy2.localhost", prosody.component_port, port),
    );
    std::fs::write(&config, text).expect("config");
    daemon.signal(Signal::SIGHUP);
    daemon.notified("RELOADING=1").await;
    daemon.notified("READY=1").await;
    daemon
        .status_containing(&[
            "upload.localhost left out: ",
            "component[1].settings.tls_cert: cannot read `/nonexistent.crt`",
        ])
        .await;
    daemon
        .status_containing(&[
            "upload2.localhost left out: ",
            "component[2].settings.storage_dir: the catalog",
        ])
        .await;
    daemon
        .status_containing(&[&format!("cannot listen on 127.0.0.1:{port}")])
        .await;
    daemon
        .status_containing(&["[metrics] changed; it applies at the next restart"])
        .await;
    let log = daemon.log();
    assert!(log.contains("log level changed"), "{log}");
    assert!(log.contains("reloaded"), "{log}");
    assert_eq!(
        echo_round_trip(&mut alice, "r1", "still here").await,
        "still here"
    );
    wait_answering(&mut alice, ECHO, &daemon).await;

    // Fixed and reloaded: the problems are gone from the status.
    std::fs::write(&config, format!("[log]\nlevel = \"info\"\n\n{echo}")).expect("config");
    daemon.signal(Signal::SIGHUP);
    daemon.notified("RELOADING=1").await;
    daemon.notified("READY=1").await;
    daemon.status_containing(&["STATUS=1 connected"]).await;
    daemon.stop().await;
    drop(prosody);
}

#[tokio::test]
async fn ready_and_status_say_which_component_the_server_refuses() {
    // The server does not declare echo2: satellite still gets READY=1 (no
    // start timeout, no restart loop), says why in STATUS=, and retries;
    // its satellite_link_up is there, at 0, to alert on.
    let prosody = Prosody::start(&[(ECHO, SECRET)], &[("alice", "alice-pw")], "").await;
    let dir = temp_dir();
    std::fs::write(dir.path().join("echo.secret"), SECRET).expect("secret");
    let config = dir.path().join("satellite.toml");
    let metrics_port = crate::support::free_port();
    std::fs::write(
        &config,
        format!(
            "[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\n{}{}",
            component(ECHO, prosody.component_port, "echo.secret"),
            component(ECHO2, prosody.component_port, "echo.secret")
        ),
    )
    .expect("config");
    let daemon = Daemon::start(&config, dir.path().join("satellite.log"));
    daemon.notified("READY=1").await;
    let status = daemon
        .status_containing(&["1/2 connected", ECHO2, "retrying"])
        .await;
    assert!(!status.contains(&format!("{ECHO}:")), "{status}");
    assert!(
        daemon
            .log()
            .contains("ready, but not every component is connected"),
        "{}",
        daemon.log()
    );
    let mut alice = Client::connect(prosody.c2s_port, "alice@localhost", "alice-pw").await;
    wait_answering(&mut alice, ECHO, &daemon).await;
    let scraped = http_get(metrics_port, "/metrics").await;
    for (jid, up) in [(ECHO, 1), (ECHO2, 0)] {
        let series = format!("satellite_link_up{{component=\"{jid}\"}} {up}");
        assert!(scraped.contains(&series), "no `{series}` in:\n{scraped}");
    }
    assert!(
        !scraped.contains(&format!(
            "satellite_connects_total{{component=\"{ECHO2}\"}} 1"
        )),
        "{scraped}"
    );
    daemon.stop().await;
    drop(prosody);
}

#[tokio::test]
async fn a_changed_service_restarts_on_its_own_listener() {
    // A changed upload component stops before its new settings are
    // checked and started: its HTTP port is free again for them.
    let jid = "upload.localhost";
    let prosody = Prosody::start(&[(jid, SECRET)], &[], "").await;
    let dir = temp_dir();
    std::fs::write(dir.path().join("echo.secret"), SECRET).expect("secret");
    let config = dir.path().join("satellite.toml");
    let port = crate::support::free_port();
    let settings = |max: u64| {
        format!("listen = \"127.0.0.1:{port}\"\nstorage_dir = \"files\"\nmax_file_size = {max}")
    };
    std::fs::write(
        &config,
        upload(jid, prosody.component_port, &settings(1000)),
    )
    .expect("config");
    let daemon = Daemon::start(&config, dir.path().join("satellite.log"));
    daemon.notified("READY=1").await;
    daemon.status_containing(&["STATUS=1 connected"]).await;

    std::fs::write(
        &config,
        upload(jid, prosody.component_port, &settings(2000)),
    )
    .expect("config");
    daemon.signal(Signal::SIGHUP);
    daemon.notified("RELOADING=1").await;
    daemon.notified("READY=1").await;
    let log = daemon.log();
    assert!(log.contains("restarting with changed settings"), "{log}");
    assert!(
        !log.contains("left out") && !log.contains("kept its previous"),
        "{log}"
    );
    assert!(
        http_get(port, "/").await.starts_with("HTTP/1.1 "),
        "the HTTP side is back\n{log}"
    );
    wait_connected(&daemon).await;
    daemon.stop().await;
    drop(prosody);
}

/// Waits for the status to say every component is connected again.
async fn wait_connected(daemon: &Daemon) {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let last = daemon
            .history
            .lock()
            .expect("history")
            .iter()
            .rev()
            .find_map(|m| {
                m.lines()
                    .find(|l| l.starts_with("STATUS="))
                    .map(str::to_owned)
            });
        if last
            .as_deref()
            .is_some_and(|l| l.ends_with(" connected") && !l.contains('/'))
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not connected again: {last:?}\n{}",
            daemon.log()
        );
        let _ = tokio::time::timeout(Duration::from_millis(200), daemon.next_notification()).await;
    }
}

#[tokio::test]
async fn the_ejabberd_snippet_for_a_hostname_works_on_ejabberd() {
    // `server = "localhost:PORT"`: ejabberd's `ip:` takes an address, so
    // the snippet gives the one `localhost` resolves to; pasted into a
    // real ejabberd.yml, satellite connects through it.
    let mut ejabberd = crate::support::Ejabberd::start(&[], &[]).await;
    let dir = temp_dir();
    std::fs::write(dir.path().join("echo.secret"), SECRET).expect("secret");
    let port = crate::support::free_port();
    let config = dir.path().join("satellite.toml");
    std::fs::write(
        &config,
        component(ECHO, port, "echo.secret").replace("127.0.0.1:", "localhost:"),
    )
    .expect("config");
    let (code, snippet, err) =
        satellite(&["ejabberd-config", "-c", config.to_str().expect("utf8")]).await;
    assert_eq!(code, 0, "{err}");
    assert!(!snippet.contains("ip: \"localhost\""), "{snippet}");
    let (_, entries) = snippet.split_once("listen:\n").expect("a listen: key");
    ejabberd.stop().await;
    let yml = std::fs::read_to_string(ejabberd.config_path()).expect("ejabberd.yml");
    let yml = yml.replacen("listen:\n", &format!("listen:\n{entries}"), 1);
    std::fs::write(ejabberd.config_path(), yml).expect("ejabberd.yml");
    ejabberd.start_again().await;

    let daemon = Daemon::start(&config, dir.path().join("satellite.log"));
    daemon.notified("READY=1").await;
    daemon.status_containing(&["STATUS=1 connected"]).await;
    daemon.stop().await;
}
