//! # satellite-muc
//!
//! XEP-0045 Multi-User Chat as an external component: rooms, occupants,
//! roles and affiliations, persistent rooms in SQLite. The `satellite`
//! binary runs it for `service = "muc"`.

#![forbid(unsafe_code)]

pub mod affiliation;
pub mod history;
pub mod permissions;
pub mod role;
pub mod room;
pub mod service;
pub mod settings;
pub mod stanza;
pub mod store;

pub use affiliation::Affiliation;
pub use role::Role;
pub use room::{Env, Outcome, Room, RoomConfig};
pub use settings::Settings;
