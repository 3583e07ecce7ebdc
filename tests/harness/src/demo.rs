//! The demo: a private Prosody on loopback with satellite's bundled
//! services attached, checked end to end with a real client.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::{Client, Prosody};

/// The demo user.
pub const USER: &str = "demo";
/// The echo service's JID.
pub const ECHO: &str = "echo.localhost";
/// The SOCKS5 proxy's JID.
pub const PROXY: &str = "proxy.localhost";
/// The upload service's JID.
pub const UPLOAD: &str = "upload.localhost";
/// The MUC service's JID.
pub const MUC: &str = "rooms.localhost";
/// The room the self-check creates.
pub const ROOM: &str = "demo@rooms.localhost";

/// A running demo: Prosody plus `satellite run`.
pub struct Demo {
    /// The private Prosody.
    pub prosody: Prosody,
    /// The demo user's password.
    pub password: String,
    /// Where the satellite config, secret and log live.
    pub dir: tempfile::TempDir,
    satellite: Child,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut buf);
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

impl Demo {
    /// Starts Prosody with the bundled services declared, writes a
    /// satellite config for them, validates it with `satellite check` and
    /// starts `satellite run`.
    pub async fn start(satellite: &Path) -> Result<Demo, String> {
        let secrets = [ECHO, PROXY, UPLOAD, MUC].map(|jid| (jid, random_hex(24)));
        let password = random_hex(8);
        let declared: Vec<(&str, &str)> = secrets.iter().map(|(j, s)| (*j, s.as_str())).collect();
        let prosody = Prosody::start(&declared, &[(USER, &password)], "").await;
        let dir = tempfile::Builder::new()
            .prefix("satellite-demo-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let write = |name: &str, text: String| -> Result<PathBuf, String> {
            let path = dir.path().join(name);
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(path)
        };
        let mut text = String::from("[log]\nlevel = \"info\"\n");
        for (jid, secret) in &secrets {
            let service = jid.split('.').next().unwrap_or_default();
            let service = match service {
                "proxy" => "proxy65",
                "rooms" => "muc",
                other => other,
            };
            write(&format!("{service}.secret"), format!("{secret}\n"))?;
            text.push_str(&format!(
                "\n[[component]]\nservice = \"{service}\"\njid = \"{jid}\"\nserver = \"127.0.0.1:{}\"\nsecret_file = \"{service}.secret\"\n",
                prosody.component_port
            ));
            match service {
                "proxy65" => text.push_str(&format!(
                    "[component.settings]\nlisten = \"127.0.0.1:{}\"\n",
                    crate::free_port()
                )),
                "upload" => text.push_str(&format!(
                    "[component.settings]\nlisten = \"127.0.0.1:{}\"\nstorage_dir = \"upload-files\"\n\
                     min_free_space = 16777216\n",
                    crate::free_port()
                )),
                "muc" => text.push_str("[component.settings]\ndatabase = \"muc.sqlite\"\n"),
                _ => {}
            }
        }
        let config = write("satellite.toml", text)?;
        let check = Command::new(satellite)
            .args(["check", "-c"])
            .arg(&config)
            .output()
            .await
            .map_err(|e| format!("{}: {e}", satellite.display()))?;
        if !check.status.success() {
            return Err(format!(
                "satellite check failed:\n{}",
                String::from_utf8_lossy(&check.stderr)
            ));
        }
        let log = std::fs::File::create(dir.path().join("satellite.log"))
            .map_err(|e| format!("log file: {e}"))?;
        let child = Command::new(satellite)
            .args(["run", "-c"])
            .arg(&config)
            .stdin(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("{}: {e}", satellite.display()))?;
        Ok(Demo {
            prosody,
            password,
            dir,
            satellite: child,
        })
    }

    /// The satellite log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("satellite.log")).unwrap_or_default()
    }

    /// Logs in as the demo user and checks the echo service: ping until it
    /// answers, an echoed message, the ad-hoc command list. Returns a
    /// report line per check.
    pub async fn self_check(&self) -> Result<Vec<String>, String> {
        let jid = format!("{USER}@{}", self.prosody.domain);
        let mut client = Client::connect(self.prosody.c2s_port, &jid, &self.password).await;
        let mut report = Vec::new();
        let started = tokio::time::Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let reply = client
                .iq(&format!("<iq type='get' id='ping{attempt}' to='{ECHO}'><ping xmlns='urn:xmpp:ping'/></iq>"))
                .await;
            if reply.attr("type") == Some("result") {
                break;
            }
            if started.elapsed() > Duration::from_secs(15) {
                return Err(format!("{ECHO} does not answer pings\n{}", self.log()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        report.push(format!("ping {ECHO}: answered"));
        let sent = tokio::time::Instant::now();
        client
            .send_raw(&format!(
                "<message to='{ECHO}' id='hello' type='chat'><body>hello satellite</body></message>"
            ))
            .await;
        let reply = client
            .recv_matching(
                |e| e.name() == "message" && e.attr("id") == Some("hello"),
                Duration::from_secs(10),
            )
            .await;
        let body = reply
            .get_child("body", "jabber:client")
            .map(|b| b.text())
            .unwrap_or_default();
        if body != "hello satellite" {
            return Err(format!("unexpected echo: {reply:?}"));
        }
        report.push(format!(
            "echo round trip: {:?} -> {body:?} in {:?}",
            "hello satellite",
            sent.elapsed()
        ));
        let reply = client
            .iq(&format!("<iq type='get' id='cmds' to='{ECHO}'><query xmlns='http://jabber.org/protocol/disco#items' node='http://jabber.org/protocol/commands'/></iq>"))
            .await;
        let nodes: Vec<String> = reply
            .get_child("query", "http://jabber.org/protocol/disco#items")
            .map(|q| {
                q.children()
                    .filter_map(|c| c.attr("name").map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        report.push(format!("ad-hoc commands: {}", nodes.join(", ")));

        let reply = client
            .iq(&format!("<iq type='get' id='hosts' to='{PROXY}'><query xmlns='http://jabber.org/protocol/bytestreams'/></iq>"))
            .await;
        let host = reply
            .get_child("query", "http://jabber.org/protocol/bytestreams")
            .and_then(|q| q.children().find(|c| c.name() == "streamhost"))
            .map(|h| {
                format!(
                    "{}:{}",
                    h.attr("host").unwrap_or("?"),
                    h.attr("port").unwrap_or("?")
                )
            })
            .ok_or_else(|| format!("{PROXY} gave no streamhost: {reply:?}\n{}", self.log()))?;
        report.push(format!("proxy65 streamhost: {host}"));

        let content = format!(
            "uploaded through satellite at {:?}\n",
            std::time::SystemTime::now()
        );
        let file = self.dir.path().join("hello.txt");
        std::fs::write(&file, &content).map_err(|e| format!("{}: {e}", file.display()))?;
        let url = client
            .upload(&file.to_string_lossy(), "text/plain")
            .await
            .map_err(|e| format!("upload through {UPLOAD} failed: {e}\n{}", self.log()))?;
        let got = crate::http::request(
            "GET",
            &url,
            &[],
            crate::http::Body::None,
            crate::http::Keep::All,
            Duration::from_secs(10),
        )
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
        if got.status != 200 || got.body != content.as_bytes() {
            return Err(format!("GET {url} did not return the upload: {got:?}"));
        }
        report.push(format!(
            "upload: {} bytes PUT and served back at {url}",
            content.len()
        ));
        report.push(self.muc_check(&mut client).await?);
        client.disconnect().await;
        Ok(report)
    }

    /// Creates [`ROOM`] as the demo user (nick `demo`), lets a second
    /// session of the same account join it (nick `second`) and sends a
    /// message through it. Returns the report line.
    async fn muc_check(&self, client: &mut Client) -> Result<String, String> {
        const T: Duration = Duration::from_secs(10);
        let muc = "http://jabber.org/protocol/muc";
        let self_presence = |e: &xmpp_parsers::minidom::Element, nick: &str| {
            e.name() == "presence"
                && e.attr("from") == Some(&format!("{ROOM}/{nick}"))
                && e.children()
                    .any(|x| x.name() == "x" && x.children().any(|s| s.attr("code") == Some("110")))
        };
        client
            .send_raw(&format!(
                "<presence to='{ROOM}/demo'><x xmlns='{muc}'/></presence>"
            ))
            .await;
        let created = client.recv_matching(|e| self_presence(e, "demo"), T).await;
        if created.attr("type").is_some() {
            return Err(format!(
                "joining {ROOM} failed: {created:?}\n{}",
                self.log()
            ));
        }
        // An instant room: the default configuration, unlocked.
        let reply = client
            .iq(&format!(
                "<iq type='set' id='room-config' to='{ROOM}'><query xmlns='{muc}#owner'>\
                 <x xmlns='jabber:x:data' type='submit'/></query></iq>"
            ))
            .await;
        if reply.attr("type") != Some("result") {
            return Err(format!("configuring {ROOM} failed: {reply:?}"));
        }
        let jid = format!("{USER}@{}/second", self.prosody.domain);
        let mut second = Client::connect(self.prosody.c2s_port, &jid, &self.password).await;
        second
            .send_raw(&format!(
                "<presence to='{ROOM}/second'><x xmlns='{muc}'/></presence>"
            ))
            .await;
        second
            .recv_matching(|e| self_presence(e, "second"), T)
            .await;
        let sent = tokio::time::Instant::now();
        client
            .send_raw(&format!(
                "<message type='groupchat' to='{ROOM}' id='room-hello'><body>hello room</body></message>"
            ))
            .await;
        let from = format!("{ROOM}/demo");
        let got = second
            .recv_matching(
                |e| e.name() == "message" && e.attr("from") == Some(&from),
                T,
            )
            .await;
        let body = got
            .get_child("body", "jabber:client")
            .map(|b| b.text())
            .unwrap_or_default();
        if body != "hello room" {
            return Err(format!("unexpected room message: {got:?}"));
        }
        second.disconnect().await;
        Ok(format!(
            "muc: {ROOM} created; {body:?} from demo reached second in {:?}",
            sent.elapsed()
        ))
    }

    /// Stops satellite (SIGTERM, graceful) and Prosody.
    pub async fn stop(mut self) -> Result<(), String> {
        if let Some(pid) = self.satellite.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
        let status = tokio::time::timeout(Duration::from_secs(15), self.satellite.wait())
            .await
            .map_err(|_| "satellite did not stop within 15 s".to_owned())?
            .map_err(|e| e.to_string())?;
        self.prosody.stop().await;
        if status.success() {
            Ok(())
        } else {
            Err(format!("satellite exited with {status}\n{}", self.log()))
        }
    }
}
