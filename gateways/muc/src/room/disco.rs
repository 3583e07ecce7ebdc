//! Service discovery of a room (XEP-0045 §6.4, §6.5, §7.10 reserved nick):
//! identity, muc_* features, the muc#roominfo form, occupants as items.

use satellite::Element;
use satellite::jid::Jid;

use super::config::field;
use super::{Env, Room};
use crate::permissions::Whois;
use crate::stanza::{NS_DATA, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_MUC, NS_REGISTER, el, el_attrs};

/// The muc#roominfo FORM_TYPE.
const ROOMINFO: &str = "http://jabber.org/protocol/muc#roominfo";

impl Room {
    /// The room's features, as disco#info lists them.
    pub fn features(&self) -> Vec<&'static str> {
        let c = &self.config;
        let mut features = vec![
            NS_MUC,
            "http://jabber.org/protocol/muc#stable_id",
            "http://jabber.org/protocol/muc#request",
            NS_REGISTER,
            if c.password.is_some() {
                "muc_passwordprotected"
            } else {
                "muc_unsecured"
            },
            if c.public { "muc_public" } else { "muc_hidden" },
            if c.members_only {
                "muc_membersonly"
            } else {
                "muc_open"
            },
            if c.moderated {
                "muc_moderated"
            } else {
                "muc_unmoderated"
            },
            if c.persistent {
                "muc_persistent"
            } else {
                "muc_temporary"
            },
            match c.whois {
                Whois::Anyone => "muc_nonanonymous",
                Whois::Moderators => "muc_semianonymous",
            },
            // XEP-0410 self-ping, answered by the room itself.
            "urn:xmpp:ping",
            "http://jabber.org/protocol/muc#self-ping-optimization",
        ];
        if c.archiving {
            features.push(crate::mam::NS_MAM);
            features.push(crate::mam::NS_MAM_EXTENDED);
        }
        features
    }

    /// The name shown for the room (its configured name, else its
    /// localpart).
    pub fn display_name(&self) -> &str {
        self.config.name.as_deref().unwrap_or(&self.name)
    }

    /// disco#info of the room (`node` absent), or of `x-roomuser-item`
    /// (the asker's registered nick).
    pub(super) fn disco_info(&self, _env: &Env, from: &Jid, node: Option<&str>) -> Element {
        let mut q = el_attrs("query", NS_DISCO_INFO, &[("node", node)]);
        if node == Some("x-roomuser-item") {
            if let Some(nick) = self.registered_nick(from.to_bare().as_str()) {
                q.append_child(el_attrs(
                    "identity",
                    NS_DISCO_INFO,
                    &[
                        ("category", Some("conference")),
                        ("type", Some("text")),
                        ("name", Some(nick)),
                    ],
                ));
            }
            return q;
        }
        q.append_child(el_attrs(
            "identity",
            NS_DISCO_INFO,
            &[
                ("category", Some("conference")),
                ("type", Some("text")),
                ("name", Some(self.display_name())),
            ],
        ));
        for f in self.features() {
            q.append_child(el_attrs("feature", NS_DISCO_INFO, &[("var", Some(f))]));
        }
        let c = &self.config;
        let mut x = el_attrs("x", NS_DATA, &[("type", Some("result"))]);
        x.append_child(field("FORM_TYPE", "hidden", None, &[ROOMINFO]));
        x.append_child(field(
            "muc#roominfo_occupants",
            "text-single",
            Some("Number of occupants"),
            &[&self.occupants.len().to_string()],
        ));
        x.append_child(field(
            "muc#roomconfig_roomname",
            "text-single",
            Some("Title"),
            &[c.name.as_deref().unwrap_or("")],
        ));
        x.append_child(field(
            "muc#roominfo_description",
            "text-single",
            Some("Description"),
            &[c.description.as_deref().unwrap_or("")],
        ));
        x.append_child(field(
            "muc#roominfo_lang",
            "text-single",
            Some("Language"),
            &[c.language.as_deref().unwrap_or("")],
        ));
        x.append_child(field(
            "muc#roominfo_subject",
            "text-single",
            Some("Subject"),
            &[self.subject.as_ref().map_or("", |s| s.text.as_str())],
        ));
        x.append_child(field(
            "muc#roomconfig_changesubject",
            "boolean",
            Some("Occupants may change the subject"),
            &[if c.change_subject { "1" } else { "0" }],
        ));
        x.append_child(field(
            "muc#roominfo_contactjid",
            "jid-multi",
            Some("Contact addresses"),
            &c.contact_jids
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        ));
        x.append_child(field(
            "{http://prosody.im/protocol/muc}roomconfig_allowmemberinvites",
            "boolean",
            Some("Allow members to invite new members"),
            &[if c.allow_member_invites { "1" } else { "0" }],
        ));
        x.append_child(field(
            "muc#roomconfig_allowinvites",
            "boolean",
            Some("Allow users to invite other users"),
            &[if !c.members_only || c.allow_member_invites {
                "1"
            } else {
                "0"
            }],
        ));
        q.append_child(x);
        q
    }

    /// disco#items of the room: its occupants in non-anonymous rooms,
    /// nothing otherwise.
    pub(super) fn disco_items(&self) -> Element {
        let mut q = el("query", NS_DISCO_ITEMS);
        if self.config.whois == Whois::Anyone {
            for o in &self.occupants {
                q.append_child(el_attrs(
                    "item",
                    NS_DISCO_ITEMS,
                    &[("jid", Some(&o.jid)), ("name", Some(&o.nick))],
                ));
            }
        }
        q
    }
}
