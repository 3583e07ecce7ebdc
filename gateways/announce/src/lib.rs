//! # satellite announce
//!
//! Announcements to every user of an XMPP server, from an external
//! component, on any server (`service = "announce"`).
//!
//! - Who is online comes from the server's privileged presence stream
//!   (XEP-0356: Prosody's mod_privilege, ejabberd's mod_privilege); without
//!   privileges, from the users who subscribed to the service's JID.
//! - An admin messages the service's JID (or its resources `/online`,
//!   `/all`, `/motd`, `/motd/delete`), or runs the XEP-0133 commands
//!   `announce`, `set-motd`, `edit-motd`, `delete-motd`.
//! - Announcements go out from the server's JID when it grants
//!   `message = "outgoing"`, paced, and a delivery report goes back.
//! - The MOTD and the users seen live in SQLite.
//!
//! ## Layout
//!
//! - [`settings`]: the `[component.settings]` table.
//! - [`plugin`]: the service and its framework glue.
//! - [`online`]: who is online.
//! - [`fanout`]: paced delivery and the report.
//! - [`store`]: the SQLite database.
//! - [`commands`]: the ad-hoc commands.

#![forbid(unsafe_code)]

pub mod commands;
pub mod fanout;
pub mod online;
pub mod plugin;
pub mod settings;
pub mod store;

pub use plugin::{Announce, AnnouncePlugin, Audience};
pub use settings::Settings;
