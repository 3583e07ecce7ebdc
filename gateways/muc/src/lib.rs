//! # satellite-muc
//!
//! XEP-0045 Multi-User Chat as an external component: rooms, occupants,
//! roles and affiliations, persistent rooms in SQLite. The `satellite`
//! binary runs it for `service = "muc"`.
//!
//! ## Layout
//!
//! - [`room`]: one room as a pure, synchronous state machine: a stanza
//!   and an [`Env`] in, an [`Outcome`] (stanzas in order, store writes,
//!   whether the room ended) out.
//! - [`service`]: the service address: room creation policy, room names,
//!   stanzas for rooms that do not exist, disco#info and the public room
//!   list (XEP-0059 paging).
//! - [`permissions`]: XEP-0045's permission tables, as data.
//! - [`mam`]: XEP-0313 queries on a room's archive (parsing, access,
//!   the result stanzas).
//! - [`affiliation`], [`role`], [`history`], [`settings`], [`stanza`].
//! - [`store`]: what survives a restart (SQLite, or memory for tests).
//! - [`plugin`]: the framework side: [`MucPlugin`] drives each room on
//!   its lane, commits before it sends, hibernates idle rooms.
//!
//! ## Driving a room (one writer per room, stanzas in order)
//!
//! 1. A stanza for `room@service[/nick]`: take the room from memory; else
//!    `store.load_room(name)`, [`Room::from_stored`] and
//!    [`Room::seed_history`] (from `ArchiveStore::history`); else
//!    [`service::absent_room`] (a join creates it: keep the returned room
//!    and pass it the same presence).
//! 2. [`Room::handle_presence`], [`Room::handle_message`],
//!    [`Room::handle_iq`] (get/set) or [`Room::handle_iq_response`]
//!    (result/error IQs to an occupant).
//! 3. Append [`Outcome::archive`] (`ArchiveStore::append`) and commit
//!    [`Outcome::writes`] (`RoomStore::apply`), then send
//!    [`Outcome::stanzas`] in order (an IQ's reply is among them).
//! 4. [`Outcome::room_gone`]: forget the room. [`Room::can_hibernate`]
//!    (persistent, empty) for `hibernate_after`: drop it from memory; it is
//!    loaded again on its next stanza.

#![forbid(unsafe_code)]

pub mod affiliation;
pub mod commands;
pub mod history;
pub mod mam;
pub mod permissions;
pub mod plugin;
pub mod role;
pub mod room;
pub mod service;
pub mod settings;
pub mod stanza;
pub mod store;

pub use affiliation::Affiliation;
pub use plugin::{Muc, MucPlugin};
pub use role::Role;
pub use room::{Env, Outcome, Room, RoomConfig};
pub use settings::Settings;
