//! Presence fan-out: one occupant's presence to the room, with real JIDs
//! only for those allowed to see them, each variant built once and cloned
//! per recipient session.

use satellite::Element;

use super::{Env, Occupant, Outcome, Room};
use crate::affiliation::Affiliation;
use crate::role::Role;
use crate::stanza::{NS_MUC_USER, NS_STANZA, el, el_attrs, set_attr, status, text_el};

/// What accompanies an occupant's presence.
#[derive(Debug, Default, Clone)]
pub(super) struct Announce {
    /// Status codes everyone sees, before the items.
    pub statuses: Vec<u16>,
    /// Status codes only the occupant sees (100, 210), before the items.
    pub self_statuses: Vec<u16>,
    /// A `<destroy/>` put first in the payload.
    pub destroy: Option<Element>,
    /// The new nick (nick changes, 303).
    pub nick: Option<String>,
    /// Who did it (real full JID).
    pub actor: Option<String>,
    /// Why.
    pub reason: Option<String>,
    /// The role before the change (roles whose presence is not broadcast
    /// still see the occupant leave).
    pub prev_role: Option<Role>,
    /// Everyone gets an unavailable presence (destroy, broadcast change).
    pub force_unavailable: bool,
}

impl Room {
    /// One `<item/>`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn item(
        &self,
        affiliation: Affiliation,
        role: Role,
        jid: Option<&str>,
        nick: Option<&str>,
        actor_nick: Option<&str>,
        actor_jid: Option<&str>,
        reason: Option<&str>,
    ) -> Element {
        let mut item = el_attrs(
            "item",
            NS_MUC_USER,
            &[
                ("affiliation", Some(affiliation.as_str())),
                ("role", Some(role.as_str())),
                ("jid", jid),
                ("nick", nick),
            ],
        );
        if actor_nick.is_some() || actor_jid.is_some() {
            item.append_child(el_attrs(
                "actor",
                NS_MUC_USER,
                &[("nick", actor_nick), ("jid", actor_jid)],
            ));
        }
        if let Some(reason) = reason {
            item.append_child(text_el("reason", NS_MUC_USER, reason));
        }
        item
    }

    /// The muc#user payload for one view of an occupant: statuses, then an
    /// item per session (full view) or one item without JID (anonymous).
    fn payload(
        &self,
        env: &Env,
        occ: &Occupant,
        a: &Announce,
        statuses: &[u16],
        full: bool,
        actor_jid: bool,
    ) -> Element {
        let mut x = el("x", NS_MUC_USER);
        if let Some(d) = &a.destroy {
            x.append_child(d.clone());
        }
        for &code in statuses {
            x.append_child(status(code));
        }
        let affiliation = self.affiliation(env, &occ.bare);
        let actor_nick = a
            .actor
            .as_deref()
            .and_then(|j| self.occupant_by_session(j))
            .map(|o| o.nick.as_str());
        let actor_jid = a.actor.as_deref().filter(|_| actor_jid);
        if full {
            for jid in occ.session_jids() {
                x.append_child(self.item(
                    affiliation,
                    occ.role,
                    Some(jid),
                    a.nick.as_deref(),
                    actor_nick,
                    actor_jid,
                    a.reason.as_deref(),
                ));
            }
        } else {
            x.append_child(self.item(
                affiliation,
                occ.role,
                None,
                a.nick.as_deref(),
                actor_nick,
                None,
                a.reason.as_deref(),
            ));
        }
        x
    }

    /// Sends `occ`'s presence to the room: to every other occupant (as
    /// they may see it) and to the occupant's own sessions (with 110).
    /// `occ` is the occupant as it is now (role `None` when leaving, with
    /// the leaving session still in it).
    pub(super) fn publicise(&self, env: &Env, occ: &Occupant, a: &Announce, out: &mut Outcome) {
        let base = match occ.presence() {
            Some(p)
                if (occ.role != Role::None || p.attr("type") == Some("unavailable"))
                    && !a.force_unavailable =>
            {
                p.clone()
            }
            _ => {
                let mut p = el("presence", NS_STANZA);
                set_attr(&mut p, "from", occ.jid.as_str());
                set_attr(&mut p, "type", "unavailable");
                p
            }
        };
        let with = |x: Element| {
            let mut p = base.clone();
            p.append_child(x);
            p
        };
        let mut full_p: Option<Element> = None;
        let mut anon_p: Option<Element> = None;
        let self_statuses: Vec<u16> = a.statuses.iter().chain(&a.self_statuses).copied().collect();
        let self_x = self.payload(env, occ, a, &self_statuses, true, false);
        let mut self_p: Option<Element> = None;
        let broadcast_now = self.config.broadcasts(occ.role);
        let broadcast_before = a.prev_role.is_some_and(|r| self.config.broadcasts(r));
        for rec in &self.occupants {
            if rec.nick == occ.nick {
                continue;
            }
            if !(broadcast_now || a.force_unavailable || broadcast_before) {
                continue;
            }
            let template = if self.role_sees_jids(rec.role) {
                full_p
                    .get_or_insert_with(|| with(self.payload(env, occ, a, &a.statuses, true, true)))
            } else if rec.bare == occ.bare {
                self_p.get_or_insert_with(|| with(self_x.clone()))
            } else {
                anon_p.get_or_insert_with(|| {
                    with(self.payload(env, occ, a, &a.statuses, false, false))
                })
            };
            for jid in rec.session_jids() {
                let mut p = template.clone();
                set_attr(&mut p, "to", jid);
                if !(broadcast_now || a.force_unavailable) {
                    set_attr(&mut p, "type", "unavailable");
                }
                out.send(p);
            }
        }
        let mut self_x = self_x;
        self_x.append_child(status(110));
        if occ.role == Role::None {
            let p = with(self_x);
            for jid in occ.session_jids() {
                let mut p = p.clone();
                set_attr(&mut p, "to", jid);
                out.send(p);
            }
        } else {
            for s in &occ.sessions {
                let mut p = s.presence.clone();
                set_attr(&mut p, "to", s.jid.as_str());
                p.append_child(self_x.clone());
                out.send(p);
            }
        }
    }

    /// An occupant's current presence with its muc#user payload, with
    /// real JIDs when `full` (no `to`).
    pub(super) fn presence_view(&self, env: &Env, occ: &Occupant, full: bool) -> Option<Element> {
        let mut p = occ.presence()?.clone();
        p.append_child(self.payload(env, occ, &Announce::default(), &[], full, false));
        Some(p)
    }

    /// Sends `to` (a joining session) the presence of every occupant it may
    /// see, except occupants `skip` says to leave out.
    pub(super) fn send_occupant_list(
        &self,
        env: &Env,
        to: &str,
        skip: impl Fn(&Occupant) -> bool,
        out: &mut Outcome,
    ) {
        let to_bare = super::bare_of(to);
        let sees = self.sees_jids(env, to);
        for occ in &self.occupants {
            if skip(occ) || !(occ.bare == to_bare || self.config.broadcasts(occ.role)) {
                continue;
            }
            let Some(presence) = occ.presence() else {
                continue;
            };
            let a = Announce::default();
            let x = self.payload(env, occ, &a, &[], sees || occ.bare == to_bare, false);
            let mut p = presence.clone();
            set_attr(&mut p, "to", to);
            p.append_child(x);
            out.send(p);
        }
        if self.config.broadcasts(Role::None) {
            // Affiliated users who are not in the room, as offline presences.
            for (jid, entry) in &self.affiliations {
                if self.occupants.iter().any(|o| &o.bare == jid) || skip_offline(entry, sees) {
                    continue;
                }
                let from = match &entry.nick {
                    Some(n) => format!("{}/{}", self.jid, n),
                    None => self.jid.clone(),
                };
                let mut p = el_attrs(
                    "presence",
                    NS_STANZA,
                    &[
                        ("from", Some(&from)),
                        ("to", Some(to)),
                        ("type", Some("unavailable")),
                    ],
                );
                let mut x = el("x", NS_MUC_USER);
                x.append_child(self.item(
                    entry.affiliation,
                    Role::None,
                    sees.then_some(jid.as_str()),
                    entry.nick.as_deref(),
                    None,
                    None,
                    None,
                ));
                p.append_child(x);
                out.send(p);
            }
        }
    }
}

/// Offline affiliated users are shown only with a registered nick or to
/// those who see real JIDs.
fn skip_offline(entry: &super::AffiliationEntry, sees: bool) -> bool {
    entry.nick.is_none() && !sees
}
