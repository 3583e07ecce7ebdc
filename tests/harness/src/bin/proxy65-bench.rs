//! Relay throughput of XEP-0065 proxies, in one run on one private Prosody:
//! direct loopback (the machine's limit for this client), Prosody's own
//! mod_proxy65, and satellite's proxy65 (the `satellite` binary, attached
//! as an external component), relaying with its default user-space copy
//! loop and, for comparison, with splice(2) (`zero_copy = true`).
//! Prints MB/s (10^6 bytes per second) of each, the CPU seconds the proxy
//! process used, and the ratios.
//!
//! Run with: `bash scripts/bench-proxy65.sh` (options: `--mb N` bytes of
//! the single transfer in MB (default 256 MiB), `--streams N` and
//! `--stream-mb N` for the concurrent phase (default 20 × 16 MiB), `--runs
//! N` runs per contender, the median is reported,
//! `--satellite PATH`, `--settings "key = value; …"` extra settings for
//! satellite's default contender, e.g. `"buffer_size = 262144"`).
//!
//! Each transfer: two real slixmpp clients (alice, bob) are logged in;
//! bob's and alice's SOCKS5 connections are made (target first), alice
//! activates through the server, then the bench sends N MB from alice's
//! connection to bob's and times it until bob sees EOF. Sender and
//! receiver use 256 KiB reads and writes. Two tables: the client (sender
//! and receiver) on one thread, which leaves the proxy a core of its own as
//! on a real deployment, and on two threads, where client and proxy
//! compete for the cores (on a 2-core machine a third busy party costs
//! throughput whatever it does).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use satellite_harness::process::{Proc, cpu_seconds};
use satellite_harness::{Client, Prosody, free_port};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const NS: &str = "http://jabber.org/protocol/bytestreams";
const PROSODY_PROXY: &str = "proxy.localhost";
const SATELLITE_PROXY: &str = "proxy65.localhost";
const SATELLITE_SPLICE: &str = "proxy65-splice.localhost";
const SECRET: &str = "bench-secret-0123456789";
const IO_SIZE: usize = 256 * 1024;

struct Options {
    satellite: PathBuf,
    /// Extra `[component.settings]` lines for the default contender.
    settings: String,
    bytes: u64,
    runs: usize,
    /// Bytestreams at once in the concurrent phase, and bytes each.
    streams: usize,
    stream_bytes: u64,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        satellite: PathBuf::from("target/release/satellite"),
        settings: String::new(),
        bytes: 256 * 1024 * 1024,
        runs: 3,
        streams: 20,
        stream_bytes: 16 * 1024 * 1024,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--satellite" => o.satellite = PathBuf::from(value("--satellite")?),
            "--settings" => o.settings = value("--settings")?.replace(';', "\n") + "\n",
            "--mb" => {
                o.bytes = value("--mb")?
                    .parse::<u64>()
                    .map_err(|e| format!("--mb: {e}"))?
                    * 1_000_000
            }
            "--streams" => {
                o.streams = value("--streams")?
                    .parse::<usize>()
                    .map_err(|e| format!("--streams: {e}"))?
            }
            "--stream-mb" => {
                o.stream_bytes = value("--stream-mb")?
                    .parse::<u64>()
                    .map_err(|e| format!("--stream-mb: {e}"))?
                    * 1_000_000
            }
            "--runs" => {
                o.runs = value("--runs")?
                    .parse::<usize>()
                    .map_err(|e| format!("--runs: {e}"))?
                    .max(1)
            }
            other => {
                return Err(format!(
                    "unknown argument {other}; usage: proxy65-bench [--satellite PATH] [--mb N] [--runs N] [--streams N] [--stream-mb N] [--settings \"k = v; …\"]"
                ));
            }
        }
    }
    Ok(o)
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("proxy65-bench: {e}");
            return ExitCode::from(2);
        }
    };
    match run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("proxy65-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(o: Options) -> Result<(), String> {
    if !o.satellite.exists() {
        return Err(format!(
            "{} not found; build it with cargo build --release -p satellite",
            o.satellite.display()
        ));
    }
    let prosody_port = free_port();
    let satellite_port = free_port();
    let copy_port = free_port();
    let prosody = Prosody::start_with(
        &[(SATELLITE_PROXY, SECRET), (SATELLITE_SPLICE, SECRET)],
        &[("alice", "alice-pw"), ("bob", "bob-pw")],
        &format!(
            "proxy65_ports = {{ {prosody_port} }}\nproxy65_interfaces = {{ \"127.0.0.1\" }}\n"
        ),
        &format!("Component \"{PROSODY_PROXY}\" \"proxy65\"\n\tproxy65_address = \"127.0.0.1\"\n"),
    )
    .await;
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let satellite = start_satellite(&o, dir.path(), &prosody, satellite_port, copy_port).await?;
    let (mut alice, bob) = tokio::join!(
        Client::connect(prosody.c2s_port, "alice@localhost", "alice-pw"),
        Client::connect(prosody.c2s_port, "bob@localhost", "bob-pw"),
    );
    let prosody_pid = prosody.pid().unwrap_or(0);
    let satellite_pid = satellite.pid;

    let ports = Ports {
        prosody: (prosody_port, prosody_pid),
        satellite: (satellite_port, satellite_pid),
        copy: (copy_port, satellite_pid),
    };
    for threads in [1, 2] {
        println!();
        if threads == 1 {
            println!(
                "== client on one thread (sender and receiver share it; the proxy has the other core,"
            );
            println!("   as when the proxy runs on its own machine)");
        } else {
            println!("== client on two threads (client and proxy compete for both cores)");
        }
        println!(
            "   median of {} runs, {} KiB client reads/writes",
            o.runs,
            IO_SIZE / 1024
        );
        measure(&o, &mut alice, &bob.jid, &ports, threads).await?;
    }
    let _ = satellite.terminate().await;
    Ok(())
}

/// (SOCKS5 port, pid) of each proxy.
struct Ports {
    prosody: (u16, u32),
    satellite: (u16, u32),
    copy: (u16, u32),
}

/// One table: every contender `o.runs` times, interleaved, with one
/// bytestream of `o.bytes`, then `o.streams` bytestreams of
/// `o.stream_bytes` at once (aggregate MB/s).
async fn measure(
    o: &Options,
    alice: &mut Client,
    bob: &str,
    ports: &Ports,
    threads: usize,
) -> Result<(), String> {
    let mut shapes = vec![(1, o.bytes)];
    if o.streams > 0 {
        shapes.push((o.streams, o.stream_bytes));
    }
    for (streams, bytes) in shapes {
        let mut results: [Vec<(f64, f64)>; 4] = Default::default();
        for run in 0..o.runs {
            results[0].push((direct(streams, bytes, threads).await?, 0.0));
            let contenders = [
                (PROSODY_PROXY, ports.prosody),
                (SATELLITE_PROXY, ports.satellite),
                (SATELLITE_SPLICE, ports.copy),
            ];
            for (i, (jid, (port, pid))) in contenders.into_iter().enumerate() {
                let mut pairs = Vec::with_capacity(streams);
                for k in 0..streams {
                    let sid = format!("bench-{threads}-{streams}-{run}-{i}-{k}");
                    pairs.push(through_proxy(alice, bob, jid, port, &sid).await?);
                }
                let cpu_before = cpu_seconds(pid);
                let rate = time_transfers(pairs, bytes, threads).await?;
                let cpu = cpu_seconds(pid) - cpu_before;
                results[i + 1].push((rate, cpu));
            }
        }
        let [d, p, s, c] = results.map(median);
        if streams == 1 {
            println!("   one bytestream of {} MB:", bytes / 1_000_000);
        } else {
            println!(
                "   {streams} bytestreams of {} MB at once (aggregate):",
                bytes / 1_000_000
            );
        }
        println!("   {:<34} {:>10} {:>14}", "", "MB/s", "proxy CPU s");
        let row = |name: &str, (rate, cpu): (f64, f64)| {
            println!("   {name:<34} {rate:>10.0} {cpu:>14.2}");
        };
        println!(
            "   {:<34} {:>10.0} {:>14}",
            "direct loopback (no proxy)", d.0, "-"
        );
        row("Prosody mod_proxy65", p);
        row("satellite proxy65 (default, copy)", s);
        row("satellite proxy65 (splice)", c);
        println!(
            "   satellite / direct loopback: {:>6.1} %",
            100.0 * s.0 / d.0
        );
        println!("   satellite / Prosody:         {:>6.1} x", s.0 / p.0);
        println!(
            "   Prosody / direct loopback:   {:>6.1} %",
            100.0 * p.0 / d.0
        );
        println!(
            "   splice / direct loopback:    {:>6.1} %",
            100.0 * c.0 / d.0
        );
    }
    Ok(())
}

async fn start_satellite(
    o: &Options,
    dir: &Path,
    prosody: &Prosody,
    port: u16,
    copy_port: u16,
) -> Result<Proc, String> {
    let component = |jid: &str, port: u16, extra: &str| {
        format!(
            "\n[[component]]\nservice = \"proxy65\"\njid = \"{jid}\"\nserver = \"127.0.0.1:{}\"\n\
             secret = \"{SECRET}\"\n[component.settings]\nlisten = \"127.0.0.1:{port}\"\n\
             max_connections_per_jid = 1000\nmax_connections_per_address = 1000\n{extra}",
            prosody.component_port
        )
    };
    // One user opens all the concurrent bytestreams from one address: lift
    // the per-JID and per-address caps (10 and 20 by default), which
    // Prosody's proxy does not have.
    let text = format!(
        "[log]\nlevel = \"warn\"\n{}{}",
        component(SATELLITE_PROXY, port, &o.settings),
        component(SATELLITE_SPLICE, copy_port, "zero_copy = true\n")
    );
    let mut satellite = Proc::satellite(&o.satellite, dir, &text)?;
    satellite
        .wait_ports(&[port, copy_port], Duration::from_secs(20))
        .await?;
    Ok(satellite)
}

/// Aggregate MB/s of `streams` plain loopback TCP connections.
async fn direct(streams: usize, bytes: u64, threads: usize) -> Result<f64, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
    let mut pairs = Vec::with_capacity(streams);
    for _ in 0..streams {
        let (sender, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let sender = sender.map_err(|e| e.to_string())?;
        let (receiver, _) = accepted.map_err(|e| e.to_string())?;
        pairs.push((sender, receiver));
    }
    time_transfers(pairs, bytes, threads).await
}

/// An activated bytestream through the proxy at `jid` (SOCKS5 port
/// `port`): (initiator, target).
async fn through_proxy(
    alice: &mut Client,
    bob_jid: &str,
    jid: &str,
    port: u16,
    sid: &str,
) -> Result<(TcpStream, TcpStream), String> {
    let hash: String = Sha1::digest(format!("{sid}{}{bob_jid}", alice.jid).as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let target = socks_connect(port, &hash).await?;
    let initiator = socks_connect(port, &hash).await?;
    let reply = alice
        .iq(&format!(
            "<iq type='set' id='act-{sid}' to='{jid}'><query xmlns='{NS}' sid='{sid}'><activate>{bob_jid}</activate></query></iq>"
        ))
        .await;
    if reply.attr("type") != Some("result") {
        return Err(format!("{jid}: activation failed: {reply:?}"));
    }
    Ok((initiator, target))
}

/// SOCKS5 CONNECT to 127.0.0.1:`port` for `hash`; greeting and request in
/// separate segments, each after the previous reply (Prosody's proxy
/// needs that).
async fn socks_connect(port: u16, hash: &str) -> Result<TcpStream, String> {
    let io = |e: std::io::Error| format!("SOCKS5 on port {port}: {e}");
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.map_err(io)?;
    s.write_all(&[5, 1, 0]).await.map_err(io)?;
    let mut method = [0u8; 2];
    s.read_exact(&mut method).await.map_err(io)?;
    let mut request = vec![5, 1, 0, 3, hash.len() as u8];
    request.extend_from_slice(hash.as_bytes());
    request.extend_from_slice(&[0, 0]);
    s.write_all(&request).await.map_err(io)?;
    let mut reply = [0u8; 5];
    s.read_exact(&mut reply).await.map_err(io)?;
    let mut rest = vec![0u8; usize::from(reply[4]) + 2];
    s.read_exact(&mut rest).await.map_err(io)?;
    if method != [5, 0] || reply[1] != 0 {
        return Err(format!(
            "SOCKS5 on port {port}: refused ({method:?}, {reply:?})"
        ));
    }
    Ok(s)
}

/// Sends `bytes` through each (sender, receiver) pair, all at once, on a
/// client runtime of `threads` threads; aggregate MB/s from the first
/// write to the last EOF.
async fn time_transfers(
    pairs: Vec<(TcpStream, TcpStream)>,
    bytes: u64,
    threads: usize,
) -> Result<f64, String> {
    let total = bytes * pairs.len() as u64;
    let pairs = pairs
        .into_iter()
        .map(|(tx, rx)| Ok((tx.into_std()?, rx.into_std()?)))
        .collect::<Result<Vec<_>, std::io::Error>>()
        .map_err(|e| e.to_string())?;
    let client = std::thread::spawn(move || {
        let mut builder = if threads == 1 {
            tokio::runtime::Builder::new_current_thread()
        } else {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(threads);
            b
        };
        let runtime = builder
            .enable_all()
            .build()
            .map_err(|e| format!("client runtime: {e}"))?;
        runtime.block_on(async move {
            let started = Instant::now();
            let mut tasks = Vec::new();
            for (tx, rx) in pairs {
                let tx = TcpStream::from_std(tx).map_err(|e| e.to_string())?;
                let rx = TcpStream::from_std(rx).map_err(|e| e.to_string())?;
                tasks.push(tokio::spawn(send_and_receive(tx, rx, bytes)));
            }
            for t in tasks {
                t.await.map_err(|e| format!("transfer: {e}"))??;
            }
            Ok(total as f64 / 1e6 / started.elapsed().as_secs_f64())
        })
    });
    tokio::task::spawn_blocking(move || client.join())
        .await
        .map_err(|e| format!("client thread: {e}"))?
        .map_err(|_| "client thread panicked".to_owned())?
}

/// Sends `bytes` from `tx` and reads them all from `rx`.
async fn send_and_receive(mut tx: TcpStream, mut rx: TcpStream, bytes: u64) -> Result<(), String> {
    let sender = tokio::spawn(async move {
        let chunk = vec![0x5a_u8; IO_SIZE];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(IO_SIZE as u64) as usize;
            tx.write_all(&chunk[..n]).await?;
            left -= n as u64;
        }
        tx.shutdown().await
    });
    let mut buf = vec![0u8; IO_SIZE];
    let mut got = 0u64;
    loop {
        let n = rx
            .read(&mut buf)
            .await
            .map_err(|e| format!("receive: {e}"))?;
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    sender
        .await
        .map_err(|e| format!("sender: {e}"))?
        .map_err(|e| format!("send: {e}"))?;
    if got != bytes {
        return Err(format!("received {got} bytes of {bytes}"));
    }
    Ok(())
}

fn median(mut v: Vec<(f64, f64)>) -> (f64, f64) {
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v.get(v.len() / 2).copied().unwrap_or((0.0, 0.0))
}
