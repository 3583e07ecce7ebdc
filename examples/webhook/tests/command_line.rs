//! The webhook binary answers `--help` and `--version` with its own name.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_satellite-webhook");

#[test]
fn help_and_version() {
    let out = Command::new(BIN).arg("--help").output().expect("run");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("Usage: satellite-webhook [-c FILE]"),
        "{help}"
    );
    assert!(help.contains("(default: webhook.toml)"), "{help}");
    let out = Command::new(BIN).arg("--version").output().expect("run");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("satellite-webhook {}\n", env!("CARGO_PKG_VERSION"))
    );
}
