//! A room as store records, and back: what a persistent room writes on
//! each change, and how a hibernated room is loaded.

use satellite::jid::BareJid;

use super::{AffiliationEntry, Env, Outcome, Room, RoomConfig, Subject};
use crate::affiliation::Affiliation;
use crate::history::History;
use crate::store::archive::ArchivedMessage;
use crate::store::{AffiliationRecord, RoomRecord, StoreOp, StoredRoom, SubjectRecord};

/// An affiliation as stored.
pub(super) fn affiliation_record(jid: &str, e: &AffiliationEntry) -> AffiliationRecord {
    AffiliationRecord {
        jid: jid.to_owned(),
        affiliation: e.affiliation.as_str().to_owned(),
        reason: e.reason.clone(),
        nick: e.nick.clone(),
    }
}

/// A stored room that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("stored room {name:?} has an unreadable configuration: {source}")]
pub struct LoadError {
    /// The room's name.
    pub name: String,
    /// What was wrong with its JSON.
    #[source]
    pub source: serde_json::Error,
}

impl Room {
    /// Loads a stored (hibernated) room; it has no occupants and no
    /// history, and is not locked.
    pub fn from_stored(env: &Env, jid: &BareJid, stored: &StoredRoom) -> Result<Self, LoadError> {
        let config: RoomConfig =
            serde_json::from_str(&stored.room.config).map_err(|source| LoadError {
                name: stored.room.name.clone(),
                source,
            })?;
        let mut room = Room::new(env, jid);
        room.fresh = false;
        room.config = config;
        room.created = stored.room.created;
        room.subject = stored.room.subject.as_ref().map(|s| Subject {
            text: s.text.clone(),
            nick: (!s.nick.is_empty()).then(|| s.nick.clone()),
            set_at: s.set_at,
        });
        for a in &stored.affiliations {
            if let Some(aff) = Affiliation::parse(&a.affiliation) {
                room.set_affiliation_raw(&a.jid, aff, a.reason.as_deref(), a.nick.as_deref());
            }
        }
        room.history = History::default();
        Ok(room)
    }

    /// Fills the history sent on join from the archive (a loaded room's
    /// `ArchiveStore::history`, oldest first). Messages that do not parse
    /// are skipped.
    pub fn seed_history(&mut self, env: &Env, messages: &[ArchivedMessage]) {
        let length = self
            .config
            .history_length
            .min(env.settings.max_history_messages) as usize;
        for m in messages {
            if let Ok(stanza) = m.xml.parse::<satellite::Element>() {
                self.history.push(
                    &stanza,
                    &self.jid,
                    m.timestamp.div_euclid(1_000_000),
                    length,
                );
            }
        }
    }

    /// The room record (config as JSON, publicity, subject, creation).
    pub fn record(&self) -> RoomRecord {
        RoomRecord {
            name: self.name.clone(),
            config: serde_json::to_string(&self.config).unwrap_or_default(),
            public: self.config.public,
            subject: self.subject_record(),
            created: self.created,
        }
    }

    fn subject_record(&self) -> Option<SubjectRecord> {
        self.subject.as_ref().map(|s| SubjectRecord {
            text: s.text.clone(),
            nick: s.nick.clone().unwrap_or_default(),
            set_at: s.set_at,
        })
    }

    /// Every op that stores the room from scratch (room and affiliations).
    pub fn store_ops(&self) -> Vec<StoreOp> {
        let mut ops = vec![StoreOp::PutRoom(self.record())];
        ops.extend(
            self.affiliations
                .iter()
                .map(|(jid, e)| StoreOp::SetAffiliation {
                    room: self.name.clone(),
                    record: affiliation_record(jid, e),
                }),
        );
        ops
    }

    /// Writes the whole room, if persistent.
    pub(super) fn persist_all(&self, out: &mut Outcome) {
        if self.config.persistent {
            out.writes.extend(self.store_ops());
        }
    }

    /// Writes the room record, if persistent.
    pub(super) fn persist_room(&self, out: &mut Outcome) {
        if self.config.persistent {
            out.writes.push(StoreOp::PutRoom(self.record()));
        }
    }

    /// Deletes the stored room.
    pub(super) fn persist_delete(&self, out: &mut Outcome) {
        out.writes.push(StoreOp::DeleteRoom {
            name: self.name.clone(),
        });
    }

    /// Writes the subject, if persistent.
    pub(super) fn persist_subject(&self, out: &mut Outcome) {
        if self.config.persistent {
            out.writes.push(StoreOp::SetSubject {
                room: self.name.clone(),
                subject: self.subject_record(),
            });
        }
    }
}
