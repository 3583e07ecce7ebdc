//! The room archive (XEP-0313 Message Archive Management for rooms):
//! what was said, for MAM queries and for the history sent on join.
//!
//! The engine appends a room's messages through [`ArchiveStore::append`]
//! before it reflects them, so that every stanza-id (XEP-0359) an occupant
//! sees can be queried. A room's archive does not depend on the room being
//! persistent: it lives until [`ArchiveStore::remove_archive`], a
//! [`super::StoreOp::DeleteRoom`] of the room, or retention
//! ([`ArchiveStore::expire`]).
//!
//! Order: messages are ordered by timestamp, and messages with the same
//! timestamp by the order they were appended in. Every page, and the
//! history for a join, is in that (chronological) order unless the query
//! asks for `flip-page`.

/// One archived message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedMessage {
    /// The room's localpart.
    pub room: String,
    /// The archive id: unique within the room, sent to clients as the
    /// XEP-0359 stanza-id and used as the RSM/MAM cursor.
    pub id: String,
    /// When the room received it, unix microseconds.
    pub timestamp: i64,
    /// The sender's nick in the room.
    pub nick: String,
    /// The sender's real bare JID, if known.
    pub real_jid: Option<String>,
    /// The sender's XEP-0421 occupant-id, if the room assigns them.
    pub occupant_id: Option<String>,
    /// The message stanza as XML.
    pub xml: String,
    /// Whether the message was retracted (XEP-0425); `xml` is then the
    /// tombstone the engine gave.
    pub retracted: bool,
}

/// Which page of the matching messages a query wants (XEP-0059 RSM).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Paging {
    /// The oldest messages (no `<after>` nor `<before>`).
    #[default]
    First,
    /// The messages right after this archive id (`<after>`).
    After(String),
    /// The newest messages (an empty `<before/>`).
    Last,
    /// The messages right before this archive id (`<before>`).
    Before(String),
}

impl Paging {
    /// Whether the page is taken from the newest end backwards.
    pub fn is_backward(&self) -> bool {
        matches!(self, Paging::Last | Paging::Before(_))
    }
}

/// A MAM query on one room's archive. Filters combine (all must match).
///
/// ```
/// use satellite_muc::store::archive::{ArchiveQuery, Paging};
/// let q = ArchiveQuery {
///     with: Some("juliet@capulet.example".into()),
///     paging: Paging::Last,
///     ..ArchiveQuery::new(20)
/// };
/// assert_eq!(q.max, 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ArchiveQuery {
    /// Only messages at or after this time (unix µs), the form's `start`.
    pub start: Option<i64>,
    /// Only messages at or before this time (unix µs), the form's `end`.
    pub end: Option<i64>,
    /// Only messages whose sender has this occupant-id or real bare JID.
    pub with: Option<String>,
    /// Only messages after this archive id (`after-id`, exclusive).
    pub after_id: Option<String>,
    /// Only messages before this archive id (`before-id`, exclusive).
    pub before_id: Option<String>,
    /// Only these archive ids (`ids`); empty: no such filter.
    pub ids: Vec<String>,
    /// At most this many messages in the page (RSM `max`; 0 asks for the
    /// count only).
    pub max: usize,
    /// Which page.
    pub paging: Paging,
    /// Return the page newest first (`flip-page`).
    pub flip_page: bool,
}

impl ArchiveQuery {
    /// The first page of everything, at most `max` messages.
    pub fn new(max: usize) -> ArchiveQuery {
        ArchiveQuery {
            max,
            ..ArchiveQuery::default()
        }
    }
}

/// A page of results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivePage {
    /// The messages, oldest first (newest first with `flip_page`).
    pub messages: Vec<ArchivedMessage>,
    /// The archive id of the oldest message of the page (RSM `<first>`,
    /// whatever `flip_page` says, as Prosody does).
    pub first: Option<String>,
    /// The archive id of the newest message of the page (RSM `<last>`).
    pub last: Option<String>,
    /// How many messages match the filters, all pages together (RSM
    /// `<count>`).
    pub count: usize,
    /// No more pages in the direction of paging: nothing newer after a
    /// forward page, nothing older before a backward one (MAM `complete`).
    pub complete: bool,
}

/// The first and the last message of a room's archive (MAM metadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveBounds {
    /// The oldest message's archive id and timestamp (unix µs).
    pub first: (String, i64),
    /// The newest message's archive id and timestamp (unix µs).
    pub last: (String, i64),
}

/// What an archive call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// An archive id named by the query (a cursor, `after-id`,
    /// `before-id`, `ids`) or by a retraction is not in the room's
    /// archive: the `item-not-found` of XEP-0313.
    #[error("no archived message {id:?} in this room")]
    ItemNotFound {
        /// The unknown id.
        id: String,
    },
    /// An appended message reuses an archive id of its room; nothing of
    /// the batch was appended.
    #[error("archive id {id:?} is already used in room {room:?}")]
    DuplicateId {
        /// The room.
        room: String,
        /// The id.
        id: String,
    },
    /// Any other failure of the storage.
    #[error(transparent)]
    Store(super::StoreError),
}

impl From<rusqlite::Error> for ArchiveError {
    fn from(e: rusqlite::Error) -> Self {
        ArchiveError::Store(Box::new(e))
    }
}

impl From<super::StoreError> for ArchiveError {
    fn from(e: super::StoreError) -> Self {
        ArchiveError::Store(e)
    }
}

impl ArchiveError {
    pub(crate) fn not_found(id: &str) -> ArchiveError {
        ArchiveError::ItemNotFound { id: id.to_owned() }
    }
}

/// Assembles a page from its messages in chronological order.
pub(crate) fn page(
    mut messages: Vec<ArchivedMessage>,
    count: usize,
    complete: bool,
    flip_page: bool,
) -> ArchivePage {
    let first = messages.first().map(|m| m.id.clone());
    let last = messages.last().map(|m| m.id.clone());
    if flip_page {
        messages.reverse();
    }
    ArchivePage {
        messages,
        first,
        last,
        count,
        complete,
    }
}

/// Rooms' message archives.
#[async_trait::async_trait]
pub trait ArchiveStore: Send + Sync + 'static {
    /// Appends messages (of any rooms) in one transaction, durably, before
    /// returning; a duplicate id fails the whole batch.
    async fn append(&self, messages: Vec<ArchivedMessage>) -> Result<(), ArchiveError>;

    /// One page of a room's archive. An unknown room has an empty archive
    /// (so its cursors are [`ArchiveError::ItemNotFound`]).
    async fn query(&self, room: &str, query: ArchiveQuery) -> Result<ArchivePage, ArchiveError>;

    /// The oldest and newest messages, `None` for an empty archive.
    async fn bounds(&self, room: &str) -> Result<Option<ArchiveBounds>, ArchiveError>;

    /// The history sent on join: the newest `max` messages at or after
    /// `since` (unix µs) if given, oldest first. Retracted messages are
    /// included (with their tombstones).
    async fn history(
        &self,
        room: &str,
        max: usize,
        since: Option<i64>,
    ) -> Result<Vec<ArchivedMessage>, ArchiveError>;

    /// Replaces a message by `tombstone` (XML) and marks it retracted;
    /// [`ArchiveError::ItemNotFound`] if the room has no such id.
    async fn retract(&self, room: &str, id: &str, tombstone: String) -> Result<(), ArchiveError>;

    /// Deletes the messages of every room older than `cutoff` (unix µs);
    /// returns how many went.
    async fn expire(&self, cutoff: i64) -> Result<usize, ArchiveError>;

    /// Deletes a room's whole archive (a temporary room destroyed; a
    /// persistent room's archive also goes with its `DeleteRoom`).
    async fn remove_archive(&self, room: &str) -> Result<(), ArchiveError>;
}

/// A store of both rooms and archives, for `Arc<dyn MucStore>`.
pub trait MucStore: super::RoomStore + ArchiveStore {}

impl<T: super::RoomStore + ArchiveStore> MucStore for T {}
