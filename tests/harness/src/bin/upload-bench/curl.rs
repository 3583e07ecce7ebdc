//! The curl phase: one large file PUT and GET with curl (what a
//! client's HTTP stack does, not the harness's client), `runs` times each,
//! against ejabberd's mod_http_upload, nginx serving the same stored file
//! with `sendfile on` (what operators put in front), and satellite; min /
//! median / max MB/s and the server's CPU seconds per GB.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use satellite_harness::c2s::C2sClient;
use satellite_harness::process::cpu_seconds;
use satellite_harness::{Ejabberd, free_port};

use super::{MIB, Slot, pattern, slots};

/// ejabberd's upload host (mod_http_upload's default `upload.@HOST@`).
const EJABBERD_UPLOAD: &str = "upload.localhost";

/// MB/s and CPU seconds of one server over `runs` transfers.
#[derive(Default)]
pub struct Series {
    /// MB/s of each run.
    pub rates: Vec<f64>,
    /// The server's CPU seconds over all runs.
    pub cpu: f64,
    /// Bytes moved over all runs.
    pub bytes: u64,
}

impl Series {
    fn stats(&self) -> Option<(f64, f64, f64)> {
        let mut r = self.rates.clone();
        r.sort_by(f64::total_cmp);
        Some((*r.first()?, r[r.len() / 2], *r.last()?))
    }

    fn median(&self) -> Option<f64> {
        self.stats().map(|s| s.1)
    }

    fn min(&self) -> Option<f64> {
        self.stats().map(|s| s.0)
    }

    fn cpu_per_gb(&self) -> f64 {
        if self.bytes == 0 {
            0.0
        } else {
            self.cpu / (self.bytes as f64 / 1e9)
        }
    }

    fn row(&self, what: &str) {
        match self.stats() {
            Some((min, med, max)) => println!(
                "{what:<28} | {min:>8.0} | {med:>8.0} | {max:>8.0} | {:>6.2} s | {:>6.2} s/GB",
                self.cpu,
                self.cpu_per_gb()
            ),
            None => println!("{what:<28} | not run"),
        }
    }
}

/// What the phase needs of the running satellite.
pub struct Satellite<'a> {
    /// Its c2s client on Prosody.
    pub client: &'a mut C2sClient,
    /// Its component JID.
    pub jid: &'a str,
    /// Its pid.
    pub pid: u32,
    /// Its `files` directory (nginx serves from there).
    pub files: PathBuf,
}

/// Runs the phase with a `mb` MiB file, `runs` transfers each.
pub async fn run(sat: Satellite<'_>, work: &Path, mb: u64, runs: usize) -> Result<(), String> {
    let size = mb * MIB;
    let source = work.join("curl-source.bin");
    write_source(&source, size)?;
    println!("\ncurl phase: {mb} MiB, {runs} runs each (curl -T / -o /dev/null)");

    // satellite
    let mut s_put = Series::default();
    let mut s_get = Series::default();
    let mut last = None;
    for i in 0..runs {
        let slot = slots(sat.client, sat.jid, &format!("curl{i}"), size, 1)
            .await?
            .remove(0);
        s_put
            .push(sat.pid, size, || curl_put(&slot, &source))
            .await?;
        last = Some(slot);
    }
    let stored = last.ok_or("no run")?;
    for _ in 0..runs {
        s_get
            .push(sat.pid, size, || curl_get(&stored.get, size))
            .await?;
    }
    eprintln!("  satellite: PUT {:?} GET {:?}", s_put.rates, s_get.rates);

    // nginx, serving satellite's stored file.
    let (n_get, nginx_note) = match nginx_series(&sat.files, &stored.get, work, size, runs).await {
        Ok(s) => (s, String::new()),
        Err(e) => (Series::default(), format!(" (nginx: {e})")),
    };

    // ejabberd's mod_http_upload.
    let (e_put, e_get, ejabberd_note) = match ejabberd_series(work, &source, size, runs).await {
        Ok((p, g)) => (p, g, String::new()),
        Err(e) => (
            Series::default(),
            Series::default(),
            format!(" (ejabberd: {e})"),
        ),
    };

    println!(
        "\n{:<28} | {:>8} | {:>8} | {:>8} | {:>8} | {:>11}",
        format!("{mb} MiB with curl, MB/s"),
        "min",
        "median",
        "max",
        "CPU",
        "CPU per GB"
    );
    println!("{}", "-".repeat(86));
    e_put.row("PUT ejabberd mod_http_upload");
    s_put.row("PUT satellite");
    e_get.row("GET ejabberd mod_http_upload");
    n_get.row("GET nginx (sendfile on)");
    s_get.row("GET satellite");
    println!("{nginx_note}{ejabberd_note}");
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let verdict = |v: Option<f64>, goal: f64| match v {
        Some(v) if v >= goal => format!("{v:.2}x (target >= {goal}: MET)"),
        Some(v) => format!("{v:.2}x (target >= {goal}: MISSED)"),
        None => "not measured".to_owned(),
    };
    let cpu = |s: &Series, e: &Series| {
        if e.bytes == 0 {
            "not measured".to_owned()
        } else {
            let met = s.cpu_per_gb() <= e.cpu_per_gb();
            format!(
                "{:.2} vs {:.2} s/GB ({})",
                s.cpu_per_gb(),
                e.cpu_per_gb(),
                if met { "MET" } else { "MISSED" }
            )
        }
    };
    println!(
        "CURL SUMMARY: PUT median/ejabberd {}; PUT min/ejabberd min {}; GET median/nginx {}; \
         CPU per GB, satellite vs ejabberd: PUT {}, GET {}",
        verdict(ratio(s_put.median(), e_put.median()), 1.5),
        verdict(ratio(s_put.min(), e_put.min()), 1.0),
        verdict(ratio(s_get.median(), n_get.median()), 0.9),
        cpu(&s_put, &e_put),
        cpu(&s_get, &e_get),
    );
    Ok(())
}

impl Series {
    /// One transfer: its rate and the CPU `pid` spent on it.
    async fn push<F>(&mut self, pid: u32, size: u64, f: impl FnOnce() -> F) -> Result<(), String>
    where
        F: FnOnce() -> Result<f64, String> + Send + 'static,
    {
        let job = f();
        let before = cpu_seconds(pid);
        let seconds = tokio::task::spawn_blocking(job)
            .await
            .map_err(|e| e.to_string())??;
        self.cpu += cpu_seconds(pid) - before;
        self.bytes += size;
        self.rates.push(size as f64 / 1e6 / seconds);
        Ok(())
    }
}

fn write_source(path: &Path, size: u64) -> Result<(), String> {
    use std::io::Write as _;
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?,
    );
    let chunk = pattern();
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n]).map_err(|e| e.to_string())?;
        left -= n as u64;
    }
    f.flush().map_err(|e| e.to_string())
}

/// Runs curl; returns its `time_total` after checking the status.
fn curl(args: &[String], ok: &[&str]) -> Result<f64, String> {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-H",
            "Expect:",
            "-w",
            "%{http_code} %{time_total} %{size_download}",
        ])
        .args(args)
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut fields = text.split_whitespace();
    let (code, time) = (fields.next().unwrap_or(""), fields.next().unwrap_or(""));
    if !out.status.success() || !ok.contains(&code) {
        return Err(format!(
            "curl {args:?}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    time.parse().map_err(|_| format!("curl: time {time:?}"))
}

fn curl_put(slot: &Slot, source: &Path) -> impl FnOnce() -> Result<f64, String> + Send + 'static {
    let mut args = vec![
        "-T".to_owned(),
        source.display().to_string(),
        "-H".to_owned(),
        "Content-Type: application/octet-stream".to_owned(),
    ];
    for (name, value) in &slot.headers {
        args.push("-H".to_owned());
        args.push(format!("{name}: {value}"));
    }
    args.push(slot.put.clone());
    move || curl(&args, &["200", "201"])
}

fn curl_get(url: &str, _size: u64) -> impl FnOnce() -> Result<f64, String> + Send + 'static {
    let args = vec![url.to_owned()];
    move || curl(&args, &["200"])
}

/// nginx (one process, `sendfile on`) serving `files`; GETs the stored
/// file of `satellite_get` (its slot id is the file's name).
async fn nginx_series(
    files: &Path,
    satellite_get: &str,
    work: &Path,
    size: u64,
    runs: usize,
) -> Result<Series, String> {
    let id = satellite_get
        .split('/')
        .rev()
        .nth(1)
        .ok_or("no slot id in the GET URL")?;
    let dir = work.join("nginx");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let port = free_port();
    let conf = dir.join("nginx.conf");
    let d = dir.display();
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\nerror_log {d}/error.log warn;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  sendfile on;\n  tcp_nopush on;\n  access_log off;\n\
             client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  default_type application/octet-stream;\n\
             server {{\n    listen 127.0.0.1:{port};\n    root {};\n  }}\n}}\n",
            files.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let mut child = Command::new("nginx")
        .args(["-p", &d.to_string(), "-c", &conf.display().to_string()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start nginx (apt-get install nginx-light): {e}"))?;
    let result = async {
        wait_port(port).await?;
        let url = format!("http://127.0.0.1:{port}/{id}");
        let mut s = Series::default();
        for _ in 0..runs {
            s.push(child.id(), size, || curl_get(&url, size)).await?;
        }
        Ok(s)
    }
    .await;
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
    result
}

async fn wait_port(port: u16) -> Result<(), String> {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("nothing listens on port {port}"))
}

/// ejabberd with mod_http_upload on its own HTTP listener.
async fn ejabberd_series(
    work: &Path,
    source: &Path,
    size: u64,
    runs: usize,
) -> Result<(Series, Series), String> {
    const USER: &str = "curl";
    const PASSWORD: &str = "curl-password";
    let http = free_port();
    let docroot = work.join("ejabberd-upload");
    std::fs::create_dir_all(&docroot).map_err(|e| e.to_string())?;
    let module = format!(
        "  mod_http_upload:\n    put_url: \"http://127.0.0.1:{http}/upload\"\n    \
         docroot: \"{}\"\n    max_size: {}\n    thumbnail: false\n",
        docroot.display(),
        size + MIB
    );
    let mut ejabberd = Ejabberd::start_with(&[], &[(USER, PASSWORD)], &module).await;
    // The harness's config has no HTTP listener: add one and restart.
    ejabberd.stop().await;
    let path = ejabberd.config_path();
    let config = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
    let listener = format!(
        "listen:\n  -\n    port: {http}\n    ip: \"127.0.0.1\"\n    module: ejabberd_http\n    \
         request_handlers:\n      /upload: mod_http_upload\n"
    );
    std::fs::write(&path, config.replacen("listen:\n", &listener, 1)).map_err(|e| e.to_string())?;
    ejabberd.start_again().await;
    wait_port(http).await?;
    let pid = ejabberd.pid().ok_or("ejabberd has no pid")?;
    let mut client =
        C2sClient::connect(ejabberd.c2s_port, &ejabberd.domain, USER, PASSWORD, "curl")
            .await
            .map_err(|e| format!("ejabberd login: {e}"))?;
    let mut put = Series::default();
    let mut get = Series::default();
    let mut last = None;
    for i in 0..runs {
        let slot = slots(&mut client, EJABBERD_UPLOAD, &format!("curl{i}"), size, 1)
            .await?
            .remove(0);
        put.push(pid, size, || curl_put(&slot, source)).await?;
        last = Some(slot);
    }
    let stored = last.ok_or("no run")?;
    for _ in 0..runs {
        get.push(pid, size, || curl_get(&stored.get, size)).await?;
    }
    eprintln!("  ejabberd: PUT {:?} GET {:?}", put.rates, get.rates);
    client.close().await;
    ejabberd.stop().await;
    Ok((put, get))
}
