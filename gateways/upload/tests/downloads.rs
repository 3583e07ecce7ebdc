//! Downloads byte for byte, whichever way they are sent: with `sendfile`
//! on plain HTTP/1.1 (several requests on one keep-alive connection,
//! ranges, HEAD, small files read as usual), and read and streamed on
//! HTTP/2 (curl with prior knowledge).

mod common;

use std::time::Duration;

use common::{T, put, slot, start};
use satellite_harness::http::{Connection, sha1_hex};

/// `len` bytes that differ from one position to the next.
fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 253) as u8).collect()
}

#[tokio::test]
async fn downloads_on_one_keep_alive_connection_are_the_stored_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut server, component, _) = start(dir.path(), "", |_| {}).await;
    let big = content(3 * 1024 * 1024 + 4321);
    let (put_url, big_url) = slot(
        &mut server,
        "big",
        &format!("filename='big.bin' size='{}'", big.len()),
    )
    .await;
    assert_eq!(put(&put_url, &[], &big).await.status, 201);
    let small = content(1000);
    let (put_url, small_url) = slot(&mut server, "small", "filename='small.bin' size='1000'").await;
    assert_eq!(put(&put_url, &[], &small).await.status, 201);

    let mut c = Connection::open(&big_url).await.expect("connect");
    for round in 0..2 {
        let r = c.request("GET", &big_url, &[], &[], T).await.expect("GET");
        assert_eq!(r.status, 200, "round {round}");
        assert_eq!(r.body.len(), big.len(), "round {round}");
        assert!(r.body == big, "round {round}: the bytes differ");

        let r = c
            .request("GET", &big_url, &[("Range", "bytes=1000-2500000")], &[], T)
            .await
            .expect("range");
        assert_eq!(r.status, 206);
        assert!(r.body == big[1000..=2_500_000], "the range's bytes differ");

        let r = c
            .request("GET", &big_url, &[("Range", "bytes=-100")], &[], T)
            .await
            .expect("suffix");
        assert_eq!(r.status, 206);
        assert!(r.body == big[big.len() - 100..]);

        let r = c
            .request("HEAD", &big_url, &[], &[], T)
            .await
            .expect("HEAD");
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("content-length"),
            Some(big.len().to_string().as_str())
        );
        assert!(r.body.is_empty());

        let r = c
            .request("GET", &small_url, &[], &[], T)
            .await
            .expect("small");
        assert_eq!(r.status, 200);
        assert!(r.body == small);
    }

    // Several at once, each on its own connection.
    let downloads: Vec<_> = (0..4)
        .map(|_| {
            let url = big_url.clone();
            tokio::spawn(async move {
                let mut c = Connection::open(&url).await.expect("connect");
                c.request("GET", &url, &[], &[], T).await.expect("GET")
            })
        })
        .collect();
    for d in downloads {
        let r = d.await.expect("task");
        assert_eq!(r.status, 200);
        assert_eq!(r.sha1, sha1_hex(&big));
    }

    // HTTP/2 (cleartext, prior knowledge): read and streamed.
    let out = dir.path().join("h2.bin");
    let status = tokio::process::Command::new("curl")
        .args(["-sS", "--http2-prior-knowledge", "--max-time", "20", "-o"])
        .arg(&out)
        .args(["-w", "%{http_version} %{http_code}", &big_url])
        .output()
        .await
        .expect("curl (installed by scripts/install-deps.sh)");
    assert_eq!(
        String::from_utf8_lossy(&status.stdout),
        "2 200",
        "curl: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let got = std::fs::read(&out).expect("h2 download");
    assert!(got == big, "the HTTP/2 download differs");

    drop(c);
    tokio::time::timeout(Duration::from_secs(10), component.stop())
        .await
        .expect("stops");
}
