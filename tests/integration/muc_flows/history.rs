//! Discussion history on join (maxchars, maxstanzas, seconds, since), each
//! message delayed by the room, and the subject after it.

use super::*;

const NS_DELAY: &str = "urn:xmpp:delay";
const TOPIC: &str = "Today's topic";

/// Joins with this `<history/>` and returns the history bodies received
/// before the subject (each checked for the room's delay).
async fn history(c: &mut Client, r: &str, nick: &str, request: &str) -> Vec<String> {
    let p = join_with(c, r, nick, request).await;
    assert!(codes(&p).contains(&110), "{p:?}");
    let prefix = format!("{r}/");
    let from_room = |e: &Element| {
        e.attr("from")
            .is_some_and(|f| f == r || f.starts_with(&prefix))
    };
    // The subject comes last: the history is all in when it is.
    let subject = c
        .recv_matching(
            |e| {
                e.name() == "message"
                    && from_room(e)
                    && e.get_child("subject", "jabber:client").is_some()
            },
            T,
        )
        .await;
    // The subject, from its author, without a body.
    assert!(
        subject.get_child("body", "jabber:client").is_none(),
        "{subject:?}"
    );
    assert_eq!(subject.attr("from"), Some(format!("{r}/Alice").as_str()));
    assert_eq!(
        subject
            .get_child("subject", "jabber:client")
            .map(Element::text),
        Some(TOPIC.to_owned())
    );
    c.take_received(|e| {
        e.name() == "message" && e.attr("type") == Some("groupchat") && from_room(e)
    })
    .into_iter()
    .map(|m| {
        let delay = m
            .get_child("delay", NS_DELAY)
            .unwrap_or_else(|| panic!("history without delay: {m:?}"));
        assert_eq!(delay.attr("from"), Some(r), "{m:?}");
        assert!(delay.attr("stamp").is_some(), "{m:?}");
        m.get_child("body", "jabber:client")
            .map(Element::text)
            .unwrap_or_default()
    })
    .collect()
}

#[tokio::test]
async fn history_variants_and_subject() {
    let svc = Service::start(&["alice", "bob", "carol"], "").await;
    let mut alice = svc.client("alice").await;
    let r = room("hist");
    create(&mut alice, &r, "Alice", &[]).await;
    let me = format!("{r}/Alice");
    alice
        .send_raw(&format!(
            "<message type='groupchat' to='{r}' id='{}'><subject>{TOPIC}</subject></message>",
            id()
        ))
        .await;
    alice
        .recv_matching(
            |e| e.attr("from") == Some(&me) && e.get_child("subject", "jabber:client").is_some(),
            T,
        )
        .await;
    // Only moderators change the subject by default.
    let mut carol = svc.client("carol").await;
    join(&mut carol, &r, "Carol").await;
    carol
        .send_raw(&format!(
            "<message type='groupchat' to='{r}' id='s2'><subject>Mine</subject></message>"
        ))
        .await;
    let refused = carol
        .recv_matching(
            |e| e.attr("id") == Some("s2") && e.attr("type") == Some("error"),
            T,
        )
        .await;
    assert_eq!(
        condition(&refused).as_deref(),
        Some("forbidden"),
        "{refused:?}"
    );
    leave(&mut carol, &r, "Carol").await;
    for body in ["one", "two", "three", "four"] {
        say(&mut alice, &r, body).await;
        hears(&mut alice, &me, body).await;
    }

    let mut bob = svc.client("bob").await;
    // Default: everything kept (history_length 20), oldest first.
    assert_eq!(
        history(&mut bob, &r, "Bob", "").await,
        ["one", "two", "three", "four"]
    );
    leave(&mut bob, &r, "Bob").await;
    assert_eq!(
        history(&mut bob, &r, "Bob", "<history maxstanzas='2'/>").await,
        ["three", "four"]
    );
    leave(&mut bob, &r, "Bob").await;
    assert!(
        history(&mut bob, &r, "Bob", "<history maxstanzas='0'/>")
            .await
            .is_empty()
    );
    leave(&mut bob, &r, "Bob").await;
    // maxchars counts whole stanzas: a small budget keeps only the last ones.
    let some = history(&mut bob, &r, "Bob", "<history maxchars='400'/>").await;
    assert!(some.len() < 4, "{some:?}");
    assert!(some.last().is_none_or(|b| b == "four"), "{some:?}");
    leave(&mut bob, &r, "Bob").await;
    assert!(
        history(&mut bob, &r, "Bob", "<history maxchars='0'/>")
            .await
            .is_empty()
    );
    leave(&mut bob, &r, "Bob").await;
    assert_eq!(
        history(&mut bob, &r, "Bob", "<history seconds='3600'/>")
            .await
            .len(),
        4
    );
    leave(&mut bob, &r, "Bob").await;
    assert!(
        history(
            &mut bob,
            &r,
            "Bob",
            "<history since='2099-01-01T00:00:00Z'/>"
        )
        .await
        .is_empty()
    );
    leave(&mut bob, &r, "Bob").await;
    assert_eq!(
        history(
            &mut bob,
            &r,
            "Bob",
            "<history since='2000-01-01T00:00:00Z'/>"
        )
        .await
        .len(),
        4
    );
    leave(&mut bob, &r, "Bob").await;
    // seconds: nothing newer than a second once a second and a half passed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        history(&mut bob, &r, "Bob", "<history seconds='1'/>")
            .await
            .is_empty()
    );
}
