//! The upload plugin against the framework's mock server: disco, slot
//! replies and refusals, and a PUT/GET round trip over its HTTP server.

use std::path::Path;

use satellite::testing::{self, stanza};
use satellite::xmpp::stanza_error::DefinedCondition;
use satellite::{ComponentConfig, assert_stanza_error};
use satellite_upload::{Settings, Upload};

const NS: &str = "urn:xmpp:http:upload:0";

fn settings(dir: &Path, port: u16, extra: &str) -> Settings {
    let mut c = ComponentConfig::new(
        "upload.test".parse().expect("jid"),
        "127.0.0.1:5347",
        satellite::Secret::new("s"),
    );
    c.source = dir.join("upload.toml");
    c.settings = toml::from_str(&format!(
        "listen = \"127.0.0.1:{port}\"\nstorage_dir = \"{}\"\nallow = [\"test\"]\n{extra}",
        dir.display()
    ))
    .expect("toml");
    Settings::load(&c).expect("settings")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn request(id: &str, attrs: &str) -> satellite::Element {
    stanza(&format!(
        "<iq type='get' id='{id}' from='user@test/r' to='upload.test'><request xmlns='{NS}' {attrs}/></iq>"
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
            "<iq type='get' id='x' from='user@elsewhere/r' to='upload.test'><request xmlns='{NS}' filename='a' size='1'/></iq>"
        )))
        .await;
    assert_stanza_error!(reply, DefinedCondition::Forbidden);
    component.stop().await;
}
