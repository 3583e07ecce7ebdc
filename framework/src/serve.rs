//! Running components as a service: logging, signals, reload, systemd.
//!
//! [`serve`] runs every component of a config file until SIGTERM/SIGINT,
//! and on SIGHUP re-reads the file: added components start, removed ones
//! stop, changed ones restart, unchanged ones keep their link. A file
//! that does not parse is refused whole; a component that cannot start
//! is left out, logged and reported, and the rest keeps running. A
//! changed `[log] level` applies at once; `[log] format` and `[metrics]`
//! apply at the next restart (the log says so).
//!
//! Under systemd (`Type=notify`) it reports READY=1 once every
//! component's first connection attempt has ended (connected, or refused
//! by the server, or unreachable; at most [`READY_WAIT`] after the
//! start), RELOADING=1/READY=1 around a reload, STOPPING=1 on shutdown,
//! WATCHDOG=1 when `WatchdogSec=` is set, and a STATUS= line with each
//! link's state: a component the server refuses shows as
//! `… refused: <why>; retrying` in `systemctl status` while it retries.
//!
//! ## Layout
//!
//! - `running`: the running components and what a reload changes.
//! - `systemd`: notifications and the STATUS line.
//! - `logging`: the tracing subscriber and its reloadable level.
//! - `args`: a gateway binary's command line ([`main`], [`Program`]).

mod args;
mod logging;
mod running;
mod systemd;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::signal::unix::{SignalKind, signal};

use crate::component::ComponentBuilder;
use crate::config::{ComponentConfig, Config, ConfigError};
use crate::error::BoxError;
use running::Components;

pub use args::Program;
pub use logging::init_logging;

/// The longest READY=1 waits for the first connection attempts.
pub const READY_WAIT: Duration = Duration::from_secs(30);

/// Makes a component's builder from its config (adds the plugins of the
/// service the config names). An error names what is wrong with the config.
pub type Factory = dyn Fn(&ComponentConfig) -> Result<ComponentBuilder, BoxError> + Send + Sync;

/// Validates a config without connecting: `[log] level` is a filter,
/// `[metrics] listen` can be bound, and every component's service
/// settings are read (by `factory`, which also runs the service's own
/// checks) and its plugins assembled. [`serve`] refuses what this
/// refuses.
pub fn check(config: &Config, factory: &Factory) -> Result<(), BoxError> {
    logging::check(config)?;
    if let Some(listen) = config.metrics.listen {
        std::net::TcpListener::bind(listen).map_err(|e| ConfigError {
            file: config.file.clone(),
            message: format!(
                "metrics.listen: cannot listen on {listen}: {e}; expected a free address of this host"
            ),
        })?;
    }
    for component in &config.components {
        factory(component)?.build()?;
    }
    Ok(())
}

/// Runs the components of `path` until SIGTERM or SIGINT. Fails if one
/// cannot be built, or if a service of the first start cannot start.
pub async fn serve<F>(path: &Path, config: Config, factory: F) -> Result<(), BoxError>
where
    F: Fn(&ComponentConfig) -> Result<ComponentBuilder, BoxError> + Send + Sync + 'static,
{
    if let Some(listen) = config.metrics.listen {
        crate::metrics::serve_prometheus(listen)?;
        tracing::info!(%listen, "serving Prometheus metrics on /metrics");
    }
    let mut components = Components::start(&config, &factory)?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let watchdog = systemd::watchdog_interval();
    let mut watchdog_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    let mut log = config.log.clone();
    let metrics = config.metrics.clone();
    // What the last reload could not do; shown in STATUS= until the next.
    let mut notes: Vec<String> = Vec::new();
    let mut last_status = String::new();
    let mut ready_sent = false;
    let mut ready_by = Box::pin(tokio::time::sleep(READY_WAIT));
    let mut outcome = Ok(());
    'serving: loop {
        let changed = components.changed();
        tokio::select! {
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            _ = hangup.recv() => {
                systemd::reloading();
                notes = reload(path, &factory, &mut components, &mut log, &metrics).await;
                ready_sent = false;
                ready_by.as_mut().reset(tokio::time::Instant::now() + READY_WAIT);
            }
            () = changed => {
                for failure in components.observe().await {
                    let jid = &failure.jid;
                    if failure.initial {
                        systemd::status(&format!("cannot start: {}", failure.error));
                        outcome = Err(failure.error.into());
                        break 'serving;
                    }
                    tracing::error!(%jid, error = %failure.error, "cannot start; left out, the rest keeps running");
                    // The error names the component already.
                    let prefix = format!("{jid}: ");
                    let error = failure.error.strip_prefix(&prefix).unwrap_or(&failure.error);
                    notes.push(format!("{jid} left out: {error}"));
                }
            }
            () = &mut ready_by, if !ready_sent => {
                tracing::warn!("ready before every component's first connection attempt ended");
                ready_sent = true;
                announce_ready(&components, &notes);
            }
            _ = watchdog_tick.tick(), if watchdog.is_some() => systemd::notify(&[NotifyState::Watchdog]),
        }
        let links = components.links();
        let line = systemd::status_line(links.iter().map(|(j, s)| (j.as_str(), s)), &notes);
        if line != last_status {
            systemd::status(&line);
            last_status = line;
        }
        if !ready_sent && components.settled() {
            ready_sent = true;
            announce_ready(&components, &notes);
        }
    }
    tracing::info!("stopping");
    systemd::notify(&[NotifyState::Stopping]);
    components.stop_all().await;
    tracing::info!("stopped");
    outcome
}

/// READY=1, and a log line saying which links are not up.
fn announce_ready(components: &Components, notes: &[String]) {
    let links = components.links();
    let down: Vec<String> = links
        .iter()
        .filter(|(_, s)| *s != crate::component::LinkStatus::Connected)
        .map(|(jid, s)| format!("{jid}: {}", systemd::describe(s)))
        .collect();
    if down.is_empty() {
        tracing::info!(
            components = components.len(),
            "ready: every component is connected"
        );
    } else {
        tracing::warn!(
            components = components.len(),
            not_connected = %down.join("; "),
            "ready, but not every component is connected; retrying in the background"
        );
    }
    for note in notes {
        tracing::warn!(%note, "ready, with a reload problem");
    }
    systemd::notify(&[NotifyState::Ready]);
}

/// Re-reads `path` and applies it; returns what it could not apply.
async fn reload(
    path: &Path,
    factory: &Factory,
    components: &mut Components,
    log: &mut crate::config::LogConfig,
    metrics: &crate::config::MetricsConfig,
) -> Vec<String> {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "reload failed; keeping the running config");
            return vec![format!("reload failed, running the previous config: {e}")];
        }
    };
    let mut notes = logging::reload(log, &config.log);
    if config.metrics != *metrics {
        notes.push("[metrics] changed; it applies at the next restart".to_owned());
    }
    for note in &notes {
        tracing::warn!(%note, "reload");
    }
    let done = components.reload(&config, factory).await;
    tracing::info!(
        kept = done.kept,
        started = done.started,
        stopped = done.stopped,
        problems = done.problems.len(),
        "reloaded"
    );
    notes.extend(done.problems);
    notes
}

/// The default config path.
pub fn default_config_path() -> PathBuf {
    PathBuf::from("/etc/satellite/satellite.toml")
}

/// A whole `main` for a gateway binary: reads its command line
/// (`-c FILE` or `FILE`, default `default_path`; `--help`; `--version`),
/// loads the config, installs logging, refuses what [`check`] refuses,
/// and serves until SIGTERM. Errors are printed; the exit code says what
/// happened (2: the config file or the command line, 1: a component
/// cannot start, or a runtime error).
///
/// `--help` and `--version` name the command it was started as and the
/// framework's version; [`main_with`] and [`program!`](crate::program)
/// give the gateway's own name, version and description instead.
///
/// ```no_run
/// # use satellite::{Component, ComponentConfig};
/// #[tokio::main]
/// async fn main() -> std::process::ExitCode {
///     satellite::serve::main("echo.toml", |c: &ComponentConfig| {
///         Ok(Component::builder(c.clone()) /* .plugin(MyGateway::new(c.settings()?)) */)
///     })
///     .await
/// }
/// ```
pub async fn main<F>(default_path: &str, factory: F) -> std::process::ExitCode
where
    F: Fn(&ComponentConfig) -> Result<ComponentBuilder, BoxError> + Send + Sync + 'static,
{
    main_with(Program::from_command_line(), default_path, factory).await
}

/// [`main`] for the gateway `program` (what `--help` and `--version`
/// print); `satellite::program!()` makes it from the gateway's
/// `Cargo.toml`.
pub async fn main_with<F>(
    program: Program,
    default_path: &str,
    factory: F,
) -> std::process::ExitCode
where
    F: Fn(&ComponentConfig) -> Result<ComponentBuilder, BoxError> + Send + Sync + 'static,
{
    let path = match args::parse(default_path, std::env::args_os().skip(1)) {
        Ok(args::Action::Serve(path)) => path,
        Ok(args::Action::Help) => {
            print!("{}", program.help(default_path));
            return std::process::ExitCode::SUCCESS;
        }
        Ok(args::Action::Version) => {
            println!("{} {}", program.name, program.version);
            return std::process::ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!(
                "error: {e}\nUsage: {} [-c FILE]   (--help for more)",
                program.name
            );
            return std::process::ExitCode::from(2);
        }
    };
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    init_logging(&config.log);
    let served = match check(&config, &factory) {
        Ok(()) => serve(&path, config, factory).await,
        Err(e) => Err(e),
    };
    match served {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
