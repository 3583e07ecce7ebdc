//! What the service remembers across restarts, in SQLite: the users it
//! has seen online (the `all` audience), the message of the day, and who
//! has had which MOTD.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension, params};

/// The message of the day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Motd {
    /// Changes with every new text, so each text reaches each user once.
    pub id: i64,
    /// The text.
    pub body: String,
}

/// The service's SQLite database.
pub struct Store {
    conn: Mutex<Connection>,
}

/// A store error (SQLite's).
pub type StoreError = rusqlite::Error;

impl Store {
    /// Opens (creating) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // A missing directory surfaces as SQLite's own error below.
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS users (
                 jid TEXT PRIMARY KEY,
                 last_seen INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS motd (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 body TEXT NOT NULL,
                 current INTEGER NOT NULL DEFAULT 1
             );
             CREATE TABLE IF NOT EXISTS motd_seen (
                 jid TEXT PRIMARY KEY,
                 motd_id INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS subscribers (
                 jid TEXT PRIMARY KEY
             );",
        )?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // Every operation is one statement or one transaction: a panic
        // cannot leave the connection half-way.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes that `jid` (a bare JID) was online now.
    pub fn seen(&self, jid: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO users (jid, last_seen) VALUES (?1, ?2)
             ON CONFLICT(jid) DO UPDATE SET last_seen = excluded.last_seen",
            params![jid, now()],
        )?;
        Ok(())
    }

    /// Every user seen online, ever.
    pub fn users(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT jid FROM users ORDER BY jid")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect()
    }

    /// The current message of the day.
    pub fn motd(&self) -> Result<Option<Motd>, StoreError> {
        self.conn()
            .query_row(
                "SELECT id, body FROM motd WHERE current = 1 ORDER BY id DESC LIMIT 1",
                [],
                |r| {
                    Ok(Motd {
                        id: r.get(0)?,
                        body: r.get(1)?,
                    })
                },
            )
            .optional()
    }

    /// Sets a new message of the day: every user gets it once more.
    pub fn set_motd(&self, body: &str) -> Result<Motd, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("UPDATE motd SET current = 0", [])?;
        tx.execute("INSERT INTO motd (body) VALUES (?1)", params![body])?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(Motd {
            id,
            body: body.to_owned(),
        })
    }

    /// Removes the message of the day.
    pub fn delete_motd(&self) -> Result<bool, StoreError> {
        let changed = self
            .conn()
            .execute("UPDATE motd SET current = 0 WHERE current = 1", [])?;
        Ok(changed > 0)
    }

    /// Marks `motd` delivered to `jid`; false when it already was (so it
    /// is sent at most once per user, also across restarts).
    pub fn take_motd(&self, jid: &str, motd: &Motd) -> Result<bool, StoreError> {
        let changed = self.conn().execute(
            "INSERT INTO motd_seen (jid, motd_id) VALUES (?1, ?2)
             ON CONFLICT(jid) DO UPDATE SET motd_id = excluded.motd_id
             WHERE motd_seen.motd_id <> excluded.motd_id",
            params![jid, motd.id],
        )?;
        Ok(changed > 0)
    }

    /// Adds a subscriber (the audience without privileges).
    pub fn add_subscriber(&self, jid: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT OR IGNORE INTO subscribers (jid) VALUES (?1)",
            params![jid],
        )?;
        Ok(())
    }

    /// Removes a subscriber.
    pub fn remove_subscriber(&self, jid: &str) -> Result<(), StoreError> {
        self.conn()
            .execute("DELETE FROM subscribers WHERE jid = ?1", params![jid])?;
        Ok(())
    }

    /// Every subscriber.
    pub fn subscribers(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT jid FROM subscribers ORDER BY jid")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect()
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn motd_once_per_user_and_again_when_it_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.sqlite");
        let store = Store::open(&path).expect("open");
        assert_eq!(store.motd().expect("motd"), None);
        let first = store.set_motd("hello").expect("set");
        assert!(store.take_motd("a@x", &first).expect("take"));
        assert!(!store.take_motd("a@x", &first).expect("take"));
        drop(store);
        let store = Store::open(&path).expect("reopen");
        let motd = store.motd().expect("motd").expect("kept");
        assert_eq!(motd, first);
        assert!(!store.take_motd("a@x", &motd).expect("take after restart"));
        let second = store.set_motd("again").expect("set");
        assert!(store.take_motd("a@x", &second).expect("take"));
        assert!(store.delete_motd().expect("delete"));
        assert_eq!(store.motd().expect("motd"), None);
        assert!(!store.delete_motd().expect("delete twice"));
    }

    #[test]
    fn users_and_subscribers_are_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("a.sqlite")).expect("open");
        store.seen("b@x").expect("seen");
        store.seen("a@x").expect("seen");
        store.seen("a@x").expect("seen again");
        assert_eq!(store.users().expect("users"), vec!["a@x", "b@x"]);
        store.add_subscriber("a@x").expect("sub");
        store.add_subscriber("a@x").expect("sub twice");
        store.remove_subscriber("c@x").expect("unsub unknown");
        assert_eq!(store.subscribers().expect("subs"), vec!["a@x"]);
    }
}
