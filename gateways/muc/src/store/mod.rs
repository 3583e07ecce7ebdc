//! Room storage: what survives a restart.
//!
//! The room engine keeps every room's state in memory and writes each
//! change through a [`RoomStore`] before it announces it (the result IQ or
//! the broadcast leaves only after [`RoomStore::apply`] returned). Only
//! persistent rooms are stored.
//!
//! Rooms' message archives (XEP-0313) are behind [`ArchiveStore`], in the
//! same database; [`MucStore`] is both traits, for `Arc<dyn MucStore>`.
//!
//! Two implementations of both:
//! - [`sqlite::SqliteStore`], the default: one SQLite file in WAL mode,
//!   `synchronous = FULL`, schema under versioned migrations; concurrent
//!   writes of different rooms are committed together (one fsync), reads
//!   use their own connection;
//! - [`memory::MemoryStore`], a map in memory with the same semantics, for
//!   unit tests (the engine's and users').
//!
//! Names are compared as bytes (SQLite's `BINARY` collation, Rust's `str`
//! order), so both implementations list rooms in the same order.

pub mod archive;
mod archive_memory;
mod archive_sqlite;
pub mod memory;
mod migrations;
pub mod sqlite;
mod writer;

pub use archive::{ArchiveError, ArchiveStore, MucStore};
pub use migrations::FutureSchema;

/// A room as stored (persistent rooms only). `name` is the room's localpart (nodeprepped).
#[derive(Debug, Clone, PartialEq)]
pub struct RoomRecord {
    /// The room's localpart (nodeprepped), its key.
    pub name: String,
    /// The room configuration as JSON (the engine's RoomConfig, serde_json).
    pub config: String,
    /// Whether the room is listed publicly (a copy of the config's flag, so listings need no JSON parse).
    pub public: bool,
    /// The current subject, if one was set.
    pub subject: Option<SubjectRecord>,
    /// Unix seconds.
    pub created: i64,
}

/// A room's subject and who set it.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectRecord {
    /// The subject text (may be empty: a cleared subject).
    pub text: String,
    /// The nick of the occupant who set it.
    pub nick: String,
    /// Unix seconds.
    pub set_at: i64,
}

/// One bare JID's affiliation with a room, and the nick it registered (XEP-0045 §7.10), if any.
#[derive(Debug, Clone, PartialEq)]
pub struct AffiliationRecord {
    /// The bare JID.
    pub jid: String,
    /// `"owner"`, `"admin"`, `"member"` or `"outcast"`.
    pub affiliation: String,
    /// The reason given when it was granted, if any.
    pub reason: Option<String>,
    /// The registered nick, if any.
    pub nick: Option<String>,
}

/// A stored room with its affiliations.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRoom {
    /// The room.
    pub room: RoomRecord,
    /// Its affiliations, ordered by JID.
    pub affiliations: Vec<AffiliationRecord>,
}

/// One change; [`RoomStore::apply`] commits a batch in one transaction.
///
/// Ops that name a room which is not stored ([`StoreOp::SetAffiliation`],
/// [`StoreOp::SetSubject`]) fail with [`UnknownRoom`] and the whole batch
/// is left unapplied; [`StoreOp::DeleteRoom`] and
/// [`StoreOp::RemoveAffiliation`] of something absent do nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreOp {
    /// Insert or replace config/public/subject/created (keeps affiliations
    /// and the archive).
    PutRoom(RoomRecord),
    /// Delete a room with its affiliations and its archive.
    DeleteRoom {
        /// The room's name.
        name: String,
    },
    /// Insert or replace by (room, jid).
    SetAffiliation {
        /// The room's name.
        room: String,
        /// The affiliation.
        record: AffiliationRecord,
    },
    /// Remove one JID's affiliation (it becomes `none`).
    RemoveAffiliation {
        /// The room's name.
        room: String,
        /// The bare JID.
        jid: String,
    },
    /// Set or clear the subject.
    SetSubject {
        /// The room's name.
        room: String,
        /// The new subject.
        subject: Option<SubjectRecord>,
    },
}

/// Any storage failure. Typed failures the engine may act on can be
/// recognised with `downcast_ref` ([`UnknownRoom`]).
pub type StoreError = Box<dyn std::error::Error + Send + Sync>;

/// An op named a room that is not stored; nothing of its batch was applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("room {0:?} is not stored")]
pub struct UnknownRoom(pub String);

/// Persistent rooms and their affiliations.
#[async_trait::async_trait]
pub trait RoomStore: Send + Sync + 'static {
    /// The room and its affiliations, if stored.
    async fn load_room(&self, name: &str) -> Result<Option<StoredRoom>, StoreError>;
    /// Commits every op in one transaction, durably, before returning.
    async fn apply(&self, ops: Vec<StoreOp>) -> Result<(), StoreError>;
    /// Persistent rooms, for disco#items paging: names after `after` (exclusive, by name order), at most `limit`, public ones only when `public_only`.
    async fn list_rooms(
        &self,
        public_only: bool,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RoomRecord>, StoreError>;
    /// How many rooms [`RoomStore::list_rooms`] would list without paging.
    async fn count_rooms(&self, public_only: bool) -> Result<usize, StoreError>;
}

/// The affiliation names the store accepts.
pub const AFFILIATIONS: [&str; 4] = ["owner", "admin", "member", "outcast"];

/// An affiliation that is not one of [`AFFILIATIONS`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a storable affiliation (owner, admin, member or outcast)")]
pub struct BadAffiliation(pub String);

/// Checks what both stores refuse before writing anything.
fn check_op(op: &StoreOp) -> Result<(), StoreError> {
    if let StoreOp::SetAffiliation { record, .. } = op
        && !AFFILIATIONS.contains(&record.affiliation.as_str())
    {
        return Err(BadAffiliation(record.affiliation.clone()).into());
    }
    Ok(())
}

#[cfg(test)]
mod archive_tests;
#[cfg(test)]
mod tests;
