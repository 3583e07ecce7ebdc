//! The shipped systemd unit passes `systemd-analyze verify`, its
//! `Documentation=man:satellite(1)` included (the pages `satellite man`
//! writes are what the unit names), and so does it with the drop-in for
//! direct HTTPS (`dist/systemd/upload-https.conf`).

use std::path::Path;
use std::process::Command;

const ANALYZE: &str = "/usr/bin/systemd-analyze";

/// Verifies `unit` in `dir`; returns systemd-analyze's complaints about
/// satellite's files.
fn verify(dir: &Path, man: &Path, unit: &str) -> Vec<String> {
    let output = Command::new(ANALYZE)
        .arg("verify")
        .arg(dir.join(unit))
        .current_dir(dir)
        .env("SYSTEMD_UNIT_PATH", format!("{}:", dir.display()))
        .env("MANPATH", man)
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "systemd-analyze verify {unit} failed:\n{stderr}"
    );
    stderr
        .lines()
        .filter(|l| l.contains("satellite@") || l.contains("satellite("))
        .map(str::to_owned)
        .collect()
}

#[test]
fn template_unit_and_https_drop_in_verify() {
    assert!(
        Path::new(ANALYZE).exists(),
        "systemd-analyze missing: run scripts/install-deps.sh (Debian package systemd)"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/systemd");
    let unit = std::fs::read_to_string(dist.join("satellite@.service")).expect("unit file");
    // Point ExecStart at the binary this test was built with, so the
    // verification also checks that the command exists and is executable.
    let unit = unit.replace("/usr/bin/satellite", env!("CARGO_BIN_EXE_satellite"));
    std::fs::write(dir.join("satellite@.service"), unit).expect("write unit");
    let drop_in = dir.join("satellite@upload.service.d");
    std::fs::create_dir(&drop_in).expect("drop-in dir");
    std::fs::copy(dist.join("upload-https.conf"), drop_in.join("https.conf")).expect("drop-in");

    let man = dir.join("man");
    let wrote = Command::new(env!("CARGO_BIN_EXE_satellite"))
        .arg("man")
        .arg(man.join("man1"))
        .status()
        .expect("run satellite man");
    assert!(wrote.success(), "satellite man failed");

    for unit in ["satellite@example.service", "satellite@upload.service"] {
        let ours = verify(dir, &man, unit);
        assert!(
            ours.is_empty(),
            "warnings about {unit}:\n{}",
            ours.join("\n")
        );
    }
}
