//! Smoke tests of the harness itself: real servers start, stop and restart,
//! the real client logs in and talks to them, and their component listeners
//! accept a XEP-0114 handshake.

use std::time::Duration;

use crate::support::{Client, Ejabberd, Prosody, RawComponent};

const PING_NS: &str = "urn:xmpp:ping";
const T: Duration = Duration::from_secs(10);

fn ping(id: &str, to: &str) -> String {
    format!("<iq type='get' id='{id}' to='{to}'><ping xmlns='{PING_NS}'/></iq>")
}

/// Client pings the server; a raw component logs in, receives a message from
/// the client and sends one back.
async fn exercise(c2s_port: u16, component_port: u16, log: impl Fn() -> String) {
    let mut alice = Client::connect(c2s_port, "alice@localhost", "alice-pw").await;
    assert!(
        alice.jid.starts_with("alice@localhost/"),
        "bound jid: {}",
        alice.jid
    );

    let reply = alice.iq(&ping("ping-1", "localhost")).await;
    assert_eq!(
        reply.attr("type"),
        Some("result"),
        "ping reply: {reply:?}\n{}",
        log()
    );
    assert_eq!(reply.attr("from"), Some("localhost"));

    // Wrong secret is refused.
    let refused = RawComponent::connect(component_port, "echo.localhost", "wrong").await;
    assert!(refused.is_err(), "handshake with a wrong secret succeeded");

    let mut comp = RawComponent::connect(component_port, "echo.localhost", "s3cret")
        .await
        .unwrap_or_else(|e| panic!("component handshake failed: {e}\n{}", log()));

    alice
        .send_raw("<message to='echo.localhost' id='m1' type='chat'><body>hello</body></message>")
        .await;
    let got = comp.read_until("</message>", T).await;
    assert!(got.contains("hello"), "component got: {got}");
    assert!(got.contains(&alice.jid), "component got: {got}");

    comp.send(&format!(
        "<message from='echo.localhost' to='{}' id='m2' type='chat'><body>hi back</body></message>",
        alice.jid
    ))
    .await;
    let back = alice
        .recv_matching(|e| e.name() == "message" && e.attr("id") == Some("m2"), T)
        .await;
    assert_eq!(back.attr("from"), Some("echo.localhost"));
    assert_eq!(
        back.get_child("body", "jabber:client").map(|b| b.text()),
        Some("hi back".to_string())
    );

    // An iq from the component to the client reaches the test (the client
    // does not answer by itself); the test answers it by hand.
    comp.send(&format!(
        "<iq from='echo.localhost' to='{}' id='q1' type='get'><query xmlns='jabber:iq:version'/></iq>",
        alice.jid
    ))
    .await;
    let q = alice
        .recv_matching(|e| e.name() == "iq" && e.attr("id") == Some("q1"), T)
        .await;
    assert_eq!(q.attr("type"), Some("get"));
    alice
        .send_raw(
            "<iq to='echo.localhost' id='q1' type='result'><query xmlns='jabber:iq:version'><name>t</name></query></iq>",
        )
        .await;
    let answer = comp.read_until("</iq>", T).await;
    assert!(
        answer.contains("type='result'") || answer.contains("type=\"result\""),
        "{answer}"
    );
    assert!(!answer.contains("feature-not-implemented"), "{answer}");

    alice.disconnect().await;
}

#[tokio::test]
async fn prosody_start_client_component_restart() {
    let t0 = std::time::Instant::now();
    let mut prosody = Prosody::start(
        &[("echo.localhost", "s3cret")],
        &[("alice", "alice-pw"), ("bob", "bob-pw")],
        "",
    )
    .await;
    eprintln!("prosody started in {:?}", t0.elapsed());
    assert_eq!(prosody.domain, "localhost");

    exercise(prosody.c2s_port, prosody.component_port, || prosody.log()).await;

    // Stop: the client loses its connection; restart on the same ports.
    let mut bob = Client::connect(prosody.c2s_port, "bob@localhost", "bob-pw").await;
    let t1 = std::time::Instant::now();
    prosody.stop().await;
    eprintln!("prosody stopped in {:?}", t1.elapsed());
    assert!(!prosody.is_running());
    assert!(!crate::support::port_open(prosody.c2s_port).await);
    let t2 = std::time::Instant::now();
    prosody.start_again().await;
    eprintln!("prosody restarted in {:?}", t2.elapsed());
    bob.expect_none_matching(|e| e.name() == "iq", Duration::from_millis(100))
        .await;
    drop(bob);

    exercise(prosody.c2s_port, prosody.component_port, || prosody.log()).await;
    assert!(prosody.log().contains("Received SIGTERM"));

    // Accounts can be added while running.
    prosody.add_user("carol", "carol-pw");
    let carol = Client::connect(prosody.c2s_port, "carol@localhost", "carol-pw").await;
    carol.disconnect().await;
}

#[tokio::test]
async fn ejabberd_start_client_component_restart() {
    let t0 = std::time::Instant::now();
    let mut ejabberd = Ejabberd::start(
        &[("echo.localhost", "s3cret")],
        &[("alice", "alice-pw"), ("bob", "bob-pw")],
    )
    .await;
    eprintln!("ejabberd started in {:?}", t0.elapsed());
    assert_eq!(ejabberd.domain, "localhost");

    exercise(ejabberd.c2s_port, ejabberd.component_port, || {
        ejabberd.log()
    })
    .await;

    let users = ejabberd.ctl(&["registered_users", "localhost"]).await;
    assert!(
        users.lines().any(|l| l == "bob"),
        "registered users: {users}"
    );

    let t1 = std::time::Instant::now();
    ejabberd.stop().await;
    eprintln!("ejabberd stopped in {:?}", t1.elapsed());
    assert!(!crate::support::port_open(ejabberd.c2s_port).await);
    let t2 = std::time::Instant::now();
    ejabberd.start_again().await;
    eprintln!("ejabberd restarted in {:?}", t2.elapsed());

    exercise(ejabberd.c2s_port, ejabberd.component_port, || {
        ejabberd.log()
    })
    .await;
}

#[tokio::test]
#[should_panic(expected = "authentication failed")]
async fn client_with_wrong_password_panics() {
    let prosody = Prosody::start(&[], &[("alice", "alice-pw")], "").await;
    let _ = Client::connect(prosody.c2s_port, "alice@localhost", "wrong").await;
}

#[tokio::test]
#[should_panic(expected = "Prosody failed to start")]
async fn prosody_bad_config_panics_with_log() {
    let _ = Prosody::start(&[], &[], "this is not lua").await;
}
