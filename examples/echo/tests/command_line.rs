//! The echo binary's command line (`satellite::serve::main_with`): `--help`,
//! `--version`, `-c FILE`, and what it refuses.

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_satellite-echo");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run satellite-echo")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_and_version() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    assert!(help.starts_with(env!("CARGO_PKG_DESCRIPTION")), "{help}");
    assert!(help.contains("Usage: satellite-echo [-c FILE]"), "{help}");
    assert!(help.contains("(default: echo.toml)"), "{help}");
    assert_eq!(text(&run(&["-h"]).stdout), help);

    let out = run(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        format!("satellite-echo {}\n", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(text(&run(&["-V"]).stdout), text(&out.stdout));
}

#[test]
fn config_file_by_flag_and_refusals() {
    let missing =
        std::env::temp_dir().join(format!("satellite-echo-none-{}.toml", std::process::id()));
    let missing = missing.to_str().expect("utf-8 path");
    for args in [
        vec!["-c", missing],
        vec!["--config", missing],
        vec![missing],
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains(missing), "{args:?}: {err}");
    }
    let out = run(&["--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("unknown option `--bogus`"), "{err}");
    assert!(err.contains("Usage: satellite-echo"), "{err}");
    assert!(out.stdout.is_empty());
}
