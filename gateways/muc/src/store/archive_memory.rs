//! [`ArchiveStore`] for [`MemoryStore`]: each room's messages in a vector
//! kept in (timestamp, append order) order. Queries scan the room; this is
//! for tests, where rooms are small.

use std::collections::{BTreeMap, HashSet};

use super::archive::{
    ArchiveBounds, ArchiveError, ArchivePage, ArchiveQuery, ArchiveStore, ArchivedMessage, Paging,
};
use super::memory::MemoryStore;

/// Every room's archive.
#[derive(Debug, Default, Clone)]
pub(crate) struct Archive {
    rooms: BTreeMap<String, Vec<Entry>>,
    next_seq: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    seq: u64,
    message: ArchivedMessage,
}

impl Entry {
    fn key(&self) -> (i64, u64) {
        (self.message.timestamp, self.seq)
    }
}

impl Archive {
    pub(crate) fn remove_room(&mut self, room: &str) {
        self.rooms.remove(room);
    }

    fn position(&self, room: &str, id: &str) -> Result<(i64, u64), ArchiveError> {
        self.rooms
            .get(room)
            .and_then(|entries| entries.iter().find(|e| e.message.id == id))
            .map(Entry::key)
            .ok_or_else(|| ArchiveError::not_found(id))
    }

    fn query(&self, room: &str, q: &ArchiveQuery) -> Result<ArchivePage, ArchiveError> {
        let after_id = q
            .after_id
            .as_deref()
            .map(|id| self.position(room, id))
            .transpose()?;
        let before_id = q
            .before_id
            .as_deref()
            .map(|id| self.position(room, id))
            .transpose()?;
        for id in &q.ids {
            self.position(room, id)?;
        }
        let cursor = match &q.paging {
            Paging::After(id) | Paging::Before(id) => Some(self.position(room, id)?),
            Paging::First | Paging::Last => None,
        };
        let ids: HashSet<&str> = q.ids.iter().map(String::as_str).collect();
        let entries = self.rooms.get(room).map(Vec::as_slice).unwrap_or_default();
        let matching: Vec<&Entry> = entries
            .iter()
            .filter(|e| {
                let m = &e.message;
                q.start.is_none_or(|s| m.timestamp >= s)
                    && q.end.is_none_or(|end| m.timestamp <= end)
                    && q.with.as_ref().is_none_or(|w| {
                        m.occupant_id.as_ref() == Some(w) || m.real_jid.as_ref() == Some(w)
                    })
                    && after_id.is_none_or(|p| e.key() > p)
                    && before_id.is_none_or(|p| e.key() < p)
                    && (ids.is_empty() || ids.contains(m.id.as_str()))
            })
            .collect();
        let count = matching.len();
        let (window, backward): (Vec<&Entry>, bool) = match (&q.paging, cursor) {
            (Paging::After(_), Some(p)) => (
                matching.into_iter().filter(|e| e.key() > p).collect(),
                false,
            ),
            (Paging::Before(_), Some(p)) => {
                (matching.into_iter().filter(|e| e.key() < p).collect(), true)
            }
            (Paging::Last, _) => (matching, true),
            _ => (matching, false),
        };
        let complete = window.len() <= q.max;
        let taken: Vec<ArchivedMessage> = if backward {
            let skip = window.len().saturating_sub(q.max);
            window[skip..].iter().map(|e| e.message.clone()).collect()
        } else {
            window
                .iter()
                .take(q.max)
                .map(|e| e.message.clone())
                .collect()
        };
        Ok(super::archive::page(taken, count, complete, q.flip_page))
    }
}

#[async_trait::async_trait]
impl ArchiveStore for MemoryStore {
    async fn append(&self, messages: Vec<ArchivedMessage>) -> Result<(), ArchiveError> {
        let mut inner = self.lock();
        // All or nothing: check every id first.
        let mut fresh: HashSet<(&str, &str)> = HashSet::new();
        for m in &messages {
            let taken = inner
                .archive
                .rooms
                .get(&m.room)
                .is_some_and(|entries| entries.iter().any(|e| e.message.id == m.id));
            if taken || !fresh.insert((&m.room, &m.id)) {
                return Err(ArchiveError::DuplicateId {
                    room: m.room.clone(),
                    id: m.id.clone(),
                });
            }
        }
        let archive = &mut inner.archive;
        for message in messages {
            let seq = archive.next_seq;
            archive.next_seq += 1;
            let entries = archive.rooms.entry(message.room.clone()).or_default();
            let entry = Entry { seq, message };
            let at = entries.partition_point(|e| e.key() < entry.key());
            entries.insert(at, entry);
        }
        Ok(())
    }

    async fn query(&self, room: &str, q: ArchiveQuery) -> Result<ArchivePage, ArchiveError> {
        self.lock().archive.query(room, &q)
    }

    async fn bounds(&self, room: &str) -> Result<Option<ArchiveBounds>, ArchiveError> {
        let inner = self.lock();
        let Some(entries) = inner.archive.rooms.get(room) else {
            return Ok(None);
        };
        let end = |e: &Entry| (e.message.id.clone(), e.message.timestamp);
        Ok(entries
            .first()
            .zip(entries.last())
            .map(|(first, last)| ArchiveBounds {
                first: end(first),
                last: end(last),
            }))
    }

    async fn history(
        &self,
        room: &str,
        max: usize,
        since: Option<i64>,
    ) -> Result<Vec<ArchivedMessage>, ArchiveError> {
        let inner = self.lock();
        let entries = inner
            .archive
            .rooms
            .get(room)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let recent: Vec<&Entry> = entries
            .iter()
            .filter(|e| since.is_none_or(|s| e.message.timestamp >= s))
            .collect();
        let skip = recent.len().saturating_sub(max);
        Ok(recent[skip..].iter().map(|e| e.message.clone()).collect())
    }

    async fn retract(&self, room: &str, id: &str, tombstone: String) -> Result<(), ArchiveError> {
        let mut inner = self.lock();
        let entry = inner
            .archive
            .rooms
            .get_mut(room)
            .and_then(|entries| entries.iter_mut().find(|e| e.message.id == id))
            .ok_or_else(|| ArchiveError::not_found(id))?;
        entry.message.xml = tombstone;
        entry.message.retracted = true;
        Ok(())
    }

    async fn expire(&self, cutoff: i64) -> Result<usize, ArchiveError> {
        let mut inner = self.lock();
        let mut gone = 0;
        for entries in inner.archive.rooms.values_mut() {
            let before = entries.len();
            entries.retain(|e| e.message.timestamp >= cutoff);
            gone += before - entries.len();
        }
        Ok(gone)
    }

    async fn remove_archive(&self, room: &str) -> Result<(), ArchiveError> {
        self.lock().archive.remove_room(room);
        Ok(())
    }
}
