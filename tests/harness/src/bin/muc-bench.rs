//! `muc-bench`: satellite's MUC against Prosody's own mod_muc on one
//! private Prosody (and against ejabberd's mod_muc on a private ejabberd),
//! with the same client (many Rust c2s connections in one process, one
//! thread), side by side with the ratios:
//!
//! - paced: 1 sender → `--occupants` (50) occupants at 20 messages/s for
//!   `--paced-seconds`; delivery latency p50/p99;
//! - blast: `--blast` (400) messages sent at once into that room;
//!   deliveries/s (first send to last delivery);
//! - one room of `--big` (1 000) occupants, all joining at once: time until
//!   every joiner has its self-presence, until every occupant presence is
//!   delivered, and for one message to reach everyone;
//! - `--idle-rooms` (1 000) rooms × `--idle-size` (5) idle occupants: the
//!   growth of the MUC's resident set (satellite's process; Prosody's for
//!   mod_muc) per occupant;
//! - CPU seconds of Prosody and of satellite over every phase.
//!
//! A trivial fan-out component (this binary in `--fanout-component` mode: one
//! XML stream, a room is a list of JIDs) runs the same blast: the ceiling of
//! any MUC component through this Prosody with this client. satellite with
//! its archive on (room default `archiving = true`) runs it too; the main
//! column has it off, as mod_muc without mod_muc_mam.
//!
//! Paced and blast figures are min/median/max over `--runs` runs, the
//! services taking turns. Run it with `bash scripts/bench-muc.sh`. A
//! benchmark, not a test: it fails only when something does not work.

#[path = "muc-bench/fanout.rs"]
mod fanout;
#[path = "muc-bench/pool.rs"]
mod pool;
#[path = "muc-bench/report.rs"]
mod report;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use satellite_harness::muc::{MucSetup, PROSODY_MUC, ProsodyMuc, SATELLITE_MUC};
use satellite_harness::process::{Proc, cpu_seconds, status_kib};
use satellite_harness::{Ejabberd, Prosody};

use pool::{POOL_PASSWORD, Pool, account, groupchat, join};
use report::report;

const USAGE: &str = "\
usage: muc-bench [--satellite PATH] [--quick] [--runs N] [--paced-seconds N]
                 [--occupants N] [--blast N] [--big N] [--idle-rooms N]
                 [--idle-size N] [--no-ejabberd] [--prosody-log LEVEL]

  --satellite PATH     the satellite binary (default target/release/satellite)
  --quick              --runs 3 --paced-seconds 2 --big 300 --idle-rooms 200
  --runs N             paced and blast runs per service (default 5)
  --paced-seconds N    seconds of paced messages per run (default 5)
  --occupants N        receiving occupants of the paced/blast room (default 50)
  --blast N            messages per blast (default 400)
  --big N              occupants of the big room (default 1000; 0 skips it)
  --idle-rooms N       idle rooms (default 1000; 0 skips them)
  --idle-size N        occupants per idle room (default 5)
  --no-ejabberd        skip the ejabberd part
  --prosody-log LEVEL  Prosody's log level (default warn; debug costs much CPU)
";

const SECRET: &str = "bench-muc-secret";
const ARCHIVE_MUC: &str = "archive.localhost";
const FANOUT: &str = "fanout.localhost";
const PACED_INTERVAL: Duration = Duration::from_millis(50);
/// satellite's `lane_limit` (stanzas waiting per room; default 256): above
/// the blast, which mod_muc takes whole (with the default, satellite
/// refuses part of a 400-message blast with resource-constraint).
const LANE_LIMIT: usize = 1024;

/// The command-line options.
#[derive(Clone)]
struct Options {
    satellite: PathBuf,
    runs: usize,
    paced_seconds: u64,
    occupants: usize,
    blast: usize,
    big: usize,
    idle_rooms: usize,
    idle_size: usize,
    ejabberd: bool,
    prosody_log: String,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        satellite: PathBuf::from("target/release/satellite"),
        runs: 5,
        paced_seconds: 5,
        occupants: 50,
        blast: 400,
        big: 1000,
        idle_rooms: 1000,
        idle_size: 5,
        ejabberd: true,
        prosody_log: "warn".to_owned(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |what: &str| -> Result<usize, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{what} needs a number"))
        };
        match arg.as_str() {
            "--satellite" => {
                o.satellite = PathBuf::from(args.next().ok_or("--satellite needs a path")?)
            }
            "--quick" => {
                o.runs = 3;
                o.paced_seconds = 2;
                o.big = 300;
                o.idle_rooms = 200;
            }
            "--runs" => o.runs = number("--runs")?.max(1),
            "--paced-seconds" => o.paced_seconds = number("--paced-seconds")?.max(1) as u64,
            "--occupants" => o.occupants = number("--occupants")?.max(1),
            "--blast" => o.blast = number("--blast")?.max(1),
            "--big" => o.big = number("--big")?,
            "--idle-rooms" => o.idle_rooms = number("--idle-rooms")?,
            "--idle-size" => o.idle_size = number("--idle-size")?.max(1),
            "--no-ejabberd" => o.ejabberd = false,
            "--prosody-log" => o.prosody_log = args.next().ok_or("--prosody-log needs a level")?,
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--fanout-component") {
        return run_async(fanout::main(args[2..].to_vec()));
    }
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("muc-bench: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = raise_nofile() {
        eprintln!("muc-bench: {e}");
        return ExitCode::FAILURE;
    }
    run_async(bench(options))
}

/// Raises the soft limit of open files to the hard one: thousands of
/// client connections, and the servers started from here inherit it.
fn raise_nofile() -> Result<(), String> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) =
        getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| format!("getrlimit NOFILE: {e}"))?;
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
        .map_err(|e| format!("setrlimit NOFILE {hard}: {e}"))
}

/// The open-files limit now (soft).
fn nofile() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).map_or(0, |l| l.0)
}

/// One thread for the client: the servers get the rest of the machine.
fn run_async(fut: impl Future<Output = Result<(), String>>) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build the tokio runtime");
    match runtime.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("muc-bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A MUC service under test.
#[derive(Clone)]
struct Service {
    label: &'static str,
    domain: &'static str,
    /// The process doing the MUC work besides the server (None: the server).
    pid: Option<u32>,
}

/// CPU seconds of the server and of satellite over a phase.
#[derive(Clone, Copy, Default)]
struct Cpu {
    server: f64,
    satellite: f64,
}

/// Reads the CPU time of the server and of satellite.
struct CpuMeter {
    server: u32,
    satellite: u32,
}

impl CpuMeter {
    fn now(&self) -> Cpu {
        Cpu {
            server: cpu_seconds(self.server),
            satellite: cpu_seconds(self.satellite),
        }
    }

    fn since(&self, start: Cpu) -> Cpu {
        let now = self.now();
        Cpu {
            server: now.server - start.server,
            satellite: now.satellite - start.satellite,
        }
    }
}

/// The figures of one service.
#[derive(Default, Clone)]
struct Figures {
    paced_p50_ms: Vec<f64>,
    paced_p99_ms: Vec<f64>,
    paced_cpu: Vec<Cpu>,
    blast_rate: Vec<f64>,
    blast_refused: Vec<f64>,
    blast_cpu: Vec<Cpu>,
    big: Option<BigRoom>,
    idle: Option<Idle>,
}

/// The big room's figures.
#[derive(Clone, Copy)]
struct BigRoom {
    self_presences_s: f64,
    all_presences_s: f64,
    presences: u64,
    join_cpu: Cpu,
    message_ms: f64,
    message_cpu: Cpu,
}

/// The idle rooms' figures.
#[derive(Clone, Copy)]
struct Idle {
    occupants: usize,
    rss_before_kib: u64,
    rss_after_kib: u64,
    join_s: f64,
}

impl Idle {
    fn bytes_per_occupant(&self) -> f64 {
        (self.rss_after_kib as f64 - self.rss_before_kib as f64) * 1024.0 / self.occupants as f64
    }
}

/// Phase tags: each phase counts only its own messages.
struct Tags(u64);

impl Tags {
    fn next(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

async fn bench(o: Options) -> Result<(), String> {
    let satellite_bin = std::fs::canonicalize(&o.satellite).map_err(|e| {
        format!(
            "{}: {e} (build it: cargo build --release -p satellite)",
            o.satellite.display()
        )
    })?;
    let me = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let conns = (o.occupants + 1).max(o.big).max(o.idle_rooms * o.idle_size);
    println!(
        "muc-bench: {} CPUs, {conns} client connections in one thread, open-files limit {}",
        std::thread::available_parallelism().map_or(0, usize::from),
        nofile()
    );
    let mut tags = Tags(0);
    prosody_part(&o, &satellite_bin, &me, conns, &mut tags).await?;
    if o.ejabberd {
        // Reported, not fatal: the Prosody tables are already out.
        if let Err(e) = ejabberd_part(&o, &satellite_bin, &me, &mut tags).await {
            println!("\nejabberd part FAILED: {e}");
        }
    }
    Ok(())
}

/// The satellite config: the MUC at `SATELLITE_MUC` with its archive off
/// and at `ARCHIVE_MUC` with it on, both on `port`.
fn satellite_config(dir: &Path, port: u16) -> String {
    let section = |jid: &str, db: &str, archiving: bool| {
        format!(
            "[[component]]\nservice = \"muc\"\njid = \"{jid}\"\nserver = \"127.0.0.1:{port}\"\n\
             secret = \"{SECRET}\"\nlane_limit = {LANE_LIMIT}\n[component.settings]\ndatabase = \"{}\"\nlock_rooms = false\n\
             [component.settings.room_defaults]\narchiving = {archiving}\n\n",
            dir.join(db).display()
        )
    };
    format!(
        "[log]\nlevel = \"warn\"\n\n{}{}",
        section(SATELLITE_MUC, "muc.sqlite", false),
        section(ARCHIVE_MUC, "archive.sqlite", true)
    )
}

async fn prosody_part(
    o: &Options,
    satellite_bin: &Path,
    me: &Path,
    conns: usize,
    tags: &mut Tags,
) -> Result<(), String> {
    let users: Vec<(String, String)> = (0..conns)
        .map(|i| (account(i), POOL_PASSWORD.to_owned()))
        .collect();
    let users: Vec<(&str, &str)> = users
        .iter()
        .map(|(u, p)| (u.as_str(), p.as_str()))
        .collect();
    let setup = MucSetup {
        extra_global_lua: format!(
            "log = {{ {{ levels = {{ min = \"{}\" }}, to = \"stdout\" }} }}\n",
            o.prosody_log
        ),
        ..MucSetup::default()
    };
    let muc = ProsodyMuc::new(PROSODY_MUC).extra_lua("muc_room_locking = false");
    let prosody = Prosody::start_with(
        &[
            (SATELLITE_MUC, SECRET),
            (ARCHIVE_MUC, SECRET),
            (FANOUT, SECRET),
        ],
        &users,
        &setup.global_lua(),
        &muc.lua(),
    )
    .await;
    let prosody_pid = prosody.pid().ok_or("Prosody has no pid")?;
    let dir = tempfile::Builder::new()
        .prefix("muc-bench-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    let mut satellite = Proc::satellite(
        satellite_bin,
        dir.path(),
        &satellite_config(dir.path(), prosody.component_port),
    )?;
    let port = prosody.component_port.to_string();
    let mut fanout = Proc::spawn(
        "fan-out component",
        me,
        &["--fanout-component", &port, FANOUT, SECRET],
        dir.path().join("fanout.log"),
    )?;
    let started = std::time::Instant::now();
    let pool = Pool::connect(prosody.c2s_port, &prosody.domain, conns, 32).await?;
    satellite.check_running()?;
    fanout.check_running()?;
    println!(
        "Prosody: {conns} logins in {:.1} s; pids: prosody {prosody_pid}, satellite {}, fan-out {}",
        started.elapsed().as_secs_f64(),
        satellite.pid,
        fanout.pid
    );
    let meter = CpuMeter {
        server: prosody_pid,
        satellite: satellite.pid,
    };
    let services = [
        Service {
            label: "Prosody mod_muc",
            domain: PROSODY_MUC,
            pid: None,
        },
        Service {
            label: "satellite",
            domain: SATELLITE_MUC,
            pid: Some(satellite.pid),
        },
        Service {
            label: "satellite, archive on",
            domain: ARCHIVE_MUC,
            pid: Some(satellite.pid),
        },
        Service {
            label: "trivial fan-out",
            domain: FANOUT,
            pid: Some(fanout.pid),
        },
    ];
    let figures = paced_and_blast(o, &pool, &meter, &services, tags).await?;
    satellite.check_running()?;
    fanout.check_running()?;

    let mut figures = figures;
    if o.big > 0 {
        for (i, s) in services.iter().take(2).enumerate() {
            figures[i].big = Some(big_room(o, &pool, &meter, s, tags).await?);
        }
    }
    if o.idle_rooms > 0 {
        for (i, s) in services.iter().take(2).enumerate() {
            let pid = s.pid.unwrap_or(prosody_pid);
            figures[i].idle = Some(idle_rooms(o, &pool, pid, s, tags).await?);
        }
    }
    satellite.check_running()?;
    report(
        o,
        "Prosody 0.12",
        "Prosody",
        &services,
        &figures,
        status_kib(prosody_pid, "VmHWM"),
    );
    pool.close();
    let _ = fanout.terminate().await;
    let status = satellite.terminate().await?;
    if !status.success() {
        return Err(format!("satellite exited with {status} after SIGTERM"));
    }
    Ok(())
}

async fn ejabberd_part(
    o: &Options,
    satellite_bin: &Path,
    me: &Path,
    tags: &mut Tags,
) -> Result<(), String> {
    let conns = o.occupants + 1;
    let users: Vec<(String, String)> = (0..conns)
        .map(|i| (account(i), POOL_PASSWORD.to_owned()))
        .collect();
    let users: Vec<(&str, &str)> = users
        .iter()
        .map(|(u, p)| (u.as_str(), p.as_str()))
        .collect();
    let modules = format!(
        "  mod_muc:\n    host: \"{PROSODY_MUC}\"\n    access: all\n    access_create: all\n    \
         access_persistent: all\n    max_users: 100000\n    max_user_conferences: 100000\n"
    );
    let ejabberd = Ejabberd::start_with(
        &[
            (SATELLITE_MUC, SECRET),
            (ARCHIVE_MUC, SECRET),
            (FANOUT, SECRET),
        ],
        &users,
        &modules,
    )
    .await;
    let ejabberd_pid = ejabberd.pid().ok_or("ejabberd has no pid")?;
    let dir = tempfile::Builder::new()
        .prefix("muc-bench-ejabberd-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    let mut satellite = Proc::satellite(
        satellite_bin,
        dir.path(),
        &satellite_config(dir.path(), ejabberd.component_port),
    )?;
    let port = ejabberd.component_port.to_string();
    let mut fanout = Proc::spawn(
        "fan-out component",
        me,
        &["--fanout-component", &port, FANOUT, SECRET],
        dir.path().join("fanout.log"),
    )?;
    let pool = Pool::connect(ejabberd.c2s_port, &ejabberd.domain, conns, 32).await?;
    satellite.check_running()?;
    fanout.check_running()?;
    println!(
        "ejabberd: pids: ejabberd (beam) {ejabberd_pid}, satellite {}, fan-out {}",
        satellite.pid, fanout.pid
    );
    let meter = CpuMeter {
        server: ejabberd_pid,
        satellite: satellite.pid,
    };
    let services = [
        Service {
            label: "ejabberd mod_muc",
            domain: PROSODY_MUC,
            pid: None,
        },
        Service {
            label: "satellite",
            domain: SATELLITE_MUC,
            pid: Some(satellite.pid),
        },
        Service {
            label: "satellite, archive on",
            domain: ARCHIVE_MUC,
            pid: Some(satellite.pid),
        },
        Service {
            label: "trivial fan-out",
            domain: FANOUT,
            pid: Some(fanout.pid),
        },
    ];
    let mut o = o.clone();
    (o.big, o.idle_rooms) = (0, 0);
    let figures = paced_and_blast(&o, &pool, &meter, &services, tags).await?;
    satellite.check_running()?;
    fanout.check_running()?;
    report(&o, "ejabberd 23.01", "ejabberd", &services, &figures, None);
    pool.close();
    let _ = fanout.terminate().await;
    let status = satellite.terminate().await?;
    if !status.success() {
        return Err(format!("satellite exited with {status} after SIGTERM"));
    }
    Ok(())
}

/// The room of the paced and blast phases at `domain`.
fn bench_room(domain: &str) -> String {
    format!("bench@{domain}")
}

/// Joins the sender (connection 0) and the occupants to each service's
/// bench room, warms up, then runs paced and blast `o.runs` times, the
/// services taking turns. Figures in the order of `services`.
async fn paced_and_blast(
    o: &Options,
    pool: &Pool,
    meter: &CpuMeter,
    services: &[Service],
    tags: &mut Tags,
) -> Result<Vec<Figures>, String> {
    for s in services {
        let room = bench_room(s.domain);
        first_join(pool, &room, tags)
            .await
            .map_err(|e| format!("{}: {e}", s.label))?;
        pool.observer.reset(tags.next(), None, false);
        for i in 1..=o.occupants {
            pool.conns[i].send(vec![join(&room, &format!("n{i}"))]);
        }
        pool.observer
            .wait(
                &format!("{}: {} occupants joining", s.label, o.occupants),
                Duration::from_secs(60),
                |seen| seen.joined >= o.occupants as u64,
            )
            .await?;
        // Warm-up: an unmeasured blast.
        blast(o, pool, meter, s, tags).await?;
    }
    let mut figures = vec![Figures::default(); services.len()];
    for run in 0..o.runs {
        for (i, s) in services.iter().enumerate() {
            // The archive and fan-out columns only blast.
            if i < 2 {
                let (p50, p99, cpu) = paced(o, pool, meter, s, tags).await?;
                figures[i].paced_p50_ms.push(p50);
                figures[i].paced_p99_ms.push(p99);
                figures[i].paced_cpu.push(cpu);
            }
            let (rate, refused, cpu) = blast(o, pool, meter, s, tags).await?;
            figures[i].blast_rate.push(rate);
            figures[i].blast_refused.push(refused as f64);
            figures[i].blast_cpu.push(cpu);
            eprintln!(
                "  run {}: {}: blast {rate:.0} deliveries/s, {refused} refused{}",
                run + 1,
                s.label,
                figures[i]
                    .paced_p99_ms
                    .get(run)
                    .map_or(String::new(), |p| format!(", paced p99 {p:.1} ms"))
            );
        }
    }
    Ok(figures)
}

/// Connection 0 joins `room` (creating it); retried while the service is
/// not connected yet.
async fn first_join(pool: &Pool, room: &str, tags: &mut Tags) -> Result<(), String> {
    let mut last = String::new();
    for _ in 0..60 {
        pool.observer.reset(tags.next(), None, false);
        pool.conns[0].send(vec![join(room, "sender")]);
        match pool
            .observer
            .wait(&format!("joining {room}"), Duration::from_secs(1), |s| {
                s.joined >= 1
            })
            .await
        {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(last)
}

/// 20 messages/s from connection 0 for `o.paced_seconds`: (p50 ms, p99 ms,
/// CPU).
async fn paced(
    o: &Options,
    pool: &Pool,
    meter: &CpuMeter,
    s: &Service,
    tags: &mut Tags,
) -> Result<(f64, f64, Cpu), String> {
    let room = bench_room(s.domain);
    let tag = tags.next();
    let n = (o.paced_seconds * 1000 / PACED_INTERVAL.as_millis() as u64) as usize;
    pool.observer.reset(tag, Some(0), true);
    let cpu = meter.now();
    let mut ticker = tokio::time::interval(PACED_INTERVAL);
    for _ in 0..n {
        ticker.tick().await;
        pool.conns[0].send(vec![groupchat(&room, tag, pool.observer.now_micros())]);
    }
    let expected = (n * o.occupants) as u64;
    pool.observer
        .wait(
            &format!("{}: paced deliveries", s.label),
            Duration::from_secs(30),
            |seen| seen.delivered >= expected,
        )
        .await?;
    let cpu = meter.since(cpu);
    let mut latencies = std::mem::take(&mut pool.observer.seen().latencies);
    latencies.sort_unstable();
    Ok((
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        cpu,
    ))
}

/// The `p`-quantile of sorted microseconds, in milliseconds.
fn percentile(sorted: &[u64], p: f64) -> f64 {
    let rank = ((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1);
    sorted.get(rank).map_or(0.0, |&us| us as f64 / 1000.0)
}

/// `o.blast` messages at once from connection 0: (deliveries/s, messages
/// refused, CPU).
async fn blast(
    o: &Options,
    pool: &Pool,
    meter: &CpuMeter,
    s: &Service,
    tags: &mut Tags,
) -> Result<(f64, u64, Cpu), String> {
    let room = bench_room(s.domain);
    let tag = tags.next();
    pool.observer.reset(tag, Some(0), false);
    let messages: Vec<_> = (0..o.blast)
        .map(|_| groupchat(&room, tag, pool.observer.now_micros()))
        .collect();
    let cpu = meter.now();
    let start = pool.observer.now();
    pool.conns[0].send(messages);
    let expected = (o.blast * o.occupants) as u64;
    // A refused message (an error back to the sender) is delivered to no one.
    let occupants = o.occupants as u64;
    pool.observer
        .wait(
            &format!("{}: blast deliveries", s.label),
            Duration::from_secs(120),
            |seen| seen.delivered + seen.errors * occupants >= expected,
        )
        .await?;
    let (elapsed, delivered, refused) = {
        let seen = pool.observer.seen();
        (
            seen.last_delivery.saturating_sub(start),
            seen.delivered,
            seen.errors,
        )
    };
    let cpu = meter.since(cpu);
    Ok((
        delivered as f64 / elapsed.as_secs_f64().max(1e-6),
        refused,
        cpu,
    ))
}

/// `o.big` occupants join one room at once, then one message to all.
async fn big_room(
    o: &Options,
    pool: &Pool,
    meter: &CpuMeter,
    s: &Service,
    tags: &mut Tags,
) -> Result<BigRoom, String> {
    let room = format!("big@{}", s.domain);
    let n = o.big;
    let cpu = meter.now();
    pool.observer.reset(tags.next(), None, false);
    let start = pool.observer.now();
    pool.conns[0].send(vec![join(&room, "b0")]);
    pool.observer
        .wait(
            &format!("{}: creating {room}", s.label),
            Duration::from_secs(30),
            |seen| seen.joined >= 1,
        )
        .await?;
    for i in 1..n {
        pool.conns[i].send(vec![join(&room, &format!("b{i}"))]);
    }
    let what = format!("{}: {n} occupants joining", s.label);
    pool.observer
        .wait(&what, Duration::from_secs(300), |seen| {
            seen.joined >= n as u64
        })
        .await?;
    // Every occupant learns of every other: n² occupant presences in all.
    let expected = (n * n) as u64;
    let quiet = Duration::from_secs(3);
    let observer = &pool.observer;
    observer
        .wait(&what, Duration::from_secs(300), |seen| {
            seen.presences >= expected || observer.now() > seen.last_presence + quiet
        })
        .await?;
    let (self_presences, all_presences, presences) = {
        let seen = observer.seen();
        (
            seen.last_join - start,
            seen.last_presence - start,
            seen.presences,
        )
    };
    let join_cpu = meter.since(cpu);
    eprintln!(
        "  {}: {n} occupants: self-presences after {:.1} s, all {presences} presences after {:.1} s",
        s.label,
        self_presences.as_secs_f64(),
        all_presences.as_secs_f64()
    );

    let tag = tags.next();
    observer.reset(tag, Some(0), false);
    let cpu = meter.now();
    let start = observer.now();
    pool.conns[0].send(vec![groupchat(&room, tag, observer.now_micros())]);
    observer
        .wait(
            &format!("{}: one message to {n}", s.label),
            Duration::from_secs(60),
            |seen| seen.delivered >= (n - 1) as u64,
        )
        .await?;
    let message = observer.seen().last_delivery - start;
    Ok(BigRoom {
        self_presences_s: self_presences.as_secs_f64(),
        all_presences_s: all_presences.as_secs_f64(),
        presences,
        join_cpu,
        message_ms: message.as_secs_f64() * 1000.0,
        message_cpu: meter.since(cpu),
    })
}

/// `o.idle_rooms` rooms of `o.idle_size` occupants each; the growth of
/// `pid`'s resident set.
async fn idle_rooms(
    o: &Options,
    pool: &Pool,
    pid: u32,
    s: &Service,
    tags: &mut Tags,
) -> Result<Idle, String> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before_kib = status_kib(pid, "VmRSS").ok_or("no VmRSS")?;
    let total = o.idle_rooms * o.idle_size;
    let start = pool.observer.now();
    pool.observer.reset(tags.next(), None, false);
    // In waves, so that the join traffic does not pile up.
    let wave = 500;
    let mut sent = 0;
    while sent < total {
        let end = (sent + wave).min(total);
        for k in sent..end {
            let (room, nick) = (k / o.idle_size, k % o.idle_size);
            pool.conns[k].send(vec![join(
                &format!("idle{room}@{}", s.domain),
                &format!("i{nick}"),
            )]);
        }
        sent = end;
        pool.observer
            .wait(
                &format!("{}: idle occupants joining", s.label),
                Duration::from_secs(120),
                |seen| seen.joined >= sent as u64,
            )
            .await?;
    }
    let join_s = (pool.observer.now() - start).as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after_kib = status_kib(pid, "VmRSS").ok_or("no VmRSS")?;
    let idle = Idle {
        occupants: total,
        rss_before_kib,
        rss_after_kib,
        join_s,
    };
    eprintln!(
        "  {}: {} rooms x {}: RSS {:.1} -> {:.1} MiB, {:.0} bytes per occupant",
        s.label,
        o.idle_rooms,
        o.idle_size,
        rss_before_kib as f64 / 1024.0,
        rss_after_kib as f64 / 1024.0,
        idle.bytes_per_occupant()
    );
    Ok(idle)
}
