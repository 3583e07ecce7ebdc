//! The upload service's Prometheus series on the framework's metrics
//! endpoint (its own test binary: the recorder is process-wide).

use std::time::Duration;

use satellite::ComponentConfig;
use satellite::testing::{self, stanza};
use satellite_harness::http::{self, Body, Keep};
use satellite_upload::{Settings, Upload};

const NS: &str = "urn:xmpp:http:upload:0";
const T: Duration = Duration::from_secs(10);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

#[tokio::test]
async fn uploads_refusals_and_storage_are_counted() {
    let metrics_port = free_port();
    satellite::metrics::serve_prometheus(([127, 0, 0, 1], metrics_port).into())
        .expect("metrics endpoint");
    let dir = tempfile::tempdir().expect("tempdir");
    let c = ComponentConfig::with_settings(
        "upload.test",
        &dir.path().join("upload.toml").to_string_lossy(),
        &format!(
            "listen = \"127.0.0.1:{}\"\nstorage_dir = \"files\"\nallow = [\"test\"]\nmin_free_space = 0\nmax_file_size = 100\n",
            free_port()
        ),
    )
    .expect("config");
    let upload = Upload::new(Settings::load(&c).expect("settings"));
    let (mut server, component) = testing::spawn(|b| b.plugin(upload)).await;
    let ask = |id: &str, size: u32| {
        stanza(&format!(
            "<iq type='get' id='{id}' from='user@test/r' to='svc.test'><request xmlns='{NS}' filename='f.txt' size='{size}' content-type='text/plain'/></iq>"
        ))
    };
    let refused = server.iq(ask("big", 1000)).await;
    assert_eq!(refused.attr("type"), Some("error"));
    let reply = server.iq(ask("ok", 5)).await;
    let put = reply
        .get_child("slot", NS)
        .and_then(|s| s.get_child("put", NS))
        .and_then(|p| p.attr("url"))
        .expect("put url")
        .to_owned();
    let r = http::request(
        "PUT",
        &put,
        &[("Content-Type", "text/plain")],
        Body::Bytes(b"hello"),
        Keep::All,
        T,
    )
    .await
    .expect("PUT");
    assert_eq!(r.status, 201, "{r:?}");
    let scraped = http::request(
        "GET",
        &format!("http://127.0.0.1:{metrics_port}/metrics"),
        &[],
        Body::None,
        Keep::All,
        T,
    )
    .await
    .expect("scrape");
    let text = String::from_utf8_lossy(&scraped.body);
    for line in [
        "satellite_upload_slots_total{component=\"upload.test\"} 1",
        "satellite_upload_refused_total{component=\"upload.test\",reason=\"too_large\"} 1",
        "satellite_upload_files_total{component=\"upload.test\"} 1",
        "satellite_upload_received_bytes_total{component=\"upload.test\"} 5",
        "satellite_upload_stored_bytes{component=\"upload.test\"} 5",
        "satellite_upload_stored_files{component=\"upload.test\"} 1",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    component.stop().await;
}
