//! The catalog: every slot issued and every file stored, in SQLite
//! (`catalog.sqlite3` in the storage directory), so quotas and expiry
//! survive restarts and instances sharing the storage share the books.
//!
//! A slot is recorded when it is issued (that is when quotas are charged,
//! as Prosody's mod_http_file_share does, so unused slots cannot be
//! hoarded past the daily quota) and marked complete when its PUT
//! finishes; a PUT needs its slot's row, so a slot whose row is gone (its
//! file deleted by an admin) cannot be uploaded again. Quotas, with `now`
//! in unix seconds, summed by SQLite (a request never loads other rows):
//! - daily: bytes of slots the user was issued in the last 24 h;
//! - user and global: bytes stored, plus slots still open for a PUT;
//! - open slots: slots of the user still open for a PUT, counted (zero-byte
//!   slots cost no quota bytes, but each is a row).
//!
//! Uploads through an XMPP server's own slots (mod_http_upload_external)
//! have no slot row and tokens that never expire: their ids are kept in
//! `spent` when their file is deleted, so a token uploads once only.
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
    /// Slots per user open for a PUT at once.
    pub open_slots: u64,
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
CREATE TABLE IF NOT EXISTS spent (
    id TEXT PRIMARY KEY,
    at INTEGER NOT NULL
);
";

/// Bytes a row holds against the stored quotas at `now` (`?1`): complete,
/// or a slot still open for its PUT.
const HOLDS: &str = "(completed IS NOT NULL OR slot_expires >= ?1)";
/// When a row's bytes stop counting against the stored quotas (`?3`:
/// `expire_after`).
const LEAVES: &str =
    "CASE WHEN completed IS NULL THEN slot_expires ELSE completed + ?3 END AS leaves";

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
        let (open, first_leaves): (i64, Option<i64>) = tx.query_row(
            "SELECT COUNT(*), MIN(slot_expires) FROM files
             WHERE owner = ?1 AND completed IS NULL AND slot_expires >= ?2",
            params![owner, now],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if open.max(0) as u64 >= quotas.open_slots {
            return Ok(Err(Refusal::Quota {
                which: Quota::OpenSlots,
                retry_at: first_leaves.map(|t| t + 1),
            }));
        }
        let daily = Held {
            rows: "SELECT created + ?3 AS leaves, size FROM files WHERE owner = ?2 AND created > ?1 - ?3",
            params: &[&now, &owner, &DAY],
        };
        if let Some(refusal) = daily.over(&tx, Quota::Daily, quotas.daily, entry.size, true)? {
            return Ok(Err(refusal));
        }
        // Stored files leave at completion + expire_after; open slots when
        // their PUT window closes.
        let expiry = quotas.expire_after.unwrap_or(i64::MAX / 4);
        let known = quotas.expire_after.is_some();
        if let Some(cap) = quotas.user {
            let user = Held {
                rows: &format!("SELECT {LEAVES}, size FROM files WHERE {HOLDS} AND owner = ?2"),
                params: &[&now, &owner, &expiry],
            };
            if let Some(refusal) = user.over(&tx, Quota::User, cap, entry.size, known)? {
                return Ok(Err(refusal));
            }
        }
        if let Some(cap) = quotas.global {
            let global = Held {
                rows: &format!("SELECT {LEAVES}, size FROM files WHERE {HOLDS}"),
                // ?2 (the owner) is not used.
                params: &[&now, &"", &expiry],
            };
            if let Some(refusal) = global.over(&tx, Quota::Global, cap, entry.size, known)? {
                return Ok(Err(refusal));
            }
        }
        insert(&tx, "INSERT", entry)?;
        tx.commit()?;
        Ok(Ok(()))
    }

    /// Marks the upload of slot `id` complete at `now`, recording the
    /// PUT's `content_type` if the slot named none. `false` if the slot has
    /// no open row (deleted meanwhile, or already complete).
    pub fn complete(
        conn: &mut Connection,
        id: &str,
        content_type: Option<&str>,
        now: i64,
    ) -> Result<bool, rusqlite::Error> {
        let updated = conn.execute(
            "UPDATE files SET completed = ?2, content_type = COALESCE(content_type, ?3)
             WHERE id = ?1 AND completed IS NULL",
            params![id, now, content_type],
        )?;
        Ok(updated > 0)
    }

    /// Records an upload through an XMPP server's own slots (no slot row)
    /// as a completed file.
    pub fn record_external(
        conn: &mut Connection,
        entry: &Entry,
        now: i64,
    ) -> Result<(), rusqlite::Error> {
        let done = Entry {
            owner: None,
            completed: Some(now),
            ..entry.clone()
        };
        insert(conn, "INSERT OR IGNORE", &done)?;
        Ok(())
    }

    /// Whether `id` is the id of a server-slot upload whose file was
    /// deleted (its token must not upload it again).
    pub fn spent(conn: &mut Connection, id: &str) -> Result<bool, rusqlite::Error> {
        conn.query_row("SELECT 1 FROM spent WHERE id = ?1", params![id], |_| Ok(()))
            .optional()
            .map(|r| r.is_some())
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

    /// Deletes rows; those of server-slot uploads are remembered as
    /// [`spent`](Self::spent).
    pub fn remove(conn: &mut Connection, ids: &[String]) -> Result<(), rusqlite::Error> {
        let now = crate::service::now();
        let tx = conn.transaction()?;
        {
            let mut spend = tx.prepare(
                "INSERT OR IGNORE INTO spent (id, at) SELECT id, ?2 FROM files WHERE id = ?1 AND owner IS NULL",
            )?;
            let mut delete = tx.prepare("DELETE FROM files WHERE id = ?1")?;
            for id in ids {
                spend.execute(params![id, now])?;
                delete.execute(params![id])?;
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

/// The rows a quota counts: `rows` selects `(leaves, size)`, where
/// `leaves` is when the bytes stop counting.
struct Held<'a> {
    rows: &'a str,
    params: &'a [&'a dyn rusqlite::ToSql],
}

impl Held<'_> {
    /// The refusal if `size` more bytes do not fit `cap`, with the time
    /// enough of the rows leave for it to fit when `retry_known` (not when
    /// stored files never leave). SQLite sums; rows are only walked, in
    /// the order they leave, for the stamp of a refusal.
    fn over(
        &self,
        tx: &rusqlite::Transaction<'_>,
        which: Quota,
        cap: u64,
        size: u64,
        retry_known: bool,
    ) -> Result<Option<Refusal>, rusqlite::Error> {
        let used: i64 = tx
            .prepare_cached(&format!(
                "SELECT COALESCE(SUM(size), 0) FROM ({})",
                self.rows
            ))?
            .query_row(self.params, |r| r.get(0))?;
        let used = used.max(0) as u64;
        if used.saturating_add(size) <= cap {
            return Ok(None);
        }
        if size > cap || !retry_known {
            // Never fits (or nothing ever leaves): no time to give.
            return Ok(Some(Refusal::Quota {
                which,
                retry_at: None,
            }));
        }
        // The first time the bytes left by then free enough room.
        let need = (used + size - cap).min(i64::MAX as u64) as i64;
        let mut params = self.params.to_vec();
        params.push(&need);
        let retry_at = tx
            .prepare_cached(&format!(
                "SELECT leaves FROM (SELECT leaves, SUM(size) OVER (ORDER BY leaves ROWS UNBOUNDED PRECEDING) AS freed
                 FROM ({})) WHERE freed >= ?4 ORDER BY leaves LIMIT 1",
                self.rows
            ))?
            .query_row(params.as_slice(), |r| r.get(0))
            .optional()?;
        Ok(Some(Refusal::Quota { which, retry_at }))
    }
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
        open_slots: 100,
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
        assert!(Catalog::complete(&mut conn, "a", None, 10).expect("complete"));
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
        assert!(Catalog::complete(&mut conn, "a", Some("text/plain"), 5).expect("complete"));
        assert!(
            !Catalog::complete(&mut conn, "a", None, 6).expect("complete"),
            "once only"
        );
        let got = Catalog::get(&mut conn, "a").expect("get").expect("row");
        assert_eq!(got.content_type.as_deref(), Some("text/plain"));
        let unused = entry("u", "ada@x", 10, 0);
        Catalog::reserve(&mut conn, &unused, &Q, 0)
            .expect("db")
            .expect("fits");
        let mut ext = entry("ext", "", 7, 0);
        ext.owner = None;
        ext.content_type = Some("text/plain".into());
        Catalog::record_external(&mut conn, &ext, 100).expect("external");
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
        // A slot's row is gone with its file: nothing to complete.
        assert!(!Catalog::complete(&mut conn, "a", None, 3700).expect("complete"));
        // A server-slot upload's id is spent once its file is deleted.
        assert!(!Catalog::spent(&mut conn, "ext").expect("spent"));
        Catalog::remove(&mut conn, &["ext".to_owned()]).expect("remove");
        assert!(Catalog::spent(&mut conn, "ext").expect("spent"));
        assert!(
            !Catalog::spent(&mut conn, "a").expect("spent"),
            "own slots expire"
        );
    }

    #[test]
    fn open_slots_are_capped_per_user_and_zero_byte_slots_count() {
        let (_d, c) = open();
        let mut conn = c.conn.lock().expect("lock");
        let q = Quotas { open_slots: 3, ..Q };
        for i in 0..3 {
            let e = entry(&format!("z{i}"), "ada@x", 0, 10 + i);
            assert_eq!(
                Catalog::reserve(&mut conn, &e, &q, 10 + i).expect("db"),
                Ok(())
            );
        }
        let e = entry("z3", "ada@x", 0, 20);
        assert_eq!(
            Catalog::reserve(&mut conn, &e, &q, 20).expect("db"),
            Err(Refusal::Quota {
                which: Quota::OpenSlots,
                retry_at: Some(10 + 300 + 1)
            })
        );
        // Others are not affected; a completed upload frees its place.
        let e = entry("b0", "bob@x", 0, 20);
        assert_eq!(Catalog::reserve(&mut conn, &e, &q, 20).expect("db"), Ok(()));
        assert!(Catalog::complete(&mut conn, "z0", None, 21).expect("complete"));
        let e = entry("z4", "ada@x", 0, 22);
        assert_eq!(Catalog::reserve(&mut conn, &e, &q, 22).expect("db"), Ok(()));
    }

    #[test]
    fn quotas_are_summed_by_sqlite_over_many_rows() {
        let (_d, c) = open();
        let mut conn = c.conn.lock().expect("lock");
        let q = Quotas {
            daily: u64::MAX,
            user: Some(20_000),
            global: None,
            expire_after: Some(3600),
            open_slots: u64::MAX,
        };
        let tx = conn.transaction().expect("tx");
        for i in 0..20_000i64 {
            let mut e = entry(&format!("f{i}"), "ada@x", 1, i / 100);
            e.completed = Some(i / 100);
            insert(&tx, "INSERT", &e).expect("insert");
        }
        tx.commit().expect("commit");
        // Full: the first byte leaves when the oldest file expires.
        let e = entry("one-more", "ada@x", 1, 300);
        assert_eq!(
            Catalog::reserve(&mut conn, &e, &q, 300).expect("db"),
            Err(Refusal::Quota {
                which: Quota::User,
                retry_at: Some(3600)
            })
        );
        // 150 bytes fit once the files of seconds 0 and 1 have left.
        let e = entry("more", "ada@x", 150, 300);
        assert_eq!(
            Catalog::reserve(&mut conn, &e, &q, 300).expect("db"),
            Err(Refusal::Quota {
                which: Quota::User,
                retry_at: Some(3601)
            })
        );
    }
}
