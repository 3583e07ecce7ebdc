//! A room's configuration (muc#roomconfig, XEP-0045 §10.2) and its data
//! form: the form an owner fetches and what a submitted one changes.
//! Stored as JSON (serde) for persistent rooms.

use std::collections::BTreeSet;

use satellite::Element;
use serde::{Deserialize, Serialize};

use crate::permissions::{AllowPm, Whois};
use crate::role::Role;
use crate::stanza::{NS_DATA, el, el_attrs, set_attr, text_el};

/// The muc#roomconfig FORM_TYPE.
pub const FORM_TYPE: &str = "http://jabber.org/protocol/muc#roomconfig";
/// The field Prosody uses for "members may invite".
const ALLOW_MEMBER_INVITES: &str = "{http://prosody.im/protocol/muc}roomconfig_allowmemberinvites";

/// Everything an owner configures. Unknown JSON fields are ignored and
/// missing ones take their defaults, so stored rooms survive upgrades.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RoomConfig {
    /// Natural-language room name (`muc#roomconfig_roomname`).
    pub name: Option<String>,
    /// Short description (`muc#roomconfig_roomdesc`).
    pub description: Option<String>,
    /// Primary language (`muc#roomconfig_lang`).
    pub language: Option<String>,
    /// Kept when empty (`muc#roomconfig_persistentroom`).
    pub persistent: bool,
    /// Listed in disco#items (`muc#roomconfig_publicroom`).
    pub public: bool,
    /// Only members may enter (`muc#roomconfig_membersonly`).
    pub members_only: bool,
    /// Members may invite (and so make) new members in members-only rooms.
    pub allow_member_invites: bool,
    /// Newcomers without affiliation are visitors (`muc#roomconfig_moderatedroom`).
    pub moderated: bool,
    /// Password to enter (`muc#roomconfig_roomsecret`).
    pub password: Option<String>,
    /// Who sees real JIDs (`muc#roomconfig_whois`).
    pub whois: Whois,
    /// Participants may change the subject (`muc#roomconfig_changesubject`).
    pub change_subject: bool,
    /// Who may send private messages (`muc#roomconfig_allowpm`).
    pub allow_pm: AllowPm,
    /// Messages kept for history (`muc#roomconfig_historylength`).
    pub history_length: u32,
    /// Messages sent on join when the client asks for no particular amount
    /// (`muc#roomconfig_defaulthistorymessages`).
    pub default_history_messages: u32,
    /// Roles whose presence is broadcast (`muc#roomconfig_presencebroadcast`).
    pub presence_broadcast: BTreeSet<Role>,
    /// Occupants at most; 0 = the service's limit (`muc#roomconfig_maxusers`).
    pub max_users: u32,
    /// Contacts for the room (`muc#roomconfig_contactjid`).
    pub contact_jids: Vec<String>,
    /// Messages are archived (`muc#roomconfig_enablearchiving`; status
    /// 170/171 when it changes). On by default, as Prosody's
    /// `muc_log_by_default`.
    pub archiving: bool,
}

impl Default for RoomConfig {
    fn default() -> Self {
        Self {
            name: None,
            description: None,
            language: None,
            persistent: false,
            public: false,
            members_only: false,
            allow_member_invites: false,
            moderated: false,
            password: None,
            whois: Whois::Moderators,
            change_subject: false,
            allow_pm: AllowPm::Anyone,
            history_length: 20,
            default_history_messages: 20,
            presence_broadcast: [Role::Visitor, Role::Participant, Role::Moderator].into(),
            max_users: 0,
            contact_jids: Vec::new(),
            archiving: true,
        }
    }
}

/// What a submitted form changed, for the room to act on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigChange {
    /// Status codes for the notification message (104, 170–173).
    pub status_codes: BTreeSet<u16>,
    /// The room just became members-only (non-members leave with 322).
    pub became_members_only: bool,
    /// Persistence switched (to the new value).
    pub persistent: Option<bool>,
    /// The whois setting switched.
    pub whois: bool,
    /// The presence broadcast roles switched.
    pub presence_broadcast: bool,
}

/// A submitted data form: field values by `var`.
#[derive(Debug, Clone, Default)]
pub struct SubmittedForm {
    fields: Vec<(String, Vec<String>)>,
}

impl SubmittedForm {
    /// Reads the fields of a `<x xmlns='jabber:x:data'/>`.
    pub fn parse(x: &Element) -> Self {
        let fields = x
            .children()
            .filter(|c| c.is("field", NS_DATA))
            .filter_map(|f| {
                let var = f.attr("var")?.to_owned();
                let values = f
                    .children()
                    .filter(|v| v.is("value", NS_DATA))
                    .map(Element::text)
                    .collect();
                Some((var, values))
            })
            .collect();
        Self { fields }
    }

    /// The values of a field, if submitted.
    pub fn values(&self, var: &str) -> Option<&[String]> {
        self.fields
            .iter()
            .find(|(v, _)| v == var)
            .map(|(_, vals)| vals.as_slice())
    }

    /// The first value of a field (empty when the field has no value).
    pub fn value(&self, var: &str) -> Option<&str> {
        self.values(var)
            .map(|v| v.first().map_or("", String::as_str))
    }

    /// A boolean field (`1`/`true`, `0`/`false`).
    pub fn boolean(&self, var: &str) -> Option<bool> {
        match self.value(var)? {
            "1" | "true" => Some(true),
            "0" | "false" | "" => Some(false),
            _ => None,
        }
    }

    /// The form's FORM_TYPE, if given.
    pub fn form_type(&self) -> Option<&str> {
        self.value("FORM_TYPE")
    }

    /// Drops a field (one the submitter may not change).
    pub fn remove(&mut self, var: &str) {
        self.fields.retain(|(v, _)| v != var);
    }

    /// Whether no field was submitted (an instant room's empty form).
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

impl RoomConfig {
    /// Applies a submitted form; only submitted fields change. `max_history`
    /// caps `historylength` (the service's `max_history_messages`).
    pub fn apply(&mut self, form: &SubmittedForm, max_history: u32) -> ConfigChange {
        let mut change = ConfigChange::default();
        let mut changed = false;
        macro_rules! set {
            ($field:expr, $new:expr) => {{
                let new = $new;
                if $field != new {
                    $field = new;
                    changed = true;
                    true
                } else {
                    false
                }
            }};
        }
        if let Some(v) = form.value("muc#roomconfig_roomname") {
            set!(self.name, non_empty(v));
        }
        if let Some(v) = form.value("muc#roomconfig_roomdesc") {
            set!(self.description, non_empty(v));
        }
        if let Some(v) = form.value("muc#roomconfig_lang") {
            set!(self.language, non_empty(v));
        }
        if let Some(v) = form.boolean("muc#roomconfig_persistentroom")
            && set!(self.persistent, v)
        {
            change.persistent = Some(v);
        }
        if let Some(v) = form.boolean("muc#roomconfig_publicroom") {
            set!(self.public, v);
        }
        if let Some(v) = form.boolean("muc#roomconfig_membersonly")
            && set!(self.members_only, v)
        {
            change.became_members_only = v;
        }
        for var in [ALLOW_MEMBER_INVITES, "muc#roomconfig_allowinvites"] {
            if let Some(v) = form.boolean(var) {
                set!(self.allow_member_invites, v);
            }
        }
        if let Some(v) = form.boolean("muc#roomconfig_moderatedroom") {
            set!(self.moderated, v);
        }
        if let Some(v) = form.value("muc#roomconfig_roomsecret") {
            set!(self.password, non_empty(v));
        }
        if form.boolean("muc#roomconfig_passwordprotectedroom") == Some(false) {
            set!(self.password, None);
        }
        if let Some(w) = form.value("muc#roomconfig_whois").and_then(Whois::parse)
            && self.whois != w
        {
            // Prosody announces a whois change with 172/173 alone.
            self.whois = w;
            change.whois = true;
            change.status_codes.insert(match w {
                Whois::Anyone => 172,
                Whois::Moderators => 173,
            });
        }
        if let Some(v) = form.boolean("muc#roomconfig_changesubject") {
            set!(self.change_subject, v);
        }
        if let Some(v) = form
            .value("muc#roomconfig_allowpm")
            .and_then(AllowPm::parse)
        {
            set!(self.allow_pm, v);
        }
        if let Some(n) = form
            .value("muc#roomconfig_historylength")
            .and_then(|v| v.trim().parse::<u32>().ok())
        {
            set!(self.history_length, n.min(max_history));
        }
        if let Some(n) = form
            .value("muc#roomconfig_defaulthistorymessages")
            .and_then(|v| v.trim().parse::<u32>().ok())
        {
            set!(self.default_history_messages, n.min(self.history_length));
        }
        if let Some(values) = form.values("muc#roomconfig_presencebroadcast") {
            let roles: BTreeSet<Role> = values.iter().filter_map(|v| Role::parse(v)).collect();
            if set!(self.presence_broadcast, roles) {
                change.presence_broadcast = true;
            }
        }
        if let Some(n) = form
            .value("muc#roomconfig_maxusers")
            .map(|v| {
                if v == "none" {
                    Some(0)
                } else {
                    v.trim().parse::<u32>().ok()
                }
            })
            .and_then(|n| n)
        {
            set!(self.max_users, n);
        }
        if let Some(values) = form.values("muc#roomconfig_contactjid") {
            set!(
                self.contact_jids,
                values
                    .iter()
                    .filter(|v| !v.is_empty())
                    .cloned()
                    .collect::<Vec<_>>()
            );
        }
        if let Some(v) = form.boolean("muc#roomconfig_enablearchiving")
            && set!(self.archiving, v)
        {
            change.status_codes.insert(if v { 170 } else { 171 });
        }
        if changed {
            change.status_codes.insert(104);
        }
        change
    }

    /// The configuration form (type `form`) with the current values, in
    /// Prosody's order and sections, without the fields named in `omit`
    /// (those the asker may not change).
    pub fn form(&self, room_jid: &str, omit: &[&str]) -> Element {
        let mut x = self.full_form(room_jid);
        if !omit.is_empty() {
            let kept: Vec<Element> = x
                .children()
                .filter(|f| f.attr("var").is_none_or(|v| !omit.contains(&v)))
                .cloned()
                .collect();
            let mut trimmed = el_attrs("x", NS_DATA, &[("type", Some("form"))]);
            for f in kept {
                trimmed.append_child(f);
            }
            x = trimmed;
        }
        x
    }

    fn full_form(&self, room_jid: &str) -> Element {
        let mut x = el_attrs("x", NS_DATA, &[("type", Some("form"))]);
        x.append_child(text_el(
            "title",
            NS_DATA,
            &format!("Configuration for {room_jid}"),
        ));
        x.append_child(text_el(
            "instructions",
            NS_DATA,
            "Complete and submit this form to configure the room.",
        ));
        x.append_child(field("FORM_TYPE", "hidden", None, &[FORM_TYPE]));
        x.append_child(fixed("Room information"));
        x.append_child(field(
            "muc#roomconfig_roomname",
            "text-single",
            Some("Title"),
            &[self.name.as_deref().unwrap_or("")],
        ));
        x.append_child(field(
            "muc#roomconfig_roomdesc",
            "text-single",
            Some("Description"),
            &[self.description.as_deref().unwrap_or("")],
        ));
        x.append_child(field(
            "muc#roomconfig_lang",
            "text-single",
            Some("Language tag for room (e.g. 'en', 'de', 'fr' etc.)"),
            &[self.language.as_deref().unwrap_or("")],
        ));
        x.append_child(boolean(
            "muc#roomconfig_persistentroom",
            "Persistent (room should remain even when it is empty)",
            self.persistent,
        ));
        x.append_child(boolean(
            "muc#roomconfig_publicroom",
            "Include room information in public lists",
            self.public,
        ));
        x.append_child(field(
            "muc#roomconfig_contactjid",
            "jid-multi",
            Some("Contact addresses"),
            &self
                .contact_jids
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        ));
        x.append_child(fixed("Access to the room"));
        x.append_child(field(
            "muc#roomconfig_roomsecret",
            "text-private",
            Some("Password"),
            &[self.password.as_deref().unwrap_or("")],
        ));
        x.append_child(boolean(
            "muc#roomconfig_membersonly",
            "Only allow members to join",
            self.members_only,
        ));
        x.append_child(boolean(
            ALLOW_MEMBER_INVITES,
            "Allow members to invite new members",
            self.allow_member_invites,
        ));
        let max_users = if self.max_users == 0 {
            "none".to_owned()
        } else {
            self.max_users.to_string()
        };
        let mut maxusers = field(
            "muc#roomconfig_maxusers",
            "list-single",
            Some("Maximum number of occupants"),
            &[&max_users],
        );
        for opt in ["none", "10", "20", "30", "50", "100", "200", "500", "1000"] {
            maxusers.append_child(option(opt, opt));
        }
        x.append_child(maxusers);
        x.append_child(fixed("Permissions in the room"));
        x.append_child(boolean(
            "muc#roomconfig_changesubject",
            "Allow anyone to set the room's subject",
            self.change_subject,
        ));
        x.append_child(boolean(
            "muc#roomconfig_moderatedroom",
            "Moderated (require permission to speak)",
            self.moderated,
        ));
        let mut whois = field(
            "muc#roomconfig_whois",
            "list-single",
            Some("Addresses (JIDs) of room occupants may be viewed by:"),
            &[self.whois.as_str()],
        );
        whois.append_child(option("Moderators only", "moderators"));
        whois.append_child(option("Anyone", "anyone"));
        x.append_child(whois);
        let mut pm = field(
            "muc#roomconfig_allowpm",
            "list-single",
            Some("Allow private messages from"),
            &[self.allow_pm.as_str()],
        );
        for (label, v) in [
            ("Everyone", "anyone"),
            ("Participants", "participants"),
            ("Moderators", "moderators"),
            ("Nobody", "none"),
        ] {
            pm.append_child(option(label, v));
        }
        x.append_child(pm);
        x.append_child(fixed("Other options"));
        x.append_child(field(
            "muc#roomconfig_historylength",
            "text-single",
            Some("Maximum number of history messages returned by room"),
            &[&self.history_length.to_string()],
        ));
        x.append_child(field(
            "muc#roomconfig_defaulthistorymessages",
            "text-single",
            Some("Default number of history messages returned by room"),
            &[&self.default_history_messages.to_string()],
        ));
        let broadcast: Vec<&str> = self.presence_broadcast.iter().map(|r| r.as_str()).collect();
        let mut pb = field(
            "muc#roomconfig_presencebroadcast",
            "list-multi",
            Some("Only show participants with roles:"),
            &broadcast,
        );
        for r in Role::ALL {
            pb.append_child(option(r.as_str(), r.as_str()));
        }
        x.append_child(pb);
        x.append_child(boolean(
            "muc#roomconfig_enablearchiving",
            "Archive chat on server",
            self.archiving,
        ));
        x
    }

    /// Whether `role`'s presence is broadcast.
    pub fn broadcasts(&self, role: Role) -> bool {
        self.presence_broadcast.contains(&role)
    }
}

/// A form field with values.
pub fn field(var: &str, type_: &str, label: Option<&str>, values: &[&str]) -> Element {
    let mut f = el_attrs(
        "field",
        NS_DATA,
        &[("var", Some(var)), ("type", Some(type_)), ("label", label)],
    );
    for v in values {
        f.append_child(text_el("value", NS_DATA, v));
    }
    f
}

fn boolean(var: &str, label: &str, value: bool) -> Element {
    field(
        var,
        "boolean",
        Some(label),
        &[if value { "1" } else { "0" }],
    )
}

fn fixed(text: &str) -> Element {
    let mut f = el("field", NS_DATA);
    set_attr(&mut f, "type", "fixed");
    f.append_child(text_el("value", NS_DATA, text));
    f
}

fn option(label: &str, value: &str) -> Element {
    let mut o = el("option", NS_DATA);
    set_attr(&mut o, "label", label);
    o.append_child(text_el("value", NS_DATA, value));
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(xml: &str) -> SubmittedForm {
        let x: Element = format!("<x xmlns='jabber:x:data' type='submit'>{xml}</x>")
            .parse()
            .expect("xml");
        SubmittedForm::parse(&x)
    }

    #[test]
    fn json_round_trip_and_tolerant_of_missing_fields() {
        let c = RoomConfig {
            name: Some("Garden".into()),
            password: Some("x".into()),
            whois: Whois::Anyone,
            ..RoomConfig::default()
        };
        let json = serde_json::to_string(&c).expect("json");
        assert_eq!(serde_json::from_str::<RoomConfig>(&json).expect("parse"), c);
        let partial: RoomConfig =
            serde_json::from_str(r#"{"persistent":true,"later":1}"#).expect("parse");
        assert!(partial.persistent);
        assert_eq!(partial.history_length, 20);
    }

    #[test]
    fn empty_form_changes_nothing() {
        let mut c = RoomConfig::default();
        let change = c.apply(&form(""), 20);
        assert!(change.status_codes.is_empty());
        assert_eq!(c, RoomConfig::default());
    }

    #[test]
    fn changes_give_104_and_whois_gives_172_173() {
        let mut c = RoomConfig::default();
        let change = c.apply(
            &form("<field var='muc#roomconfig_membersonly'><value>1</value></field><field var='muc#roomconfig_whois'><value>anyone</value></field>"),
            20,
        );
        assert_eq!(change.status_codes, [104, 172].into());
        assert!(change.became_members_only);
        let change = c.apply(
            &form("<field var='muc#roomconfig_whois'><value>moderators</value></field>"),
            20,
        );
        assert_eq!(change.status_codes, [173].into());
        let change = c.apply(
            &form("<field var='muc#roomconfig_membersonly'><value>1</value></field>"),
            20,
        );
        assert!(change.status_codes.is_empty(), "same value is no change");
    }

    #[test]
    fn password_set_and_cleared() {
        let mut c = RoomConfig::default();
        c.apply(
            &form("<field var='muc#roomconfig_roomsecret'><value>s</value></field>"),
            20,
        );
        assert_eq!(c.password.as_deref(), Some("s"));
        let change = c.apply(&form("<field var='muc#roomconfig_roomsecret'/>"), 20);
        assert_eq!(c.password, None);
        assert_eq!(change.status_codes, [104].into());
    }

    #[test]
    fn history_capped_by_service() {
        let mut c = RoomConfig::default();
        c.apply(
            &form("<field var='muc#roomconfig_historylength'><value>500</value></field>"),
            50,
        );
        assert_eq!(c.history_length, 50);
    }

    #[test]
    fn form_lists_current_values() {
        let c = RoomConfig {
            moderated: true,
            ..RoomConfig::default()
        };
        let x = c.form("room@muc.example.org", &[]);
        let parsed = SubmittedForm::parse(&x);
        assert_eq!(parsed.form_type(), Some(FORM_TYPE));
        assert_eq!(parsed.boolean("muc#roomconfig_moderatedroom"), Some(true));
        assert_eq!(parsed.value("muc#roomconfig_whois"), Some("moderators"));
        assert_eq!(
            parsed
                .values("muc#roomconfig_presencebroadcast")
                .map(<[String]>::len),
            Some(3)
        );
        let trimmed = SubmittedForm::parse(&c.form("r@m", &["muc#roomconfig_persistentroom"]));
        assert!(trimmed.value("muc#roomconfig_persistentroom").is_none());
        assert!(trimmed.value("muc#roomconfig_publicroom").is_some());
        // Submitting the form as given changes nothing.
        let mut same = c.clone();
        assert!(same.apply(&parsed, 20).status_codes.is_empty());
    }
}
