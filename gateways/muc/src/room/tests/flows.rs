//! Creation, joining, presence, messages, subject, history, leaving.

use satellite::IqType;

use super::support::*;
use crate::stanza::{NS_DELAY, NS_MUC_USER, child_text};

#[test]
fn instant_room_creation_like_muc_create_destroy() {
    let b = Bench::new();
    let (mut r, out) = b.create("garden", ROMEO, "romeo");
    let mine = to(&out, ROMEO);
    assert_eq!(mine.len(), 2, "{:?}", texts(&out));
    assert_eq!(
        mine[0].attr("from"),
        Some("garden@conference.localhost/romeo")
    );
    assert_eq!(payload_order(mine[0]), ["status:201", "item", "status:110"]);
    let item = items(mine[0])[0];
    assert_eq!(item.attr("affiliation"), Some("owner"));
    assert_eq!(item.attr("role"), Some("moderator"));
    assert_eq!(item.attr("jid"), Some(ROMEO));
    // The empty subject comes last, from the room.
    assert_eq!(mine[1].attr("from"), Some("garden@conference.localhost"));
    assert_eq!(child_text(mine[1], "subject").as_deref(), Some(""));
    assert!(!out.room_gone);
    // Locked until configured.
    let out = b.presence(&mut r, join("garden", JULIET, "juliet"));
    assert_eq!(error_to(&out, JULIET), "item-not-found");
    // The instant form: a result and no 104.
    let out = b.iq(&mut r, ROMEO, IqType::Set, "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query>");
    assert_eq!(out.stanzas.len(), 1, "{:?}", texts(&out));
    assert_eq!(out.stanzas[0].attr("type"), Some("result"));
    assert_eq!(
        out.stanzas[0].attr("from"),
        Some("garden@conference.localhost")
    );
    let out = b.presence(&mut r, join("garden", JULIET, "juliet"));
    assert!(
        to(&out, JULIET)
            .iter()
            .all(|s| s.attr("type") != Some("error"))
    );
}

#[test]
fn join_order_history_subject_and_visibility() {
    let b = Bench::new();
    let mut r = b.instant("garden");
    let out = b.message(
        &mut r,
        groupchat(
            "garden",
            ROMEO,
            "rm1",
            "<body>Where are thou my Juliet?</body>",
        ),
    );
    let echo = to(&out, ROMEO);
    assert_eq!(echo.len(), 1);
    assert_eq!(echo[0].attr("id"), Some("rm1"));
    assert_eq!(
        echo[0].attr("from"),
        Some("garden@conference.localhost/romeo")
    );
    let out = b.presence(&mut r, join("garden", JULIET, "juliet"));
    let j = to(&out, JULIET);
    assert_eq!(j.len(), 4, "{:?}", texts(&out));
    // Romeo first, without his JID (semi-anonymous room).
    assert_eq!(j[0].attr("from"), Some("garden@conference.localhost/romeo"));
    assert_eq!(items(j[0])[0].attr("jid"), None);
    assert_eq!(items(j[0])[0].attr("affiliation"), Some("owner"));
    // Then her own, with her JID and 110.
    assert_eq!(
        j[1].attr("from"),
        Some("garden@conference.localhost/juliet")
    );
    assert_eq!(payload_order(j[1]), ["item", "status:110"]);
    assert_eq!(items(j[1])[0].attr("jid"), Some(JULIET));
    assert_eq!(items(j[1])[0].attr("role"), Some("participant"));
    // History with a delay from the room, then the subject.
    assert_eq!(j[2].attr("id"), Some("rm1"));
    let delay = j[2].get_child("delay", NS_DELAY).expect("delay");
    assert_eq!(delay.attr("from"), Some("garden@conference.localhost"));
    assert_eq!(delay.attr("stamp"), Some("2023-11-14T22:13:20Z"));
    assert!(child_text(j[3], "subject").is_some());
    // Romeo, a moderator, sees her JID.
    let rm = to(&out, ROMEO);
    assert_eq!(rm.len(), 1);
    assert_eq!(items(rm[0])[0].attr("jid"), Some(JULIET));
    assert!(codes(rm[0]).is_empty());
}

#[test]
fn non_anonymous_rooms_show_jids_and_100() {
    let b = Bench::new();
    let mut r = b.instant("garden");
    let out = b.configure(
        &mut r,
        ROMEO,
        "<field var='muc#roomconfig_whois'><value>anyone</value></field>",
    );
    assert_eq!(out.stanzas[0].attr("type"), Some("result"));
    assert_eq!(codes(out.stanzas.last().expect("notice")), [172]);
    let out = b.presence(&mut r, join("garden", JULIET, "juliet"));
    let j = to(&out, JULIET);
    assert_eq!(items(j[0])[0].attr("jid"), Some(ROMEO));
    assert_eq!(payload_order(j[1]), ["status:100", "item", "status:110"]);
}

#[test]
fn groupchat_broadcast_visitors_and_strangers() {
    let b = Bench::new();
    let mut r = b.instant("garden");
    b.presence(&mut r, join("garden", JULIET, "juliet"));
    let out = b.message(
        &mut r,
        groupchat("garden", JULIET, "jm1", "<body>/me jumps</body>"),
    );
    assert_eq!(out.stanzas.len(), 2);
    for s in &out.stanzas {
        assert_eq!(s.attr("id"), Some("jm1"));
        assert_eq!(s.attr("from"), Some("garden@conference.localhost/juliet"));
        assert_eq!(child_text(s, "body").as_deref(), Some("/me jumps"));
    }
    // Not in the room: not-acceptable.
    let out = b.message(
        &mut r,
        groupchat("garden", ROSALINE, "x", "<body>hi</body>"),
    );
    assert_eq!(error_to(&out, ROSALINE), "not-acceptable");
    // Moderated: visitors may not speak.
    b.configure(
        &mut r,
        ROMEO,
        "<field var='muc#roomconfig_moderatedroom'><value>1</value></field>",
    );
    let out = b.presence(&mut r, join("garden", ROSALINE, "rosaline"));
    assert_eq!(
        items(to(&out, ROSALINE)[2])[0].attr("role"),
        Some("visitor")
    );
    let out = b.message(
        &mut r,
        groupchat("garden", ROSALINE, "x", "<body>hi</body>"),
    );
    assert_eq!(error_to(&out, ROSALINE), "forbidden");
}

#[test]
fn message_without_id_gets_one() {
    let b = Bench::new();
    let mut r = b.instant("garden");
    let m = xml(&format!(
        "<message xmlns='jabber:component:accept' type='groupchat' from='{ROMEO}' to='garden@conference.localhost'><body>x</body></message>"
    ));
    let out = b.message(&mut r, m);
    assert!(out.stanzas[0].attr("id").is_some_and(|id| !id.is_empty()));
}

#[test]
fn subject_rules_like_issue_667() {
    let b = Bench::new();
    let mut r = b.instant("issue667");
    // Subject and body: a normal message.
    let out = b.message(
        &mut r,
        groupchat(
            "issue667",
            ROMEO,
            "1",
            "<subject>Greetings</subject><body>Hello everyone</body>",
        ),
    );
    assert_eq!(
        child_text(&out.stanzas[0], "body").as_deref(),
        Some("Hello everyone")
    );
    assert!(r.subject().is_none());
    // Subject alone: a change, from the occupant.
    let out = b.message(
        &mut r,
        groupchat(
            "issue667",
            ROMEO,
            "2",
            "<subject>Something to talk about</subject>",
        ),
    );
    assert_eq!(
        out.stanzas[0].attr("from"),
        Some("issue667@conference.localhost/romeo")
    );
    assert_eq!(
        r.subject().map(|s| s.text.as_str()),
        Some("Something to talk about")
    );
    let again = b.message(
        &mut r,
        groupchat(
            "issue667",
            ROMEO,
            "2b",
            "<subject>Something to talk about</subject>",
        ),
    );
    assert!(
        again.stanzas.is_empty(),
        "the same subject again changes nothing"
    );
    // Rejoin: history (the message with body only), then the subject.
    let out = b.presence(&mut r, join("issue667", ROMEO, "romeo"));
    let mine = to(&out, ROMEO);
    let last = mine.last().expect("subject");
    assert_eq!(
        child_text(last, "subject").as_deref(),
        Some("Something to talk about")
    );
    assert_eq!(
        last.attr("from"),
        Some("issue667@conference.localhost/romeo")
    );
    assert_eq!(mine[mine.len() - 2].attr("id"), Some("1"));
    // A participant may not change it unless allowed.
    b.presence(&mut r, join("issue667", JULIET, "juliet"));
    let out = b.message(
        &mut r,
        groupchat("issue667", JULIET, "3", "<subject>mine</subject>"),
    );
    assert_eq!(error_to(&out, JULIET), "forbidden");
    b.configure(
        &mut r,
        ROMEO,
        "<field var='muc#roomconfig_changesubject'><value>1</value></field>",
    );
    let out = b.message(
        &mut r,
        groupchat("issue667", JULIET, "4", "<subject>mine</subject>"),
    );
    assert_eq!(out.stanzas.len(), 2);
}

#[test]
fn leave_with_status_like_issue505_and_temporary_room_vanishes() {
    let b = Bench::new();
    let mut r = b.instant("room");
    b.presence(&mut r, join("room", JULIET, "Juliet"));
    let out = b.presence(
        &mut r,
        leave("room", JULIET, "Juliet", "<status>Farewell</status>"),
    );
    let rm = to(&out, ROMEO);
    assert_eq!(rm[0].attr("type"), Some("unavailable"));
    assert_eq!(child_text(rm[0], "status").as_deref(), Some("Farewell"));
    assert_eq!(items(rm[0])[0].attr("role"), Some("none"));
    assert_eq!(items(rm[0])[0].attr("jid"), Some(JULIET));
    let jl = to(&out, JULIET);
    assert_eq!(jl[0].attr("type"), Some("unavailable"));
    assert_eq!(codes(jl[0]), [110]);
    assert!(!out.room_gone);
    let out = b.presence(&mut r, leave("room", ROMEO, "romeo", ""));
    assert!(out.room_gone, "temporary and empty");
    assert!(r.must_vanish());
}

#[test]
fn nick_change_like_muc_nickname_change() {
    let b = Bench::new();
    let mut r = b.instant("room");
    b.configure(
        &mut r,
        ROMEO,
        "<field var='muc#roomconfig_moderatedroom'><value>1</value></field>",
    );
    b.presence(&mut r, join("room", JULIET, "Juliet"));
    b.configure(
        &mut r,
        ROMEO,
        "<field var='muc#roomconfig_moderatedroom'><value>0</value></field>",
    );
    let p = xml(&format!(
        "<presence xmlns='jabber:component:accept' from='{JULIET}' to='room@conference.localhost/Juliet2'/>"
    ));
    let out = b.presence(&mut r, p);
    let j = to(&out, JULIET);
    assert_eq!(j.len(), 2, "{:?}", texts(&out));
    assert_eq!(j[0].attr("type"), Some("unavailable"));
    assert_eq!(j[0].attr("from"), Some("room@conference.localhost/Juliet"));
    assert_eq!(payload_order(j[0]), ["status:303", "item", "status:110"]);
    assert_eq!(items(j[0])[0].attr("nick"), Some("Juliet2"));
    assert_eq!(
        items(j[0])[0].attr("role"),
        Some("visitor"),
        "role kept (#1466)"
    );
    assert_eq!(j[1].attr("from"), Some("room@conference.localhost/Juliet2"));
    assert_eq!(items(j[1])[0].attr("role"), Some("visitor"));
    assert_eq!(codes(j[1]), [110]);
    let rm = to(&out, ROMEO);
    assert_eq!(rm.len(), 2);
    assert_eq!(codes(rm[0]), [303]);
    assert!(r.occupant_by_nick("Juliet").is_none());
    // A taken nick is a conflict.
    let p = xml(&format!(
        "<presence xmlns='jabber:component:accept' from='{JULIET}' to='room@conference.localhost/romeo'/>"
    ));
    let out = b.presence(&mut r, p);
    assert_eq!(error_to(&out, JULIET), "conflict");
}

#[test]
fn join_refusals() {
    let mut b = Bench::new();
    b.settings.max_occupants = Some(2);
    let mut r = b.instant("room");
    // Bad nick (fails strict resourceprep).
    let out = b.presence(&mut r, join("room", JULIET, "\u{1F916}"));
    assert_eq!(error_to(&out, JULIET), "jid-malformed");
    let err = to(&out, JULIET)[0]
        .get_child("error", crate::stanza::NS_STANZA)
        .expect("error");
    assert_eq!(err.attr("by"), Some("room@conference.localhost"));
    // Blank nick.
    let out = b.presence(&mut r, join("room", JULIET, " "));
    assert!(to(&out, JULIET)[0].attr("type") == Some("error"));
    // Nick taken by someone else.
    let out = b.presence(&mut r, join("room", JULIET, "romeo"));
    assert_eq!(error_to(&out, JULIET), "conflict");
    // Join without the muc payload.
    let p = xml(&format!(
        "<presence xmlns='jabber:component:accept' from='{JULIET}' to='room@conference.localhost/j'/>"
    ));
    assert_eq!(error_to(&b.presence(&mut r, p), JULIET), "item-not-found");
    // Password.
    b.configure(
        &mut r,
        ROMEO,
        "<field var='muc#roomconfig_roomsecret'><value>cauldronburn</value></field>",
    );
    let out = b.presence(&mut r, join("room", JULIET, "Juliet"));
    assert_eq!(error_to(&out, JULIET), "not-authorized");
    let out = b.presence(
        &mut r,
        join_with(
            "room",
            JULIET,
            "Juliet",
            "<password>cauldronburn</password>",
        ),
    );
    assert_eq!(to(&out, JULIET).len(), 3);
    // Full.
    let out = b.presence(
        &mut r,
        join_with(
            "room",
            ROSALINE,
            "Rosaline",
            "<password>cauldronburn</password>",
        ),
    );
    assert_eq!(error_to(&out, ROSALINE), "service-unavailable");
    // Members-only.
    b.configure(&mut r, ROMEO, "<field var='muc#roomconfig_roomsecret'/><field var='muc#roomconfig_membersonly'><value>1</value></field>");
    assert!(r.occupant_by_nick("Juliet").is_none(), "non-members leave");
    let out = b.presence(&mut r, join("room", ROSALINE, "Rosaline"));
    assert_eq!(error_to(&out, ROSALINE), "registration-required");
}

#[test]
fn banned_users_are_forbidden() {
    let b = Bench::new();
    let mut r = b.instant("room");
    b.iq(&mut r, ROMEO, IqType::Set, "<query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='outcast' jid='rosaline@localhost'/></query>");
    let out = b.presence(&mut r, join("room", ROSALINE, "Rosaline"));
    assert_eq!(error_to(&out, ROSALINE), "forbidden");
    // A whole server.
    b.iq(&mut r, ROMEO, IqType::Set, "<query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='outcast' jid='evil.example'/></query>");
    let out = b.presence(&mut r, join("room", "x@evil.example/r", "x"));
    assert_eq!(error_to(&out, "x@evil.example/r"), "forbidden");
}

#[test]
fn history_request_on_join() {
    let mut b = Bench::new();
    let mut r = b.instant("room");
    for i in 0..5 {
        b.message(
            &mut r,
            groupchat("room", ROMEO, &i.to_string(), "<body>x</body>"),
        );
        b.advance(60);
    }
    let out = b.presence(
        &mut r,
        join_with("room", JULIET, "j", "<history maxstanzas='2'/>"),
    );
    let ids: Vec<_> = to(&out, JULIET)
        .iter()
        .filter_map(|s| s.attr("id"))
        .collect();
    assert_eq!(ids, ["3", "4"]);
    let out = b.presence(
        &mut r,
        join_with("room", ROSALINE, "r", "<history seconds='130'/>"),
    );
    let ids: Vec<_> = to(&out, ROSALINE)
        .iter()
        .filter_map(|s| s.attr("id"))
        .collect();
    assert_eq!(ids, ["3", "4"]);
    let out = b.presence(
        &mut r,
        join_with("room", "x@localhost/1", "x", "<history maxchars='0'/>"),
    );
    assert_eq!(
        to(&out, "x@localhost/1")
            .iter()
            .filter(|s| s.attr("id").is_some())
            .count(),
        0
    );
}

#[test]
fn multi_session_nicks() {
    let b = Bench::new();
    let mut r = b.instant("room");
    b.presence(&mut r, join("room", JULIET, "Juliet"));
    let second = "juliet@localhost/phone";
    let out = b.presence(&mut r, join("room", second, "Juliet"));
    assert!(
        to(&out, second)
            .iter()
            .all(|s| s.attr("type") != Some("error"))
    );
    let occ = r.occupant_by_nick("Juliet").expect("occupant");
    assert_eq!(occ.sessions.len(), 2);
    // A groupchat message reaches both sessions.
    let out = b.message(&mut r, groupchat("room", ROMEO, "m", "<body>x</body>"));
    assert_eq!(out.stanzas.len(), 3);
    // One session leaves: the occupant stays.
    let out = b.presence(&mut r, leave("room", second, "Juliet", ""));
    assert_eq!(to(&out, second)[0].attr("type"), Some("unavailable"));
    assert!(r.occupant_by_nick("Juliet").is_some());
    assert!(
        to(&out, ROMEO)
            .iter()
            .all(|s| s.attr("type") != Some("unavailable"))
    );
}

#[test]
fn private_messages() {
    let b = Bench::new();
    let mut r = b.instant("room");
    b.presence(&mut r, join("room", JULIET, "Juliet"));
    b.presence(&mut r, join("room", "juliet@localhost/phone", "Juliet"));
    let pm = xml(&format!(
        "<message xmlns='jabber:component:accept' type='chat' id='p1' from='{ROMEO}' to='room@conference.localhost/Juliet'><body>psst</body></message>"
    ));
    let out = b.message(&mut r, pm.clone());
    assert_eq!(out.stanzas.len(), 2, "every session of the nick");
    for s in &out.stanzas {
        assert_eq!(s.attr("from"), Some("room@conference.localhost/romeo"));
        assert!(s.has_child("x", NS_MUC_USER));
        assert_eq!(s.attr("id"), Some("p1"));
    }
    let to_nobody = xml(&format!(
        "<message xmlns='jabber:component:accept' type='chat' from='{ROMEO}' to='room@conference.localhost/Nobody'><body>?</body></message>"
    ));
    assert_eq!(
        error_to(&b.message(&mut r, to_nobody), ROMEO),
        "item-not-found"
    );
    let from_stranger = xml(&format!(
        "<message xmlns='jabber:component:accept' type='chat' from='{ROSALINE}' to='room@conference.localhost/Juliet'><body>?</body></message>"
    ));
    assert_eq!(
        error_to(&b.message(&mut r, from_stranger), ROSALINE),
        "not-acceptable"
    );
    b.configure(
        &mut r,
        ROMEO,
        "<field var='muc#roomconfig_allowpm'><value>none</value></field>",
    );
    assert_eq!(error_to(&b.message(&mut r, pm), ROMEO), "policy-violation");
}

#[test]
fn error_bounce_removes_a_ghost_with_333() {
    let b = Bench::new();
    let mut r = b.instant("room");
    b.presence(&mut r, join("room", JULIET, "Juliet"));
    let bounce = xml(&format!(
        "<message xmlns='jabber:component:accept' type='error' from='{JULIET}' to='room@conference.localhost'><error type='cancel'><recipient-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
    ));
    let out = b.message(&mut r, bounce);
    assert!(r.occupant_by_nick("Juliet").is_none());
    assert!(to(&out, JULIET).is_empty(), "nothing to the ghost");
    let rm = to(&out, ROMEO);
    assert_eq!(rm[0].attr("type"), Some("unavailable"));
    assert_eq!(codes(rm[0]), [333]);
    assert_eq!(
        child_text(rm[0], "status").as_deref(),
        Some("Kicked: recipient unavailable")
    );
    // An error presence does the same; a non-kickable message error does not.
    b.presence(&mut r, join("room", JULIET, "Juliet"));
    let soft = xml(&format!(
        "<message xmlns='jabber:component:accept' type='error' from='{JULIET}' to='room@conference.localhost'><error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
    ));
    b.message(&mut r, soft);
    assert!(r.occupant_by_nick("Juliet").is_some());
}

#[test]
fn presence_update_is_broadcast() {
    let b = Bench::new();
    let mut r = b.instant("room");
    b.presence(&mut r, join("room", JULIET, "Juliet"));
    let p = xml(&format!(
        "<presence xmlns='jabber:component:accept' from='{JULIET}' to='room@conference.localhost/Juliet'><show>away</show></presence>"
    ));
    let out = b.presence(&mut r, p);
    let rm = to(&out, ROMEO);
    assert_eq!(rm.len(), 1);
    assert_eq!(child_text(rm[0], "show").as_deref(), Some("away"));
    assert_eq!(codes(to(&out, JULIET)[0]), [110]);
    // Presence sent to the bare room counts as an update.
    let p = xml(&format!(
        "<presence xmlns='jabber:component:accept' from='{JULIET}' to='room@conference.localhost'><show>dnd</show></presence>"
    ));
    let out = b.presence(&mut r, p);
    assert_eq!(
        child_text(to(&out, ROMEO)[0], "show").as_deref(),
        Some("dnd")
    );
}

#[test]
fn presence_broadcast_limits_roles() {
    let b = Bench::new();
    let mut r = b.instant("room");
    b.configure(&mut r, ROMEO, "<field var='muc#roomconfig_moderatedroom'><value>1</value></field><field var='muc#roomconfig_presencebroadcast'><value>moderator</value><value>participant</value></field>");
    let out = b.presence(&mut r, join("room", JULIET, "Juliet"));
    assert!(
        to(&out, ROMEO).is_empty(),
        "a visitor's presence is not broadcast"
    );
    assert_eq!(
        to(&out, JULIET).len(),
        3,
        "she still sees the room and herself"
    );
}

#[test]
fn destroy_like_muc_create_destroy() {
    let b = Bench::new();
    let mut r = b.instant("garden");
    b.presence(&mut r, join("garden", JULIET, "juliet"));
    let out = b.iq(&mut r, ROMEO, IqType::Set, "<query xmlns='http://jabber.org/protocol/muc#owner'><destroy jid='elsewhere@conference.localhost'><reason>We refuse to live in this fantasy!</reason></destroy></query>");
    assert!(out.room_gone);
    let j = to(&out, JULIET);
    assert_eq!(j.len(), 1);
    assert_eq!(j[0].attr("type"), Some("unavailable"));
    assert_eq!(payload_order(j[0]), ["destroy", "item", "status:110"]);
    let rm = to(&out, ROMEO);
    assert_eq!(rm.len(), 2);
    assert_eq!(rm[0].attr("type"), Some("unavailable"));
    assert_eq!(
        rm[1].attr("type"),
        Some("result"),
        "the result after the presences"
    );
    // Only owners.
    let mut r = b.instant("garden");
    b.presence(&mut r, join("garden", JULIET, "juliet"));
    let out = b.iq(
        &mut r,
        JULIET,
        IqType::Set,
        "<query xmlns='http://jabber.org/protocol/muc#owner'><destroy/></query>",
    );
    assert_eq!(error_to(&out, JULIET), "forbidden");
}

#[test]
fn disco_info_of_a_room() {
    let b = Bench::new();
    let mut r = b.instant("room");
    b.configure(&mut r, ROMEO, "<field var='muc#roomconfig_roomname'><value>The Room</value></field><field var='muc#roomconfig_persistentroom'><value>1</value></field>");
    let out = b.iq(
        &mut r,
        JULIET,
        IqType::Get,
        "<query xmlns='http://jabber.org/protocol/disco#info'/>",
    );
    let s = String::from(&out.stanzas[0]);
    for f in [
        "muc_persistent",
        "muc_hidden",
        "muc_open",
        "muc_unmoderated",
        "muc_unsecured",
        "muc_semianonymous",
        "name='The Room'",
        "muc#roominfo_occupants",
    ] {
        assert!(s.contains(f), "{f} in {s}");
    }
}

#[test]
fn self_ping_is_answered() {
    let b = Bench::new();
    let mut r = b.instant("room");
    let req = iq_to(
        ROMEO,
        "room@conference.localhost/romeo",
        IqType::Get,
        "<ping xmlns='urn:xmpp:ping'/>",
    );
    let out = r.handle_iq(&b.env(), &req);
    assert_eq!(out.stanzas[0].attr("type"), Some("result"));
    let req = iq_to(
        JULIET,
        "room@conference.localhost/romeo",
        IqType::Get,
        "<ping xmlns='urn:xmpp:ping'/>",
    );
    assert_eq!(
        error_to(&r.handle_iq(&b.env(), &req), JULIET),
        "not-acceptable"
    );
}

#[test]
fn probes_like_muc_presence_probe() {
    let b = Bench::new();
    let mut r = b.instant("room");
    b.configure(
        &mut r,
        ROMEO,
        "<field var='muc#roomconfig_presencebroadcast'><value>moderator</value></field>",
    );
    let probe = |from: &str, nick: &str| {
        xml(&format!(
            "<presence xmlns='jabber:component:accept' type='probe' from='{from}' to='room@conference.localhost/{nick}'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
        ))
    };
    let out = b.presence(&mut r, probe(ROMEO, "romeo"));
    let rm = to(&out, ROMEO);
    assert_eq!(rm.len(), 1);
    assert_eq!(items(rm[0])[0].attr("jid"), Some(ROMEO));
    assert!(codes(rm[0]).is_empty());
    assert_eq!(
        error_to(&b.presence(&mut r, probe(JULIET, "romeo")), JULIET),
        "not-acceptable"
    );
    b.presence(&mut r, join("room", JULIET, "Juliet"));
    let out = b.presence(&mut r, probe(ROMEO, "Juliet"));
    let rm = to(&out, ROMEO);
    assert_eq!(rm.len(), 1, "probes ignore presence broadcast");
    assert_eq!(items(rm[0])[0].attr("role"), Some("participant"));
    b.iq(&mut r, ROMEO, IqType::Set, "<query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member' jid='mercutio@localhost' nick='Mercutio'/></query>");
    let out = b.presence(&mut r, probe(ROMEO, "Mercutio"));
    let rm = to(&out, ROMEO);
    assert_eq!(rm[0].attr("type"), Some("unavailable"));
    let item = items(rm[0])[0];
    assert_eq!(item.attr("nick"), Some("Mercutio"));
    assert_eq!(item.attr("jid"), Some("mercutio@localhost"));
    assert_eq!(item.attr("role"), Some("none"));
}

#[test]
fn iqs_to_occupants_are_relayed_and_answered_back() {
    let b = Bench::new();
    let mut r = b.instant("room");
    b.presence(&mut r, join("room", JULIET, "Juliet"));
    let req = iq_to(
        ROMEO,
        "room@conference.localhost/Juliet",
        IqType::Get,
        "<query xmlns='jabber:iq:version'/>",
    );
    let out = r.handle_iq(&b.env(), &req);
    let fwd = to(&out, JULIET);
    assert_eq!(fwd.len(), 1, "{:?}", texts(&out));
    assert_eq!(fwd[0].attr("from"), Some("room@conference.localhost/romeo"));
    let id = fwd[0].attr("id").expect("id").to_owned();
    let vcard = iq_to(
        ROMEO,
        "room@conference.localhost/Juliet",
        IqType::Get,
        "<vCard xmlns='vcard-temp'/>",
    );
    assert_eq!(
        to(&r.handle_iq(&b.env(), &vcard), "juliet@localhost").len(),
        1
    );
    let answer = xml(&format!(
        "<iq xmlns='jabber:component:accept' type='result' id='{id}' from='{JULIET}' to='room@conference.localhost/romeo'><query xmlns='jabber:iq:version'><name>x</name></query></iq>"
    ));
    let out = r.handle_iq_response(&answer);
    let back = to(&out, ROMEO);
    assert_eq!(back.len(), 1);
    assert_eq!(
        back[0].attr("from"),
        Some("room@conference.localhost/Juliet")
    );
    assert_eq!(back[0].attr("id"), Some("iq1"));
    // Forged or stale ids go nowhere.
    let forged = xml(&format!(
        "<iq xmlns='jabber:component:accept' type='result' id='zz' from='{JULIET}' to='room@conference.localhost/romeo'/>"
    ));
    assert!(r.handle_iq_response(&forged).stanzas.is_empty());
}

#[test]
fn presence_broadcast_change_hides_and_shows_roles() {
    let b = Bench::new();
    let mut r = b.instant("room");
    b.presence(&mut r, join("room", JULIET, "Juliet"));
    let out = b.configure(
        &mut r,
        ROMEO,
        "<field var='muc#roomconfig_presencebroadcast'><value>moderator</value></field>",
    );
    let rm: Vec<_> = to(&out, ROMEO)
        .into_iter()
        .filter(|s| s.name() == "presence")
        .collect();
    assert_eq!(rm.len(), 1);
    assert_eq!(rm[0].attr("from"), Some("room@conference.localhost/Juliet"));
    assert_eq!(rm[0].attr("type"), Some("unavailable"));
    let out = b.configure(&mut r, ROMEO, "<field var='muc#roomconfig_presencebroadcast'><value>moderator</value><value>participant</value></field>");
    let rm: Vec<_> = to(&out, ROMEO)
        .into_iter()
        .filter(|s| s.name() == "presence")
        .collect();
    assert_eq!(rm.len(), 1);
    assert_eq!(rm[0].attr("type"), None);
}

#[test]
fn the_creators_language_is_the_rooms() {
    let b = Bench::new();
    let p = xml(&format!(
        "<presence xmlns='jabber:component:accept' xml:lang='de' from='{ROMEO}' to='garten@conference.localhost/romeo'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
    ));
    let crate::service::Absent::Create(mut r) = crate::service::absent_room(&b.env(), &p, 0) else {
        panic!("created");
    };
    r.handle_presence(&b.env(), &p);
    assert_eq!(r.config().language.as_deref(), Some("de"));
}
