//! satellite's MUC on ejabberd (`ejabberd_service`): the core flow of a
//! room — create, join, message, leave — with real clients.
//!
//! Run with `cargo test --test integration muc_ejabberd`.

use satellite_harness::muc::SATELLITE_MUC;

use crate::in_process::InProcess;
use crate::muc_flows::{
    SECRET, T, codes, create, hears, item, join, leave, presence_from, room, say,
};
use crate::support::{Client, Ejabberd};

#[tokio::test]
async fn create_join_message_leave_on_ejabberd() {
    let ejabberd = Ejabberd::start(
        &[(SATELLITE_MUC, SECRET)],
        &[("alice", "alice"), ("bob", "bob")],
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "[[component]]\nservice = \"muc\"\njid = \"{SATELLITE_MUC}\"\nserver = \"127.0.0.1:{}\"\n\
         secret = \"{SECRET}\"\n\n[component.settings]\ndatabase = \"{}\"\n",
        ejabberd.component_port,
        dir.path().join("muc.sqlite").display(),
    );
    let muc = InProcess::start(&config, |c| {
        let settings = satellite_muc::Settings::load(c).expect("muc settings");
        satellite_muc::MucPlugin::new(satellite_muc::Muc::new(c, settings))
    })
    .await;
    let mut alice = Client::connect(ejabberd.c2s_port, "alice@localhost", "alice").await;
    let mut bob = Client::connect(ejabberd.c2s_port, "bob@localhost", "bob").await;

    let r = room("ejabberd");
    create(&mut alice, &r, "Alice", &[]).await;
    let p = join(&mut bob, &r, "Bob").await;
    assert_eq!(item(&p).and_then(|i| i.attr("role")), Some("participant"));
    assert!(!codes(&p).contains(&201), "{p:?}");
    let bob_jid = format!("{r}/Bob");
    alice.recv_matching(|e| presence_from(e, &bob_jid), T).await;

    say(&mut bob, &r, "hello from ejabberd").await;
    hears(&mut alice, &bob_jid, "hello from ejabberd").await;
    hears(&mut bob, &bob_jid, "hello from ejabberd").await;

    leave(&mut bob, &r, "Bob").await;
    let gone = alice
        .recv_matching(
            |e| presence_from(e, &bob_jid) && e.attr("type") == Some("unavailable"),
            T,
        )
        .await;
    assert_eq!(item(&gone).and_then(|i| i.attr("role")), Some("none"));
    leave(&mut alice, &r, "Alice").await;
    muc.stop().await;
    drop(ejabberd);
}
