//! [`SqliteStore`]: rooms (and their archive) in one SQLite file.
//!
//! Settings, and why:
//! - WAL, so readers (listings, archive queries) never wait for a writer;
//! - `synchronous = FULL`: in WAL mode `NORMAL` may lose the last commits
//!   on a power cut, and a change is announced to occupants as soon as
//!   [`RoomStore::apply`] returns, so a commit must be on disk by then;
//! - foreign keys on (affiliations and archive rows go with their room);
//! - a busy timeout, for a second process (a backup, `sqlite3`) holding
//!   the file for a moment.
//!
//! SQLite calls block. Writes go to one thread that owns the writing
//! connection and commits concurrent writes together (group commit, see
//! `writer.rs`); reads run on tokio's blocking pool with a second
//! connection behind a mutex, as the upload service's catalog does, so
//! that a MAM query never waits for an fsync. (An in-memory database has
//! one connection for both.)

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension as _, params};

use super::archive::ArchiveError;
use super::writer::Writer;
use super::{
    AffiliationRecord, RoomRecord, RoomStore, StoreError, StoreOp, StoredRoom, SubjectRecord,
    UnknownRoom, check_op, migrations,
};

/// How long a call waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The SQLite store; cheap to clone (clones share the connections).
#[derive(Clone)]
pub struct SqliteStore {
    reader: Arc<Mutex<Connection>>,
    pub(crate) writer: Writer,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its
    /// schema up to date. Refuses a file from a newer satellite
    /// ([`super::FutureSchema`]).
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let opening =
            |e: rusqlite::Error| format!("opening the room database {}: {e}", path.display());
        let mut conn = Connection::open(path).map_err(opening)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "room database is not in WAL mode");
        }
        setup(&conn)?;
        migrations::migrate(&mut conn)?;
        let reader = Connection::open(path).map_err(opening)?;
        setup(&reader)?;
        reader.pragma_update(None, "query_only", true)?;
        Self::with(Arc::new(Mutex::new(reader)), Arc::new(Mutex::new(conn)))
    }

    /// A private database in memory, gone when the last clone is dropped.
    pub fn open_in_memory() -> Result<SqliteStore, StoreError> {
        let mut conn = Connection::open_in_memory()?;
        setup(&conn)?;
        migrations::migrate(&mut conn)?;
        let conn = Arc::new(Mutex::new(conn));
        Self::with(Arc::clone(&conn), conn)
    }

    fn with(
        reader: Arc<Mutex<Connection>>,
        writer: Arc<Mutex<Connection>>,
    ) -> Result<SqliteStore, StoreError> {
        Ok(SqliteStore {
            reader,
            writer: Writer::start(writer)?,
        })
    }

    /// Runs `f` on a blocking thread with the reading connection.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.reader);
        tokio::task::spawn_blocking(move || {
            // A panic inside `f` leaves no half-done transaction (rusqlite
            // rolls back on drop), so a poisoned lock is still usable.
            let mut conn = conn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&mut conn)
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    /// The schema version of the open database.
    pub async fn schema_version(&self) -> Result<u32, StoreError> {
        self.run(|conn| Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?))
            .await
    }
}

/// Settings of both connections.
fn setup(conn: &Connection) -> Result<(), rusqlite::Error> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)
}

/// The store's error for a failed write.
pub(crate) fn store_error(e: ArchiveError) -> StoreError {
    match e {
        ArchiveError::Store(e) => e,
        other => Box::new(other),
    }
}

const ROOM_COLUMNS: &str =
    "name, config, public, subject_text, subject_nick, subject_set_at, created";

fn room_of(r: &rusqlite::Row<'_>) -> Result<RoomRecord, rusqlite::Error> {
    let text: Option<String> = r.get(3)?;
    let subject = match text {
        Some(text) => Some(SubjectRecord {
            text,
            nick: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
            set_at: r.get::<_, Option<i64>>(5)?.unwrap_or_default(),
        }),
        None => None,
    };
    Ok(RoomRecord {
        name: r.get(0)?,
        config: r.get(1)?,
        public: r.get(2)?,
        subject,
        created: r.get(6)?,
    })
}

/// The integer key of a stored room.
pub(crate) fn room_id(conn: &Connection, name: &str) -> Result<Option<i64>, rusqlite::Error> {
    conn.prepare_cached("SELECT id FROM rooms WHERE name = ?1")?
        .query_row(params![name], |r| r.get(0))
        .optional()
}

fn stored_room_id(tx: &Connection, name: &str) -> Result<i64, StoreError> {
    room_id(tx, name)?.ok_or_else(|| UnknownRoom(name.to_owned()).into())
}

fn apply_op(tx: &Connection, op: &StoreOp) -> Result<(), StoreError> {
    match op {
        StoreOp::PutRoom(room) => {
            let (text, nick, set_at) = subject_columns(room.subject.as_ref());
            tx.prepare_cached(
                "INSERT INTO rooms (name, config, public, subject_text, subject_nick, subject_set_at, created)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (name) DO UPDATE SET config = excluded.config, public = excluded.public,
                    subject_text = excluded.subject_text, subject_nick = excluded.subject_nick,
                    subject_set_at = excluded.subject_set_at, created = excluded.created",
            )?
            .execute(params![room.name, room.config, room.public, text, nick, set_at, room.created])?;
        }
        StoreOp::DeleteRoom { name } => {
            tx.prepare_cached("DELETE FROM rooms WHERE name = ?1")?
                .execute(params![name])?;
            // The archive goes too (its messages by cascade).
            tx.prepare_cached("DELETE FROM archive_rooms WHERE name = ?1")?
                .execute(params![name])?;
        }
        StoreOp::SetAffiliation { room, record } => {
            let id = stored_room_id(tx, room)?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO affiliations (room_id, jid, affiliation, reason, nick)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                id,
                record.jid,
                record.affiliation,
                record.reason,
                record.nick
            ])?;
        }
        StoreOp::RemoveAffiliation { room, jid } => {
            tx.prepare_cached(
                "DELETE FROM affiliations WHERE jid = ?2
                 AND room_id = (SELECT id FROM rooms WHERE name = ?1)",
            )?
            .execute(params![room, jid])?;
        }
        StoreOp::SetSubject { room, subject } => {
            let (text, nick, set_at) = subject_columns(subject.as_ref());
            let n = tx
                .prepare_cached(
                    "UPDATE rooms SET subject_text = ?2, subject_nick = ?3, subject_set_at = ?4
                     WHERE name = ?1",
                )?
                .execute(params![room, text, nick, set_at])?;
            if n == 0 {
                return Err(UnknownRoom(room.clone()).into());
            }
        }
    }
    Ok(())
}

fn subject_columns(s: Option<&SubjectRecord>) -> (Option<&str>, Option<&str>, Option<i64>) {
    match s {
        Some(s) => (Some(&s.text), Some(&s.nick), Some(s.set_at)),
        None => (None, None, None),
    }
}

#[async_trait::async_trait]
impl RoomStore for SqliteStore {
    async fn load_room(&self, name: &str) -> Result<Option<StoredRoom>, StoreError> {
        let name = name.to_owned();
        self.run(move |conn| {
            let Some(room) = conn
                .prepare_cached(&format!("SELECT {ROOM_COLUMNS} FROM rooms WHERE name = ?1"))?
                .query_row(params![name], room_of)
                .optional()?
            else {
                return Ok(None);
            };
            let mut stmt = conn.prepare_cached(
                "SELECT a.jid, a.affiliation, a.reason, a.nick FROM affiliations a
                 JOIN rooms r ON r.id = a.room_id WHERE r.name = ?1 ORDER BY a.jid",
            )?;
            let affiliations = stmt
                .query_map(params![name], |r| {
                    Ok(AffiliationRecord {
                        jid: r.get(0)?,
                        affiliation: r.get(1)?,
                        reason: r.get(2)?,
                        nick: r.get(3)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some(StoredRoom { room, affiliations }))
        })
        .await
    }

    async fn apply(&self, ops: Vec<StoreOp>) -> Result<(), StoreError> {
        ops.iter().try_for_each(check_op)?;
        if ops.is_empty() {
            return Ok(());
        }
        self.writer
            .write(move |conn| {
                for op in &ops {
                    apply_op(conn, op).map_err(ArchiveError::Store)?;
                }
                Ok(0)
            })
            .await
            .map(drop)
            .map_err(store_error)
    }

    async fn list_rooms(
        &self,
        public_only: bool,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RoomRecord>, StoreError> {
        let after = after.map(str::to_owned);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |conn| {
            // Separate statements per case so that each reads one index
            // range: (public, name) for public listings, name otherwise.
            let mut filters = Vec::new();
            if public_only {
                filters.push("public = 1");
            }
            if after.is_some() {
                filters.push("name > ?2");
            }
            let filter = if filters.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", filters.join(" AND "))
            };
            let sql = format!("SELECT {ROOM_COLUMNS} FROM rooms {filter} ORDER BY name LIMIT ?1");
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = match &after {
                Some(after) => stmt.query_map(params![limit, after], room_of)?,
                None => stmt.query_map(params![limit], room_of)?,
            };
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn count_rooms(&self, public_only: bool) -> Result<usize, StoreError> {
        self.run(move |conn| {
            let sql = if public_only {
                "SELECT COUNT(*) FROM rooms WHERE public = 1"
            } else {
                "SELECT COUNT(*) FROM rooms"
            };
            let n: i64 = conn.query_row(sql, [], |r| r.get(0))?;
            Ok(usize::try_from(n).unwrap_or_default())
        })
        .await
    }
}
