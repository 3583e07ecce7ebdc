//! Presences to the room: creation, joins (with every refusal), presence
//! updates, nick changes, leaving, ghosts (error bounces) and probes.

use satellite::Element;

use super::broadcast::Announce;
use super::{Addresses, Env, Occupant, Outcome, Room, addresses};
use crate::affiliation::Affiliation;
use crate::history::HistoryRequest;
use crate::permissions::Whois;
use crate::role::Role;
use crate::stanza::{
    Error, NS_MUC, NS_MUC_USER, error_condition, set_attr, status, without_muc_payloads,
};

/// Whether a nick passes strict resourceprep unchanged-in-meaning and is
/// not blank.
pub(crate) fn check_nick(nick: &str) -> Result<(), Error> {
    if stringprep::resourceprep(nick).is_err() || nick.is_empty() {
        return Err(
            Error::new("modify", "jid-malformed").with_text("Nickname must pass strict validation")
        );
    }
    if nick.chars().all(char::is_whitespace) {
        return Err(
            Error::new("modify", "not-allowed").with_text("Invisible Nicknames are forbidden")
        );
    }
    Ok(())
}

impl Room {
    /// Handles a presence addressed to the room or to an occupant.
    pub fn handle_presence(&mut self, env: &Env, p: &Element) -> Outcome {
        let mut out = Outcome::default();
        let Some(addr) = addresses(p) else {
            return out;
        };
        if self.fresh {
            self.first_presence(env, p, &addr, &mut out);
            self.settle(&mut out);
            return out;
        }
        let nick = match &addr.nick {
            Some(n) => n.clone(),
            None => match self.occupant_by_session(&addr.from) {
                // Some clients send presence updates to the bare room.
                Some(o) => o.nick.clone(),
                None => return out,
            },
        };
        match p.attr("type") {
            Some("error") => self.ghost(env, &addr.from, p, &mut out),
            None | Some("unavailable") => self.normal_presence(env, p, &addr, &nick, &mut out),
            Some("probe") => self.probe(env, p, &addr, &nick, &mut out),
            Some("visible" | "invisible" | "result") => {}
            Some(_) => out.error(p, Error::new("modify", "bad-request"), Some(&self.jid)),
        }
        self.settle(&mut out);
        out
    }

    /// The creator's presence: owner, moderator, 201, locked until
    /// configured.
    fn first_presence(&mut self, env: &Env, p: &Element, addr: &Addresses, out: &mut Outcome) {
        self.fresh = false;
        let Some(nick) = addr.nick.clone() else {
            out.error(p, Error::new("modify", "jid-malformed"), Some(&self.jid));
            return;
        };
        if let Err(e) = check_nick(&nick) {
            out.error(p, e, Some(&self.jid));
            return;
        }
        let muc_x = p.get_child("x", NS_MUC);
        if env.settings.lock_rooms && muc_x.is_some() {
            self.locked_until = Some(env.unix() + env.settings.room_lock_timeout.as_secs() as i64);
        }
        if let Some(pw) = muc_x.and_then(|x| x.get_child("password", NS_MUC)) {
            let pw = pw.text();
            self.config.password = (!pw.is_empty()).then_some(pw);
        }
        // The creator's xml:lang is the room's language (Prosody).
        let lang = p
            .attrs()
            .iter()
            .find(|((ns, name), _)| !ns.is_empty() && name.as_str() == "lang")
            .map(|(_, v)| v.to_string());
        if let Some(lang) = lang.filter(|l| !l.is_empty()) {
            self.config.language = Some(lang);
        }
        self.set_affiliation_raw(&addr.from_bare, Affiliation::Owner, None, None);
        let role = self.default_role(self.affiliation(env, &addr.from_bare));
        let mut occ = Occupant::new(&self.jid, &nick, &addr.from_bare, role);
        occ.set_session(&addr.from, self.stored_presence(p, &occ.jid));
        self.occupants.push(occ.clone());
        let mut a = Announce {
            statuses: vec![201],
            ..Announce::default()
        };
        if self.config.whois == Whois::Anyone {
            a.statuses.push(100);
        }
        self.publicise(env, &occ, &a, out);
        self.send_history_and_subject(env, p, &addr.from, out);
        self.persist_all(out);
    }

    /// The presence kept for a session: the client's, without muc
    /// payloads, `from` the occupant and without `to`.
    fn stored_presence(&self, p: &Element, occupant_jid: &str) -> Element {
        let mut kept = without_muc_payloads(p);
        set_attr(&mut kept, "from", occupant_jid);
        crate::stanza::remove_attr(&mut kept, "to");
        kept
    }

    /// Refusals of a join, in Prosody's order.
    fn check_join(
        &self,
        env: &Env,
        p: &Element,
        addr: &Addresses,
        nick: &str,
    ) -> Result<(), (Error, String)> {
        let by = self.jid.clone();
        check_nick(nick).map_err(|e| (e, by.clone()))?;
        if let Some(owner) = self.nick_owner(nick)
            && owner != addr.from_bare
        {
            return Err((Error::new("cancel", "conflict"), by));
        }
        let affiliation = self.affiliation(env, &addr.from_bare);
        if self.config.members_only && affiliation <= Affiliation::None {
            return Err((Error::new("auth", "registration-required"), by));
        }
        if affiliation == Affiliation::Outcast {
            return Err((Error::new("auth", "forbidden"), by));
        }
        if let Some(password) = &self.config.password {
            let given = p
                .get_child("x", NS_MUC)
                .and_then(|x| x.get_child("password", NS_MUC))
                .map(|e| e.text());
            if given.as_deref() != Some(password.as_str()) {
                return Err((Error::new("auth", "not-authorized"), by));
            }
        }
        if self.is_locked(env.unix()) {
            return Err((
                Error::new("cancel", "item-not-found"),
                env.service.to_string(),
            ));
        }
        let cap = match (self.config.max_users, env.settings.max_occupants) {
            (0, cap) => cap,
            (n, Some(cap)) => Some(n.min(cap)),
            (n, None) => Some(n),
        };
        if let Some(cap) = cap
            && affiliation < Affiliation::Admin
            && self.occupants.len() >= cap as usize
            && !self.occupants.iter().any(|o| o.bare == addr.from_bare)
        {
            return Err((Error::new("wait", "service-unavailable"), by));
        }
        Ok(())
    }

    /// Available and unavailable presences to `nick`.
    fn normal_presence(
        &mut self,
        env: &Env,
        p: &Element,
        addr: &Addresses,
        nick: &str,
        out: &mut Outcome,
    ) {
        let unavailable = p.attr("type") == Some("unavailable");
        let muc_x = p.has_child("x", NS_MUC);
        let orig = self.occupant_index_by_session(&addr.from);
        if orig.is_none() && !muc_x && !unavailable {
            out.error(
                p,
                Error::new("cancel", "item-not-found")
                    .with_text("You are not currently connected to this chat"),
                Some(&self.jid),
            );
            return;
        }
        if unavailable {
            if let Some(i) = orig {
                self.leave(env, i, &addr.from, p, out);
            }
            return;
        }
        match orig {
            Some(i) if self.occupants[i].nick == nick => self.update(env, i, p, addr, muc_x, out),
            Some(i) => self.change_nick(env, i, p, addr, nick, out),
            None => self.join(env, p, addr, nick, out),
        }
    }

    /// A new session enters as `nick`.
    fn join(&mut self, env: &Env, p: &Element, addr: &Addresses, nick: &str, out: &mut Outcome) {
        if let Err((e, by)) = self.check_join(env, p, addr, nick) {
            out.error(p, e, Some(&by));
            return;
        }
        let existing = self.occupant_index_by_nick(nick);
        if let Some(i) = existing
            && self.occupants[i].bare != addr.from_bare
        {
            out.error(p, Error::new("cancel", "conflict"), Some(&self.jid));
            return;
        }
        let i = match existing {
            Some(i) => i,
            None => {
                let role = self.default_role(self.affiliation(env, &addr.from_bare));
                self.occupants
                    .push(Occupant::new(&self.jid, nick, &addr.from_bare, role));
                self.occupants.len() - 1
            }
        };
        let kept = self.stored_presence(p, &self.occupants[i].jid);
        self.occupants[i].set_session(&addr.from, kept);
        let from = addr.from.clone();
        self.send_occupant_list(env, &from, |o| o.has_session(&from), out);
        let mut a = Announce::default();
        if self.config.whois == Whois::Anyone {
            a.self_statuses.push(100);
        }
        let occ = self.occupants[i].clone();
        self.publicise(env, &occ, &a, out);
        self.send_history_and_subject(env, p, &addr.from, out);
    }

    /// A presence update (or a rejoin, with a muc payload) of an occupant.
    fn update(
        &mut self,
        env: &Env,
        i: usize,
        p: &Element,
        addr: &Addresses,
        muc_x: bool,
        out: &mut Outcome,
    ) {
        let kept = self.stored_presence(p, &self.occupants[i].jid);
        self.occupants[i].set_session(&addr.from, kept);
        let from = addr.from.clone();
        if muc_x {
            self.send_occupant_list(env, &from, |o| o.has_session(&from), out);
        }
        let occ = self.occupants[i].clone();
        let a = Announce {
            prev_role: Some(occ.role),
            ..Announce::default()
        };
        self.publicise(env, &occ, &a, out);
        if muc_x {
            self.send_history_and_subject(env, p, &addr.from, out);
        }
    }

    /// A session leaves (its occupant too when it was the last session).
    fn leave(&mut self, env: &Env, i: usize, from: &str, p: &Element, out: &mut Outcome) {
        let prev_role = self.occupants[i].role;
        let last = self.occupants[i].sessions.len() == 1;
        let kept = self.stored_presence(p, &self.occupants[i].jid);
        if last {
            let mut occ = self.occupants.remove(i);
            occ.role = Role::None;
            occ.set_session(from, kept);
            let a = Announce {
                prev_role: Some(prev_role),
                ..Announce::default()
            };
            self.publicise(env, &occ, &a, out);
        } else {
            // The session sees itself leave; the others see the occupant's
            // remaining presence.
            let mut gone = self.occupants[i].clone();
            gone.sessions.retain(|s| s.jid == from);
            gone.role = Role::None;
            gone.set_session(from, kept);
            self.occupants[i].remove_session(from);
            self.send_self_unavailable(env, &gone, &[], None, out);
            let occ = self.occupants[i].clone();
            let a = Announce {
                prev_role: Some(prev_role),
                ..Announce::default()
            };
            self.publicise(env, &occ, &a, out);
        }
    }

    /// An unavailable presence with 110 to one departing session only.
    fn send_self_unavailable(
        &self,
        env: &Env,
        gone: &Occupant,
        statuses: &[u16],
        new_nick: Option<&str>,
        out: &mut Outcome,
    ) {
        for s in &gone.sessions {
            let mut p = s.presence.clone();
            set_attr(&mut p, "type", "unavailable");
            set_attr(&mut p, "to", s.jid.as_str());
            let mut x = crate::stanza::el("x", NS_MUC_USER);
            for &c in statuses {
                x.append_child(status(c));
            }
            x.append_child(self.item(
                self.affiliation(env, &gone.bare),
                gone.role,
                Some(&s.jid),
                new_nick,
                None,
                None,
                None,
            ));
            x.append_child(status(110));
            p.append_child(x);
            out.send(p);
        }
    }

    /// A session moves to another nick.
    fn change_nick(
        &mut self,
        env: &Env,
        i: usize,
        p: &Element,
        addr: &Addresses,
        nick: &str,
        out: &mut Outcome,
    ) {
        if let Err(e) = check_nick(nick) {
            out.error(p, e, Some(&self.jid));
            return;
        }
        if let Some(owner) = self.nick_owner(nick)
            && owner != addr.from_bare
        {
            out.error(p, Error::new("cancel", "conflict"), Some(&self.jid));
            return;
        }
        let dest = self.occupant_index_by_nick(nick);
        if let Some(d) = dest
            && self.occupants[d].bare != addr.from_bare
        {
            out.error(p, Error::new("cancel", "conflict"), Some(&self.jid));
            return;
        }
        let role = self.occupants[i].role;
        let last = self.occupants[i].sessions.len() == 1;
        let mut unavailable = crate::stanza::el("presence", crate::stanza::NS_STANZA);
        set_attr(&mut unavailable, "from", self.occupants[i].jid.as_str());
        set_attr(&mut unavailable, "type", "unavailable");
        if dest.is_none() && last {
            // A plain nick change: 303 with the new nick to everyone.
            let mut old = self.occupants.remove(i);
            old.set_session(&addr.from, unavailable);
            let a = Announce {
                statuses: vec![303],
                nick: Some(nick.to_owned()),
                prev_role: Some(role),
                ..Announce::default()
            };
            self.publicise(env, &old, &a, out);
            let mut occ = Occupant::new(&self.jid, nick, &addr.from_bare, role);
            occ.set_session(&addr.from, self.stored_presence(p, &occ.jid));
            self.occupants.push(occ.clone());
            self.publicise(env, &occ, &Announce::default(), out);
            return;
        }
        // Multi-session: only this session sees itself change nick; the old
        // nick stays (if other sessions hold it) and the new one gains a
        // session.
        let mut gone = self.occupants[i].clone();
        gone.sessions.retain(|s| s.jid == addr.from);
        gone.set_session(&addr.from, unavailable);
        self.send_self_unavailable(env, &gone, &[303], Some(nick), out);
        if last {
            let mut old = self.occupants.remove(i);
            old.role = Role::None;
            let a = Announce {
                prev_role: Some(role),
                ..Announce::default()
            };
            self.publicise(env, &old, &a, out);
        } else {
            self.occupants[i].remove_session(&addr.from);
            let old = self.occupants[i].clone();
            self.publicise(
                env,
                &old,
                &Announce {
                    prev_role: Some(role),
                    ..Announce::default()
                },
                out,
            );
        }
        let d = match self.occupant_index_by_nick(nick) {
            Some(d) => d,
            None => {
                self.occupants
                    .push(Occupant::new(&self.jid, nick, &addr.from_bare, role));
                self.occupants.len() - 1
            }
        };
        let kept = self.stored_presence(p, &self.occupants[d].jid);
        self.occupants[d].set_session(&addr.from, kept);
        let occ = self.occupants[d].clone();
        self.publicise(env, &occ, &Announce::default(), out);
    }

    /// An error bounced from a session: it is a ghost, remove it (333 when
    /// it was the occupant's last session).
    pub(super) fn ghost(&mut self, env: &Env, from: &str, stanza: &Element, out: &mut Outcome) {
        let Some(i) = self.occupant_index_by_session(from) else {
            return;
        };
        let (condition, text) =
            error_condition(stanza).unwrap_or_else(|| ("presence error".to_owned(), None));
        let mut message = format!("Kicked: {}", condition.replace('-', " "));
        if let Some(text) = text.filter(|_| self.config.whois == Whois::Anyone) {
            message.push_str(": ");
            message.push_str(&text);
        }
        let mut unavailable = crate::stanza::el("presence", crate::stanza::NS_STANZA);
        set_attr(&mut unavailable, "from", self.occupants[i].jid.as_str());
        set_attr(&mut unavailable, "type", "unavailable");
        unavailable.append_child(crate::stanza::text_el(
            "status",
            crate::stanza::NS_STANZA,
            &message,
        ));
        let prev_role = self.occupants[i].role;
        if self.occupants[i].sessions.len() == 1 {
            let mut occ = self.occupants.remove(i);
            occ.role = Role::None;
            occ.set_session(from, unavailable);
            let a = Announce {
                statuses: vec![333],
                prev_role: Some(prev_role),
                ..Announce::default()
            };
            // The ghost itself is unreachable: tell only the others.
            let mut own = Outcome::default();
            self.publicise(env, &occ, &a, &mut own);
            out.stanzas.extend(
                own.stanzas
                    .into_iter()
                    .filter(|s| s.attr("to").is_none_or(|to| to != from)),
            );
        } else {
            self.occupants[i].remove_session(from);
            let occ = self.occupants[i].clone();
            let a = Announce {
                prev_role: Some(prev_role),
                ..Announce::default()
            };
            self.publicise(env, &occ, &a, out);
        }
    }

    /// A probe of an occupant's presence (by an occupant).
    fn probe(&self, env: &Env, p: &Element, addr: &Addresses, nick: &str, out: &mut Outcome) {
        if self.occupant_by_session(&addr.from).is_none() {
            out.error(
                p,
                Error::new("cancel", "not-acceptable")
                    .with_text("You are not currently connected to this chat"),
                Some(&self.jid),
            );
            return;
        };
        let from = addr.from.clone();
        match self.occupant_by_nick(nick) {
            Some(probed) => {
                // The probed occupant's presence as the prober may see it,
                // to every session of the prober (no 110, even for oneself).
                let Some(prober) = self.occupant_by_session(&from) else {
                    return;
                };
                let full = self.role_sees_jids(prober.role) || prober.bare == probed.bare;
                let Some(mut p) = self.presence_view(env, probed, full) else {
                    return;
                };
                for jid in prober.session_jids() {
                    set_attr(&mut p, "to", jid);
                    out.send(p.clone());
                }
            }
            None => {
                if let Some(bare) = self.nick_owner(nick) {
                    let sees = self.sees_jids(env, &from);
                    let mut pr = crate::stanza::el_attrs(
                        "presence",
                        crate::stanza::NS_STANZA,
                        &[
                            ("from", Some(&format!("{}/{}", self.jid, nick))),
                            ("to", Some(&from)),
                            ("type", Some("unavailable")),
                        ],
                    );
                    let mut x = crate::stanza::el("x", NS_MUC_USER);
                    x.append_child(self.item(
                        self.affiliation(env, bare),
                        Role::None,
                        sees.then_some(bare),
                        Some(nick),
                        None,
                        None,
                        None,
                    ));
                    pr.append_child(x);
                    out.send(pr);
                }
            }
        }
    }

    /// History, then the subject, to a session that just joined.
    fn send_history_and_subject(&self, env: &Env, p: &Element, to: &str, out: &mut Outcome) {
        let req = HistoryRequest::from_join(p, env.unix());
        let default = self
            .config
            .default_history_messages
            .min(self.config.history_length) as usize;
        out.stanzas.extend(self.history.for_join(&req, default, to));
        out.send(self.subject_message(to));
    }
}
