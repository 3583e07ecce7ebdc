//! Moderation: kick, ban, voice in moderated rooms and voice requests, the
//! affiliation lists, and who may send private messages under each
//! `allowpm` policy.

use super::*;

/// Sends a private message to `room/nick`; returns the error condition the
/// sender gets, or None when `to` received it.
async fn pm(
    from: &mut Client,
    r: &str,
    from_nick: &str,
    to: &mut Client,
    nick: &str,
) -> Option<String> {
    let id = id();
    let body = format!("pm {id}");
    from.send_raw(&format!(
        "<message type='chat' id='{id}' to='{r}/{nick}'><body>{body}</body></message>"
    ))
    .await;
    let sender = format!("{r}/{from_nick}");
    let expected = body.clone();
    tokio::select! {
        e = from.recv_matching(|e| e.attr("id") == Some(&id) && e.attr("type") == Some("error"), T) => {
            to.expect_none_matching(|e| message_with(e, &sender, &expected), QUIET).await;
            Some(condition(&e).unwrap_or_default())
        }
        m = to.recv_matching(|e| message_with(e, &sender, &expected), T) => {
            assert_eq!(m.attr("type"), Some("chat"), "{m:?}");
            None
        }
    }
}

#[tokio::test]
async fn private_messages_follow_allowpm() {
    let svc = Service::start(&["alice", "bob", "carol"], "").await;
    let (mut alice, mut bob, mut carol) = (
        svc.client("alice").await,
        svc.client("bob").await,
        svc.client("carol").await,
    );
    let r = room("pm");
    create(&mut alice, &r, "Alice", &[("moderatedroom", "1")]).await;
    let reply = admin(
        &mut alice,
        &r,
        "<item affiliation='member' jid='bob@localhost'/>",
    )
    .await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
    let p = join(&mut bob, &r, "Bob").await;
    assert_eq!(item(&p).and_then(|i| i.attr("role")), Some("participant"));
    let p = join(&mut carol, &r, "Carol").await;
    assert_eq!(item(&p).and_then(|i| i.attr("role")), Some("visitor"));
    let refused = Some("policy-violation".to_owned());

    // anyone (the default): even a visitor.
    assert_eq!(pm(&mut carol, &r, "Carol", &mut bob, "Bob").await, None);

    configure(&mut alice, &r, &[("allowpm", "participants")]).await;
    assert_eq!(pm(&mut carol, &r, "Carol", &mut bob, "Bob").await, refused);
    assert_eq!(pm(&mut bob, &r, "Bob", &mut carol, "Carol").await, None);
    assert_eq!(
        pm(&mut carol, &r, "Carol", &mut alice, "Alice").await,
        None,
        "moderators are reachable"
    );

    configure(&mut alice, &r, &[("allowpm", "moderators")]).await;
    assert_eq!(pm(&mut bob, &r, "Bob", &mut carol, "Carol").await, refused);
    assert_eq!(pm(&mut alice, &r, "Alice", &mut bob, "Bob").await, None);
    assert_eq!(pm(&mut bob, &r, "Bob", &mut alice, "Alice").await, None);

    configure(&mut alice, &r, &[("allowpm", "none")]).await;
    assert_eq!(pm(&mut alice, &r, "Alice", &mut bob, "Bob").await, refused);
    assert_eq!(pm(&mut bob, &r, "Bob", &mut alice, "Alice").await, refused);

    // To a nick not in the room.
    configure(&mut alice, &r, &[("allowpm", "anyone")]).await;
    let id = id();
    bob.send_raw(&format!(
        "<message type='chat' id='{id}' to='{r}/Nobody'><body>hi</body></message>"
    ))
    .await;
    let e = bob
        .recv_matching(
            |e| e.attr("id") == Some(&id) && e.attr("type") == Some("error"),
            T,
        )
        .await;
    assert_eq!(condition(&e).as_deref(), Some("item-not-found"));
}

#[tokio::test]
async fn voice_in_moderated_rooms_and_voice_requests() {
    let svc = Service::start(&["alice", "carol"], "").await;
    let (mut alice, mut carol) = (svc.client("alice").await, svc.client("carol").await);
    let r = room("moderated");
    create(&mut alice, &r, "Alice", &[("moderatedroom", "1")]).await;
    join(&mut carol, &r, "Carol").await;

    // A visitor's message is refused.
    let id1 = id();
    carol
        .send_raw(&format!(
            "<message type='groupchat' id='{id1}' to='{r}'><body>may I?</body></message>"
        ))
        .await;
    let e = carol
        .recv_matching(
            |e| e.attr("id") == Some(&id1) && e.attr("type") == Some("error"),
            T,
        )
        .await;
    assert_eq!(condition(&e).as_deref(), Some("forbidden"), "{e:?}");

    // A voice request reaches the moderator as a form.
    carol
        .send_raw(&format!(
            "<message to='{r}' id='{}'><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field>\
             <field var='muc#role'><value>participant</value></field></x></message>",
            super::id()
        ))
        .await;
    let request = alice
        .recv_matching(
            |e| {
                e.name() == "message"
                    && e.attr("from") == Some(&r)
                    && e.get_child("x", "jabber:x:data").is_some()
            },
            T,
        )
        .await;
    let form = request.get_child("x", "jabber:x:data").expect("form");
    let field = |var: &str| {
        form.children()
            .find(|f| f.attr("var") == Some(var))
            .and_then(|f| f.children().next())
            .map(Element::text)
    };
    assert_eq!(
        field("muc#roomnick").as_deref(),
        Some("Carol"),
        "{request:?}"
    );
    assert_eq!(
        field("muc#jid")
            .as_deref()
            .map(|j| j.starts_with("carol@localhost")),
        Some(true)
    );

    // Granting voice: everyone sees Carol become a participant; she speaks.
    let reply = admin(&mut alice, &r, "<item nick='Carol' role='participant'/>").await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
    let carol_jid = format!("{r}/Carol");
    let p = carol
        .recv_matching(
            |e| {
                presence_from(e, &carol_jid)
                    && item(e).and_then(|i| i.attr("role")) == Some("participant")
            },
            T,
        )
        .await;
    assert!(codes(&p).contains(&110), "{p:?}");
    say(&mut carol, &r, "thanks").await;
    hears(&mut alice, &carol_jid, "thanks").await;

    // Revoked again: a visitor.
    let reply = admin(&mut alice, &r, "<item nick='Carol' role='visitor'/>").await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
    alice
        .recv_matching(
            |e| {
                presence_from(e, &carol_jid)
                    && item(e).and_then(|i| i.attr("role")) == Some("visitor")
            },
            T,
        )
        .await;

    // A participant may not change roles.
    let e = admin(&mut carol, &r, "<item nick='Alice' role='visitor'/>").await;
    assert_eq!(e.attr("type"), Some("error"), "{e:?}");
}

#[tokio::test]
async fn kick_ban_and_affiliation_lists() {
    let svc = Service::start(&["alice", "bob", "carol", "dave"], "").await;
    let (mut alice, mut bob, mut carol) = (
        svc.client("alice").await,
        svc.client("bob").await,
        svc.client("carol").await,
    );
    let r = room("mod");
    create(&mut alice, &r, "Alice", &[]).await;
    join(&mut bob, &r, "Bob").await;
    join(&mut carol, &r, "Carol").await;

    // Kick: 307 to the kicked (with 110) and to the others; the reason comes along.
    let reply = admin(
        &mut alice,
        &r,
        "<item nick='Bob' role='none'><reason>calm down</reason></item>",
    )
    .await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
    let bob_jid = format!("{r}/Bob");
    let kicked = bob
        .recv_matching(
            |e| presence_from(e, &bob_jid) && e.attr("type") == Some("unavailable"),
            T,
        )
        .await;
    assert!(
        codes(&kicked).contains(&307) && codes(&kicked).contains(&110),
        "{kicked:?}"
    );
    let reason = item(&kicked)
        .and_then(|i| i.get_child("reason", NS_MUC_USER))
        .map(Element::text);
    assert_eq!(reason.as_deref(), Some("calm down"));
    let seen = carol
        .recv_matching(
            |e| presence_from(e, &bob_jid) && e.attr("type") == Some("unavailable"),
            T,
        )
        .await;
    assert!(codes(&seen).contains(&307), "{seen:?}");

    // Bob may come back; a ban (301) keeps him out.
    join(&mut bob, &r, "Bob").await;
    let reply = admin(
        &mut alice,
        &r,
        "<item affiliation='outcast' jid='bob@localhost'><reason>spam</reason></item>",
    )
    .await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
    let banned = bob
        .recv_matching(
            |e| presence_from(e, &bob_jid) && e.attr("type") == Some("unavailable"),
            T,
        )
        .await;
    assert!(codes(&banned).contains(&301), "{banned:?}");
    let seen = carol
        .recv_matching(
            |e| {
                presence_from(e, &bob_jid)
                    && e.attr("type") == Some("unavailable")
                    && codes(e).contains(&301)
            },
            T,
        )
        .await;
    assert_eq!(
        item(&seen).and_then(|i| i.attr("affiliation")),
        Some("outcast")
    );
    assert_eq!(join_refused(&mut bob, &r, "Bob", "").await, "forbidden");

    // The lists: members, admins, owners, outcasts.
    for (affiliation, jid) in [("member", "dave@localhost"), ("admin", "carol@localhost")] {
        let reply = admin(
            &mut alice,
            &r,
            &format!("<item affiliation='{affiliation}' jid='{jid}'/>"),
        )
        .await;
        assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
    }
    assert_eq!(
        admin_list(&mut alice, &r, "member").await,
        ["dave@localhost"]
    );
    assert_eq!(
        admin_list(&mut alice, &r, "admin").await,
        ["carol@localhost"]
    );
    assert_eq!(
        admin_list(&mut alice, &r, "owner").await,
        ["alice@localhost"]
    );
    assert_eq!(
        admin_list(&mut alice, &r, "outcast").await,
        ["bob@localhost"]
    );
    // Carol, now admin, was told she is a moderator.
    let carol_jid = format!("{r}/Carol");
    let p = carol
        .recv_matching(
            |e| {
                presence_from(e, &carol_jid)
                    && item(e).and_then(|i| i.attr("affiliation")) == Some("admin")
            },
            T,
        )
        .await;
    assert_eq!(item(&p).and_then(|i| i.attr("role")), Some("moderator"));
    // An admin may not touch the owner; nobody lists without rights.
    let e = admin(
        &mut carol,
        &r,
        "<item affiliation='none' jid='alice@localhost'/>",
    )
    .await;
    assert_eq!(e.attr("type"), Some("error"), "{e:?}");
    // Unbanned, Bob is back in.
    let reply = admin(
        &mut alice,
        &r,
        "<item affiliation='none' jid='bob@localhost'/>",
    )
    .await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
    assert!(admin_list(&mut alice, &r, "outcast").await.is_empty());
    join(&mut bob, &r, "Bob").await;
}
