//! Many c2s connections in one process: each connection is a task that
//! writes what it is given and reads everything the server sends, handing
//! each element to one shared [`Observer`] that counts what a phase waits
//! for (self-presences, tagged groupchat messages) and their times.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use satellite_harness::c2s::{C2sClient, NS_CLIENT, name, ping};
use tokio::sync::mpsc;
use xmpp_parsers::minidom::Element;

/// XEP-0045's user namespace (status codes, items).
pub const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
/// XEP-0045's join namespace.
pub const NS_MUC: &str = "http://jabber.org/protocol/muc";
/// XEP-0203 delayed delivery (history).
const NS_DELAY: &str = "urn:xmpp:delay";

/// What the connection tasks saw since the last [`Observer::reset`].
#[derive(Default)]
pub struct Seen {
    /// The tag of the measured messages (`m<tag> <micros>` bodies).
    pub tag: u64,
    /// The connection whose copies of its own messages are not counted.
    pub sender: Option<usize>,
    /// Record each delivery's latency.
    pub record_latency: bool,
    /// Tagged groupchat messages delivered (not to the sender).
    pub delivered: u64,
    /// When the last of those arrived (since the observer's epoch).
    pub last_delivery: Duration,
    /// Delivery latencies, microseconds.
    pub latencies: Vec<u64>,
    /// Self-presences (status 110) received.
    pub joined: u64,
    /// When the last one arrived.
    pub last_join: Duration,
    /// Occupant presences (with muc#user) received, self-presences included.
    pub presences: u64,
    /// When the last one arrived.
    pub last_presence: Duration,
    /// Stanzas of type error received.
    pub errors: u64,
    /// The first of those, serialised.
    pub first_error: Option<String>,
    /// Connections that failed (read error, server closed).
    pub broken: Vec<String>,
}

/// Shared by every connection task.
pub struct Observer {
    epoch: Instant,
    seen: Mutex<Seen>,
}

impl Observer {
    fn new() -> Observer {
        Observer {
            epoch: Instant::now(),
            seen: Mutex::new(Seen::default()),
        }
    }

    /// Microseconds since the epoch, for message bodies.
    pub fn now_micros(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// Time since the epoch.
    pub fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// The counters.
    pub fn seen(&self) -> MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Zeroes the counters for a new phase.
    pub fn reset(&self, tag: u64, sender: Option<usize>, record_latency: bool) {
        let mut seen = self.seen();
        let broken = std::mem::take(&mut seen.broken);
        *seen = Seen {
            tag,
            sender,
            record_latency,
            broken,
            ..Seen::default()
        };
    }

    fn observe(&self, conn: usize, el: &Element) {
        let now = self.now();
        let mut seen = self.seen();
        if el.attr("type") == Some("error") {
            seen.errors += 1;
            if seen.first_error.is_none() {
                seen.first_error = Some(String::from(el));
            }
            return;
        }
        match el.name() {
            "presence" => {
                let Some(x) = el.get_child("x", NS_MUC_USER) else {
                    return;
                };
                seen.presences += 1;
                seen.last_presence = now;
                if x.children()
                    .any(|c| c.name() == "status" && c.attr("code") == Some("110"))
                {
                    seen.joined += 1;
                    seen.last_join = now;
                }
            }
            "message" if el.attr("type") == Some("groupchat") => {
                if seen.sender == Some(conn) || el.get_child("delay", NS_DELAY).is_some() {
                    return;
                }
                let Some(body) = el.get_child("body", NS_CLIENT) else {
                    return;
                };
                let text = body.text();
                let Some((tag, micros)) = text
                    .strip_prefix('m')
                    .and_then(|t| t.split_once(' '))
                    .and_then(|(t, m)| Some((t.parse::<u64>().ok()?, m.parse::<u64>().ok()?)))
                else {
                    return;
                };
                if tag != seen.tag {
                    return;
                }
                seen.delivered += 1;
                seen.last_delivery = now;
                if seen.record_latency {
                    let latency = (now.as_micros() as u64).saturating_sub(micros);
                    seen.latencies.push(latency);
                }
            }
            _ => {}
        }
    }

    /// Waits until `done(seen)` holds, polling every millisecond; an error
    /// naming `what` (and what was seen) after `timeout`.
    pub async fn wait(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Seen) -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let seen = self.seen();
                if done(&seen) {
                    return Ok(());
                }
                if let Some(b) = seen.broken.first() {
                    return Err(format!("{what}: a connection broke: {b}"));
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "{what}: not done within {timeout:?}: {} delivered, {} joined, {} presences, {} errors (first: {})",
                        seen.delivered,
                        seen.joined,
                        seen.presences,
                        seen.errors,
                        seen.first_error.as_deref().unwrap_or("-")
                    ));
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// One logged-in connection, driven by its task.
pub struct Conn {
    tx: mpsc::UnboundedSender<Vec<Element>>,
}

impl Conn {
    /// Writes these elements (with one flush).
    pub fn send(&self, batch: Vec<Element>) {
        // A closed task has recorded why in the observer.
        let _ = self.tx.send(batch);
    }
}

/// The connections and their observer.
pub struct Pool {
    /// Connection i is account `<prefix>i`.
    pub conns: Vec<Conn>,
    /// What they saw.
    pub observer: Arc<Observer>,
}

/// The account name of connection `i`.
pub fn account(i: usize) -> String {
    format!("u{i}")
}

/// The password of every pool account.
pub const POOL_PASSWORD: &str = "pw";

impl Pool {
    /// Logs in `n` accounts ([`account`]) on 127.0.0.1:`port`, `parallel`
    /// logins at a time, each sending initial presence.
    pub async fn connect(
        port: u16,
        domain: &str,
        n: usize,
        parallel: usize,
    ) -> Result<Pool, String> {
        let observer = Arc::new(Observer::new());
        let logins = futures::stream::iter(0..n)
            .map(|i| async move {
                let mut client =
                    C2sClient::connect(port, domain, &account(i), POOL_PASSWORD, "bench")
                        .await
                        .map_err(|e| format!("login {}: {e}", account(i)))?;
                client
                    .send_presence()
                    .await
                    .map_err(|e| format!("presence {}: {e}", account(i)))?;
                Ok::<_, String>((i, client))
            })
            .buffer_unordered(parallel.max(1));
        let mut clients: Vec<Option<C2sClient>> = (0..n).map(|_| None).collect();
        futures::pin_mut!(logins);
        while let Some(result) = logins.next().await {
            let (i, client) = result?;
            clients[i] = Some(client);
        }
        let mut conns = Vec::with_capacity(n);
        for (i, client) in clients.into_iter().enumerate() {
            let client = client.ok_or_else(|| format!("login {} missing", account(i)))?;
            let (tx, rx) = mpsc::unbounded_channel();
            conns.push(Conn { tx });
            tokio::spawn(drive(i, client, rx, observer.clone()));
        }
        Ok(Pool { conns, observer })
    }

    /// Closes every connection (their tasks end).
    pub fn close(self) {
        drop(self.conns);
    }
}

/// A connection's task: writes batches, reads and observes everything.
async fn drive(
    i: usize,
    mut client: C2sClient,
    mut rx: mpsc::UnboundedReceiver<Vec<Element>>,
    observer: Arc<Observer>,
) {
    // The stream gives up on a silent server (tokio-xmpp's read and
    // response timeouts): idle connections ping it, spread over the period.
    let period = Duration::from_secs(40);
    let first =
        tokio::time::Instant::now() + period + Duration::from_millis((i % 1000) as u64 * 20);
    let mut keepalive = tokio::time::interval_at(first, period);
    let mut pings = 0u64;
    loop {
        tokio::select! {
            _ = keepalive.tick() => {
                pings += 1;
                if let Err(e) = client.send(&ping("localhost", &format!("k{pings}"))).await {
                    observer.seen().broken.push(format!("{}: keepalive: {e}", account(i)));
                    return;
                }
            }
            batch = rx.recv() => {
                let Some(batch) = batch else {
                    client.close().await;
                    return;
                };
                let mut result = Ok(());
                for el in &batch {
                    result = client.feed(el).await;
                    if result.is_err() {
                        break;
                    }
                }
                if result.is_ok() {
                    result = client.flush().await;
                }
                if let Err(e) = result {
                    observer.seen().broken.push(format!("{}: write: {e}", account(i)));
                    return;
                }
            }
            el = client.recv() => match el {
                Ok(el) => observer.observe(i, &el),
                Err(e) => {
                    observer.seen().broken.push(format!("{}: {e}", account(i)));
                    return;
                }
            },
        }
    }
}

/// `<presence to='room/nick'><x xmlns='…muc'><history maxstanzas='0'/></x></presence>`.
pub fn join(room: &str, nick: &str) -> Element {
    Element::builder("presence", NS_CLIENT)
        .attr(name("to"), format!("{room}/{nick}"))
        .append(
            Element::builder("x", NS_MUC)
                .append(Element::builder("history", NS_MUC).attr(name("maxstanzas"), "0")),
        )
        .build()
}

/// A groupchat message whose body carries the tag and the send time.
pub fn groupchat(room: &str, tag: u64, micros: u64) -> Element {
    Element::builder("message", NS_CLIENT)
        .attr(name("type"), "groupchat")
        .attr(name("to"), room)
        .append(Element::builder("body", NS_CLIENT).append(format!("m{tag} {micros}")))
        .build()
}
