//! "Any server": the echo gateway on ejabberd's `ejabberd_service` listener.

use crate::prosody::{ECHO, Running, SECRET, echo_round_trip};
use crate::support::{Client, Ejabberd};

#[tokio::test]
async fn echo_round_trip_on_ejabberd() {
    let ejabberd = Ejabberd::start(&[(ECHO, SECRET)], &[("alice", "alice-pw")]).await;
    let mut echo = Running::start(ejabberd.component_port, SECRET).await;
    echo.wait_connected("echo on ejabberd").await;
    let mut alice = Client::connect(ejabberd.c2s_port, "alice@localhost", "alice-pw").await;
    assert_eq!(
        echo_round_trip(&mut alice, "e1", "hello ejabberd").await,
        "hello ejabberd"
    );
    let reply = alice
        .iq(&format!(
            "<iq type='get' id='e2' to='{ECHO}'><ping xmlns='urn:xmpp:ping'/></iq>"
        ))
        .await;
    assert_eq!(
        reply.attr("type"),
        Some("result"),
        "{reply:?}\n{}",
        ejabberd.log()
    );
    echo.stop().await;
}
