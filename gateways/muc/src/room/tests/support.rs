//! A test bench: a service, its settings and a clock, and helpers to send
//! stanzas to a room and look at what comes out.

use std::time::{Duration, SystemTime};

use satellite::jid::{BareJid, Jid};
use satellite::{Element, IqRequest, IqType};

use crate::room::{Env, Outcome, Room};
use crate::service::{Absent, absent_room};
use crate::settings::Settings;
use crate::stanza::{NS_MUC_USER, NS_STANZA, NS_STANZAS};

pub const SERVICE: &str = "conference.localhost";
pub const ROMEO: &str = "romeo@localhost/mK0dD6Ha";
pub const JULIET: &str = "juliet@localhost/lVwkim_k";
pub const ROSALINE: &str = "rosaline@localhost/r";
pub const ADMIN: &str = "admin@localhost/a";

pub struct Bench {
    pub service: BareJid,
    pub admins: Vec<BareJid>,
    pub settings: Settings,
    pub now: SystemTime,
}

impl Bench {
    pub fn new() -> Self {
        Self {
            service: BareJid::new(SERVICE).expect("jid"),
            admins: vec![BareJid::new("admin@localhost").expect("jid")],
            settings: Settings::default(),
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        }
    }

    pub fn env(&self) -> Env<'_> {
        Env {
            service: &self.service,
            admins: &self.admins,
            settings: &self.settings,
            now: self.now,
        }
    }

    pub fn advance(&mut self, secs: u64) {
        self.now += Duration::from_secs(secs);
    }

    /// Creates `room` by `from` joining as `nick`; returns the room and
    /// what the creation sent.
    pub fn create(&self, room: &str, from: &str, nick: &str) -> (Room, Outcome) {
        let p = join(room, from, nick);
        let Absent::Create(mut r) = absent_room(&self.env(), &p, 0) else {
            panic!("room not created");
        };
        let out = r.handle_presence(&self.env(), &p);
        (*r, out)
    }

    /// Creates an instant room (empty form submitted) with Romeo as owner.
    pub fn instant(&self, room: &str) -> Room {
        let (mut r, _) = self.create(room, ROMEO, "romeo");
        let out = r.handle_iq(&self.env(), &iq(ROMEO, room, IqType::Set, "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query>"));
        assert_eq!(out.stanzas.len(), 1, "{:?}", texts(&out));
        r
    }

    /// Submits a configuration form of `fields` as `from`.
    pub fn configure(&self, r: &mut Room, from: &str, fields: &str) -> Outcome {
        let q = format!(
            "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>{fields}</x></query>"
        );
        let room = r.name().to_owned();
        r.handle_iq(&self.env(), &iq(from, &room, IqType::Set, &q))
    }

    pub fn presence(&self, r: &mut Room, p: Element) -> Outcome {
        r.handle_presence(&self.env(), &p)
    }

    pub fn message(&self, r: &mut Room, m: Element) -> Outcome {
        r.handle_message(&self.env(), &m)
    }

    pub fn iq(&self, r: &mut Room, from: &str, type_: IqType, payload: &str) -> Outcome {
        let room = r.name().to_owned();
        r.handle_iq(&self.env(), &iq(from, &room, type_, payload))
    }
}

pub fn xml(s: &str) -> Element {
    s.parse().unwrap_or_else(|e| panic!("{e}: {s}"))
}

pub fn room_jid(room: &str) -> String {
    format!("{room}@{SERVICE}")
}

pub fn join(room: &str, from: &str, nick: &str) -> Element {
    join_with(room, from, nick, "")
}

pub fn join_with(room: &str, from: &str, nick: &str, inner: &str) -> Element {
    xml(&format!(
        "<presence xmlns='jabber:component:accept' from='{from}' to='{}/{nick}'><x xmlns='http://jabber.org/protocol/muc'>{inner}</x></presence>",
        room_jid(room)
    ))
}

pub fn leave(room: &str, from: &str, nick: &str, inner: &str) -> Element {
    xml(&format!(
        "<presence xmlns='jabber:component:accept' type='unavailable' from='{from}' to='{}/{nick}'>{inner}</presence>",
        room_jid(room)
    ))
}

pub fn groupchat(room: &str, from: &str, id: &str, inner: &str) -> Element {
    xml(&format!(
        "<message xmlns='jabber:component:accept' type='groupchat' id='{id}' from='{from}' to='{}'>{inner}</message>",
        room_jid(room)
    ))
}

pub fn iq(from: &str, room: &str, type_: IqType, payload: &str) -> IqRequest {
    iq_to(from, &room_jid(room), type_, payload)
}

pub fn iq_to(from: &str, to: &str, type_: IqType, payload: &str) -> IqRequest {
    IqRequest {
        from: Jid::new(from).expect("from"),
        to: Jid::new(to).expect("to"),
        id: "iq1".to_owned(),
        type_,
        payload: xml(payload),
    }
}

/// Stanzas sent to `to`.
pub fn to<'a>(out: &'a Outcome, to: &str) -> Vec<&'a Element> {
    out.stanzas
        .iter()
        .filter(|s| s.attr("to") == Some(to))
        .collect()
}

/// Serialized stanzas, for failure messages.
pub fn texts(out: &Outcome) -> Vec<String> {
    out.stanzas.iter().map(String::from).collect()
}

/// The muc#user status codes of a stanza, in order.
pub fn codes(s: &Element) -> Vec<u16> {
    s.get_child("x", NS_MUC_USER)
        .map(|x| {
            x.children()
                .filter(|c| c.name() == "status")
                .filter_map(|c| c.attr("code")?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The muc#user items of a stanza.
pub fn items(s: &Element) -> Vec<&Element> {
    s.get_child("x", NS_MUC_USER)
        .map(|x| x.children().filter(|c| c.name() == "item").collect())
        .unwrap_or_default()
}

/// The children names of a muc#user payload, in order (`status:110`…).
pub fn payload_order(s: &Element) -> Vec<String> {
    s.get_child("x", NS_MUC_USER)
        .map(|x| {
            x.children()
                .map(|c| match c.attr("code") {
                    Some(code) => format!("{}:{code}", c.name()),
                    None => c.name().to_owned(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The error condition of an error stanza.
pub fn condition(s: &Element) -> Option<String> {
    let e = s.get_child("error", NS_STANZA)?;
    e.children()
        .find(|c| c.ns() == NS_STANZAS && c.name() != "text")
        .map(|c| c.name().to_owned())
}

/// The only stanza to `jid`, which must be an error; its condition.
pub fn error_to(out: &Outcome, jid: &str) -> String {
    let s = to(out, jid);
    assert_eq!(s.len(), 1, "{:?}", texts(out));
    assert_eq!(s[0].attr("type"), Some("error"), "{:?}", texts(out));
    condition(s[0]).unwrap_or_default()
}
