//! What the upload service's test files share: settings for a service on
//! a free port in a temp dir, a running service, slots, PUT and GET.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use satellite::ComponentConfig;
use satellite::testing::{self, MockLink, stanza};
use satellite_harness::http::{self, Body, Keep};
use satellite_upload::{Settings, Upload};

const NS: &str = "urn:xmpp:http:upload:0";
/// How long an HTTP request may take.
pub const T: Duration = Duration::from_secs(10);

/// Settings for `upload.test` listening on `port`, storing under `dir`,
/// allowing the `test` domain, plus the TOML lines `extra`.
pub fn settings(dir: &Path, port: u16, extra: &str) -> Settings {
    let mut c = ComponentConfig::new(
        "upload.test".parse().expect("jid"),
        "127.0.0.1:5347",
        satellite::Secret::new("s"),
    );
    c.source = dir.join("upload.toml");
    c.settings = toml::from_str(&format!(
        "listen = \"127.0.0.1:{port}\"\nstorage_dir = \"{}\"\nallow = [\"test\"]\nmin_free_space = 0\n{extra}",
        dir.display()
    ))
    .expect("toml");
    Settings::load(&c).expect("settings")
}

/// A port nothing listens on.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A running service (with `boss@test` as admin) and its base URL.
pub async fn start(
    dir: &Path,
    extra: &str,
    tweak: impl FnOnce(&mut Settings),
) -> (MockLink, satellite::testing::Running, String) {
    let port = free_port();
    let mut s = settings(dir, port, extra);
    tweak(&mut s);
    let (server, component) = testing::spawn_with(
        |mut c| {
            c.admins = vec!["boss@test".parse().expect("jid")];
            c
        },
        |b| b.plugin(Upload::new(s)),
    )
    .await;
    (server, component, format!("http://127.0.0.1:{port}/"))
}

/// A slot for `attrs`; its (PUT URL, GET URL).
pub async fn slot(server: &mut MockLink, id: &str, attrs: &str) -> (String, String) {
    let reply = server
        .iq(stanza(&format!(
            "<iq type='get' id='{id}' from='user@test/r' to='svc.test'><request xmlns='{NS}' {attrs}/></iq>"
        )))
        .await;
    let slot = reply
        .get_child("slot", NS)
        .unwrap_or_else(|| panic!("no slot: {reply:?}"));
    let put = slot.get_child("put", NS).and_then(|p| p.attr("url"));
    let get = slot.get_child("get", NS).and_then(|g| g.attr("url"));
    (put.expect("put").to_owned(), get.expect("get").to_owned())
}

/// A PUT of `body` to `url`.
pub async fn put(url: &str, headers: &[(&str, &str)], body: &[u8]) -> http::Response {
    http::request("PUT", url, headers, Body::Bytes(body), Keep::All, T)
        .await
        .expect("PUT")
}

/// A GET of `url`.
pub async fn get(url: &str, headers: &[(&str, &str)]) -> http::Response {
    http::request("GET", url, headers, Body::None, Keep::All, T)
        .await
        .expect("GET")
}
