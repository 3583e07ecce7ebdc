//! `satellite-bench`: echo round trips per second through a private Prosody,
//! Prosody's own XEP-0199 ping against the satellite echo example, with 1 and
//! with 32 requests in flight, plus the CPU time of Prosody and of the
//! component process over each phase (from /proc).
//!
//! Phases (each: a short warm-up, then `--seconds` measured):
//! - `prosody ping`: `<iq type='get' to='localhost'><ping/></iq>`, answered
//!   by Prosody's mod_ping (the baseline);
//! - `satellite ping`: the same ping to `echo.localhost`, answered by
//!   satellite through the component link;
//! - `satellite message`: `<message type='chat'>` to `echo.localhost`,
//!   echoed back by the echo service (matched by id);
//! - `raw component ping` (unless `--no-raw`): the same ping answered by a
//!   bare-bones component (this binary in `--raw-component` mode: one
//!   tokio-xmpp XML stream, no framework), the ceiling any component can
//!   reach through this Prosody on this machine.
//!
//! Run it with `bash scripts/bench.sh` (builds in release mode first).
//! A benchmark, not a test: it exits 0 when the targets are missed, and
//! non-zero only when something failed.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt as _};
use satellite_harness::Prosody;
use satellite_harness::c2s::{C2sClient, NS_PING, PipelineStats, chat, name, ping};
use satellite_harness::process::{Proc, clock_ticks, cpu_ticks, status_kib};
use tokio_xmpp::xmlstream::ReadError;
use xmpp_parsers::minidom::Element;

const USAGE: &str = "\
usage: satellite-bench [--satellite PATH] [--seconds N] [--warmup SECONDS]
                       [--in-flight N,M,...] [--clients N] [--no-raw]
                       [--prosody-log LEVEL]

  --satellite PATH     the satellite binary (default target/release/satellite)
  --seconds N          measured seconds per phase (default 5)
  --warmup SECONDS     unmeasured warm-up per phase (default 1)
  --in-flight LIST     requests in flight, comma-separated (default 1,32)
  --clients N          client connections sharing the requests in flight
                       (default 1)
  --no-raw             skip the bare-bones component baseline
  --prosody-log LEVEL  Prosody's log level during the run (default info;
                       the harness default, debug, costs Prosody much CPU)
";

const ECHO_JID: &str = "echo.localhost";
const RAW_JID: &str = "raw.localhost";
const ECHO_SECRET: &str = "bench-echo-secret";
const RAW_SECRET: &str = "bench-raw-secret";
const USER: &str = "bench";
const PASSWORD: &str = "bench-password";
const NS_COMPONENT: &str = "jabber:component:accept";
/// Text of the chat messages (a typical short chat line).
const BODY: &str = "The quick brown fox jumps over the lazy dog.";

/// Command-line options.
struct Options {
    satellite: PathBuf,
    seconds: f64,
    warmup: f64,
    in_flight: Vec<usize>,
    clients: usize,
    raw: bool,
    prosody_log: String,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        satellite: PathBuf::from("target/release/satellite"),
        seconds: 5.0,
        warmup: 1.0,
        in_flight: vec![1, 32],
        clients: 1,
        raw: true,
        prosody_log: "info".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |what: &str| args.next().ok_or_else(|| format!("{what} needs a value"));
        match arg.as_str() {
            "--satellite" => o.satellite = PathBuf::from(value("--satellite")?),
            "--seconds" => o.seconds = parse_positive(&value("--seconds")?, "--seconds")?,
            "--warmup" => {
                o.warmup = value("--warmup")?
                    .parse::<f64>()
                    .ok()
                    .filter(|w| *w >= 0.0)
                    .ok_or("--warmup needs a number >= 0")?;
            }
            "--in-flight" => {
                o.in_flight = value("--in-flight")?
                    .split(',')
                    .map(|n| n.trim().parse::<usize>().ok().filter(|n| *n > 0))
                    .collect::<Option<Vec<_>>>()
                    .ok_or("--in-flight needs positive integers, e.g. 1,32")?;
            }
            "--clients" => {
                o.clients = value("--clients")?
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or("--clients needs a positive integer")?;
            }
            "--no-raw" => o.raw = false,
            "--prosody-log" => {
                let level = value("--prosody-log")?;
                if !["debug", "info", "warn", "error"].contains(&level.as_str()) {
                    return Err("--prosody-log: one of debug, info, warn, error".into());
                }
                o.prosody_log = level;
            }
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(o)
}

fn parse_positive(s: &str, what: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| *v > 0.0)
        .ok_or_else(|| format!("{what} needs a positive number"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    // Internal mode: the bare-bones component, run as a child process so
    // that its CPU time can be read from /proc.
    if args.get(1).map(String::as_str) == Some("--raw-component") {
        return run_async(raw_component_main(args[2..].to_vec()));
    }
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("satellite-bench: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    run_async(bench(options))
}

/// Runs `fut` on a single-threaded runtime: the client should use as little
/// of the machine as it can, the servers need it.
fn run_async(fut: impl Future<Output = Result<(), String>>) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build the tokio runtime");
    match runtime.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("satellite-bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What a phase sends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    ProsodyPing,
    SatellitePing,
    SatelliteMessage,
    RawPing,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::ProsodyPing => "prosody ping (mod_ping)",
            Kind::SatellitePing => "satellite echo ping",
            Kind::SatelliteMessage => "satellite message echo",
            Kind::RawPing => "raw component ping",
        }
    }

    fn request(self, id: &str) -> Element {
        match self {
            Kind::ProsodyPing => ping("localhost", id),
            Kind::SatellitePing => ping(ECHO_JID, id),
            Kind::SatelliteMessage => chat(ECHO_JID, id, BODY),
            Kind::RawPing => ping(RAW_JID, id),
        }
    }
}

/// One measured phase.
struct PhaseResult {
    kind: Kind,
    in_flight: usize,
    stats: PipelineStats,
    cpu_prosody: f64,
    /// CPU of the process answering (satellite, or the raw component);
    /// for Prosody's own ping: satellite's (idle) CPU.
    cpu_component: f64,
    cpu_client: f64,
}

async fn bench(o: Options) -> Result<(), String> {
    if !o.satellite.exists() {
        return Err(format!(
            "{} not found (build it: cargo build --release -p satellite)",
            o.satellite.display()
        ));
    }
    let satellite_bin = std::fs::canonicalize(&o.satellite)
        .map_err(|e| format!("{}: {e}", o.satellite.display()))?;
    let ticks = clock_ticks();

    let mut components = vec![(ECHO_JID, ECHO_SECRET)];
    if o.raw {
        components.push((RAW_JID, RAW_SECRET));
    }
    // The harness logs at debug level to a file, which makes every stanza cost
    // Prosody several log lines; a benchmark wants a production-like level.
    let log_lua = format!(
        "log = {{ {{ levels = {{ min = {} }}, to = \"stdout\" }} }}",
        satellite_harness::prosody::lua_str(&o.prosody_log)
    );
    let prosody = Prosody::start(&components, &[(USER, PASSWORD)], &log_lua).await;
    let prosody_pid = prosody.pid().ok_or("Prosody has no pid")?;

    let workdir = tempfile::Builder::new()
        .prefix("satellite-bench-")
        .tempdir()
        .map_err(|e| format!("create a temp dir: {e}"))?;
    let mut satellite = Proc::satellite(
        &satellite_bin,
        workdir.path(),
        &format!(
            "[log]\nlevel = \"warn\"\n\n[[component]]\nservice = \"echo\"\njid = \"{ECHO_JID}\"\n\
             server = \"127.0.0.1:{}\"\nsecret = \"{ECHO_SECRET}\"\n",
            prosody.component_port
        ),
    )?;
    let mut raw = if o.raw {
        let me = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let port = prosody.component_port.to_string();
        Some(Proc::spawn(
            "raw component",
            &me,
            &["--raw-component", &port, RAW_JID, RAW_SECRET],
            workdir.path().join("raw-component.log"),
        )?)
    } else {
        None
    };

    let mut clients = Vec::with_capacity(o.clients);
    for i in 0..o.clients {
        let client = C2sClient::connect(
            prosody.c2s_port,
            &prosody.domain,
            USER,
            PASSWORD,
            &format!("bench{i}"),
        )
        .await
        .map_err(|e| {
            format!(
                "client login: {e}\n--- Prosody log ---\n{}",
                tail(&prosody.log())
            )
        })?;
        clients.push(client);
    }

    wait_answering(&mut clients[0], ECHO_JID, &mut satellite).await?;
    if let Some(raw) = raw.as_mut() {
        wait_answering(&mut clients[0], RAW_JID, raw).await?;
    }

    let mut kinds = vec![
        Kind::ProsodyPing,
        Kind::SatellitePing,
        Kind::SatelliteMessage,
    ];
    if o.raw {
        kinds.push(Kind::RawPing);
    }
    println!(
        "satellite-bench: {} s per phase after {} s warm-up, {} client connection(s), \
         Prosody log level {}, {} CPUs, clock ticks {ticks}/s",
        o.seconds,
        o.warmup,
        o.clients,
        o.prosody_log,
        std::thread::available_parallelism().map_or(0, usize::from),
    );
    println!(
        "pids: prosody {prosody_pid}, satellite {}{}",
        satellite.pid,
        raw.as_ref()
            .map(|r| format!(", raw component {}", r.pid))
            .unwrap_or_default()
    );

    let mut results = Vec::new();
    let mut serial = 0u64;
    for &in_flight in &o.in_flight {
        for &kind in &kinds {
            let component_pid = match kind {
                Kind::RawPing => raw.as_ref().map_or(satellite.pid, |r| r.pid),
                _ => satellite.pid,
            };
            if o.warmup > 0.0 {
                run_phase(&mut clients, kind, in_flight, o.warmup, &mut serial).await?;
            }
            let before = [
                cpu_ticks(prosody_pid)?,
                cpu_ticks(component_pid)?,
                cpu_ticks(std::process::id())?,
            ];
            let stats = run_phase(&mut clients, kind, in_flight, o.seconds, &mut serial).await?;
            let after = [
                cpu_ticks(prosody_pid)?,
                cpu_ticks(component_pid)?,
                cpu_ticks(std::process::id())?,
            ];
            let secs = |i: usize| (after[i] - before[i]) as f64 / ticks as f64;
            if stats.errors > 0 {
                return Err(format!(
                    "{} with {in_flight} in flight: {} error replies, the first: {}",
                    kind.label(),
                    stats.errors,
                    stats.first_error.unwrap_or_default()
                ));
            }
            let result = PhaseResult {
                kind,
                in_flight,
                stats,
                cpu_prosody: secs(0),
                cpu_component: secs(1),
                cpu_client: secs(2),
            };
            eprintln!(
                "  {:<24} {:>3} in flight: {:>8.0} rt/s",
                kind.label(),
                in_flight,
                result.stats.rate()
            );
            results.push(result);
            satellite.check_running()?;
        }
    }

    let peak_rss = status_kib(satellite.pid, "VmHWM");
    for client in clients {
        client.close().await;
    }
    if let Some(raw) = raw {
        let _ = raw.terminate().await;
    }
    let satellite_log = satellite.log_tail();
    let status = satellite.terminate().await?;

    print!("{}", report(&o, &results, kinds.len()));
    match peak_rss {
        Some(kib) => println!("satellite peak RSS (VmHWM): {:.1} MiB", kib as f64 / 1024.0),
        None => println!("satellite peak RSS (VmHWM): unavailable"),
    }
    println!("satellite exit status after SIGTERM: {status}");
    drop(prosody);
    if !status.success() {
        return Err(format!(
            "satellite exited with {status} after SIGTERM; its output:\n{satellite_log}"
        ));
    }
    Ok(())
}

/// Pings `jid` until it answers with a result (the component is connected),
/// for at most 30 s.
async fn wait_answering(client: &mut C2sClient, jid: &str, proc: &mut Proc) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    for n in 0u32.. {
        proc.check_running()?;
        if Instant::now() > deadline {
            return Err(format!(
                "{jid} did not answer a ping within 30 s (last reply: {last}); {} output:\n{}",
                proc.name,
                proc.log_tail()
            ));
        }
        match client
            .request(&ping(jid, &format!("ready-{n}")), Duration::from_secs(2))
            .await
        {
            Ok(reply) if reply.attr("type") == Some("result") => return Ok(()),
            Ok(reply) => last = String::from(&reply),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    unreachable!("the loop above only ends by returning")
}

/// `in_flight` requests of `kind` spread over the clients, for `seconds`.
async fn run_phase(
    clients: &mut [C2sClient],
    kind: Kind,
    in_flight: usize,
    seconds: f64,
    serial: &mut u64,
) -> Result<PipelineStats, String> {
    let duration = Duration::from_secs_f64(seconds);
    let n = clients.len();
    *serial += 1;
    let phase = *serial;
    let runs = clients.iter_mut().enumerate().filter_map(|(i, client)| {
        // Share the requests in flight as evenly as possible.
        let share = in_flight / n + usize::from(i < in_flight % n);
        (share > 0).then(|| {
            client.pipeline(share, duration, Duration::from_secs(10), move |k| {
                kind.request(&format!("b{phase}-{k}"))
            })
        })
    });
    let all = futures::future::try_join_all(runs)
        .await
        .map_err(|e| format!("{} with {in_flight} in flight: {e}", kind.label()))?;
    let mut total = PipelineStats {
        duration,
        ..PipelineStats::default()
    };
    for s in all {
        total.completed += s.completed;
        total.errors += s.errors;
        if total.first_error.is_none() {
            total.first_error = s.first_error;
        }
        total.latencies.extend(s.latencies);
    }
    Ok(total)
}

/// The results table and the verdict against the targets.
fn report(o: &Options, results: &[PhaseResult], per_row: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<24} | {:>9} | {:>8} | {:>8} | {:>7} | {:>7} | {:>11} | {:>13} | {:>9} | {:>10}",
        "phase",
        "in flight",
        "rt/s",
        "vs ping",
        "p50 ms",
        "p99 ms",
        "CPU prosody",
        "CPU component",
        "cpu ratio",
        "CPU client"
    );
    let _ = writeln!(out, "{}", "-".repeat(136));
    let baseline = |in_flight: usize| {
        results
            .iter()
            .find(|r| r.in_flight == in_flight && r.kind == Kind::ProsodyPing)
            .map_or(f64::NAN, |r| r.stats.rate())
    };
    for (i, r) in results.iter().enumerate() {
        if i > 0 && i % per_row == 0 {
            let _ = writeln!(out, "{}", "-".repeat(136));
        }
        let cpu_ratio = if r.kind == Kind::ProsodyPing {
            "-".to_owned()
        } else {
            percent(r.cpu_component, r.cpu_prosody)
        };
        let _ = writeln!(
            out,
            "{:<24} | {:>9} | {:>8.0} | {:>7.2}x | {:>7.3} | {:>7.3} | {:>10.2}s | {:>12.2}s | {:>9} | {:>9.2}s",
            r.kind.label(),
            r.in_flight,
            r.stats.rate(),
            r.stats.rate() / baseline(r.in_flight),
            ms(r.stats.percentile(0.5)),
            ms(r.stats.percentile(0.99)),
            r.cpu_prosody,
            r.cpu_component,
            cpu_ratio,
            r.cpu_client,
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:>9} | {:>17} | {:>24} | {:>6} | {:>27} | {:>6} | {:>13} | {:>15} | {:>9}",
        "in flight",
        "Prosody ping rt/s",
        "satellite echo-ping rt/s",
        "ratio",
        "satellite message echo rt/s",
        "ratio",
        "CPU prosody s",
        "CPU satellite s",
        "cpu ratio"
    );
    let find = |in_flight: usize, kind: Kind| {
        results
            .iter()
            .find(|r| r.in_flight == in_flight && r.kind == kind)
    };
    let mut worst_rate = f64::INFINITY;
    let mut worst_cpu = 0.0f64;
    let mut verdicts = Vec::new();
    for &in_flight in &o.in_flight {
        let (Some(p), Some(e), Some(m)) = (
            find(in_flight, Kind::ProsodyPing),
            find(in_flight, Kind::SatellitePing),
            find(in_flight, Kind::SatelliteMessage),
        ) else {
            continue;
        };
        let base = p.stats.rate();
        // CPU over both satellite phases (echo ping + message echo).
        let cpu_p = e.cpu_prosody + m.cpu_prosody;
        let cpu_s = e.cpu_component + m.cpu_component;
        let _ = writeln!(
            out,
            "{:>9} | {:>17.0} | {:>24.0} | {:>5.2}x | {:>27.0} | {:>5.2}x | {:>13.2} | {:>15.2} | {:>9}",
            in_flight,
            base,
            e.stats.rate(),
            e.stats.rate() / base,
            m.stats.rate(),
            m.stats.rate() / base,
            cpu_p,
            cpu_s,
            percent(cpu_s, cpu_p)
        );
        let rate_ratio = (e.stats.rate() / base).min(m.stats.rate() / base);
        worst_rate = worst_rate.min(rate_ratio);
        if cpu_p > 0.0 {
            worst_cpu = worst_cpu.max(cpu_s / cpu_p);
        }
        verdicts.push(format!("{in_flight} in flight {rate_ratio:.2}x"));
    }
    let _ = writeln!(
        out,
        "(CPU columns of this table: the satellite echo-ping and message-echo phases together)"
    );
    let _ = writeln!(out);
    if !verdicts.is_empty() {
        let _ = writeln!(
            out,
            "SUMMARY: satellite echo rate vs Prosody's own ping (target >= 1.00x): worst {} \
             [{}] -> {}; satellite CPU vs Prosody's (target <= 5%): worst {:.1}% -> {}",
            format_args!("{worst_rate:.2}x"),
            verdicts.join(", "),
            if worst_rate >= 1.0 { "MET" } else { "MISSED" },
            worst_cpu * 100.0,
            if worst_cpu <= 0.05 { "MET" } else { "MISSED" },
        );
    }
    out
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percent(part: f64, whole: f64) -> String {
    if whole > 0.0 {
        format!("{:.1}%", part / whole * 100.0)
    } else {
        "-".to_owned()
    }
}

fn tail(s: &str) -> &str {
    let start = s.len().saturating_sub(10_000);
    s.get(start..).unwrap_or(s)
}

// --- the bare-bones component (internal `--raw-component` mode) ---------

/// `--raw-component PORT JID SECRET`: connects to the component port, does
/// the XEP-0114 handshake and answers pings (and echoes chat messages) until
/// SIGTERM, with one XML stream and nothing else.
async fn raw_component_main(args: Vec<String>) -> Result<(), String> {
    let [port, jid, secret] = args.as_slice() else {
        return Err("usage: satellite-bench --raw-component PORT JID SECRET".into());
    };
    let port: u16 = port.parse().map_err(|e| format!("port {port:?}: {e}"))?;
    let mut stream = satellite_harness::raw_component::element_stream(port, jid, secret).await?;

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("SIGTERM handler: {e}"))?;
    let mut pending_replies: VecDeque<Element> = VecDeque::new();
    loop {
        let el = tokio::select! {
            _ = sigterm.recv() => return Ok(()),
            el = stream.next() => el,
        };
        let mut next = Some(el);
        // Answer everything already received, then flush once.
        while let Some(el) = next.take() {
            match el {
                Some(Ok(el)) => {
                    if let Some(reply) = raw_reply(&el) {
                        pending_replies.push_back(reply);
                    }
                }
                Some(Err(ReadError::SoftTimeout | ReadError::ParseError(_))) => {}
                Some(Err(e)) => return Err(format!("read: {e}")),
                None => return Err("the server closed the connection".into()),
            }
            next = futures::FutureExt::now_or_never(stream.next());
        }
        while let Some(reply) = pending_replies.pop_front() {
            stream
                .feed(&reply)
                .await
                .map_err(|e| format!("write: {e}"))?;
        }
        SinkExt::<&Element>::flush(&mut stream)
            .await
            .map_err(|e| format!("flush: {e}"))?;
    }
}

/// The raw component's answer: a result to a ping, the same text back to a
/// chat message.
fn raw_reply(el: &Element) -> Option<Element> {
    let from = el.attr("from")?;
    let to = el.attr("to")?;
    let id = el.attr("id").unwrap_or_default();
    match (el.name(), el.attr("type")) {
        ("iq", Some("get")) if el.has_child("ping", NS_PING) => Some(
            Element::builder("iq", NS_COMPONENT)
                .attr(name("type"), "result")
                .attr(name("from"), to)
                .attr(name("to"), from)
                .attr(name("id"), id)
                .build(),
        ),
        ("message", Some("chat")) => {
            let body = el.children().find(|c| c.name() == "body")?.text();
            Some(
                Element::builder("message", NS_COMPONENT)
                    .attr(name("type"), "chat")
                    .attr(name("from"), to)
                    .attr(name("to"), from)
                    .attr(name("id"), id)
                    .append(Element::builder("body", NS_COMPONENT).append(body))
                    .build(),
            )
        }
        _ => None,
    }
}
