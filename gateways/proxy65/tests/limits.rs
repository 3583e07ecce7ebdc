//! Anonymous SOCKS5 clients against the proxy's limits: connections per
//! address, and `max_sessions` taken only by activated bytestreams (two
//! connections with a made-up hash hold no session).

use std::net::SocketAddr;
use std::time::Duration;

use satellite::assert_stanza_error;
use satellite::jid::BareJid;
use satellite::testing::{self, JID, MockLink, stanza};
use satellite::xmpp::stanza_error::DefinedCondition;
use satellite_proxy65::socks5::stream_hash;
use satellite_proxy65::{Proxy65, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const NS: &str = "http://jabber.org/protocol/bytestreams";

async fn spawn(tune: impl FnOnce(&mut Settings)) -> (MockLink, testing::Running, SocketAddr) {
    let listen = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let mut s = Settings::defaults(&BareJid::new(JID).expect("jid"));
    s.listen = listen;
    s.activation_timeout = Duration::from_secs(20);
    tune(&mut s);
    let (server, component) = testing::spawn(|b| b.plugin(Proxy65::new(s))).await;
    for _ in 0..100 {
        if let Ok(probe) = TcpStream::connect(listen).await {
            drop(probe);
            // The probe's own unit goes back when its task sees it closed.
            tokio::time::sleep(Duration::from_millis(50)).await;
            return (server, component, listen);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("listener not up");
}

/// Connects and sends the handshake for `hash`; returns the socket and the
/// reply code.
async fn socks(addr: SocketAddr, hash: &str) -> (TcpStream, u8) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut hello = vec![5, 1, 0, 5, 1, 0, 3, 40];
    hello.extend_from_slice(hash.as_bytes());
    hello.extend_from_slice(&[0, 0]);
    s.write_all(&hello).await.expect("write");
    let mut head = [0u8; 2 + 4];
    s.read_exact(&mut head).await.expect("reply");
    assert_eq!(&head[..2], &[5, 0], "method reply");
    // The rest of the reply: a domain name (success) or an IPv4 address.
    let rest = if head[5] == 3 { 1 + 40 + 2 } else { 4 + 2 };
    let mut tail = vec![0u8; rest];
    s.read_exact(&mut tail).await.expect("reply tail");
    (s, head[3])
}

fn made_up(i: u32) -> String {
    format!("{i:040x}")
}

#[tokio::test]
async fn one_address_cannot_hold_every_connection() {
    let (_server, component, listen) = spawn(|s| s.max_connections_per_address = 3).await;
    let mut held = Vec::new();
    for i in 0..3 {
        let (conn, rep) = socks(listen, &made_up(i)).await;
        assert_eq!(rep, 0, "connection {i}");
        held.push(conn);
    }
    let (_refused, rep) = socks(listen, &made_up(3)).await;
    assert_eq!(rep, 1, "the fourth from 127.0.0.1 is refused");
    // One leaves; its place is free again.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_again, rep) = socks(listen, &made_up(4)).await;
    assert_eq!(rep, 0);
    component.stop().await;
}

#[tokio::test]
async fn made_up_pairs_take_no_session() {
    let (mut server, component, listen) = spawn(|s| s.max_sessions = 1).await;
    // Two connections with a made-up hash: both accepted, no session taken.
    let (_a, rep_a) = socks(listen, &made_up(1)).await;
    let (_b, rep_b) = socks(listen, &made_up(1)).await;
    assert_eq!((rep_a, rep_b), (0, 0));
    // The real bytestream pairs and activates with the one session.
    let activate = |id: &str, sid: &str| {
        stanza(&format!(
            "<iq type='set' id='{id}' to='{JID}' from='u@test/r'><query xmlns='{NS}' sid='{sid}'><activate>v@test/t</activate></query></iq>"
        ))
    };
    let hash = stream_hash("s1", "u@test/r", "v@test/t");
    let (mut target, rep_t) = socks(listen, &hash).await;
    let (mut initiator, rep_i) = socks(listen, &hash).await;
    assert_eq!((rep_t, rep_i), (0, 0), "the real pair connects");
    let ok = server.iq(activate("a1", "s1")).await;
    assert_eq!(ok.attr("type"), Some("result"), "{ok:?}");
    // A second real bytestream now finds the session taken.
    let other = stream_hash("s2", "u@test/r", "v@test/t");
    let (_c, _) = socks(listen, &other).await;
    let (_d, _) = socks(listen, &other).await;
    assert_stanza_error!(
        server.iq(activate("a2", "s2")).await,
        DefinedCondition::ResourceConstraint
    );
    initiator.write_all(b"ok").await.expect("send");
    initiator.shutdown().await.expect("half-close");
    let mut got = Vec::new();
    target.read_to_end(&mut got).await.expect("receive");
    assert_eq!(got, b"ok");
    component.stop().await;
}
