//! muc-bench's tables: one per server, the server's own MUC and satellite
//! side by side with the ratio, then satellite with its archive on and the
//! trivial fan-out component (the ceiling), then the targets.

use crate::{Cpu, Figures, Options, Service};

/// The median (upper middle) of some values.
fn median(v: &[f64]) -> Option<f64> {
    let mut sorted = v.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied()
}

/// `median (min-max)`, or the one value, or `-`.
fn stat(v: &[f64], decimals: usize) -> String {
    let Some(med) = median(v) else {
        return "-".to_owned();
    };
    if v.len() == 1 {
        return format!("{med:.decimals$}");
    }
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{med:.decimals$} ({min:.decimals$}-{max:.decimals$})")
}

/// `a / b` of the medians, as `1.23x`.
fn ratio(a: &[f64], b: &[f64]) -> String {
    match (median(a), median(b)) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".to_owned(),
    }
}

fn server_cpu(v: &[Cpu]) -> Vec<f64> {
    v.iter().map(|c| c.server).collect()
}

fn satellite_cpu(v: &[Cpu]) -> Vec<f64> {
    v.iter().map(|c| c.satellite).collect()
}

/// Prints the table of one server. `figures` in the order of `services`:
/// the server's MUC, satellite, satellite with its archive, the fan-out.
pub fn report(
    o: &Options,
    title: &str,
    server: &str,
    services: &[Service],
    figures: &[Figures],
    server_peak_kib: Option<u64>,
) {
    let [theirs, ours, archive, fanout] = figures else {
        return;
    };
    println!();
    println!(
        "{title}: median (min-max) over {} runs; ratios of medians, above 1x means satellite does better",
        o.runs
    );
    let width = 22;
    println!(
        "{:<44} | {:>width$} | {:>width$} | {:>7} | {:>width$} | {:>width$}",
        "", services[0].label, services[1].label, "ratio", services[2].label, services[3].label
    );
    println!("{}", "-".repeat(44 + 4 * (width + 3) + 10));
    let row = |what: &str, a: String, b: String, r: String, c: String, d: String| {
        println!("{what:<44} | {a:>width$} | {b:>width$} | {r:>7} | {c:>width$} | {d:>width$}");
    };
    let dash = || "-".to_owned();
    row(
        &format!("paced 20 msg/s -> {}: latency p50, ms", o.occupants),
        stat(&theirs.paced_p50_ms, 2),
        stat(&ours.paced_p50_ms, 2),
        ratio(&theirs.paced_p50_ms, &ours.paced_p50_ms),
        dash(),
        dash(),
    );
    row(
        "  latency p99, ms",
        stat(&theirs.paced_p99_ms, 2),
        stat(&ours.paced_p99_ms, 2),
        ratio(&theirs.paced_p99_ms, &ours.paced_p99_ms),
        dash(),
        dash(),
    );
    row(
        &format!("  {server} CPU s"),
        stat(&server_cpu(&theirs.paced_cpu), 2),
        stat(&server_cpu(&ours.paced_cpu), 2),
        dash(),
        dash(),
        dash(),
    );
    row(
        "  satellite CPU s",
        stat(&satellite_cpu(&theirs.paced_cpu), 2),
        stat(&satellite_cpu(&ours.paced_cpu), 2),
        dash(),
        dash(),
        dash(),
    );
    row(
        &format!("blast {} -> {}: deliveries/s", o.blast, o.occupants),
        stat(&theirs.blast_rate, 0),
        stat(&ours.blast_rate, 0),
        ratio(&ours.blast_rate, &theirs.blast_rate),
        stat(&archive.blast_rate, 0),
        stat(&fanout.blast_rate, 0),
    );
    row(
        "  messages refused (an error to the sender)",
        stat(&theirs.blast_refused, 0),
        stat(&ours.blast_refused, 0),
        dash(),
        stat(&archive.blast_refused, 0),
        stat(&fanout.blast_refused, 0),
    );
    row(
        &format!("  {server} CPU s"),
        stat(&server_cpu(&theirs.blast_cpu), 2),
        stat(&server_cpu(&ours.blast_cpu), 2),
        dash(),
        stat(&server_cpu(&archive.blast_cpu), 2),
        stat(&server_cpu(&fanout.blast_cpu), 2),
    );
    row(
        "  satellite CPU s",
        stat(&satellite_cpu(&theirs.blast_cpu), 2),
        stat(&satellite_cpu(&ours.blast_cpu), 2),
        dash(),
        stat(&satellite_cpu(&archive.blast_cpu), 2),
        dash(),
    );
    if let (Some(a), Some(b)) = (theirs.big, ours.big) {
        let one = |v: f64| vec![v];
        row(
            &format!("{} join one room: all self-presences, s", o.big),
            format!("{:.2}", a.self_presences_s),
            format!("{:.2}", b.self_presences_s),
            ratio(&one(a.self_presences_s), &one(b.self_presences_s)),
            dash(),
            dash(),
        );
        row(
            "  all occupant presences delivered, s",
            format!("{:.2}", a.all_presences_s),
            format!("{:.2}", b.all_presences_s),
            ratio(&one(a.all_presences_s), &one(b.all_presences_s)),
            dash(),
            dash(),
        );
        row(
            "  occupant presences delivered",
            a.presences.to_string(),
            b.presences.to_string(),
            dash(),
            dash(),
            dash(),
        );
        row(
            &format!("  {server} CPU s / satellite CPU s"),
            format!("{:.2} / {:.2}", a.join_cpu.server, a.join_cpu.satellite),
            format!("{:.2} / {:.2}", b.join_cpu.server, b.join_cpu.satellite),
            dash(),
            dash(),
            dash(),
        );
        row(
            &format!("one message to {} occupants, ms", o.big),
            format!("{:.1}", a.message_ms),
            format!("{:.1}", b.message_ms),
            ratio(&one(a.message_ms), &one(b.message_ms)),
            dash(),
            dash(),
        );
        row(
            &format!("  {server} CPU s / satellite CPU s"),
            format!(
                "{:.2} / {:.2}",
                a.message_cpu.server, a.message_cpu.satellite
            ),
            format!(
                "{:.2} / {:.2}",
                b.message_cpu.server, b.message_cpu.satellite
            ),
            dash(),
            dash(),
            dash(),
        );
    }
    if let (Some(a), Some(b)) = (theirs.idle, ours.idle) {
        row(
            &format!(
                "{} rooms x {} idle: MUC RSS growth, MiB",
                o.idle_rooms, o.idle_size
            ),
            format!(
                "{:.1}",
                (a.rss_after_kib as f64 - a.rss_before_kib as f64) / 1024.0
            ),
            format!(
                "{:.1}",
                (b.rss_after_kib as f64 - b.rss_before_kib as f64) / 1024.0
            ),
            dash(),
            dash(),
            dash(),
        );
        row(
            "  bytes per idle occupant",
            format!("{:.0}", a.bytes_per_occupant()),
            format!("{:.0}", b.bytes_per_occupant()),
            ratio(&[a.bytes_per_occupant()], &[b.bytes_per_occupant()]),
            dash(),
            dash(),
        );
        row(
            "  RSS after, MiB",
            format!("{:.1}", a.rss_after_kib as f64 / 1024.0),
            format!("{:.1}", b.rss_after_kib as f64 / 1024.0),
            dash(),
            dash(),
            dash(),
        );
        row(
            "  time for all to join, s",
            format!("{:.2}", a.join_s),
            format!("{:.2}", b.join_s),
            ratio(&[a.join_s], &[b.join_s]),
            dash(),
            dash(),
        );
    }
    println!(
        "({} RSS: the whole server process, its c2s sessions included; satellite's: the satellite process{})",
        server,
        server_peak_kib.map_or(String::new(), |k| format!(
            "; {server} peak RSS over the run {:.0} MiB",
            k as f64 / 1024.0
        ))
    );
    targets(server, theirs, ours, fanout);
}

/// The targets, from the medians.
fn targets(server: &str, theirs: &Figures, ours: &Figures, fanout: &Figures) {
    let verdict = |ok: bool| if ok { "MET" } else { "MISSED" };
    let blast = median(&ours.blast_rate).unwrap_or(0.0)
        / median(&theirs.blast_rate).unwrap_or(f64::INFINITY);
    let ceiling = median(&fanout.blast_rate).unwrap_or(0.0)
        / median(&theirs.blast_rate).unwrap_or(f64::INFINITY);
    let goal = if server == "Prosody" { 1.5 } else { 1.0 };
    let mut line = format!(
        "TARGETS ({server}): blast {blast:.2}x its MUC (target >= {goal}: {}; the trivial fan-out reaches {ceiling:.2}x)",
        verdict(blast >= goal)
    );
    if let (Some(a), Some(b)) = (median(&theirs.paced_p99_ms), median(&ours.paced_p99_ms)) {
        line.push_str(&format!(
            "; paced p99 {b:.2} ms vs {a:.2} ms (target no worse: {})",
            verdict(b <= a)
        ));
    }
    let server_s = median(&server_cpu(&ours.blast_cpu)).unwrap_or(0.0);
    let ours_s = median(&satellite_cpu(&ours.blast_cpu)).unwrap_or(0.0);
    if server_s > 0.0 {
        let share = ours_s / server_s * 100.0;
        line.push_str(&format!(
            "; satellite CPU during the blast {share:.0}% of {server}'s (target <= 25%: {})",
            verdict(share <= 25.0)
        ));
    }
    if let Some(idle) = ours.idle {
        let b = idle.bytes_per_occupant();
        line.push_str(&format!(
            "; {b:.0} bytes per idle occupant (target <= 2048: {})",
            verdict(b <= 2048.0)
        ));
    }
    println!("{line}");
}
