//! Occupants coming and going: nick changes, one nick from several
//! sessions, ghosts removed on a bounced error, invitations, destroy, and
//! temporary rooms vanishing when the last occupant leaves.

use super::*;

/// A disco#info to the room: its reply.
async fn disco_info(c: &mut Client, r: &str) -> Element {
    c.iq(&format!(
        "<iq type='get' id='{}' to='{r}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
        id()
    ))
    .await
}

#[tokio::test]
async fn nick_change_and_multi_session_nicks() {
    let svc = Service::start(&["alice", "bob"], "").await;
    let mut alice = svc.client("alice").await;
    let mut bob = svc.client("bob").await;
    let r = room("nicks");
    create(&mut alice, &r, "Alice", &[]).await;
    join(&mut bob, &r, "Bob").await;

    // Nick change: 303 with the new nick, then the new presence.
    bob.send_raw(&format!("<presence to='{r}/Robert'/>")).await;
    let old = format!("{r}/Bob");
    let gone = alice
        .recv_matching(
            |e| presence_from(e, &old) && e.attr("type") == Some("unavailable"),
            T,
        )
        .await;
    assert!(codes(&gone).contains(&303), "{gone:?}");
    assert_eq!(item(&gone).and_then(|i| i.attr("nick")), Some("Robert"));
    let own = bob
        .recv_matching(
            |e| presence_from(e, &old) && e.attr("type") == Some("unavailable"),
            T,
        )
        .await;
    assert!(
        codes(&own).contains(&303) && codes(&own).contains(&110),
        "{own:?}"
    );
    let new = format!("{r}/Robert");
    alice
        .recv_matching(|e| presence_from(e, &new) && e.attr("type").is_none(), T)
        .await;
    say(&mut bob, &r, "renamed").await;
    hears(&mut alice, &new, "renamed").await;
    // Taking a nick in use is a conflict.
    bob.send_raw(&format!("<presence to='{r}/Alice'/>")).await;
    let e = bob
        .recv_matching(
            |e| presence_from(e, &format!("{r}/Alice")) && e.attr("type") == Some("error"),
            T,
        )
        .await;
    assert_eq!(condition(&e).as_deref(), Some("conflict"));

    // A second session of alice under the same nick: both get messages,
    // and one leaving keeps the occupant in.
    let mut alice2 = Client::connect(svc.prosody.c2s_port, "alice@localhost/second", "alice").await;
    join(&mut alice2, &r, "Alice").await;
    say(&mut bob, &r, "to both").await;
    hears(&mut alice, &new, "to both").await;
    hears(&mut alice2, &new, "to both").await;
    // Another user may not share the nick.
    let mut alice_nick_thief = svc.client("bob").await;
    assert_eq!(
        join_refused(&mut alice_nick_thief, &r, "Alice", "").await,
        "conflict"
    );
    alice2
        .send_raw(&format!("<presence type='unavailable' to='{r}/Alice'/>"))
        .await;
    alice2
        .recv_matching(
            |e| presence_from(e, &format!("{r}/Alice")) && e.attr("type") == Some("unavailable"),
            T,
        )
        .await;
    bob.expect_none_matching(
        |e| presence_from(e, &format!("{r}/Alice")) && e.attr("type") == Some("unavailable"),
        QUIET,
    )
    .await;
    say(&mut bob, &r, "still there").await;
    hears(&mut alice, &new, "still there").await;
}

#[tokio::test]
async fn an_error_bounced_by_an_occupant_removes_it() {
    let svc = Service::start(&["alice", "bob"], "").await;
    let mut alice = svc.client("alice").await;
    let mut bob = svc.client("bob").await;
    let r = room("ghosts");
    create(&mut alice, &r, "Alice", &[]).await;
    join(&mut bob, &r, "Bob").await;
    say(&mut alice, &r, "are you there?").await;
    let m = hears(&mut bob, &format!("{r}/Alice"), "are you there?").await;
    // Bob's client bounces it, as a server does for a session gone.
    bob.send_raw(&format!(
        "<message type='error' to='{r}/Alice' id='{}'><error type='cancel'>\
         <recipient-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
        m.attr("id").unwrap_or("")
    ))
    .await;
    let bob_jid = format!("{r}/Bob");
    let gone = alice
        .recv_matching(
            |e| presence_from(e, &bob_jid) && e.attr("type") == Some("unavailable"),
            T,
        )
        .await;
    assert!(codes(&gone).contains(&333), "{gone:?}");
    // The room no longer sends to the ghost.
    say(&mut alice, &r, "gone?").await;
    hears(&mut alice, &format!("{r}/Alice"), "gone?").await;
    bob.expect_none_matching(|e| message_with(e, &format!("{r}/Alice"), "gone?"), QUIET)
        .await;

    // With two sessions under one nick, a bounce from one removes only
    // that session: the occupant stays, the other session still hears.
    join(&mut bob, &r, "Bob").await;
    let mut bob2 = Client::connect(svc.prosody.c2s_port, "bob@localhost/two", "bob").await;
    join(&mut bob2, &r, "Bob").await;
    say(&mut alice, &r, "both?").await;
    let m = hears(&mut bob2, &format!("{r}/Alice"), "both?").await;
    bob2.send_raw(&format!(
        "<message type='error' to='{r}/Alice' id='{}'><error type='cancel'>\
         <recipient-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
        m.attr("id").unwrap_or("")
    ))
    .await;
    alice
        .expect_none_matching(
            |e| presence_from(e, &bob_jid) && e.attr("type") == Some("unavailable"),
            QUIET,
        )
        .await;
    say(&mut alice, &r, "one left").await;
    hears(&mut bob, &format!("{r}/Alice"), "one left").await;

    // A client that disconnects without leaving: its server says
    // unavailable for it, and the others see it go.
    drop(bob2);
    bob.disconnect().await;
    let gone = alice
        .recv_matching(
            |e| presence_from(e, &bob_jid) && e.attr("type") == Some("unavailable"),
            T,
        )
        .await;
    assert!(!codes(&gone).contains(&333), "{gone:?}");
}

#[tokio::test]
async fn invitations_and_declines() {
    let svc = Service::start(&["alice", "bob"], "").await;
    let mut alice = svc.client("alice").await;
    let mut bob = svc.client("bob").await;
    let r = room("invite");
    create(&mut alice, &r, "Alice", &[("membersonly", "1")]).await;
    alice
        .send_raw(&format!(
            "<message to='{r}' id='{}'><x xmlns='http://jabber.org/protocol/muc#user'>\
             <invite to='bob@localhost'><reason>join us</reason></invite></x></message>",
            id()
        ))
        .await;
    let invitation = bob
        .recv_matching(|e| e.name() == "message" && e.attr("from") == Some(&r), T)
        .await;
    let invite = invitation
        .get_child("x", NS_MUC_USER)
        .and_then(|x| x.get_child("invite", NS_MUC_USER))
        .unwrap_or_else(|| panic!("no invite: {invitation:?}"));
    // The inviter as the invitee may see her: her occupant JID in a room
    // that hides real JIDs.
    assert_eq!(
        invite.attr("from"),
        Some(format!("{r}/Alice").as_str()),
        "{invite:?}"
    );
    assert_eq!(
        invite
            .get_child("reason", NS_MUC_USER)
            .map(Element::text)
            .as_deref(),
        Some("join us")
    );
    // In a members-only room, the owner's invitation makes bob a member.
    join(&mut bob, &r, "Bob").await;
    leave(&mut bob, &r, "Bob").await;

    // A decline goes back to the inviter.
    bob.send_raw(&format!(
        "<message to='{r}' id='{}'><x xmlns='http://jabber.org/protocol/muc#user'>\
         <decline to='{}'><reason>busy</reason></decline></x></message>",
        id(),
        alice.jid
    ))
    .await;
    let declined = alice
        .recv_matching(
            |e| {
                e.name() == "message"
                    && e.get_child("x", NS_MUC_USER)
                        .and_then(|x| x.get_child("decline", NS_MUC_USER))
                        .is_some()
            },
            T,
        )
        .await;
    let decline = declined
        .get_child("x", NS_MUC_USER)
        .and_then(|x| x.get_child("decline", NS_MUC_USER))
        .expect("decline");
    assert!(
        decline
            .attr("from")
            .is_some_and(|f| f.starts_with("bob@localhost")),
        "{declined:?}"
    );
    assert_eq!(declined.attr("from"), Some(r.as_str()), "{declined:?}");
}

#[tokio::test]
async fn destroy_and_temporary_rooms_vanish() {
    let svc = Service::start(&["alice", "bob"], "").await;
    let mut alice = svc.client("alice").await;
    let mut bob = svc.client("bob").await;

    // Temporary: gone once the last occupant left.
    let temp = room("temp");
    create(&mut alice, &temp, "Alice", &[]).await;
    let info = disco_info(&mut bob, &temp).await;
    assert_eq!(info.attr("type"), Some("result"), "{info:?}");
    leave(&mut alice, &temp, "Alice").await;
    let info = disco_info(&mut bob, &temp).await;
    assert_eq!(
        condition(&info).as_deref(),
        Some("item-not-found"),
        "{info:?}"
    );
    // Joining again creates it anew.
    let p = join(&mut bob, &temp, "Bob").await;
    assert!(codes(&p).contains(&201), "{p:?}");

    // Destroy: everyone leaves with the reason and the new venue.
    let r = room("doomed");
    create(&mut alice, &r, "Alice", &[("persistentroom", "1")]).await;
    join(&mut bob, &r, "Bob").await;
    let e = bob
        .iq(&format!(
            "<iq type='set' id='{}' to='{r}'><query xmlns='http://jabber.org/protocol/muc#owner'><destroy/></query></iq>",
            id()
        ))
        .await;
    assert_eq!(
        condition(&e).as_deref(),
        Some("forbidden"),
        "only owners destroy: {e:?}"
    );
    let reply = alice
        .iq(&format!(
            "<iq type='set' id='{}' to='{r}'><query xmlns='http://jabber.org/protocol/muc#owner'>\
             <destroy jid='{}'><reason>moved</reason></destroy></query></iq>",
            id(),
            room("elsewhere")
        ))
        .await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
    let bob_jid = format!("{r}/Bob");
    let out = bob
        .recv_matching(
            |e| presence_from(e, &bob_jid) && e.attr("type") == Some("unavailable"),
            T,
        )
        .await;
    let destroy = out
        .get_child("x", NS_MUC_USER)
        .and_then(|x| x.get_child("destroy", NS_MUC_USER))
        .unwrap_or_else(|| panic!("no destroy: {out:?}"));
    assert_eq!(destroy.attr("jid"), Some(room("elsewhere").as_str()));
    assert_eq!(
        destroy
            .get_child("reason", NS_MUC_USER)
            .map(Element::text)
            .as_deref(),
        Some("moved")
    );
    let info = disco_info(&mut bob, &r).await;
    assert_eq!(
        condition(&info).as_deref(),
        Some("item-not-found"),
        "{info:?}"
    );
}
