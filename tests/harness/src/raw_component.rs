//! A bare-bones XEP-0114 component over a plain TCP stream, independent of the
//! framework: used to check that a server's component listener works, and
//! handy for tests that need a second, hand-driven component.

use std::time::Duration;

use sha1::{Digest as _, Sha1};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A connected, authenticated component stream (raw text in and out).
pub struct RawComponent {
    stream: TcpStream,
    buf: String,
}

impl RawComponent {
    /// Opens a `jabber:component:accept` stream to 127.0.0.1:`port` for `jid`
    /// and does the `<handshake/>`. On failure returns what the server sent.
    pub async fn connect(port: u16, jid: &str, secret: &str) -> Result<RawComponent, String> {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect 127.0.0.1:{port}: {e}"))?;
        let mut c = RawComponent {
            stream,
            buf: String::new(),
        };
        c.send(&format!(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' \
             xmlns:stream='http://etherx.jabber.org/streams' to='{jid}'>"
        ))
        .await;
        let timeout = Duration::from_secs(10);
        let header = c.read_until_header(timeout).await?;
        let id = stream_id(&header).ok_or_else(|| format!("no stream id in {header:?}"))?;
        let digest = Sha1::digest(format!("{id}{secret}").as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        c.send(&format!("<handshake>{hex}</handshake>")).await;
        let reply = c
            .read_until_any(
                &[
                    "<handshake/>",
                    "</stream:stream>",
                    "<handshake></handshake>",
                ],
                timeout,
            )
            .await;
        match reply {
            Ok(text) if text.contains("<handshake") => Ok(c),
            Ok(text) => Err(text),
            Err(e) => Err(e),
        }
    }

    /// Sends raw text.
    pub async fn send(&mut self, xml: &str) {
        self.stream
            .write_all(xml.as_bytes())
            .await
            .expect("RawComponent: write");
    }

    /// Reads until the received text contains `needle`; returns (and consumes)
    /// everything up to and including it. Panics after `timeout`.
    pub async fn read_until(&mut self, needle: &str, timeout: Duration) -> String {
        match self.read_until_any(&[needle], timeout).await {
            Ok(text) => text,
            Err(e) => panic!("RawComponent: waiting for {needle:?}: {e}"),
        }
    }

    async fn read_until_any(
        &mut self,
        needles: &[&str],
        timeout: Duration,
    ) -> Result<String, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let found = needles
                .iter()
                .filter_map(|n| self.buf.find(n).map(|pos| pos + n.len()))
                .min();
            if let Some(end) = found {
                return Ok(self.buf.drain(..end).collect());
            }
            self.fill(deadline).await?;
        }
    }

    /// Reads the stream header (up to the `>` closing `<stream:stream ...`).
    async fn read_until_header(&mut self, timeout: Duration) -> Result<String, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(start) = self.buf.find("<stream:stream")
                && let Some(len) = self.buf[start..].find('>')
            {
                return Ok(self.buf.drain(..start + len + 1).collect());
            }
            self.fill(deadline).await?;
        }
    }

    /// Reads one chunk into the buffer.
    async fn fill(&mut self, deadline: tokio::time::Instant) -> Result<(), String> {
        let mut chunk = [0u8; 8192];
        match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
            Err(_) => Err(format!("timeout; received so far: {:?}", self.buf)),
            Ok(Ok(0)) => Err(format!("connection closed; received: {:?}", self.buf)),
            Ok(Ok(n)) => {
                self.buf.push_str(&String::from_utf8_lossy(&chunk[..n]));
                Ok(())
            }
            Ok(Err(e)) => Err(format!("read error {e}; received: {:?}", self.buf)),
        }
    }
}

/// The id attribute of a stream header.
fn stream_id(header: &str) -> Option<String> {
    let start = header.find("<stream:stream")?;
    let tag = &header[start..];
    for quote in ['\'', '"'] {
        let pat = format!(" id={quote}");
        if let Some(pos) = tag.find(&pat) {
            let rest = &tag[pos + pat.len()..];
            return rest.find(quote).map(|end| rest[..end].to_string());
        }
    }
    None
}

/// A bare-bones component's stream of elements: the benchmarks' ceilings
/// (no framework, one XML stream).
pub type ElementStream = tokio_xmpp::xmlstream::XmlStream<
    tokio::io::BufStream<TcpStream>,
    xmpp_parsers::minidom::Element,
>;

/// Opens a `jabber:component:accept` stream to 127.0.0.1:`port` for `jid`,
/// does the `<handshake/>`, and returns the stream of elements (what the
/// bare-bones components of the benchmarks answer on).
pub async fn element_stream(port: u16, jid: &str, secret: &str) -> Result<ElementStream, String> {
    use futures::{SinkExt as _, StreamExt as _};
    use tokio_xmpp::xmlstream::{self, StreamHeader, Timeouts};
    use xmpp_parsers::minidom::Element;

    const NS_COMPONENT: &str = "jabber:component:accept";
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect 127.0.0.1:{port}: {e}"))?;
    tcp.set_nodelay(true)
        .map_err(|e| format!("TCP_NODELAY: {e}"))?;
    let pending = xmlstream::initiate_stream(
        tokio::io::BufStream::new(tcp),
        NS_COMPONENT,
        StreamHeader {
            from: None,
            to: Some(jid.to_owned().into()),
            id: None,
        },
        Timeouts::default(),
    )
    .await
    .map_err(|e| format!("stream header: {e}"))?;
    let id = pending
        .header()
        .id
        .map(|id| id.into_owned())
        .ok_or("the server sent no stream id")?;
    let mut stream = pending.skip_features::<Element>();
    let digest = Sha1::digest(format!("{id}{secret}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    stream
        .send(
            &Element::builder("handshake", NS_COMPONENT)
                .append(hex)
                .build(),
        )
        .await
        .map_err(|e| format!("send handshake: {e}"))?;
    match stream.next().await {
        Some(Ok(el)) if el.name() == "handshake" => Ok(stream),
        other => Err(format!("handshake refused: {other:?}")),
    }
}
