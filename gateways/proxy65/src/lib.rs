//! # satellite-proxy65
//!
//! A XEP-0065 SOCKS5 Bytestreams proxy as an external component: clients
//! that cannot reach each other directly send files through it. The
//! `satellite` binary runs it for `service = "proxy65"`.
//!
//! ```toml
//! [[component]]
//! service = "proxy65"
//! jid = "proxy.example.org"
//! server = "127.0.0.1:5347"
//! secret_file = "proxy.secret"
//!
//! [component.settings]
//! listen = "0.0.0.0:7777"
//! [[component.settings.streamhost]]
//! host = "203.0.113.7"      # what clients dial (NAT: the public address)
//! ```
//!
//! See [`config`] for every setting and its default.
//!
//! ## How a transfer goes
//!
//! 1. The requester asks the proxy for its addresses (`iq get <query/>`)
//!    and offers them to the target.
//! 2. Both connect over SOCKS5 with DST.ADDR = hex SHA-1(SID ‖ requester
//!    full JID ‖ target full JID); whichever comes first waits for the
//!    other (both must arrive within `activation_timeout`).
//! 3. The requester activates (`iq set <query sid><activate>target</activate></query>`);
//!    the hash is computed from the activation's `from`, so only the
//!    requester can activate, and only once.
//! 4. The proxy relays both directions; a half-close is passed on, so the
//!    last bytes always arrive. The bytestream ends when both sides are
//!    done, on an error, after `idle_timeout` without a byte, or on
//!    shutdown.
//!
//! ## Error replies
//!
//! XEP-0065 §6.3.1 (streamhost query) and §6.3.5 (activation) define the
//! conditions; where the XEP is silent, ejabberd's mod_proxy65 decided.
//!
//! | failure | condition (type) | XEP-0065 | Prosody 0.12 | ejabberd |
//! |---|---|---|---|---|
//! | requester not in the ACL (query or activation) | `forbidden` (auth) | forbidden | forbidden | forbidden |
//! | no connection with this hash (unknown sid, target, or not the requester — a third party's hash never matches) | `item-not-found` (cancel) | item-not-found | item-not-found (modify) | item-not-found |
//! | only one side connected | `not-allowed` (cancel) | not-allowed | not-allowed | item-not-found |
//! | already activated | `conflict` (cancel) | — | (re-links) | conflict |
//! | requester at `max_connections_per_jid` | `resource-constraint` (wait) | — | — | resource-constraint |
//! | `max_sessions` bytestreams active | `resource-constraint` (wait) | — | — | — |
//! | `sid` or `<activate/>` missing, bad payload | `bad-request` (modify) | — | bad-request | bad-request |
//! | `<activate/>` not a JID | `jid-malformed` (modify) | — | jid-malformed | jid-malformed |
//!
//! On the SOCKS5 side a refused connection gets a reply, never silence:
//! `0x01` (general failure) over `max_connections` or
//! `max_connections_per_address` and for a third connection with one hash; `0x02` for an address that is not
//! a hash, `0x07` for a command other than CONNECT, `0x08` for an address
//! type other than a domain name; `0xFF` as the method when "no
//! authentication" is not offered.
//!
//! ## Limits
//!
//! `max_connections` (SOCKS5 connections in total),
//! `max_connections_per_address` (connections not yet activated per IPv4
//! address or IPv6 /64: before activation a connection is anonymous, and
//! one host must not hold every connection for `activation_timeout`),
//! `max_sessions` (active bytestreams; taken at activation, so pairs with
//! made-up hashes hold none), `max_connections_per_jid` (active
//! bytestreams per requester — a SOCKS5 connection carries no JID until
//! activation, so this is where a JID can be counted), `activation_timeout`,
//! `idle_timeout`, and token buckets `session_rate` / `total_rate`.
//! The admins' `stats` ad-hoc command reports connections, sessions, bytes
//! and rejections by reason.
//!
//! ## Layout
//!
//! - [`payload`]: the XEP-0065 `<query/>` and its children (xso derives).
//! - [`config`]: the `[component.settings]` table.
//! - [`plugin`]: the XMPP side (disco, query, activation, stats).
//! - [`socks5`]: the RFC 1928 handshake (hand-written on tokio).
//! - [`registry`]: pairing connections by hash; activation.
//! - [`relay`]: both directions of a bytestream, shaping, idle timeout.
//! - `splice` (Linux): zero-copy relaying with splice(2).
//! - [`limits`]: caps, token buckets, metrics.
//! - [`server`]: the listener and each connection's life.

#![forbid(unsafe_code)]

pub mod config;
pub mod limits;
pub mod payload;
pub mod plugin;
pub mod preflight;
pub mod registry;
pub mod relay;
pub mod server;
pub mod socks5;
#[cfg(target_os = "linux")]
pub mod splice;

pub use config::Settings;
pub use plugin::Proxy65;
