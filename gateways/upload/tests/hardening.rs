//! The HTTP listener against clients that misbehave or idle: sockets
//! that say nothing, PUTs whose body never comes, huge Range headers,
//! keep-alive clients after a refusal, tokens used after their file was
//! deleted. Small limits keep each test to seconds; every wait has a
//! generous margin.

mod common;

use std::time::{Duration, Instant};

use common::{get, put, slot, start};
use hmac::{Hmac, Mac as _};
use satellite::assert_stanza_error;
use satellite::testing::{MockLink, stanza};
use satellite::xmpp::stanza_error::DefinedCondition;
use satellite_harness::http::{self, Body, Connection, Keep};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const NS: &str = "urn:xmpp:http:upload:0";
const COMMANDS: &str = "http://jabber.org/protocol/commands";
const T: Duration = Duration::from_secs(10);

/// Whether the server closed `tcp` within `within` (reading and
/// dropping what it sends).
async fn closed(tcp: &mut TcpStream, within: Duration) -> bool {
    let mut scratch = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match tcp.read(&mut scratch).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn sockets_that_say_nothing_are_dropped_and_others_get_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, component, base) = start(
        dir.path(),
        "max_connections = 16\nheader_timeout = 2",
        |_| {},
    )
    .await;
    let authority = base.trim_start_matches("http://").trim_end_matches('/');
    // Sixteen hold every place: silent, half an HTTP/2 preface, half a
    // request line.
    let mut holders = Vec::new();
    for i in 0..16 {
        let mut tcp = TcpStream::connect(authority).await.expect("connect");
        match i % 3 {
            0 => {}
            1 => tcp.write_all(b"PRI * HTTP/2.0\r\n").await.expect("write"),
            _ => tcp.write_all(b"GET / HT").await.expect("write"),
        }
        holders.push(tcp);
    }
    // Give the server time to accept all sixteen before the next four.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..4 {
        let mut tcp = TcpStream::connect(authority).await.expect("connect");
        let mut response = Vec::new();
        let _ = tokio::time::timeout(T, tcp.read_to_end(&mut response)).await;
        let text = String::from_utf8_lossy(&response);
        assert!(text.starts_with("HTTP/1.1 503"), "over the cap: {text:?}");
    }
    // Every holder is dropped after header_timeout (2 s), not idle_timeout
    // (60 s) or never.
    let started = Instant::now();
    for tcp in &mut holders {
        assert!(
            closed(tcp, Duration::from_secs(10)).await,
            "a socket without a request is dropped"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(15));
    let r = get(&base, &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    component.stop().await;
}

#[tokio::test]
async fn a_stalled_tls_handshake_is_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (scripts/install-deps.sh installs it)");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let tls = format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\nheader_timeout = 1",
        cert.display(),
        key.display()
    );
    let (_server, component, base) = start(dir.path(), &tls, |_| {}).await;
    let authority = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut silent = TcpStream::connect(&authority).await.expect("connect");
    // A TLS record header announcing a ClientHello that never comes.
    let mut partial = TcpStream::connect(&authority).await.expect("connect");
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .expect("write");
    for tcp in [&mut silent, &mut partial] {
        assert!(
            closed(tcp, Duration::from_secs(10)).await,
            "a TLS handshake that stalls is dropped after header_timeout"
        );
    }
    component.stop().await;
}

#[tokio::test]
async fn every_connection_over_the_cap_gets_a_503_from_a_bounded_number_of_tasks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, component, base) = start(
        dir.path(),
        "max_connections = 1\nheader_timeout = 20",
        |_| {},
    )
    .await;
    let authority = base.trim_start_matches("http://").trim_end_matches('/');
    let _holder = TcpStream::connect(authority).await.expect("connect");
    tokio::time::sleep(Duration::from_millis(200)).await;
    // More than the 64 refusing tasks, all at once, none closing its end:
    // those past the 64 get their 503 without a task.
    let mut refused = Vec::new();
    for _ in 0..100 {
        refused.push(TcpStream::connect(authority).await.expect("connect"));
    }
    for tcp in &mut refused {
        let mut head = [0u8; 12];
        tokio::time::timeout(T, tcp.read_exact(&mut head))
            .await
            .expect("a 503 in time")
            .expect("a 503");
        assert_eq!(&head, b"HTTP/1.1 503");
    }
    component.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, component, base) = start(dir.path(), "header_timeout = 1", |_| {}).await;
    let mut conn = Connection::open(&base).await.expect("connect");
    let r = conn.request("GET", &base, &[], b"", T).await.expect("GET");
    assert_eq!(r.status, 200);
    assert!(
        conn.closed_by_server(Duration::from_secs(10)).await,
        "closed after header_timeout without a next request"
    );
    component.stop().await;
}

#[tokio::test]
async fn a_put_whose_body_never_comes_holds_no_writer_and_times_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut server, component, base) =
        start(dir.path(), "idle_timeout = 1\nmax_uploads = 2", |_| {}).await;
    let mut stalled = Vec::new();
    for i in 0..6 {
        let (put_url, _) = slot(&mut server, &format!("s{i}"), "filename='a.bin' size='1'").await;
        let mut conn = Connection::open(&put_url).await.expect("connect");
        conn.send_head("PUT", &put_url, &[], Some(1))
            .await
            .expect("head");
        stalled.push(conn);
    }
    // Six PUTs wait for their body (more than max_uploads): no partial
    // file, so no writer thread, and the service answers others.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let partials = std::fs::read_dir(dir.path().join("partial"))
        .expect("partial dir")
        .count();
    assert_eq!(partials, 0, "no writer before the first byte");
    assert_eq!(get(&base, &[]).await.status, 200);
    for conn in &mut stalled {
        let r = conn.response("PUT", T).await.expect("response");
        assert_eq!(r.status, 408, "{r:?}");
        assert_eq!(r.header("connection"), Some("close"), "{r:?}");
    }
    component.stop().await;
}

#[tokio::test]
async fn uploads_past_max_uploads_wait_then_get_503() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut server, component, _base) =
        start(dir.path(), "idle_timeout = 2\nmax_uploads = 2", |_| {}).await;
    // Two uploads trickle their bodies (a byte every 200 ms, 6 s in all)
    // and hold the two places while the third waits its 2 s.
    let mut holders = Vec::new();
    for i in 0..2 {
        let (put_url, get_url) = slot(
            &mut server,
            &format!("h{i}"),
            "filename='slow.bin' size='30'",
        )
        .await;
        let mut conn = Connection::open(&put_url).await.expect("connect");
        conn.send_head("PUT", &put_url, &[], Some(30))
            .await
            .expect("head");
        holders.push(tokio::spawn(async move {
            for _ in 0..30 {
                conn.send(b"x").await.expect("byte");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            (conn.response("PUT", T).await.expect("response"), get_url)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (put_url, _) = slot(&mut server, "third", "filename='c.bin' size='4'").await;
    let mut conn = Connection::open(&put_url).await.expect("connect");
    conn.send_head("PUT", &put_url, &[], Some(4))
        .await
        .expect("head");
    conn.send(b"ab").await.expect("half");
    let r = conn.response("PUT", T).await.expect("response");
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.header("retry-after"), Some("5"));
    assert_eq!(r.header("connection"), Some("close"));
    for holder in holders {
        let (r, get_url) = holder.await.expect("holder");
        assert_eq!(r.status, 201, "{r:?}");
        assert_eq!(get(&get_url, &[]).await.body, vec![b'x'; 30]);
    }
    // The places are free again.
    let (put_url, _) = slot(&mut server, "fourth", "filename='d.bin' size='4'").await;
    assert_eq!(put(&put_url, &[], b"abcd").await.status, 201);
    component.stop().await;
}

#[tokio::test]
async fn a_range_of_many_parts_is_answered_at_once_and_edge_ranges_follow_rfc_9110() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut server, component, _base) =
        start(dir.path(), "max_header_size = 1048576", |_| {}).await;
    let size = 300 * 1024;
    let (put_url, get_url) = slot(
        &mut server,
        "big",
        &format!("filename='big.bin' size='{size}'"),
    )
    .await;
    let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    assert_eq!(put(&put_url, &[], &body).await.status, 201);

    let parts: Vec<String> = (0..60_000).map(|i| format!("{i}-{i}")).collect();
    let range = format!("bytes={}", parts.join(","));
    let started = Instant::now();
    let r = get(&get_url, &[("Range", &range)]).await;
    assert_eq!((r.status, r.body.len()), (200, size), "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    // Reversed: invalid, so ignored (not 416).
    let r = get(&get_url, &[("Range", "bytes=500-100")]).await;
    assert_eq!((r.status, r.body.len()), (200, size), "{r:?}");
    let r = get(&get_url, &[("Range", "bytes=100-101")]).await;
    assert_eq!((r.status, r.body.as_slice()), (206, &body[100..102]));

    // An empty file: `bytes=0-` gets the whole (empty) file, not a 206
    // promising a byte.
    let (put_url, get_url) = slot(&mut server, "empty", "filename='empty.txt' size='0'").await;
    assert_eq!(put(&put_url, &[], b"").await.status, 201);
    let r = get(&get_url, &[("Range", "bytes=0-")]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-length"), Some("0"));
    assert_eq!(r.header("content-range"), None);
    component.stop().await;
}

#[tokio::test]
async fn request_heads_are_capped_by_max_header_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, component, base) = start(dir.path(), "", |_| {}).await;
    // The default cap is 64 KiB; a 700 KB Range header is refused unread.
    let range = format!("bytes={}", "0-0,".repeat(175_000));
    let r = http::request("GET", &base, &[("Range", &range)], Body::None, Keep::All, T).await;
    match r {
        Ok(r) => assert_eq!(r.status, 431, "{r:?}"),
        // Or the connection closes while the client still sends.
        Err(e) => assert_ne!(e.kind(), std::io::ErrorKind::TimedOut, "{e}"),
    }
    assert_eq!(get(&base, &[("X-Small", "ok")]).await.status, 200);
    component.stop().await;
}

#[tokio::test]
async fn a_slot_without_a_type_takes_only_allowed_types() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut server, component, _base) = start(
        dir.path(),
        "allowed_types = [\"image/*\", \"application/octet-stream\"]",
        |_| {},
    )
    .await;
    let (put_url, get_url) = slot(&mut server, "s1", "filename='x' size='5'").await;
    let r = put(&put_url, &[("Content-Type", "text/html")], b"<b>x!").await;
    assert_eq!(r.status, 415, "{r:?}");
    assert_eq!(get(&get_url, &[]).await.status, 404);
    let r = put(&put_url, &[("Content-Type", "image/png")], b"\x89PNG!").await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(
        get(&get_url, &[]).await.header("content-type"),
        Some("image/png")
    );
    component.stop().await;
}

/// Deletes the file at `get_url` with the admins' `delete` command.
async fn admin_delete(server: &mut MockLink, get_url: &str) {
    let command = |id: &str, inner: String| {
        stanza(&format!(
            "<iq type='set' id='{id}' from='boss@test/r' to='svc.test'>{inner}</iq>"
        ))
    };
    let reply = server
        .iq(command(
            "d1",
            format!("<command xmlns='{COMMANDS}' node='delete' action='execute'/>"),
        ))
        .await;
    let session = reply
        .get_child("command", COMMANDS)
        .and_then(|c| c.attr("sessionid"))
        .expect("session")
        .to_owned();
    let reply = server
        .iq(command(
            "d2",
            format!(
                "<command xmlns='{COMMANDS}' node='delete' sessionid='{session}' action='complete'>\
                 <x xmlns='jabber:x:data' type='submit'><field var='url'><value>{get_url}</value></field></x></command>"
            ),
        ))
        .await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
}

#[tokio::test]
async fn a_deleted_file_is_not_uploaded_again_with_its_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut server, component, _base) = start(dir.path(), "", |_| {}).await;
    let (put_url, get_url) = slot(&mut server, "s1", "filename='bad.txt' size='3'").await;
    assert_eq!(put(&put_url, &[], b"bad").await.status, 201);
    admin_delete(&mut server, &get_url).await;
    let r = put(&put_url, &[], b"bad").await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(get(&get_url, &[]).await.status, 404);
    component.stop().await;
}

/// mod_http_upload_external's `v2` token for `path` (below the public
/// URL), `size` and `ty`.
fn v2(secret: &str, path: &str, size: u64, ty: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{path}\0{size}\0{ty}").as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn server_slots_upload_once_within_the_services_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = "external-secret-0123";
    let (mut server, component, base) = start(
        dir.path(),
        &format!("external_secret = \"{secret}\"\nmax_file_size = 100"),
        |_| {},
    )
    .await;
    let path = "6ed3b1b4-4f2b-4e2c-9f5e-0c5b1e9a3d21/notes.txt";
    let url = |size, ty| format!("{base}{path}?v2={}", v2(secret, path, size, ty));
    let text = [("Content-Type", "text/plain")];
    assert_eq!(
        put(&url(11, "text/plain"), &text, b"hello world")
            .await
            .status,
        201
    );
    assert_eq!(
        put(&url(11, "text/plain"), &text, b"hello world")
            .await
            .status,
        409
    );
    admin_delete(&mut server, &format!("{base}{path}")).await;
    let r = put(&url(11, "text/plain"), &text, b"hello world").await;
    assert_eq!(r.status, 409, "a server slot's token uploads once: {r:?}");

    // max_file_size applies to the server's slots too.
    let big = "7ed3b1b4-4f2b-4e2c-9f5e-0c5b1e9a3d21/big.bin";
    let body = vec![0u8; 101];
    let r = put(
        &format!(
            "{base}{big}?v2={}",
            v2(secret, big, 101, "application/octet-stream")
        ),
        &[],
        &body,
    )
    .await;
    assert_eq!(r.status, 413, "{r:?}");
    component.stop().await;

    // And so does min_free_space.
    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, component, base) = start(
        dir.path(),
        &format!("external_secret = \"{secret}\""),
        |s| s.min_free_space = u64::MAX / 2,
    )
    .await;
    let r = put(
        &format!("{base}{path}?v2={}", v2(secret, path, 11, "text/plain")),
        &text,
        b"hello world",
    )
    .await;
    assert_eq!(r.status, 507, "{r:?}");
    component.stop().await;
}

#[tokio::test]
async fn open_slots_are_capped_per_user() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut server, component, _base) = start(dir.path(), "max_open_slots = 3", |_| {}).await;
    for i in 0..3 {
        slot(&mut server, &format!("z{i}"), "filename='zero' size='0'").await;
    }
    let reply = server
        .iq(stanza(&format!(
            "<iq type='get' id='z3' from='user@test/r' to='svc.test'><request xmlns='{NS}' filename='zero' size='0'/></iq>"
        )))
        .await;
    assert_stanza_error!(reply, DefinedCondition::ResourceConstraint);
    component.stop().await;
}

#[tokio::test]
async fn a_keep_alive_client_goes_on_after_a_refused_put() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut server, component, _base) = start(dir.path(), "", |_| {}).await;
    let (put_url, get_url) = slot(&mut server, "s1", "filename='a.txt' size='5'").await;
    let bare = put_url.split('?').next().expect("path").to_owned();

    // Refused before its body is read: the small body is read anyway, and
    // the connection carries the next request.
    let mut conn = Connection::open(&put_url).await.expect("connect");
    let r = conn
        .request("PUT", &bare, &[], b"hello", T)
        .await
        .expect("first PUT");
    assert_eq!(r.status, 401, "{r:?}");
    assert_ne!(r.header("connection"), Some("close"), "{r:?}");
    let r = conn
        .request("PUT", &put_url, &[], b"hello", T)
        .await
        .expect("second PUT on the same connection");
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(get(&get_url, &[]).await.body, b"hello");

    // A large refused body: `Connection: close`, and the client reads the
    // whole answer while it is still sending (no reset).
    let (put_url, _) = slot(&mut server, "s2", "filename='b.bin' size='8388608'").await;
    let bare = put_url.split('?').next().expect("path").to_owned();
    let mut conn = Connection::open(&put_url).await.expect("connect");
    let body = vec![b'x'; 8 * 1024 * 1024];
    let r = conn
        .request("PUT", &bare, &[], &body, T)
        .await
        .expect("the refusal is read, not reset");
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
    component.stop().await;
}
