//! The XEP-0363 upload service (gateways/upload) against a real Prosody:
//! real slixmpp clients request slots (one uploads with slixmpp's own
//! XEP-0363 plugin, service found by disco); the HTTP side is exercised
//! with a plain HTTP/1.1 client that does exactly what it is told.

use std::path::{Path, PathBuf};
use std::time::Duration;

use satellite::Element;
use satellite_upload::Upload;

use crate::in_process::InProcess;
use crate::support::http::{self, Body, Keep, Response};
use crate::support::{Client, Prosody, free_port, port_open, scansion};

const UPLOAD: &str = "upload.localhost";
const SECRET: &str = "upload-secret-0123";
const NS: &str = "urn:xmpp:http:upload:0";
const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
const T: Duration = Duration::from_secs(10);
const USERS: &[(&str, &str)] = &[("alice", "alice-pw"), ("bob", "bob-pw")];
/// The tests must not depend on how full the test machine's disk is (the
/// disk guard itself is tested in gateways/upload/tests/plugin.rs).
const MIN_FREE: &str = "min_free_space = 0\n";

/// An upload component running in-process against a Prosody.
struct Service {
    port: u16,
    dir: PathBuf,
    settings: String,
    component_port: u16,
    component: InProcess,
}

impl Service {
    /// Starts the component (HTTP on a free port, storage in `dir`) with
    /// extra `[component.settings]` lines; returns once the link is up and
    /// the HTTP listener accepts.
    async fn start(prosody: &Prosody, dir: &Path, settings: &str) -> Service {
        Self::start_on(prosody.component_port, free_port(), dir, settings).await
    }

    async fn start_on(component_port: u16, port: u16, dir: &Path, settings: &str) -> Service {
        let text = format!(
            "[[component]]\nservice = \"upload\"\njid = \"{UPLOAD}\"\nserver = \"127.0.0.1:{component_port}\"\nsecret = \"{SECRET}\"\n\
             [component.settings]\nlisten = \"127.0.0.1:{port}\"\nstorage_dir = \"{}\"\n{MIN_FREE}{settings}\n",
            dir.display()
        );
        let component =
            InProcess::start(&text, |c| Upload::from_config(c).expect("settings")).await;
        assert!(port_open(port).await, "HTTP listener not up");
        Service {
            port,
            dir: dir.to_owned(),
            settings: settings.to_owned(),
            component_port,
            component,
        }
    }

    /// Stops the component (and its HTTP server).
    async fn stop(self) -> (u16, u16, PathBuf, String) {
        self.component.stop().await;
        (self.component_port, self.port, self.dir, self.settings)
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("satellite-upload-")
        .tempdir()
        .expect("temp dir")
}

async fn setup(settings: &str) -> (Prosody, tempfile::TempDir, Service, Client) {
    let prosody = Prosody::start(&[(UPLOAD, SECRET)], USERS, "").await;
    let dir = temp_dir();
    let service = Service::start(&prosody, dir.path(), settings).await;
    let alice = Client::connect(prosody.c2s_port, "alice@localhost", "alice-pw").await;
    (prosody, dir, service, alice)
}

/// A slot request; returns the reply.
async fn request_slot(client: &mut Client, id: &str, name: &str, size: i64, ty: &str) -> Element {
    let ty = if ty.is_empty() {
        String::new()
    } else {
        format!(" content-type='{ty}'")
    };
    client
        .iq(&format!(
            "<iq type='get' id='{id}' to='{UPLOAD}'><request xmlns='{NS}' filename='{name}' size='{size}'{ty}/></iq>"
        ))
        .await
}

/// The (GET URL, PUT URL, Authorization header) of a slot reply.
fn slot(reply: &Element) -> (String, String, String) {
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
    let slot = reply.get_child("slot", NS).expect("slot");
    let get = slot
        .get_child("get", NS)
        .and_then(|g| g.attr("url"))
        .expect("get url");
    let put = slot.get_child("put", NS).expect("put");
    let header = put
        .get_child("header", NS)
        .filter(|h| h.attr("name") == Some("Authorization"))
        .map(|h| h.text())
        .expect("Authorization header");
    (
        get.to_owned(),
        put.attr("url").expect("put url").to_owned(),
        header,
    )
}

/// (type, condition, app-specific child) of an error reply.
fn stanza_error(reply: &Element) -> (String, String, Option<Element>) {
    assert_eq!(reply.attr("type"), Some("error"), "{reply:?}");
    let error = reply.get_child("error", "jabber:client").expect("error");
    let condition = error
        .children()
        .find(|c| c.ns() == STANZAS && c.name() != "text")
        .map(|c| c.name().to_owned())
        .unwrap_or_default();
    let app = error.children().find(|c| c.ns() == NS).cloned();
    (
        error.attr("type").unwrap_or_default().to_owned(),
        condition,
        app,
    )
}

async fn put(url: &str, headers: &[(&str, &str)], body: Body<'_>) -> Response {
    http::request("PUT", url, headers, body, Keep::All, T)
        .await
        .expect("PUT")
}

async fn get(url: &str, headers: &[(&str, &str)]) -> Response {
    http::request("GET", url, headers, Body::None, Keep::All, T)
        .await
        .expect("GET")
}

#[tokio::test]
async fn a_real_client_uploads_and_the_file_is_served_with_safe_headers() {
    let (_prosody, dir, service, mut alice) = setup("").await;

    // disco#info: identity, feature, XEP-0128 form with max-file-size.
    let info = alice
        .iq(&format!(
            "<iq type='get' id='d1' to='{UPLOAD}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        ))
        .await;
    let expected = crate::support::client::parse_stanza(&format!(
        "<iq type='result'><query xmlns='http://jabber.org/protocol/disco#info'>\
         <identity category='store' type='file'/><feature var='{NS}'/>\
         <x xmlns='jabber:x:data' type='result'>\
         <field var='FORM_TYPE'><value>{NS}</value></field>\
         <field var='max-file-size'><value>104857600</value></field></x></query></iq>"
    ));
    assert!(scansion::loose_match(&expected, &info), "{info:?}");

    // slixmpp's XEP-0363 plugin: finds the service through the server's
    // disco#items, requests a slot, PUTs with aiohttp.
    let content: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let file = dir.path().join("report.txt");
    std::fs::write(&file, &content).expect("write");
    let url = alice
        .upload(file.to_str().expect("utf8"), "text/plain")
        .await
        .expect("slixmpp uploaded");
    assert!(url.starts_with(&service.url("/")), "{url}");
    assert!(url.ends_with("/report.txt"), "{url}");

    let r = get(&url, &[("Origin", "https://web.example")]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, content, "the bytes served are the bytes uploaded");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("content-length"), Some("400000"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let csp = r.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("sandbox"),
        "{csp}"
    );
    assert_eq!(
        r.header("content-disposition"),
        Some("inline; filename=\"report.txt\"; filename*=UTF-8''report.txt")
    );
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let cache = r.header("cache-control").unwrap_or_default();
    assert!(
        cache.contains("immutable") && cache.contains("max-age="),
        "{cache}"
    );
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    let etag = r.header("etag").expect("etag").to_owned();
    let modified = r.header("last-modified").expect("last-modified").to_owned();

    // HEAD: the same headers, no body.
    let head = http::request("HEAD", &url, &[], Body::None, Keep::All, T)
        .await
        .expect("HEAD");
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(head.header("content-length"), Some("400000"));
    assert_eq!(head.header("etag"), Some(etag.as_str()));

    // Conditional requests.
    assert_eq!(get(&url, &[("If-None-Match", &etag)]).await.status, 304);
    assert_eq!(
        get(&url, &[("If-Modified-Since", &modified)]).await.status,
        304
    );
    assert_eq!(
        get(&url, &[("If-None-Match", "\"other\"")]).await.status,
        200
    );

    // Ranges: open-ended, closed, suffix, unsatisfiable, If-Range.
    let r = get(&url, &[("Range", "bytes=0-")]).await;
    assert_eq!((r.status, r.body.len()), (206, 400_000));
    assert_eq!(r.header("content-range"), Some("bytes 0-399999/400000"));
    let r = get(&url, &[("Range", "bytes=10-19")]).await;
    assert_eq!((r.status, r.body.as_slice()), (206, &content[10..20]));
    let r = get(&url, &[("Range", "bytes=-4")]).await;
    assert_eq!((r.status, r.body.as_slice()), (206, &content[399_996..]));
    let r = get(&url, &[("Range", "bytes=400000-")]).await;
    assert_eq!(r.status, 416, "{r:?}");
    assert_eq!(r.header("content-range"), Some("bytes */400000"));
    let r = get(&url, &[("Range", "bytes=0-9"), ("If-Range", "\"stale\"")]).await;
    assert_eq!((r.status, r.body.len()), (200, 400_000));

    // CORS preflight for a browser PUT.
    let r = http::request(
        "OPTIONS",
        &url,
        &[
            ("Origin", "https://web.example"),
            ("Access-Control-Request-Method", "PUT"),
            (
                "Access-Control-Request-Headers",
                "content-type,authorization",
            ),
        ],
        Body::None,
        Keep::All,
        T,
    )
    .await
    .expect("OPTIONS");
    assert!(r.status < 300, "{r:?}");
    let methods = r.header("access-control-allow-methods").unwrap_or_default();
    assert!(methods.contains("PUT") && methods.contains("GET"), "{r:?}");
    let allowed = r
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{r:?}"
    );

    // Unknown files, and CORS and safety headers on errors too.
    let r = get(
        &service.url("/AAAAAAAAAAAAAAAAAAAAAA/nothing.txt"),
        &[("Origin", "https://web.example")],
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let r = get(&url.replace("report.txt", "other.txt"), &[]).await;
    assert_eq!(r.status, 404, "the file name is part of the URL");
    service.stop().await;
}

#[tokio::test]
async fn slot_requests_are_refused_as_xep_0363_says() {
    let (prosody, _dir, service, mut alice) = setup(
        "max_file_size = 10000\ndaily_quota = 15000\nallowed_types = [\"text/plain\", \"image/*\"]\nallow = [\"alice@localhost\"]\n",
    )
    .await;

    let (type_, condition, app) =
        stanza_error(&request_slot(&mut alice, "big", "big.txt", 10001, "text/plain").await);
    assert_eq!(
        (type_.as_str(), condition.as_str()),
        ("modify", "not-acceptable")
    );
    let app = app.expect("<file-too-large/>");
    assert_eq!(app.name(), "file-too-large");
    assert_eq!(
        app.get_child("max-file-size", NS).map(|m| m.text()),
        Some("10000".to_owned())
    );

    for (id, name, size, ty, condition) in [
        ("slash", "a/b.txt", 10, "text/plain", "bad-request"),
        ("neg", "n.txt", -1, "text/plain", "bad-request"),
        (
            "type",
            "evil.exe",
            10,
            "application/x-executable",
            "not-acceptable",
        ),
        ("untyped", "evil.bin", 10, "", "not-acceptable"),
    ] {
        let reply = request_slot(&mut alice, id, name, size, ty).await;
        assert_eq!(stanza_error(&reply).1, condition, "{id}: {reply:?}");
    }

    // Quota: 15000 bytes a day; 9000 + 9000 does not fit; the retry stamp
    // says when the first slot leaves the 24-hour window.
    slot(&request_slot(&mut alice, "q1", "one.txt", 9000, "text/plain").await);
    let before = chrono_now();
    let reply = request_slot(&mut alice, "q2", "two.txt", 9000, "text/plain").await;
    let (type_, condition, app) = stanza_error(&reply);
    assert_eq!(
        (type_.as_str(), condition.as_str()),
        ("wait", "resource-constraint")
    );
    let retry = app.expect("<retry/>");
    assert_eq!(retry.name(), "retry");
    let stamp = retry.attr("stamp").expect("stamp");
    let at = parse_stamp(stamp);
    assert!(
        (before + 86_400 - 5..=before + 86_400 + 5).contains(&at),
        "retry {stamp} is not a day after the first slot"
    );
    // A smaller file still fits.
    slot(&request_slot(&mut alice, "q3", "three.txt", 5000, "text/plain").await);

    // Bob is not in `allow`.
    let mut bob = Client::connect(prosody.c2s_port, "bob@localhost", "bob-pw").await;
    let (type_, condition, _) =
        stanza_error(&request_slot(&mut bob, "b1", "b.txt", 10, "text/plain").await);
    assert_eq!((type_.as_str(), condition.as_str()), ("auth", "forbidden"));

    // The link survived every refusal.
    slot(&request_slot(&mut alice, "after", "ok.png", 10, "image/png").await);
    service.stop().await;
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// Seconds of a `YYYY-MM-DDTHH:MM:SSZ` stamp (days from the civil date).
fn parse_stamp(stamp: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| -> i64 { stamp[r].parse().expect("digits") };
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
}

/// `s` with one character of its MAC (near the end) changed to another
/// valid base64url character.
fn tamper(s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    let i = chars.len() - 5;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

#[tokio::test]
async fn puts_are_checked_against_their_slot() {
    let (_prosody, dir, service, mut alice) = setup("").await;
    let body = b"0123456789";

    let (get_url, put_url, auth) =
        slot(&request_slot(&mut alice, "s1", "ten.txt", 10, "text/plain").await);
    let bare = put_url.split('?').next().expect("url").to_owned();
    let ty = ("Content-Type", "text/plain");

    // No authorisation, a forged one, the wrong size or type.
    let r = put(&bare, &[ty], Body::Bytes(body)).await;
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let forged = tamper(&put_url);
    assert_eq!(put(&forged, &[ty], Body::Bytes(body)).await.status, 403);
    let forged_header = tamper(&auth);
    assert_eq!(
        put(
            &bare,
            &[ty, ("Authorization", &forged_header)],
            Body::Bytes(body)
        )
        .await
        .status,
        403
    );
    assert_eq!(
        put(&put_url, &[ty], Body::Bytes(b"01234567890"))
            .await
            .status,
        413
    );
    assert_eq!(
        put(&put_url, &[ty], Body::Bytes(b"012345678")).await.status,
        400
    );
    assert_eq!(
        put(
            &put_url,
            &[("Content-Type", "text/html")],
            Body::Bytes(body)
        )
        .await
        .status,
        415
    );
    let chunked = put(
        &put_url,
        &[ty, ("Transfer-Encoding", "chunked")],
        Body::Bytes(b"a\r\n0123456789\r\n0\r\n\r\n"),
    )
    .await;
    assert_eq!(chunked.status, 411, "{chunked:?}");
    // Nothing of those is served.
    assert_eq!(get(&get_url, &[]).await.status, 404);

    // The Authorization header alone works (what XEP-0363 clients send),
    // with Expect: 100-continue honoured.
    let r = put(
        &bare,
        &[ty, ("Authorization", &auth), ("Expect", "100-continue")],
        Body::Bytes(body),
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(get(&get_url, &[]).await.body, body);
    // A second PUT to the slot.
    assert_eq!(put(&put_url, &[ty], Body::Bytes(body)).await.status, 409);
    // A refused PUT with Expect: 100-continue gets its answer before
    // sending the body.
    let r = put(
        &forged,
        &[ty, ("Expect", "100-continue")],
        Body::Bytes(body),
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");

    assert!(
        std::fs::read_dir(dir.path().join("partial"))
            .expect("partial dir")
            .next()
            .is_none(),
        "no partial file left"
    );
    service.stop().await;
}

#[tokio::test]
async fn an_interrupted_upload_leaves_nothing_servable() {
    let (_prosody, dir, service, mut alice) = setup("idle_timeout = 1\nsweep_interval = 1\n").await;
    let (get_url, put_url, _) =
        slot(&request_slot(&mut alice, "s1", "big.bin", 1_000_000, "").await);
    let half = vec![7u8; 500_000];
    http::request(
        "PUT",
        &put_url,
        &[],
        Body::Cut {
            len: 1_000_000,
            sent: &half,
        },
        Keep::All,
        T,
    )
    .await
    .expect("cut PUT");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(get(&get_url, &[]).await.status, 404);
    let partials: Vec<_> = std::fs::read_dir(dir.path().join("partial"))
        .expect("partial dir")
        .collect();
    assert!(partials.is_empty(), "partial files left: {partials:?}");
    assert!(
        std::fs::read_dir(dir.path().join("files"))
            .expect("files dir")
            .next()
            .is_none(),
        "nothing was stored"
    );
    // The slot can still be used.
    let full = vec![7u8; 1_000_000];
    assert_eq!(put(&put_url, &[], Body::Bytes(&full)).await.status, 201);
    let r = http::request("GET", &get_url, &[], Body::None, Keep::Digest, T)
        .await
        .expect("GET");
    assert_eq!((r.status, r.sha1), (200, http::sha1_hex(&full)));
    service.stop().await;
}

#[tokio::test]
async fn a_slot_survives_a_restart_of_the_service() {
    let (_prosody, _dir, service, mut alice) = setup("").await;
    let (get_url, put_url, _) =
        slot(&request_slot(&mut alice, "s1", "later.txt", 5, "text/plain").await);
    let (component_port, port, dir, settings) = service.stop().await;
    let service = Service::start_on(component_port, port, &dir, &settings).await;
    let r = put(
        &put_url,
        &[("Content-Type", "text/plain")],
        Body::Bytes(b"hello"),
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(get(&get_url, &[]).await.body, b"hello");
    service.stop().await;
}

/// A slot from the XMPP server's own upload module at `to` (11 bytes of
/// text/plain, `notes.txt`): (PUT URL, GET URL).
async fn server_slot(client: &mut Client, to: &str, log: impl Fn() -> String) -> (String, String) {
    let reply = client
        .iq(&format!(
            "<iq type='get' id='e1' to='{to}'><request xmlns='{NS}' filename='notes.txt' size='11' content-type='text/plain'/></iq>"
        ))
        .await;
    assert_eq!(
        reply.attr("type"),
        Some("result"),
        "the server's slot: {reply:?}\n{}",
        log()
    );
    let s = reply.get_child("slot", NS).expect("slot");
    let url = |name: &str| {
        s.get_child(name, NS)
            .and_then(|e| e.attr("url"))
            .unwrap_or_else(|| panic!("no {name} url"))
            .to_owned()
    };
    (url("put"), url("get"))
}

#[tokio::test]
async fn serves_as_the_back_end_of_prosodys_mod_http_upload_external() {
    const EXTERNAL: &str = "extupload.localhost";
    const EXT_SECRET: &str = "shared-with-prosody";
    let port = free_port();
    let trailing = format!(
        "Component \"{EXTERNAL}\" \"http_upload_external\"\n\
         \thttp_upload_external_base_url = \"http://127.0.0.1:{port}/\"\n\
         \thttp_upload_external_secret = \"{EXT_SECRET}\"\n\
         \thttp_upload_external_protocol = \"v2\"\n"
    );
    let prosody = Prosody::start_with(&[(UPLOAD, SECRET)], USERS, "", &trailing).await;
    let dir = temp_dir();
    let service = Service::start_on(
        prosody.component_port,
        port,
        dir.path(),
        &format!("external_secret = \"{EXT_SECRET}\"\n"),
    )
    .await;
    let mut alice = Client::connect(prosody.c2s_port, "alice@localhost", "alice-pw").await;
    let (put_url, get_url) = server_slot(&mut alice, EXTERNAL, || prosody.log()).await;
    assert!(put_url.contains("?v2="), "{put_url}");

    let ty = ("Content-Type", "text/plain");
    let tampered = put_url.replace("notes.txt", "other.txt");
    assert_eq!(
        put(&tampered, &[ty], Body::Bytes(b"hello world"))
            .await
            .status,
        403
    );
    assert_eq!(
        put(&put_url, &[ty], Body::Bytes(b"hello worl!"))
            .await
            .status,
        201
    );
    let r = get(&get_url, &[]).await;
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, b"hello worl!".as_slice())
    );
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(
        put(&put_url, &[ty], Body::Bytes(b"hello world"))
            .await
            .status,
        409
    );
    service.stop().await;
}

#[tokio::test]
async fn passes_prosodys_own_http_upload_conformance_script() {
    // Prosody's spec/scansion/http_upload.scs, written for
    // mod_http_file_share with a 10 MB limit and text/plain + image/*.
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/conformance/prosody-scansion/http_upload.scs");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let script = scansion::parse(&text).expect("script parses");
    let prosody = Prosody::start(
        &[(UPLOAD, SECRET)],
        &[("filesharingenthusiast", "password")],
        "",
    )
    .await;
    let dir = temp_dir();
    let service = Service::start(
        &prosody,
        dir.path(),
        "max_file_size = 10000000\nallowed_types = [\"text/plain\", \"image/*\"]\n",
    )
    .await;
    scansion::run(&script, prosody.c2s_port, T)
        .await
        .expect("script runs");
    service.stop().await;
}

#[tokio::test]
async fn an_expired_slot_is_refused() {
    let (_prosody, _dir, service, mut alice) = setup("slot_lifetime = 1\n").await;
    let (get_url, put_url, _) = slot(&request_slot(&mut alice, "s1", "late.txt", 4, "").await);
    // The window closes after the second the slot was issued in, plus one.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = put(
        &put_url,
        &[("Content-Type", "text/plain")],
        Body::Bytes(b"late"),
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(get(&get_url, &[]).await.status, 404);
    service.stop().await;
}

/// One aiohttp session (a keep-alive connection pool, as web and bot
/// clients use): a PUT without the slot's authorisation, then the proper
/// PUT, for a small file and for a 1 MiB one. Prints the four statuses.
const AIOHTTP_RETRY: &str = r#"
import asyncio, sys
import aiohttp

async def main(small_put, small_auth, big_put, big_auth):
    statuses = []
    async with aiohttp.ClientSession() as session:
        for url, auth, body in ((small_put, small_auth, b"hello"), (big_put, big_auth, b"x" * (1 << 20))):
            bare = url.split("?")[0]
            for headers in ({}, {"Authorization": auth}):
                headers["Content-Type"] = "application/octet-stream"
                try:
                    async with session.put(bare if not headers.get("Authorization") else url, data=body, headers=headers) as r:
                        await r.read()
                        statuses.append(str(r.status))
                except Exception as e:
                    statuses.append(type(e).__name__)
    print(" ".join(statuses))

asyncio.run(main(*sys.argv[1:5]))
"#;

#[tokio::test]
async fn a_keep_alive_client_uploads_after_a_refused_put() {
    let (_prosody, _dir, service, mut alice) = setup("").await;
    let ty = "application/octet-stream";
    let (small_get, small_put, small_auth) =
        slot(&request_slot(&mut alice, "k1", "small.bin", 5, ty).await);
    let (_, big_put, big_auth) =
        slot(&request_slot(&mut alice, "k2", "big.bin", 1 << 20, ty).await);
    let python = std::env::var("SATELLITE_TEST_PYTHON")
        .unwrap_or_else(|_| crate::support::client::PYTHON.to_owned());
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(python)
            .arg("-c")
            .arg(AIOHTTP_RETRY)
            .args([&small_put, &small_auth, &big_put, &big_auth])
            .output(),
    )
    .await
    .expect("aiohttp within 60 s")
    .expect("python3 with aiohttp (scripts/install-deps.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        "401 201 401 201",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(get(&small_get, &[]).await.body, b"hello");
    service.stop().await;
}

#[tokio::test]
async fn works_on_ejabberd_too() {
    // "Any server": the same service on ejabberd's ejabberd_service
    // listener; slixmpp finds it in ejabberd's disco#items and uploads.
    let ejabberd = crate::support::Ejabberd::start(&[(UPLOAD, SECRET)], USERS).await;
    let dir = temp_dir();
    let service = Service::start_on(ejabberd.component_port, free_port(), dir.path(), "").await;
    let mut alice = Client::connect(ejabberd.c2s_port, "alice@localhost", "alice-pw").await;
    let file = dir.path().join("from-ejabberd.txt");
    std::fs::write(&file, b"stored through ejabberd").expect("write");
    let url = alice
        .upload(file.to_str().expect("utf8"), "text/plain")
        .await
        .unwrap_or_else(|e| panic!("slixmpp upload via ejabberd: {e}\n{}", ejabberd.log()));
    let r = get(&url, &[]).await;
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, b"stored through ejabberd".as_slice())
    );
    let (_, condition, app) =
        stanza_error(&request_slot(&mut alice, "big", "big.bin", 1 << 40, "").await);
    assert_eq!(condition, "not-acceptable");
    assert!(app.is_some_and(|a| a.name() == "file-too-large"));
    service.stop().await;
}

#[tokio::test]
async fn serves_as_the_back_end_of_ejabberds_external_secret() {
    // ejabberd's mod_http_upload with `external_secret`: ejabberd issues
    // the slots (`<user>/<random>/<name>?v=<HMAC>`), satellite stores them.
    const EXTERNAL: &str = "extupload.localhost";
    const EXT_SECRET: &str = "shared-with-ejabberd";
    let port = free_port();
    let module = [
        "  mod_http_upload:".to_owned(),
        format!("    hosts: [\"{EXTERNAL}\"]"),
        format!("    put_url: \"http://127.0.0.1:{port}\""),
        format!("    get_url: \"http://127.0.0.1:{port}\""),
        format!("    external_secret: \"{EXT_SECRET}\""),
    ]
    .join("\n")
        + "\n";
    let ejabberd = crate::support::Ejabberd::start_with(&[(UPLOAD, SECRET)], USERS, &module).await;
    let dir = temp_dir();
    let service = Service::start_on(
        ejabberd.component_port,
        port,
        dir.path(),
        &format!("external_secret = \"{EXT_SECRET}\"\n"),
    )
    .await;
    let mut alice = Client::connect(ejabberd.c2s_port, "alice@localhost", "alice-pw").await;
    let (put_url, get_url) = server_slot(&mut alice, EXTERNAL, || ejabberd.log()).await;
    assert!(put_url.contains("?v="), "{put_url}");
    let ty = ("Content-Type", "text/plain");
    assert_eq!(
        put(&put_url, &[ty], Body::Bytes(b"hello worl"))
            .await
            .status,
        403,
        "wrong size"
    );
    assert_eq!(
        put(&put_url, &[ty], Body::Bytes(b"hello ejabb"))
            .await
            .status,
        201
    );
    let r = get(&get_url, &[]).await;
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, b"hello ejabb".as_slice())
    );
    service.stop().await;
}
