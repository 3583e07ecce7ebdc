//! Occupants: one nick in the room, held by one or more sessions (full
//! JIDs) of the same bare JID.

use satellite::Element;

use crate::role::Role;

/// One session (full JID) of an occupant and its last presence.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// The session's full JID.
    pub jid: String,
    /// Its last presence, without muc payloads, `from` the occupant's
    /// in-room JID and no `to`.
    pub presence: Element,
}

/// One nick in the room.
#[derive(Debug, Clone, PartialEq)]
pub struct Occupant {
    /// The nick.
    pub nick: String,
    /// `room@service/nick`.
    pub jid: String,
    /// The bare JID of every session.
    pub bare: String,
    /// The role.
    pub role: Role,
    /// Sessions, the primary (whose presence others see) first.
    pub sessions: Vec<Session>,
}

impl Occupant {
    /// A new occupant without sessions yet.
    pub fn new(room: &str, nick: &str, bare: &str, role: Role) -> Self {
        Self {
            nick: nick.to_owned(),
            jid: format!("{room}/{nick}"),
            bare: bare.to_owned(),
            role,
            sessions: Vec::new(),
        }
    }

    /// The primary session's presence.
    pub fn presence(&self) -> Option<&Element> {
        self.sessions.first().map(|s| &s.presence)
    }

    /// Whether `jid` is one of the sessions.
    pub fn has_session(&self, jid: &str) -> bool {
        self.sessions.iter().any(|s| s.jid == jid)
    }

    /// Sets (or adds) a session's presence.
    pub fn set_session(&mut self, jid: &str, presence: Element) {
        match self.sessions.iter_mut().find(|s| s.jid == jid) {
            Some(s) => s.presence = presence,
            None => self.sessions.push(Session {
                jid: jid.to_owned(),
                presence,
            }),
        }
    }

    /// Removes a session.
    pub fn remove_session(&mut self, jid: &str) {
        self.sessions.retain(|s| s.jid != jid);
    }

    /// The session JIDs.
    pub fn session_jids(&self) -> impl Iterator<Item = &str> {
        self.sessions.iter().map(|s| s.jid.as_str())
    }
}
