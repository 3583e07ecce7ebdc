//! The MUC archive (XEP-0313 on rooms) against a real Prosody with the
//! project's c2s client: 10 000 messages paged through both ways with RSM
//! and with before-id/after-id (nothing missing, duplicated or out of
//! order; the ids those seen live), time filters (a chat state alone is
//! not archived), the form and metadata
//! queries, refusals for outsiders, history and archive after a restart,
//! `kill -9` of the `satellite` binary in the middle of a blast (every
//! message an occupant received is archived), XEP-0410 self-ping and the
//! room's disco features, retention (`archive_expires_after`).
//!
//! Run with `cargo test --test integration muc_mam`.

use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use satellite_harness::c2s::C2sClient;
use satellite_harness::muc::{MucSetup, SATELLITE_MUC};
use xmpp_parsers::minidom::Element;

use crate::in_process::InProcess;
use crate::muc::start_muc;
use crate::support::Prosody;

const T: Duration = Duration::from_secs(20);
const SECRET: &str = "muc-secret";
const NS_MAM: &str = "urn:xmpp:mam:2";
const NS_RSM: &str = "http://jabber.org/protocol/rsm";
const NS_FORWARD: &str = "urn:xmpp:forward:0";
const NS_SID: &str = "urn:xmpp:sid:0";
const NS_CLIENT: &str = "jabber:client";
const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";

/// Rooms open at once, archive pages of up to 500.
const SETTINGS: &str = "lock_rooms = false\nmax_archive_query_results = 500\n";

struct Service {
    prosody: Prosody,
    dir: tempfile::TempDir,
    muc: Option<InProcess>,
    extra: String,
}

impl Service {
    async fn start(users: &[&str], extra: &str) -> Service {
        let mut setup = MucSetup::satellite(SECRET);
        for user in users {
            setup = setup.user(user, user);
        }
        let prosody = setup.start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let extra = format!("{SETTINGS}{extra}");
        let muc = start_muc(&prosody, &dir.path().join("muc.sqlite"), &extra).await;
        Service {
            prosody,
            dir,
            muc: Some(muc),
            extra,
        }
    }

    async fn restart(&mut self) {
        if let Some(muc) = self.muc.take() {
            muc.stop().await;
        }
        let db = self.dir.path().join("muc.sqlite");
        self.muc = Some(start_muc(&self.prosody, &db, &self.extra).await);
    }

    async fn user(&self, name: &str) -> C2sClient {
        user(&self.prosody, name).await
    }
}

async fn user(prosody: &Prosody, name: &str) -> C2sClient {
    C2sClient::connect(prosody.c2s_port, "localhost", name, name, "r")
        .await
        .expect("login")
}

fn room(name: &str) -> String {
    format!("{name}@{SATELLITE_MUC}")
}

fn xml(s: &str) -> Element {
    s.parse().expect("test XML")
}

/// The next stanza `pick` accepts (others are dropped).
async fn next(c: &mut C2sClient, what: &str, mut pick: impl FnMut(&Element) -> bool) -> Element {
    let wait = async {
        loop {
            let el = c.recv().await.expect("stream");
            if pick(&el) {
                return el;
            }
        }
    };
    tokio::time::timeout(T, wait)
        .await
        .unwrap_or_else(|_| panic!("no {what} within {T:?}"))
}

async fn join(c: &mut C2sClient, room: &str, nick: &str) {
    join_with(c, room, nick, "").await;
}

async fn join_with(c: &mut C2sClient, room: &str, nick: &str, history: &str) {
    let me = format!("{room}/{nick}");
    c.send(&xml(&format!(
        "<presence xmlns='{NS_CLIENT}' to='{me}'><x xmlns='http://jabber.org/protocol/muc'>{history}</x></presence>"
    )))
    .await
    .expect("send");
    let p = next(c, "self-presence", |e| {
        e.name() == "presence" && e.attr("from") == Some(me.as_str())
    })
    .await;
    assert_ne!(
        p.attr("type"),
        Some("error"),
        "join refused: {}",
        String::from(&p)
    );
}

fn groupchat(room: &str, id: &str, body: &str) -> Element {
    xml(&format!(
        "<message xmlns='{NS_CLIENT}' to='{room}' type='groupchat' id='{id}'><body>{body}</body></message>"
    ))
}

fn stanza_id(m: &Element, room: &str) -> Option<String> {
    m.children()
        .find(|c| c.is("stanza-id", NS_SID) && c.attr("by") == Some(room))
        .and_then(|c| c.attr("id"))
        .map(str::to_owned)
}

fn body(m: &Element) -> String {
    m.get_child("body", NS_CLIENT)
        .map(Element::text)
        .unwrap_or_default()
}

/// Sends one groupchat message and returns the stanza-id of its reflection.
async fn say(c: &mut C2sClient, room: &str, id: &str, text: &str) -> String {
    c.send(&groupchat(room, id, text)).await.expect("send");
    let m = next(c, "reflection", |e| {
        e.name() == "message" && e.attr("id") == Some(id)
    })
    .await;
    assert_ne!(m.attr("type"), Some("error"), "{}", String::from(&m));
    stanza_id(&m, room).expect("stanza-id")
}

/// One archive query's answer: (archive id, body, forwarded message) per
/// result, then the `<fin/>`; `Err(condition)` for an error.
type Answer = Result<(Vec<(String, String, Element)>, Element), String>;

async fn mam(c: &mut C2sClient, room: &str, fields: &str, rsm: &str, more: &str) -> Answer {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (qid, id) = (format!("q{n}"), format!("mam{n}"));
    let form = if fields.is_empty() {
        String::new()
    } else {
        format!(
            "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>{NS_MAM}</value></field>{fields}</x>"
        )
    };
    let set = if rsm.is_empty() {
        String::new()
    } else {
        format!("<set xmlns='{NS_RSM}'>{rsm}</set>")
    };
    c.send(&xml(&format!(
        "<iq xmlns='{NS_CLIENT}' type='set' to='{room}' id='{id}'><query xmlns='{NS_MAM}' queryid='{qid}'>{form}{set}{more}</query></iq>"
    )))
    .await
    .expect("send");
    let mut results = Vec::new();
    loop {
        let el = next(c, "archive result", |e| {
            e.attr("id") == Some(id.as_str())
                || e.get_child("result", NS_MAM)
                    .is_some_and(|r| r.attr("queryid") == Some(qid.as_str()))
        })
        .await;
        if el.name() == "iq" {
            if el.attr("type") == Some("error") {
                let cond = el
                    .children()
                    .find(|c| c.name() == "error")
                    .and_then(|e| e.children().find(|c| c.name() != "text"))
                    .map(|c| c.name().to_owned())
                    .unwrap_or_default();
                return Err(cond);
            }
            let fin = el.get_child("fin", NS_MAM).expect("fin").clone();
            return Ok((results, fin));
        }
        assert_eq!(el.attr("from"), Some(room));
        let result = el.get_child("result", NS_MAM).expect("result");
        let fwd = result
            .get_child("forwarded", NS_FORWARD)
            .and_then(|f| f.get_child("message", NS_CLIENT))
            .expect("forwarded message")
            .clone();
        let id = result.attr("id").expect("id").to_owned();
        results.push((id, body(&fwd), fwd));
    }
}

fn field(var: &str, value: &str) -> String {
    format!("<field var='{var}'><value>{value}</value></field>")
}

fn rsm_text(fin: &Element, name: &str) -> Option<String> {
    fin.get_child("set", NS_RSM)
        .and_then(|s| s.get_child(name, NS_RSM))
        .map(Element::text)
}

fn complete(fin: &Element) -> bool {
    matches!(fin.attr("complete"), Some("true" | "1"))
}

/// Sends `count` messages `prefix i` as fast as the stream takes them,
/// reading the reflections alongside; returns their stanza-ids in order.
async fn blast(c: &mut C2sClient, room: &str, prefix: &str, count: usize) -> Vec<String> {
    const WINDOW: usize = 200;
    let mut ids = Vec::with_capacity(count);
    let mut sent = 0;
    while ids.len() < count {
        while sent < count && sent < ids.len() + WINDOW {
            c.feed(&groupchat(
                room,
                &format!("{prefix}{sent}"),
                &format!("{prefix} {sent}"),
            ))
            .await
            .expect("feed");
            sent += 1;
        }
        c.flush().await.expect("flush");
        let want = format!("{prefix}{}", ids.len());
        let m = next(c, "reflection", |e| {
            e.name() == "message" && e.attr("id").is_some_and(|i| i.starts_with(prefix))
        })
        .await;
        assert_eq!(m.attr("id"), Some(want.as_str()), "reflections in order");
        ids.push(stanza_id(&m, room).expect("stanza-id"));
    }
    ids
}

#[tokio::test]
async fn ten_thousand_messages_page_through_both_ways() {
    const N: usize = 10_000;
    const PAGE: usize = 500;
    let svc = Service::start(&["alice"], "").await;
    let r = room("big");
    let mut alice = svc.user("alice").await;
    join(&mut alice, &r, "Alice").await;
    let started = std::time::Instant::now();
    let live = blast(&mut alice, &r, "m", N).await;
    eprintln!(
        "{N} messages archived and reflected in {:?}",
        started.elapsed()
    );
    assert_eq!(live.iter().collect::<HashSet<_>>().len(), N, "ids unique");
    let want: Vec<(String, String)> = live
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), format!("m {i}")))
        .collect();

    // Forward with RSM <after>.
    let mut got = Vec::new();
    let mut after = String::new();
    loop {
        let rsm = format!("<max>{PAGE}</max>{after}");
        let (page, fin) = mam(&mut alice, &r, "", &rsm, "").await.expect("page");
        assert_eq!(rsm_text(&fin, "count").as_deref(), Some("10000"));
        got.extend(page.into_iter().map(|(id, b, _)| (id, b)));
        if complete(&fin) {
            break;
        }
        after = format!("<after>{}</after>", rsm_text(&fin, "last").expect("last"));
    }
    assert_eq!(got, want, "forward with RSM");

    // Backward with RSM <before>.
    let mut got = Vec::new();
    let mut before = "<before/>".to_owned();
    loop {
        let rsm = format!("<max>{PAGE}</max>{before}");
        let (page, fin) = mam(&mut alice, &r, "", &rsm, "").await.expect("page");
        let mut page: Vec<_> = page.into_iter().map(|(id, b, _)| (id, b)).collect();
        page.extend(got);
        got = page;
        if complete(&fin) {
            break;
        }
        before = format!(
            "<before>{}</before>",
            rsm_text(&fin, "first").expect("first")
        );
    }
    assert_eq!(got, want, "backward with RSM");

    // Forward with after-id, backward with before-id and flip-page.
    let mut got: Vec<(String, String)> = Vec::new();
    loop {
        let fields = got
            .last()
            .map(|(id, _)| field("after-id", id))
            .unwrap_or_default();
        let (page, fin) = mam(&mut alice, &r, &fields, &format!("<max>{PAGE}</max>"), "")
            .await
            .expect("page");
        got.extend(page.into_iter().map(|(id, b, _)| (id, b)));
        if complete(&fin) {
            break;
        }
    }
    assert_eq!(got, want, "forward with after-id");
    let mut got: Vec<(String, String)> = Vec::new();
    loop {
        let fields = got
            .last()
            .map(|(id, _)| field("before-id", id))
            .unwrap_or_default();
        let (page, fin) = mam(
            &mut alice,
            &r,
            &fields,
            &format!("<max>{PAGE}</max><before/>"),
            "<flip-page/>",
        )
        .await
        .expect("page");
        got.extend(page.into_iter().map(|(id, b, _)| (id, b)));
        if complete(&fin) {
            break;
        }
    }
    got.reverse();
    assert_eq!(got, want, "backward with before-id and flip-page");

    // A window between two ids, and ids.
    let fields = format!(
        "{}{}",
        field("after-id", &live[99]),
        field("before-id", &live[200])
    );
    let (page, fin) = mam(&mut alice, &r, &fields, "<max>500</max>", "")
        .await
        .expect("window");
    assert_eq!(page.len(), 100);
    assert_eq!(page[0].0, live[100]);
    assert!(complete(&fin));
    let fields = format!(
        "<field var='ids'><value>{}</value><value>{}</value></field>",
        live[5], live[9_999]
    );
    let (page, _) = mam(&mut alice, &r, &fields, "", "").await.expect("ids");
    let ids: Vec<&str> = page.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(ids, [live[5].as_str(), live[9_999].as_str()]);
    assert_eq!(
        mam(&mut alice, &r, "", "<after>no-such-id</after>", "")
            .await
            .err()
            .as_deref(),
        Some("item-not-found")
    );
    alice.close().await;
}

#[tokio::test]
async fn time_filters_form_metadata_and_disco() {
    let svc = Service::start(&["alice"], "").await;
    let r = room("times");
    let mut alice = svc.user("alice").await;
    join(&mut alice, &r, "Alice").await;

    // The form and an empty archive's metadata.
    let reply = alice
        .request(
            &xml(&format!(
                "<iq xmlns='{NS_CLIENT}' type='get' to='{r}' id='f1'><query xmlns='{NS_MAM}'/></iq>"
            )),
            T,
        )
        .await
        .expect("form");
    let vars: Vec<String> = reply
        .get_child("query", NS_MAM)
        .and_then(|q| q.get_child("x", "jabber:x:data"))
        .expect("form")
        .children()
        .filter_map(|f| f.attr("var").map(str::to_owned))
        .collect();
    for var in [
        "FORM_TYPE",
        "with",
        "start",
        "end",
        "before-id",
        "after-id",
        "ids",
    ] {
        assert!(vars.iter().any(|v| v == var), "{var} in {vars:?}");
    }
    let meta_iq = format!(
        "<iq xmlns='{NS_CLIENT}' type='get' to='{r}' id='md1'><metadata xmlns='{NS_MAM}'/></iq>"
    );
    let reply = alice.request(&xml(&meta_iq), T).await.expect("metadata");
    assert_eq!(
        reply
            .get_child("metadata", NS_MAM)
            .map(|m| m.children().count()),
        Some(0)
    );

    let a = say(&mut alice, &r, "t1", "first").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let b = say(&mut alice, &r, "t2", "second").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let c = say(&mut alice, &r, "t3", "third").await;
    // A chat state alone is reflected, not archived.
    alice
        .send(&xml(&format!(
            "<message xmlns='{NS_CLIENT}' to='{r}' type='groupchat' id='cs1'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>"
        )))
        .await
        .expect("send");
    let state = next(&mut alice, "chat state", |e| e.attr("id") == Some("cs1")).await;
    assert!(
        stanza_id(&state, &r).is_none(),
        "no archive id for a chat state"
    );
    let (all, _) = mam(&mut alice, &r, "", "", "").await.expect("all");
    assert_eq!(
        all.iter().map(|x| x.0.clone()).collect::<Vec<_>>(),
        [a.clone(), b.clone(), c.clone()]
    );
    let stamps = delays(&mut alice, &r).await;
    assert_eq!(stamps.len(), 3);
    let (page, _) = mam(&mut alice, &r, &field("start", &stamps[1]), "", "")
        .await
        .expect("start");
    assert_eq!(page.iter().map(|x| &x.0).collect::<Vec<_>>(), [&b, &c]);
    let (page, _) = mam(&mut alice, &r, &field("end", &stamps[1]), "", "")
        .await
        .expect("end");
    assert_eq!(page.iter().map(|x| &x.0).collect::<Vec<_>>(), [&a, &b]);
    let fields = format!("{}{}", field("start", &stamps[1]), field("end", &stamps[1]));
    let (page, _) = mam(&mut alice, &r, &fields, "", "").await.expect("both");
    assert_eq!(page.iter().map(|x| &x.0).collect::<Vec<_>>(), [&b]);
    let (page, _) = mam(
        &mut alice,
        &r,
        &field("start", "2099-01-01T00:00:00Z"),
        "",
        "",
    )
    .await
    .expect("future");
    assert!(page.is_empty());
    assert_eq!(
        mam(&mut alice, &r, &field("start", "yesterday"), "", "")
            .await
            .err()
            .as_deref(),
        Some("bad-request")
    );

    let reply = alice
        .request(&xml(&meta_iq.replace("md1", "md2")), T)
        .await
        .expect("metadata");
    let meta = reply.get_child("metadata", NS_MAM).expect("metadata");
    assert_eq!(
        meta.get_child("start", NS_MAM).and_then(|s| s.attr("id")),
        Some(a.as_str())
    );
    assert_eq!(
        meta.get_child("end", NS_MAM).and_then(|s| s.attr("id")),
        Some(c.as_str())
    );

    let features = disco_features(&mut alice, &r).await;
    for f in [
        NS_MAM,
        "urn:xmpp:mam:2#extended",
        "urn:xmpp:ping",
        "http://jabber.org/protocol/muc#self-ping-optimization",
    ] {
        assert!(features.iter().any(|x| x == f), "{f} in {features:?}");
    }
    alice.close().await;
}

/// The delay stamps of every archived message of `room`, in order.
async fn delays(c: &mut C2sClient, room: &str) -> Vec<String> {
    let id = "delays";
    c.send(&xml(&format!(
        "<iq xmlns='{NS_CLIENT}' type='set' to='{room}' id='{id}'><query xmlns='{NS_MAM}' queryid='dq'/></iq>"
    )))
    .await
    .expect("send");
    let mut stamps = Vec::new();
    loop {
        let el = next(c, "result", |e| {
            e.attr("id") == Some(id) || e.has_child("result", NS_MAM)
        })
        .await;
        if el.name() == "iq" {
            return stamps;
        }
        let delay = el
            .get_child("result", NS_MAM)
            .and_then(|r| r.get_child("forwarded", NS_FORWARD))
            .and_then(|f| f.get_child("delay", "urn:xmpp:delay"))
            .expect("delay");
        assert_eq!(delay.attr("from"), Some(room));
        stamps.push(delay.attr("stamp").expect("stamp").to_owned());
    }
}

async fn disco_features(c: &mut C2sClient, to: &str) -> Vec<String> {
    let reply = c
        .request(
            &xml(&format!("<iq xmlns='{NS_CLIENT}' type='get' to='{to}' id='disco'><query xmlns='{NS_DISCO_INFO}'/></iq>")),
            T,
        )
        .await
        .expect("disco");
    reply
        .get_child("query", NS_DISCO_INFO)
        .expect("query")
        .children()
        .filter(|c| c.name() == "feature")
        .filter_map(|c| c.attr("var").map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn outsiders_are_refused_and_real_jids_follow_whois() {
    let svc = Service::start(&["alice", "bob", "carol", "dave"], "").await;
    let mut alice = svc.user("alice").await;
    let mut bob = svc.user("bob").await;
    let mut carol = svc.user("carol").await;

    // A members-only room: carol is a member, bob is not.
    let closed = room("closed");
    join(&mut alice, &closed, "Alice").await;
    submit_config(&mut alice, &closed, &[("muc#roomconfig_membersonly", "1")]).await;
    let grant = format!(
        "<iq xmlns='{NS_CLIENT}' type='set' to='{closed}' id='grant'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member' jid='carol@localhost'/></query></iq>"
    );
    let reply = alice.request(&xml(&grant), T).await.expect("grant");
    assert_eq!(
        reply.attr("type"),
        Some("result"),
        "{}",
        String::from(&reply)
    );
    say(&mut alice, &closed, "c1", "secret").await;
    assert_eq!(
        mam(&mut bob, &closed, "", "", "").await.err().as_deref(),
        Some("forbidden")
    );
    let meta = format!(
        "<iq xmlns='{NS_CLIENT}' type='get' to='{closed}' id='m-bob'><metadata xmlns='{NS_MAM}'/></iq>"
    );
    let reply = bob.request(&xml(&meta), T).await.expect("metadata");
    assert_eq!(reply.attr("type"), Some("error"), "no metadata leaks");
    let (page, _) = mam(&mut carol, &closed, "", "", "")
        .await
        .expect("a member reads");
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].1, "secret");
    // Semi-anonymous: the member sees no real JID, the owner does.
    assert!(page[0].2.get_child("x", NS_MUC_USER).is_none());
    let (page, _) = mam(&mut alice, &closed, "", "", "")
        .await
        .expect("the owner reads");
    let jid = page[0]
        .2
        .get_child("x", NS_MUC_USER)
        .and_then(|x| x.get_child("item", NS_MUC_USER))
        .and_then(|i| i.attr("jid"))
        .map(str::to_owned);
    assert_eq!(jid.as_deref(), Some("alice@localhost"));
    assert_eq!(
        mam(
            &mut carol,
            &closed,
            &field("with", "alice@localhost"),
            "",
            ""
        )
        .await
        .err()
        .as_deref(),
        Some("forbidden"),
        "no search by real JID for who cannot see them"
    );
    let (page, _) = mam(
        &mut alice,
        &closed,
        &field("with", "alice@localhost"),
        "",
        "",
    )
    .await
    .expect("the owner searches by JID");
    assert_eq!(page.len(), 1);

    // A hidden open room: outsiders are refused, occupants read.
    let hidden = room("hidden");
    join(&mut alice, &hidden, "Alice").await;
    say(&mut alice, &hidden, "h1", "hush").await;
    assert_eq!(
        mam(&mut bob, &hidden, "", "", "").await.err().as_deref(),
        Some("forbidden")
    );
    join(&mut bob, &hidden, "Bob").await;
    let (page, _) = mam(&mut bob, &hidden, "", "", "")
        .await
        .expect("an occupant reads");
    assert_eq!(page.len(), 1);

    // A public open room: anyone reads, except the banned.
    let open = room("open");
    join(&mut alice, &open, "Alice").await;
    submit_config(&mut alice, &open, &[("muc#roomconfig_publicroom", "1")]).await;
    say(&mut alice, &open, "o1", "hello world").await;
    let mut dave = svc.user("dave").await;
    let (page, _) = mam(&mut dave, &open, "", "", "")
        .await
        .expect("anyone reads");
    assert_eq!(page.len(), 1);
    let ban = format!(
        "<iq xmlns='{NS_CLIENT}' type='set' to='{open}' id='ban'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='outcast' jid='dave@localhost'/></query></iq>"
    );
    let reply = alice.request(&xml(&ban), T).await.expect("ban");
    assert_eq!(reply.attr("type"), Some("result"));
    assert_eq!(
        mam(&mut dave, &open, "", "", "").await.err().as_deref(),
        Some("forbidden")
    );

    // A room that does not exist.
    assert_eq!(
        mam(&mut bob, &room("nowhere"), "", "", "")
            .await
            .err()
            .as_deref(),
        Some("item-not-found")
    );
    for c in [alice, bob, carol, dave] {
        c.close().await;
    }
}

async fn submit_config(c: &mut C2sClient, room: &str, fields: &[(&str, &str)]) {
    let fields: String = fields.iter().map(|(k, v)| field(k, v)).collect();
    let iq = format!(
        "<iq xmlns='{NS_CLIENT}' type='set' to='{room}' id='cfg'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>{fields}</x></query></iq>"
    );
    let reply = c.request(&xml(&iq), T).await.expect("config");
    assert_eq!(
        reply.attr("type"),
        Some("result"),
        "{}",
        String::from(&reply)
    );
}

#[tokio::test]
async fn history_and_archive_survive_a_restart() {
    let mut svc = Service::start(
        &["alice", "bob"],
        "[component.settings.room_defaults]\npersistent = true\n",
    )
    .await;
    let r = room("lasting");
    let mut alice = svc.user("alice").await;
    join(&mut alice, &r, "Alice").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(say(&mut alice, &r, &format!("p{i}"), &format!("before {i}")).await);
    }
    alice.close().await;
    svc.restart().await;

    let mut bob = svc.user("bob").await;
    join_with(&mut bob, &r, "Bob", "<history maxstanzas='3'/>").await;
    // Bob's history came before his self-presence? It comes after it.
    let mut history = Vec::new();
    while history.len() < 3 {
        let m = next(&mut bob, "history", |e| {
            e.name() == "message" && e.has_child("body", NS_CLIENT)
        })
        .await;
        assert!(m.has_child("delay", "urn:xmpp:delay"), "history is delayed");
        history.push((stanza_id(&m, &r).expect("stanza-id"), body(&m)));
    }
    assert_eq!(
        history,
        (2..5)
            .map(|i| (ids[i].clone(), format!("before {i}")))
            .collect::<Vec<_>>()
    );
    let (page, _) = mam(&mut bob, &r, "", "", "").await.expect("archive");
    assert_eq!(page.iter().map(|p| p.0.clone()).collect::<Vec<_>>(), ids);
    bob.close().await;
}

#[tokio::test]
async fn self_ping_answers_joined_and_not_joined() {
    let svc = Service::start(&["alice", "bob"], "").await;
    let r = room("pings");
    let mut alice = svc.user("alice").await;
    join(&mut alice, &r, "Alice").await;
    let ping = |to: &str, id: &str| {
        xml(&format!(
            "<iq xmlns='{NS_CLIENT}' type='get' to='{to}' id='{id}'><ping xmlns='urn:xmpp:ping'/></iq>"
        ))
    };
    let reply = alice
        .request(&ping(&format!("{r}/Alice"), "sp1"), T)
        .await
        .expect("ping");
    assert_eq!(
        reply.attr("type"),
        Some("result"),
        "{}",
        String::from(&reply)
    );
    // Someone who is not in the room pings the nick: not joined.
    let mut bob = svc.user("bob").await;
    let reply = bob
        .request(&ping(&format!("{r}/Alice"), "sp2"), T)
        .await
        .expect("ping");
    assert_eq!(reply.attr("type"), Some("error"));
    assert!(
        String::from(&reply).contains("not-acceptable"),
        "{}",
        String::from(&reply)
    );
    alice.close().await;
    bob.close().await;
}

/// `satellite run` with a MUC component, as a child we can kill.
fn run_binary(config: &Path) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_satellite"))
        .args(["run", "-c", config.to_str().expect("utf8")])
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(config.with_extension("log"))
                .map_or_else(|_| Stdio::null(), Stdio::from),
        )
        .kill_on_drop(true)
        .spawn()
        .expect("spawn satellite")
}

/// Joins, trying again while the component is not (yet) connected.
async fn join_when_up(prosody: &Prosody, name: &str, room: &str, nick: &str) -> C2sClient {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let mut c = user(prosody, name).await;
        let me = format!("{room}/{nick}");
        c.send(&xml(&format!(
            "<presence xmlns='{NS_CLIENT}' to='{me}'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>"
        )))
        .await
        .expect("send");
        let p = next(&mut c, "self-presence", |e| e.name() == "presence").await;
        if p.attr("type") != Some("error") {
            return c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the MUC never came up"
        );
        c.close().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn kill_9_in_a_blast_loses_nothing_an_occupant_received() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;

    let prosody = MucSetup::satellite(SECRET)
        .user("alice", "alice")
        .user("bob", "bob")
        .start()
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("satellite.toml");
    std::fs::write(
        &config,
        format!(
            "[[component]]\nservice = \"muc\"\njid = \"{SATELLITE_MUC}\"\nserver = \"127.0.0.1:{}\"\n\
             secret = \"{SECRET}\"\n\n[component.settings]\ndatabase = \"{}\"\n{SETTINGS}\
             [component.settings.room_defaults]\npersistent = true\n",
            prosody.component_port,
            dir.path().join("muc.sqlite").display()
        ),
    )
    .expect("config");
    let mut child = run_binary(&config);
    let r = room("blast");
    let mut bob = join_when_up(&prosody, "bob", &r, "Bob").await;
    let mut alice = join_when_up(&prosody, "alice", &r, "Alice").await;

    // Alice sends without waiting; Bob counts what he receives; the
    // service dies once Bob has 500.
    let sender = tokio::spawn(async move {
        for i in 0..20_000 {
            let m = groupchat(&r_of(), &format!("k{i}"), &format!("k {i}"));
            if alice.feed(&m).await.is_err() {
                break;
            }
            if i % 50 == 49 && alice.flush().await.is_err() {
                break;
            }
            if i % 500 == 499 {
                tokio::task::yield_now().await;
            }
        }
        let _ = alice.flush().await;
        alice
    });
    let mut received: Vec<String> = Vec::new();
    let pid = child.id().expect("pid");
    loop {
        let m = next(&mut bob, "blast message", |e| {
            e.name() == "message" && e.has_child("body", NS_CLIENT)
        })
        .await;
        received.push(stanza_id(&m, &r).expect("stanza-id"));
        if received.len() == 500 {
            kill(Pid::from_raw(pid as i32), Signal::SIGKILL).expect("kill -9");
            break;
        }
    }
    let _ = child.wait().await;
    // Whatever was already on its way to Bob.
    while let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(500), bob.recv()).await {
        if m.name() == "message"
            && m.has_child("body", NS_CLIENT)
            && let Some(id) = stanza_id(&m, &r)
        {
            received.push(id);
        }
    }
    let alice = sender.await.expect("sender");
    alice.close().await;
    bob.close().await;

    let _child = run_binary(&config);
    let mut carol = join_when_up(&prosody, "alice", &r, "Alice2").await;
    let mut archived = HashSet::new();
    let mut after = String::new();
    loop {
        let (page, fin) = mam(&mut carol, &r, "", &format!("<max>500</max>{after}"), "")
            .await
            .expect("page");
        archived.extend(page.into_iter().map(|p| p.0));
        if complete(&fin) {
            break;
        }
        after = format!("<after>{}</after>", rsm_text(&fin, "last").expect("last"));
    }
    let missing: Vec<&String> = received
        .iter()
        .filter(|id| !archived.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} received messages are not archived",
        missing.len(),
        received.len()
    );
    carol.close().await;
}

fn r_of() -> String {
    room("blast")
}

#[tokio::test]
async fn retention_deletes_what_is_older_than_archive_expires_after() {
    let svc = Service::start(&["alice"], "archive_expires_after = 1\n").await;
    let r = room("fleeting");
    let mut alice = svc.user("alice").await;
    join(&mut alice, &r, "Alice").await;
    say(&mut alice, &r, "e1", "soon gone").await;
    let (page, _) = mam(&mut alice, &r, "", "", "").await.expect("archive");
    assert_eq!(page.len(), 1);
    let deadline = tokio::time::Instant::now() + T;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (page, _) = mam(&mut alice, &r, "", "", "").await.expect("archive");
        if page.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still archived after {T:?}"
        );
    }
    alice.close().await;
}
