//! The XMPP side of the proxy against the framework's mock server: disco,
//! the streamhost answer, the ACL and activation errors, then a SOCKS5
//! pair activated and relayed.

use std::net::SocketAddr;
use std::time::Duration;

use satellite::acl::AclEntry;
use satellite::assert_stanza_error;
use satellite::jid::BareJid;
use satellite::testing::{self, JID, stanza};
use satellite::xmpp::stanza_error::DefinedCondition;
use satellite_proxy65::config::Advertised;
use satellite_proxy65::socks5::stream_hash;
use satellite_proxy65::{Proxy65, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const NS: &str = "http://jabber.org/protocol/bytestreams";

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

fn settings(listen: SocketAddr) -> Settings {
    let mut s = Settings::defaults(&BareJid::new(JID).expect("jid"));
    s.listen = listen;
    s.advertised = vec![
        Advertised {
            host: "192.0.2.1".into(),
            port: 7777,
        },
        Advertised {
            host: "2001:db8::1".into(),
            port: 7778,
        },
    ];
    s.allow.entries.push(AclEntry::Account(
        BareJid::new("guest@elsewhere.example").expect("jid"),
    ));
    s
}

async fn socks(addr: SocketAddr, hash: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut hello = vec![5, 1, 0, 5, 1, 0, 3, 40];
    hello.extend_from_slice(hash.as_bytes());
    hello.extend_from_slice(&[0, 0]);
    s.write_all(&hello).await.expect("write");
    let mut reply = [0u8; 2 + 47];
    s.read_exact(&mut reply).await.expect("reply");
    assert_eq!(&reply[..4], &[5, 0, 5, 0]);
    s
}

#[tokio::test]
async fn disco_streamhosts_acl_and_activation() {
    let listen = free_addr();
    let (mut server, component) = testing::spawn_with(
        |mut c| {
            c.admins = vec![BareJid::new("u@test").expect("jid")];
            c
        },
        |b| b.plugin(Proxy65::new(settings(listen))),
    )
    .await;

    let info = server
        .iq(stanza(&format!(
            "<iq type='get' to='{JID}' from='u@test/r'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        )))
        .await;
    let disco = info
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .expect("disco#info result");
    assert!(
        disco.children().any(|c| c.name() == "identity"
            && c.attr("category") == Some("proxy")
            && c.attr("type") == Some("bytestreams")),
        "{info:?}"
    );
    assert!(
        disco
            .children()
            .any(|c| c.name() == "feature" && c.attr("var") == Some(NS)),
        "{info:?}"
    );

    let hosts = server
        .iq(stanza(&format!(
            "<iq type='get' to='{JID}' from='u@test/r'><query xmlns='{NS}' sid='s1'/></iq>"
        )))
        .await;
    let query = hosts.get_child("query", NS).expect("query");
    let got: Vec<_> = query
        .children()
        .map(|c| (c.attr("jid"), c.attr("host"), c.attr("port")))
        .collect();
    assert_eq!(
        got,
        [
            (Some(JID), Some("192.0.2.1"), Some("7777")),
            (Some(JID), Some("2001:db8::1"), Some("7778"))
        ]
    );

    // The ACL: another domain is refused, a listed account is not.
    for type_ in ["get", "set"] {
        let reply = server
            .iq(stanza(&format!(
                "<iq type='{type_}' to='{JID}' from='eve@evil.example/r'><query xmlns='{NS}' sid='s'><activate>u@test/r</activate></query></iq>"
            )))
            .await;
        assert_stanza_error!(reply, DefinedCondition::Forbidden);
    }
    let reply = server
        .iq(stanza(&format!(
            "<iq type='get' to='{JID}' from='guest@elsewhere.example/r'><query xmlns='{NS}'/></iq>"
        )))
        .await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");

    let activate = |id: &str, from: &str| {
        stanza(&format!(
            "<iq type='set' id='{id}' to='{JID}' from='{from}'><query xmlns='{NS}' sid='s1'><activate>v@test/t</activate></query></iq>"
        ))
    };
    assert_stanza_error!(
        server.iq(activate("a1", "u@test/r")).await,
        DefinedCondition::ItemNotFound
    );

    // Both sides connect (the listener runs once the component is up).
    let hash = stream_hash("s1", "u@test/r", "v@test/t");
    let mut target = None;
    for _ in 0..100 {
        if TcpStream::connect(listen).await.is_ok() {
            target = Some(socks(listen, &hash).await);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut target = target.expect("listener up");
    assert_stanza_error!(
        server.iq(activate("a2", "u@test/r")).await,
        DefinedCondition::NotAllowed
    );
    let mut initiator = socks(listen, &hash).await;
    // Someone else's activation has another hash; the requester's works once.
    assert_stanza_error!(
        server.iq(activate("a3", "w@test/r")).await,
        DefinedCondition::ItemNotFound
    );
    let ok = server.iq(activate("a4", "u@test/r")).await;
    assert_eq!(ok.attr("type"), Some("result"), "{ok:?}");
    assert_stanza_error!(
        server.iq(activate("a5", "u@test/r")).await,
        DefinedCondition::Conflict
    );

    initiator
        .write_all(b"hello through the proxy")
        .await
        .expect("send");
    initiator.shutdown().await.expect("half-close");
    let mut got = Vec::new();
    target.read_to_end(&mut got).await.expect("receive");
    assert_eq!(got, b"hello through the proxy");

    let missing = server
        .iq(stanza(&format!(
            "<iq type='set' to='{JID}' from='u@test/r'><query xmlns='{NS}'><activate>v@test/t</activate></query></iq>"
        )))
        .await;
    assert_stanza_error!(missing, DefinedCondition::BadRequest);

    // The admins' stats command counts what happened above.
    let stats = server
        .iq(stanza(&format!(
            "<iq type='set' to='{JID}' from='u@test/r'><command xmlns='http://jabber.org/protocol/commands' node='stats' action='execute'/></iq>"
        )))
        .await;
    let value = |var: &str| {
        let form = stats
            .get_child("command", "http://jabber.org/protocol/commands")
            .and_then(|c| c.get_child("x", "jabber:x:data"))
            .unwrap_or_else(|| panic!("stats form: {stats:?}"));
        form.children()
            .find(|f| f.attr("var") == Some(var))
            .and_then(|f| f.get_child("value", "jabber:x:data"))
            .map(|v| v.text())
            .unwrap_or_else(|| panic!("no {var} in {stats:?}"))
    };
    assert_eq!(value("bytes-relayed"), "23");
    assert_eq!(value("sessions-activated"), "1");
    assert_eq!(value("rejected-acl"), "2");
    assert_eq!(value("rejected-already-active"), "1");
    component.stop().await;
}
