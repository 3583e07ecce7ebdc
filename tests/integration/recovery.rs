//! Link recovery against a real Prosody: stopped for 5 s, 30 s and 120 s
//! under a running component, the component is linked again within 2 s of
//! Prosody's component port reopening and answers a real client; a wrong
//! secret still backs off.

use std::time::Duration;

use satellite::jid::BareJid;
use satellite::{Component, ComponentConfig, LinkStatus, Secret};
use satellite_echo::{Echo, EchoSettings};
use tokio::time::Instant;

use crate::in_process::InProcess;
use crate::prosody::{ECHO, SECRET, echo_round_trip};
use crate::support::{Client, Prosody, port_open};

/// The echo component with the default reconnect cap (60 s), so that a
/// slow return would show.
fn echo(port: u16, secret: &str) -> InProcess {
    let config = ComponentConfig::new(
        BareJid::new(ECHO).expect("jid"),
        format!("127.0.0.1:{port}"),
        Secret::new(secret),
    );
    let component = Component::builder(config)
        .plugin(Echo::new(EchoSettings::default()))
        .build()
        .expect("build");
    InProcess::spawn(component)
}

/// Stops Prosody for `outage`, starts it again, and returns how long after
/// its component port opened the component was linked again; then checks
/// a real client's round trip.
async fn outage(outage: Duration) -> Duration {
    let mut prosody = Prosody::start(&[(ECHO, SECRET)], &[("alice", "alice-pw")], "").await;
    let component = echo(prosody.component_port, SECRET);
    component.wait_connected("echo").await;
    let mut status = component.status.clone();
    prosody.stop().await;
    status
        .wait_for(|s| matches!(s, LinkStatus::Disconnected { .. }))
        .await
        .expect("status");
    tokio::time::sleep(outage).await;
    prosody.start_again().await;
    // start_again returns once Prosody listens; find the moment the
    // component port opened as closely as the harness allows.
    let mut opened = Instant::now();
    while !port_open(prosody.component_port).await {
        tokio::time::sleep(Duration::from_millis(20)).await;
        opened = Instant::now();
    }
    tokio::time::timeout(
        Duration::from_secs(30),
        status.wait_for(|s| *s == LinkStatus::Connected),
    )
    .await
    .unwrap_or_else(|_| panic!("not linked again after a {outage:?} outage"))
    .expect("status");
    let took = opened.elapsed();
    let mut alice = Client::connect(prosody.c2s_port, "alice@localhost", "alice-pw").await;
    assert_eq!(echo_round_trip(&mut alice, "r1", "back").await, "back");
    alice.disconnect().await;
    component.stop().await;
    took
}

fn assert_quick(outage: Duration, took: Duration) {
    eprintln!("recovery after a {outage:?} outage: linked {took:?} after the port opened");
    assert!(
        took < Duration::from_secs(2),
        "after a {outage:?} outage the link came back {took:?} after the port opened"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_within_two_seconds_after_5_and_30_second_outages() {
    let (short, long) = tokio::join!(
        outage(Duration::from_secs(5)),
        outage(Duration::from_secs(30))
    );
    assert_quick(Duration::from_secs(5), short);
    assert_quick(Duration::from_secs(30), long);
}

/// Counts connection attempts of a component with a wrong secret.
async fn attempts_with_a_wrong_secret(over: Duration) -> usize {
    let prosody = Prosody::start(&[(ECHO, SECRET)], &[], "").await;
    let component = echo(prosody.component_port, "not-the-secret");
    let mut status = component.status.clone();
    let mut attempts = 0;
    let until = Instant::now() + over;
    while let Ok(changed) = tokio::time::timeout_at(until, status.changed()).await {
        changed.expect("status");
        if *status.borrow_and_update() == LinkStatus::Connecting {
            attempts += 1;
        }
    }
    component.stop().await;
    drop(prosody);
    attempts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_within_two_seconds_after_two_minutes_and_a_wrong_secret_backs_off() {
    let (took, attempts) = tokio::join!(
        outage(Duration::from_secs(120)),
        attempts_with_a_wrong_secret(Duration::from_secs(60))
    );
    assert_quick(Duration::from_secs(120), took);
    eprintln!("wrong secret: {attempts} attempts in 60 s");
    // Exponential from 0.5 s: about 7 attempts in a minute (a steady
    // retry would make 60 to 120).
    assert!(
        (2..=10).contains(&attempts),
        "{attempts} attempts in a minute with a wrong secret"
    );
}
