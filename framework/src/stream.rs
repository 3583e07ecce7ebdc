//! The XML stream of a component link.
//!
//! This is the one module that touches `tokio_xmpp` internals, so an upgrade
//! of that fast-moving crate changes this file only. Everything else sees
//! [`XmlLink`]: a stream of [`Element`]s and a way to write them.
//!
//! Stanzas are read as plain [`Element`]s, not as typed stanzas: a stanza
//! that is well-formed XML but not a valid `Iq`/`Message`/`Presence` must not
//! end the stream (it gets an error reply instead), so typing happens later,
//! in the router, where a failure is just one more stanza to answer.

use std::io;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufStream, BufWriter, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_xmpp::xmlstream::{self, ReadError, StreamHeader, Timeouts, XmlStream};
use xmpp_parsers::minidom::Element;

/// Namespace of the component stream (XEP-0114).
pub const NS_COMPONENT: &str = "jabber:component:accept";
/// Namespace of stream-level elements.
pub const NS_STREAM: &str = "http://etherx.jabber.org/streams";
/// Namespace of stream error conditions.
const NS_STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";

/// A TCP connection whose write half can be taken away once the stream
/// is authenticated: from then on the XML parser only reads, and the
/// link's writer writes stanzas that their senders already serialized.
pub(crate) struct Transport {
    read: OwnedReadHalf,
    write: Mutex<Option<OwnedWriteHalf>>,
}

impl Transport {
    fn new(tcp: TcpStream) -> Self {
        let (read, write) = tcp.into_split();
        Self {
            read,
            write: Mutex::new(Some(write)),
        }
    }

    fn take_writer(&self) -> Option<OwnedWriteHalf> {
        self.write
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    fn with_writer<R>(
        &self,
        f: impl FnOnce(Pin<&mut OwnedWriteHalf>) -> Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        let mut guard = self
            .write
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match guard.as_mut() {
            Some(w) => f(Pin::new(w)),
            None => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the link's writer owns the write half",
            ))),
        }
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.with_writer(|w| w.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with_writer(|w| w.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with_writer(|w| w.poll_shutdown(cx))
    }
}

type Inner = XmlStream<BufStream<Transport>, Element>;

/// What reading the link produced.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A top-level element (stanza or nonza).
    Element(Element),
    /// The peer was silent for the soft read timeout.
    Silent,
    /// The peer closed the stream, or the connection broke.
    Closed(Option<io::Error>),
}

/// Why a link could not be established.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The TCP connection or the stream header failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The server refused the handshake (wrong secret, unknown component).
    #[error("the server refused the handshake: {0}")]
    Refused(String),
    /// The server did not answer the handshake in time.
    #[error("the server did not answer the stream header or handshake within {0:?}")]
    Timeout(Duration),
}

/// An established, authenticated component stream.
pub(crate) struct XmlLink {
    inner: Inner,
}

impl XmlLink {
    /// Connects to `server` (host:port), opens a stream to `jid` and performs
    /// the XEP-0114 handshake with `secret`.
    pub(crate) async fn connect(
        server: &str,
        jid: &str,
        secret: &str,
        read_timeout: Duration,
        handshake_timeout: Duration,
    ) -> Result<Self, HandshakeError> {
        tokio::time::timeout(
            handshake_timeout,
            Self::connect_inner(server, jid, secret, read_timeout),
        )
        .await
        .map_err(|_| HandshakeError::Timeout(handshake_timeout))?
    }

    async fn connect_inner(
        server: &str,
        jid: &str,
        secret: &str,
        read_timeout: Duration,
    ) -> Result<Self, HandshakeError> {
        let tcp = TcpStream::connect(server).await?;
        tcp.set_nodelay(true)?;
        let io = BufStream::new(Transport::new(tcp));
        let timeouts = Timeouts {
            read_timeout,
            response_timeout: read_timeout,
        };
        let header = StreamHeader {
            from: None,
            to: Some(jid.into()),
            id: None,
        };
        let mut pending = xmlstream::initiate_stream(io, NS_COMPONENT, header, timeouts).await?;
        let stream_id = pending.take_header().id.ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "the server sent no stream id")
        })?;
        let mut inner: Inner = pending.skip_features();
        let digest = crate::handshake_digest(&stream_id, secret);
        let handshake = Element::builder("handshake", NS_COMPONENT)
            .append(digest)
            .build();
        inner.send(&handshake).await?;
        loop {
            match inner.next().await {
                Some(Ok(el)) if el.is("handshake", NS_COMPONENT) => return Ok(Self { inner }),
                Some(Ok(el)) if el.is("error", NS_STREAM) => {
                    return Err(HandshakeError::Refused(stream_error_text(&el)));
                }
                // Some servers announce (empty) stream features first.
                Some(Ok(el)) if el.is("features", NS_STREAM) => continue,
                Some(Ok(el)) => {
                    return Err(HandshakeError::Refused(format!(
                        "unexpected <{}/> instead of <handshake/>",
                        el.name()
                    )));
                }
                Some(Err(ReadError::SoftTimeout)) => continue,
                Some(Err(ReadError::HardError(e))) => return Err(e.into()),
                Some(Err(ReadError::ParseError(e))) => {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e).into());
                }
                Some(Err(ReadError::StreamFooterReceived)) | None => {
                    return Err(HandshakeError::Refused(
                        "the server closed the stream".to_owned(),
                    ));
                }
            }
        }
    }

    /// Splits the authenticated stream into its reading side (the XML
    /// parser) and its writing side (raw bytes).
    pub(crate) fn split(self) -> (LinkReader, LinkWriter) {
        let write = self.inner.get_stream().get_ref().take_writer();
        let writer = LinkWriter {
            // The handshake was flushed before it was answered, so nothing
            // written through the XML stream is pending here.
            out: write.map(|w| BufWriter::with_capacity(WRITE_BUFFER, w)),
        };
        (LinkReader { inner: self.inner }, writer)
    }
}

/// Bytes buffered by the writer before a write to the socket.
const WRITE_BUFFER: usize = 64 * 1024;

/// The reading side of a link.
pub(crate) struct LinkReader {
    inner: Inner,
}

impl LinkReader {
    /// Reads the next element. Cancel-safe: partial parser state lives in
    /// the stream, so this can sit in a `select!`.
    pub(crate) async fn read(&mut self) -> Incoming {
        loop {
            return match self.inner.next().await {
                Some(Ok(el)) => Incoming::Element(el),
                Some(Err(ReadError::SoftTimeout)) => Incoming::Silent,
                // An element-level parse error does not break the stream;
                // with `Element` as item type it cannot occur for
                // well-formed XML, but skip it rather than drop the link.
                Some(Err(ReadError::ParseError(e))) => {
                    tracing::warn!(error = %e, "skipped an element that could not be read");
                    continue;
                }
                Some(Err(ReadError::HardError(e))) => Incoming::Closed(Some(e)),
                Some(Err(ReadError::StreamFooterReceived)) | None => Incoming::Closed(None),
            };
        }
    }
}

/// The writing side of a link: serialized stanzas in, bytes out.
pub(crate) struct LinkWriter {
    out: Option<BufWriter<OwnedWriteHalf>>,
}

impl LinkWriter {
    fn out(&mut self) -> io::Result<&mut BufWriter<OwnedWriteHalf>> {
        self.out
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::BrokenPipe, "the link has no writer"))
    }

    /// Buffers serialized stanzas; call [`Self::flush`] to send.
    pub(crate) async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out()?.write_all(bytes).await
    }

    /// Writes out everything buffered.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        self.out()?.flush().await
    }

    /// Writes a single whitespace keepalive (RFC 6120 §4.6.1).
    pub(crate) async fn keepalive(&mut self) -> io::Result<()> {
        self.write(b" ").await?;
        self.flush().await
    }

    /// Sends `</stream:stream>` and closes the connection.
    pub(crate) async fn close(mut self) -> io::Result<()> {
        self.write(b"</stream:stream>").await?;
        let out = self.out()?;
        out.flush().await?;
        out.shutdown().await
    }
}

/// The condition (and text, if any) of a `<stream:error/>`.
pub(crate) fn stream_error_text(el: &Element) -> String {
    let condition = el
        .children()
        .find(|c| c.ns() == NS_STREAM_ERRORS && c.name() != "text")
        .map(|c| c.name().to_owned())
        .unwrap_or_else(|| "undefined-condition".to_owned());
    match el.get_child("text", NS_STREAM_ERRORS).map(Element::text) {
        Some(text) if !text.is_empty() => format!("{condition} ({text})"),
        _ => condition,
    }
}

/// The accepting (server) side of a component stream, for the test kit.
#[cfg(feature = "testing")]
pub(crate) mod accept {
    use super::*;
    use xmpp_parsers::stream_features::StreamFeatures;

    /// A server-side stream after a successful handshake.
    pub(crate) struct ServerLink {
        pub(crate) inner: XmlStream<BufStream<TcpStream>, Element>,
    }

    /// Accepts a component stream for `jid`, checking the handshake with
    /// `secret`. Returns `Ok(None)` if the component was refused.
    pub(crate) async fn accept(
        tcp: TcpStream,
        jid: &str,
        secret: &str,
        stream_id: &str,
    ) -> io::Result<Option<ServerLink>> {
        let timeouts = Timeouts::tight();
        let mut accepted =
            xmlstream::accept_stream(BufStream::new(tcp), NS_COMPONENT, timeouts).await?;
        let to = accepted.take_header().to.map(|t| t.into_owned());
        let header = StreamHeader {
            from: Some(jid.into()),
            to: None,
            id: Some(stream_id.into()),
        };
        let pending = accepted.send_header(header).await?;
        // The component protocol has no stream features; tokio-xmpp's
        // responder always writes them, and the link skips an empty set.
        let mut inner: XmlStream<_, Element> =
            pending.send_features(&StreamFeatures::default()).await?;
        let handshake = loop {
            match inner.next().await {
                Some(Ok(el)) => break el,
                Some(Err(ReadError::SoftTimeout)) => continue,
                _ => return Ok(None),
            }
        };
        let ok = to.as_deref() == Some(jid)
            && handshake.is("handshake", NS_COMPONENT)
            && crate::verify_handshake(stream_id, secret, &handshake.text());
        if !ok {
            let error = Element::builder("error", NS_STREAM)
                .append(Element::builder("not-authorized", NS_STREAM_ERRORS))
                .build();
            inner.send(&error).await?;
            SinkExt::<&Element>::close(&mut inner).await?;
            return Ok(None);
        }
        inner
            .send(&Element::builder("handshake", NS_COMPONENT).build())
            .await?;
        Ok(Some(ServerLink { inner }))
    }

    impl ServerLink {
        pub(crate) async fn send(&mut self, el: &Element) -> io::Result<()> {
            self.inner.send(el).await
        }

        pub(crate) async fn read(&mut self) -> Option<Element> {
            loop {
                match self.inner.next().await {
                    Some(Ok(el)) => return Some(el),
                    Some(Err(ReadError::SoftTimeout)) => continue,
                    Some(Err(ReadError::ParseError(_))) => continue,
                    _ => return None,
                }
            }
        }

        pub(crate) async fn close(mut self) -> io::Result<()> {
            SinkExt::<&Element>::close(&mut self.inner).await
        }
    }
}

/// An attribute name for minidom's builder and setters.
pub(crate) fn attr_name(name: &'static str) -> xmpp_parsers::minidom::rxml::NcName {
    xmpp_parsers::minidom::rxml::NcName::try_from(name).expect("attribute names here are valid")
}

/// Sets an unnamespaced attribute.
pub(crate) fn set_attr(el: &mut Element, name: &'static str, value: &str) {
    el.set_attr(
        xmpp_parsers::minidom::rxml::Namespace::NONE,
        attr_name(name),
        value,
    );
}
