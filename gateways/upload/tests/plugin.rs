//! The upload plugin against the framework's mock server: disco, slot
//! replies and refusals, and a PUT/GET round trip over its HTTP server.

mod common;

use std::path::Path;

use common::{free_port, settings};
use satellite::assert_stanza_error;
use satellite::testing::{self, stanza};
use satellite::xmpp::stanza_error::DefinedCondition;
use satellite_harness::http::{self, Body, Keep};
use satellite_upload::Upload;

const NS: &str = "urn:xmpp:http:upload:0";

fn request(id: &str, attrs: &str) -> satellite::Element {
    stanza(&format!(
        "<iq type='get' id='{id}' from='user@test/r' to='svc.test'><request xmlns='{NS}' {attrs}/></iq>"
    ))
}

#[tokio::test]
async fn slots_and_refusals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let upload = Upload::new(settings(dir.path(), free_port(), "max_file_size = 1000"));
    let (mut server, component) = testing::spawn(|b| b.plugin(upload)).await;

    let reply = server
        .iq(request(
            "s1",
            "filename='a.txt' size='5' content-type='text/plain'",
        ))
        .await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
    let slot = reply.get_child("slot", NS).expect("slot");
    let put = slot.get_child("put", NS).expect("put");
    assert!(put.attr("url").expect("url").contains("/a.txt?token="));

    let reply = server
        .iq(request("big", "filename='b.txt' size='10000000000'"))
        .await;
    assert_stanza_error!(reply, DefinedCondition::NotAcceptable);
    let reply = server
        .iq(request("neg", "filename='b.txt' size='-1'"))
        .await;
    assert_stanza_error!(reply, DefinedCondition::BadRequest);
    let reply = server
        .iq(stanza(&format!(
            "<iq type='get' id='x' from='user@elsewhere/r' to='svc.test'><request xmlns='{NS}' filename='a' size='1'/></iq>"
        )))
        .await;
    assert_stanza_error!(reply, DefinedCondition::Forbidden);
    component.stop().await;
}

/// The PUT URL, the GET URL and the put headers of a slot reply.
fn urls(reply: &satellite::Element) -> (String, String) {
    let slot = reply.get_child("slot", NS).expect("slot");
    let put = slot.get_child("put", NS).and_then(|p| p.attr("url"));
    let get = slot.get_child("get", NS).and_then(|g| g.attr("url"));
    (put.expect("put").to_owned(), get.expect("get").to_owned())
}

/// One HTTP/1.1 request over TLS, trusting only `cert`; the raw response.
async fn https(cert: &Path, url: &str, method: &str, body: &[u8]) -> String {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, ServerName};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).expect("cert") {
        roots.add(c.expect("cert")).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let rest = url.strip_prefix("https://").expect("https URL");
    let (authority, path) = rest.split_at(rest.find('/').expect("path"));
    let tcp = tokio::net::TcpStream::connect(authority)
        .await
        .expect("connect");
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake with the service");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.expect("write");
    tls.write_all(body).await.expect("write");
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn serves_https_directly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
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
        "tls_cert = \"{}\"\ntls_key = \"{}\"",
        cert.display(),
        key.display()
    );
    let upload = Upload::new(settings(dir.path(), free_port(), &tls));
    let (mut server, component) = testing::spawn(|b| b.plugin(upload)).await;

    let reply = server
        .iq(request(
            "s1",
            "filename='secure.txt' size='6' content-type='text/plain'",
        ))
        .await;
    let (put, get) = urls(&reply);
    assert!(put.starts_with("https://127.0.0.1:"), "{put}");
    let response = https(&cert, &put, "PUT", b"secret").await;
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    let response = https(&cert, &get, "GET", b"").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("\r\n\r\nsecret"), "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("strict-transport-security"),
        "{response}"
    );
    component.stop().await;
}

#[tokio::test]
async fn expired_files_are_swept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let upload = Upload::new(settings(
        dir.path(),
        free_port(),
        "expire_after = 1\nsweep_interval = 0.5",
    ));
    let (mut server, component) = testing::spawn(|b| b.plugin(upload)).await;
    let reply = server
        .iq(request("s1", "filename='old.txt' size='3'"))
        .await;
    let (put, get) = urls(&reply);
    let t = std::time::Duration::from_secs(10);
    let r = http::request("PUT", &put, &[], Body::Bytes(b"old"), Keep::All, t)
        .await
        .expect("PUT");
    assert_eq!(r.status, 201, "{r:?}");
    let r = http::request("GET", &get, &[], Body::None, Keep::All, t)
        .await
        .expect("GET");
    assert_eq!((r.status, r.body.as_slice()), (200, b"old".as_slice()));
    // Expired one second after upload; swept every half second.
    tokio::time::sleep(std::time::Duration::from_millis(3000)).await;
    let r = http::request("GET", &get, &[], Body::None, Keep::All, t)
        .await
        .expect("GET");
    assert_eq!(r.status, 404, "{r:?}");
    assert!(
        std::fs::read_dir(dir.path().join("files"))
            .expect("files dir")
            .next()
            .is_none(),
        "the expired file is deleted"
    );
    component.stop().await;
}

#[tokio::test]
async fn a_slot_expires_after_its_lifetime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let upload = Upload::new(settings(dir.path(), free_port(), "slot_lifetime = 1"));
    let (mut server, component) = testing::spawn(|b| b.plugin(upload)).await;
    let reply = server
        .iq(request("s1", "filename='late.txt' size='4'"))
        .await;
    let (put, get) = urls(&reply);
    // The window closes after the second the slot was issued in, plus one.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let t = std::time::Duration::from_secs(10);
    let r = http::request(
        "PUT",
        &put,
        &[("Content-Type", "text/plain")],
        Body::Bytes(b"late"),
        Keep::All,
        t,
    )
    .await
    .expect("PUT");
    assert_eq!(r.status, 403, "{r:?}");
    assert!(
        String::from_utf8_lossy(&r.body).contains("expired"),
        "{r:?}"
    );
    let r = http::request("GET", &get, &[], Body::None, Keep::All, t)
        .await
        .expect("GET");
    assert_eq!(r.status, 404, "{r:?}");
    component.stop().await;
}

const COMMANDS: &str = "http://jabber.org/protocol/commands";

fn command(from: &str, id: &str, inner: &str) -> satellite::Element {
    stanza(&format!(
        "<iq type='set' id='{id}' from='{from}' to='svc.test'>{inner}</iq>"
    ))
}

#[tokio::test]
async fn admins_see_stats_and_delete_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let upload = Upload::new(settings(dir.path(), free_port(), ""));
    let (mut server, component) = testing::spawn_with(
        |mut c| {
            c.admins = vec!["boss@test".parse().expect("jid")];
            c
        },
        |b| b.plugin(upload),
    )
    .await;
    let reply = server
        .iq(request("s1", "filename='bad.txt' size='3'"))
        .await;
    let (put, get) = urls(&reply);
    let t = std::time::Duration::from_secs(10);
    let r = http::request("PUT", &put, &[], Body::Bytes(b"bad"), Keep::All, t)
        .await
        .expect("PUT");
    assert_eq!(r.status, 201);

    // Not for ordinary users.
    let reply = server
        .iq(command(
            "user@test/r",
            "c0",
            &format!("<command xmlns='{COMMANDS}' node='delete' action='execute'/>"),
        ))
        .await;
    assert_stanza_error!(reply, DefinedCondition::Forbidden);

    let reply = server
        .iq(command(
            "boss@test/r",
            "c1",
            &format!("<command xmlns='{COMMANDS}' node='stats' action='execute'/>"),
        ))
        .await;
    let xml = String::from(&reply);
    assert!(
        xml.contains("<field var='stored-files'><value>1</value>"),
        "{xml}"
    );
    assert!(
        xml.contains("<field var='stored-bytes'><value>3</value>"),
        "{xml}"
    );

    let reply = server
        .iq(command(
            "boss@test/r",
            "c2",
            &format!("<command xmlns='{COMMANDS}' node='delete' action='execute'/>"),
        ))
        .await;
    let session = reply
        .get_child("command", COMMANDS)
        .and_then(|c| c.attr("sessionid"))
        .expect("session")
        .to_owned();
    let reply = server
        .iq(command(
            "boss@test/r",
            "c3",
            &format!(
                "<command xmlns='{COMMANDS}' node='delete' sessionid='{session}' action='complete'>\
                 <x xmlns='jabber:x:data' type='submit'><field var='url'><value>{get}</value></field></x></command>"
            ),
        ))
        .await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
    assert!(
        String::from(&reply).contains("Deleted bad.txt (3 bytes"),
        "{reply:?}"
    );
    let r = http::request("GET", &get, &[], Body::None, Keep::All, t)
        .await
        .expect("GET");
    assert_eq!(r.status, 404);
    component.stop().await;
}

#[tokio::test]
async fn slots_are_refused_when_the_disk_is_nearly_full() {
    let dir = tempfile::tempdir().expect("tempdir");
    // More free space than any disk has.
    let mut s = settings(dir.path(), free_port(), "");
    s.min_free_space = u64::MAX / 2;
    let (mut server, component) = testing::spawn(|b| b.plugin(Upload::new(s))).await;
    let reply = server.iq(request("s1", "filename='a.txt' size='1'")).await;
    assert_stanza_error!(reply, DefinedCondition::ResourceConstraint);
    component.stop().await;
}
