//! The SQLite schema, as numbered migrations.
//!
//! The database's `PRAGMA user_version` is the number of migrations
//! applied. Each migration runs in its own transaction together with the
//! version bump, so a crash leaves the file at one version or the next,
//! never between. A file from a newer satellite (a version this code does
//! not know) is refused rather than written to.

use rusqlite::Connection;

/// Migration `i` brings the schema from version `i` to `i + 1`.
///
/// Rooms are keyed by an integer `id` (the name is unique too) so that
/// affiliations and archive rows reference them with one integer. The
/// archive has its own room key (`archive_rooms`), since temporary rooms,
/// which have no `rooms` row, may be archived too.
const MIGRATIONS: &[&str] = &[
    // 1: rooms and affiliations.
    "CREATE TABLE rooms (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        config TEXT NOT NULL,
        public INTEGER NOT NULL,
        subject_text TEXT,
        subject_nick TEXT,
        subject_set_at INTEGER,
        created INTEGER NOT NULL
    );
    CREATE INDEX rooms_public_name ON rooms (public, name);
    CREATE TABLE affiliations (
        room_id INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
        jid TEXT NOT NULL,
        affiliation TEXT NOT NULL
            CHECK (affiliation IN ('owner', 'admin', 'member', 'outcast')),
        reason TEXT,
        nick TEXT,
        PRIMARY KEY (room_id, jid)
    ) WITHOUT ROWID;",
    // 2: the archive. A room's archive is keyed by its own integer id
    // (archive_rooms), so temporary rooms can be archived too; a stored
    // room's DeleteRoom removes its archive_rooms row, and the cascade
    // takes the messages. `seq` orders messages of equal timestamps.
    // `messages` is kept by triggers, so that the count of an unfiltered
    // query (most MAM queries) is one row read, not an index scan.
    "CREATE TABLE archive_rooms (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        messages INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE archive (
        seq INTEGER PRIMARY KEY,
        room_id INTEGER NOT NULL REFERENCES archive_rooms (id) ON DELETE CASCADE,
        archive_id TEXT NOT NULL,
        ts INTEGER NOT NULL,
        nick TEXT NOT NULL,
        real_jid TEXT,
        occupant_id TEXT,
        xml TEXT NOT NULL,
        retracted INTEGER NOT NULL DEFAULT 0
    );
    CREATE UNIQUE INDEX archive_room_id ON archive (room_id, archive_id);
    CREATE INDEX archive_room_time ON archive (room_id, ts, seq);
    CREATE INDEX archive_room_occupant ON archive (room_id, occupant_id, ts, seq)
        WHERE occupant_id IS NOT NULL;
    CREATE INDEX archive_room_jid ON archive (room_id, real_jid, ts, seq)
        WHERE real_jid IS NOT NULL;
    CREATE TRIGGER archive_counted AFTER INSERT ON archive BEGIN
        UPDATE archive_rooms SET messages = messages + 1 WHERE id = NEW.room_id;
    END;
    CREATE TRIGGER archive_uncounted AFTER DELETE ON archive BEGIN
        UPDATE archive_rooms SET messages = messages - 1 WHERE id = OLD.room_id;
    END;",
];

/// The schema version this code writes.
pub const CURRENT: u32 = MIGRATIONS.len() as u32;

/// The file was written by a newer satellite.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the room database has schema version {found}, newer than the {known} this satellite knows; \
     run a newer satellite or restore a backup"
)]
pub struct FutureSchema {
    /// The file's `user_version`.
    pub found: u32,
    /// The newest version this code knows.
    pub known: u32,
}

/// Brings the database to [`CURRENT`], one transaction per migration.
pub fn migrate(conn: &mut Connection) -> Result<(), super::StoreError> {
    let found: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > CURRENT {
        return Err(FutureSchema {
            found,
            known: CURRENT,
        }
        .into());
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)?;
        // Another process may have migrated meanwhile.
        let now: u32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if now as usize > i {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as u32 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
