//! The muc#owner queries: the configuration form, its submission (instant
//! and reserved rooms, status codes 104 and 170–173) and destruction.

use satellite::Element;
use satellite::jid::Jid;

use super::broadcast::Announce;
use super::config::{FORM_TYPE, SubmittedForm};
use super::{Env, Outcome, Room, bare_of};
use crate::affiliation::Affiliation;
use crate::role::Role;
use crate::stanza::{
    Error, NS_DATA, NS_MUC_OWNER, NS_MUC_USER, NS_STANZA, el, el_attrs, status, text_el,
};

/// Fields only service admins may change, per the settings.
fn restricted_fields(env: &Env, from: &Jid) -> Vec<&'static str> {
    let mut fields = Vec::new();
    if env.is_admin(from.to_bare().as_str()) {
        return fields;
    }
    if !env.settings.allow_persistent {
        fields.push("muc#roomconfig_persistentroom");
    }
    if !env.settings.allow_public {
        fields.push("muc#roomconfig_publicroom");
    }
    fields
}

impl Room {
    fn check_owner(&self, env: &Env, from: &Jid) -> Result<(), Error> {
        if self.affiliation(env, from.to_bare().as_str()) != Affiliation::Owner {
            return Err(
                Error::new("auth", "forbidden").with_text("Only owners can configure rooms")
            );
        }
        Ok(())
    }

    /// A muc#owner `get`: the configuration form.
    pub(super) fn owner_get(&self, env: &Env, from: &Jid) -> Result<Element, Error> {
        self.check_owner(env, from)?;
        let mut q = el("query", NS_MUC_OWNER);
        q.append_child(self.config.form(&self.jid, &restricted_fields(env, from)));
        Ok(q)
    }

    /// A muc#owner `set`: a submitted (or cancelled) form, or `<destroy/>`.
    /// `reply` is the result IQ, placed in `out` where Prosody sends it.
    pub(super) fn owner_set(
        &mut self,
        env: &Env,
        from: &Jid,
        query: &Element,
        reply: Element,
        out: &mut Outcome,
    ) -> Result<(), Error> {
        self.check_owner(env, from)?;
        let child = query
            .children()
            .next()
            .ok_or_else(|| Error::new("modify", "bad-request"))?;
        if child.name() == "destroy" {
            let reason = child.get_child("reason", NS_MUC_OWNER).map(Element::text);
            let password = child.get_child("password", NS_MUC_OWNER).map(Element::text);
            self.destroy(
                env,
                child.attr("jid"),
                reason.as_deref(),
                password.as_deref(),
                out,
            );
            out.send(reply);
            return Ok(());
        }
        if !child.is("x", NS_DATA) {
            return Err(Error::new("cancel", "service-unavailable"));
        }
        match child.attr("type") {
            Some("cancel") => {
                out.send(reply);
                Ok(())
            }
            Some("submit") => {
                let form = SubmittedForm::parse(child);
                if !form.is_empty() && form.form_type() != Some(FORM_TYPE) {
                    return Err(Error::new("cancel", "bad-request")
                        .with_text("Form is not of type room configuration"));
                }
                self.apply_config(env, from, &form, reply, out);
                Ok(())
            }
            _ => Err(Error::new("cancel", "bad-request").with_text("Not a submitted form")),
        }
    }

    /// Applies a configuration form: unlocks the room, stores it, replies,
    /// then tells the room what changed.
    fn apply_config(
        &mut self,
        env: &Env,
        from: &Jid,
        form: &SubmittedForm,
        reply: Element,
        out: &mut Outcome,
    ) {
        let mut form = form.clone();
        for var in restricted_fields(env, from) {
            form.remove(var);
        }
        let form = &form;
        let was_persistent = self.config.persistent;
        let old_broadcast = self.config.presence_broadcast.clone();
        let change = self.config.apply(form, env.settings.max_history_messages);
        self.locked_until = None;
        self.history.truncate(self.config.history_length as usize);
        if change.became_members_only {
            // Non-members leave with 322.
            let mut removed = Vec::new();
            let mut i = 0;
            while i < self.occupants.len() {
                if self.affiliation(env, &self.occupants[i].bare) <= Affiliation::None {
                    let mut o = self.occupants.remove(i);
                    let prev = o.role;
                    o.role = Role::None;
                    removed.push((o, prev));
                } else {
                    i += 1;
                }
            }
            for (o, prev) in removed {
                let a = Announce {
                    statuses: vec![322],
                    prev_role: Some(prev),
                    ..Announce::default()
                };
                self.publicise(env, &o, &a, out);
            }
        }
        match (was_persistent, self.config.persistent) {
            (false, true) => self.persist_all(out),
            (true, false) => self.persist_delete(out),
            (true, true) => self.persist_room(out),
            (false, false) => {}
        }
        out.send(reply);
        if !change.status_codes.is_empty() {
            let mut x = el("x", NS_MUC_USER);
            for &c in &change.status_codes {
                x.append_child(status(c));
            }
            let mut msg = el_attrs(
                "message",
                NS_STANZA,
                &[("from", Some(&self.jid)), ("type", Some("groupchat"))],
            );
            msg.append_child(x);
            self.fan_out(&msg, out);
        }
        if change.presence_broadcast {
            // Roles that became visible appear; roles that became hidden
            // leave everyone else's view.
            for o in self.occupants.clone() {
                let now = self.config.broadcasts(o.role);
                let before = old_broadcast.contains(&o.role);
                if now && !before {
                    self.publicise(env, &o, &Announce::default(), out);
                } else if before && !now {
                    let a = Announce {
                        force_unavailable: true,
                        ..Announce::default()
                    };
                    self.publicise(env, &o, &a, out);
                }
            }
        }
    }

    /// Destroys the room: everyone leaves with `<destroy/>` (and its
    /// alternate venue, reason and password); the room is gone.
    pub fn destroy(
        &mut self,
        env: &Env,
        venue: Option<&str>,
        reason: Option<&str>,
        password: Option<&str>,
        out: &mut Outcome,
    ) {
        let mut destroy = el_attrs("destroy", NS_MUC_USER, &[("jid", venue)]);
        if let Some(r) = reason {
            destroy.append_child(text_el("reason", NS_MUC_USER, r));
        }
        if let Some(p) = password {
            destroy.append_child(text_el("password", NS_MUC_USER, p));
        }
        let occupants = std::mem::take(&mut self.occupants);
        for mut o in occupants {
            let prev = o.role;
            o.role = Role::None;
            let a = Announce {
                destroy: Some(destroy.clone()),
                prev_role: Some(prev),
                ..Announce::default()
            };
            self.publicise(env, &o, &a, out);
        }
        if self.config.persistent {
            self.persist_delete(out);
        }
        out.room_gone = true;
    }

    /// Whether a full JID may destroy the room (an owner).
    pub fn may_destroy(&self, env: &Env, jid: &str) -> bool {
        self.affiliation(env, bare_of(jid)) == Affiliation::Owner
    }
}
