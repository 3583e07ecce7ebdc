//! Link recovery: a server whose port refuses is retried at a short steady
//! interval (it is restarting), whatever the outage's length; a server
//! that refuses the handshake is backed off from.

use std::time::Duration;

use satellite::testing::{self, MockServer};
use satellite::{Component, LinkStatus};
use tokio::time::Instant;

#[tokio::test]
async fn a_closed_port_is_retried_steadily_and_the_link_returns_within_a_second_or_so() {
    // A port with nobody listening: every attempt is refused.
    let addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("addr")
    };
    let mut config = testing::config(addr);
    config.reconnect_max = Duration::from_secs(60);
    let component = Component::builder(config).build().expect("build");
    let mut status = component.status();
    let token = satellite::CancellationToken::new();
    let run = tokio::spawn(component.run(token.clone()));
    status
        .wait_for(|s| matches!(s, LinkStatus::Disconnected { .. }))
        .await
        .expect("status");
    // Long enough for an exponential backoff to have grown past 4 s.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let mut server = MockServer::bind_at(addr, testing::JID, testing::SECRET)
        .await
        .expect("the port is free again");
    let opened = Instant::now();
    let link = tokio::time::timeout(Duration::from_secs(5), server.accept())
        .await
        .expect("reconnected")
        .expect("accept")
        .expect("handshake");
    let took = opened.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "linked {took:?} after the port opened"
    );
    drop(link);
    token.cancel();
    run.await.expect("run ends");
}
