//! The shipped systemd unit passes `systemd-analyze verify`, its
//! `Documentation=man:satellite(1)` included: the pages `satellite man`
//! writes are what the unit names.

use std::process::Command;

#[test]
fn template_unit_verifies() {
    let analyze = "/usr/bin/systemd-analyze";
    assert!(
        std::path::Path::new(analyze).exists(),
        "systemd-analyze missing: run scripts/install-deps.sh (Debian package systemd)"
    );
    let dir = std::env::temp_dir().join(format!("satellite-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/dist/systemd/satellite@.service"
    ))
    .expect("unit file");
    // Point ExecStart at the binary this test was built with, so the
    // verification also checks that the command exists and is executable.
    let unit = unit.replace("/usr/bin/satellite", env!("CARGO_BIN_EXE_satellite"));
    std::fs::write(dir.join("satellite@.service"), unit).expect("write unit");
    let man = dir.join("man");
    let wrote = Command::new(env!("CARGO_BIN_EXE_satellite"))
        .arg("man")
        .arg(man.join("man1"))
        .status()
        .expect("run satellite man");
    assert!(wrote.success(), "satellite man failed");
    let output = Command::new(analyze)
        .arg("verify")
        .arg(
            dir.join("satellite@.service")
                .with_file_name("satellite@example.service"),
        )
        .current_dir(&dir)
        .env("SYSTEMD_UNIT_PATH", format!("{}:", dir.display()))
        .env("MANPATH", &man)
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&output.stderr);
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        output.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    let ours: Vec<_> = stderr
        .lines()
        .filter(|l| l.contains("satellite@"))
        .collect();
    assert!(
        ours.is_empty(),
        "warnings about the unit:\n{}",
        ours.join("\n")
    );
}
