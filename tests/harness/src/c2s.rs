//! A minimal, fast XMPP client (c2s) in Rust, for loopback benchmarks.
//!
//! Plain TCP to 127.0.0.1 (no TLS: the harness's Prosody allows unencrypted
//! `PLAIN`), SASL PLAIN, stream restart, resource binding; then raw
//! [`Element`]s in and out, with many requests in flight
//! ([`C2sClient::pipeline`]).
//!
//! Every stanza is a raw [`Element`] in `jabber:client`: xmpp-parsers'
//! typed stanzas serialise in `jabber:component:accept` in this workspace
//! (its `component` feature is on).
//!
//! ```no_run
//! # async fn demo(port: u16) -> Result<(), satellite_harness::c2s::C2sError> {
//! use satellite_harness::c2s::{C2sClient, ping};
//! let mut client = C2sClient::connect(port, "localhost", "bench", "pw", "r").await?;
//! let reply = client
//!     .request(&ping("localhost", "p1"), std::time::Duration::from_secs(5))
//!     .await?;
//! assert_eq!(reply.attr("type"), Some("result"));
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use futures::{FutureExt as _, SinkExt, StreamExt as _};
use tokio::io::BufStream;
use tokio::net::TcpStream;
use tokio_xmpp::xmlstream::{
    self, ReadError, RecvFeaturesError, StreamHeader, Timeouts, XmlStream,
};
use xmpp_parsers::minidom::Element;
use xmpp_parsers::minidom::rxml::NcName;

/// The client namespace: every stanza of a c2s stream.
pub const NS_CLIENT: &str = "jabber:client";
/// SASL (RFC 6120).
pub const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
/// Resource binding (RFC 6120).
pub const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
/// XMPP Ping (XEP-0199).
pub const NS_PING: &str = "urn:xmpp:ping";

/// The XML stream of a client connection: any element can be read.
pub type ClientStream = XmlStream<BufStream<TcpStream>, Element>;

/// Why a [`C2sClient`] operation failed.
#[derive(Debug)]
pub enum C2sError {
    /// TCP connect, read or write failed.
    Io(io::Error),
    /// Reading the stream features failed (or the server sent a stream error).
    Features(RecvFeaturesError),
    /// Reading an element failed (parse error, stream closed, ...).
    Read(ReadError),
    /// The server answered something unexpected.
    Protocol(String),
    /// Nothing arrived in time.
    Timeout(String),
}

impl fmt::Display for C2sError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            C2sError::Io(e) => write!(f, "i/o error: {e}"),
            C2sError::Features(e) => write!(f, "stream features: {e}"),
            C2sError::Read(e) => write!(f, "read: {e}"),
            C2sError::Protocol(e) => write!(f, "protocol: {e}"),
            C2sError::Timeout(e) => write!(f, "timeout: {e}"),
        }
    }
}

impl std::error::Error for C2sError {}

impl From<io::Error> for C2sError {
    fn from(e: io::Error) -> Self {
        C2sError::Io(e)
    }
}

impl From<RecvFeaturesError> for C2sError {
    fn from(e: RecvFeaturesError) -> Self {
        C2sError::Features(e)
    }
}

/// A logged-in, bound client connection.
pub struct C2sClient {
    stream: ClientStream,
    jid: String,
}

/// How long each negotiation step may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

impl C2sClient {
    /// Connects to 127.0.0.1:`port`, opens a stream to `domain`,
    /// authenticates `user`@`domain` with SASL PLAIN (no TLS), restarts the
    /// stream and binds `resource`. Sends no presence (see
    /// [`send_presence`](Self::send_presence)).
    pub async fn connect(
        port: u16,
        domain: &str,
        user: &str,
        password: &str,
        resource: &str,
    ) -> Result<C2sClient, C2sError> {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
        tcp.set_nodelay(true)?;
        let header = || StreamHeader {
            from: None,
            to: Some(domain.to_owned().into()),
            id: None,
        };
        let pending = step(
            "stream header",
            xmlstream::initiate_stream(BufStream::new(tcp), NS_CLIENT, header(), timeouts()),
        )
        .await??;
        let (features, mut stream) =
            step("stream features", pending.recv_features::<Element>()).await??;
        if !features.sasl_mechanisms.contains("PLAIN") {
            return Err(C2sError::Protocol(format!(
                "the server offers no SASL PLAIN (offers {:?})",
                features.sasl_mechanisms
            )));
        }

        let mut initial = Vec::with_capacity(user.len() + password.len() + 2);
        initial.push(0);
        initial.extend_from_slice(user.as_bytes());
        initial.push(0);
        initial.extend_from_slice(password.as_bytes());
        let auth = Element::builder("auth", NS_SASL)
            .attr(name("mechanism"), "PLAIN")
            .append(base64(&initial))
            .build();
        stream.send(&auth).await?;
        let outcome = step("SASL outcome", recv_from(&mut stream)).await??;
        if !outcome.is("success", NS_SASL) {
            return Err(C2sError::Protocol(format!(
                "SASL PLAIN for {user}@{domain} failed: {}",
                String::from(&outcome)
            )));
        }

        let pending = step(
            "stream header after SASL",
            stream.initiate_reset().send_header(header()),
        )
        .await??;
        let (features, mut stream) = step(
            "stream features after SASL",
            pending.recv_features::<Element>(),
        )
        .await??;
        if !features.can_bind() {
            return Err(C2sError::Protocol(
                "the server offers no resource binding".into(),
            ));
        }
        let bind = Element::builder("iq", NS_CLIENT)
            .attr(name("type"), "set")
            .attr(name("id"), "bind-1")
            .append(
                Element::builder("bind", NS_BIND)
                    .append(Element::builder("resource", NS_BIND).append(resource)),
            )
            .build();
        stream.send(&bind).await?;
        let jid = loop {
            let el = step("bind result", recv_from(&mut stream)).await??;
            if el.attr("id") != Some("bind-1") {
                continue;
            }
            let jid = el
                .get_child("bind", NS_BIND)
                .and_then(|b| b.get_child("jid", NS_BIND))
                .map(Element::text);
            match (el.attr("type"), jid) {
                (Some("result"), Some(jid)) => break jid,
                _ => {
                    return Err(C2sError::Protocol(format!(
                        "resource binding failed: {}",
                        String::from(&el)
                    )));
                }
            }
        };
        Ok(C2sClient { stream, jid })
    }

    /// The full JID the server bound.
    pub fn jid(&self) -> &str {
        &self.jid
    }

    /// Sends initial presence (`<presence/>`).
    pub async fn send_presence(&mut self) -> Result<(), C2sError> {
        self.send(&Element::builder("presence", NS_CLIENT).build())
            .await
    }

    /// Queues an element for sending; call [`flush`](Self::flush) to write
    /// everything queued.
    pub async fn feed(&mut self, el: &Element) -> Result<(), C2sError> {
        Ok(self.stream.feed(el).await?)
    }

    /// Writes every queued element to the socket.
    pub async fn flush(&mut self) -> Result<(), C2sError> {
        Ok(SinkExt::<&Element>::flush(&mut self.stream).await?)
    }

    /// Sends one element now.
    pub async fn send(&mut self, el: &Element) -> Result<(), C2sError> {
        Ok(self.stream.send(el).await?)
    }

    /// Reads the next element (stanza or nonza).
    pub async fn recv(&mut self) -> Result<Element, C2sError> {
        recv_from(&mut self.stream).await
    }

    /// The next element if it can be read without waiting (already received
    /// and buffered), else `None`.
    pub fn recv_ready(&mut self) -> Option<Result<Element, C2sError>> {
        recv_from(&mut self.stream).now_or_never()
    }

    /// Sends `el` and returns the first element that comes back with the
    /// same `id` (others are dropped).
    pub async fn request(&mut self, el: &Element, timeout: Duration) -> Result<Element, C2sError> {
        let id = el.attr("id").unwrap_or_default().to_owned();
        self.send(el).await?;
        let wait = async {
            loop {
                let reply = self.recv().await?;
                if reply.attr("id") == Some(id.as_str()) {
                    return Ok(reply);
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| C2sError::Timeout(format!("no reply to id {id:?} within {timeout:?}")))?
    }

    /// Keeps `in_flight` requests outstanding for `duration`: sends
    /// `in_flight` requests made by `make(n)` (n = 0, 1, …; each must carry
    /// a unique `id`), and for every reply (an element with the id of an
    /// outstanding request) sends the next one, until `duration` is over.
    /// Then waits for the outstanding replies, which are not counted.
    ///
    /// Replies of type `error` count as errors, not round trips. Elements
    /// that match no outstanding request are ignored. Fails if nothing comes
    /// back for `stall_timeout`.
    pub async fn pipeline(
        &mut self,
        in_flight: usize,
        duration: Duration,
        stall_timeout: Duration,
        mut make: impl FnMut(u64) -> Element,
    ) -> Result<PipelineStats, C2sError> {
        let mut outstanding: HashMap<String, Instant> = HashMap::with_capacity(in_flight * 2);
        let mut stats = PipelineStats {
            duration,
            ..PipelineStats::default()
        };
        let mut next = 0u64;
        let start = Instant::now();
        let deadline = start + duration;
        for _ in 0..in_flight.max(1) {
            self.issue(&mut make, &mut next, &mut outstanding).await?;
        }
        self.flush().await?;
        while !outstanding.is_empty() {
            let el = match tokio::time::timeout(stall_timeout, self.recv()).await {
                Ok(el) => el?,
                Err(_) => {
                    return Err(C2sError::Timeout(format!(
                        "{} requests unanswered for {stall_timeout:?}",
                        outstanding.len()
                    )));
                }
            };
            let mut batch = Some(el);
            // Handle everything already received, then write all the new
            // requests with one flush.
            while let Some(el) = batch.take() {
                let now = Instant::now();
                let sent = el.attr("id").and_then(|id| outstanding.remove(id));
                if let Some(sent) = sent
                    && now <= deadline
                {
                    if el.attr("type") == Some("error") {
                        stats.errors += 1;
                        if stats.first_error.is_none() {
                            stats.first_error = Some(String::from(&el));
                        }
                    } else {
                        stats.completed += 1;
                        stats.latencies.push(now - sent);
                    }
                    self.issue(&mut make, &mut next, &mut outstanding).await?;
                }
                batch = self.recv_ready().transpose()?;
            }
            self.flush().await?;
        }
        Ok(stats)
    }

    async fn issue(
        &mut self,
        make: &mut impl FnMut(u64) -> Element,
        next: &mut u64,
        outstanding: &mut HashMap<String, Instant>,
    ) -> Result<(), C2sError> {
        let el = make(*next);
        *next += 1;
        let id = el
            .attr("id")
            .ok_or_else(|| C2sError::Protocol("pipeline requests need an id".into()))?
            .to_owned();
        outstanding.insert(id, Instant::now());
        self.feed(&el).await
    }

    /// Closes the stream (`</stream:stream>`) and waits briefly for the
    /// server to close its side.
    pub async fn close(mut self) {
        let _ = self.stream.shutdown().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(_)) = self.stream.next().await {}
        })
        .await;
    }
}

/// What [`C2sClient::pipeline`] measured.
#[derive(Debug, Clone, Default)]
pub struct PipelineStats {
    /// The measured time.
    pub duration: Duration,
    /// Round trips completed (non-error replies) within `duration`.
    pub completed: u64,
    /// Error replies within `duration`.
    pub errors: u64,
    /// The first error reply, serialised.
    pub first_error: Option<String>,
    /// Round-trip time of every completed request.
    pub latencies: Vec<Duration>,
}

impl PipelineStats {
    /// Completed round trips per second.
    pub fn rate(&self) -> f64 {
        self.completed as f64 / self.duration.as_secs_f64()
    }

    /// The `p`-quantile (0.0..=1.0) of the round-trip times.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let rank = (p.clamp(0.0, 1.0) * (sorted.len() - 1) as f64).round() as usize;
        sorted[rank]
    }
}

/// `<iq type='get' to=… id=…><ping xmlns='urn:xmpp:ping'/></iq>`.
pub fn ping(to: &str, id: &str) -> Element {
    Element::builder("iq", NS_CLIENT)
        .attr(name("type"), "get")
        .attr(name("to"), to)
        .attr(name("id"), id)
        .append(Element::builder("ping", NS_PING))
        .build()
}

/// `<message type='chat' to=… id=…><body>…</body></message>`.
pub fn chat(to: &str, id: &str, body: &str) -> Element {
    Element::builder("message", NS_CLIENT)
        .attr(name("type"), "chat")
        .attr(name("to"), to)
        .attr(name("id"), id)
        .append(Element::builder("body", NS_CLIENT).append(body))
        .build()
}

/// An attribute name for minidom's builder.
pub fn name(name: &'static str) -> NcName {
    NcName::try_from(name).expect("attribute names used here are valid NCNames")
}

/// Tight-ish timeouts: on loopback the server answers at once, and
/// benchmarks do not leave the stream idle for minutes.
fn timeouts() -> Timeouts {
    Timeouts {
        read_timeout: Duration::from_secs(120),
        response_timeout: Duration::from_secs(60),
    }
}

/// Awaits `fut` for at most [`STEP_TIMEOUT`].
async fn step<T>(what: &str, fut: impl Future<Output = T>) -> Result<T, C2sError> {
    tokio::time::timeout(STEP_TIMEOUT, fut)
        .await
        .map_err(|_| C2sError::Timeout(format!("{what}: nothing within {STEP_TIMEOUT:?}")))
}

/// Reads the next element, skipping soft timeouts.
async fn recv_from(stream: &mut ClientStream) -> Result<Element, C2sError> {
    loop {
        match stream.next().await {
            Some(Ok(el)) => return Ok(el),
            Some(Err(ReadError::SoftTimeout)) => continue,
            Some(Err(e)) => return Err(C2sError::Read(e)),
            None => {
                return Err(C2sError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                )));
            }
        }
    }
}

/// Standard base64 with padding (for the SASL initial response).
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
        assert_eq!(base64(b"\0bench\0pw"), "AGJlbmNoAHB3");
    }

    #[test]
    fn client_stanzas_are_in_jabber_client() {
        let p = ping("localhost", "p1");
        assert!(p.is("iq", NS_CLIENT));
        assert!(p.has_child("ping", NS_PING));
        let m = chat("echo.localhost", "m1", "hi");
        assert!(m.is("message", NS_CLIENT));
        assert_eq!(
            m.get_child("body", NS_CLIENT).map(Element::text),
            Some("hi".into())
        );
    }
}
