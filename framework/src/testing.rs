//! An in-process mock XMPP server for unit-testing plugins (feature
//! `testing`).
//!
//! The mock speaks the real component protocol on `127.0.0.1:0` (stream
//! header, XEP-0114 handshake checked in constant time), so a plugin runs
//! exactly as it would against Prosody, in milliseconds.
//!
//! ```
//! use satellite::testing::{self, stanza};
//! use satellite::xmpp::stanza_error::DefinedCondition;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (mut server, component) = testing::spawn(|b| b).await;
//! let reply = server
//!     .iq(stanza("<iq type='get' id='1' to='svc.test' from='u@test/r'><nope xmlns='urn:x'/></iq>"))
//!     .await;
//! satellite::assert_stanza_error!(reply, DefinedCondition::ServiceUnavailable);
//! component.stop().await;
//! # }
//! ```

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use xmpp_parsers::jid::BareJid;
use xmpp_parsers::minidom::Element;

use crate::component::{Component, ComponentBuilder};
use crate::config::{ComponentConfig, Secret};
use crate::stream::NS_COMPONENT;
use crate::stream::accept::{ServerLink, accept};

/// The JID [`spawn`] gives the component.
pub const JID: &str = "svc.test";
/// The secret [`spawn`] uses.
pub const SECRET: &str = "test-secret";
/// How long the mock waits for a stanza before failing the test.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// A listening mock server.
pub struct MockServer {
    listener: TcpListener,
    jid: String,
    secret: String,
    accepted: u64,
}

impl MockServer {
    /// Listens on `127.0.0.1:0` for the component `jid` with `secret`.
    pub async fn bind(jid: &str, secret: &str) -> io::Result<Self> {
        Ok(Self {
            listener: TcpListener::bind("127.0.0.1:0").await?,
            jid: jid.to_owned(),
            secret: secret.to_owned(),
            accepted: 0,
        })
    }

    /// Like [`MockServer::bind`], on a given address (a server coming
    /// back on its old port).
    pub async fn bind_at(addr: SocketAddr, jid: &str, secret: &str) -> io::Result<Self> {
        Ok(Self {
            listener: TcpListener::bind(addr).await?,
            jid: jid.to_owned(),
            secret: secret.to_owned(),
            accepted: 0,
        })
    }

    /// The address to put in the component's `server`.
    pub fn addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Accepts the next connection and checks its handshake. `Ok(None)`
    /// means the component was refused (wrong JID or secret) and was sent
    /// `<not-authorized/>`.
    pub async fn accept(&mut self) -> io::Result<Option<MockLink>> {
        let (tcp, _) = self.listener.accept().await?;
        self.accepted += 1;
        let stream_id = format!("mock{}{:08x}", self.accepted, rand::random::<u32>());
        Ok(accept(tcp, &self.jid, &self.secret, &stream_id)
            .await?
            .map(|link| MockLink {
                link,
                buffered: VecDeque::new(),
                next_id: 0,
            }))
    }
}

/// One accepted component connection, seen from the server side.
pub struct MockLink {
    link: ServerLink,
    buffered: VecDeque<Element>,
    next_id: u64,
}

impl MockLink {
    /// Sends a stanza to the component.
    pub async fn send(&mut self, stanza: impl Into<Element>) {
        let el = stanza.into();
        self.link.send(&el).await.expect("mock server: send failed");
    }

    /// The next element the component sent (fails the test after
    /// [`TIMEOUT`]).
    pub async fn recv(&mut self) -> Element {
        if let Some(el) = self.buffered.pop_front() {
            return el;
        }
        self.read().await
    }

    /// The next element for which `pred` holds; others are kept for later
    /// `recv` calls.
    pub async fn recv_matching(&mut self, pred: impl Fn(&Element) -> bool) -> Element {
        if let Some(pos) = self.buffered.iter().position(&pred)
            && let Some(el) = self.buffered.remove(pos)
        {
            return el;
        }
        loop {
            let el = self.read().await;
            if pred(&el) {
                return el;
            }
            self.buffered.push_back(el);
        }
    }

    /// Sends an iq (an id is set if it has none) and returns the reply to
    /// it.
    pub async fn iq(&mut self, iq: impl Into<Element>) -> Element {
        let mut el = iq.into();
        let id = match el.attr("id") {
            Some(id) => id.to_owned(),
            None => {
                self.next_id += 1;
                let id = format!("mock-{}", self.next_id);
                crate::stream::set_attr(&mut el, "id", id.as_str());
                id
            }
        };
        self.send(el).await;
        self.recv_matching(|r| {
            r.name() == "iq"
                && r.attr("id") == Some(id.as_str())
                && matches!(r.attr("type"), Some("result" | "error"))
        })
        .await
    }

    /// Whether the component closes the stream (or the connection) within
    /// [`TIMEOUT`], discarding stanzas until then.
    pub async fn closed_by_component(&mut self) -> bool {
        tokio::time::timeout(TIMEOUT, async { while self.link.read().await.is_some() {} })
            .await
            .is_ok()
    }

    /// Closes the stream from the server side.
    pub async fn close(self) {
        let _ = self.link.close().await;
    }

    async fn read(&mut self) -> Element {
        match tokio::time::timeout(TIMEOUT, self.link.read()).await {
            Ok(Some(el)) => el,
            Ok(None) => panic!("mock server: the component closed the stream"),
            Err(_) => panic!(
                "mock server: nothing received within {TIMEOUT:?} (buffered: {:?})",
                self.buffered
            ),
        }
    }
}

/// A component running against a mock server.
pub struct Running {
    token: CancellationToken,
    handle: Option<JoinHandle<()>>,
}

impl Running {
    /// Stops the component gracefully and waits for it.
    pub async fn stop(mut self) {
        self.token.cancel();
        if let Some(handle) = self.handle.take() {
            let _ = handle.await;
        }
    }

    /// The component's shutdown token.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// A component config for tests: [`JID`], [`SECRET`], the given server
/// address, and short timeouts.
pub fn config(server: SocketAddr) -> ComponentConfig {
    let jid: BareJid = BareJid::new(JID).expect("JID is valid");
    let mut config = ComponentConfig::new(jid, server.to_string(), Secret::new(SECRET));
    config.shutdown_timeout = Duration::from_secs(2);
    config.request_timeout = Duration::from_secs(2);
    config
}

/// Starts a mock server and a component built by `build` (which gets a
/// builder for [`config`]), and returns once the handshake is done.
pub async fn spawn(
    build: impl FnOnce(ComponentBuilder) -> ComponentBuilder,
) -> (MockLink, Running) {
    spawn_with(|c| c, build).await
}

/// Like [`spawn`], with a chance to change the config first.
pub async fn spawn_with(
    configure: impl FnOnce(ComponentConfig) -> ComponentConfig,
    build: impl FnOnce(ComponentBuilder) -> ComponentBuilder,
) -> (MockLink, Running) {
    let mut server = MockServer::bind(JID, SECRET)
        .await
        .expect("mock server: bind");
    let config = configure(config(server.addr()));
    let component = build(Component::builder(config))
        .build()
        .expect("component builds");
    let token = CancellationToken::new();
    let handle = tokio::spawn(component.run(token.clone()));
    let link = tokio::time::timeout(TIMEOUT, server.accept())
        .await
        .expect("mock server: the component did not connect")
        .expect("mock server: accept")
        .expect("mock server: handshake refused");
    // Keep the listener alive for reconnects the test may provoke.
    tokio::spawn(async move {
        let _keep = server;
        std::future::pending::<()>().await;
    });
    (
        link,
        Running {
            token,
            handle: Some(handle),
        },
    )
}

/// Parses a stanza written in a test; a missing `xmlns` defaults to the
/// component namespace.
pub fn stanza(xml: &str) -> Element {
    let xml = xml.trim();
    let with_ns = if xml.contains("xmlns=") && xml.find("xmlns=") < xml.find('>') {
        xml.to_owned()
    } else {
        let end = xml
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .unwrap_or(xml.len());
        format!("{} xmlns='{NS_COMPONENT}'{}", &xml[..end], &xml[end..])
    };
    with_ns.parse().expect("test stanza is well-formed XML")
}

/// The defined condition of an error stanza, e.g. `"service-unavailable"`.
pub fn error_condition(reply: &Element) -> Option<String> {
    let error = reply.children().find(|c| c.name() == "error")?;
    error
        .children()
        .find(|c| c.ns() == "urn:ietf:params:xml:ns:xmpp-stanzas" && c.name() != "text")
        .map(|c| c.name().to_owned())
}

/// Asserts that a stanza is an error with the given
/// `xmpp_parsers::stanza_error::DefinedCondition`.
#[macro_export]
macro_rules! assert_stanza_error {
    ($reply:expr, $condition:expr) => {{
        let reply: &$crate::Element = &$reply;
        let expected = $crate::Element::from($condition);
        assert_eq!(reply.attr("type"), Some("error"), "not an error: {reply:?}");
        assert_eq!(
            $crate::testing::error_condition(reply).as_deref(),
            Some(expected.name()),
            "wrong condition in {reply:?}"
        );
    }};
}

/// A plugin that keeps the component's [`Context`](crate::Context) once it
/// is connected, so a test can send and make requests as the component.
#[derive(Clone, Default)]
pub struct ContextProbe(std::sync::Arc<std::sync::Mutex<Option<crate::Context>>>);

impl ContextProbe {
    /// The context, waiting up to [`TIMEOUT`] for the first connection.
    pub async fn context(&self) -> crate::Context {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let cx = self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            if let Some(cx) = cx {
                return cx;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the component did not connect within {TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[async_trait::async_trait]
impl crate::Plugin for ContextProbe {
    fn name(&self) -> &'static str {
        "context-probe"
    }

    async fn on_connected(&self, cx: &crate::Context) -> Result<(), crate::BoxError> {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(cx.clone());
        Ok(())
    }
}
