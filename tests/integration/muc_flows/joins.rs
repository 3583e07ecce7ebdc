//! Every refusal of a join, as the refused user sees it.

use super::*;

#[tokio::test]
async fn join_refusals_name_their_conditions() {
    let svc = Service::start(&["alice", "bob"], "").await;
    let mut alice = svc.client("alice").await;
    let mut bob = svc.client("bob").await;

    // Nick conflict (409).
    let open = room("open");
    create(&mut alice, &open, "Alice", &[]).await;
    assert_eq!(join_refused(&mut bob, &open, "Alice", "").await, "conflict");

    // Banned (403): the ban also names bob's bare JID in the outcast list.
    let reply = admin(
        &mut alice,
        &open,
        "<item affiliation='outcast' jid='bob@localhost'/>",
    )
    .await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
    assert_eq!(
        admin_list(&mut alice, &open, "outcast").await,
        ["bob@localhost"]
    );
    assert_eq!(join_refused(&mut bob, &open, "Bob", "").await, "forbidden");

    // Password missing or wrong (401); the right one lets in.
    let secret = room("secret");
    create(
        &mut alice,
        &secret,
        "Alice",
        &[("passwordprotectedroom", "1"), ("roomsecret", "s3cret")],
    )
    .await;
    assert_eq!(
        join_refused(&mut bob, &secret, "Bob", "").await,
        "not-authorized"
    );
    assert_eq!(
        join_refused(&mut bob, &secret, "Bob", "<password>wrong</password>").await,
        "not-authorized"
    );
    let p = join_with(&mut bob, &secret, "Bob", "<password>s3cret</password>").await;
    assert!(codes(&p).contains(&110), "{p:?}");

    // Members-only (407) until bob is made a member.
    let members = room("members");
    create(&mut alice, &members, "Alice", &[("membersonly", "1")]).await;
    assert_eq!(
        join_refused(&mut bob, &members, "Bob", "").await,
        "registration-required"
    );
    let reply = admin(
        &mut alice,
        &members,
        "<item affiliation='member' jid='bob@localhost'/>",
    )
    .await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
    join(&mut bob, &members, "Bob").await;

    // Full (503).
    let small = room("small");
    create(&mut alice, &small, "Alice", &[("maxusers", "1")]).await;
    assert_eq!(
        join_refused(&mut bob, &small, "Bob", "").await,
        "service-unavailable"
    );

    // Locked until its owner configures it (item-not-found).
    let locked = room("locked");
    let p = join(&mut alice, &locked, "Alice").await;
    assert!(codes(&p).contains(&201), "{p:?}");
    assert_eq!(
        join_refused(&mut bob, &locked, "Bob", "").await,
        "item-not-found"
    );
    let reply = configure(&mut alice, &locked, &[]).await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
    join(&mut bob, &locked, "Bob").await;

    // A nick that fails strict validation (an unassigned code point in
    // stringprep's Unicode 3.2): jid-malformed.
    assert_eq!(
        join_refused(&mut bob, &open, "\u{1F916}", "").await,
        "jid-malformed"
    );
}

#[tokio::test]
async fn others_see_joins_and_leaves_and_messages() {
    let svc = Service::start(&["alice", "bob"], "").await;
    let mut alice = svc.client("alice").await;
    let mut bob = svc.client("bob").await;
    let r = room("core");
    create(&mut alice, &r, "Alice", &[]).await;
    join(&mut bob, &r, "Bob").await;
    let bob_in = alice
        .recv_matching(|e| presence_from(e, &format!("{r}/Bob")), T)
        .await;
    assert_eq!(
        item(&bob_in).and_then(|i| i.attr("role")),
        Some("participant")
    );
    say(&mut bob, &r, "hello room").await;
    hears(&mut alice, &format!("{r}/Bob"), "hello room").await;
    hears(&mut bob, &format!("{r}/Bob"), "hello room").await;
    leave(&mut bob, &r, "Bob").await;
    let gone = alice
        .recv_matching(
            |e| presence_from(e, &format!("{r}/Bob")) && e.attr("type") == Some("unavailable"),
            T,
        )
        .await;
    assert_eq!(item(&gone).and_then(|i| i.attr("role")), Some("none"));
}

#[tokio::test]
async fn service_settings_restrict_creation_and_room_size() {
    // Prosody's `admins` are the MUC's admins in these tests' config.
    let svc = Service::start(
        &["admin", "bob", "carol"],
        "create = \"admins\"\nmax_occupants = 2",
    )
    .await;
    let mut bob = svc.client("bob").await;
    let mut admin = svc.client("admin").await;
    let mut carol = svc.client("carol").await;
    let r = room("staff");
    assert_eq!(join_refused(&mut bob, &r, "Bob", "").await, "not-allowed");
    create(&mut admin, &r, "Admin", &[]).await;
    join(&mut bob, &r, "Bob").await;
    // max_occupants caps every room, whatever its own maxusers.
    assert_eq!(
        join_refused(&mut carol, &r, "Carol", "").await,
        "service-unavailable"
    );
}
