//! Messages to the room: groupchat (broadcast and history), subject
//! changes, private messages between occupants, error bounces, and the
//! muc#user / muc#request payloads of normal messages.

use satellite::Element;

use super::{Env, Outcome, Room, Subject, addresses};
use crate::history::{is_historic, stamp};
use crate::permissions::{may_change_subject, may_send_pm, may_speak};
use crate::role::Role;
use crate::stanza::{
    Error, NS_DATA, NS_DELAY, NS_MUC_USER, NS_STANZA, child_text, el, el_attrs, error_condition,
    has_child, remove_attr, set_attr, text_el, without_muc_payloads,
};
use crate::store::archive::ArchivedMessage;

/// XEP-0359 unique and stable stanza ids.
const NS_SID: &str = "urn:xmpp:sid:0";

/// Error conditions that show a session is gone (its occupant is removed).
const KICKABLE: [&str; 9] = [
    "gone",
    "internal-server-error",
    "item-not-found",
    "jid-malformed",
    "recipient-unavailable",
    "redirect",
    "remote-server-not-found",
    "remote-server-timeout",
    "service-unavailable",
];

fn is_kickable(stanza: &Element) -> bool {
    error_condition(stanza).is_none_or(|(c, _)| KICKABLE.contains(&c.as_str()))
}

impl Room {
    /// Handles a message addressed to the room or to an occupant.
    pub fn handle_message(&mut self, env: &Env, m: &Element) -> Outcome {
        let mut out = Outcome::default();
        let Some(addr) = addresses(m) else {
            return out;
        };
        let type_ = m.attr("type");
        match (&addr.nick, type_) {
            (None, Some("groupchat")) => self.groupchat(env, m, &addr.from, &mut out),
            (_, Some("error")) => {
                if is_kickable(m) {
                    self.ghost(env, &addr.from, m, &mut out);
                }
            }
            (None, _) => self.normal_message(env, m, &addr.from, &mut out),
            (Some(nick), _) => {
                let nick = nick.clone();
                self.private_message(m, &addr.from, &nick, &mut out);
            }
        }
        self.settle(&mut out);
        out
    }

    /// A groupchat message: a subject change or a message for everyone.
    fn groupchat(&mut self, env: &Env, m: &Element, from: &str, out: &mut Outcome) {
        let Some(i) = self.occupant_index_by_session(from) else {
            out.error(
                m,
                may_speak(Role::None)
                    .err()
                    .unwrap_or_else(|| Error::new("cancel", "not-acceptable")),
                None,
            );
            return;
        };
        let (role, nick, occupant_jid, bare) = {
            let o = &self.occupants[i];
            (o.role, o.nick.clone(), o.jid.clone(), o.bare.clone())
        };
        if let Err(e) = may_speak(role) {
            out.error(m, e, None);
            return;
        }
        if has_child(m, "subject") && !has_child(m, "body") && !has_child(m, "thread") {
            if !may_change_subject(role, self.config.change_subject) {
                out.error(
                    m,
                    Error::new("auth", "forbidden")
                        .with_text("You are not allowed to change the subject"),
                    None,
                );
                return;
            }
            let text = child_text(m, "subject").unwrap_or_default();
            if self
                .subject
                .as_ref()
                .is_some_and(|s| s.text == text && s.nick.as_deref() == Some(nick.as_str()))
            {
                // The same subject from the same nick: nothing changes
                // (Prosody sends nothing either).
                return;
            }
            self.subject = Some(Subject {
                text,
                nick: Some(nick),
                set_at: env.unix(),
            });
            let mut msg = self.subject_message("");
            remove_attr(&mut msg, "to");
            self.fan_out(&msg, out);
            self.persist_subject(out);
            return;
        }
        // Build the reflection once: the sender's stanza, from the
        // occupant, without delays claiming to be from the room.
        let mut reflected = el(m.name(), &m.ns());
        for ((ns, name), value) in m.attrs().iter() {
            if ns.is_empty() && name.as_str() != "from" && name.as_str() != "to" {
                reflected.set_attr(ns.clone(), name.clone(), value.clone());
            }
        }
        for node in m.nodes() {
            // Nobody may claim a delay or a stanza-id from the room.
            if let Some(c) = node.as_element()
                && ((c.ns() == NS_DELAY && c.name() == "delay")
                    || (c.ns() == NS_SID && c.name() == "stanza-id"))
                && c.attr("from").or(c.attr("by")) == Some(self.jid.as_str())
            {
                continue;
            }
            reflected.append_node(node.clone());
        }
        set_attr(&mut reflected, "from", occupant_jid);
        if m.attr("id").is_none() {
            let id = self.new_id(env);
            set_attr(&mut reflected, "id", id);
        }
        if is_historic(&reflected) {
            if self.config.archiving {
                let id = self.new_id(env);
                reflected.append_child(el_attrs(
                    "stanza-id",
                    NS_SID,
                    &[("id", Some(&id)), ("by", Some(&self.jid))],
                ));
                out.archive.push(ArchivedMessage {
                    room: self.name.clone(),
                    id,
                    timestamp: env
                        .now
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_micros() as i64),
                    nick: nick.clone(),
                    real_jid: Some(bare),
                    occupant_id: None,
                    xml: String::from(&reflected),
                    retracted: false,
                });
            }
            let length = self
                .config
                .history_length
                .min(env.settings.max_history_messages) as usize;
            self.history.push(&reflected, &self.jid, env.unix(), length);
        }
        self.fan_out(&reflected, out);
    }

    /// Sends one built stanza to every session of every occupant, cloned
    /// with only `to` set.
    pub(super) fn fan_out(&self, stanza: &Element, out: &mut Outcome) {
        self.fan_out_to(stanza, |_| true, out);
    }

    /// [`Room::fan_out`] to the occupants `to` selects.
    pub(super) fn fan_out_to(
        &self,
        stanza: &Element,
        to: impl Fn(&super::Occupant) -> bool,
        out: &mut Outcome,
    ) {
        for o in self.occupants.iter().filter(|o| to(o)) {
            for jid in o.session_jids() {
                let mut s = stanza.clone();
                set_attr(&mut s, "to", jid);
                out.send(s);
            }
        }
    }

    /// The subject message for a joining session (`to` empty: none set).
    pub(super) fn subject_message(&self, to: &str) -> Element {
        let (from, text, at) = match &self.subject {
            Some(s) => (
                s.nick
                    .as_ref()
                    .map_or_else(|| self.jid.clone(), |n| format!("{}/{}", self.jid, n)),
                s.text.as_str(),
                Some(s.set_at),
            ),
            None => (self.jid.clone(), "", None),
        };
        let mut msg = el_attrs(
            "message",
            NS_STANZA,
            &[
                ("from", Some(&from)),
                ("to", Some(to)),
                ("type", Some("groupchat")),
            ],
        );
        msg.append_child(text_el("subject", NS_STANZA, text));
        if let Some(at) = at.filter(|_| !to.is_empty()) {
            msg.append_child(el_attrs(
                "delay",
                NS_DELAY,
                &[("from", Some(&self.jid)), ("stamp", Some(&stamp(at)))],
            ));
        }
        msg
    }

    /// A private message to `nick`, to every session of that occupant.
    fn private_message(&self, m: &Element, from: &str, nick: &str, out: &mut Outcome) {
        let Some(sender) = self.occupant_by_session(from) else {
            out.error(
                m,
                Error::new("cancel", "not-acceptable")
                    .with_text("You are not currently connected to this chat"),
                Some(&self.jid),
            );
            return;
        };
        if m.attr("type") == Some("groupchat") {
            out.error(m, Error::new("modify", "bad-request"), Some(&self.jid));
            return;
        }
        let Some(recipient) = self.occupant_by_nick(nick) else {
            out.error(
                m,
                Error::new("cancel", "item-not-found").with_text("Recipient not in room"),
                Some(&self.jid),
            );
            return;
        };
        if !may_send_pm(
            self.config.allow_pm,
            sender.role,
            recipient.role,
            sender.bare == recipient.bare,
        ) {
            out.error(
                m,
                Error::new("cancel", "policy-violation").with_text("Private messages are disabled"),
                Some(&self.jid),
            );
            return;
        }
        let mut pm = without_muc_payloads(m);
        pm.append_child(el("x", NS_MUC_USER));
        set_attr(&mut pm, "from", sender.jid.as_str());
        self.fan_out_to(&pm, |o| o.nick == nick, out);
    }

    /// A normal message to the room: invitation, decline or voice request.
    fn normal_message(&mut self, env: &Env, m: &Element, from: &str, out: &mut Outcome) {
        if let Some(x) = m.get_child("x", NS_MUC_USER) {
            match x.children().next() {
                Some(c) if c.name() == "invite" && c.attr("to").is_some() => {
                    self.invite(env, m, from, c, out);
                }
                Some(c) if c.name() == "decline" && c.attr("to").is_some() => {
                    self.decline(m, from, c, out);
                }
                _ => out.error(m, Error::new("cancel", "bad-request"), Some(&self.jid)),
            }
            return;
        }
        if let Some(form) = m.get_child("x", NS_DATA)
            && crate::room::config::SubmittedForm::parse(form).form_type()
                == Some(super::invite::NS_REQUEST)
        {
            self.voice_request(env, m, from, form, out);
            return;
        }
        out.error(
            m,
            Error::new("cancel", "service-unavailable"),
            Some(&self.jid),
        );
    }
}
