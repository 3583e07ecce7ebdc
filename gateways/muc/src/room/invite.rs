//! Mediated invitations and declines (XEP-0045 §7.8.2) and voice requests
//! (§8.6).

use satellite::Element;
use satellite::jid::Jid;

use super::config::{SubmittedForm, field};
use super::{Env, Outcome, Room};
use crate::affiliation::Affiliation;
use crate::permissions::{Whois, may_invite};
use crate::role::Role;
use crate::stanza::{
    Error, NS_CONFERENCE, NS_DATA, NS_MUC_USER, NS_STANZA, el, el_attrs, set_attr, text_el,
    without_muc_payloads,
};

/// The muc#request FORM_TYPE.
pub(super) const NS_REQUEST: &str = "http://jabber.org/protocol/muc#request";

impl Room {
    /// `<invite to=…/>`: forwarded from the room; in members-only rooms the
    /// invitee becomes a member.
    pub(super) fn invite(
        &mut self,
        env: &Env,
        m: &Element,
        from: &str,
        invite: &Element,
        out: &mut Outcome,
    ) {
        let Some(invitee) = invite.attr("to").and_then(|t| Jid::new(t).ok()) else {
            out.error(m, Error::new("cancel", "jid-malformed"), None);
            return;
        };
        let bare = super::bare_of(from);
        let affiliation = self.affiliation(env, bare);
        let role = self
            .occupant_by_session(from)
            .map_or_else(|| self.default_role(affiliation), |o| o.role);
        if !may_invite(
            role,
            affiliation,
            self.config.members_only,
            self.config.allow_member_invites,
        ) {
            out.error(m, Error::new("auth", "forbidden"), Some(&self.jid));
            return;
        }
        let reason = invite
            .get_child("reason", NS_MUC_USER)
            .map(Element::text)
            .unwrap_or_default();
        let invitee_bare = invitee.to_bare().to_string();
        // In semi-anonymous rooms the inviter is named by nick, unless the
        // invitee will be a moderator.
        let inviter = match self.occupant_by_session(from) {
            Some(o)
                if self.config.whois == Whois::Moderators
                    && self.default_role(self.affiliation(env, &invitee_bare))
                        != Role::Moderator =>
            {
                o.jid.clone()
            }
            _ => from.to_owned(),
        };
        let mut msg = without_muc_payloads(m);
        set_attr(&mut msg, "from", self.jid.as_str());
        set_attr(&mut msg, "to", invitee.to_string());
        let mut x = el("x", NS_MUC_USER);
        let mut inv = el_attrs("invite", NS_MUC_USER, &[("from", Some(&inviter))]);
        inv.append_child(text_el("reason", NS_MUC_USER, &reason));
        x.append_child(inv);
        if let Some(pw) = &self.config.password {
            x.append_child(text_el("password", NS_MUC_USER, pw));
        }
        msg.append_child(x);
        if !crate::stanza::has_child(&msg, "body") {
            let mut body = format!("{inviter} invited you to the room {}", self.jid);
            if !reason.is_empty() {
                body.push_str(&format!(" ({reason})"));
            }
            msg.append_child(text_el("body", NS_STANZA, &body));
        }
        let mut conference = el_attrs("x", NS_CONFERENCE, &[("jid", Some(&self.jid))]);
        if !reason.is_empty() {
            conference.append_text(reason.clone());
        }
        msg.append_child(conference);
        if self.config.members_only && self.affiliation(env, &invitee_bare) <= Affiliation::None {
            let why = format!("Invited by {from}");
            let _ = self.set_affiliation(
                env,
                None,
                &invitee_bare,
                Affiliation::Member,
                Some(&why),
                None,
                out,
            );
        }
        out.send(msg);
    }

    /// `<decline to=…/>`: forwarded to the inviter.
    pub(super) fn decline(&self, m: &Element, from: &str, decline: &Element, out: &mut Outcome) {
        let Some(to) = decline.attr("to").and_then(|t| Jid::new(t).ok()) else {
            out.error(m, Error::new("cancel", "jid-malformed"), None);
            return;
        };
        let reason = decline
            .get_child("reason", NS_MUC_USER)
            .map(Element::text)
            .unwrap_or_default();
        let mut msg = without_muc_payloads(m);
        set_attr(&mut msg, "from", self.jid.as_str());
        set_attr(&mut msg, "to", to.to_string());
        let mut x = el("x", NS_MUC_USER);
        let mut d = el_attrs("decline", NS_MUC_USER, &[("from", Some(from))]);
        d.append_child(text_el("reason", NS_MUC_USER, &reason));
        x.append_child(d);
        msg.append_child(x);
        if !crate::stanza::has_child(&msg, "body") {
            let mut body = format!("{from} declined your invite to the room {}", self.jid);
            if !reason.is_empty() {
                body.push_str(&format!(" ({reason})"));
            }
            msg.append_child(text_el("body", NS_STANZA, &body));
        }
        // An in-room JID reaches every session of that occupant.
        if to.to_bare().as_str() == self.jid
            && let Some(nick) = to.resource()
        {
            let nick = nick.to_string();
            self.fan_out_to(&msg, |o| o.nick == nick, out);
        } else {
            out.send(msg);
        }
    }

    /// A muc#request form: from a visitor, a request forwarded to the
    /// moderators; from a moderator, the approval that grants voice.
    pub(super) fn voice_request(
        &mut self,
        env: &Env,
        m: &Element,
        from: &str,
        form: &Element,
        out: &mut Outcome,
    ) {
        let Some(occ) = self.occupant_by_session(from).cloned() else {
            out.error(m, Error::new("cancel", "not-acceptable"), Some(&self.jid));
            return;
        };
        let fields = SubmittedForm::parse(form);
        if occ.role == Role::Moderator {
            if fields.boolean("muc#request_allow") != Some(true) {
                return;
            }
            let target = fields
                .value("muc#jid")
                .and_then(|j| self.occupant_by_session(j))
                .or_else(|| {
                    fields
                        .value("muc#roomnick")
                        .and_then(|n| self.occupant_by_nick(n))
                })
                .filter(|o| o.role == Role::Visitor)
                .map(|o| o.nick.clone());
            if let Some(nick) = target
                && let Err(e) = self.set_role(
                    env,
                    Some(from),
                    &nick,
                    Role::Participant,
                    Some("Voice granted"),
                    out,
                )
            {
                out.error(m, e, Some(&self.jid));
            }
            return;
        }
        if occ.role != Role::Visitor {
            return;
        }
        let mut x = el_attrs("x", NS_DATA, &[("type", Some("form"))]);
        x.append_child(text_el("title", NS_DATA, "Voice Request"));
        x.append_child(field("FORM_TYPE", "hidden", None, &[NS_REQUEST]));
        x.append_child(field("muc#jid", "jid-single", Some("User ID"), &[from]));
        x.append_child(field(
            "muc#roomnick",
            "text-single",
            Some("Room nickname"),
            &[&occ.nick],
        ));
        let mut role = field(
            "muc#role",
            "list-single",
            Some("Requested role"),
            &["participant"],
        );
        for r in Role::ALL {
            let mut o = el("option", NS_DATA);
            o.append_child(text_el("value", NS_DATA, r.as_str()));
            role.append_child(o);
        }
        x.append_child(role);
        x.append_child(field(
            "muc#request_allow",
            "boolean",
            Some("Grant voice to this person?"),
            &["0"],
        ));
        let mut msg = el_attrs(
            "message",
            NS_STANZA,
            &[("from", Some(&self.jid)), ("type", Some("normal"))],
        );
        msg.append_child(x);
        self.fan_out_to(&msg, |o| o.role == Role::Moderator, out);
    }
}
