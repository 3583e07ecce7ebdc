//! # satellite-upload
//!
//! XEP-0363 HTTP File Upload as an external component, with its own HTTP
//! server: clients ask `upload.example.org` for a slot over XMPP, PUT the
//! file over HTTP, and share the GET URL. The `satellite` binary runs it
//! for `service = "upload"`.
//!
//! ```toml
//! [[component]]
//! service = "upload"
//! jid = "upload.example.org"
//! server = "127.0.0.1:5347"
//! secret_file = "upload.secret"
//!
//! [component.settings]
//! listen = "127.0.0.1:8363"
//! public_url = "https://upload.example.org/"   # behind nginx/Caddy
//! max_file_size = 104857600
//! ```
//!
//! See [`config`] for every setting and its default.
//!
//! ## How an upload goes
//!
//! 1. The client sends `<request filename size content-type/>`; the
//!    service checks who asks ([`config::Settings::allow`]), the size, the
//!    type and the quotas, records the slot in the catalog (that is when
//!    quotas are charged), and answers with a GET URL and a PUT URL whose
//!    `token` (also given as an `Authorization: Bearer` header) is an HMAC
//!    over the path, size, type and expiry ([`token`]).
//! 2. The client PUTs exactly `size` bytes before the token expires. The
//!    body streams to a partial file, which becomes the file only when
//!    every byte arrived ([`storage`]); a second PUT gets 409.
//! 3. Anyone with the GET URL downloads it, with ranges and caching, until
//!    the sweep deletes it `expire_after` later.
//!
//! ## Error replies (XEP-0363 §5, worded as Prosody's mod_http_file_share)
//!
//! | refusal | condition (type) | extra |
//! |---|---|---|
//! | requester not allowed | `forbidden` (auth) | |
//! | no/invalid file name, size not a non-negative integer, bad type | `bad-request` (modify) | |
//! | larger than `max_file_size` | `not-acceptable` (modify) | `<file-too-large><max-file-size/>` |
//! | type not in `allowed_types` | `not-acceptable` (modify) | |
//! | daily, user or global quota used up, or `max_open_slots` slots not yet uploaded | `resource-constraint` (wait) | `<retry stamp/>` when known |
//! | disk below `min_free_space` | `resource-constraint` (wait) | |
//!
//! The HTTP statuses of a PUT are listed in `http::put`'s docs; GET and
//! HEAD follow RFC 9110 (ranges, conditional requests).
//!
//! ## Layout
//!
//! - [`config`]: the `[component.settings]` table.
//! - [`request`]: the slot request and the error payloads (xso derives).
//! - [`slot`]: policy, catalog record, signed URLs.
//! - [`token`]: HMAC slot tokens; mod_http_upload_external tokens.
//! - [`catalog`]: slots and files in SQLite; quotas.
//! - [`storage`]: the store trait and the local file system store;
//!   `fs_io`: its writer thread and reads.
//! - [`http`]: routes, safety headers, CORS, GET/HEAD, PUT, listener.
//! - [`sweep`]: expiry and cleanup.
//! - [`service`]: the state both sides share; [`metrics`]: Prometheus.
//! - [`plugin`]: the XMPP side; [`commands`]: the admins' `stats` and
//!   `delete` ad-hoc commands.

#![forbid(unsafe_code)]

pub mod catalog;
pub mod commands;
pub mod config;
mod fs_io;
pub mod http;
pub mod metrics;
pub mod mime;
pub mod plugin;
pub mod preflight;
pub mod request;
pub mod service;
pub mod slot;
pub mod storage;
pub mod sweep;
pub mod token;

pub use config::Settings;
pub use plugin::Upload;
