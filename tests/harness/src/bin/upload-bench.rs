//! `upload-bench`: XEP-0363 uploads through one private Prosody, to
//! Prosody's own mod_http_file_share and to satellite's upload service,
//! with the same client (slots over a Rust c2s connection, HTTP with the
//! harness's plain HTTP/1.1 client), side by side with the ratios:
//!
//! - one large file (`--mb`, default 100 MiB): PUT and GET in MB/s;
//! - `--files` (200) files of `--file-kb` (16) KiB at once: slots, then all
//!   PUTs concurrently; files/s and PUT latency p50/p99;
//! - the CPU seconds of each server over each phase;
//! - satellite's peak RSS (VmHWM) over a `--big-mb` (1024 MiB) upload and
//!   download, run first on a fresh process.
//!
//! - the curl phase (`--curl-mb`, default 512 MiB, `--curl-runs` 5): the
//!   same file PUT and GET with curl against ejabberd's mod_http_upload,
//!   nginx serving satellite's stored copy with sendfile, and satellite;
//!   min/median/max and CPU seconds per GB (see `curl`).
//!
//! Run it with `bash scripts/bench-upload.sh`. A benchmark, not a test: it
//! fails only when something does not work.

#[path = "upload-bench/curl.rs"]
mod curl;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use satellite_harness::c2s::{C2sClient, NS_CLIENT, name};
use satellite_harness::http::{self, Body, Keep};
use satellite_harness::process::{Proc, cpu_seconds, status_kib};
use satellite_harness::{Prosody, free_port};
use xmpp_parsers::minidom::Element;

const USAGE: &str = "\
usage: upload-bench [--satellite PATH] [--mb N] [--files N] [--file-kb N] [--big-mb N]
                    [--no-prosody-large] [--settings TEXT]
                    [--curl-mb N] [--curl-runs N] [--only-curl]

  --satellite PATH     the satellite binary (default target/release/satellite)
  --mb N               size of the large file, MiB (default 100)
  --files N            files uploaded at once (default 200)
  --file-kb N          size of each of those, KiB (default 16)
  --big-mb N           satellite's RSS run, MiB (default 1024; 0 skips it)
  --no-prosody-large   skip Prosody's large-file phase (slow: minutes)
  --settings TEXT      extra [component.settings] lines for satellite, `;`-separated
  --curl-mb N          the curl phase's file, MiB (default 512; 0 skips the phase)
  --curl-runs N        curl transfers per server and direction (default 5)
  --only-curl          run the curl phase only
";

const NS: &str = "urn:xmpp:http:upload:0";
const PROSODY_SHARE: &str = "share.localhost";
const SATELLITE: &str = "upload.localhost";
const SECRET: &str = "bench-upload-secret";
const USER: &str = "bench";
const PASSWORD: &str = "bench-password";
const MIB: u64 = 1024 * 1024;
const T: Duration = Duration::from_secs(600);

struct Options {
    satellite: PathBuf,
    mb: u64,
    files: usize,
    file_kb: usize,
    big_mb: u64,
    prosody_large: bool,
    settings: String,
    curl_mb: u64,
    curl_runs: usize,
    only_curl: bool,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        satellite: PathBuf::from("target/release/satellite"),
        mb: 100,
        files: 200,
        file_kb: 16,
        big_mb: 1024,
        prosody_large: true,
        settings: String::new(),
        curl_mb: 512,
        curl_runs: 5,
        only_curl: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |what: &str| -> Result<u64, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{what} needs a number"))
        };
        match arg.as_str() {
            "--satellite" => {
                o.satellite = PathBuf::from(args.next().ok_or("--satellite needs a path")?)
            }
            "--mb" => o.mb = number("--mb")?.max(1),
            "--files" => o.files = number("--files")?.max(1) as usize,
            "--file-kb" => o.file_kb = number("--file-kb")?.max(1) as usize,
            "--big-mb" => o.big_mb = number("--big-mb")?,
            "--no-prosody-large" => o.prosody_large = false,
            "--curl-mb" => o.curl_mb = number("--curl-mb")?,
            "--curl-runs" => o.curl_runs = number("--curl-runs")?.max(1) as usize,
            "--only-curl" => o.only_curl = true,
            "--settings" => {
                o.settings = args
                    .next()
                    .ok_or("--settings needs a value")?
                    .replace(';', "\n")
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

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("upload-bench: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // One thread for the client: the servers get the rest of the machine.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build the tokio runtime");
    match runtime.block_on(bench(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("upload-bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A slot: where to PUT (with which headers) and where to GET.
struct Slot {
    put: String,
    headers: Vec<(String, String)>,
    get: String,
}

fn slot_request(to: &str, id: &str, filename: &str, size: u64) -> Element {
    Element::builder("iq", NS_CLIENT)
        .attr(name("type"), "get")
        .attr(name("to"), to)
        .attr(name("id"), id)
        .append(
            Element::builder("request", NS)
                .attr(name("filename"), filename)
                .attr(name("size"), size.to_string())
                .attr(name("content-type"), "application/octet-stream")
                .build(),
        )
        .build()
}

fn parse_slot(reply: &Element) -> Result<Slot, String> {
    let slot = reply
        .get_child("slot", NS)
        .ok_or_else(|| format!("no slot in {}", String::from(reply)))?;
    let put = slot.get_child("put", NS).ok_or("no <put/>")?;
    let get = slot.get_child("get", NS).ok_or("no <get/>")?;
    Ok(Slot {
        put: put.attr("url").ok_or("no put url")?.to_owned(),
        headers: put
            .children()
            .filter(|h| h.name() == "header")
            .map(|h| (h.attr("name").unwrap_or_default().to_owned(), h.text()))
            .collect(),
        get: get.attr("url").ok_or("no get url")?.to_owned(),
    })
}

/// `n` slots at once (pipelined on one connection).
async fn slots(
    client: &mut C2sClient,
    to: &str,
    tag: &str,
    size: u64,
    n: usize,
) -> Result<Vec<Slot>, String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("{tag}-{i}");
        client
            .feed(&slot_request(to, &id, &format!("{tag}-{i}.bin"), size))
            .await
            .map_err(|e| e.to_string())?;
        ids.push(id);
    }
    client.flush().await.map_err(|e| e.to_string())?;
    let mut replies: Vec<Option<Slot>> = (0..n).map(|_| None).collect();
    let mut left = n;
    let deadline = Instant::now() + Duration::from_secs(60);
    while left > 0 {
        let el = tokio::time::timeout_at(deadline.into(), client.recv())
            .await
            .map_err(|_| format!("{left} slot replies missing from {to}"))?
            .map_err(|e| e.to_string())?;
        let Some(i) = el
            .attr("id")
            .and_then(|id| ids.iter().position(|x| x == id))
        else {
            continue;
        };
        if el.attr("type") != Some("result") {
            return Err(format!("slot refused by {to}: {}", String::from(&el)));
        }
        replies[i] = Some(parse_slot(&el)?);
        left -= 1;
    }
    Ok(replies.into_iter().flatten().collect())
}

async fn put(slot: &Slot, body: Body<'_>) -> Result<(), String> {
    let mut headers: Vec<(&str, &str)> = slot
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    headers.push(("Content-Type", "application/octet-stream"));
    let r = http::request("PUT", &slot.put, &headers, body, Keep::Count, T)
        .await
        .map_err(|e| format!("PUT {}: {e}", slot.put))?;
    if !(200..300).contains(&r.status) {
        return Err(format!("PUT {}: {r:?}", slot.put));
    }
    Ok(())
}

async fn get(url: &str, expected: u64) -> Result<(), String> {
    let r = http::request("GET", url, &[], Body::None, Keep::Count, T)
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    if r.status != 200 || r.body_len != expected {
        return Err(format!(
            "GET {url}: {} with {} bytes of {expected}",
            r.status, r.body_len
        ));
    }
    Ok(())
}

/// Figures of one server.
#[derive(Default, Clone, Copy)]
struct Figures {
    put_mbs: Option<f64>,
    get_mbs: Option<f64>,
    large_cpu: f64,
    files_per_s: f64,
    put_p50_ms: f64,
    put_p99_ms: f64,
    many_cpu: f64,
}

async fn bench(o: Options) -> Result<(), String> {
    let satellite_bin = std::fs::canonicalize(&o.satellite).map_err(|e| {
        format!(
            "{}: {e} (build it: cargo build --release -p satellite)",
            o.satellite.display()
        )
    })?;
    let big = (o.mb.max(o.big_mb).max(o.curl_mb) + 16) * MIB;
    let share = format!(
        "Component \"{PROSODY_SHARE}\" \"http_file_share\"\n\
         \thttp_file_share_size_limit = {big}\n\
         \thttp_file_share_daily_quota = {}\n",
        big * 1000
    );
    let prosody = Prosody::start_with(
        &[(SATELLITE, SECRET)],
        &[(USER, PASSWORD)],
        // URLs say 127.0.0.1 (http_external_url): route that Host to the share.
        &format!(
            "log = {{ {{ levels = {{ min = \"warn\" }}, to = \"stdout\" }} }}\nhttp_default_host = \"{PROSODY_SHARE}\"\n"
        ),
        &share,
    )
    .await;
    let prosody_pid = prosody.pid().ok_or("Prosody has no pid")?;
    let dir = tempfile::Builder::new()
        .prefix("upload-bench-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    let http_port = free_port();
    let mut satellite = Proc::satellite(
        &satellite_bin,
        dir.path(),
        &format!(
            "[log]\nlevel = \"warn\"\n\n[[component]]\nservice = \"upload\"\njid = \"{SATELLITE}\"\n\
             server = \"127.0.0.1:{}\"\nsecret = \"{SECRET}\"\n[component.settings]\n\
             listen = \"127.0.0.1:{http_port}\"\nstorage_dir = \"{}\"\nallow = [\"localhost\"]\n\
             max_file_size = {big}\ndaily_quota = {}\nuser_quota = 0\n{}\n",
            prosody.component_port,
            dir.path().join("files").display(),
            big * 1000,
            o.settings
        ),
    )?;
    satellite
        .wait_ports(&[http_port], Duration::from_secs(20))
        .await?;
    let mut client = C2sClient::connect(prosody.c2s_port, &prosody.domain, USER, PASSWORD, "bench")
        .await
        .map_err(|e| format!("client login: {e}"))?;
    // The component is up once it answers a slot request.
    let mut ready = false;
    for i in 0..100 {
        let reply = client
            .request(
                &slot_request(SATELLITE, &format!("ready-{i}"), "r.bin", 1),
                Duration::from_secs(2),
            )
            .await;
        if matches!(&reply, Ok(r) if r.attr("type") == Some("result")) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !ready {
        return Err(format!(
            "satellite does not answer slot requests; its output:\n{}",
            satellite.log_tail()
        ));
    }
    println!(
        "upload-bench: one Prosody, {} CPUs; pids: prosody {prosody_pid}, satellite {}",
        std::thread::available_parallelism().map_or(0, usize::from),
        satellite.pid
    );

    if o.only_curl {
        return curl_phase(&o, &mut client, satellite, dir.path()).await;
    }

    // Satellite's memory over a large upload and download, on a fresh process.
    let mut rss = None;
    if o.big_mb > 0 {
        let size = o.big_mb * MIB;
        let before = status_kib(satellite.pid, "VmHWM").unwrap_or(0);
        let (put_rate, get_rate) = large_round_trip(&mut client, SATELLITE, "rss", size).await?;
        let after = status_kib(satellite.pid, "VmHWM").unwrap_or(0);
        eprintln!(
            "  satellite {} MiB: PUT {put_rate:.0} MB/s, GET {get_rate:.0} MB/s",
            o.big_mb
        );
        rss = Some((before, after, put_rate, get_rate));
    }

    let mut figures = [Figures::default(); 2];
    for (i, (jid, pid)) in [(PROSODY_SHARE, prosody_pid), (SATELLITE, satellite.pid)]
        .into_iter()
        .enumerate()
    {
        let f = &mut figures[i];
        if i == 1 || o.prosody_large {
            let size = o.mb * MIB;
            let cpu = cpu_seconds(pid);
            let (put_rate, get_rate) =
                large_round_trip(&mut client, jid, &format!("large{i}"), size).await?;
            (f.put_mbs, f.get_mbs) = (Some(put_rate), Some(get_rate));
            eprintln!(
                "  {jid}: {} MiB PUT {put_rate:.1} MB/s, GET {get_rate:.1} MB/s",
                o.mb
            );
            f.large_cpu = cpu_seconds(pid) - cpu;
        }
        let size = (o.file_kb * 1024) as u64;
        let body = vec![0x5au8; size as usize];
        let cpu = cpu_seconds(pid);
        let start = Instant::now();
        let many = slots(&mut client, jid, &format!("many{i}"), size, o.files).await?;
        let puts = many.iter().map(|s| {
            let body = &body;
            async move {
                let t = Instant::now();
                put(s, Body::Bytes(body)).await.map(|()| t.elapsed())
            }
        });
        let mut latencies = futures::future::try_join_all(puts).await?;
        let elapsed = start.elapsed().as_secs_f64();
        f.many_cpu = cpu_seconds(pid) - cpu;
        latencies.sort();
        let pct = |p: f64| {
            latencies
                .get(((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1))
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        f.files_per_s = o.files as f64 / elapsed;
        f.put_p50_ms = pct(0.50);
        f.put_p99_ms = pct(0.99);
        eprintln!(
            "  {jid}: {} x {} KiB: {:.0} files/s, PUT p99 {:.1} ms",
            o.files, o.file_kb, f.files_per_s, f.put_p99_ms
        );
        satellite.check_running()?;
    }

    report(&o, &figures, rss);
    let prosody_rss = status_kib(prosody_pid, "VmHWM");
    if let Some(kib) = prosody_rss {
        println!(
            "Prosody peak RSS over the run (VmHWM): {:.1} MiB",
            kib as f64 / 1024.0
        );
    }
    curl_phase(&o, &mut client, satellite, dir.path()).await
}

/// The curl phase (unless `--curl-mb 0`), then satellite's stop.
async fn curl_phase(
    o: &Options,
    client: &mut C2sClient,
    mut satellite: Proc,
    work: &std::path::Path,
) -> Result<(), String> {
    if o.curl_mb > 0 {
        curl::run(
            curl::Satellite {
                client,
                jid: SATELLITE,
                pid: satellite.pid,
                files: work.join("files").join("files"),
            },
            work,
            o.curl_mb,
            o.curl_runs,
        )
        .await?;
        satellite.check_running()?;
    }
    let status = satellite.terminate().await?;
    if !status.success() {
        return Err(format!("satellite exited with {status} after SIGTERM"));
    }
    Ok(())
}

/// 1 MiB of varied bytes (not all zeros).
fn pattern() -> Vec<u8> {
    (0..MIB as usize).map(|i| (i * 31 % 251) as u8).collect()
}

/// Runs `f` and returns MB/s for `bytes`.
async fn timed(bytes: u64, f: impl Future<Output = Result<(), String>>) -> Result<f64, String> {
    let start = Instant::now();
    f.await?;
    Ok(bytes as f64 / 1e6 / start.elapsed().as_secs_f64())
}

/// One `size`-byte file through the service at `jid`: slot, PUT, GET;
/// (PUT MB/s, GET MB/s).
async fn large_round_trip(
    client: &mut C2sClient,
    jid: &str,
    tag: &str,
    size: u64,
) -> Result<(f64, f64), String> {
    let s = slots(client, jid, tag, size, 1).await?.remove(0);
    let pattern = pattern();
    let body = Body::Repeat {
        chunk: &pattern,
        len: size,
    };
    let put_rate = timed(size, put(&s, body)).await?;
    let get_rate = timed(size, get(&s.get, size)).await?;
    Ok((put_rate, get_rate))
}

fn report(o: &Options, f: &[Figures; 2], rss: Option<(u64, u64, f64, f64)>) {
    let [p, s] = f;
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.1}x", a / b),
        _ => "-".to_owned(),
    };
    let num = |v: Option<f64>| v.map_or("not run".to_owned(), |v| format!("{v:.1}"));
    println!();
    println!(
        "{:<38} | {:>18} | {:>18} | {:>9}",
        "", "Prosody file_share", "satellite upload", "satellite/Prosody"
    );
    println!("{}", "-".repeat(94));
    let row = |what: &str, a: String, b: String, r: String| {
        println!("{what:<38} | {a:>18} | {b:>18} | {r:>9}");
    };
    row(
        &format!("{} MiB PUT, MB/s", o.mb),
        num(p.put_mbs),
        num(s.put_mbs),
        ratio(s.put_mbs, p.put_mbs),
    );
    row(
        &format!("{} MiB GET, MB/s", o.mb),
        num(p.get_mbs),
        num(s.get_mbs),
        ratio(s.get_mbs, p.get_mbs),
    );
    row(
        "  server CPU s (PUT + GET)",
        format!("{:.2}", p.large_cpu),
        format!("{:.2}", s.large_cpu),
        "-".to_owned(),
    );
    let title = format!("{} x {} KiB at once, files/s", o.files, o.file_kb);
    row(
        &title,
        format!("{:.0}", p.files_per_s),
        format!("{:.0}", s.files_per_s),
        ratio(Some(s.files_per_s), Some(p.files_per_s)),
    );
    row(
        "  PUT p50, ms",
        format!("{:.1}", p.put_p50_ms),
        format!("{:.1}", s.put_p50_ms),
        ratio(Some(p.put_p50_ms), Some(s.put_p50_ms)),
    );
    row(
        "  PUT p99, ms",
        format!("{:.1}", p.put_p99_ms),
        format!("{:.1}", s.put_p99_ms),
        ratio(Some(p.put_p99_ms), Some(s.put_p99_ms)),
    );
    row(
        "  server CPU s (slots + PUTs)",
        format!("{:.2}", p.many_cpu),
        format!("{:.2}", s.many_cpu),
        "-".to_owned(),
    );
    println!("(latency ratios: Prosody's over satellite's, so above 1x is faster)");
    if let Some((before, after, put, get)) = rss {
        println!(
            "satellite peak RSS (VmHWM): {:.1} MiB before, {:.1} MiB after a {} MiB upload ({put:.0} MB/s) and download ({get:.0} MB/s)",
            before as f64 / 1024.0,
            after as f64 / 1024.0,
            o.big_mb
        );
    }
    let target = |name: &str, v: Option<f64>, goal: f64| {
        v.map(|v| {
            format!(
                "{name} {v:.0} MB/s (target >= {goal:.0}: {})",
                if v >= goal { "MET" } else { "MISSED" }
            )
        })
        .unwrap_or_default()
    };
    println!(
        "SUMMARY: {}; {}; RSS {}",
        target("PUT", s.put_mbs, 1000.0),
        target("GET", s.get_mbs, 1500.0),
        rss.map_or("not measured".to_owned(), |(_, a, _, _)| format!(
            "{:.1} MiB (target < 64: {})",
            a as f64 / 1024.0,
            if a < 64 * 1024 { "MET" } else { "MISSED" }
        ))
    );
}
