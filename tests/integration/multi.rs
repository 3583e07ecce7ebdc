//! Several components in one process on one ejabberd listener: ejabberd
//! binds every host of an `ejabberd_service` listener to each connection
//! that authenticates on it and hands a host's stanzas to whichever link
//! it picks, so a process must pass each stanza to the component it is
//! for, whichever link it came in on.

use std::time::Duration;

use satellite::jid::BareJid;
use satellite::{Component, ComponentConfig, Secret};
use satellite_echo::{Echo, EchoSettings};

use crate::in_process::InProcess;
use crate::support::c2s::{self, C2sClient};
use crate::support::{Client, Ejabberd, Prosody};

const T: Duration = Duration::from_secs(10);
const SECRET: &str = "multi-secret-0123";
const HOSTS: [&str; 2] = ["echo1.localhost", "echo2.localhost"];
/// In the listener's hosts, run by no component of the process.
const UNSERVED: &str = "elsewhere.localhost";

fn echo(host: &str, port: u16) -> InProcess {
    let mut config = ComponentConfig::new(
        BareJid::new(host).expect("jid"),
        format!("127.0.0.1:{port}"),
        Secret::new(SECRET),
    );
    // Frequent pings: their answers may come in on the other component's
    // link, and must still count.
    config.ping_interval = Duration::from_secs(1);
    config.ping_timeout = Duration::from_secs(2);
    let component = Component::builder(config)
        .plugin(Echo::new(EchoSettings::default()))
        .build()
        .expect("build");
    InProcess::spawn(component)
}

#[tokio::test]
async fn two_components_on_one_ejabberd_listener_each_get_their_own_stanzas() {
    let mut components: Vec<(&str, &str)> = HOSTS.iter().map(|h| (*h, SECRET)).collect();
    components.push((UNSERVED, SECRET));
    let ejabberd = Ejabberd::start(&components, &[("alice", "alice-pw")]).await;
    let running: Vec<InProcess> = HOSTS
        .iter()
        .map(|h| echo(h, ejabberd.component_port))
        .collect();
    for (r, h) in running.iter().zip(HOSTS) {
        r.wait_connected(h).await;
    }
    let mut alice = Client::connect(ejabberd.c2s_port, "alice@localhost", "alice-pw").await;
    let rounds = 60;
    for i in 0..rounds {
        for host in HOSTS {
            alice
                .send_raw(&format!(
                    "<message to='{host}' id='{host}-{i}' type='chat'><body>{i}</body></message>"
                ))
                .await;
        }
    }
    for i in 0..rounds {
        for host in HOSTS {
            let id = format!("{host}-{i}");
            let reply = alice
                .recv_matching(|e| e.name() == "message" && e.attr("id") == Some(&id), T)
                .await;
            assert_eq!(reply.attr("type"), Some("chat"), "{reply:?}");
            assert_eq!(reply.attr("from"), Some(host), "{reply:?}");
        }
    }
    // A host the listener binds that no component of this process runs
    // gets an error, not silence.
    alice
        .send_raw(&format!(
            "<message to='{UNSERVED}' id='u1' type='chat'><body>anyone?</body></message>"
        ))
        .await;
    let reply = alice
        .recv_matching(|e| e.name() == "message" && e.attr("id") == Some("u1"), T)
        .await;
    assert_eq!(reply.attr("type"), Some("error"), "{reply:?}");
    assert!(
        format!("{reply:?}").contains("service-unavailable"),
        "{reply:?}"
    );
    alice.disconnect().await;
    // Several ping rounds later, no link was lost.
    let mut statuses: Vec<_> = running.iter().map(|r| r.status.clone()).collect();
    for status in &mut statuses {
        status.mark_unchanged();
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    for (status, host) in statuses.iter().zip(HOSTS) {
        assert!(
            !status.has_changed().unwrap_or(true),
            "{host}'s link went down: {:?}",
            *status.borrow()
        );
    }
    for r in running {
        r.stop().await;
    }
}

/// An echo component with `connections` links and a probe on its context.
async fn echo_with_links(
    host: &str,
    port: u16,
    links: usize,
) -> (InProcess, satellite::testing::ContextProbe) {
    let mut config = ComponentConfig::new(
        BareJid::new(host).expect("jid"),
        format!("127.0.0.1:{port}"),
        Secret::new(SECRET),
    );
    config.connections = links;
    let probe = satellite::testing::ContextProbe::default();
    let component = Component::builder(config)
        .plugin(Echo::new(EchoSettings::default()))
        .plugin(probe.clone())
        .build()
        .expect("build");
    let running = InProcess::spawn(component);
    running.wait_connected(host).await;
    (running, probe)
}

/// Round trips from `users` accounts (replies to different accounts are
/// spread over the links), all answered.
async fn round_trips(c2s_port: u16, host: &str, users: &[String], each: usize) {
    for user in users {
        let mut client = C2sClient::connect(c2s_port, "localhost", user, "pw", "r")
            .await
            .expect("c2s");
        for i in 0..each {
            let id = format!("{user}-{i}");
            let reply = client
                .request(&c2s::chat(host, &id, "hi"), T)
                .await
                .unwrap_or_else(|e| panic!("{user}: round trip {i}: {e}"));
            assert_eq!(reply.attr("type"), Some("chat"), "{reply:?}");
        }
        client.close().await;
    }
}

fn accounts(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("user{i}")).collect()
}

#[tokio::test]
async fn two_connections_on_ejabberd_both_carry_traffic() {
    let users = accounts(12);
    let logins: Vec<(&str, &str)> = users.iter().map(|u| (u.as_str(), "pw")).collect();
    let ejabberd = Ejabberd::start(&[(HOSTS[0], SECRET)], &logins).await;
    let (running, probe) = echo_with_links(HOSTS[0], ejabberd.component_port, 2).await;
    let cx = probe.context().await;
    // The second link connects once the first is up.
    let deadline = tokio::time::Instant::now() + T;
    while cx.sent_per_link().len() < 2 || !cx.is_connected() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "links did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    round_trips(ejabberd.c2s_port, HOSTS[0], &users, 25).await;
    let sent = cx.sent_per_link();
    assert_eq!(sent.len(), 2);
    assert!(
        sent.iter().all(|&n| n > 0),
        "both links carried traffic: {sent:?}"
    );
    assert!(sent.iter().sum::<u64>() >= 300, "{sent:?}");
    running.stop().await;
}

#[tokio::test]
async fn prosody_keeps_one_of_two_connections_and_nothing_is_lost() {
    let users = accounts(6);
    let logins: Vec<(&str, &str)> = users.iter().map(|u| (u.as_str(), "pw")).collect();
    let prosody = Prosody::start(&[(HOSTS[0], SECRET)], &logins, "").await;
    let (running, probe) = echo_with_links(HOSTS[0], prosody.component_port, 2).await;
    let cx = probe.context().await;
    // Give the second link time to be refused (Prosody: conflict).
    tokio::time::sleep(Duration::from_secs(2)).await;
    round_trips(prosody.c2s_port, HOSTS[0], &users, 20).await;
    let sent = cx.sent_per_link();
    assert_eq!(sent[1], 0, "the refused link is not used: {sent:?}");
    assert!(sent[0] >= 120, "{sent:?}");
    running.stop().await;
}
