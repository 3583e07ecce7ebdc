//! A real XMPP client: Debian's Python slixmpp (tests/harness/client.py),
//! driven over stdin/stdout with one JSON object per line.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;
use xmpp_parsers::minidom::Element;

use super::tail;

/// The Python with slixmpp (Debian's; the first python3 on PATH may lack it).
/// Overridable with SATELLITE_TEST_PYTHON.
pub const PYTHON: &str = "/usr/bin/python3";
/// How long [`Client::connect`] waits for the session to start.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long [`Client::iq_reply`] waits.
pub const IQ_TIMEOUT: Duration = Duration::from_secs(10);

enum Event {
    Ready {
        jid: String,
    },
    Stanza(String),
    Error(String),
    Disconnected,
    /// The outcome of an `upload` command: the GET URL, or why it failed.
    Upload {
        id: String,
        result: Result<String, String>,
    },
    /// A line the driver printed that the harness does not act on.
    Other(#[allow(dead_code)] String),
    Eof,
}

/// A logged-in XMPP client (slixmpp). Dropping it kills the Python process.
pub struct Client {
    /// The full JID bound by the server (user@domain/resource).
    pub jid: String,
    child: Child,
    stdin: Option<ChildStdin>,
    events: mpsc::UnboundedReceiver<Event>,
    stderr: Arc<Mutex<String>>,
    /// Received stanzas not yet returned by `recv_matching`, oldest first.
    unconsumed: VecDeque<(String, Element)>,
    /// Every stanza received (raw XML), for panic messages.
    seen: Vec<String>,
    /// Outcomes of `upload` commands not yet collected, by id.
    uploads: Vec<(String, Result<String, String>)>,
    closed: Option<String>,
}

impl Client {
    /// Logs in over plaintext c2s on 127.0.0.1:`port` (no TLS on loopback)
    /// and waits for session start and the initial presence to be sent.
    /// Panics (with the script's stderr) on failure or after 20 s.
    pub async fn connect(port: u16, jid: &str, password: &str) -> Client {
        let python = std::env::var("SATELLITE_TEST_PYTHON").unwrap_or_else(|_| PYTHON.to_string());
        let script = super::integration_dir().join("client.py");
        let mut child = Command::new(&python)
            .arg(&script)
            .arg(jid)
            .arg(password)
            .arg("127.0.0.1")
            .arg(port.to_string())
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {python} {}: {e}", script.display()));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("client stdout");
        let mut stderr_pipe = child.stderr.take().expect("client stderr");

        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_sink = Arc::clone(&stderr);
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            loop {
                match stderr_pipe.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => stderr_sink
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push_str(&String::from_utf8_lossy(&buf[..n])),
                }
            }
        });

        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            loop {
                match lines.next_line().await {
                    Ok(Some(line)) => {
                        if tx.send(parse_event(&line)).is_err() {
                            break;
                        }
                    }
                    Ok(None) | Err(_) => {
                        let _ = tx.send(Event::Eof);
                        break;
                    }
                }
            }
        });

        let mut client = Client {
            jid: String::new(),
            child,
            stdin,
            events,
            stderr,
            unconsumed: VecDeque::new(),
            seen: Vec::new(),
            uploads: Vec::new(),
            closed: None,
        };
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, client.events.recv()).await {
                Err(_) => {
                    let _ = client.child.start_kill();
                    client.fail(&format!(
                        "Client::connect({port}, {jid}): no session after {CONNECT_TIMEOUT:?}"
                    ));
                }
                Ok(None) | Ok(Some(Event::Eof)) => {
                    client.fail(&format!(
                        "Client::connect({port}, {jid}): client.py exited before session start"
                    ));
                }
                Ok(Some(Event::Error(reason))) => {
                    client.fail(&format!("Client::connect({port}, {jid}): {reason}"));
                }
                Ok(Some(Event::Ready { jid: bound })) => {
                    client.jid = bound;
                    return client;
                }
                Ok(Some(Event::Stanza(xml))) => client.push_stanza(xml),
                Ok(Some(Event::Disconnected))
                | Ok(Some(Event::Other(_)))
                | Ok(Some(Event::Upload { .. })) => {}
            }
        }
    }

    /// The bare JID (user@domain).
    pub fn bare_jid(&self) -> &str {
        self.jid.split('/').next().unwrap_or(&self.jid)
    }

    /// Sends one raw XML stanza exactly as given (no xmlns = jabber:client).
    pub async fn send_raw(&mut self, xml: &str) {
        let line = serde_json::json!({ "send": xml }).to_string() + "\n";
        self.write_line(&line).await;
    }

    /// The next received stanza (iq/message/presence) for which `pred` is
    /// true. Stanzas that don't match are kept for later calls (they are
    /// looked at first, oldest first). Panics after `timeout` with the list of
    /// stanzas seen.
    pub async fn recv_matching(
        &mut self,
        pred: impl Fn(&Element) -> bool,
        timeout: Duration,
    ) -> Element {
        if let Some(pos) = self.unconsumed.iter().position(|(_, e)| pred(e))
            && let Some((_, element)) = self.unconsumed.remove(pos)
        {
            return element;
        }
        let deadline = Instant::now() + timeout;
        loop {
            let before = self.unconsumed.len();
            if !self.next_event(deadline).await {
                self.fail(&format!(
                    "Client {}: no matching stanza within {timeout:?}{}",
                    self.jid,
                    self.closed
                        .as_ref()
                        .map(|c| format!(" (client closed: {c})"))
                        .unwrap_or_default()
                ));
            }
            if self.unconsumed.len() > before {
                let matches = self.unconsumed.back().is_some_and(|(_, e)| pred(e));
                if matches && let Some((_, element)) = self.unconsumed.pop_back() {
                    return element;
                }
            }
        }
    }

    /// Waits `duration` and panics if a stanza matching `pred` arrives (or
    /// was already received and not consumed).
    pub async fn expect_none_matching(
        &mut self,
        pred: impl Fn(&Element) -> bool,
        duration: Duration,
    ) {
        let deadline = Instant::now() + duration;
        loop {
            if let Some((xml, _)) = self.unconsumed.iter().find(|(_, e)| pred(e)) {
                let xml = xml.clone();
                self.fail(&format!(
                    "Client {}: unexpected stanza received: {xml}",
                    self.jid
                ));
            }
            if !self.next_event(deadline).await {
                return;
            }
        }
    }

    /// Takes every stanza already received and not yet consumed for which
    /// `pred` is true, oldest first, without waiting.
    pub fn take_received(&mut self, pred: impl Fn(&Element) -> bool) -> Vec<Element> {
        let mut taken = Vec::new();
        let mut kept = VecDeque::new();
        for (xml, element) in self.unconsumed.drain(..) {
            if pred(&element) {
                taken.push(element);
            } else {
                kept.push_back((xml, element));
            }
        }
        self.unconsumed = kept;
        taken
    }

    /// The reply (type result or error) to the iq with this id (10 s timeout).
    pub async fn iq_reply(&mut self, id: &str) -> Element {
        self.recv_matching(
            |e| {
                e.name() == "iq"
                    && e.attr("id") == Some(id)
                    && matches!(e.attr("type"), Some("result") | Some("error"))
            },
            IQ_TIMEOUT,
        )
        .await
    }

    /// Sends an iq and waits for its reply: `send_raw(xml)` then
    /// `iq_reply(id)`, where id is taken from the stanza.
    pub async fn iq(&mut self, xml: &str) -> Element {
        let element: Element = parse_stanza(xml);
        let id = element
            .attr("id")
            .unwrap_or_else(|| panic!("Client::iq: stanza has no id: {xml}"))
            .to_string();
        self.send_raw(xml).await;
        self.iq_reply(&id).await
    }

    /// Uploads the file at `path` with slixmpp's own XEP-0363 plugin: it
    /// finds the upload service by disco on the server, requests a slot and
    /// PUTs with aiohttp. Returns the GET URL, or slixmpp's error (after
    /// 30 s at most).
    pub async fn upload(&mut self, path: &str, content_type: &str) -> Result<String, String> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let id = format!(
            "up{}",
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let line = serde_json::json!({
            "upload": { "id": id, "path": path, "content_type": content_type }
        })
        .to_string()
            + "\n";
        self.write_line(&line).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(pos) = self.uploads.iter().position(|(i, _)| *i == id) {
                return self.uploads.remove(pos).1;
            }
            if !self.next_event(deadline).await {
                self.fail(&format!(
                    "Client {}: upload of {path} did not finish",
                    self.jid
                ));
            }
        }
    }

    /// All stanzas received so far (raw XML), in order.
    pub fn seen(&self) -> &[String] {
        &self.seen
    }

    /// What client.py wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Closes the stream (`</stream:stream>`), waits for the script to exit.
    pub async fn disconnect(mut self) {
        self.write_line("{\"quit\":true}\n").await;
        drop(self.stdin.take());
        match tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                let _ = self.child.start_kill();
                let _ = self.child.wait().await;
            }
        }
    }

    /// Reads one event (until `deadline`); returns false on timeout.
    async fn next_event(&mut self, deadline: Instant) -> bool {
        if self.closed.is_some() {
            // Nothing more will come: wait out the deadline quickly.
            tokio::time::sleep_until(deadline).await;
            return false;
        }
        match tokio::time::timeout_at(deadline, self.events.recv()).await {
            Err(_) => false,
            Ok(None) | Ok(Some(Event::Eof)) => {
                self.closed = Some("client.py exited".into());
                true
            }
            Ok(Some(Event::Stanza(xml))) => {
                self.push_stanza(xml);
                true
            }
            Ok(Some(Event::Disconnected)) => {
                self.closed = Some("stream closed by the server".into());
                true
            }
            Ok(Some(Event::Error(reason))) => {
                self.closed = Some(reason);
                true
            }
            Ok(Some(Event::Upload { id, result })) => {
                self.uploads.push((id, result));
                true
            }
            Ok(Some(Event::Ready { .. })) | Ok(Some(Event::Other(_))) => true,
        }
    }

    fn push_stanza(&mut self, xml: String) {
        let element = parse_stanza(&xml);
        self.seen.push(xml.clone());
        self.unconsumed.push_back((xml, element));
    }

    async fn write_line(&mut self, line: &str) {
        let result = match self.stdin.as_mut() {
            Some(stdin) => match stdin.write_all(line.as_bytes()).await {
                Ok(()) => stdin.flush().await,
                Err(e) => Err(e),
            },
            None => Err(std::io::Error::other("stdin already closed")),
        };
        if let Err(e) = result {
            self.fail(&format!(
                "Client {}: cannot write to client.py: {e}",
                self.jid
            ));
        }
    }

    fn fail(&self, msg: &str) -> ! {
        let mut seen = String::new();
        for (i, s) in self.seen.iter().enumerate() {
            seen.push_str(&format!("\n  [{i}] {s}"));
        }
        if seen.is_empty() {
            seen.push_str(" (none)");
        }
        panic!(
            "{msg}\nstanzas seen:{seen}\n--- client.py stderr ---\n{}",
            tail(&self.stderr(), 20_000)
        );
    }
}

fn parse_event(line: &str) -> Event {
    let value: serde_json::Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(_) => return Event::Other(line.to_string()),
    };
    if let Some(xml) = value.get("stanza").and_then(|v| v.as_str()) {
        return Event::Stanza(xml.to_string());
    }
    match value.get("event").and_then(|v| v.as_str()) {
        Some("ready") => Event::Ready {
            jid: value
                .get("jid")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string(),
        },
        Some("error") => Event::Error(
            value
                .get("reason")
                .and_then(|v| v.as_str())
                .unwrap_or("unknown error")
                .to_string(),
        ),
        Some("disconnected") => Event::Disconnected,
        Some(outcome @ ("uploaded" | "upload-failed")) => {
            let field = |k: &str| {
                value
                    .get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            Event::Upload {
                id: field("id"),
                result: if outcome == "uploaded" {
                    Ok(field("url"))
                } else {
                    Err(field("reason"))
                },
            }
        }
        _ => Event::Other(line.to_string()),
    }
}

/// Parses a stanza; stanzas without an xmlns are taken as jabber:client.
pub fn parse_stanza(xml: &str) -> Element {
    match xml.parse::<Element>() {
        Ok(e) => e,
        Err(first) => {
            // Add the default namespace to the root element and retry.
            let trimmed = xml.trim_start();
            let name_end = trimmed
                .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
                .unwrap_or(trimmed.len());
            let patched = format!(
                "{} xmlns='jabber:client'{}",
                &trimmed[..name_end],
                &trimmed[name_end..]
            );
            patched
                .parse::<Element>()
                .unwrap_or_else(|_| panic!("cannot parse stanza ({first}): {xml}"))
        }
    }
}
