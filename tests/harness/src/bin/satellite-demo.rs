//! Starts a private Prosody on 127.0.0.1 with satellite's bundled services
//! attached, checks them with a real client, and keeps everything running
//! until Ctrl-C so you can connect your own client.
//!
//! Run with: `bash scripts/demo.sh` (add `--check` to exit after the check).

use std::path::PathBuf;
use std::process::ExitCode;

use satellite_harness::demo::{Demo, ECHO, PROXY, ROOM, UPLOAD, USER};

#[tokio::main]
async fn main() -> ExitCode {
    let mut satellite = PathBuf::from("target/release/satellite");
    let mut check_only = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--satellite" => satellite = args.next().map(PathBuf::from).unwrap_or(satellite),
            "--check" => check_only = true,
            other => {
                eprintln!(
                    "unknown argument {other}; usage: satellite-demo [--satellite PATH] [--check]"
                );
                return ExitCode::from(2);
            }
        }
    }
    let demo = match Demo::start(&satellite).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "Prosody is running on 127.0.0.1 (c2s port {}, component port {})",
        demo.prosody.c2s_port, demo.prosody.component_port
    );
    println!(
        "satellite is running with {}",
        demo.dir.path().join("satellite.toml").display()
    );
    match demo.self_check().await {
        Ok(report) => {
            for line in report {
                println!("  ok  {line}");
            }
        }
        Err(e) => {
            eprintln!("demo: self-check failed: {e}");
            let _ = demo.stop().await;
            return ExitCode::FAILURE;
        }
    }
    if !check_only {
        println!();
        println!(
            "Connect any XMPP client to 127.0.0.1:{} as {USER}@localhost, password {}",
            demo.prosody.c2s_port, demo.password
        );
        println!("(plain authentication without TLS, loopback only): message {ECHO},");
        println!("share a file (HTTP upload at {UPLOAD}) or send one through {PROXY},");
        println!("or join the room {ROOM} (satellite's MUC).");
        println!(
            "satellite's log: {}",
            demo.dir.path().join("satellite.log").display()
        );
        println!("Press Ctrl-C to stop.");
        let _ = tokio::signal::ctrl_c().await;
    }
    match demo.stop().await {
        Ok(()) => {
            println!("stopped cleanly");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}
