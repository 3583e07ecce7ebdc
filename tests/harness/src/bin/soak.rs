//! `soak`: mixed load on all of satellite's bundled services in one
//! process, through a private Prosody on loopback (the demo's setup), for
//! `--minutes` (default 30): upload slots, PUTs and GETs of 16 and 256 KiB,
//! SOCKS5 bytestreams of 4 MiB through proxy65, echo round trips, MUC
//! traffic (groupchat messages between two occupants of one room, a
//! leave and rejoin every 20 rounds, an archive query every 10), and
//! hostile sockets held open on the upload and proxy65 ports (silent, or
//! sending half a request) and opened again when the service drops them;
//! one round a second at most.
//!
//! It samples satellite's RSS and open descriptors every 10 s and reports
//! the RSS growth after warm-up (the first fifth of the run, at least one
//! minute), the descriptors after the load stops against those before it
//! started, and the errors (failed operations, and ERROR lines in
//! satellite's log). Goal: growth < 5 %, descriptors back to baseline,
//! zero errors; the exit status says whether it was met.
//!
//! Run it with `bash scripts/soak.sh [--minutes N]`; not part of the tests.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use satellite_harness::Client;
use satellite_harness::c2s::{C2sClient, NS_CLIENT, name};
use satellite_harness::demo::{Demo, ECHO, MUC, PROXY, UPLOAD, USER};
use satellite_harness::http::{self, Body, Keep};
use satellite_harness::process::status_kib;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use xmpp_parsers::minidom::Element;

const NS_UPLOAD: &str = "urn:xmpp:http:upload:0";
const NS_BYTESTREAMS: &str = "http://jabber.org/protocol/bytestreams";
const T: Duration = Duration::from_secs(60);
/// Hostile sockets held on the upload port.
const HOSTILE_HTTP: usize = 16;
/// Hostile sockets held on the proxy65 port (below its
/// `max_connections_per_address`, 20, with room for the bytestreams: all
/// of them come from 127.0.0.1).
const HOSTILE_SOCKS: usize = 6;
/// The room the MUC traffic goes through.
const SOAK_ROOM: &str = "soak";
const NS_MUC: &str = "http://jabber.org/protocol/muc";
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// The shortest round.
const ROUND: Duration = Duration::from_secs(1);

#[tokio::main]
async fn main() -> ExitCode {
    let mut satellite = PathBuf::from("target/release/satellite");
    let mut minutes = 30.0f64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--satellite" => satellite = args.next().map(PathBuf::from).unwrap_or(satellite),
            "--minutes" => minutes = args.next().and_then(|m| m.parse().ok()).unwrap_or(minutes),
            other => {
                eprintln!("usage: soak [--satellite PATH] [--minutes N] (unknown: {other})");
                return ExitCode::from(2);
            }
        }
    }
    match soak(&satellite, Duration::from_secs_f64(minutes * 60.0)).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("soak: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One sample of satellite's resources.
#[derive(Clone, Copy)]
struct Sample {
    at: f64,
    rss_kib: u64,
    fds: usize,
}

fn sample(pid: u32, start: Instant) -> Sample {
    Sample {
        at: start.elapsed().as_secs_f64(),
        rss_kib: status_kib(pid, "VmRSS").unwrap_or(0),
        fds: std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count),
    }
}

/// satellite's pid: the process running the demo's config.
fn satellite_pid(config: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let text = String::from_utf8_lossy(&cmdline);
        (text.contains(config) && text.contains("run")).then_some(pid)
    })
}

/// The `listen` ports of the demo's config, in order (proxy65, upload).
fn listen_ports(config: &str) -> Vec<u16> {
    config
        .lines()
        .filter_map(|l| l.strip_prefix("listen = \"127.0.0.1:"))
        .filter_map(|l| l.trim_end_matches('"').parse().ok())
        .collect()
}

async fn soak(satellite: &std::path::Path, duration: Duration) -> Result<bool, String> {
    let demo = Demo::start(satellite).await?;
    let checked = demo.self_check().await?;
    let config_path = demo.dir.path().join("satellite.toml");
    let config = std::fs::read_to_string(&config_path).map_err(|e| e.to_string())?;
    let pid = satellite_pid(&config_path.to_string_lossy()).ok_or("satellite's pid not found")?;
    let ports = listen_ports(&config);
    let [proxy_port, http_port] = ports[..] else {
        return Err(format!("listen ports not found in the config: {ports:?}"));
    };
    println!(
        "soak: {:.1} min, satellite pid {pid}, proxy65 :{proxy_port}, upload :{http_port}; self-check: {} checks passed",
        duration.as_secs_f64() / 60.0,
        checked.len()
    );

    let jid = format!("{USER}@{}", demo.prosody.domain);
    let mut slots = C2sClient::connect(
        demo.prosody.c2s_port,
        &demo.prosody.domain,
        USER,
        &demo.password,
        "soak-slots",
    )
    .await
    .map_err(|e| format!("login: {e}"))?;
    let mut alice = Client::connect(demo.prosody.c2s_port, &jid, &demo.password).await;
    let mut bob = Client::connect(demo.prosody.c2s_port, &jid, &demo.password).await;

    let room = format!("{SOAK_ROOM}@{MUC}");
    muc_join(&mut alice, &room, "alice", true).await?;
    muc_join(&mut bob, &room, "bob", false).await?;

    let start = Instant::now();
    let before = sample(pid, start);
    let mut samples = vec![before];
    let mut last_sample = Instant::now();
    let mut hostile: Vec<(u16, TcpStream)> = Vec::new();
    let (mut rounds, mut errors, mut reopened) = (0u64, Vec::<String>::new(), 0usize);
    let (mut uploads, mut streams, mut echoes, mut groupchats) = (0u64, 0u64, 0u64, 0u64);
    let pattern: Vec<u8> = (0..4 * 1024 * 1024)
        .map(|i: usize| (i * 31 % 251) as u8)
        .collect();
    while start.elapsed() < duration {
        let round_started = Instant::now();
        rounds += 1;
        // Hostile sockets: those the services dropped are opened again.
        let before_len = hostile.len();
        hostile.retain(|(_, s)| {
            let mut probe = [0u8; 1];
            !matches!(s.try_read(&mut probe), Ok(0))
        });
        reopened += before_len - hostile.len();
        let held = |port: u16, h: &[(u16, TcpStream)]| h.iter().filter(|(p, _)| *p == port).count();
        for (port, want) in [(http_port, HOSTILE_HTTP), (proxy_port, HOSTILE_SOCKS)] {
            while held(port, &hostile) < want {
                let half = held(port, &hostile).is_multiple_of(2);
                match TcpStream::connect(("127.0.0.1", port)).await {
                    Ok(mut s) => {
                        if half {
                            // Half a request, then nothing.
                            let bytes: &[u8] = if port == http_port {
                                b"PUT /x HTTP/1.1\r\nHost: a\r\n"
                            } else {
                                &[5u8]
                            };
                            let _ = s.write_all(bytes).await;
                        }
                        hostile.push((port, s));
                    }
                    Err(e) => {
                        errors.push(format!("hostile connect :{port}: {e}"));
                        break;
                    }
                }
            }
        }
        // Uploads and downloads.
        for (i, size) in [16 * 1024, 256 * 1024].into_iter().enumerate() {
            match upload_round_trip(&mut slots, &format!("r{rounds}-{i}"), &pattern[..size]).await {
                Ok(()) => uploads += 1,
                Err(e) => errors.push(e),
            }
        }
        // A bytestream through proxy65.
        match bytestream(
            &mut alice,
            &bob.jid,
            proxy_port,
            &format!("s{rounds}"),
            4 * 1024 * 1024,
        )
        .await
        {
            Ok(()) => streams += 1,
            Err(e) => errors.push(e),
        }
        // Echo round trips.
        for i in 0..20 {
            let id = format!("e{rounds}-{i}");
            bob.send_raw(&format!(
                "<message to='{ECHO}' id='{id}' type='chat'><body>soak {id}</body></message>"
            ))
            .await;
            let reply = bob
                .recv_matching(
                    |e| e.name() == "message" && e.attr("id") == Some(id.as_str()),
                    T,
                )
                .await;
            if reply.get_child("body", "jabber:client").map(|b| b.text())
                == Some(format!("soak {id}"))
            {
                echoes += 1;
            } else {
                errors.push(format!("echo {id}: {reply:?}"));
            }
        }
        // MUC: messages between two occupants, a rejoin, an archive query.
        match muc_round(&mut alice, &mut bob, &room, rounds).await {
            Ok(n) => groupchats += n,
            Err(e) => errors.push(e),
        }
        let _ = bob.take_received(|_| true);
        let _ = alice.take_received(|_| true);
        if last_sample.elapsed() >= SAMPLE_EVERY {
            last_sample = Instant::now();
            let s = sample(pid, start);
            println!(
                "  {:>6.0} s: RSS {:.1} MiB, {} fds; {rounds} rounds, {uploads} uploads, {streams} bytestreams, {echoes} echoes, {groupchats} groupchat messages, {} errors",
                s.at,
                s.rss_kib as f64 / 1024.0,
                s.fds,
                errors.len()
            );
            samples.push(s);
        }
        if errors.len() > 100 {
            break;
        }
        // One round a second at most: the upload volume (272 KiB a
        // round, about 1 GB in 60 minutes) stays within the demo user's
        // daily quota.
        tokio::time::sleep(ROUND.saturating_sub(round_started.elapsed())).await;
    }
    // The load stops: hostile sockets close, clients leave; descriptors
    // should come back to where they were.
    drop(hostile);
    alice.disconnect().await;
    bob.disconnect().await;
    slots.close().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = sample(pid, start);
    let log_errors: Vec<String> = demo
        .log()
        .lines()
        .filter(|l| l.contains("ERROR"))
        .map(str::to_owned)
        .collect();

    let warm_up = (duration.as_secs_f64() / 5.0).max(60.0);
    let warm = samples
        .iter()
        .find(|s| s.at >= warm_up)
        .copied()
        .unwrap_or(before);
    let last = samples.last().copied().unwrap_or(before);
    let peak = samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
    let growth = if warm.rss_kib > 0 {
        (last.rss_kib as f64 - warm.rss_kib as f64) / warm.rss_kib as f64 * 100.0
    } else {
        0.0
    };
    for e in errors.iter().chain(&log_errors).take(20) {
        println!("  error: {e}");
    }
    println!(
        "\nsoak: {:.1} min, {rounds} rounds: {uploads} uploads (PUT + GET), {streams} bytestreams, {echoes} echo round trips, \
         {groupchats} groupchat messages; \
         {} hostile sockets dropped by satellite and opened again",
        start.elapsed().as_secs_f64() / 60.0,
        reopened
    );
    let growth_ok = growth < 5.0;
    let fds_ok = after.fds <= before.fds;
    let errors_ok = errors.is_empty() && log_errors.is_empty();
    println!(
        "SOAK SUMMARY: RSS {:.1} MiB after warm-up ({:.0} s), {:.1} MiB at the end, peak {:.1} MiB: growth {growth:+.1} % (goal < 5 %: {}); \
         descriptors {} before the load, {} after it (goal back to baseline: {}); errors {} + {} in the log (goal 0: {})",
        warm.rss_kib as f64 / 1024.0,
        warm.at,
        last.rss_kib as f64 / 1024.0,
        peak as f64 / 1024.0,
        if growth_ok { "MET" } else { "MISSED" },
        before.fds,
        after.fds,
        if fds_ok { "MET" } else { "MISSED" },
        errors.len(),
        log_errors.len(),
        if errors_ok { "MET" } else { "MISSED" },
    );
    demo.stop().await?;
    Ok(growth_ok && fds_ok && errors_ok)
}

/// Joins `room` as `nick` (without history); the creator also makes it
/// an instant room.
async fn muc_join(client: &mut Client, room: &str, nick: &str, create: bool) -> Result<(), String> {
    client
        .send_raw(&format!(
            "<presence to='{room}/{nick}'><x xmlns='{NS_MUC}'><history maxstanzas='0'/></x></presence>"
        ))
        .await;
    let own = format!("{room}/{nick}");
    let joined = client
        .recv_matching(
            |e| e.name() == "presence" && e.attr("from") == Some(own.as_str()),
            T,
        )
        .await;
    if joined.attr("type").is_some() {
        return Err(format!("joining {room} as {nick}: {joined:?}"));
    }
    if create {
        let reply = client
            .iq(&format!(
                "<iq type='set' id='soak-room' to='{room}'><query xmlns='{NS_MUC}#owner'>\
                 <x xmlns='jabber:x:data' type='submit'/></query></iq>"
            ))
            .await;
        if reply.attr("type") != Some("result") {
            return Err(format!("configuring {room}: {reply:?}"));
        }
    }
    Ok(())
}

/// Five groupchat messages from `alice`, each seen by `bob`; every 20th
/// round `bob` leaves and joins again, every 10th `alice` queries the
/// room's archive for its last 10 messages. Returns the messages seen.
async fn muc_round(
    alice: &mut Client,
    bob: &mut Client,
    room: &str,
    round: u64,
) -> Result<u64, String> {
    for i in 0..5 {
        let id = format!("g{round}-{i}");
        alice
            .send_raw(&format!(
                "<message to='{room}' id='{id}' type='groupchat'><body>soak {id}</body></message>"
            ))
            .await;
        let seen = bob
            .recv_matching(
                |e| e.name() == "message" && e.attr("id") == Some(id.as_str()),
                T,
            )
            .await;
        if seen.attr("type") != Some("groupchat") {
            return Err(format!("groupchat {id}: {seen:?}"));
        }
    }
    if round.is_multiple_of(20) {
        bob.send_raw(&format!("<presence to='{room}/bob' type='unavailable'/>"))
            .await;
        let own = format!("{room}/bob");
        bob.recv_matching(
            |e| {
                e.name() == "presence"
                    && e.attr("from") == Some(own.as_str())
                    && e.attr("type") == Some("unavailable")
            },
            T,
        )
        .await;
        muc_join(bob, room, "bob", false).await?;
    }
    if round.is_multiple_of(10) {
        let id = format!("mam{round}");
        let reply = alice
            .iq(&format!(
                "<iq type='set' id='{id}' to='{room}'><query xmlns='urn:xmpp:mam:2' queryid='{id}'>\
                 <set xmlns='http://jabber.org/protocol/rsm'><max>10</max><before/></set></query></iq>"
            ))
            .await;
        if reply.attr("type") != Some("result") {
            return Err(format!("archive query {id}: {reply:?}"));
        }
        let results = alice.take_received(|e| {
            e.name() == "message"
                && e.children()
                    .any(|r| r.name() == "result" && r.attr("queryid") == Some(id.as_str()))
        });
        if results.len() != 10 {
            return Err(format!(
                "archive query {id}: {} results, expected 10",
                results.len()
            ));
        }
    }
    Ok(5)
}

/// A slot, a PUT of `body`, a GET of it back.
async fn upload_round_trip(client: &mut C2sClient, tag: &str, body: &[u8]) -> Result<(), String> {
    let request = Element::builder("iq", NS_CLIENT)
        .attr(name("type"), "get")
        .attr(name("to"), UPLOAD)
        .attr(name("id"), tag)
        .append(
            Element::builder("request", NS_UPLOAD)
                .attr(name("filename"), format!("{tag}.bin"))
                .attr(name("size"), body.len().to_string())
                .attr(name("content-type"), "application/octet-stream")
                .build(),
        )
        .build();
    let reply = client
        .request(&request, T)
        .await
        .map_err(|e| format!("slot {tag}: {e}"))?;
    let slot = reply
        .get_child("slot", NS_UPLOAD)
        .ok_or_else(|| format!("slot {tag}: {}", String::from(&reply)))?;
    let put = slot
        .get_child("put", NS_UPLOAD)
        .and_then(|p| p.attr("url").map(|u| (p, u)));
    let get = slot.get_child("get", NS_UPLOAD).and_then(|g| g.attr("url"));
    let (Some((put, put_url)), Some(get_url)) = (put, get) else {
        return Err(format!("slot {tag}: no URLs"));
    };
    let headers: Vec<(String, String)> = put
        .children()
        .filter(|h| h.name() == "header")
        .map(|h| (h.attr("name").unwrap_or_default().to_owned(), h.text()))
        .collect();
    let mut h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    h.push(("Content-Type", "application/octet-stream"));
    let r = http::request("PUT", put_url, &h, Body::Bytes(body), Keep::Count, T)
        .await
        .map_err(|e| format!("PUT {tag}: {e}"))?;
    if r.status != 201 {
        return Err(format!("PUT {tag}: {}", r.status));
    }
    let r = http::request("GET", get_url, &[], Body::None, Keep::Count, T)
        .await
        .map_err(|e| format!("GET {tag}: {e}"))?;
    if r.status != 200 || r.body_len != body.len() as u64 {
        return Err(format!("GET {tag}: {} with {} bytes", r.status, r.body_len));
    }
    Ok(())
}

/// `bytes` from alice to bob through proxy65.
async fn bytestream(
    alice: &mut Client,
    bob_jid: &str,
    port: u16,
    sid: &str,
    bytes: usize,
) -> Result<(), String> {
    let hash: String = Sha1::digest(format!("{sid}{}{bob_jid}", alice.jid).as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut target = socks_connect(port, &hash).await?;
    let mut initiator = socks_connect(port, &hash).await?;
    let reply = alice
        .iq(&format!(
            "<iq type='set' id='act-{sid}' to='{PROXY}'><query xmlns='{NS_BYTESTREAMS}' sid='{sid}'><activate>{bob_jid}</activate></query></iq>"
        ))
        .await;
    if reply.attr("type") != Some("result") {
        return Err(format!("bytestream {sid}: activation failed: {reply:?}"));
    }
    let sender = tokio::spawn(async move {
        let chunk = vec![0x5a_u8; 64 * 1024];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len());
            initiator.write_all(&chunk[..n]).await?;
            left -= n;
        }
        initiator.shutdown().await
    });
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::time::timeout(T, target.read(&mut buf))
            .await
            .map_err(|_| format!("bytestream {sid}: stalled"))?
            .map_err(|e| format!("bytestream {sid}: {e}"))?;
        if n == 0 {
            break;
        }
        got += n;
    }
    sender
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("bytestream {sid}: send: {e}"))?;
    if got != bytes {
        return Err(format!("bytestream {sid}: {got} bytes of {bytes}"));
    }
    Ok(())
}

/// SOCKS5 CONNECT to 127.0.0.1:`port` for `hash`.
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
