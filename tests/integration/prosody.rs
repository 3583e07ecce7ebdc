//! The framework and the echo gateway against a real Prosody, with a real
//! client (slixmpp) on the other side.

use std::time::Duration;

use satellite::jid::BareJid;
use satellite::testing::ContextProbe;
use satellite::xmpp::message::Message;
use satellite::{Component, ComponentConfig, LinkStatus, Secret};
use satellite_echo::{Echo, EchoSettings};
use tokio::sync::watch;

use crate::in_process::InProcess;
use crate::support::{Client, Prosody};

pub const T: Duration = Duration::from_secs(10);
pub const ECHO: &str = "echo.localhost";
pub const SECRET: &str = "echo-secret-0123";
const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

/// An echo component running in-process against `port`.
pub struct Running {
    pub status: watch::Receiver<LinkStatus>,
    pub probe: ContextProbe,
    component: InProcess,
}

impl Running {
    pub async fn start(port: u16, secret: &str) -> Running {
        let mut config = ComponentConfig::new(
            BareJid::new(ECHO).expect("jid"),
            format!("127.0.0.1:{port}"),
            Secret::new(secret),
        );
        config.reconnect_max = Duration::from_secs(2);
        let probe = ContextProbe::default();
        let component = Component::builder(config)
            .plugin(Echo::new(EchoSettings::default()))
            .plugin(probe.clone())
            .build()
            .expect("build");
        let component = InProcess::spawn(component);
        Running {
            status: component.status.clone(),
            probe,
            component,
        }
    }

    pub async fn wait_connected(&mut self, what: &str) {
        self.component.wait_connected(what).await;
    }

    pub async fn stop(self) {
        self.component.stop().await;
    }
}

fn condition(reply: &satellite::Element) -> Option<String> {
    let error = reply.get_child("error", "jabber:client")?;
    error
        .children()
        .find(|c| c.ns() == STANZAS && c.name() != "text")
        .map(|c| c.name().to_owned())
}

async fn setup() -> (Prosody, Running, Client) {
    let prosody = Prosody::start(&[(ECHO, SECRET)], &[("alice", "alice-pw")], "").await;
    let mut echo = Running::start(prosody.component_port, SECRET).await;
    echo.wait_connected("echo").await;
    let alice = Client::connect(prosody.c2s_port, "alice@localhost", "alice-pw").await;
    (prosody, echo, alice)
}

pub async fn echo_round_trip(alice: &mut Client, id: &str, text: &str) -> String {
    alice
        .send_raw(&format!(
            "<message to='{ECHO}' id='{id}' type='chat'><body>{text}</body></message>"
        ))
        .await;
    let reply = alice
        .recv_matching(|e| e.name() == "message" && e.attr("id") == Some(id), T)
        .await;
    assert_eq!(reply.attr("from"), Some(ECHO), "{reply:?}");
    reply
        .get_child("body", "jabber:client")
        .map(|b| b.text())
        .unwrap_or_default()
}

#[tokio::test]
async fn handshake_is_refused_with_a_wrong_secret() {
    let prosody = Prosody::start(&[(ECHO, SECRET)], &[], "").await;
    let mut wrong = Running::start(prosody.component_port, "not-the-secret").await;
    let status = tokio::time::timeout(
        T,
        wrong
            .status
            .wait_for(|s| matches!(s, LinkStatus::Disconnected { .. })),
    )
    .await
    .expect("refused in time")
    .expect("status")
    .clone();
    assert!(
        format!("{status:?}").contains("refused"),
        "{status:?}\n{}",
        prosody.log()
    );
    wrong.stop().await;
    let mut right = Running::start(prosody.component_port, SECRET).await;
    right.wait_connected("right secret").await;
    right.stop().await;
}

#[tokio::test]
async fn echo_ping_version_disco_and_unrouted_iq() {
    let (prosody, echo, mut alice) = setup().await;
    assert_eq!(
        echo_round_trip(&mut alice, "m1", "hello satellite").await,
        "hello satellite"
    );

    let reply = alice
        .iq(&format!(
            "<iq type='get' id='p1' to='{ECHO}'><ping xmlns='urn:xmpp:ping'/></iq>"
        ))
        .await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");

    let reply = alice
        .iq(&format!(
            "<iq type='get' id='v1' to='{ECHO}'><query xmlns='jabber:iq:version'/></iq>"
        ))
        .await;
    let name = reply
        .get_child("query", "jabber:iq:version")
        .and_then(|q| q.get_child("name", "jabber:iq:version"))
        .map(|n| n.text());
    assert_eq!(name.as_deref(), Some("satellite"), "{reply:?}");

    let reply = alice
        .iq(&format!("<iq type='get' id='d1' to='{ECHO}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"))
        .await;
    let query = reply
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .expect("disco result");
    let features: Vec<_> = query.children().filter_map(|c| c.attr("var")).collect();
    for f in [
        "urn:xmpp:ping",
        "jabber:iq:version",
        "http://jabber.org/protocol/commands",
    ] {
        assert!(features.contains(&f), "{f} missing from {features:?}");
    }
    assert!(
        query
            .children()
            .any(|c| c.name() == "identity" && c.attr("name") == Some("Echo"))
    );

    let reply = alice
        .iq(&format!(
            "<iq type='get' id='u1' to='{ECHO}'><query xmlns='urn:example:nothing'/></iq>"
        ))
        .await;
    assert_eq!(reply.attr("type"), Some("error"));
    assert_eq!(reply.attr("from"), Some(ECHO));
    assert_eq!(
        condition(&reply).as_deref(),
        Some("service-unavailable"),
        "{reply:?}"
    );
    drop(prosody);
    echo.stop().await;
}

#[tokio::test]
async fn adhoc_commands_from_a_real_client() {
    let (_prosody, echo, mut alice) = setup().await;
    let reply = alice
        .iq(&format!("<iq type='get' id='c1' to='{ECHO}'><query xmlns='http://jabber.org/protocol/disco#items' node='http://jabber.org/protocol/commands'/></iq>"))
        .await;
    let nodes: Vec<_> = reply
        .get_child("query", "http://jabber.org/protocol/disco#items")
        .expect("items")
        .children()
        .filter_map(|c| c.attr("node").map(str::to_owned))
        .collect();
    assert_eq!(nodes, ["stats", "prefix"]);

    let ns = "http://jabber.org/protocol/commands";
    let reply = alice
        .iq(&format!("<iq type='set' id='c2' to='{ECHO}'><command xmlns='{ns}' node='prefix' action='execute'/></iq>"))
        .await;
    let command = reply
        .get_child("command", ns)
        .unwrap_or_else(|| panic!("{reply:?}"));
    assert_eq!(command.attr("status"), Some("executing"));
    let sid = command.attr("sessionid").expect("sessionid");
    let reply = alice
        .iq(&format!(
            "<iq type='set' id='c3' to='{ECHO}'><command xmlns='{ns}' node='prefix' sessionid='{sid}' action='complete'><x xmlns='jabber:x:data' type='submit'><field var='prefix'><value>echo: </value></field></x></command></iq>"
        ))
        .await;
    assert_eq!(
        reply
            .get_child("command", ns)
            .and_then(|c| c.attr("status")),
        Some("completed"),
        "{reply:?}"
    );
    assert_eq!(echo_round_trip(&mut alice, "m2", "hi").await, "echo: hi");

    let reply = alice
        .iq(&format!(
            "<iq type='set' id='c4' to='{ECHO}'><command xmlns='{ns}' node='stats'/></iq>"
        ))
        .await;
    let form = reply
        .get_child("command", ns)
        .and_then(|c| c.get_child("x", "jabber:x:data"))
        .unwrap_or_else(|| panic!("{reply:?}"));
    let echoed = form
        .children()
        .find(|f| f.attr("var") == Some("echoed"))
        .and_then(|f| f.get_child("value", "jabber:x:data"))
        .map(|v| v.text());
    assert_eq!(echoed.as_deref(), Some("1"));
    echo.stop().await;
}

#[tokio::test]
async fn malformed_stanzas_get_an_error_and_the_link_stays_up() {
    let (prosody, echo, mut alice) = setup().await;
    // Well-formed XML that is not a valid message / presence: Prosody routes
    // it, the component answers bad-request.
    alice
        .send_raw(&format!(
            "<message to='{ECHO}' id='bad1' type='shout'><body>x</body></message>"
        ))
        .await;
    let reply = alice
        .recv_matching(|e| e.attr("id") == Some("bad1"), T)
        .await;
    assert_eq!(reply.attr("type"), Some("error"), "{reply:?}");
    assert_eq!(reply.attr("from"), Some(ECHO), "{reply:?}");
    assert_eq!(
        condition(&reply).as_deref(),
        Some("bad-request"),
        "{reply:?}"
    );

    alice
        .send_raw(&format!(
            "<presence to='{ECHO}' id='bad2'><priority>very high</priority></presence>"
        ))
        .await;
    let reply = alice
        .recv_matching(|e| e.attr("id") == Some("bad2"), T)
        .await;
    assert_eq!(
        condition(&reply).as_deref(),
        Some("bad-request"),
        "{reply:?}"
    );

    // The link is still up: the component still answers.
    assert_eq!(
        echo_round_trip(&mut alice, "m3", "still here").await,
        "still here"
    );
    assert_eq!(
        *echo.status.borrow(),
        LinkStatus::Connected,
        "{}",
        prosody.log()
    );
    echo.stop().await;
}

#[tokio::test]
async fn reconnects_after_a_server_restart_and_delivers_what_was_sent_meanwhile() {
    let modules = Prosody::modules_enabled_lua(&["offline"]);
    let mut prosody = Prosody::start(&[(ECHO, SECRET)], &[("alice", "alice-pw")], &modules).await;
    let mut echo = Running::start(prosody.component_port, SECRET).await;
    echo.wait_connected("first connect").await;
    let cx = echo.probe.context().await;

    prosody.stop().await;
    tokio::time::timeout(
        T,
        echo.status
            .wait_for(|s| matches!(s, LinkStatus::Disconnected { .. })),
    )
    .await
    .expect("link loss noticed")
    .expect("status");
    let mut note = Message::new(Some("alice@localhost".parse().expect("jid")));
    note.id = Some(satellite::xmpp::message::Id("outage1".into()));
    note.bodies
        .insert(Default::default(), "sent while the server was down".into());
    cx.send(note).await.expect("queued during the outage");

    prosody.start_again().await;
    echo.wait_connected("reconnect").await;
    let mut alice = Client::connect(prosody.c2s_port, "alice@localhost", "alice-pw").await;
    let queued = alice
        .recv_matching(|e| e.attr("id") == Some("outage1"), T)
        .await;
    assert_eq!(queued.attr("from"), Some(ECHO));
    assert_eq!(
        echo_round_trip(&mut alice, "m4", "after restart").await,
        "after restart"
    );
    echo.stop().await;
}
