//! The `satellite` binary against a real Prosody: check, run, reload on
//! SIGHUP, graceful stop on SIGTERM, and the generated server snippets.

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

    let cases = [
        (
            "unknown-key.toml",
            format!("{}sekret = \"x\"\n", component(ECHO, 5347, "echo.secret")),
            "unknown field `sekret`",
        ),
        (
            "bad-service.toml",
            component(ECHO, 5347, "echo.secret").replace("\"echo\"", "\"ecco\""),
            "component[0].service: unknown service `ecco`; expected one of echo",
        ),
        (
            "no-secret.toml",
            component(ECHO, 5347, "missing.secret"),
            "component[0].secret_file: cannot read",
        ),
        (
            "bad-setting.toml",
            format!(
                "{}[component.settings]\nprefix = 5\n",
                component(ECHO, 5347, "echo.secret")
            ),
            "component[0].settings",
        ),
    ];
    for (name, text, expected) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        let (code, _, err) = satellite(&["check", "-c", path.to_str().expect("utf8")]).await;
        assert_ne!(code, 0, "{name} passed");
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
}

impl Daemon {
    /// Starts `satellite run` with a NOTIFY_SOCKET of our own, as systemd
    /// would for `Type=notify`.
    fn start(config: &Path, log: PathBuf) -> Daemon {
        let file = std::fs::File::create(&log).expect("log file");
        let socket = log.with_extension("notify");
        let notify = tokio::net::UnixDatagram::bind(&socket).expect("notify socket");
        let child = Command::new(BIN)
            .args(["run", "-c", config.to_str().expect("utf8")])
            .env("RUST_LOG", "info")
            .env("NOTIFY_SOCKET", &socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn satellite run");
        Daemon { child, log, notify }
    }

    /// Waits for a notification containing `state` (e.g. "READY=1").
    async fn notified(&self, state: &str) {
        let mut buf = vec![0u8; 4096];
        let mut seen = Vec::new();
        let found = tokio::time::timeout(T, async {
            loop {
                let n = self.notify.recv(&mut buf).await.expect("recv");
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
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

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, signal: Signal) {
        let pid = self.child.id().expect("running") as i32;
        kill(Pid::from_raw(pid), signal).expect("signal");
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

#[tokio::test]
async fn a_service_that_cannot_start_makes_run_exit_with_the_reason() {
    // The upload service's HTTP port is taken: `satellite run` says so and
    // exits non-zero (systemd's Restart=on-failure then retries), rather
    // than running without it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let dir = temp_dir();
    std::fs::write(dir.path().join("upload.secret"), SECRET).expect("secret");
    let config = dir.path().join("upload.toml");
    std::fs::write(
        &config,
        format!(
            "[[component]]\nservice = \"upload\"\njid = \"upload.localhost\"\nserver = \"127.0.0.1:1\"\n\
             secret_file = \"upload.secret\"\n[component.settings]\nlisten = \"127.0.0.1:{port}\"\nstorage_dir = \"files\"\n"
        ),
    )
    .expect("config");
    let out = tokio::time::timeout(
        T,
        Command::new(BIN)
            .args(["run", "-c", config.to_str().expect("utf8")])
            .output(),
    )
    .await
    .expect("exits by itself")
    .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "upload.localhost: upload: cannot listen on 127.0.0.1:{port}"
        )),
        "{err}"
    );
    drop(taken);
}
