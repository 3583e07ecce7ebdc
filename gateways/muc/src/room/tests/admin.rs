//! Roles, affiliations, configuration, registration, invitations, voice
//! requests and storage.

use satellite::IqType;

use super::support::*;
use crate::room::Room;
use crate::stanza::{NS_MUC_ADMIN, NS_MUC_USER, child_text};
use crate::store::StoreOp;

fn admin_set(item: &str) -> String {
    format!("<query xmlns='http://jabber.org/protocol/muc#admin'>{item}</query>")
}

#[test]
fn kick_with_actor_and_reason() {
    let b = Bench::new();
    let mut r = b.instant("room");
    b.presence(&mut r, join("room", JULIET, "Juliet"));
    let out = b.iq(
        &mut r,
        ROMEO,
        IqType::Set,
        &admin_set("<item nick='Juliet' role='none'><reason>Avaunt</reason></item>"),
    );
    let j = to(&out, JULIET);
    assert_eq!(j[0].attr("type"), Some("unavailable"));
    assert_eq!(payload_order(j[0]), ["status:307", "item", "status:110"]);
    let item = items(j[0])[0];
    let actor = item.get_child("actor", NS_MUC_USER).expect("actor");
    assert_eq!(actor.attr("nick"), Some("romeo"));
    assert_eq!(
        actor.attr("jid"),
        None,
        "the kicked one does not see the actor's JID"
    );
    assert_eq!(
        item.get_child("reason", NS_MUC_USER)
            .map(|e| e.text())
            .as_deref(),
        Some("Avaunt")
    );
    let rm = to(&out, ROMEO);
    assert_eq!(rm.len(), 2);
    let actor = items(rm[0])[0]
        .get_child("actor", NS_MUC_USER)
        .expect("actor");
    assert_eq!(actor.attr("jid"), Some(ROMEO));
    assert_eq!(rm[1].attr("type"), Some("result"));
    assert!(r.occupant_by_nick("Juliet").is_none());
    // A participant may not kick.
    b.presence(&mut r, join("room", JULIET, "Juliet"));
    b.presence(&mut r, join("room", ROSALINE, "Rosaline"));
    let out = b.iq(
        &mut r,
        JULIET,
        IqType::Set,
        &admin_set("<item nick='Rosaline' role='none'/>"),
    );
    assert_eq!(error_to(&out, JULIET), "not-allowed");
    // Nor anyone kick an owner unless owner.
    let out = b.iq(
        &mut r,
        ROMEO,
        IqType::Set,
        &admin_set("<item nick='Nobody' role='none'/>"),
    );
    assert_eq!(error_to(&out, ROMEO), "item-not-found");
}

#[test]
fn voice_and_moderator_grants() {
    let b = Bench::new();
    let mut r = b.instant("room");
    b.configure(
        &mut r,
        ROMEO,
        "<field var='muc#roomconfig_moderatedroom'><value>1</value></field>",
    );
    b.presence(&mut r, join("room", JULIET, "Juliet"));
    b.iq(
        &mut r,
        ROMEO,
        IqType::Set,
        &admin_set("<item nick='Juliet' role='participant'/>"),
    );
    assert_eq!(
        r.occupant_by_nick("Juliet").map(|o| o.role),
        Some(crate::Role::Participant)
    );
    b.iq(
        &mut r,
        ROMEO,
        IqType::Set,
        &admin_set("<item nick='Juliet' role='moderator'/>"),
    );
    assert_eq!(
        r.occupant_by_nick("Juliet").map(|o| o.role),
        Some(crate::Role::Moderator)
    );
    // A moderator without affiliation may not revoke another moderator.
    b.presence(&mut r, join("room", ROSALINE, "Rosaline"));
    b.iq(
        &mut r,
        ROMEO,
        IqType::Set,
        &admin_set("<item nick='Rosaline' role='moderator'/>"),
    );
    let out = b.iq(
        &mut r,
        JULIET,
        IqType::Set,
        &admin_set("<item nick='Rosaline' role='participant'/>"),
    );
    assert_eq!(error_to(&out, JULIET), "not-allowed");
    // The moderator list.
    let out = b.iq(
        &mut r,
        ROMEO,
        IqType::Get,
        &admin_set("<item role='moderator'/>"),
    );
    let q = out.stanzas[0]
        .get_child("query", NS_MUC_ADMIN)
        .expect("query");
    assert_eq!(q.children().count(), 3);
}

#[test]
fn ban_gives_301_and_outcast_list() {
    let b = Bench::new();
    let mut r = b.instant("room");
    b.presence(&mut r, join("room", JULIET, "Juliet"));
    let out = b.iq(
        &mut r,
        ROMEO,
        IqType::Set,
        &admin_set(
            "<item affiliation='outcast' jid='juliet@localhost'><reason>Treason</reason></item>",
        ),
    );
    assert_eq!(codes(to(&out, JULIET)[0]), [301, 110]);
    assert!(r.occupant_by_nick("Juliet").is_none());
    let out = b.iq(
        &mut r,
        ROMEO,
        IqType::Get,
        &admin_set("<item affiliation='outcast'/>"),
    );
    let q = out.stanzas[0]
        .get_child("query", NS_MUC_ADMIN)
        .expect("query");
    let item = q.children().next().expect("item");
    assert_eq!(item.attr("jid"), Some("juliet@localhost"));
}

#[test]
fn affiliation_notice_for_non_occupants_comes_before_the_result() {
    let b = Bench::new();
    let mut r = b.instant("room");
    let out = b.iq(
        &mut r,
        ROMEO,
        IqType::Set,
        &admin_set("<item affiliation='member' jid='juliet@localhost'/>"),
    );
    let rm = to(&out, ROMEO);
    assert_eq!(rm.len(), 2, "{:?}", texts(&out));
    assert_eq!(rm[0].name(), "message");
    assert_eq!(rm[0].attr("type"), None);
    let item = items(rm[0])[0];
    assert_eq!(item.attr("jid"), Some("juliet@localhost"));
    assert_eq!(item.attr("affiliation"), Some("member"));
    assert_eq!(item.attr("role"), None);
    assert_eq!(rm[1].attr("type"), Some("result"));
    // Members list.
    let out = b.iq(
        &mut r,
        ROMEO,
        IqType::Get,
        &admin_set("<item affiliation='member'/>"),
    );
    let q = out.stanzas[0]
        .get_child("query", NS_MUC_ADMIN)
        .expect("query");
    assert_eq!(
        q.children()
            .filter_map(|c| c.attr("jid"))
            .collect::<Vec<_>>(),
        ["juliet@localhost"]
    );
    // Non-admins may not read it.
    let out = b.iq(
        &mut r,
        ROSALINE,
        IqType::Get,
        &admin_set("<item affiliation='member'/>"),
    );
    assert_eq!(error_to(&out, ROSALINE), "forbidden");
}

#[test]
fn affiliation_by_nick_like_issue1224() {
    let b = Bench::new();
    let mut r = b.instant("room");
    b.presence(&mut r, join("room", JULIET, "Juliet"));
    let out = b.iq(
        &mut r,
        ROMEO,
        IqType::Set,
        &admin_set("<item affiliation='member' nick='Juliet'/>"),
    );
    let rm = to(&out, ROMEO);
    let item = items(rm[0])[0];
    assert_eq!(item.attr("affiliation"), Some("member"));
    assert_eq!(item.attr("role"), Some("participant"));
    let actor = item.get_child("actor", NS_MUC_USER).expect("actor");
    assert_eq!(actor.attr("jid"), Some(ROMEO));
    assert_eq!(actor.attr("nick"), Some("romeo"));
    assert_eq!(rm[1].attr("type"), Some("result"));
    assert_eq!(codes(to(&out, JULIET)[0]), [110]);
}

#[test]
fn members_only_removal_like_muc_members_only_change() {
    let b = Bench::new();
    let mut r = b.instant("room");
    b.configure(
        &mut r,
        ROMEO,
        "<field var='muc#roomconfig_membersonly'><value>1</value></field>",
    );
    b.iq(
        &mut r,
        ROMEO,
        IqType::Set,
        &admin_set("<item affiliation='member' jid='juliet@localhost'/>"),
    );
    let out = b.presence(&mut r, join("room", JULIET, "Juliet"));
    assert_eq!(to(&out, JULIET).len(), 3);
    let out = b.iq(
        &mut r,
        ROMEO,
        IqType::Set,
        &admin_set("<item affiliation='none' jid='juliet@localhost'/>"),
    );
    let rm = to(&out, ROMEO);
    assert_eq!(rm[0].attr("type"), Some("unavailable"));
    assert_eq!(payload_order(rm[0]), ["status:321", "item"]);
    assert_eq!(items(rm[0])[0].attr("jid"), Some(JULIET));
    assert_eq!(rm[1].attr("type"), Some("result"));
}

#[test]
fn becoming_members_only_removes_non_members_with_322() {
    let b = Bench::new();
    let mut r = b.instant("room");
    b.presence(&mut r, join("room", JULIET, "Juliet"));
    let out = b.configure(
        &mut r,
        ROMEO,
        "<field var='muc#roomconfig_membersonly'><value>1</value></field>",
    );
    assert_eq!(codes(to(&out, JULIET)[0]), [322, 110]);
    let rm = to(&out, ROMEO);
    assert_eq!(codes(rm[0]), [322]);
    assert_eq!(rm[1].attr("type"), Some("result"));
    assert_eq!(codes(rm[2]), [104]);
}

#[test]
fn there_is_always_an_owner() {
    let b = Bench::new();
    let mut r = b.instant("room");
    let out = b.iq(
        &mut r,
        ROMEO,
        IqType::Set,
        &admin_set("<item affiliation='admin' jid='romeo@localhost'/>"),
    );
    assert_eq!(error_to(&out, ROMEO), "conflict");
    b.iq(
        &mut r,
        ROMEO,
        IqType::Set,
        &admin_set("<item affiliation='owner' jid='juliet@localhost'/>"),
    );
    let out = b.iq(
        &mut r,
        ROMEO,
        IqType::Set,
        &admin_set("<item affiliation='admin' jid='romeo@localhost'/>"),
    );
    assert_eq!(
        to(&out, ROMEO).last().and_then(|s| s.attr("type")),
        Some("result")
    );
    // Admins may not touch owners; service admins stay owners.
    let out = b.iq(
        &mut r,
        ROMEO,
        IqType::Set,
        &admin_set("<item affiliation='none' jid='juliet@localhost'/>"),
    );
    assert_eq!(error_to(&out, ROMEO), "not-allowed");
    let out = b.iq(
        &mut r,
        JULIET,
        IqType::Set,
        &admin_set("<item affiliation='outcast' jid='admin@localhost'/>"),
    );
    assert_eq!(error_to(&out, JULIET), "not-acceptable");
    let out = b.iq(
        &mut r,
        ADMIN,
        IqType::Get,
        "<query xmlns='http://jabber.org/protocol/muc#owner'/>",
    );
    assert_eq!(
        out.stanzas[0].attr("type"),
        Some("result"),
        "service admins own every room"
    );
}

#[test]
fn owner_form_and_104_after_the_result() {
    let b = Bench::new();
    let mut r = b.instant("room");
    let out = b.iq(
        &mut r,
        ROMEO,
        IqType::Get,
        "<query xmlns='http://jabber.org/protocol/muc#owner'/>",
    );
    let s = String::from(&out.stanzas[0]);
    assert!(
        s.contains("muc#roomconfig_roomsecret") && s.contains("muc#roomconfig_whois"),
        "{s}"
    );
    let out = b.iq(
        &mut r,
        JULIET,
        IqType::Get,
        "<query xmlns='http://jabber.org/protocol/muc#owner'/>",
    );
    assert_eq!(error_to(&out, JULIET), "forbidden");
    let out = b.configure(
        &mut r,
        ROMEO,
        "<field var='muc#roomconfig_roomname'><value>Garden</value></field>",
    );
    let rm = to(&out, ROMEO);
    assert_eq!(rm[0].attr("type"), Some("result"));
    assert_eq!(rm[1].attr("type"), Some("groupchat"));
    assert_eq!(codes(rm[1]), [104]);
    let wrong = "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:other</value></field></x></query>";
    assert_eq!(
        error_to(&b.iq(&mut r, ROMEO, IqType::Set, wrong), ROMEO),
        "bad-request"
    );
}

#[test]
fn reserved_room_owner_asks_the_form_first() {
    let b = Bench::new();
    let (mut r, _) = b.create("reserved", ROMEO, "romeo");
    let out = b.iq(
        &mut r,
        ROMEO,
        IqType::Get,
        "<query xmlns='http://jabber.org/protocol/muc#owner'/>",
    );
    assert_eq!(out.stanzas[0].attr("type"), Some("result"));
    assert!(r.is_locked(b.env().unix()));
    b.configure(
        &mut r,
        ROMEO,
        "<field var='muc#roomconfig_persistentroom'><value>1</value></field>",
    );
    assert!(!r.is_locked(b.env().unix()));
    assert!(r.config().persistent);
}

#[test]
fn registration_like_muc_register() {
    let b = Bench::new();
    let mut r = b.instant("room");
    b.iq(
        &mut r,
        ROMEO,
        IqType::Set,
        &admin_set("<item affiliation='member' jid='juliet@localhost'/>"),
    );
    b.presence(&mut r, join("room", JULIET, "Juliet"));
    let out = b.iq(
        &mut r,
        JULIET,
        IqType::Get,
        "<query xmlns='jabber:iq:register'/>",
    );
    assert!(String::from(&out.stanzas[0]).contains("muc#register_roomnick"));
    let reg = "<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field><field var='muc#register_roomnick'><value>Juliet</value></field></x></query>";
    let out = b.iq(&mut r, JULIET, IqType::Set, reg);
    let j = to(&out, JULIET);
    assert_eq!(j[0].name(), "presence");
    assert_eq!(items(j[0])[0].attr("affiliation"), Some("member"));
    assert_eq!(j.last().and_then(|s| s.attr("type")), Some("result"));
    let out = b.iq(
        &mut r,
        JULIET,
        IqType::Get,
        "<query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'/>",
    );
    assert!(String::from(&out.stanzas[0]).contains("name='Juliet'"));
    b.presence(&mut r, leave("room", JULIET, "Juliet", ""));
    // The nick is reserved.
    let out = b.presence(&mut r, join("room", ROSALINE, "Juliet"));
    assert_eq!(error_to(&out, ROSALINE), "conflict");
    // Unregistering ends membership and frees the nick.
    let out = b.iq(
        &mut r,
        JULIET,
        IqType::Set,
        "<query xmlns='jabber:iq:register'><remove/></query>",
    );
    let notice = to(&out, ROMEO);
    assert_eq!(items(notice[0])[0].attr("affiliation"), Some("none"));
    let out = b.presence(&mut r, join("room", ROSALINE, "Juliet"));
    assert_eq!(to(&out, ROSALINE).len(), 3);
    // Romeo reserves it for Juliet again: Rosaline is removed (307).
    let out = b.iq(
        &mut r,
        ROMEO,
        IqType::Set,
        &admin_set("<item affiliation='member' jid='juliet@localhost' nick='Juliet'/>"),
    );
    let ros = to(&out, ROSALINE);
    assert_eq!(codes(ros[0]), [307, 110]);
    assert_eq!(
        items(ros[0])[0]
            .get_child("reason", NS_MUC_USER)
            .map(|e| e.text())
            .as_deref(),
        Some("This nickname is reserved")
    );
    // Unaffiliated users may not register.
    let out = b.iq(
        &mut r,
        ROSALINE,
        IqType::Get,
        "<query xmlns='jabber:iq:register'/>",
    );
    assert_eq!(error_to(&out, ROSALINE), "registration-required");
}

#[test]
fn mediated_invitation_like_muc_mediated_invite() {
    let b = Bench::new();
    let mut r = b.instant("room");
    let m = xml(&format!(
        "<message xmlns='jabber:component:accept' from='{ROMEO}' to='room@conference.localhost' id='invite1'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='juliet@localhost'/></x></message>"
    ));
    let out = b.message(&mut r, m.clone());
    let inv = to(&out, "juliet@localhost");
    assert_eq!(inv.len(), 1);
    assert_eq!(inv[0].attr("from"), Some("room@conference.localhost"));
    assert_eq!(inv[0].attr("id"), Some("invite1"));
    let x = inv[0].get_child("x", NS_MUC_USER).expect("x");
    assert_eq!(
        x.get_child("invite", NS_MUC_USER)
            .and_then(|i| i.attr("from")),
        Some("room@conference.localhost/romeo")
    );
    assert_eq!(
        child_text(inv[0], "body").as_deref(),
        Some("room@conference.localhost/romeo invited you to the room room@conference.localhost")
    );
    assert!(inv[0].has_child("x", crate::stanza::NS_CONFERENCE));
    // Members-only: the invitee becomes a member.
    b.configure(
        &mut r,
        ROMEO,
        "<field var='muc#roomconfig_membersonly'><value>1</value></field>",
    );
    b.message(&mut r, m);
    assert_eq!(
        r.affiliation(&b.env(), "juliet@localhost"),
        crate::Affiliation::Member
    );
    // Declines go back to the inviter.
    let d = xml(&format!(
        "<message xmlns='jabber:component:accept' from='{JULIET}' to='room@conference.localhost'><x xmlns='http://jabber.org/protocol/muc#user'><decline to='romeo@localhost'><reason>No</reason></decline></x></message>"
    ));
    let out = b.message(&mut r, d);
    assert_eq!(to(&out, "romeo@localhost").len(), 1);
}

#[test]
fn voice_request_goes_to_moderators_and_approval_grants_voice() {
    let b = Bench::new();
    let mut r = b.instant("room");
    b.configure(
        &mut r,
        ROMEO,
        "<field var='muc#roomconfig_moderatedroom'><value>1</value></field>",
    );
    b.presence(&mut r, join("room", JULIET, "Juliet"));
    let req = xml(&format!(
        "<message xmlns='jabber:component:accept' from='{JULIET}' to='room@conference.localhost'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field><field var='muc#role'><value>participant</value></field></x></message>"
    ));
    let out = b.message(&mut r, req);
    let rm = to(&out, ROMEO);
    assert_eq!(rm.len(), 1);
    assert!(String::from(rm[0]).contains("muc#roomnick"));
    let approve = xml(&format!(
        "<message xmlns='jabber:component:accept' from='{ROMEO}' to='room@conference.localhost'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field><field var='muc#jid'><value>{JULIET}</value></field><field var='muc#request_allow'><value>true</value></field></x></message>"
    ));
    b.message(&mut r, approve);
    assert_eq!(
        r.occupant_by_nick("Juliet").map(|o| o.role),
        Some(crate::Role::Participant)
    );
}

#[test]
fn persistent_rooms_write_and_load() {
    let b = Bench::new();
    let mut r = b.instant("room");
    let out = b.configure(&mut r, ROMEO, "<field var='muc#roomconfig_persistentroom'><value>1</value></field><field var='muc#roomconfig_publicroom'><value>1</value></field>");
    assert!(matches!(&out.writes[0], StoreOp::PutRoom(rec) if rec.public && rec.name == "room"));
    assert!(out.writes.iter().any(|w| matches!(w, StoreOp::SetAffiliation { record, .. } if record.jid == "romeo@localhost" && record.affiliation == "owner")));
    let out = b.iq(
        &mut r,
        ROMEO,
        IqType::Set,
        &admin_set("<item affiliation='member' jid='juliet@localhost'/>"),
    );
    assert_eq!(out.writes.len(), 1);
    let out = b.message(
        &mut r,
        groupchat("room", ROMEO, "s", "<subject>Topic</subject>"),
    );
    assert!(
        matches!(&out.writes[0], StoreOp::SetSubject { subject: Some(s), .. } if s.text == "Topic" && s.nick == "romeo")
    );
    let out = b.presence(&mut r, leave("room", ROMEO, "romeo", ""));
    assert!(!out.room_gone, "persistent rooms stay");
    assert!(r.can_hibernate());
    // Load it again from what was stored.
    let stored = crate::store::StoredRoom {
        room: r.record(),
        affiliations: r
            .store_ops()
            .into_iter()
            .filter_map(|op| match op {
                StoreOp::SetAffiliation { record, .. } => Some(record),
                _ => None,
            })
            .collect(),
    };
    let jid = satellite::jid::BareJid::new("room@conference.localhost").expect("jid");
    let loaded = Room::from_stored(&b.env(), &jid, &stored).expect("load");
    assert_eq!(loaded.config(), r.config());
    assert_eq!(loaded.affiliations(), r.affiliations());
    assert_eq!(loaded.subject(), r.subject());
    // Joining a loaded room is a normal join, not a creation.
    let mut loaded = loaded;
    let out = b.presence(&mut loaded, join("room", JULIET, "Juliet"));
    let j = to(&out, JULIET);
    assert!(codes(j[0]).iter().all(|&c| c != 201));
    // No longer persistent: deleted.
    let out = b.configure(
        &mut loaded,
        ROMEO,
        "<field var='muc#roomconfig_persistentroom'><value>0</value></field>",
    );
    assert!(out.writes.contains(&StoreOp::DeleteRoom {
        name: "room".into()
    }));
    // Temporary rooms write nothing.
    let mut t = b.instant("temp");
    let out = b.iq(
        &mut t,
        ROMEO,
        IqType::Set,
        &admin_set("<item affiliation='member' jid='juliet@localhost'/>"),
    );
    assert!(out.writes.is_empty());
}

#[test]
fn unaffiliated_registration_makes_a_member_when_allowed() {
    let mut b = Bench::new();
    b.settings.allow_unaffiliated_register = true;
    let mut r = b.instant("room");
    let reg = "<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field><field var='muc#register_roomnick'><value>Rosa</value></field></x></query>";
    let out = b.iq(&mut r, ROSALINE, IqType::Set, reg);
    assert_eq!(
        to(&out, ROSALINE).last().and_then(|s| s.attr("type")),
        Some("result")
    );
    assert_eq!(
        r.affiliation(&b.env(), "rosaline@localhost"),
        crate::Affiliation::Member
    );
    assert_eq!(r.registered_nick("rosaline@localhost"), Some("Rosa"));
    // Someone else may not take it.
    assert_eq!(
        error_to(&b.iq(&mut r, JULIET, IqType::Set, reg), JULIET),
        "conflict"
    );
}

#[test]
fn archived_messages_carry_a_stanza_id_and_seed_history_on_load() {
    let b = Bench::new();
    let mut r = b.instant("room");
    let spoofed = "<body>hi</body><stanza-id xmlns='urn:xmpp:sid:0' id='fake' by='room@conference.localhost'/>";
    let out = b.message(&mut r, groupchat("room", ROMEO, "m1", spoofed));
    assert_eq!(out.archive.len(), 1);
    let a = &out.archive[0];
    assert_eq!(a.room, "room");
    assert_eq!(a.nick, "romeo");
    assert_eq!(a.real_jid.as_deref(), Some("romeo@localhost"));
    let sid: Vec<_> = out.stanzas[0]
        .children()
        .filter(|c| c.name() == "stanza-id")
        .collect();
    assert_eq!(sid.len(), 1, "the spoofed one is gone");
    assert_eq!(sid[0].attr("id"), Some(a.id.as_str()));
    assert!(a.xml.contains(&a.id) && !a.xml.contains("fake"));
    // Not historic: not archived.
    let out = b.message(
        &mut r,
        groupchat(
            "room",
            ROMEO,
            "m2",
            "<active xmlns='http://jabber.org/protocol/chatstates'/>",
        ),
    );
    assert!(out.archive.is_empty());
    // A room that does not archive.
    b.configure(
        &mut r,
        ROMEO,
        "<field var='muc#roomconfig_enablearchiving'><value>0</value></field>",
    );
    assert!(
        b.message(&mut r, groupchat("room", ROMEO, "m3", "<body>x</body>"))
            .archive
            .is_empty()
    );
    // History from the archive for a loaded room.
    let mut fresh = b.instant("other");
    let first = b
        .message(
            &mut fresh,
            groupchat("other", ROMEO, "a1", "<body>one</body>"),
        )
        .archive;
    let mut loaded = b.instant("other");
    loaded.seed_history(&b.env(), &first);
    let out = b.presence(&mut loaded, join("other", JULIET, "Juliet"));
    let ids: Vec<_> = to(&out, JULIET)
        .iter()
        .filter_map(|s| s.attr("id"))
        .collect();
    assert_eq!(ids, ["a1"]);
}

#[test]
fn the_reply_can_be_taken_out_of_the_outcome() {
    let b = Bench::new();
    let mut r = b.instant("room");
    let req = iq(
        ROMEO,
        "room",
        IqType::Set,
        &admin_set("<item affiliation='member' jid='juliet@localhost'/>"),
    );
    let mut out = r.handle_iq(&b.env(), &req);
    assert_eq!(out.stanzas.len(), 2);
    let reply = out.take_reply(&req).expect("reply");
    assert_eq!(reply.attr("type"), Some("result"));
    assert_eq!(out.stanzas.len(), 1);
    assert_eq!(out.stanzas[0].name(), "message");
}

#[test]
fn the_service_sets_affiliations() {
    let b = Bench::new();
    let mut r = b.instant("room");
    b.presence(&mut r, join("room", JULIET, "Juliet"));
    let out = r
        .service_set_affiliation(
            &b.env(),
            "juliet@localhost",
            crate::Affiliation::Outcast,
            Some("spam"),
        )
        .expect("allowed");
    assert_eq!(codes(to(&out, JULIET)[0]), [301, 110]);
    assert!(
        items(to(&out, ROMEO)[0])[0]
            .get_child("actor", NS_MUC_USER)
            .is_none()
    );
    assert!(
        r.service_set_affiliation(&b.env(), "admin@localhost", crate::Affiliation::None, None)
            .is_err()
    );
}

#[test]
fn persistence_and_publicity_may_be_for_admins_only() {
    let mut b = Bench::new();
    b.settings.allow_persistent = false;
    b.settings.allow_public = false;
    let mut r = b.instant("room");
    let out = b.iq(
        &mut r,
        ROMEO,
        IqType::Get,
        "<query xmlns='http://jabber.org/protocol/muc#owner'/>",
    );
    let form = String::from(&out.stanzas[0]);
    assert!(
        !form.contains("muc#roomconfig_persistentroom")
            && !form.contains("muc#roomconfig_publicroom")
    );
    b.configure(&mut r, ROMEO, "<field var='muc#roomconfig_persistentroom'><value>1</value></field><field var='muc#roomconfig_publicroom'><value>1</value></field>");
    assert!(!r.config().persistent && !r.config().public);
    b.configure(
        &mut r,
        ADMIN,
        "<field var='muc#roomconfig_persistentroom'><value>1</value></field>",
    );
    assert!(r.config().persistent);
}
