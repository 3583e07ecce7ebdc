//! # satellite
//!
//! A framework for XMPP external components (XEP-0114). A gateway
//! implements [`Plugin`]; the framework owns the rest: the link to the
//! server (handshake, keepalive, ping, reconnect with backoff, a bounded
//! outbound queue that survives reconnects), routing with error replies,
//! per-address ordering, service discovery, ping, version, ad-hoc commands,
//! configuration and graceful shutdown.
//!
//! ```no_run
//! use satellite::{async_trait, Component, Config, Context, Flow, Plugin};
//! use satellite::xmpp::message::Message;
//!
//! struct Echo;
//!
//! #[async_trait]
//! impl Plugin for Echo {
//!     fn name(&self) -> &'static str { "echo" }
//!     async fn handle_message(&self, cx: &Context, m: &Message) -> Flow {
//!         let mut reply = m.clone();
//!         (reply.from, reply.to) = (m.to.clone(), m.from.clone());
//!         let _ = cx.send(reply).await;
//!         Flow::Handled
//!     }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::load("echo.toml")?;
//! let component = Component::builder(config.components[0].clone()).plugin(Echo).build()?;
//! component.run(satellite::CancellationToken::new()).await;
//! # Ok(()) }
//! ```
//!
//! ## Layout
//!
//! Public modules:
//!
//! - [`plugin`]: the [`Plugin`] trait, IQ routes, disco declarations.
//! - [`context`]: [`Context`], what handlers use to send and request.
//! - [`component`]: [`Component`] and its builder.
//! - [`config`]: the TOML config and its errors.
//! - [`acl`]: who may use a service (`allow = [...]`).
//! - [`adhoc`]: XEP-0050 ad-hoc commands with XEP-0004 forms.
//! - [`privilege`]: XEP-0356 privileged entity (the server's grants, sending
//!   as the server, roster and IQs on behalf of users).
//! - [`serve`]: running a config as a service: `serve::main` for a gateway
//!   binary, logging, signals, reload, systemd notifications.
//! - [`metrics`]: Prometheus metrics (the `metrics` crate's facade) and the
//!   framework's series.
//! - [`testing`] (feature `testing`): an in-process mock server.
//!
//! Internal modules:
//!
//! - `stream`: the XML stream (the one module that touches tokio-xmpp).
//! - `handshake`: the XEP-0114 handshake digest.
//! - `link`: connect, pump, ping and keepalive, reconnect, shutdown.
//! - `router`: IQ routes, error replies, stanzas that do not parse.
//! - `registry`: the components of this process by server and JID (a
//!   stanza a link receives for another of them is passed on).
//! - `dispatch`: per-address ordering (lanes).
//! - `disco`, `ping`, `version`: XEP-0030/0128, XEP-0199, XEP-0092.
//! - `backoff`: the reconnect backoff ([`Backoff`]).
//! - `error`: [`HandlerError`], [`SendError`], [`RequestError`].

#![forbid(unsafe_code)]

pub mod acl;
pub mod adhoc;
mod backoff;
pub mod component;
pub mod config;
pub mod context;
mod disco;
mod dispatch;
mod error;
mod handshake;
mod link;
pub mod metrics;
mod ping;
pub mod plugin;
pub mod privilege;
mod registry;
mod router;
pub mod serve;
mod stream;
#[cfg(feature = "testing")]
pub mod testing;
mod version;

pub use async_trait::async_trait;
pub use backoff::Backoff;
pub use component::{Component, ComponentBuilder, LinkStatus};
pub use config::{
    ComponentConfig, Config, ConfigError, LogConfig, LogFormat, MetricsConfig, Secret,
};
pub use context::Context;
pub use disco::DiscoPlugin;
pub use error::{BoxError, HandlerError, RequestError, SendError};
pub use handshake::{handshake_digest, verify_handshake};
pub use ping::Ping;
pub use plugin::{
    Disco, DiscoItems, Flow, IqRequest, IqResult, IqRoute, IqType, ItemsQuery, Plugin, Scope,
};
pub use router::RouteConflict;
#[doc(hidden)]
pub use router::fuzzing;
pub use stream::HandshakeError;
pub use tokio_util::sync::CancellationToken;
pub use version::Version;
/// The xmpp-parsers crate, for stanza and payload types.
pub use xmpp_parsers as xmpp;
/// JIDs.
pub use xmpp_parsers::jid;
/// XML elements.
pub use xmpp_parsers::minidom::{self, Element};
/// The xso crate, for deriving payload types.
pub use xso;
