//! [`MemoryStore`]: the store's semantics in memory, for tests.
//!
//! Nothing survives the process. Every method behaves as
//! [`super::sqlite::SqliteStore`]'s does (the same tests run against both),
//! so an engine test against a `MemoryStore` says something about SQLite.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{
    AffiliationRecord, RoomRecord, RoomStore, StoreError, StoreOp, StoredRoom, UnknownRoom,
    check_op,
};

/// Rooms in ordered maps behind a mutex; cheap to clone (clones share the
/// data).
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
pub(crate) struct Inner {
    pub(crate) rooms: BTreeMap<String, Room>,
    pub(crate) archive: super::archive_memory::Archive,
}

#[derive(Debug, Clone)]
pub(crate) struct Room {
    record: RoomRecord,
    /// By bare JID.
    affiliations: BTreeMap<String, AffiliationRecord>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every mutation below is completed or not started when a panic
        // could occur, so a poisoned lock holds consistent data.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn apply_op(rooms: &mut BTreeMap<String, Room>, op: StoreOp) -> Result<(), StoreError> {
    match op {
        StoreOp::PutRoom(record) => match rooms.get_mut(&record.name) {
            Some(room) => room.record = record,
            None => {
                rooms.insert(
                    record.name.clone(),
                    Room {
                        record,
                        affiliations: BTreeMap::new(),
                    },
                );
            }
        },
        StoreOp::DeleteRoom { name } => {
            rooms.remove(&name);
        }
        StoreOp::SetAffiliation { room, record } => {
            let stored = rooms.get_mut(&room).ok_or(UnknownRoom(room))?;
            stored.affiliations.insert(record.jid.clone(), record);
        }
        StoreOp::RemoveAffiliation { room, jid } => {
            if let Some(stored) = rooms.get_mut(&room) {
                stored.affiliations.remove(&jid);
            }
        }
        StoreOp::SetSubject { room, subject } => {
            rooms
                .get_mut(&room)
                .ok_or(UnknownRoom(room))?
                .record
                .subject = subject;
        }
    }
    Ok(())
}

#[async_trait::async_trait]
impl RoomStore for MemoryStore {
    async fn load_room(&self, name: &str) -> Result<Option<StoredRoom>, StoreError> {
        Ok(self.lock().rooms.get(name).map(|room| StoredRoom {
            room: room.record.clone(),
            affiliations: room.affiliations.values().cloned().collect(),
        }))
    }

    async fn apply(&self, ops: Vec<StoreOp>) -> Result<(), StoreError> {
        ops.iter().try_for_each(check_op)?;
        let mut inner = self.lock();
        // All or nothing: apply to a copy of the rooms, keep it on success.
        let mut rooms = inner.rooms.clone();
        let mut deleted = Vec::new();
        for op in ops {
            if let StoreOp::DeleteRoom { name } = &op {
                deleted.push(name.clone());
            }
            apply_op(&mut rooms, op)?;
        }
        // A deleted room takes its archive along, as in SQLite.
        for name in deleted {
            inner.archive.remove_room(&name);
        }
        inner.rooms = rooms;
        Ok(())
    }

    async fn list_rooms(
        &self,
        public_only: bool,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RoomRecord>, StoreError> {
        use std::ops::Bound;
        let inner = self.lock();
        let lower = match after {
            Some(after) => Bound::Excluded(after.to_owned()),
            None => Bound::Unbounded,
        };
        Ok(inner
            .rooms
            .range((lower, Bound::Unbounded))
            .map(|(_, room)| &room.record)
            .filter(|r| r.public || !public_only)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn count_rooms(&self, public_only: bool) -> Result<usize, StoreError> {
        Ok(self
            .lock()
            .rooms
            .values()
            .filter(|r| r.record.public || !public_only)
            .count())
    }
}
