//! [`ArchiveStore`] for [`SqliteStore`].
//!
//! Every page is one index range read: `archive_room_time` (room, ts, seq)
//! serves the time filters, cursors and the order; `with` reads the
//! occupant-id and real-JID indexes. A cursor is the (ts, seq) position
//! of its archive id, found through `archive_room_id`.
//!
//! Writes (append, retract, expire, remove) go through the store's
//! group-committing writer; queries through its reading connection.

use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension as _, params, params_from_iter};

use super::archive::{
    ArchiveBounds, ArchiveError, ArchivePage, ArchiveQuery, ArchiveStore, ArchivedMessage, Paging,
};
use super::sqlite::SqliteStore;

/// Rows deleted per write by [`ArchiveStore::expire`], so that retention
/// never holds the writer long.
const EXPIRE_CHUNK: i64 = 5_000;

/// `seq` last: a compound SELECT orders by result columns.
const COLUMNS: &str = "archive_id, ts, nick, real_jid, occupant_id, xml, retracted, seq";

fn message_of(room: &str, r: &rusqlite::Row<'_>) -> Result<ArchivedMessage, rusqlite::Error> {
    Ok(ArchivedMessage {
        room: room.to_owned(),
        id: r.get(0)?,
        timestamp: r.get(1)?,
        nick: r.get(2)?,
        real_jid: r.get(3)?,
        occupant_id: r.get(4)?,
        xml: r.get(5)?,
        retracted: r.get(6)?,
    })
}

fn archive_room_id(conn: &Connection, room: &str) -> Result<Option<i64>, rusqlite::Error> {
    conn.prepare_cached("SELECT id FROM archive_rooms WHERE name = ?1")?
        .query_row(params![room], |r| r.get(0))
        .optional()
}

/// The (ts, seq) position of an archive id.
fn position(conn: &Connection, room_id: i64, id: &str) -> Result<(i64, i64), ArchiveError> {
    conn.prepare_cached("SELECT ts, seq FROM archive WHERE room_id = ?1 AND archive_id = ?2")?
        .query_row(params![room_id, id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .ok_or_else(|| ArchiveError::not_found(id))
}

/// A WHERE clause being built, with its parameters in order.
///
/// `with` (occupant-id or real JID) is kept apart: a query with it is a
/// compound SELECT of two arms, one per partial index, each already in
/// (ts, seq) order, which SQLite merges; an `OR` would scan the whole room.
struct Filter {
    clauses: Vec<String>,
    params: Vec<Value>,
    with: Option<String>,
}

impl Filter {
    fn new(room_id: i64) -> Filter {
        Filter {
            clauses: vec!["room_id = ?".to_owned()],
            params: vec![Value::Integer(room_id)],
            with: None,
        }
    }

    fn push(&mut self, clause: impl Into<String>, params: impl IntoIterator<Item = Value>) {
        self.clauses.push(clause.into());
        self.params.extend(params);
    }

    /// Strictly after a (ts, seq) position; `ts >= ?` keeps it an index
    /// range.
    fn after(&mut self, (ts, seq): (i64, i64)) {
        self.push(
            "ts >= ? AND (ts > ? OR seq > ?)",
            [ts, ts, seq].map(Value::Integer),
        );
    }

    /// Strictly before a (ts, seq) position.
    fn before(&mut self, (ts, seq): (i64, i64)) {
        self.push(
            "ts <= ? AND (ts < ? OR seq < ?)",
            [ts, ts, seq].map(Value::Integer),
        );
    }

    /// Whether nothing but the room is filtered on.
    fn is_room_only(&self) -> bool {
        self.clauses.len() == 1 && self.with.is_none()
    }

    /// `SELECT COUNT(*) …` and its parameters. With `with`, the two arms
    /// are counted apart (index scans, no de-duplication), the second
    /// without the rows the first counted.
    fn count(&self) -> (String, Vec<Value>) {
        let filter = self.clauses.join(" AND ");
        match &self.with {
            None => (
                format!("SELECT COUNT(*) FROM archive WHERE {filter}"),
                self.params.clone(),
            ),
            Some(with) => {
                let mut params = self.params.clone();
                params.push(Value::Text(with.clone()));
                params.extend(self.params.iter().cloned());
                params.extend([Value::Text(with.clone()), Value::Text(with.clone())]);
                (
                    format!(
                        "SELECT (SELECT COUNT(*) FROM archive WHERE {filter} AND occupant_id = ?)
                         + (SELECT COUNT(*) FROM archive WHERE {filter} AND real_jid = ?
                            AND occupant_id IS NOT ?)"
                    ),
                    params,
                )
            }
        }
    }

    /// `SELECT {columns} FROM archive WHERE …` and its parameters.
    fn select(&self, columns: &str) -> (String, Vec<Value>) {
        let filter = self.clauses.join(" AND ");
        match &self.with {
            None => (
                format!("SELECT {columns} FROM archive WHERE {filter}"),
                self.params.clone(),
            ),
            Some(with) => {
                let mut params = self.params.clone();
                params.push(Value::Text(with.clone()));
                params.extend(self.params.iter().cloned());
                params.push(Value::Text(with.clone()));
                (
                    format!(
                        "SELECT {columns} FROM archive WHERE {filter} AND occupant_id = ?
                         UNION SELECT {columns} FROM archive WHERE {filter} AND real_jid = ?"
                    ),
                    params,
                )
            }
        }
    }
}

fn empty_page() -> ArchivePage {
    ArchivePage {
        messages: Vec::new(),
        first: None,
        last: None,
        count: 0,
        complete: true,
    }
}

/// The filters of `q` (all but the RSM cursor) for a room.
fn filter(conn: &Connection, room_id: i64, q: &ArchiveQuery) -> Result<Filter, ArchiveError> {
    let mut f = Filter::new(room_id);
    if let Some(start) = q.start {
        f.push("ts >= ?", [Value::Integer(start)]);
    }
    if let Some(end) = q.end {
        f.push("ts <= ?", [Value::Integer(end)]);
    }
    f.with.clone_from(&q.with);
    if let Some(id) = &q.after_id {
        f.after(position(conn, room_id, id)?);
    }
    if let Some(id) = &q.before_id {
        f.before(position(conn, room_id, id)?);
    }
    if !q.ids.is_empty() {
        for id in &q.ids {
            position(conn, room_id, id)?;
        }
        let marks = vec!["?"; q.ids.len()].join(", ");
        f.push(
            format!("archive_id IN ({marks})"),
            q.ids.iter().cloned().map(Value::Text),
        );
    }
    Ok(f)
}

/// Adds the RSM cursor to `f` and returns the page's SELECT and its
/// parameters.
fn page_sql(
    conn: &Connection,
    room_id: i64,
    q: &ArchiveQuery,
    f: &mut Filter,
) -> Result<(String, Vec<Value>), ArchiveError> {
    match &q.paging {
        Paging::After(id) => f.after(position(conn, room_id, id)?),
        Paging::Before(id) => f.before(position(conn, room_id, id)?),
        Paging::First | Paging::Last => {}
    }
    let order = if q.paging.is_backward() {
        "ts DESC, seq DESC"
    } else {
        "ts, seq"
    };
    // One more than asked tells whether the page is the last one.
    let limit = i64::try_from(q.max).unwrap_or(i64::MAX - 1) + 1;
    let (select, params) = f.select(COLUMNS);
    Ok((format!("{select} ORDER BY {order} LIMIT {limit}"), params))
}

pub(crate) fn query(
    conn: &Connection,
    room: &str,
    q: &ArchiveQuery,
) -> Result<ArchivePage, ArchiveError> {
    let Some(room_id) = archive_room_id(conn, room)? else {
        // No archive: every id the query names is unknown.
        let named = q.after_id.iter().chain(&q.before_id).chain(&q.ids);
        let cursor = match &q.paging {
            Paging::After(id) | Paging::Before(id) => Some(id),
            Paging::First | Paging::Last => None,
        };
        return match named.chain(cursor).next() {
            Some(id) => Err(ArchiveError::not_found(id)),
            None => Ok(empty_page()),
        };
    };
    let mut f = filter(conn, room_id, q)?;
    let count: i64 = if f.is_room_only() {
        conn.prepare_cached("SELECT messages FROM archive_rooms WHERE id = ?1")?
            .query_row(params![room_id], |r| r.get(0))?
    } else {
        let (sql, params) = f.count();
        conn.prepare_cached(&sql)?
            .query_row(params_from_iter(params), |r| r.get(0))?
    };
    let (sql, params) = page_sql(conn, room_id, q, &mut f)?;
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut messages = stmt
        .query_map(params_from_iter(params), |r| message_of(room, r))?
        .collect::<Result<Vec<_>, _>>()?;
    let complete = messages.len() <= q.max;
    messages.truncate(q.max);
    if q.paging.is_backward() {
        messages.reverse();
    }
    let count = usize::try_from(count).unwrap_or_default();
    Ok(super::archive::page(messages, count, complete, q.flip_page))
}

impl SqliteStore {
    /// The query plan SQLite picks for the page of `query`.
    #[cfg(test)]
    pub(crate) async fn explain_archive_query(
        &self,
        room: &str,
        query: ArchiveQuery,
    ) -> Result<Vec<String>, ArchiveError> {
        let room = room.to_owned();
        self.read(move |conn| {
            let Some(room_id) = archive_room_id(conn, &room)? else {
                return Ok(Vec::new());
            };
            let mut f = filter(conn, room_id, &query)?;
            let (sql, params) = page_sql(conn, room_id, &query, &mut f)?;
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
            let rows = stmt.query_map(params_from_iter(params), |r| r.get::<_, String>(3))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn read<T, F>(&self, f: F) -> Result<T, ArchiveError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, ArchiveError> + Send + 'static,
    {
        // A read on the reading connection; the typed error is carried
        // through the store's boxed one.
        self.run(move |conn| Ok(f(conn)))
            .await
            .map_err(ArchiveError::Store)?
    }
}

#[async_trait::async_trait]
impl ArchiveStore for SqliteStore {
    async fn append(&self, messages: Vec<ArchivedMessage>) -> Result<(), ArchiveError> {
        if messages.is_empty() {
            return Ok(());
        }
        self.writer
            .write(move |tx| {
                let mut rooms: HashMap<String, i64> = HashMap::new();
                for m in &messages {
                    let room_id = match rooms.get(&m.room) {
                        Some(id) => *id,
                        None => {
                            tx.prepare_cached(
                                "INSERT OR IGNORE INTO archive_rooms (name) VALUES (?1)",
                            )?
                            .execute(params![m.room])?;
                            let id = archive_room_id(tx, &m.room)?
                                .ok_or_else(|| ArchiveError::not_found(&m.room))?;
                            rooms.insert(m.room.clone(), id);
                            id
                        }
                    };
                    let inserted = tx
                        .prepare_cached(
                            "INSERT OR IGNORE INTO archive
                         (room_id, archive_id, ts, nick, real_jid, occupant_id, xml, retracted)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                        )?
                        .execute(params![
                            room_id,
                            m.id,
                            m.timestamp,
                            m.nick,
                            m.real_jid,
                            m.occupant_id,
                            m.xml,
                            m.retracted
                        ])?;
                    if inserted == 0 {
                        return Err(ArchiveError::DuplicateId {
                            room: m.room.clone(),
                            id: m.id.clone(),
                        });
                    }
                }
                Ok(0)
            })
            .await
            .map(drop)
    }

    async fn query(&self, room: &str, q: ArchiveQuery) -> Result<ArchivePage, ArchiveError> {
        let room = room.to_owned();
        self.read(move |conn| query(conn, &room, &q)).await
    }

    async fn bounds(&self, room: &str) -> Result<Option<ArchiveBounds>, ArchiveError> {
        let room = room.to_owned();
        self.read(move |conn| {
            let Some(room_id) = archive_room_id(conn, &room)? else {
                return Ok(None);
            };
            let end = |order: &str| {
                conn.prepare_cached(&format!(
                    "SELECT archive_id, ts FROM archive WHERE room_id = ?1 ORDER BY {order} LIMIT 1"
                ))?
                .query_row(params![room_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
            };
            let first = end("ts, seq")?;
            let last = end("ts DESC, seq DESC")?;
            Ok(first
                .zip(last)
                .map(|(first, last)| ArchiveBounds { first, last }))
        })
        .await
    }

    async fn history(
        &self,
        room: &str,
        max: usize,
        since: Option<i64>,
    ) -> Result<Vec<ArchivedMessage>, ArchiveError> {
        let room = room.to_owned();
        self.read(move |conn| {
            let Some(room_id) = archive_room_id(conn, &room)? else {
                return Ok(Vec::new());
            };
            let limit = i64::try_from(max).unwrap_or(i64::MAX);
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM archive WHERE room_id = ?1 AND ts >= ?2
                 ORDER BY ts DESC, seq DESC LIMIT ?3"
            ))?;
            let mut out = stmt
                .query_map(params![room_id, since.unwrap_or(i64::MIN), limit], |r| {
                    message_of(&room, r)
                })?
                .collect::<Result<Vec<_>, _>>()?;
            out.reverse();
            Ok(out)
        })
        .await
    }

    async fn retract(&self, room: &str, id: &str, tombstone: String) -> Result<(), ArchiveError> {
        let (room, id) = (room.to_owned(), id.to_owned());
        self.writer
            .write(move |conn| {
                let n = conn
                    .prepare_cached(
                        "UPDATE archive SET xml = ?3, retracted = 1
                     WHERE room_id = (SELECT id FROM archive_rooms WHERE name = ?1)
                     AND archive_id = ?2",
                    )?
                    .execute(params![room, id, tombstone])?;
                if n == 0 {
                    return Err(ArchiveError::not_found(&id));
                }
                Ok(0)
            })
            .await
            .map(drop)
    }

    async fn expire(&self, cutoff: i64) -> Result<usize, ArchiveError> {
        let rooms: Vec<i64> = self
            .read(move |conn| {
                // Only rooms with something to expire (one index probe each).
                let mut stmt = conn.prepare(
                    "SELECT id FROM archive_rooms r WHERE EXISTS
                     (SELECT 1 FROM archive a WHERE a.room_id = r.id AND a.ts < ?1)",
                )?;
                let ids = stmt.query_map(params![cutoff], |r| r.get(0))?;
                Ok(ids.collect::<Result<Vec<_>, _>>()?)
            })
            .await?;
        let mut total = 0;
        for room_id in rooms {
            // Chunks, each its own call: appends of other rooms go between.
            loop {
                let n = self
                    .writer
                    .write(move |conn| {
                        let n = conn
                            .prepare_cached(
                                "DELETE FROM archive WHERE seq IN (SELECT seq FROM archive
                                 WHERE room_id = ?1 AND ts < ?2 LIMIT ?3)",
                            )?
                            .execute(params![room_id, cutoff, EXPIRE_CHUNK])?;
                        Ok(n as u64)
                    })
                    .await?;
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                total += n;
                if n < EXPIRE_CHUNK as usize {
                    break;
                }
            }
        }
        Ok(total)
    }

    async fn remove_archive(&self, room: &str) -> Result<(), ArchiveError> {
        let room = room.to_owned();
        self.writer
            .write(move |conn| {
                conn.prepare_cached("DELETE FROM archive_rooms WHERE name = ?1")?
                    .execute(params![room])?;
                Ok(0)
            })
            .await
            .map(drop)
    }
}
