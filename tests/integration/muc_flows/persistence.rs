//! What survives a restart of the MUC: a persistent room's configuration,
//! affiliations, subject and registered nicks, after a graceful stop (in
//! this process) and after `kill -9` of the `satellite` binary running it.

use std::path::Path;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use satellite_harness::process::Proc;

use super::*;

const BIN: &str = env!("CARGO_BIN_EXE_satellite");

/// A persistent, moderated room "Kept" owned by alice, with a subject, bob
/// a member registered as "Bobby", dave banned.
async fn set_up_room(alice: &mut Client, bob: &mut Client, r: &str) {
    create(
        alice,
        r,
        "Alice",
        &[
            ("persistentroom", "1"),
            ("roomname", "Kept"),
            ("moderatedroom", "1"),
        ],
    )
    .await;
    alice
        .send_raw(&format!(
            "<message type='groupchat' to='{r}' id='{}'><subject>Still here</subject></message>",
            id()
        ))
        .await;
    alice
        .recv_matching(|e| e.get_child("subject", "jabber:client").is_some(), T)
        .await;
    say(alice, r, "said before").await;
    hears(alice, &format!("{r}/Alice"), "said before").await;
    for item in [
        "<item affiliation='member' jid='bob@localhost'/>",
        "<item affiliation='outcast' jid='dave@localhost'/>",
    ] {
        let reply = admin(alice, r, item).await;
        assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
    }
    let reply = bob
        .iq(&format!(
            "<iq type='set' id='{}' to='{r}'><query xmlns='jabber:iq:register'>\
             <x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>\
             <field var='muc#register_roomnick'><value>Bobby</value></field></x></query></iq>",
            id()
        ))
        .await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
}

/// Checks everything `set_up_room` left, as the users see it.
async fn room_survived(alice: &mut Client, bob: &mut Client, carol: &mut Client, r: &str) {
    let info = carol
        .iq(&format!(
            "<iq type='get' id='{}' to='{r}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
            id()
        ))
        .await;
    assert_eq!(info.attr("type"), Some("result"), "{info:?}");
    let query = info
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .expect("query");
    let features: Vec<&str> = query
        .children()
        .filter(|c| c.name() == "feature")
        .filter_map(|c| c.attr("var"))
        .collect();
    assert!(features.contains(&"muc_persistent"), "{features:?}");
    assert!(features.contains(&"muc_moderated"), "{features:?}");
    let name = query
        .get_child("identity", "http://jabber.org/protocol/disco#info")
        .and_then(|i| i.attr("name"));
    assert_eq!(name, Some("Kept"));

    // The registered nick: bob's, reserved against others.
    let reserved = bob
        .iq(&format!(
            "<iq type='get' id='{}' to='{r}'><query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'/></iq>",
            id()
        ))
        .await;
    let nick = reserved
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .and_then(|q| q.get_child("identity", "http://jabber.org/protocol/disco#info"))
        .and_then(|i| i.attr("name"));
    assert_eq!(nick, Some("Bobby"), "{reserved:?}");
    assert_eq!(join_refused(carol, r, "Bobby", "").await, "conflict");

    // Joining: the subject; carol a visitor (moderated), alice still owner.
    let p = join(carol, r, "Carol").await;
    assert_eq!(item(&p).and_then(|i| i.attr("role")), Some("visitor"));
    let subject = carol
        .recv_matching(|e| e.get_child("subject", "jabber:client").is_some(), T)
        .await;
    // The history (from the archive) came before it.
    let history = carol.take_received(|e| {
        e.name() == "message" && e.get_child("delay", "urn:xmpp:delay").is_some()
    });
    assert!(
        history
            .iter()
            .any(|m| message_with(m, &format!("{r}/Alice"), "said before")),
        "{history:?}"
    );
    assert_eq!(
        subject
            .get_child("subject", "jabber:client")
            .map(Element::text)
            .as_deref(),
        Some("Still here")
    );
    let p = join(alice, r, "Alice").await;
    assert_eq!(item(&p).and_then(|i| i.attr("affiliation")), Some("owner"));
    assert_eq!(admin_list(alice, r, "member").await, ["bob@localhost"]);
    assert_eq!(admin_list(alice, r, "outcast").await, ["dave@localhost"]);
}

#[tokio::test]
async fn persistent_rooms_survive_a_graceful_restart() {
    let mut svc = Service::start(&["alice", "bob", "carol", "dave"], "").await;
    let mut alice = svc.client("alice").await;
    let mut bob = svc.client("bob").await;
    let r = room("kept");
    set_up_room(&mut alice, &mut bob, &r).await;
    leave(&mut alice, &r, "Alice").await;
    // A destroyed persistent room stays destroyed.
    let doomed = room("doomed");
    create(&mut alice, &doomed, "Alice", &[("persistentroom", "1")]).await;
    let reply = alice
        .iq(&format!(
            "<iq type='set' id='{}' to='{doomed}'><query xmlns='http://jabber.org/protocol/muc#owner'><destroy/></query></iq>",
            id()
        ))
        .await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
    svc.restart().await;
    let info = bob
        .iq(&format!(
            "<iq type='get' id='{}' to='{doomed}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
            id()
        ))
        .await;
    assert_eq!(
        condition(&info).as_deref(),
        Some("item-not-found"),
        "{info:?}"
    );
    let mut carol = svc.client("carol").await;
    room_survived(&mut alice, &mut bob, &mut carol, &r).await;
    assert!(svc.dir.path().join("muc.sqlite").exists());
}

#[tokio::test]
async fn hibernated_rooms_come_back() {
    let svc = Service::start(&["alice", "bob", "carol", "dave"], "hibernate_after = 0.3").await;
    let mut alice = svc.client("alice").await;
    let mut bob = svc.client("bob").await;
    let r = room("sleepy");
    set_up_room(&mut alice, &mut bob, &r).await;
    leave(&mut alice, &r, "Alice").await;
    // Empty and persistent: out of memory after 0.3 s, back at the next stanza.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut carol = svc.client("carol").await;
    room_survived(&mut alice, &mut bob, &mut carol, &r).await;
}

/// `satellite run` with the MUC on `port`, its database in `dir`.
fn satellite_binary(dir: &Path, port: u16) -> Proc {
    let config = format!(
        "[[component]]\nservice = \"muc\"\njid = \"{SATELLITE_MUC}\"\nserver = \"127.0.0.1:{port}\"\n\
         secret = \"{SECRET}\"\n\n[component.settings]\ndatabase = \"{}\"\n",
        dir.join("muc.sqlite").display()
    );
    Proc::satellite(Path::new(BIN), dir, &config).expect("start satellite")
}

/// Waits until the MUC answers disco#info (its link is up).
async fn wait_for_service(c: &mut Client, proc: &mut Proc) {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let reply = c
            .iq(&format!(
                "<iq type='get' id='{}' to='{SATELLITE_MUC}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
                id()
            ))
            .await;
        if reply.attr("type") == Some("result") {
            return;
        }
        if let Err(e) = proc.check_running() {
            panic!("{e}");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the MUC did not come up: {}",
            proc.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn persistent_rooms_survive_kill_9_of_the_binary() {
    let prosody = MucSetup::satellite(SECRET)
        .user("alice", "alice")
        .user("bob", "bob")
        .user("carol", "carol")
        .user("dave", "dave")
        .start()
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut alice = Client::connect(prosody.c2s_port, "alice@localhost", "alice").await;
    let mut bob = Client::connect(prosody.c2s_port, "bob@localhost", "bob").await;
    let mut proc = satellite_binary(dir.path(), prosody.component_port);
    wait_for_service(&mut alice, &mut proc).await;
    let r = room("survivor");
    set_up_room(&mut alice, &mut bob, &r).await;

    // No goodbye: SIGKILL while alice is still in the room.
    let pid = Pid::from_raw(i32::try_from(proc.pid).expect("pid"));
    kill(pid, Signal::SIGKILL).expect("kill -9");
    let gone = tokio::time::timeout(T, async {
        while proc.check_running().is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "still running after SIGKILL");
    drop(proc);

    let mut proc = satellite_binary(dir.path(), prosody.component_port);
    wait_for_service(&mut alice, &mut proc).await;
    let mut carol = Client::connect(prosody.c2s_port, "carol@localhost", "carol").await;
    room_survived(&mut alice, &mut bob, &mut carol, &r).await;
    proc.terminate().await.expect("graceful stop");
}
