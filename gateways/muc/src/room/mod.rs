//! One room: its configuration, affiliations, occupants, subject and
//! history, and the XEP-0045 state machine that turns a stanza into what
//! to send and what to store.
//!
//! Everything here is synchronous and pure: the caller (one writer per
//! room) passes a stanza and an [`Env`], and gets an [`Outcome`]: stanzas
//! to send in order (errors to the sender included; an IQ's reply is one of
//! them, where Prosody sends it) and [`StoreOp`]s to commit first.
//!
//! Layout: [`occupant`] (nicks and sessions), [`config`] (the form),
//! `broadcast` (presence fan-out by visibility), `presence` (join, change,
//! leave, ghosts, probes), `message` (groupchat, subject, private
//! messages), `admin` (roles and affiliations), `owner` (configuration and
//! destruction), `disco`, `register` (nick registration), `invite`
//! (mediated invitations and voice requests), `persist` (store records).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use satellite::Element;
use satellite::jid::{BareJid, Jid};

use crate::affiliation::Affiliation;
use crate::history::History;
use crate::permissions::{RoomKind, Whois, default_role};
use crate::role::Role;
use crate::settings::Settings;
use crate::stanza::Error;
use crate::store::StoreOp;
use crate::store::archive::ArchivedMessage;

mod admin;
mod broadcast;
pub mod config;
mod disco;
mod invite;
mod iq;
mod message;
pub mod occupant;
mod owner;
mod persist;
mod presence;
mod register;

#[cfg(test)]
mod tests;

pub use config::RoomConfig;
pub use iq::{iq_error, iq_result};
pub use occupant::Occupant;
pub use persist::LoadError;

/// What the engine needs from outside for one stanza.
#[derive(Debug, Clone, Copy)]
pub struct Env<'a> {
    /// The service's JID (`conference.example.org`).
    pub service: &'a BareJid,
    /// Service admins (bare JIDs): owners of every room.
    pub admins: &'a [BareJid],
    /// The service's settings.
    pub settings: &'a Settings,
    /// The current time.
    pub now: SystemTime,
}

impl Env<'_> {
    /// `now` in unix seconds.
    pub fn unix(&self) -> i64 {
        self.now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    }

    /// Whether a bare JID is a service admin.
    pub fn is_admin(&self, bare: &str) -> bool {
        self.admins.iter().any(|a| a.as_str() == bare)
    }
}

/// What handling one stanza produced.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outcome {
    /// Stanzas to send, in order (each with `from` and `to`).
    pub stanzas: Vec<Element>,
    /// Changes to commit before sending (persistent rooms only).
    pub writes: Vec<StoreOp>,
    /// The room ended (destroyed, or temporary and empty): forget it.
    pub room_gone: bool,
    /// Messages to append to the room's archive before sending (their
    /// reflections carry the archive id as XEP-0359 stanza-id).
    pub archive: Vec<ArchivedMessage>,
}

impl Outcome {
    /// Adds a stanza.
    pub fn send(&mut self, stanza: Element) {
        self.stanzas.push(stanza);
    }

    /// Takes the reply to an IQ out of the stanzas (for a caller whose
    /// framework sends IQ replies itself; the reply then goes after the
    /// other stanzas instead of where Prosody puts it).
    pub fn take_reply(&mut self, req: &satellite::IqRequest) -> Option<Element> {
        let i = self.stanzas.iter().position(|s| {
            s.name() == "iq"
                && s.attr("id") == Some(req.id.as_str())
                && s.attr("to") == Some(req.from.as_str())
                && matches!(s.attr("type"), Some("result" | "error"))
        })?;
        Some(self.stanzas.remove(i))
    }

    /// Adds the error reply to `stanza` (nothing when it is an error itself).
    pub fn error(&mut self, stanza: &Element, error: Error, by: Option<&str>) {
        if let Some(reply) = error.reply_to(stanza, by) {
            self.stanzas.push(reply);
        }
    }
}

/// A bare JID's affiliation and what comes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffiliationEntry {
    /// The affiliation (never `None`: those are not kept).
    pub affiliation: Affiliation,
    /// Why it was granted.
    pub reason: Option<String>,
    /// The nick it registered (§7.10), reserved for it.
    pub nick: Option<String>,
}

/// The room's subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The text (empty: cleared).
    pub text: String,
    /// Who set it (`None`: the room itself).
    pub nick: Option<String>,
    /// When (unix seconds).
    pub set_at: i64,
}

/// One room.
#[derive(Debug, Clone)]
pub struct Room {
    /// `room@service`.
    jid: String,
    /// The localpart.
    name: String,
    config: RoomConfig,
    /// By bare JID (or a domain, for bans of a whole server).
    affiliations: BTreeMap<String, AffiliationEntry>,
    /// In join order.
    occupants: Vec<Occupant>,
    subject: Option<Subject>,
    history: History,
    /// Locked until (unix seconds): a new room waits for its owner's form.
    locked_until: Option<i64>,
    /// Created (unix seconds).
    created: i64,
    /// Created, first presence not yet handled.
    fresh: bool,
    /// Last generated message id.
    next_id: u64,
}

impl Room {
    /// A new room at `jid` (`room@service`) with the service's default
    /// configuration; the first presence (its creator's) comes next, through
    /// [`Room::handle_presence`].
    pub fn new(env: &Env, jid: &BareJid) -> Self {
        Self {
            jid: jid.to_string(),
            name: jid.node().map(|n| n.to_string()).unwrap_or_default(),
            config: env.settings.room_defaults.clone(),
            affiliations: BTreeMap::new(),
            occupants: Vec::new(),
            subject: None,
            history: History::default(),
            locked_until: None,
            created: env.unix(),
            fresh: true,
            next_id: 0,
        }
    }

    /// `room@service`.
    pub fn jid(&self) -> &str {
        &self.jid
    }

    /// The room's localpart (its store key).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configuration.
    pub fn config(&self) -> &RoomConfig {
        &self.config
    }

    /// The occupants, in join order.
    pub fn occupants(&self) -> &[Occupant] {
        &self.occupants
    }

    /// The subject, if set.
    pub fn subject(&self) -> Option<&Subject> {
        self.subject.as_ref()
    }

    /// Affiliations by bare JID.
    pub fn affiliations(&self) -> &BTreeMap<String, AffiliationEntry> {
        &self.affiliations
    }

    /// Whether nobody is in the room.
    pub fn is_empty(&self) -> bool {
        self.occupants.is_empty()
    }

    /// Whether the room may leave memory and be loaded again on demand
    /// (persistent and empty).
    pub fn can_hibernate(&self) -> bool {
        self.config.persistent && self.occupants.is_empty()
    }

    /// Whether the room must vanish (temporary and empty).
    pub fn must_vanish(&self) -> bool {
        !self.config.persistent && self.occupants.is_empty()
    }

    /// Whether the room is locked (waiting for its owner's configuration).
    pub fn is_locked(&self, now: i64) -> bool {
        self.locked_until.is_some_and(|t| now < t)
    }

    /// The kind of room, for default roles.
    fn kind(&self) -> RoomKind {
        if self.config.members_only {
            RoomKind::MembersOnly
        } else if self.config.moderated {
            RoomKind::Moderated
        } else {
            RoomKind::Open
        }
    }

    /// A bare JID's affiliation (service admins are owners; a banned
    /// domain bans its users).
    pub fn affiliation(&self, env: &Env, bare: &str) -> Affiliation {
        if env.is_admin(bare) {
            return Affiliation::Owner;
        }
        if let Some(e) = self.affiliations.get(bare) {
            return e.affiliation;
        }
        let domain = bare.rsplit('@').next().unwrap_or(bare);
        match self.affiliations.get(domain) {
            Some(e) if e.affiliation == Affiliation::Outcast => Affiliation::Outcast,
            _ => Affiliation::None,
        }
    }

    /// The role someone of this affiliation gets on entering.
    fn default_role(&self, affiliation: Affiliation) -> Role {
        default_role(affiliation, self.kind())
    }

    /// The nick a bare JID registered.
    pub fn registered_nick(&self, bare: &str) -> Option<&str> {
        self.affiliations.get(bare).and_then(|e| e.nick.as_deref())
    }

    /// The bare JID that registered `nick`.
    pub fn nick_owner(&self, nick: &str) -> Option<&str> {
        self.affiliations
            .iter()
            .find(|(_, e)| e.nick.as_deref() == Some(nick))
            .map(|(j, _)| j.as_str())
    }

    fn occupant_index_by_session(&self, jid: &str) -> Option<usize> {
        self.occupants.iter().position(|o| o.has_session(jid))
    }

    fn occupant_index_by_nick(&self, nick: &str) -> Option<usize> {
        self.occupants.iter().position(|o| o.nick == nick)
    }

    /// The occupant a session (full JID) is in the room as.
    pub fn occupant_by_session(&self, jid: &str) -> Option<&Occupant> {
        self.occupants.iter().find(|o| o.has_session(jid))
    }

    /// The occupant with this nick.
    pub fn occupant_by_nick(&self, nick: &str) -> Option<&Occupant> {
        self.occupants.iter().find(|o| o.nick == nick)
    }

    /// Whether occupants of `role` see real JIDs in presences.
    fn role_sees_jids(&self, role: Role) -> bool {
        self.config.whois == Whois::Anyone || role == Role::Moderator
    }

    /// Whether `jid` (a full JID, possibly not in the room) sees real JIDs.
    fn sees_jids(&self, env: &Env, jid: &str) -> bool {
        if self.config.whois == Whois::Anyone {
            return true;
        }
        if self.affiliation(env, bare_of(jid)) >= Affiliation::Admin {
            return true;
        }
        self.occupant_by_session(jid)
            .is_some_and(|o| o.role == Role::Moderator)
    }

    /// A fresh message id.
    fn new_id(&mut self, env: &Env) -> String {
        self.next_id += 1;
        let nanos = env
            .now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{:x}-{}", nanos, self.next_id)
    }

    /// Marks the room gone when it is temporary and empty.
    fn settle(&self, out: &mut Outcome) {
        if self.must_vanish() {
            out.room_gone = true;
        }
    }
}

/// The bare part of a JID string.
pub(crate) fn bare_of(jid: &str) -> &str {
    jid.split('/').next().unwrap_or(jid)
}

/// The sender and addressee of a stanza, parsed.
pub(crate) struct Addresses {
    /// The sender's full (or bare) JID, normalized.
    pub from: String,
    /// The sender's bare JID.
    pub from_bare: String,
    /// The nick addressed (`room@service/nick`), if any.
    pub nick: Option<String>,
}

/// Parses `from` and `to`; `None` when either is missing or `from` is
/// invalid. The nick is taken as sent (the server may let through nicks
/// that strict resourceprep refuses: the room answers jid-malformed).
pub(crate) fn addresses(stanza: &Element) -> Option<Addresses> {
    let from = Jid::new(stanza.attr("from")?).ok()?;
    let to = stanza.attr("to")?;
    Some(Addresses {
        from_bare: from.to_bare().to_string(),
        from: from.to_string(),
        nick: to.split_once('/').map(|(_, r)| r.to_owned()),
    })
}
