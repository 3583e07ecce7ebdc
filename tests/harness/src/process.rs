//! Processes a benchmark starts and measures: a child with its output in a
//! log file, and its CPU time and memory from /proc.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// A child process (satellite, a bare-bones component…) whose stdout and
/// stderr go to a log file. Killed when dropped.
pub struct Proc {
    /// What it is, for messages.
    pub name: &'static str,
    /// Its pid.
    pub pid: u32,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `program args`, logging to `log`.
    pub fn spawn(
        name: &'static str,
        program: &Path,
        args: &[&str],
        log: PathBuf,
    ) -> Result<Proc, String> {
        let file =
            std::fs::File::create(&log).map_err(|e| format!("create {}: {e}", log.display()))?;
        let err = file
            .try_clone()
            .map_err(|e| format!("clone {}: {e}", log.display()))?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", program.display()))?;
        let pid = child.id().ok_or_else(|| format!("{name} exited at once"))?;
        Ok(Proc {
            name,
            pid,
            child,
            log,
        })
    }

    /// `satellite run` on `config`, written to `dir/satellite.toml`; its
    /// output goes to `dir/satellite.log`.
    pub fn satellite(binary: &Path, dir: &Path, config: &str) -> Result<Proc, String> {
        let path = dir.join("satellite.toml");
        std::fs::write(&path, config).map_err(|e| format!("write {}: {e}", path.display()))?;
        let path = path.to_string_lossy().into_owned();
        Self::spawn(
            "satellite",
            binary,
            &["run", "-c", &path],
            dir.join("satellite.log"),
        )
    }

    /// Waits until every port on 127.0.0.1 accepts connections; an error
    /// (with its output) if it exits first or `timeout` passes.
    pub async fn wait_ports(&mut self, ports: &[u16], timeout: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        for &port in ports {
            while !crate::port_open(port).await {
                self.check_running()?;
                if tokio::time::Instant::now() > deadline {
                    return Err(format!(
                        "{}: port {port} not open within {timeout:?}; its output:\n{}",
                        self.name,
                        self.log_tail()
                    ));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// The last 30 lines of its output.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// An error (with its output) if it has exited.
    pub fn check_running(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "{} exited ({status}); its output:\n{}",
                self.name,
                self.log_tail()
            )),
            Err(e) => Err(format!("waiting for {}: {e}", self.name)),
        }
    }

    /// SIGTERM by pid, then waits up to 15 s; returns the exit status.
    pub async fn terminate(mut self) -> Result<std::process::ExitStatus, String> {
        let raw = i32::try_from(self.pid).map_err(|e| format!("pid {}: {e}", self.pid))?;
        kill(Pid::from_raw(raw), Signal::SIGTERM)
            .map_err(|e| format!("SIGTERM {} (pid {}): {e}", self.name, self.pid))?;
        match tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await {
            Ok(status) => status.map_err(|e| format!("waiting for {}: {e}", self.name)),
            Err(_) => {
                let _ = self.child.kill().await;
                Err(format!("{} did not exit within 15 s of SIGTERM", self.name))
            }
        }
    }
}

/// Clock ticks per second, the unit of `/proc/<pid>/stat`'s CPU times.
pub fn clock_ticks() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as u64,
        // USER_HZ is 100 on every Linux architecture we run on.
        _ => 100,
    }
}

/// utime + stime of a process (all its threads), in clock ticks: fields 14
/// and 15 of `/proc/<pid>/stat`, counted after the parenthesised command name.
pub fn cpu_ticks(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|e| format!("read {path}: {e}"))?;
    let after_comm = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| format!("{path}: no command name"))?;
    // after_comm starts at field 3 (state): utime is field 14, stime 15.
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let field = |n: usize| -> Result<u64, String> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or_else(|| format!("{path}: field {n} missing or not a number"))
    };
    Ok(field(14)? + field(15)?)
}

/// utime + stime of a process in seconds (0 if it cannot be read).
pub fn cpu_seconds(pid: u32) -> f64 {
    cpu_ticks(pid).map_or(0.0, |t| t as f64 / clock_ticks() as f64)
}

/// A `Vm…:` figure of `/proc/<pid>/status`, in KiB: `VmHWM` is the peak
/// resident set size, `VmRSS` the current one.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
