//! The announce service against a real Prosody with prosody-modules'
//! mod_privilege (and without it), with real client connections:
//! announcements reach every online resource once and nobody else, `all`
//! goes through offline storage, the MOTD reaches each user once across
//! reconnects and restarts, the XEP-0133 commands work, non-admins are
//! refused, and the delivery report counts right.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use satellite::Element;
use satellite_announce::{Announce, AnnouncePlugin, Settings};
use satellite_harness::c2s::C2sClient;

use crate::in_process::InProcess;
use crate::support::Prosody;

const T: Duration = Duration::from_secs(10);
const JID: &str = "announce.localhost";
const SECRET: &str = "announce-secret";
const PASSWORD: &str = "pw";

/// Prosody with mod_privilege granting the service what it uses (and
/// mod_offline for `all`), or without mod_privilege.
async fn prosody(privileged: bool, users: &[&str]) -> Prosody {
    let users: Vec<(&str, &str)> = users.iter().map(|u| (*u, PASSWORD)).collect();
    let mut modules = vec!["offline"];
    let mut lua = String::new();
    if privileged {
        modules.push("privilege");
        lua.push_str(&format!(
            "privileged_entities = {{ [\"{JID}\"] = {{ roster = \"get\"; message = \"outgoing\"; presence = \"roster\" }} }}\n"
        ));
    }
    lua.insert_str(0, &Prosody::modules_enabled_lua(&modules));
    // mod_privilege also runs on the component (it tells the component
    // what the VirtualHost grants when it connects): the trailing Lua
    // lands in the component's section.
    let component_lua = if privileged {
        "modules_enabled = { \"privilege\" }"
    } else {
        ""
    };
    Prosody::start_with(&[(JID, SECRET)], &users, &lua, component_lua).await
}

/// The service in this process; the returned handle reads its state.
async fn start(prosody: &Prosody, db: &Path) -> (InProcess, Arc<Announce>) {
    let config = format!(
        "[[component]]\nservice = \"announce\"\njid = \"{JID}\"\nserver = \"127.0.0.1:{}\"\n\
         secret = \"{SECRET}\"\nadmins = [\"admin@localhost\"]\n\n[component.settings]\n\
         database = \"{}\"\nrate = 2000\nprivileges_wait = 2\n",
        prosody.component_port,
        db.display(),
    );
    let mut handle = None;
    let running = InProcess::start(&config, |c| {
        let settings = Settings::load(c).expect("announce settings");
        let announce = Arc::new(Announce::new(c, settings));
        handle = Some(Arc::clone(&announce));
        AnnouncePlugin(announce)
    })
    .await;
    (running, handle.expect("built"))
}

async fn login(prosody: &Prosody, user: &str, resource: &str) -> C2sClient {
    let mut c = C2sClient::connect(prosody.c2s_port, "localhost", user, PASSWORD, resource)
        .await
        .unwrap_or_else(|e| panic!("{user}/{resource}: {e}"));
    c.send_presence().await.expect("presence");
    c
}

fn xml(s: &str) -> Element {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn message(to: &str, body: &str) -> Element {
    xml(&format!(
        "<message xmlns='jabber:client' type='chat' to='{to}' id='m{}'><body>{body}</body></message>",
        rand_id()
    ))
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

fn body(el: &Element) -> Option<String> {
    el.get_child("body", "jabber:client").map(Element::text)
}

/// The next message whose body contains `text`, within `T`.
async fn expect_message(c: &mut C2sClient, text: &str) -> Element {
    expect_message_noting(c, text).await.0
}

/// The next message whose body contains `text`, within `T`, and the
/// bodies of the messages that came before it.
async fn expect_message_noting(c: &mut C2sClient, text: &str) -> (Element, Vec<String>) {
    let who = c.jid().to_owned();
    let mut before = Vec::new();
    let wait = async {
        loop {
            let el = c.recv().await.expect("recv");
            if el.name() != "message" {
                continue;
            }
            match body(&el) {
                Some(b) if b.contains(text) => return (el, before),
                Some(b) => before.push(b),
                None => {}
            }
        }
    };
    tokio::time::timeout(T, wait)
        .await
        .unwrap_or_else(|_| panic!("{who}: no message with {text:?} within {T:?}"))
}

/// How many messages with `text` arrive within `window`.
async fn count_messages(c: &mut C2sClient, text: &str, window: Duration) -> usize {
    let end = tokio::time::Instant::now() + window;
    let mut n = 0;
    while let Ok(el) = tokio::time::timeout_at(end, c.recv()).await {
        let el = el.expect("recv");
        if el.name() == "message" && body(&el).is_some_and(|b| b.contains(text)) {
            n += 1;
        }
    }
    n
}

/// Waits until the service sees `users` users and `resources` resources.
async fn wait_online(announce: &Announce, users: usize, resources: usize) {
    let start = Instant::now();
    while announce.online_count() != (users, resources) {
        assert!(
            start.elapsed() < T,
            "online: {:?}, expected ({users}, {resources})",
            announce.online_count()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn online_users_get_an_announcement_once_and_the_report_counts_them() {
    let prosody = prosody(true, &["admin", "u1", "u2", "u3", "u4", "late", "mallory"]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (service, announce) = start(&prosody, &dir.path().join("a.sqlite")).await;
    let mut admin = login(&prosody, "admin", "desk").await;
    let mut clients = Vec::new();
    for (user, resource) in [
        ("u1", "a"),
        ("u1", "b"),
        ("u2", "a"),
        ("u2", "b"),
        ("u3", "a"),
        ("u4", "a"),
    ] {
        clients.push(login(&prosody, user, resource).await);
    }
    let mut mallory = login(&prosody, "mallory", "x").await;
    wait_online(&announce, 6, 8).await;

    // A non-admin is refused and reaches nobody.
    mallory
        .send(&message(JID, "Free pizza"))
        .await
        .expect("send");
    let refusal = expect_error(&mut mallory).await;
    assert!(
        refusal.contains("forbidden"),
        "mallory got {refusal} instead of forbidden"
    );

    admin
        .send(&message(&format!("{JID}/online"), "Maintenance at noon"))
        .await
        .expect("send");
    let (report, before) = expect_message_noting(&mut admin, "Delivered to").await;
    assert_eq!(
        body(&report).as_deref(),
        Some("Delivered to 6 users (8 resources) online; 0 could not be reached.")
    );
    let mut late = login(&prosody, "late", "x").await;
    if !before.iter().any(|b| b.contains("Maintenance at noon")) {
        expect_message(&mut admin, "Maintenance at noon").await;
    }
    for c in clients.iter_mut().chain([&mut mallory]) {
        let got = expect_message(c, "Maintenance at noon").await;
        assert_eq!(got.attr("from"), Some("localhost"), "sent as the server");
        assert_eq!(got.attr("type"), Some("headline"));
    }
    for c in clients
        .iter_mut()
        .chain([&mut admin, &mut mallory, &mut late])
    {
        let again = count_messages(c, "Maintenance at noon", Duration::from_millis(700)).await;
        assert_eq!(again, 0, "{} got it twice (or late)", c.jid());
    }
    assert_eq!(
        count_messages(&mut late, "Free pizza", Duration::ZERO).await,
        0
    );
    for c in &mut clients {
        assert_eq!(
            count_messages(c, "Free pizza", Duration::from_millis(50)).await,
            0
        );
    }
    service.stop().await;
}

/// The next message error's text (its condition's name), within `T`.
async fn expect_error(c: &mut C2sClient) -> String {
    let wait = async {
        loop {
            let el = c.recv().await.expect("recv");
            if el.name() == "message" && el.attr("type") == Some("error") {
                return String::from(&el);
            }
        }
    };
    tokio::time::timeout(T, wait).await.expect("an error reply")
}

#[tokio::test]
async fn all_reaches_an_offline_user_at_next_login() {
    let prosody = prosody(true, &["admin", "away", "here"]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (service, announce) = start(&prosody, &dir.path().join("a.sqlite")).await;
    let mut admin = login(&prosody, "admin", "desk").await;
    let away = login(&prosody, "away", "phone").await;
    let mut here = login(&prosody, "here", "x").await;
    wait_online(&announce, 3, 3).await;
    away.close().await;
    wait_online(&announce, 2, 2).await;

    admin
        .send(&message(&format!("{JID}/all"), "Upgrade tonight"))
        .await
        .expect("send");
    let report = expect_message(&mut admin, "Delivered to").await;
    assert_eq!(
        body(&report).as_deref(),
        Some(
            "Delivered to 2 users (2 resources) online, and stored for 1 offline user; 0 could not be reached."
        )
    );
    expect_message(&mut here, "Upgrade tonight").await;
    let mut away = login(&prosody, "away", "phone").await;
    let got = expect_message(&mut away, "Upgrade tonight").await;
    assert_eq!(got.attr("from"), Some("localhost"));
    assert_eq!(
        count_messages(&mut away, "Upgrade tonight", Duration::from_millis(500)).await,
        0
    );
    service.stop().await;
}

#[tokio::test]
async fn motd_reaches_each_user_once_across_reconnects_and_restarts() {
    let prosody = prosody(true, &["admin", "u1", "u2"]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("a.sqlite");
    let (service, announce) = start(&prosody, &db).await;
    let mut admin = login(&prosody, "admin", "desk").await;
    wait_online(&announce, 1, 1).await;
    admin
        .send(&message(&format!("{JID}/motd"), "Welcome back"))
        .await
        .expect("send");
    expect_message(&mut admin, "Message of the day set").await;

    let mut u1 = login(&prosody, "u1", "a").await;
    expect_message(&mut u1, "Welcome back").await;
    u1.close().await;
    wait_online(&announce, 1, 1).await;
    let mut u1 = login(&prosody, "u1", "a").await;
    assert_eq!(
        count_messages(&mut u1, "Welcome back", Duration::from_millis(700)).await,
        0
    );
    u1.close().await;

    service.stop().await;
    let (service, announce) = start(&prosody, &db).await;
    wait_online(&announce, 1, 1).await;
    let mut u1 = login(&prosody, "u1", "a").await;
    let mut u2 = login(&prosody, "u2", "a").await;
    expect_message(&mut u2, "Welcome back").await;
    assert_eq!(
        count_messages(&mut u1, "Welcome back", Duration::from_millis(700)).await,
        0
    );
    service.stop().await;
}

fn execute(node: &str, id: &str, session: Option<&str>, form: Option<&str>) -> Element {
    let session = session
        .map(|s| format!(" sessionid='{s}'"))
        .unwrap_or_default();
    let action = if form.is_some() {
        " action='complete'"
    } else {
        ""
    };
    xml(&format!(
        "<iq xmlns='jabber:client' type='set' to='{JID}' id='{id}'>\
         <command xmlns='http://jabber.org/protocol/commands' node='{node}'{session}{action}>{}</command></iq>",
        form.unwrap_or("")
    ))
}

#[tokio::test]
async fn adhoc_announce_and_motd_commands_for_admins_only() {
    let prosody = prosody(true, &["admin", "u1", "mallory"]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (service, announce) = start(&prosody, &dir.path().join("a.sqlite")).await;
    let mut admin = login(&prosody, "admin", "desk").await;
    let mut u1 = login(&prosody, "u1", "a").await;
    let mut mallory = login(&prosody, "mallory", "x").await;
    wait_online(&announce, 3, 3).await;

    let node = "http://jabber.org/protocol/admin#announce";
    let refused = mallory
        .request(&execute(node, "x1", None, None), T)
        .await
        .expect("reply");
    assert_eq!(
        refused.attr("type"),
        Some("error"),
        "{}",
        String::from(&refused)
    );
    assert!(String::from(&refused).contains("forbidden"));

    let first = admin
        .request(&execute(node, "a1", None, None), T)
        .await
        .expect("form");
    let command = first
        .get_child("command", "http://jabber.org/protocol/commands")
        .unwrap_or_else(|| panic!("no command: {}", String::from(&first)));
    let session = command.attr("sessionid").expect("session").to_owned();
    assert!(String::from(&first).contains("announcement"));
    let form = "<x xmlns='jabber:x:data' type='submit'>\
        <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/admin</value></field>\
        <field var='announcement'><value>Via ad-hoc</value></field></x>";
    let done = admin
        .request(&execute(node, "a2", Some(&session), Some(form)), T)
        .await
        .expect("done");
    assert!(
        String::from(&done).contains("status='completed'")
            || String::from(&done).contains("status=\"completed\""),
        "{}",
        String::from(&done)
    );
    expect_message(&mut u1, "Via ad-hoc").await;
    expect_message(&mut mallory, "Via ad-hoc").await;
    let report = expect_message(&mut admin, "Delivered to").await;
    assert_eq!(
        body(&report).as_deref(),
        Some("Delivered to 3 users (3 resources) online; 0 could not be reached.")
    );

    // set-motd, then edit-motd shows it, delete-motd removes it.
    let set = "http://jabber.org/protocol/admin#set-motd";
    let form = admin
        .request(&execute(set, "s1", None, None), T)
        .await
        .expect("form");
    let session = form
        .get_child("command", "http://jabber.org/protocol/commands")
        .and_then(|c| c.attr("sessionid"))
        .expect("session")
        .to_owned();
    let submit = "<x xmlns='jabber:x:data' type='submit'><field var='motd'><value>Hello all</value></field></x>";
    admin
        .request(&execute(set, "s2", Some(&session), Some(submit)), T)
        .await
        .expect("set");
    assert_eq!(
        announce.motd().map(|m| m.body).as_deref(),
        Some("Hello all")
    );
    let edit = admin
        .request(
            &execute(
                "http://jabber.org/protocol/admin#edit-motd",
                "e1",
                None,
                None,
            ),
            T,
        )
        .await
        .expect("edit form");
    assert!(String::from(&edit).contains("Hello all"));
    let deleted = admin
        .request(
            &execute(
                "http://jabber.org/protocol/admin#delete-motd",
                "d1",
                None,
                None,
            ),
            T,
        )
        .await
        .expect("delete");
    assert!(
        String::from(&deleted).contains("deleted"),
        "{}",
        String::from(&deleted)
    );
    assert_eq!(announce.motd(), None);
    service.stop().await;
}

#[tokio::test]
async fn without_mod_privilege_subscribers_are_the_audience() {
    let prosody = prosody(false, &["admin", "sub", "other"]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (service, announce) = start(&prosody, &dir.path().join("a.sqlite")).await;
    let mut admin = login(&prosody, "admin", "desk").await;
    let mut sub = login(&prosody, "sub", "a").await;
    let mut other = login(&prosody, "other", "a").await;
    sub.send(&xml(&format!(
        "<presence xmlns='jabber:client' type='subscribe' to='{JID}'/>"
    )))
    .await
    .expect("subscribe");
    // The service asks back; approving it sends sub's presence to it.
    let wait = async {
        loop {
            let el = sub.recv().await.expect("recv");
            if el.name() == "presence" && el.attr("type") == Some("subscribe") {
                return;
            }
        }
    };
    tokio::time::timeout(T, wait).await.expect("subscribe back");
    sub.send(&xml(&format!(
        "<presence xmlns='jabber:client' type='subscribed' to='{JID}'/>"
    )))
    .await
    .expect("subscribed");
    wait_online(&announce, 1, 1).await;

    admin
        .send(&message(JID, "Subscribers only"))
        .await
        .expect("send");
    let report = expect_message(&mut admin, "Delivered to").await;
    assert_eq!(
        body(&report).as_deref(),
        Some(
            "Delivered to 1 user (1 resource) online; 0 could not be reached. The server grants this service no privileges (XEP-0356): only users who subscribed to it were reached."
        )
    );
    let got = expect_message(&mut sub, "Subscribers only").await;
    assert_eq!(got.attr("from"), Some(JID), "from the component");
    assert_eq!(
        count_messages(&mut other, "Subscribers only", Duration::from_millis(500)).await,
        0
    );
    service.stop().await;
}

#[tokio::test]
async fn online_users_get_an_announcement_on_ejabberd() {
    let users = [
        ("admin", PASSWORD),
        ("u1", PASSWORD),
        ("u2", PASSWORD),
        ("late", PASSWORD),
    ];
    let modules = "  mod_privilege:\n    roster:\n      get: all\n    message:\n      outgoing: all\n    presence:\n      managed_entity: all\n";
    let ejabberd =
        satellite_harness::ejabberd::Ejabberd::start_with(&[(JID, SECRET)], &users, modules).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "[[component]]\nservice = \"announce\"\njid = \"{JID}\"\nserver = \"127.0.0.1:{}\"\n\
         secret = \"{SECRET}\"\nadmins = [\"admin@localhost\"]\n\n[component.settings]\n\
         database = \"{}\"\nprivileges_wait = 2\n",
        ejabberd.component_port,
        dir.path().join("a.sqlite").display(),
    );
    let mut handle = None;
    let service = InProcess::start(&config, |c| {
        let announce = Arc::new(Announce::new(c, Settings::load(c).expect("settings")));
        handle = Some(Arc::clone(&announce));
        AnnouncePlugin(announce)
    })
    .await;
    let announce = handle.expect("built");
    let connect = |user: &'static str, resource: &'static str| {
        let port = ejabberd.c2s_port;
        async move {
            let mut c = C2sClient::connect(port, "localhost", user, PASSWORD, resource)
                .await
                .unwrap_or_else(|e| panic!("{user}/{resource}: {e}"));
            c.send_presence().await.expect("presence");
            c
        }
    };
    let mut admin = connect("admin", "desk").await;
    let mut clients = vec![
        connect("u1", "a").await,
        connect("u1", "b").await,
        connect("u2", "a").await,
    ];
    wait_online(&announce, 3, 4).await;
    admin
        .send(&message(JID, "ejabberd maintenance"))
        .await
        .expect("send");
    let (report, _) = expect_message_noting(&mut admin, "Delivered to").await;
    assert_eq!(
        body(&report).as_deref(),
        Some("Delivered to 3 users (4 resources) online; 0 could not be reached.")
    );
    let mut late = connect("late", "x").await;
    for c in &mut clients {
        let got = expect_message(c, "ejabberd maintenance").await;
        assert_eq!(got.attr("from"), Some("localhost"), "sent as the server");
    }
    for c in clients.iter_mut().chain([&mut late]) {
        let again = count_messages(c, "ejabberd maintenance", Duration::from_millis(700)).await;
        assert_eq!(again, 0, "{} got it twice (or late)", c.jid());
    }
    service.stop().await;
}
