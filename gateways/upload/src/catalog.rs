//! The catalog: every slot issued and every file stored, in SQLite
//! (`catalog.sqlite3` in the storage directory), so quotas and expiry
//! survive restarts and instances sharing the storage share the books.
//!
//! A slot is recorded when it is issued (that is when quotas are charged,
//! as Prosody's mod_http_file_share does, so unused slots cannot be
//! hoarded past the daily quota) and marked complete when its PUT
//! finishes. Quotas, with `now` in unix seconds:
//! - daily: bytes of slots the user was issued in the last 24 h;
//! - user and global: bytes stored, plus slots still open for a PUT.
//!
//! Calls block (SQLite); async callers go through [`Catalog::run`].

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension as _, params};

use crate::request::{Quota, Refusal};

/// A day, the window of the daily quota.
pub const DAY: i64 = 86_400;

/// One row: a slot, and once uploaded, a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The slot id (the first URL path segment).
    pub id: String,
    /// Bare JID of the requester; `None` for uploads through an XMPP
    /// server's own slots (mod_http_upload_external).
    pub owner: Option<String>,
    /// File name (the second URL path segment).
    pub filename: String,
    /// Bytes.
    pub size: u64,
    /// MIME type, if known.
    pub content_type: Option<String>,
    /// When the slot was issued (unix s).
    pub created: i64,
    /// Until when a PUT may start (unix s).
    pub slot_expires: i64,
    /// When the upload completed (unix s), if it has.
    pub completed: Option<i64>,
}

/// The quota settings a reservation is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Bytes of slots per user in any 24 h.
    pub daily: u64,
    /// Bytes stored per user, if capped.
    pub user: Option<u64>,
    /// Bytes stored in all, if capped.
    pub global: Option<u64>,
    /// Seconds a file lives, if it expires (for `<retry/>` stamps).
    pub expire_after: Option<i64>,
}

/// Stored files and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Completed files.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// What the admins' `stats` command shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Completed files and their bytes.
    pub usage: Usage,
    /// Slots issued whose PUT window is still open.
    pub open_slots: u64,
    /// Distinct uploaders with a stored file.
    pub owners: u64,
}

/// The catalog handle; cheap to clone.
#[derive(Clone)]
pub struct Catalog {
    conn: Arc<Mutex<Connection>>,
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS files (
    id TEXT PRIMARY KEY,
    owner TEXT,
    filename TEXT NOT NULL,
    size INTEGER NOT NULL,
    content_type TEXT,
    created INTEGER NOT NULL,
    slot_expires INTEGER NOT NULL,
    completed INTEGER
);
CREATE INDEX IF NOT EXISTS files_owner_created ON files (owner, created);
CREATE INDEX IF NOT EXISTS files_completed ON files (completed);
";

/// Bytes a row holds against the stored quotas at `now`: complete, or a
/// slot still open for its PUT.
const HOLDS: &str = "(completed IS NOT NULL OR slot_expires >= ?1)";

impl Catalog {
    /// Opens (creating if needed) the catalog at `path`.
    pub fn open(path: &Path) -> Result<Self, rusqlite::Error> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on a blocking thread with the connection.
    pub async fn run<T, F>(&self, f: F) -> Result<T, rusqlite::Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
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

    /// Checks the quotas for a new slot and records it, atomically (two
    /// requests cannot both take the last bytes).
    pub fn reserve(
        conn: &mut Connection,
        entry: &Entry,
        quotas: &Quotas,
        now: i64,
    ) -> Result<Result<(), Refusal>, rusqlite::Error> {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let owner = entry.owner.as_deref().unwrap_or_default();
        let daily = sizes(
            &tx,
            "SELECT created + ?3, size FROM files WHERE owner = ?2 AND created > ?1 - ?3 ORDER BY created",
            params![now, owner, DAY],
        )?;
        if let Some(refusal) = over(Quota::Daily, &daily, quotas.daily, entry.size, Some(0)) {
            return Ok(Err(refusal));
        }
        // Stored files leave at completion + expire_after; open slots when
        // their PUT window closes.
        let expiry = quotas.expire_after.unwrap_or(i64::MAX / 4);
        let held = format!(
            "SELECT CASE WHEN completed IS NULL THEN slot_expires ELSE completed + ?3 END AS leaves, size
             FROM files WHERE {HOLDS} AND (?2 = '*' OR owner = ?2) ORDER BY leaves"
        );
        if let Some(cap) = quotas.user {
            let rows = sizes(&tx, &held, params![now, owner, expiry])?;
            if let Some(refusal) = over(Quota::User, &rows, cap, entry.size, quotas.expire_after) {
                return Ok(Err(refusal));
            }
        }
        if let Some(cap) = quotas.global {
            let rows = sizes(&tx, &held, params![now, "*", expiry])?;
            if let Some(refusal) = over(Quota::Global, &rows, cap, entry.size, quotas.expire_after)
            {
                return Ok(Err(refusal));
            }
        }
        insert(&tx, "INSERT", entry)?;
        tx.commit()?;
        Ok(Ok(()))
    }

    /// Marks an upload complete at `now`; records `entry` as a completed
    /// file if no slot row exists (an upload through a server's own slots,
    /// or a row swept meanwhile).
    pub fn complete(conn: &mut Connection, entry: &Entry, now: i64) -> Result<(), rusqlite::Error> {
        let updated = conn.execute(
            "UPDATE files SET completed = ?2, content_type = COALESCE(content_type, ?3)
             WHERE id = ?1 AND completed IS NULL",
            params![entry.id, now, entry.content_type],
        )?;
        if updated == 0 {
            let done = Entry {
                completed: Some(now),
                ..entry.clone()
            };
            insert(conn, "INSERT OR IGNORE", &done)?;
        }
        Ok(())
    }

    /// The row of a slot id.
    pub fn get(conn: &mut Connection, id: &str) -> Result<Option<Entry>, rusqlite::Error> {
        conn.query_row(
            &format!("SELECT {COLUMNS} FROM files WHERE id = ?1"),
            params![id],
            entry_of,
        )
        .optional()
    }

    /// Ids of files past `expire_after`, and of slots never used whose
    /// PUT window closed more than a day ago (their bytes no longer count
    /// for any quota).
    pub fn expired(
        conn: &mut Connection,
        now: i64,
        expire_after: Option<i64>,
    ) -> Result<(Vec<String>, Vec<String>), rusqlite::Error> {
        let ids = |sql: &str, cutoff: i64| -> Result<Vec<String>, rusqlite::Error> {
            let mut stmt = conn.prepare(sql)?;
            let rows = stmt.query_map(params![cutoff], |r| r.get(0))?;
            rows.collect()
        };
        let files = match expire_after {
            Some(after) => ids(
                "SELECT id FROM files WHERE completed IS NOT NULL AND completed < ?1",
                now - after,
            )?,
            None => Vec::new(),
        };
        let unused = ids(
            "SELECT id FROM files WHERE completed IS NULL AND slot_expires < ?1",
            now - DAY,
        )?;
        Ok((files, unused))
    }

    /// Slots whose PUT window closed without a completion being recorded.
    pub fn unfinished(conn: &mut Connection, now: i64) -> Result<Vec<Entry>, rusqlite::Error> {
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM files WHERE completed IS NULL AND slot_expires < ?1 LIMIT 10000"
        ))?;
        let rows = stmt.query_map(params![now], entry_of)?;
        rows.collect()
    }

    /// Deletes rows.
    pub fn remove(conn: &mut Connection, ids: &[String]) -> Result<(), rusqlite::Error> {
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare("DELETE FROM files WHERE id = ?1")?;
            for id in ids {
                stmt.execute(params![id])?;
            }
        }
        tx.commit()
    }

    /// Completed files and their bytes.
    pub fn usage(conn: &mut Connection) -> Result<Usage, rusqlite::Error> {
        conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM files WHERE completed IS NOT NULL",
            [],
            |r| {
                Ok(Usage {
                    files: r.get::<_, i64>(0)?.max(0) as u64,
                    bytes: r.get::<_, i64>(1)?.max(0) as u64,
                })
            },
        )
    }

    /// Figures for the admins' `stats` command.
    pub fn stats(conn: &mut Connection, now: i64) -> Result<Stats, rusqlite::Error> {
        let usage = Self::usage(conn)?;
        let count = |n: i64| n.max(0) as u64;
        let open_slots = conn.query_row(
            "SELECT COUNT(*) FROM files WHERE completed IS NULL AND slot_expires >= ?1",
            params![now],
            |r| r.get(0),
        )?;
        let owners = conn.query_row(
            "SELECT COUNT(DISTINCT owner) FROM files WHERE completed IS NOT NULL AND owner IS NOT NULL",
            [],
            |r| r.get(0),
        )?;
        Ok(Stats {
            usage,
            open_slots: count(open_slots),
            owners: count(owners),
        })
    }
}

/// The columns of a row, in [`entry_of`]'s order.
const COLUMNS: &str = "id, owner, filename, size, content_type, created, slot_expires, completed";

/// A row selected with [`COLUMNS`].
fn entry_of(r: &rusqlite::Row<'_>) -> Result<Entry, rusqlite::Error> {
    Ok(Entry {
        id: r.get(0)?,
        owner: r.get(1)?,
        filename: r.get(2)?,
        size: r.get::<_, i64>(3)?.max(0) as u64,
        content_type: r.get(4)?,
        created: r.get(5)?,
        slot_expires: r.get(6)?,
        completed: r.get(7)?,
    })
}

/// Writes a row (`verb`: `INSERT`, or `INSERT OR IGNORE`).
fn insert(conn: &Connection, verb: &str, e: &Entry) -> Result<usize, rusqlite::Error> {
    conn.execute(
        &format!("{verb} INTO files ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
        params![
            e.id,
            e.owner,
            e.filename,
            e.size as i64,
            e.content_type,
            e.created,
            e.slot_expires,
            e.completed
        ],
    )
}

/// (when the bytes leave, size) rows, ordered by when they leave.
fn sizes(
    tx: &rusqlite::Transaction<'_>,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<(i64, u64)>, rusqlite::Error> {
    let mut stmt = tx.prepare_cached(sql)?;
    let rows = stmt.query_map(params, |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
    })?;
    rows.collect()
}

/// The refusal if `size` more bytes do not fit `cap` on top of `rows`,
/// with the time enough of them leave for it to fit, when known
/// (`retry_known` is `None` when stored files never leave).
fn over(
    which: Quota,
    rows: &[(i64, u64)],
    cap: u64,
    size: u64,
    retry_known: Option<i64>,
) -> Option<Refusal> {
    let used: u64 = rows.iter().map(|(_, s)| s).sum();
    if used.saturating_add(size) <= cap {
        return None;
    }
    let retry_at = if size > cap || retry_known.is_none() {
        // Never fits (or nothing ever leaves): no time to give.
        None
    } else {
        let mut remaining = used;
        rows.iter().find_map(|&(leaves, s)| {
            remaining -= s;
            (remaining + size <= cap).then_some(leaves)
        })
    };
    Some(Refusal::Quota { which, retry_at })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, owner: &str, size: u64, created: i64) -> Entry {
        Entry {
            id: id.to_owned(),
            owner: Some(owner.to_owned()),
            filename: format!("{id}.bin"),
            size,
            content_type: None,
            created,
            slot_expires: created + 300,
            completed: None,
        }
    }

    fn open() -> (tempfile::TempDir, Catalog) {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = Catalog::open(&dir.path().join("c.sqlite3")).expect("open");
        (dir, c)
    }

    const Q: Quotas = Quotas {
        daily: 1000,
        user: Some(1500),
        global: Some(2500),
        expire_after: Some(3600),
    };

    #[test]
    fn daily_quota_with_retry_when_the_oldest_slot_leaves_the_window() {
        let (_d, c) = open();
        let mut conn = c.conn.lock().expect("lock");
        for (i, t) in [(0, 100), (1, 200)] {
            let e = entry(&format!("s{i}"), "ada@x", 400, t);
            assert_eq!(Catalog::reserve(&mut conn, &e, &Q, t).expect("db"), Ok(()));
        }
        let e = entry("s2", "ada@x", 400, 300);
        assert_eq!(
            Catalog::reserve(&mut conn, &e, &Q, 300).expect("db"),
            Err(Refusal::Quota {
                which: Quota::Daily,
                retry_at: Some(100 + DAY)
            })
        );
        // Another user is not affected.
        let e = entry("s3", "bob@x", 400, 300);
        assert_eq!(
            Catalog::reserve(&mut conn, &e, &Q, 300).expect("db"),
            Ok(())
        );
        // A day later the window has moved on.
        let e = entry("s4", "ada@x", 400, 100 + DAY + 1);
        assert_eq!(
            Catalog::reserve(&mut conn, &e, &Q, 100 + DAY + 1).expect("db"),
            Ok(())
        );
    }

    #[test]
    fn stored_quotas_count_files_and_open_slots() {
        let (_d, c) = open();
        let mut conn = c.conn.lock().expect("lock");
        let mut q = Q;
        q.daily = u64::MAX;
        let a = entry("a", "ada@x", 1000, 0);
        assert_eq!(Catalog::reserve(&mut conn, &a, &q, 0).expect("db"), Ok(()));
        Catalog::complete(&mut conn, &a, 10).expect("complete");
        // An unused slot holds its bytes until its window closes (300).
        let b = entry("b", "ada@x", 400, 20);
        assert_eq!(Catalog::reserve(&mut conn, &b, &q, 20).expect("db"), Ok(()));
        let c2 = entry("c", "ada@x", 400, 30);
        assert_eq!(
            Catalog::reserve(&mut conn, &c2, &q, 30).expect("db"),
            Err(Refusal::Quota {
                which: Quota::User,
                retry_at: Some(320)
            })
        );
        // After slot b's window, its bytes are free again.
        let c3 = entry("c", "ada@x", 400, 400);
        assert_eq!(
            Catalog::reserve(&mut conn, &c3, &q, 400).expect("db"),
            Ok(())
        );
        // Global: 1000 + 400 stored/open of 2500; bob wants 1200.
        let d = entry("d", "bob@x", 1200, 401);
        assert_eq!(
            Catalog::reserve(&mut conn, &d, &q, 401).expect("db"),
            Err(Refusal::Quota {
                which: Quota::Global,
                retry_at: Some(700)
            })
        );
        let usage = Catalog::usage(&mut conn).expect("usage");
        assert_eq!(
            usage,
            Usage {
                files: 1,
                bytes: 1000
            }
        );
    }

    #[test]
    fn expiry_and_completion_without_a_slot() {
        let (_d, c) = open();
        let mut conn = c.conn.lock().expect("lock");
        let a = entry("a", "ada@x", 10, 0);
        Catalog::reserve(&mut conn, &a, &Q, 0)
            .expect("db")
            .expect("fits");
        Catalog::complete(&mut conn, &a, 5).expect("complete");
        let unused = entry("u", "ada@x", 10, 0);
        Catalog::reserve(&mut conn, &unused, &Q, 0)
            .expect("db")
            .expect("fits");
        let mut ext = entry("ext", "", 7, 0);
        ext.owner = None;
        ext.content_type = Some("text/plain".into());
        Catalog::complete(&mut conn, &ext, 100).expect("external");
        let got = Catalog::get(&mut conn, "ext").expect("get").expect("row");
        assert_eq!((got.completed, got.owner), (Some(100), None));
        assert_eq!(
            Catalog::unfinished(&mut conn, 1000)
                .expect("unfinished")
                .iter()
                .map(|e| e.id.as_str())
                .collect::<Vec<_>>(),
            ["u"]
        );
        let (files, slots) = Catalog::expired(&mut conn, 3606, Some(3600)).expect("expired");
        assert_eq!((files, slots), (vec!["a".to_owned()], vec![]));
        let (_, slots) = Catalog::expired(&mut conn, 300 + DAY + 1, Some(3600)).expect("expired");
        assert_eq!(slots, ["u"]);
        Catalog::remove(&mut conn, &["a".to_owned()]).expect("remove");
        assert!(Catalog::get(&mut conn, "a").expect("get").is_none());
    }
}
