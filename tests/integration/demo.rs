//! The README's main command, minus the build: the demo starts Prosody and
//! `satellite run`, passes its own end-to-end check and stops cleanly.

use satellite_harness::demo::Demo;

#[tokio::test]
async fn demo_runs_and_passes_its_self_check() {
    let demo = Demo::start(env!("CARGO_BIN_EXE_satellite").as_ref())
        .await
        .expect("demo starts");
    let report = demo.self_check().await.expect("self-check");
    assert!(
        report.iter().any(|l| l.starts_with("echo round trip")),
        "{report:?}"
    );
    assert!(
        report.iter().any(|l| l.contains("Echo statistics")),
        "{report:?}"
    );
    assert!(
        report.iter().any(|l| l.starts_with("upload:")),
        "{report:?}"
    );
    assert!(
        report
            .iter()
            .any(|l| l.starts_with("proxy65 streamhost: 127.0.0.1:")),
        "{report:?}"
    );
    assert!(
        report
            .iter()
            .any(|l| l.starts_with("muc: demo@rooms.localhost created")),
        "{report:?}"
    );
    demo.stop().await.expect("clean stop");
}
