//! Roles and affiliations: the muc#admin queries (kick, ban, voice,
//! moderator, member/admin/owner/outcast lists) and the changes behind
//! them, with their notifications (XEP-0045 §8, §9, §10).

use satellite::Element;
use satellite::jid::Jid;

use super::broadcast::Announce;
use super::{AffiliationEntry, Env, Outcome, Room, bare_of};
use crate::affiliation::Affiliation;
use crate::permissions::{
    Whois, may_list_affiliation, may_list_role, may_set_affiliation, may_set_role,
};
use crate::role::Role;
use crate::stanza::{Error, NS_MUC_ADMIN, NS_MUC_USER, NS_STANZA, el, el_attrs, status};
use crate::store::StoreOp;

impl Room {
    /// Sets an affiliation without checks or notifications (creation,
    /// loading).
    pub(super) fn set_affiliation_raw(
        &mut self,
        jid: &str,
        affiliation: Affiliation,
        reason: Option<&str>,
        nick: Option<&str>,
    ) {
        if affiliation == Affiliation::None {
            self.affiliations.remove(jid);
        } else {
            self.affiliations.insert(
                jid.to_owned(),
                AffiliationEntry {
                    affiliation,
                    reason: reason.map(str::to_owned),
                    nick: nick.map(str::to_owned),
                },
            );
        }
    }

    /// Changes `jid`'s affiliation (a bare JID, or a domain for a ban), as
    /// `actor` (a full JID; `None`: the service itself), and tells the
    /// room. `nick`: `Some(Some(n))` registers `n`, `Some(None)` clears the
    /// registration, `None` keeps it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn set_affiliation(
        &mut self,
        env: &Env,
        actor: Option<&str>,
        jid: &str,
        new: Affiliation,
        reason: Option<&str>,
        nick: Option<Option<&str>>,
        out: &mut Outcome,
    ) -> Result<(), Error> {
        if env.is_admin(jid) && new != Affiliation::Owner {
            return Err(Error::new("modify", "not-acceptable"));
        }
        let current = self
            .affiliations
            .get(jid)
            .map_or(Affiliation::None, |e| e.affiliation);
        if let Some(actor) = actor {
            let actor_bare = bare_of(actor);
            let last_owner_self = actor_bare == jid
                && !self
                    .affiliations
                    .iter()
                    .any(|(j, e)| j != jid && e.affiliation == Affiliation::Owner);
            may_set_affiliation(
                self.affiliation(env, actor_bare),
                current,
                new,
                last_owner_self,
            )?;
        }
        let kept_nick = self.affiliations.get(jid).and_then(|e| e.nick.clone());
        let nick = match nick {
            Some(n) => n.map(str::to_owned),
            None => kept_nick,
        };
        self.set_affiliation_raw(jid, new, reason, nick.as_deref());
        if self.config.persistent {
            out.writes.push(match self.affiliations.get(jid) {
                Some(e) => StoreOp::SetAffiliation {
                    room: self.name.clone(),
                    record: super::persist::affiliation_record(jid, e),
                },
                None => StoreOp::RemoveAffiliation {
                    room: self.name.clone(),
                    jid: jid.to_owned(),
                },
            });
        }
        let role = self.default_role(new);
        let downgrade = current > new;
        let is_domain = !jid.contains('@');
        let affected: Vec<usize> = (0..self.occupants.len())
            .filter(|&i| {
                let o = &self.occupants[i];
                o.bare == jid
                    || (is_domain
                        && new == Affiliation::Outcast
                        && o.bare.ends_with(&format!("@{jid}")))
            })
            .collect();
        let mut a = Announce {
            actor: actor.map(str::to_owned),
            reason: reason.map(str::to_owned),
            ..Announce::default()
        };
        if role == Role::None {
            a.statuses.push(if new == Affiliation::Outcast {
                301
            } else {
                321
            });
        }
        if affected.is_empty() {
            // XEP-0045 example 195: the room hears of it anyway.
            let mut x = el("x", NS_MUC_USER);
            for &c in &a.statuses {
                x.append_child(status(c));
            }
            let mut item = el_attrs(
                "item",
                NS_MUC_USER,
                &[("affiliation", Some(new.as_str())), ("jid", Some(jid))],
            );
            if let Some(r) = reason {
                item.append_child(crate::stanza::text_el("reason", NS_MUC_USER, r));
            }
            x.append_child(item);
            let mut msg = el_attrs("message", NS_STANZA, &[("from", Some(&self.jid))]);
            msg.append_child(x);
            let semi = self.config.whois == Whois::Moderators;
            self.fan_out_to(&msg, |o| !semi || o.role == Role::Moderator, out);
            return Ok(());
        }
        // Highest index first, so removals keep the others' indices.
        let mut updated = Vec::new();
        for &i in affected.iter().rev() {
            let old_role = self.occupants[i].role;
            if old_role != role && (downgrade || old_role < role) {
                self.occupants[i].role = role;
            }
            let occ = if self.occupants[i].role == Role::None {
                self.occupants.remove(i)
            } else {
                self.occupants[i].clone()
            };
            updated.push((occ, old_role));
        }
        for (occ, old_role) in updated.into_iter().rev() {
            let a = Announce {
                prev_role: Some(old_role),
                ..a.clone()
            };
            self.publicise(env, &occ, &a, out);
            let moderator_changed = (old_role == Role::Moderator) != (occ.role == Role::Moderator);
            if occ.role != Role::None && self.config.whois == Whois::Moderators && moderator_changed
            {
                // What they may see of others changed: send everyone again.
                for jid in occ.session_jids() {
                    self.send_occupant_list(env, jid, |o| o.bare == occ.bare, out);
                }
            }
        }
        Ok(())
    }

    /// Sets an affiliation as the service itself (an admin command such as
    /// Prosody's "Set affiliation in room"): no permission checks beyond
    /// "service admins stay owners", the same notifications as a
    /// muc#admin change.
    pub fn service_set_affiliation(
        &mut self,
        env: &Env,
        jid: &str,
        affiliation: Affiliation,
        reason: Option<&str>,
    ) -> Result<Outcome, Error> {
        let mut out = Outcome::default();
        self.set_affiliation(env, None, jid, affiliation, reason, None, &mut out)?;
        self.settle(&mut out);
        Ok(out)
    }

    /// Changes the role of the occupant `nick`, as `actor` (`None`: the
    /// service), and tells the room (307 when kicked).
    pub(super) fn set_role(
        &mut self,
        env: &Env,
        actor: Option<&str>,
        nick: &str,
        role: Role,
        reason: Option<&str>,
        out: &mut Outcome,
    ) -> Result<(), Error> {
        let Some(i) = self.occupant_index_by_nick(nick) else {
            return Err(Error::new("modify", "item-not-found"));
        };
        if let Some(actor) = actor {
            let actor_aff = self.affiliation(env, bare_of(actor));
            let actor_role = self
                .occupant_by_session(actor)
                .map_or(Role::None, |o| o.role);
            let target = &self.occupants[i];
            may_set_role(
                actor_aff,
                actor_role,
                self.affiliation(env, &target.bare),
                target.role,
                role,
            )?;
        }
        let prev_role = self.occupants[i].role;
        self.occupants[i].role = role;
        let occ = if role == Role::None {
            self.occupants.remove(i)
        } else {
            self.occupants[i].clone()
        };
        let a = Announce {
            statuses: if role == Role::None {
                vec![307]
            } else {
                Vec::new()
            },
            actor: actor.map(str::to_owned),
            reason: reason.map(str::to_owned),
            prev_role: Some(prev_role),
            ..Announce::default()
        };
        self.publicise(env, &occ, &a, out);
        Ok(())
    }

    /// A muc#admin `get`: an affiliation list or a role list.
    pub(super) fn admin_get(
        &self,
        env: &Env,
        from: &Jid,
        query: &Element,
    ) -> Result<Element, Error> {
        let from_str = from.to_string();
        let actor_aff = self.affiliation(env, bare_of(&from_str));
        let item = query
            .children()
            .find(|c| c.is("item", NS_MUC_ADMIN))
            .ok_or_else(|| Error::new("cancel", "bad-request"))?;
        let mut reply = el("query", NS_MUC_ADMIN);
        match (
            item.attr("affiliation").map(Affiliation::parse),
            item.attr("role").map(Role::parse),
        ) {
            (Some(Some(list)), None) => {
                if !may_list_affiliation(
                    actor_aff,
                    list,
                    self.config.members_only,
                    self.config.whois == Whois::Anyone,
                ) {
                    return Err(Error::new("auth", "forbidden"));
                }
                for (jid, e) in self
                    .affiliations
                    .iter()
                    .filter(|(_, e)| e.affiliation == list)
                {
                    reply.append_child(el_attrs(
                        "item",
                        NS_MUC_ADMIN,
                        &[
                            ("affiliation", Some(list.as_str())),
                            ("jid", Some(jid)),
                            ("nick", e.nick.as_deref()),
                        ],
                    ));
                }
            }
            (None, Some(Some(list))) => {
                let role = self
                    .occupant_by_session(&from_str)
                    .map_or_else(|| self.default_role(actor_aff), |o| o.role);
                if !may_list_role(role) {
                    return Err(Error::new("auth", "forbidden"));
                }
                for o in self.occupants.iter().filter(|o| o.role == list) {
                    let aff = self.affiliation(env, &o.bare);
                    for jid in o.session_jids() {
                        reply.append_child(el_attrs(
                            "item",
                            NS_MUC_ADMIN,
                            &[
                                ("affiliation", Some(aff.as_str())),
                                ("role", Some(list.as_str())),
                                ("jid", Some(jid)),
                                ("nick", Some(&o.nick)),
                            ],
                        ));
                    }
                }
            }
            _ => return Err(Error::new("cancel", "bad-request")),
        }
        Ok(reply)
    }

    /// A muc#admin `set`: one role or affiliation change (the first item,
    /// as Prosody).
    pub(super) fn admin_set(
        &mut self,
        env: &Env,
        from: &Jid,
        query: &Element,
        out: &mut Outcome,
    ) -> Result<(), Error> {
        let item = query
            .children()
            .find(|c| c.name() == "item")
            .ok_or_else(|| Error::new("cancel", "bad-request"))?;
        let mut jid = match item.attr("jid") {
            Some(j) => {
                let j = Jid::new(j).map_err(|_| Error::new("modify", "jid-malformed"))?;
                if j.resource().is_some() {
                    return Err(Error::new("modify", "jid-malformed")
                        .with_text("Bare JID expected, got full JID"));
                }
                Some(j.to_string())
            }
            None => None,
        };
        let mut nick = match item.attr("nick") {
            Some(n) => Some(
                stringprep::resourceprep(n)
                    .map_err(|_| {
                        Error::new("modify", "jid-malformed").with_text("invalid nickname")
                    })?
                    .into_owned(),
            ),
            None => None,
        };
        let affiliation = item.attr("affiliation");
        let role = item.attr("role");
        if jid.is_none()
            && let Some(n) = &nick
        {
            // Some clients name the occupant by nick for affiliation changes.
            jid = self.occupant_by_nick(n).map(|o| o.bare.clone());
        } else if role.is_some()
            && nick.is_none()
            && let Some(j) = &jid
        {
            nick = self
                .occupants
                .iter()
                .find(|o| &o.bare == j || o.has_session(j))
                .map(|o| o.nick.clone());
        }
        let reason = item.get_child("reason", NS_MUC_ADMIN).map(Element::text);
        let actor = from.to_string();
        match (affiliation, role, jid, nick) {
            (Some(aff), None, Some(jid), nick) => {
                let aff = Affiliation::parse(aff)
                    .ok_or_else(|| Error::new("modify", "not-acceptable"))?;
                if let Some(n) = &nick
                    && let Some(holder) = self.occupant_by_nick(n)
                    && holder.bare != jid
                {
                    let n = n.clone();
                    self.set_role(
                        env,
                        None,
                        &n,
                        Role::None,
                        Some("This nickname is reserved"),
                        out,
                    )?;
                }
                let registration = nick.as_deref().map(Some);
                self.set_affiliation(
                    env,
                    Some(&actor),
                    &jid,
                    aff,
                    reason.as_deref(),
                    registration,
                    out,
                )?;
            }
            (None, Some(role), _, Some(nick)) => {
                let role =
                    Role::parse(role).ok_or_else(|| Error::new("modify", "not-acceptable"))?;
                self.set_role(env, Some(&actor), &nick, role, reason.as_deref(), out)?;
            }
            _ => return Err(Error::new("cancel", "bad-request")),
        }
        Ok(())
    }
}
