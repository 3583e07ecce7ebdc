//! The framework against its own mock server: routing, error replies,
//! ordering, requests, reconnects, shutdown.

use std::sync::Arc;
use std::time::Duration;

use satellite::testing::{self, ContextProbe, MockServer, stanza};
use satellite::xmpp::data_forms::{DataForm, DataFormType, Field};
use satellite::xmpp::iq::Iq;
use satellite::xmpp::message::Message;
use satellite::xmpp::stanza_error::DefinedCondition;
use satellite::{
    Component, Context, Disco, Flow, HandlerError, IqRequest, IqResult, IqRoute, Plugin, SendError,
    assert_stanza_error, async_trait,
};
use tokio::sync::mpsc;

const USER: &str = "user@test/phone";

fn ping(id: &str) -> satellite::Element {
    stanza(&format!(
        "<iq type='get' id='{id}' from='{USER}' to='svc.test'><ping xmlns='urn:xmpp:ping'/></iq>"
    ))
}

#[tokio::test]
async fn answers_ping_version_and_unrouted_iqs() {
    let (mut server, component) = testing::spawn(|b| b.software("echo", "1.2.3")).await;
    let reply = server.iq(ping("p1")).await;
    assert_eq!(reply.attr("type"), Some("result"));
    assert_eq!(reply.attr("from"), Some("svc.test"));
    assert_eq!(reply.attr("to"), Some(USER));

    let reply = server
        .iq(stanza(&format!("<iq type='get' id='v1' from='{USER}' to='svc.test'><query xmlns='jabber:iq:version'/></iq>")))
        .await;
    let query = reply
        .get_child("query", "jabber:iq:version")
        .expect("version payload");
    assert_eq!(
        query
            .get_child("name", "jabber:iq:version")
            .map(|e| e.text()),
        Some("echo".into())
    );
    assert_eq!(
        query
            .get_child("version", "jabber:iq:version")
            .map(|e| e.text()),
        Some("1.2.3".into())
    );
    assert!(
        query.get_child("os", "jabber:iq:version").is_none(),
        "the OS is not disclosed"
    );

    let reply = server
        .iq(stanza(&format!(
            "<iq type='set' id='u1' from='{USER}' to='svc.test'><q xmlns='urn:unknown'/></iq>"
        )))
        .await;
    assert_stanza_error!(reply, DefinedCondition::ServiceUnavailable);
    component.stop().await;
}

/// A plugin declaring disco features, an XEP-0128 form and per-JID info.
struct Rooms;

#[async_trait]
impl Plugin for Rooms {
    fn name(&self) -> &'static str {
        "rooms"
    }
    fn disco(&self) -> Disco {
        Disco::default()
            .identity("conference", "text", "Rooms")
            .feature("http://jabber.org/protocol/muc")
            .form(DataForm::new(
                DataFormType::Result_,
                "urn:example:info",
                vec![Field::text_single("max-rooms", "10")],
            ))
    }
    async fn disco_info(
        &self,
        _cx: &Context,
        _from: &satellite::jid::Jid,
        to: &satellite::jid::Jid,
        _node: Option<&str>,
    ) -> Option<satellite::xmpp::disco::DiscoInfoResult> {
        (to.node().map(|n| n.as_str()) == Some("lobby")).then(|| {
            satellite::xmpp::disco::DiscoInfoResult {
                node: None,
                identities: vec![satellite::xmpp::disco::Identity::new(
                    "conference",
                    "text",
                    "en",
                    "Lobby",
                )],
                features: ["muc_public".to_owned()].into(),
                extensions: vec![],
            }
        })
    }
    async fn disco_items(
        &self,
        cx: &Context,
        query: &satellite::ItemsQuery,
    ) -> satellite::DiscoItems {
        if query.node.is_some() || query.to.node().is_some() {
            return satellite::DiscoItems::default();
        }
        vec![satellite::xmpp::disco::Item {
            jid: format!("lobby@{}", cx.jid()).parse().expect("jid"),
            node: None,
            name: Some("Lobby".into()),
        }]
        .into()
    }
}

#[tokio::test]
async fn disco_is_assembled_from_plugins() {
    let (mut server, component) = testing::spawn(|b| b.plugin(Rooms)).await;
    let reply = server
        .iq(stanza(&format!("<iq type='get' id='d1' from='{USER}' to='svc.test'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")))
        .await;
    let query = reply
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .expect("info");
    let features: Vec<_> = query
        .children()
        .filter(|c| c.name() == "feature")
        .filter_map(|c| c.attr("var"))
        .collect();
    for f in [
        "http://jabber.org/protocol/muc",
        "urn:xmpp:ping",
        "jabber:iq:version",
        "http://jabber.org/protocol/disco#info",
        "http://jabber.org/protocol/disco#items",
    ] {
        assert!(features.contains(&f), "missing {f} in {features:?}");
    }
    let identity = query
        .get_child("identity", "http://jabber.org/protocol/disco#info")
        .expect("identity");
    assert_eq!(identity.attr("category"), Some("conference"));
    assert!(
        query.get_child("x", "jabber:x:data").is_some(),
        "XEP-0128 form"
    );

    let reply = server
        .iq(stanza(&format!("<iq type='get' id='d2' from='{USER}' to='lobby@svc.test'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")))
        .await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
    let reply = server
        .iq(stanza(&format!("<iq type='get' id='d3' from='{USER}' to='nowhere@svc.test'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")))
        .await;
    assert_stanza_error!(reply, DefinedCondition::ItemNotFound);
    let reply = server
        .iq(stanza(&format!("<iq type='get' id='d4' from='{USER}' to='svc.test'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")))
        .await;
    let items = reply
        .get_child("query", "http://jabber.org/protocol/disco#items")
        .expect("items");
    assert_eq!(
        items
            .children()
            .filter_map(|c| c.attr("jid"))
            .collect::<Vec<_>>(),
        ["lobby@svc.test"]
    );
    component.stop().await;
}

#[tokio::test]
async fn malformed_stanzas_get_bad_request_and_the_link_stays_up() {
    let (mut server, component) = testing::spawn(|b| b).await;
    for bad in [
        format!(
            "<message type='shout' id='m1' from='{USER}' to='svc.test'><body>hi</body></message>"
        ),
        format!(
            "<presence id='m2' from='{USER}' to='svc.test'><priority>high</priority></presence>"
        ),
        format!("<iq type='get' from='{USER}' to='svc.test'><ping xmlns='urn:xmpp:ping'/></iq>"),
        format!(
            "<iq type='fetch' id='m3' from='{USER}' to='svc.test'><ping xmlns='urn:xmpp:ping'/></iq>"
        ),
    ] {
        server.send(stanza(&bad)).await;
        let reply = server.recv().await;
        assert_stanza_error!(reply, DefinedCondition::BadRequest);
        assert_eq!(reply.attr("to"), Some(USER));
    }
    // Errors are never answered, valid or not.
    server
        .send(stanza(&format!(
            "<iq type='error' id='e1' from='{USER}' to='svc.test'/>"
        )))
        .await;
    server
        .send(stanza(&format!(
            "<message type='error' id='e2' from='{USER}' to='svc.test'/>"
        )))
        .await;
    let reply = server.iq(ping("after")).await;
    assert_eq!(reply.attr("type"), Some("result"));
    component.stop().await;
}

/// A plugin whose handlers fail in both ways, and that records messages.
struct Faulty {
    seen: mpsc::UnboundedSender<(String, String)>,
}

#[async_trait]
impl Plugin for Faulty {
    fn name(&self) -> &'static str {
        "faulty"
    }
    fn iq_routes(&self) -> Vec<IqRoute> {
        vec![
            IqRoute::get("urn:test", "boom"),
            IqRoute::get("urn:test", "deny"),
        ]
    }
    async fn handle_iq(&self, _cx: &Context, iq: IqRequest) -> IqResult {
        if iq.payload.name() == "boom" {
            Err(HandlerError::internal("disk on fire at /secret/path"))
        } else {
            Err(HandlerError::forbidden("not you"))
        }
    }
    async fn handle_message(&self, _cx: &Context, m: &Message) -> Flow {
        let to =
            m.to.as_ref()
                .map(|j| j.to_bare().to_string())
                .unwrap_or_default();
        let body = m.bodies.values().next().cloned().unwrap_or_default();
        // Slow lane for room "slow", to show other lanes overtake it.
        if to.starts_with("slow@") {
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        let _ = self.seen.send((to, body));
        Flow::Handled
    }
}

#[tokio::test]
async fn handler_errors_become_stanza_errors() {
    let (seen, _rx) = mpsc::unbounded_channel();
    let (mut server, component) = testing::spawn(|b| b.plugin(Faulty { seen })).await;
    let reply = server
        .iq(stanza(&format!(
            "<iq type='get' id='b1' from='{USER}' to='svc.test'><boom xmlns='urn:test'/></iq>"
        )))
        .await;
    assert_stanza_error!(reply, DefinedCondition::InternalServerError);
    assert!(
        !String::from(&reply).contains("/secret/path"),
        "internal details stay internal"
    );
    let reply = server
        .iq(stanza(&format!(
            "<iq type='get' id='b2' from='{USER}' to='svc.test'><deny xmlns='urn:test'/></iq>"
        )))
        .await;
    assert_stanza_error!(reply, DefinedCondition::Forbidden);
    component.stop().await;
}

#[tokio::test]
async fn same_address_in_order_different_addresses_concurrently() {
    let (seen, mut rx) = mpsc::unbounded_channel();
    let (mut server, component) = testing::spawn(|b| b.plugin(Faulty { seen })).await;
    for i in 0..10 {
        for room in ["slow", "fast"] {
            server
                .send(stanza(&format!(
                    "<message type='groupchat' from='{USER}' to='{room}@svc.test'><body>{i}</body></message>"
                )))
                .await;
        }
    }
    let mut order: Vec<(String, String)> = Vec::new();
    while order.len() < 20 {
        order.push(
            tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("in time")
                .expect("open"),
        );
    }
    for room in ["slow@svc.test", "fast@svc.test"] {
        let bodies: Vec<_> = order
            .iter()
            .filter(|(r, _)| r == room)
            .map(|(_, b)| b.clone())
            .collect();
        let expected: Vec<_> = (0..10).map(|i| i.to_string()).collect();
        assert_eq!(bodies, expected, "{room} out of order");
    }
    // The fast room did not wait behind the slow one.
    let last_fast = order
        .iter()
        .rposition(|(r, _)| r == "fast@svc.test")
        .expect("fast");
    let last_slow = order
        .iter()
        .rposition(|(r, _)| r == "slow@svc.test")
        .expect("slow");
    assert!(last_fast < last_slow, "fast lane was held up: {order:?}");
    component.stop().await;
}

#[tokio::test]
async fn unhandled_chat_message_is_bounced_once() {
    let (mut server, component) = testing::spawn(|b| b).await;
    server
        .send(stanza(&format!(
            "<message type='chat' id='c1' from='{USER}' to='svc.test'><body>hi</body></message>"
        )))
        .await;
    let reply = server.recv().await;
    assert_eq!(reply.name(), "message");
    assert_stanza_error!(reply, DefinedCondition::ServiceUnavailable);
    component.stop().await;
}

#[tokio::test]
async fn request_resolves_to_the_reply_and_times_out() {
    let probe = ContextProbe::default();
    let (mut server, component) = testing::spawn(|b| b.plugin(probe.clone())).await;
    let cx = probe.context().await;
    let request = tokio::spawn({
        let cx = cx.clone();
        async move {
            let iq = Iq::from_get("x", satellite::xmpp::ping::Ping)
                .with_to("test".parse().expect("jid"));
            cx.request(iq).await
        }
    });
    let sent = server.recv_matching(|e| e.name() == "iq").await;
    assert_eq!(sent.attr("from"), Some("svc.test"), "from is filled in");
    let id = sent.attr("id").expect("id").to_owned();
    // A reply from someone else must not resolve it.
    server
        .send(stanza(&format!(
            "<iq type='result' id='{id}' from='evil@test/x' to='svc.test'/>"
        )))
        .await;
    server
        .send(stanza(&format!(
            "<iq type='result' id='{id}' from='test' to='svc.test'/>"
        )))
        .await;
    let result = request.await.expect("join");
    assert!(matches!(result, Ok(None)), "{result:?}");

    let iq = Iq::from_get("y", satellite::xmpp::ping::Ping).with_to("test".parse().expect("jid"));
    let timed_out = cx
        .request_with_timeout(iq, Duration::from_millis(100))
        .await;
    assert!(
        matches!(timed_out, Err(satellite::RequestError::Timeout(_))),
        "{timed_out:?}"
    );
    component.stop().await;
}

#[tokio::test]
async fn reconnects_and_delivers_what_was_queued_during_the_outage() {
    let probe = ContextProbe::default();
    let mut server = MockServer::bind(testing::JID, testing::SECRET)
        .await
        .expect("bind");
    let mut config = testing::config(server.addr());
    config.queue_limit = 3;
    let component = Component::builder(config)
        .plugin(probe.clone())
        .build()
        .expect("build");
    let mut status = component.status();
    let token = satellite::CancellationToken::new();
    let run = tokio::spawn(component.run(token.clone()));
    let link = server.accept().await.expect("accept").expect("handshake");
    let cx = probe.context().await;

    link.close().await;
    status
        .wait_for(|s| matches!(s, satellite::LinkStatus::Disconnected { .. }))
        .await
        .expect("status");
    for i in 0..3 {
        let m = Message::new(Some(format!("user@test/{i}").parse().expect("jid")));
        cx.send(m).await.expect("queued while down");
    }
    let overflow = cx
        .send(Message::new(Some("user@test/x".parse().expect("jid"))))
        .await;
    assert_eq!(overflow, Err(SendError::QueueFull(3)));

    let mut link = tokio::time::timeout(Duration::from_secs(5), server.accept())
        .await
        .expect("reconnected in time")
        .expect("accept")
        .expect("handshake");
    for i in 0..3 {
        let m = link.recv_matching(|e| e.name() == "message").await;
        assert_eq!(m.attr("to"), Some(format!("user@test/{i}").as_str()));
        assert_eq!(m.attr("from"), Some("svc.test"));
    }
    token.cancel();
    assert!(
        link.closed_by_component().await,
        "stream closed on shutdown"
    );
    run.await.expect("run ends");
}

#[tokio::test]
async fn a_refused_handshake_backs_off_instead_of_storming() {
    let mut server = MockServer::bind(testing::JID, "the-right-secret")
        .await
        .expect("bind");
    let config = testing::config(server.addr()); // uses testing::SECRET: wrong
    let component = Component::builder(config).build().expect("build");
    let mut status = component.status();
    let token = satellite::CancellationToken::new();
    let run = tokio::spawn(component.run(token.clone()));
    let started = tokio::time::Instant::now();
    assert!(server.accept().await.expect("accept").is_none(), "refused");
    let status = status
        .wait_for(|s| matches!(s, satellite::LinkStatus::Disconnected { .. }))
        .await
        .expect("status")
        .clone();
    assert!(
        format!("{status:?}").contains("not-authorized"),
        "{status:?}"
    );
    let mut attempts = 1;
    let _ = tokio::time::timeout(Duration::from_millis(1500), async {
        loop {
            let _ = server.accept().await;
            attempts += 1;
        }
    })
    .await;
    assert!(
        attempts <= 3,
        "{attempts} attempts in {:?}",
        started.elapsed()
    );
    token.cancel();
    run.await.expect("run ends");
}

/// Answers slowly, to check that shutdown lets it finish.
struct Slow;

#[async_trait]
impl Plugin for Slow {
    fn name(&self) -> &'static str {
        "slow"
    }
    fn iq_routes(&self) -> Vec<IqRoute> {
        vec![IqRoute::get("urn:test", "slow")]
    }
    async fn handle_iq(&self, _cx: &Context, _iq: IqRequest) -> IqResult {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(None)
    }
}

#[tokio::test]
async fn shutdown_finishes_running_handlers_then_closes_the_stream() {
    let (mut server, component) = testing::spawn(|b| b.plugin(Slow)).await;
    server
        .send(stanza(&format!(
            "<iq type='get' id='s1' from='{USER}' to='svc.test'><slow xmlns='urn:test'/></iq>"
        )))
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stop = tokio::spawn(component.stop());
    let reply = server.recv().await;
    assert_eq!(
        (reply.attr("id"), reply.attr("type")),
        (Some("s1"), Some("result"))
    );
    assert!(server.closed_by_component().await);
    stop.await.expect("stopped");
}

/// Counts `on_shutdown` calls.
struct Counting(Arc<std::sync::atomic::AtomicUsize>);

#[async_trait]
impl Plugin for Counting {
    fn name(&self) -> &'static str {
        "counting"
    }
    async fn on_shutdown(&self, _cx: &Context) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn on_shutdown_runs_once_connected_or_not() {
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (server, component) = testing::spawn(|b| b.plugin(Counting(calls.clone()))).await;
    component.stop().await;
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    drop(server);

    // Stopped while the link is down.
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (server, component) = testing::spawn(|b| b.plugin(Counting(calls.clone()))).await;
    server.close().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    component.stop().await;
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// Records whether `on_start` ran before the first connection; fails when
/// told to.
struct Starting {
    fail: bool,
    connected_at_start: Arc<std::sync::Mutex<Option<bool>>>,
}

#[async_trait]
impl Plugin for Starting {
    fn name(&self) -> &'static str {
        "starting"
    }
    async fn on_start(&self, cx: &Context) -> Result<(), satellite::BoxError> {
        *self.connected_at_start.lock().expect("lock") = Some(cx.is_connected());
        if self.fail {
            return Err("cannot bind 127.0.0.1:1: permission denied".into());
        }
        Ok(())
    }
}

#[tokio::test]
async fn on_start_runs_once_before_connecting() {
    let seen = Arc::new(std::sync::Mutex::new(None));
    let plugin = Starting {
        fail: false,
        connected_at_start: seen.clone(),
    };
    let (mut server, component) = testing::spawn(|b| b.plugin(plugin)).await;
    assert_eq!(*seen.lock().expect("lock"), Some(false));
    let reply = server.iq(ping("after-start")).await;
    assert_eq!(reply.attr("type"), Some("result"));
    component.stop().await;
}

#[tokio::test]
async fn a_failed_start_stops_the_component_with_the_reason() {
    let server = MockServer::bind(testing::JID, testing::SECRET)
        .await
        .expect("bind");
    let plugin = Starting {
        fail: true,
        connected_at_start: Arc::new(std::sync::Mutex::new(None)),
    };
    let component = Component::builder(testing::config(server.addr()))
        .plugin(plugin)
        .build()
        .expect("build");
    let mut status = component.status();
    let run = tokio::spawn(component.run(satellite::CancellationToken::new()));
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("the component stops by itself")
        .expect("join");
    let status = status.borrow_and_update().clone();
    match status {
        satellite::LinkStatus::Failed { error } => assert_eq!(
            error,
            "svc.test: starting: cannot bind 127.0.0.1:1: permission denied"
        ),
        other => panic!("expected Failed, got {other:?}"),
    }
}
