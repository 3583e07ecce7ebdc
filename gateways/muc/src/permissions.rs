//! XEP-0045's permission tables in one place, as data: default roles,
//! who may change whose role and affiliation, who may read which list.
//! Where the XEP leaves a choice, the rows follow Prosody 0.12's mod_muc
//! (e.g. a moderator may kick an occupant of equal affiliation).

use serde::{Deserialize, Serialize};

use crate::affiliation::Affiliation;
use crate::role::Role;
use crate::stanza::Error;

/// The kind of room, as far as default roles go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomKind {
    /// Open and unmoderated.
    Open,
    /// Moderated (newcomers are visitors).
    Moderated,
    /// Members-only (moderated or not: non-members may not enter).
    MembersOnly,
}

/// Default role on entering, per affiliation, for
/// `[Open, Moderated, MembersOnly]` rooms (XEP-0045 §5.1.2).
pub const DEFAULT_ROLE: [(Affiliation, [Role; 3]); 5] = [
    (Affiliation::Owner, [Role::Moderator; 3]),
    (Affiliation::Admin, [Role::Moderator; 3]),
    (Affiliation::Member, [Role::Participant; 3]),
    (
        Affiliation::None,
        [Role::Participant, Role::Visitor, Role::None],
    ),
    (Affiliation::Outcast, [Role::None; 3]),
];

/// The role an occupant with `affiliation` gets in a room of `kind`.
pub fn default_role(affiliation: Affiliation, kind: RoomKind) -> Role {
    let column = match kind {
        RoomKind::Open => 0,
        RoomKind::Moderated => 1,
        RoomKind::MembersOnly => 2,
    };
    DEFAULT_ROLE
        .iter()
        .find(|(a, _)| *a == affiliation)
        .map_or(Role::None, |(_, roles)| roles[column])
}

/// One rule of role changes (kick, voice, moderator): a change is refused
/// with `not-allowed` when any rule's condition holds.
pub struct RoleRule {
    /// What the rule says.
    pub doc: &'static str,
    /// Whether it refuses: (actor affiliation, actor role, target
    /// affiliation, target's current role, new role).
    pub refuses: fn(Affiliation, Role, Affiliation, Role, Role) -> bool,
}

/// Who may change whose role (XEP-0045 §8.2–8.5, §9.6–9.7; Prosody's
/// `may_set_role`).
pub const ROLE_RULES: [RoleRule; 3] = [
    RoleRule {
        doc: "nobody acts on an occupant of higher affiliation",
        refuses: |actor_aff, _, target_aff, _, _| actor_aff < target_aff,
    },
    RoleRule {
        doc: "only admins and owners grant or revoke moderator",
        refuses: |actor_aff, _, _, target_role, new_role| {
            (target_role == Role::Moderator || new_role == Role::Moderator)
                && actor_aff < Affiliation::Admin
        },
    },
    RoleRule {
        doc: "the actor must be a moderator in the room",
        refuses: |_, actor_role, _, _, _| actor_role != Role::Moderator,
    },
];

/// Whether the actor may give the target `new_role`.
pub fn may_set_role(
    actor_aff: Affiliation,
    actor_role: Role,
    target_aff: Affiliation,
    target_role: Role,
    new_role: Role,
) -> Result<(), Error> {
    if ROLE_RULES
        .iter()
        .any(|r| (r.refuses)(actor_aff, actor_role, target_aff, target_role, new_role))
    {
        return Err(Error::new("cancel", "not-allowed"));
    }
    Ok(())
}

/// Affiliations an admin may set, and may change (XEP-0045 §9): below
/// admin only.
pub const ADMIN_MANAGES: [Affiliation; 3] =
    [Affiliation::Outcast, Affiliation::None, Affiliation::Member];

/// Whether the actor may change the target's affiliation from `current` to
/// `new`. `last_owner_self` is true when an owner demotes themselves and
/// no other owner is left (refused with `conflict`, as Prosody).
pub fn may_set_affiliation(
    actor: Affiliation,
    current: Affiliation,
    new: Affiliation,
    last_owner_self: bool,
) -> Result<(), Error> {
    match actor {
        Affiliation::Owner if last_owner_self && new < Affiliation::Owner => {
            Err(Error::new("cancel", "conflict"))
        }
        Affiliation::Owner => Ok(()),
        Affiliation::Admin if ADMIN_MANAGES.contains(&current) && ADMIN_MANAGES.contains(&new) => {
            Ok(())
        }
        _ => Err(Error::new("cancel", "not-allowed")),
    }
}

/// Whether `actor` may read the list of `list` affiliations. Admins read
/// lists up to their own rank; in members-only non-anonymous rooms members
/// read every list (Prosody).
pub fn may_list_affiliation(
    actor: Affiliation,
    list: Affiliation,
    members_only: bool,
    non_anonymous: bool,
) -> bool {
    (actor >= Affiliation::Admin && actor >= list)
        || (members_only && non_anonymous && actor >= Affiliation::Member)
}

/// Whether an occupant of `role` may read the occupants of a role
/// (moderators only).
pub fn may_list_role(role: Role) -> bool {
    role == Role::Moderator
}

/// Who may see occupants' real JIDs (`muc#roomconfig_whois`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Whois {
    /// Moderators only (semi-anonymous).
    #[default]
    Moderators,
    /// Everyone (non-anonymous).
    Anyone,
}

/// Whether an occupant of `role` sees real JIDs (admins and owners always
/// do, whatever their role).
pub fn sees_real_jids(whois: Whois, role: Role, affiliation: Affiliation) -> bool {
    whois == Whois::Anyone || role == Role::Moderator || affiliation >= Affiliation::Admin
}

/// Whether an occupant of `role` may change the subject.
pub fn may_change_subject(role: Role, anyone_may: bool) -> bool {
    role == Role::Moderator || (anyone_may && role >= Role::Participant)
}

/// Whether an occupant of `role` may speak (groupchat).
pub fn may_speak(role: Role) -> Result<(), Error> {
    match role {
        Role::None => Err(Error::new("cancel", "not-acceptable")
            .with_text("You are not currently connected to this chat")),
        Role::Visitor => Err(Error::new("auth", "forbidden")
            .with_text("You do not currently have permission to speak in this chat")),
        _ => Ok(()),
    }
}

/// Who may send private messages (`muc#roomconfig_allowpm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AllowPm {
    /// Every occupant.
    #[default]
    Anyone,
    /// Participants and moderators.
    Participants,
    /// Moderators only.
    Moderators,
    /// Nobody.
    None,
}

impl Whois {
    /// The form value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Moderators => "moderators",
            Self::Anyone => "anyone",
        }
    }

    /// Parses a form value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "moderators" => Some(Self::Moderators),
            "anyone" => Some(Self::Anyone),
            _ => None,
        }
    }
}

impl AllowPm {
    /// The form value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Anyone => "anyone",
            Self::Participants => "participants",
            Self::Moderators => "moderators",
            Self::None => "none",
        }
    }

    /// Parses a form value.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "anyone" => Self::Anyone,
            "participants" => Self::Participants,
            "moderators" => Self::Moderators,
            "none" => Self::None,
            _ => return None,
        })
    }
}

/// Whether a sender of `role` may send a private message under `policy`
/// (a message to a moderator or to oneself always passes).
pub fn may_send_pm(policy: AllowPm, sender: Role, recipient: Role, to_self: bool) -> bool {
    if to_self || recipient == Role::Moderator && policy != AllowPm::None {
        return true;
    }
    match policy {
        AllowPm::Anyone => sender >= Role::Visitor,
        AllowPm::Participants => sender >= Role::Participant,
        AllowPm::Moderators => sender == Role::Moderator,
        AllowPm::None => false,
    }
}

/// Whether someone may send a mediated invitation: a visitor or more, and
/// in members-only rooms an admin (or a member when members may invite).
pub fn may_invite(
    role: Role,
    affiliation: Affiliation,
    members_only: bool,
    members_may_invite: bool,
) -> bool {
    if role <= Role::Visitor {
        return false;
    }
    if members_only {
        let needed = if members_may_invite {
            Affiliation::Member
        } else {
            Affiliation::Admin
        };
        return affiliation >= needed;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use Affiliation as A;
    use Role as R;

    #[test]
    fn default_role_rows() {
        // One assertion per row of DEFAULT_ROLE.
        let kinds = [RoomKind::Open, RoomKind::Moderated, RoomKind::MembersOnly];
        let expect = [
            (A::Owner, [R::Moderator, R::Moderator, R::Moderator]),
            (A::Admin, [R::Moderator, R::Moderator, R::Moderator]),
            (A::Member, [R::Participant, R::Participant, R::Participant]),
            (A::None, [R::Participant, R::Visitor, R::None]),
            (A::Outcast, [R::None, R::None, R::None]),
        ];
        for (aff, roles) in expect {
            for (kind, role) in kinds.iter().zip(roles) {
                assert_eq!(default_role(aff, *kind), role, "{aff} in {kind:?}");
            }
        }
    }

    #[test]
    fn role_rule_higher_affiliation_is_untouchable() {
        assert!(may_set_role(A::Admin, R::Moderator, A::Owner, R::Moderator, R::None).is_err());
        assert!(may_set_role(A::None, R::Moderator, A::Member, R::Participant, R::None).is_err());
        // Equal affiliation may be kicked (Prosody #1724).
        assert!(may_set_role(A::Admin, R::Moderator, A::Admin, R::Participant, R::None).is_ok());
    }

    #[test]
    fn role_rule_only_admins_touch_moderators() {
        assert!(
            may_set_role(
                A::Member,
                R::Moderator,
                A::None,
                R::Participant,
                R::Moderator
            )
            .is_err()
        );
        assert!(may_set_role(A::Member, R::Moderator, A::None, R::Moderator, R::None).is_err());
        assert!(
            may_set_role(
                A::Admin,
                R::Moderator,
                A::None,
                R::Participant,
                R::Moderator
            )
            .is_ok()
        );
    }

    #[test]
    fn role_rule_actor_must_be_moderator() {
        assert!(may_set_role(A::Owner, R::Participant, A::None, R::Participant, R::None).is_err());
        // A moderator without affiliation may grant and revoke voice.
        assert!(may_set_role(A::None, R::Moderator, A::None, R::Visitor, R::Participant).is_ok());
        assert!(may_set_role(A::None, R::Moderator, A::None, R::Participant, R::Visitor).is_ok());
    }

    #[test]
    fn affiliation_rows() {
        // Owners: anything, except leaving the room without an owner.
        for cur in [A::Outcast, A::None, A::Member, A::Admin, A::Owner] {
            for new in [A::Outcast, A::None, A::Member, A::Admin, A::Owner] {
                assert!(may_set_affiliation(A::Owner, cur, new, false).is_ok());
            }
        }
        assert_eq!(
            may_set_affiliation(A::Owner, A::Owner, A::Admin, true),
            Err(Error::new("cancel", "conflict"))
        );
        // Admins: below admin only, both ways.
        assert!(may_set_affiliation(A::Admin, A::None, A::Member, false).is_ok());
        assert!(may_set_affiliation(A::Admin, A::Member, A::Outcast, false).is_ok());
        assert!(may_set_affiliation(A::Admin, A::None, A::Admin, false).is_err());
        assert!(may_set_affiliation(A::Admin, A::Admin, A::None, false).is_err());
        assert!(may_set_affiliation(A::Admin, A::Owner, A::Member, false).is_err());
        // Members and below: nothing.
        assert!(may_set_affiliation(A::Member, A::None, A::Member, false).is_err());
        assert!(may_set_affiliation(A::None, A::None, A::Outcast, false).is_err());
    }

    #[test]
    fn list_rows() {
        assert!(may_list_affiliation(A::Owner, A::Owner, false, false));
        assert!(may_list_affiliation(A::Admin, A::Member, false, false));
        assert!(!may_list_affiliation(A::Admin, A::Owner, false, false));
        assert!(!may_list_affiliation(A::Member, A::Member, false, false));
        assert!(may_list_affiliation(A::Member, A::Owner, true, true));
        assert!(!may_list_affiliation(A::None, A::Owner, true, true));
        assert!(may_list_role(R::Moderator));
        assert!(!may_list_role(R::Participant));
    }

    #[test]
    fn visibility_subject_speech() {
        assert!(sees_real_jids(Whois::Anyone, R::Visitor, A::None));
        assert!(sees_real_jids(Whois::Moderators, R::Moderator, A::None));
        assert!(sees_real_jids(Whois::Moderators, R::Participant, A::Admin));
        assert!(!sees_real_jids(
            Whois::Moderators,
            R::Participant,
            A::Member
        ));
        assert!(may_change_subject(R::Moderator, false));
        assert!(!may_change_subject(R::Participant, false));
        assert!(may_change_subject(R::Participant, true));
        assert!(!may_change_subject(R::Visitor, true));
        assert!(may_speak(R::Participant).is_ok());
        assert_eq!(
            may_speak(R::Visitor).map_err(|e| e.condition),
            Err("forbidden")
        );
        assert_eq!(
            may_speak(R::None).map_err(|e| e.condition),
            Err("not-acceptable")
        );
    }

    #[test]
    fn pm_rows() {
        assert!(may_send_pm(
            AllowPm::Anyone,
            R::Visitor,
            R::Participant,
            false
        ));
        assert!(!may_send_pm(
            AllowPm::Participants,
            R::Visitor,
            R::Participant,
            false
        ));
        assert!(may_send_pm(
            AllowPm::Participants,
            R::Visitor,
            R::Moderator,
            false
        ));
        assert!(!may_send_pm(
            AllowPm::Moderators,
            R::Participant,
            R::Participant,
            false
        ));
        assert!(may_send_pm(
            AllowPm::Moderators,
            R::Moderator,
            R::Participant,
            false
        ));
        assert!(!may_send_pm(
            AllowPm::None,
            R::Moderator,
            R::Moderator,
            false
        ));
        assert!(may_send_pm(
            AllowPm::None,
            R::Participant,
            R::Participant,
            true
        ));
    }

    #[test]
    fn invite_rows() {
        assert!(may_invite(R::Participant, A::None, false, false));
        assert!(!may_invite(R::Visitor, A::Owner, false, false));
        assert!(!may_invite(R::Participant, A::Member, true, false));
        assert!(may_invite(R::Participant, A::Member, true, true));
        assert!(may_invite(R::Moderator, A::Admin, true, false));
    }
}
