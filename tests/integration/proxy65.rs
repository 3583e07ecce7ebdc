//! The XEP-0065 proxy (gateways/proxy65) against a real Prosody: real
//! slixmpp clients do the XMPP side (streamhost query, the offer to the
//! target, activation); the SOCKS5 sides are plain TCP streams here.

use std::time::{Duration, Instant};

use satellite::Element;
use satellite_proxy65::Proxy65;
use satellite_proxy65::socks5::stream_hash;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::in_process::InProcess;
use crate::support::{Client, Prosody, free_port, port_open};

const PROXY: &str = "proxy.localhost";
const SECRET: &str = "proxy65-secret-0123";
const NS: &str = "http://jabber.org/protocol/bytestreams";
const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
const T: Duration = Duration::from_secs(10);

/// A proxy65 component running in-process against a Prosody.
struct Proxy {
    /// Its SOCKS5 port on 127.0.0.1.
    port: u16,
    component: InProcess,
}

impl Proxy {
    /// Starts the component with extra `[component.settings]` lines and
    /// waits until its link is up and its listener accepts.
    async fn start(prosody: &Prosody, settings: &str) -> Proxy {
        let port = free_port();
        let text = format!(
            "[[component]]\nservice = \"proxy65\"\njid = \"{PROXY}\"\nserver = \"127.0.0.1:{}\"\nsecret = \"{SECRET}\"\n\
             [component.settings]\nlisten = \"127.0.0.1:{port}\"\n{settings}\n",
            prosody.component_port
        );
        let component =
            InProcess::start(&text, |c| Proxy65::from_config(c).expect("settings")).await;
        let deadline = Instant::now() + T;
        while !port_open(port).await {
            assert!(Instant::now() < deadline, "SOCKS5 listener not up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Proxy { port, component }
    }

    async fn stop(self) {
        self.component.stop().await;
    }
}

const USERS: &[(&str, &str)] = &[
    ("alice", "alice-pw"),
    ("bob", "bob-pw"),
    ("carol", "carol-pw"),
];

async fn setup(settings: &str) -> (Prosody, Proxy, Client, Client) {
    let prosody = Prosody::start(&[(PROXY, SECRET)], USERS, "").await;
    let proxy = Proxy::start(&prosody, settings).await;
    let (alice, bob) = tokio::join!(
        Client::connect(prosody.c2s_port, "alice@localhost", "alice-pw"),
        Client::connect(prosody.c2s_port, "bob@localhost", "bob-pw"),
    );
    (prosody, proxy, alice, bob)
}

fn condition(reply: &Element) -> Option<String> {
    let error = reply.get_child("error", "jabber:client")?;
    error
        .children()
        .find(|c| c.ns() == STANZAS && c.name() != "text")
        .map(|c| c.name().to_owned())
}

/// `iq set` activation from `who`.
async fn activate(who: &mut Client, id: &str, sid: &str, target: &str) -> Element {
    who.iq(&format!(
        "<iq type='set' id='{id}' to='{PROXY}'><query xmlns='{NS}' sid='{sid}'><activate>{target}</activate></query></iq>"
    ))
    .await
}

fn assert_error(reply: &Element, expected: &str) {
    assert_eq!(reply.attr("type"), Some("error"), "{reply:?}");
    assert_eq!(condition(reply).as_deref(), Some(expected), "{reply:?}");
}

fn assert_result(reply: &Element) {
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
}

/// A SOCKS5 CONNECT for `hash`: greeting and request in one segment, or
/// split into small pieces. Returns the stream and the reply code.
async fn socks(port: u16, hash: &str, split: bool) -> (TcpStream, u8) {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let mut hello = vec![5, 1, 0, 5, 1, 0, 3, hash.len() as u8];
    hello.extend_from_slice(hash.as_bytes());
    hello.extend_from_slice(&[0, 0]);
    if split {
        for piece in [
            &hello[..1],
            &hello[1..3],
            &hello[3..9],
            &hello[9..30],
            &hello[30..],
        ] {
            s.write_all(piece).await.expect("write");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    } else {
        s.write_all(&hello).await.expect("write");
    }
    let mut method = [0u8; 2];
    s.read_exact(&mut method).await.expect("method reply");
    assert_eq!(method, [5, 0]);
    let mut head = [0u8; 4];
    s.read_exact(&mut head).await.expect("reply");
    assert_eq!(head[0], 5);
    // Rest of the reply: a domain (len + name) or an IPv4 address, + port.
    let rest = if head[3] == 3 {
        let mut len = [0u8; 1];
        s.read_exact(&mut len).await.expect("len");
        usize::from(len[0]) + 2
    } else {
        6
    };
    let mut tail = vec![0u8; rest];
    s.read_exact(&mut tail).await.expect("reply tail");
    (s, head[1])
}

async fn connected(port: u16, hash: &str, split: bool) -> TcpStream {
    let (s, rep) = socks(port, hash, split).await;
    assert_eq!(rep, 0, "SOCKS5 reply for {hash}");
    s
}

fn data(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn sha1_hex(bytes: &[u8]) -> String {
    Sha1::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Sends `payload` from `from` to `to` through an activated bytestream,
/// half-closing after it, and checks what arrives by hash. Returns the
/// seconds the transfer took.
async fn transfer(mut from: TcpStream, mut to: TcpStream, payload: Vec<u8>) -> f64 {
    let started = Instant::now();
    let expected = sha1_hex(&payload);
    let len = payload.len();
    let writer = tokio::spawn(async move {
        from.write_all(&payload).await.expect("send");
        from.shutdown().await.expect("half-close");
        from
    });
    let mut got = Vec::with_capacity(len);
    tokio::time::timeout(T, to.read_to_end(&mut got))
        .await
        .expect("transfer in time")
        .expect("receive");
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(got.len(), len, "bytes received");
    assert_eq!(sha1_hex(&got), expected, "content hash");
    let _from = writer.await.expect("writer");
    secs
}

/// Reads until EOF; how long that took (panics after `limit`).
async fn closed_within(s: &mut TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut sink = Vec::new();
    tokio::time::timeout(limit, s.read_to_end(&mut sink))
        .await
        .expect("closed by the proxy in time")
        .ok();
    started.elapsed()
}

#[tokio::test]
async fn transfers_in_both_orders_with_real_clients() {
    let (_prosody, proxy, mut alice, mut bob) =
        setup("[[component.settings.streamhost]]\nhost = \"127.0.0.1\"\n[[component.settings.streamhost]]\nhost = \"localhost\"\n").await;

    // disco#info: proxy/bytestreams and the feature.
    let info = alice
        .iq(&format!(
            "<iq type='get' id='d1' to='{PROXY}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        ))
        .await;
    let query = info
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .unwrap_or_else(|| panic!("disco result: {info:?}"));
    assert!(query.children().any(|c| c.name() == "identity"
        && c.attr("category") == Some("proxy")
        && c.attr("type") == Some("bytestreams")));
    assert!(
        query
            .children()
            .any(|c| c.name() == "feature" && c.attr("var") == Some(NS))
    );

    // Streamhost query: one <streamhost/> per advertised address.
    let hosts = alice
        .iq(&format!(
            "<iq type='get' id='q1' to='{PROXY}'><query xmlns='{NS}'/></iq>"
        ))
        .await;
    let port = proxy.port.to_string();
    let offered: Vec<(String, String)> = hosts
        .get_child("query", NS)
        .unwrap_or_else(|| panic!("streamhosts: {hosts:?}"))
        .children()
        .filter(|c| c.name() == "streamhost")
        .map(|c| {
            assert_eq!(c.attr("jid"), Some(PROXY));
            assert_eq!(c.attr("port"), Some(port.as_str()));
            (
                c.attr("host").unwrap_or("").to_owned(),
                c.attr("port").unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        offered.iter().map(|(h, _)| h.as_str()).collect::<Vec<_>>(),
        ["127.0.0.1", "localhost"]
    );

    // The XEP's flow: alice offers the proxy to bob through the server, bob
    // connects first and says which host he used, alice connects and
    // activates. Greeting and request each in one segment.
    let sid = "sid-target-first";
    let streamhosts: String = offered
        .iter()
        .map(|(h, p)| format!("<streamhost jid='{PROXY}' host='{h}' port='{p}'/>"))
        .collect();
    alice
        .send_raw(&format!(
            "<iq type='set' id='o1' to='{}'><query xmlns='{NS}' sid='{sid}' mode='tcp'>{streamhosts}</query></iq>",
            bob.jid
        ))
        .await;
    let offer = bob
        .recv_matching(|e| e.name() == "iq" && e.attr("id") == Some("o1"), T)
        .await;
    assert_eq!(offer.attr("from"), Some(alice.jid.as_str()));
    let hash = stream_hash(sid, &alice.jid, &bob.jid);
    let target = connected(proxy.port, &hash, false).await;
    bob.send_raw(&format!(
        "<iq type='result' id='o1' to='{}'><query xmlns='{NS}' sid='{sid}'><streamhost-used jid='{PROXY}'/></query></iq>",
        alice.jid
    ))
    .await;
    let used = alice.iq_reply("o1").await;
    assert_result(&used);
    let initiator = connected(proxy.port, &hash, false).await;
    assert_result(&activate(&mut alice, "a1", sid, &bob.jid.clone()).await);
    transfer(initiator, target, data(1 << 20, 1)).await;

    // Initiator first, handshakes split over many segments; then the
    // target answers back on the same bytestream after the half-close.
    let sid = "sid-initiator-first";
    let hash = stream_hash(sid, &alice.jid, &bob.jid);
    let mut initiator = connected(proxy.port, &hash, true).await;
    let mut target = connected(proxy.port, &hash, true).await;
    assert_result(&activate(&mut alice, "a2", sid, &bob.jid.clone()).await);
    initiator.write_all(b"ping").await.expect("send");
    initiator.shutdown().await.expect("half-close");
    let mut got = Vec::new();
    target.read_to_end(&mut got).await.expect("receive");
    assert_eq!(got, b"ping");
    let reply = data(300_000, 2);
    target.write_all(&reply).await.expect("answer");
    target.shutdown().await.expect("close");
    let mut back = Vec::new();
    initiator
        .read_to_end(&mut back)
        .await
        .expect("answer arrives");
    assert_eq!(sha1_hex(&back), sha1_hex(&reply));
    proxy.stop().await;
}

#[tokio::test]
async fn activation_errors_follow_xep_0065() {
    let (prosody, proxy, mut alice, mut bob) = setup("activation_timeout = 1\n").await;
    let mut carol = Client::connect(prosody.c2s_port, "carol@localhost", "carol-pw").await;
    let bob_jid = bob.jid.clone();

    // Unknown stream: nobody connected with this hash.
    assert_error(
        &activate(&mut alice, "e1", "nobody", &bob_jid).await,
        "item-not-found",
    );

    // Only one side connected.
    let sid = "s-one-side";
    let hash = stream_hash(sid, &alice.jid, &bob_jid);
    let mut lonely = connected(proxy.port, &hash, false).await;
    assert_error(
        &activate(&mut alice, "e2", sid, &bob_jid).await,
        "not-allowed",
    );

    // A target with a wrong hash (computed with the wrong requester) never
    // pairs; the activation still sees one side, and both connections are
    // closed by the activation timeout.
    let mut wrong = connected(proxy.port, &stream_hash(sid, &bob_jid, &bob_jid), false).await;
    assert_error(
        &activate(&mut alice, "e3", sid, &bob_jid).await,
        "not-allowed",
    );
    closed_within(&mut lonely, Duration::from_secs(3)).await;
    closed_within(&mut wrong, Duration::from_secs(3)).await;

    // A third user cannot activate alice's bytestream (her hash is not
    // carol's); alice still can, once; a second activation is a conflict.
    let sid = "s-third";
    let hash = stream_hash(sid, &alice.jid, &bob_jid);
    let target = connected(proxy.port, &hash, false).await;
    let initiator = connected(proxy.port, &hash, false).await;
    assert_error(
        &activate(&mut carol, "e4", sid, &bob_jid).await,
        "item-not-found",
    );
    assert_error(
        &activate(&mut bob, "e5", sid, &bob_jid).await,
        "item-not-found",
    );
    assert_result(&activate(&mut alice, "e6", sid, &bob_jid).await);
    assert_error(&activate(&mut alice, "e7", sid, &bob_jid).await, "conflict");
    transfer(initiator, target, data(100_000, 3)).await;

    // Malformed requests.
    let r = alice
        .iq(&format!(
            "<iq type='set' id='e8' to='{PROXY}'><query xmlns='{NS}' sid='x'/></iq>"
        ))
        .await;
    assert_error(&r, "bad-request");
    assert_error(
        &activate(&mut alice, "e9", "x", "@@bad").await,
        "jid-malformed",
    );

    // SOCKS5: an address that is not a stream hash is refused (0x02).
    let (_s, rep) = socks(proxy.port, "not-a-hash", false).await;
    assert_eq!(rep, 2);
    proxy.stop().await;
}

#[tokio::test]
async fn timeout_and_connection_caps() {
    let (_prosody, proxy, mut alice, bob) =
        setup("activation_timeout = 2\nmax_connections = 4\nmax_connections_per_jid = 1\n").await;

    // An unactivated connection is closed after the activation timeout.
    let mut waiting = connected(
        proxy.port,
        &stream_hash("s-timeout", &alice.jid, &bob.jid),
        false,
    )
    .await;
    let waited = closed_within(&mut waiting, Duration::from_secs(5)).await;
    assert!(
        waited >= Duration::from_millis(1700),
        "closed too early: {waited:?}"
    );

    // Per JID: alice may have one active bytestream at a time.
    let h1 = stream_hash("s-cap-1", &alice.jid, &bob.jid);
    let (t1, i1) = (
        connected(proxy.port, &h1, false).await,
        connected(proxy.port, &h1, false).await,
    );
    assert_result(&activate(&mut alice, "c1", "s-cap-1", &bob.jid).await);
    let h2 = stream_hash("s-cap-2", &alice.jid, &bob.jid);
    let (_t2, _i2) = (
        connected(proxy.port, &h2, false).await,
        connected(proxy.port, &h2, false).await,
    );
    assert_error(
        &activate(&mut alice, "c2", "s-cap-2", &bob.jid).await,
        "resource-constraint",
    );

    // In total: four connections are open; a fifth gets a SOCKS5 failure
    // reply (0x01), not a hang.
    let (_fifth, rep) = tokio::time::timeout(
        T,
        socks(
            proxy.port,
            &stream_hash("s-cap-3", &alice.jid, &bob.jid),
            false,
        ),
    )
    .await
    .expect("refused in time");
    assert_eq!(rep, 1);
    transfer(i1, t1, data(10_000, 4)).await;
    proxy.stop().await;
}

#[tokio::test]
async fn bandwidth_cap_is_observed() {
    const RATE: f64 = 1_000_000.0;
    let (_prosody, proxy, mut alice, bob) = setup("session_rate = 1000000\n").await;
    let hash = stream_hash("s-rate", &alice.jid, &bob.jid);
    let target = connected(proxy.port, &hash, false).await;
    let initiator = connected(proxy.port, &hash, false).await;
    assert_result(&activate(&mut alice, "r1", "s-rate", &bob.jid).await);
    let len = 400_000;
    let secs = transfer(initiator, target, data(len, 5)).await;
    let rate = len as f64 / secs;
    assert!(rate <= RATE * 1.02, "{rate:.0} B/s is above the 1 MB/s cap");
    assert!(
        rate >= RATE * 0.6,
        "{rate:.0} B/s is far below the 1 MB/s cap"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn twenty_concurrent_transfers_are_intact() {
    // 40 connections from one address wait for activation at once: above
    // the default per-address cap (20), which its own test covers.
    let (_prosody, proxy, mut alice, bob) = setup("max_connections_per_address = 64\n").await;
    let mut pairs = Vec::new();
    for i in 0..20 {
        let sid = format!("s-many-{i}");
        let hash = stream_hash(&sid, &alice.jid, &bob.jid);
        let target = connected(proxy.port, &hash, i % 2 == 0).await;
        let initiator = connected(proxy.port, &hash, i % 2 == 1).await;
        pairs.push((sid, initiator, target));
    }
    let mut transfers = Vec::new();
    for (i, (sid, initiator, target)) in pairs.into_iter().enumerate() {
        assert_result(&activate(&mut alice, &format!("m{i}"), &sid, &bob.jid).await);
        transfers.push(tokio::spawn(transfer(
            initiator,
            target,
            data(512 * 1024 + i, i as u32),
        )));
    }
    for t in transfers {
        t.await.expect("transfer intact");
    }
    proxy.stop().await;
}
