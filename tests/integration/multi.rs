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
use crate::support::{Client, Ejabberd};

const T: Duration = Duration::from_secs(10);
const SECRET: &str = "multi-secret-0123";
const HOSTS: [&str; 2] = ["echo1.localhost", "echo2.localhost"];
/// In the listener's hosts, run by no component of the process.
const UNSERVED: &str = "elsewhere.localhost";

fn echo(host: &str, port: u16) -> InProcess {
    let config = ComponentConfig::new(
        BareJid::new(host).expect("jid"),
        format!("127.0.0.1:{port}"),
        Secret::new(SECRET),
    );
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
    for r in running {
        r.stop().await;
    }
}
