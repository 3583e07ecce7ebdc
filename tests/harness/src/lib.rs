//! Test harness: real XMPP servers (Prosody, ejabberd) started as
//! private instances on 127.0.0.1, and a real XMPP client (Python slixmpp)
//! driven over stdin/stdout.
//!
//! Needs the Debian packages installed by `scripts/install-deps.sh`.
//!
//! Every server gets free loopback ports and its own temporary directory
//! (config, data, logs), so tests can run in parallel. Servers are stopped
//! (by pid) and their directories removed when the handle is dropped.
//!
//! Environment variables:
//! - `SATELLITE_TEST_KEEP_DIRS=1`: keep the servers' directories (printed).
//! - `SATELLITE_TEST_VERBOSE=1`: print server start times and ports.
//! - `SATELLITE_TEST_CLIENT_DEBUG=1`: slixmpp debug log on the client's
//!   stderr (shown in the client's panic messages).
//! - `SATELLITE_TEST_PYTHON`: the Python with slixmpp (default /usr/bin/python3).

pub mod c2s;
pub mod client;
pub mod demo;
pub mod ejabberd;
pub mod http;
pub mod muc;
pub mod process;
pub mod prosody;
pub mod raw_component;
pub mod scansion;

pub use client::Client;
pub use ejabberd::Ejabberd;
pub use prosody::Prosody;
pub use raw_component::RawComponent;

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long a server may take to start listening before the harness panics.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a server may take to exit after SIGTERM before it is SIGKILLed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Ports handed out by [`free_port`] in this process, never handed out twice
/// (servers keep their ports across restarts, and tests run in parallel).
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A TCP port on 127.0.0.1 that was free a moment ago and that this process
/// has not handed out before.
pub fn free_port() -> u16 {
    let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let handed_out = guard.get_or_insert_with(HashSet::new);
    for _ in 0..1000 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        if handed_out.insert(port) {
            return port;
        }
    }
    panic!("could not find a free port on 127.0.0.1");
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub async fn port_open(port: u16) -> bool {
    matches!(
        tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(("127.0.0.1", port)),
        )
        .await,
        Ok(Ok(_))
    )
}

/// A temporary directory for one server instance, under /tmp (so that a
/// server running as another user can reach it).
pub(crate) fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("create temporary directory in /tmp")
}

/// Whether the test process runs as root.
pub(crate) fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// uid and gid of a system user, e.g. "prosody".
pub(crate) fn user_ids(name: &str) -> (u32, u32) {
    let user = nix::unistd::User::from_name(name)
        .unwrap_or_else(|e| panic!("looking up user {name}: {e}"))
        .unwrap_or_else(|| {
            panic!("no system user {name:?}: run scripts/install-deps.sh (as root) first")
        });
    (user.uid.as_raw(), user.gid.as_raw())
}

/// chown -R.
pub(crate) fn chown_recursive(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    if path.is_dir() {
        for entry in std::fs::read_dir(path).expect("read_dir") {
            chown_recursive(&entry.expect("dir entry").path(), uid, gid);
        }
    }
}

/// Panics with a hint if an executable the harness needs is missing.
pub(crate) fn require_executable(path: &str) {
    if !Path::new(path).exists() {
        panic!("{path} not found: run scripts/install-deps.sh (as root) first");
    }
}

/// Contents of a file, or a note that it could not be read.
pub(crate) fn read_lossy(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => format!("<could not read {}: {e}>", path.display()),
    }
}

/// The last `max` bytes of a string (at a char boundary), for panic messages.
pub(crate) fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// Sends `signal` to `pid`; errors (e.g. already gone) are ignored.
pub(crate) fn signal(pid: u32, signal: Signal) {
    if let Ok(raw) = i32::try_from(pid) {
        let _ = kill(Pid::from_raw(raw), signal);
    }
}

/// SIGTERM, then waits (asynchronously) up to [`STOP_TIMEOUT`] for the child to
/// exit, then SIGKILL. Reaps the child.
pub(crate) async fn terminate(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    signal(child.id(), Signal::SIGTERM);
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// SIGKILL and reap, synchronously (for Drop).
pub(crate) fn kill_now(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits until every port in `ports` accepts connections. Returns an error
/// message if the child exits first or after `timeout`.
pub(crate) async fn wait_ready(
    child: &mut Child,
    ports: &[u16],
    extra_ready: impl Fn() -> bool,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the server exited during startup ({status})"));
        }
        let mut all_open = extra_ready();
        for &port in ports {
            if !all_open {
                break;
            }
            all_open = port_open(port).await;
        }
        if all_open {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the server did not become ready (ports {ports:?}) within {timeout:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The harness's own directory (holds client.py).
pub(crate) fn integration_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// A process-unique tag for names (node names, ...): pid + counter.
pub(crate) fn unique_tag() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Prints `msg` to stderr when SATELLITE_TEST_VERBOSE is set.
pub(crate) fn verbose(msg: &str) {
    if std::env::var_os("SATELLITE_TEST_VERBOSE").is_some() {
        eprintln!("{msg}");
    }
}
