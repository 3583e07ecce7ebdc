//! # satellite-muc
//!
//! XEP-0045 Multi-User Chat as an external component: rooms, occupants,
//! roles and affiliations, persistent rooms in SQLite. The `satellite`
//! binary runs it for `service = "muc"`.

#![forbid(unsafe_code)]

pub mod store;
