//! What a fan-out service (a MUC) needs from the framework: batch sends
//! with backpressure, reads that go on during a blast, errors for messages
//! and presences, a catch-all route for entities, work queued on a lane,
//! and lanes that neither drop presences nor grow without bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use satellite::testing::{self, ContextProbe, stanza};
use satellite::xmpp::message::Message;
use satellite::xmpp::presence::Presence;
use satellite::{
    Context, DiscoItems, Flow, HandlerError, IqRequest, IqResult, IqRoute, IqType, ItemsQuery,
    Plugin, Scope, async_trait,
};
use tokio::sync::mpsc;

const USER: &str = "user@test/phone";

fn message_to(i: usize) -> Message {
    let mut m = Message::groupchat(Some(format!("user{i}@test/r").parse().expect("jid")));
    m.id = Some(satellite::xmpp::message::Id(format!("m{i}")));
    m
}

#[tokio::test]
async fn send_many_keeps_order_and_waits_for_room_instead_of_failing() {
    let probe = ContextProbe::default();
    let (mut server, component) = testing::spawn_with(
        |mut c| {
            // Far smaller than the fan-out: senders must wait, not fail.
            c.queue_limit = 2;
            c.queue_bytes = 2048;
            c
        },
        |b| b.plugin(probe.clone()),
    )
    .await;
    let cx = probe.context().await;
    let batches = 40;
    let per_batch = 50;
    let sender = tokio::spawn(async move {
        for b in 0..batches {
            let batch = (0..per_batch).map(|i| message_to(b * per_batch + i));
            cx.send_many(batch)
                .await
                .expect("no QueueFull while the link is up");
        }
    });
    for i in 0..batches * per_batch {
        let m = server.recv_matching(|e| e.name() == "message").await;
        assert_eq!(m.attr("id"), Some(format!("m{i}").as_str()), "out of order");
        assert_eq!(m.attr("from"), Some("svc.test"));
    }
    sender.await.expect("sender done");
    component.stop().await;
}

#[tokio::test]
async fn the_link_keeps_reading_during_a_long_blast() {
    let probe = ContextProbe::default();
    let connects = Arc::new(AtomicUsize::new(0));
    let (notes_tx, mut notes_rx) = mpsc::unbounded_channel();
    let (mut server, component) = testing::spawn_with(
        |mut c| {
            c.ping_interval = Duration::from_millis(200);
            c.ping_timeout = Duration::from_secs(20);
            c.queue_bytes = 64 << 10;
            c
        },
        |b| {
            b.plugin(probe.clone()).plugin(Witness {
                connects: Arc::clone(&connects),
                notes: notes_tx,
            })
        },
    )
    .await;
    let cx = probe.context().await;
    let blasting = Arc::new(AtomicUsize::new(1));
    let flag = Arc::clone(&blasting);
    let blast_cx = cx.clone();
    let blast = tokio::spawn(async move {
        let mut n = 0;
        while flag.load(Ordering::Relaxed) == 1 {
            let batch = (0..100).map(|i| message_to(n + i));
            if blast_cx.send_many(batch).await.is_err() {
                break;
            }
            n += 100;
        }
        n
    });
    // For three seconds the server reads the blast, answers the link's
    // pings, and sends the component a message every 100 ms: each must
    // reach the plugin promptly although the outbound side is jammed
    // (what the server reads back is held up by socket buffers, so the
    // link's pings get a timeout longer than the test).
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut next_note = tokio::time::Instant::now();
    let mut notes = 0;
    let mut link_pings = 0;
    let mut slowest = Duration::ZERO;
    let mut seen_notes = 0;
    while tokio::time::Instant::now() < until {
        if tokio::time::Instant::now() >= next_note {
            notes += 1;
            server
                .send(stanza(&format!(
                    "<message type='headline' id='note{notes}' from='{USER}' to='svc.test'/>"
                )))
                .await;
            let sent_at = tokio::time::Instant::now();
            next_note = sent_at + Duration::from_millis(100);
            // The plugin reports the note while we keep reading the blast.
            loop {
                if let Ok(id) = notes_rx.try_recv() {
                    assert_eq!(id, format!("note{notes}"));
                    seen_notes += 1;
                    slowest = slowest.max(sent_at.elapsed());
                    break;
                }
                assert!(
                    sent_at.elapsed() < Duration::from_secs(2),
                    "a message from the server waited {:?} to be read during the blast",
                    sent_at.elapsed()
                );
                let el = server.recv().await;
                link_pings += answer_link_ping(&mut server, &el).await;
            }
        }
        let el = server.recv().await;
        link_pings += answer_link_ping(&mut server, &el).await;
    }
    blasting.store(0, Ordering::Relaxed);
    // Keep reading until the blaster notices, or it waits for room forever.
    while !blast.is_finished() {
        server.recv().await;
    }
    let sent = blast.await.expect("blast");
    assert!(sent > 1000, "the blast was a blast ({sent} stanzas)");
    assert!(
        seen_notes >= 3,
        "messages read during the blast: {seen_notes}"
    );
    assert!(
        link_pings >= 1,
        "the link pinged during the blast: {link_pings}"
    );
    assert!(cx.is_connected(), "the link is up");
    assert_eq!(
        connects.load(Ordering::Relaxed),
        1,
        "the link never dropped (no false ping timeout)"
    );
    component.stop().await;
}

/// Answers the link's own ping, if `el` is one; returns 1 if it was.
async fn answer_link_ping(server: &mut testing::MockLink, el: &satellite::Element) -> usize {
    if el.name() != "iq" || el.attr("type") != Some("get") {
        return 0;
    }
    let (id, from, to) = (
        el.attr("id").unwrap_or(""),
        el.attr("to").unwrap_or(""),
        el.attr("from").unwrap_or(""),
    );
    server
        .send(stanza(&format!(
            "<iq type='result' id='{id}' from='{from}' to='{to}'/>"
        )))
        .await;
    1
}

/// Counts handshakes and reports the ids of headlines it receives.
struct Witness {
    connects: Arc<AtomicUsize>,
    notes: mpsc::UnboundedSender<String>,
}

#[async_trait]
impl Plugin for Witness {
    fn name(&self) -> &'static str {
        "witness"
    }

    async fn on_connected(&self, _cx: &Context) -> Result<(), satellite::BoxError> {
        self.connects.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn handle_message(&self, _cx: &Context, m: &Message) -> Flow {
        if let Some(id) = &m.id {
            let _ = self.notes.send(id.0.clone());
        }
        Flow::Handled
    }
}

/// A room-like plugin: rejects what a room would, owns every IQ to its
/// entities, pages its items, and is slow on presences when asked.
struct Rooms {
    seen: mpsc::UnboundedSender<String>,
    presence_delay: Duration,
}

#[async_trait]
impl Plugin for Rooms {
    fn name(&self) -> &'static str {
        "rooms"
    }

    fn iq_routes(&self) -> Vec<IqRoute> {
        vec![IqRoute::fallback(IqType::Get).scope(Scope::Entities)]
    }

    async fn handle_iq(&self, _cx: &Context, iq: IqRequest) -> IqResult {
        let _ = self.seen.send(format!("iq {} {}", iq.to, iq.payload.ns()));
        Ok(None)
    }

    async fn handle_message(&self, _cx: &Context, m: &Message) -> Flow {
        if m.bodies.values().any(|b| b == "forbidden") {
            return HandlerError::forbidden("visitors may not speak").into();
        }
        Flow::Handled
    }

    async fn handle_presence(&self, _cx: &Context, p: &Presence) -> Flow {
        tokio::time::sleep(self.presence_delay).await;
        let to = p.to.as_ref().map(|t| t.to_string()).unwrap_or_default();
        let _ = self
            .seen
            .send(format!("presence {to} {}", p.id.as_deref().unwrap_or("")));
        if to.ends_with("/taken") {
            return HandlerError::new(
                satellite::xmpp::stanza_error::ErrorType::Cancel,
                satellite::xmpp::stanza_error::DefinedCondition::Conflict,
                None,
            )
            .into();
        }
        Flow::Handled
    }

    async fn disco_items(&self, _cx: &Context, query: &ItemsQuery) -> DiscoItems {
        let max = query.rsm.as_ref().and_then(|r| r.max).unwrap_or(100);
        let all: Vec<String> = (0..10).map(|i| format!("room{i}@svc.test")).collect();
        let page: Vec<_> = all.iter().take(max).collect();
        DiscoItems {
            items: page
                .iter()
                .map(|j| satellite::xmpp::disco::Item {
                    jid: j.parse().expect("jid"),
                    node: None,
                    name: None,
                })
                .collect(),
            rsm: Some(satellite::xmpp::rsm::SetResult {
                first: page.first().map(|f| satellite::xmpp::rsm::First {
                    index: Some(0),
                    item: (*f).clone(),
                }),
                last: page.last().map(|l| (*l).clone()),
                count: Some(all.len()),
            }),
        }
    }
}

fn rooms(delay_ms: u64) -> (Rooms, mpsc::UnboundedReceiver<String>) {
    let (seen, rx) = mpsc::unbounded_channel();
    let plugin = Rooms {
        seen,
        presence_delay: Duration::from_millis(delay_ms),
    };
    (plugin, rx)
}

#[tokio::test]
async fn rejected_messages_and_presences_are_answered_from_the_addressed_entity() {
    let (plugin, _seen) = rooms(0);
    let (mut server, component) = testing::spawn(|b| b.plugin(plugin)).await;
    server
        .send(stanza(&format!(
            "<message type='groupchat' id='g1' from='{USER}' to='room@svc.test'><body>forbidden</body></message>"
        )))
        .await;
    let reply = server.recv_matching(|e| e.name() == "message").await;
    assert_eq!(reply.attr("type"), Some("error"));
    assert_eq!(reply.attr("from"), Some("room@svc.test"));
    assert_eq!(reply.attr("to"), Some(USER));
    assert_eq!(reply.attr("id"), Some("g1"));
    assert_eq!(
        testing::error_condition(&reply).as_deref(),
        Some("forbidden")
    );

    server
        .send(stanza(&format!(
            "<presence id='j1' from='{USER}' to='room@svc.test/taken'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
        )))
        .await;
    let reply = server.recv_matching(|e| e.name() == "presence").await;
    assert_eq!(reply.attr("type"), Some("error"));
    assert_eq!(reply.attr("from"), Some("room@svc.test/taken"));
    assert_eq!(reply.attr("id"), Some("j1"));
    assert_eq!(
        testing::error_condition(&reply).as_deref(),
        Some("conflict")
    );

    // An error is never answered, even when rejected.
    server
        .send(stanza(&format!(
            "<presence type='error' id='e1' from='{USER}' to='room@svc.test/taken'/>"
        )))
        .await;
    server
        .send(stanza(&format!(
            "<iq type='get' id='after' from='{USER}' to='svc.test'><ping xmlns='urn:xmpp:ping'/></iq>"
        )))
        .await;
    let next = server.recv().await;
    assert_eq!(
        next.attr("id"),
        Some("after"),
        "no answer to the error presence"
    );
    component.stop().await;
}

#[tokio::test]
async fn a_fallback_route_takes_any_iq_to_entities_only() {
    let (plugin, mut seen) = rooms(0);
    let (mut server, component) = testing::spawn(|b| b.plugin(plugin)).await;
    let reply = server
        .iq(stanza(&format!(
            "<iq type='get' from='{USER}' to='room@svc.test/nick'><vCard xmlns='vcard-temp'/></iq>"
        )))
        .await;
    assert_eq!(reply.attr("type"), Some("result"));
    assert_eq!(
        seen.recv().await.as_deref(),
        Some("iq room@svc.test/nick vcard-temp")
    );
    // The component's own address is not covered.
    let reply = server
        .iq(stanza(&format!(
            "<iq type='get' from='{USER}' to='svc.test'><vCard xmlns='vcard-temp'/></iq>"
        )))
        .await;
    assert_eq!(
        testing::error_condition(&reply).as_deref(),
        Some("service-unavailable")
    );
    // Specific routes still win (the framework's own ping).
    let reply = server
        .iq(stanza(&format!(
            "<iq type='get' from='{USER}' to='svc.test'><ping xmlns='urn:xmpp:ping'/></iq>"
        )))
        .await;
    assert_eq!(reply.attr("type"), Some("result"));
    component.stop().await;
}

#[tokio::test]
async fn disco_items_pass_paging_through() {
    let (plugin, _seen) = rooms(0);
    let (mut server, component) = testing::spawn(|b| b.plugin(plugin)).await;
    let reply = server
        .iq(stanza(&format!(
            "<iq type='get' from='{USER}' to='svc.test'><query xmlns='http://jabber.org/protocol/disco#items'><set xmlns='http://jabber.org/protocol/rsm'><max>3</max></set></query></iq>"
        )))
        .await;
    let query = reply
        .get_child("query", "http://jabber.org/protocol/disco#items")
        .expect("query");
    assert_eq!(query.children().filter(|c| c.name() == "item").count(), 3);
    let set = query
        .get_child("set", "http://jabber.org/protocol/rsm")
        .expect("paged");
    let count = set
        .get_child("count", "http://jabber.org/protocol/rsm")
        .map(|c| c.text());
    assert_eq!(count.as_deref(), Some("10"));
    component.stop().await;
}

#[tokio::test]
async fn work_on_a_lane_runs_in_order_with_the_rooms_stanzas() {
    let (plugin, mut seen) = rooms(300);
    let probe = ContextProbe::default();
    let (mut server, component) = testing::spawn(|b| b.plugin(probe.clone()).plugin(plugin)).await;
    let cx = probe.context().await;
    server
        .send(stanza(&format!(
            "<presence id='p1' from='{USER}' to='room@svc.test/a'/>"
        )))
        .await;
    // Give the lane time to start on p1 (which takes 300 ms).
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let room = "room@svc.test".parse().expect("jid");
    let worker_seen = {
        let (s, r) = mpsc::unbounded_channel::<String>();
        cx.on_lane(&room, async move {
            let _ = s.send("work".to_owned());
            let _ = tx.send(());
        })
        .await
        .expect("queued");
        r
    };
    server
        .send(stanza(&format!(
            "<presence id='p2' from='{USER}' to='room@svc.test/a'/>"
        )))
        .await;
    // p1 finishes before the work runs; the work runs before p2.
    assert_eq!(
        seen.recv().await.as_deref(),
        Some("presence room@svc.test/a p1")
    );
    tokio::time::timeout(Duration::from_secs(5), rx)
        .await
        .expect("work ran")
        .expect("sent");
    assert!(
        seen.try_recv().is_err(),
        "p2 must not be handled before the work"
    );
    assert_eq!(
        seen.recv().await.as_deref(),
        Some("presence room@svc.test/a p2")
    );
    drop(worker_seen);
    component.stop().await;
}

#[tokio::test]
async fn presences_to_a_full_lane_wait_instead_of_vanishing() {
    let (plugin, mut seen) = rooms(100);
    let (mut server, component) = testing::spawn_with(
        |mut c| {
            c.lane_limit = 1;
            c
        },
        |b| b.plugin(plugin),
    )
    .await;
    for i in 0..6 {
        server
            .send(stanza(&format!(
                "<presence id='p{i}' from='{USER}' to='room@svc.test/a'/>"
            )))
            .await;
    }
    for i in 0..6 {
        let got = tokio::time::timeout(Duration::from_secs(5), seen.recv())
            .await
            .expect("in time");
        assert_eq!(got, Some(format!("presence room@svc.test/a p{i}")));
    }
    component.stop().await;
}

#[tokio::test]
async fn lanes_are_capped_with_a_clear_refusal() {
    let (plugin, _seen) = rooms(1000);
    let (mut server, component) = testing::spawn_with(
        |mut c| {
            c.max_lanes = 2;
            c
        },
        |b| b.plugin(plugin),
    )
    .await;
    for room in ["a", "b"] {
        server
            .send(stanza(&format!(
                "<presence from='{USER}' to='{room}@svc.test/n'/>"
            )))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    server
        .send(stanza(&format!(
            "<message type='groupchat' id='c1' from='{USER}' to='c@svc.test'><body>x</body></message>"
        )))
        .await;
    let reply = server.recv_matching(|e| e.attr("id") == Some("c1")).await;
    assert_eq!(reply.attr("type"), Some("error"));
    assert_eq!(reply.attr("from"), Some("c@svc.test"));
    assert_eq!(
        testing::error_condition(&reply).as_deref(),
        Some("resource-constraint")
    );
    component.stop().await;
}
