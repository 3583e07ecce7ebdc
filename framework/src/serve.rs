//! Running components as a service: logging, signals, reload, systemd.
//!
//! [`serve`] runs every component of a config file until SIGTERM/SIGINT,
//! and on SIGHUP re-reads the file: added components start, removed ones
//! stop, changed ones reconnect, unchanged ones keep their link. Under
//! systemd (`Type=notify`) it reports READY=1 once every component has
//! completed its first handshake, RELOADING=1/READY=1 around a reload,
//! STOPPING=1 on shutdown, and WATCHDOG=1 when `WatchdogSec=` is set.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use xmpp_parsers::jid::BareJid;

use crate::component::{ComponentBuilder, LinkStatus};
use crate::config::{ComponentConfig, Config, LogConfig, LogFormat};
use crate::error::BoxError;

/// Makes a component's builder from its config (adds the plugins of the
/// service the config names). An error names what is wrong with the config.
pub type Factory = dyn Fn(&ComponentConfig) -> Result<ComponentBuilder, BoxError> + Send + Sync;

/// Installs the global tracing subscriber: plain text (journald adds its
/// own timestamps, so none are printed when `JOURNAL_STREAM` is set) or
/// JSON lines. `RUST_LOG` overrides the configured level.
pub fn init_logging(config: &LogConfig) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let result = match (config.format, journald) {
        (LogFormat::Json, _) => builder.json().try_init(),
        (LogFormat::Text, true) => builder.without_time().try_init(),
        (LogFormat::Text, false) => builder.try_init(),
    };
    // Already installed (tests, or an embedding program): keep that one.
    let _ = result;
}

/// Validates a config without connecting: every component's service
/// settings are read and its plugins assembled.
pub fn check(config: &Config, factory: &Factory) -> Result<(), BoxError> {
    for component in &config.components {
        factory(component)?.build()?;
    }
    Ok(())
}

struct Running {
    config: ComponentConfig,
    token: CancellationToken,
    handle: JoinHandle<()>,
    status: watch::Receiver<LinkStatus>,
}

/// Runs the components of `path` until SIGTERM or SIGINT.
pub async fn serve<F>(path: &Path, config: Config, factory: F) -> Result<(), BoxError>
where
    F: Fn(&ComponentConfig) -> Result<ComponentBuilder, BoxError> + Send + Sync + 'static,
{
    if let Some(listen) = config.metrics.listen {
        crate::metrics::serve_prometheus(listen)?;
        tracing::info!(%listen, "serving Prometheus metrics on /metrics");
    }
    let mut running: HashMap<BareJid, Running> = HashMap::new();
    start_all(&config, &factory, &mut running)?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let watchdog = watchdog_interval();
    let mut watchdog_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    let mut ready = Box::pin(all_connected(statuses(&running)));
    let mut failed = Box::pin(any_failed(statuses(&running)));
    let mut notified_ready = false;
    let mut outcome = Ok(());
    loop {
        tokio::select! {
            _ = terminate.recv() => break,
            error = &mut failed => {
                outcome = Err(error.into());
                break;
            }
            _ = interrupt.recv() => break,
            _ = hangup.recv() => {
                notify(&std::iter::once(NotifyState::Reloading).chain(monotonic()).collect::<Vec<_>>());
                reload(path, &factory, &mut running).await;
                ready = Box::pin(all_connected(statuses(&running)));
                failed = Box::pin(any_failed(statuses(&running)));
                notified_ready = false;
            }
            _ = &mut ready, if !notified_ready => {
                notified_ready = true;
                tracing::info!(components = running.len(), "ready: every component is connected");
                notify(&[NotifyState::Ready]);
            }
            _ = watchdog_tick.tick(), if watchdog.is_some() => notify(&[NotifyState::Watchdog]),
        }
    }
    tracing::info!("stopping");
    notify(&[NotifyState::Stopping]);
    let stops: Vec<_> = running.into_values().map(stop).collect();
    futures::future::join_all(stops).await;
    tracing::info!("stopped");
    outcome
}

fn start_all(
    config: &Config,
    factory: &Factory,
    running: &mut HashMap<BareJid, Running>,
) -> Result<(), BoxError> {
    // Build everything first, so a bad component starts nothing.
    let mut built = Vec::new();
    for component in &config.components {
        built.push((component.clone(), factory(component)?.build()?));
    }
    for (config, component) in built {
        let token = CancellationToken::new();
        let status = component.status();
        let handle = tokio::spawn(component.run(token.clone()));
        tracing::info!(jid = %config.jid, server = %config.server, service = config.service.as_deref().unwrap_or("-"), "starting");
        running.insert(
            config.jid.clone(),
            Running {
                config,
                token,
                handle,
                status,
            },
        );
    }
    Ok(())
}

async fn reload(path: &Path, factory: &Factory, running: &mut HashMap<BareJid, Running>) {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "reload failed; keeping the running config");
            return;
        }
    };
    if let Err(e) = check(&config, factory) {
        tracing::error!(error = %e, "reload failed; keeping the running config");
        return;
    }
    let wanted: HashMap<BareJid, &ComponentConfig> = config
        .components
        .iter()
        .map(|c| (c.jid.clone(), c))
        .collect();
    let gone: Vec<BareJid> = running
        .iter()
        .filter(|(jid, r)| wanted.get(*jid).is_none_or(|c| !same(c, &r.config)))
        .map(|(jid, _)| jid.clone())
        .collect();
    for jid in &gone {
        if let Some(r) = running.remove(jid) {
            tracing::info!(%jid, "stopping (removed or changed)");
            stop(r).await;
        }
    }
    let fresh = Config {
        file: config.file.clone(),
        log: config.log.clone(),
        metrics: config.metrics.clone(),
        components: config
            .components
            .iter()
            .filter(|c| !running.contains_key(&c.jid))
            .cloned()
            .collect(),
    };
    let kept = running.len();
    if let Err(e) = start_all(&fresh, factory, running) {
        tracing::error!(error = %e, "reload: could not start a component");
    }
    tracing::info!(
        kept,
        restarted_or_added = fresh.components.len(),
        removed_or_changed = gone.len(),
        "reloaded"
    );
}

/// Equal configs, ignoring where in the file they are.
fn same(a: &ComponentConfig, b: &ComponentConfig) -> bool {
    let mut b = b.clone();
    b.index = a.index;
    b.source.clone_from(&a.source);
    *a == b
}

async fn stop(r: Running) {
    r.token.cancel();
    let _ = r.handle.await;
}

fn statuses(running: &HashMap<BareJid, Running>) -> Vec<watch::Receiver<LinkStatus>> {
    running.values().map(|r| r.status.clone()).collect()
}

async fn all_connected(statuses: Vec<watch::Receiver<LinkStatus>>) {
    for mut status in statuses {
        let _ = status.wait_for(|s| *s == LinkStatus::Connected).await;
    }
}

/// Resolves when a component fails to start, with what failed.
async fn any_failed(statuses: Vec<watch::Receiver<LinkStatus>>) -> String {
    let waits: Vec<_> = statuses
        .into_iter()
        .map(|mut status| {
            Box::pin(async move {
                // The status guard is dropped before waiting on.
                let error = match status
                    .wait_for(|s| matches!(s, LinkStatus::Failed { .. }))
                    .await
                    .as_deref()
                {
                    Ok(LinkStatus::Failed { error }) => Some(error.clone()),
                    _ => None,
                };
                match error {
                    Some(error) => error,
                    // Gone without failing: never resolves.
                    None => std::future::pending().await,
                }
            })
        })
        .collect();
    if waits.is_empty() {
        return std::future::pending().await;
    }
    futures::future::select_all(waits).await.0
}

fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0;
    sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec / 2))
}

fn monotonic() -> Option<NotifyState<'static>> {
    NotifyState::monotonic_usec_now().ok()
}

fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::debug!(error = %e, "sd_notify");
    }
}

/// The default config path.
pub fn default_config_path() -> PathBuf {
    PathBuf::from("/etc/satellite/satellite.toml")
}

/// A whole `main` for a gateway binary: reads the config file named by the
/// first argument (default `default_path`), installs logging, and serves
/// until SIGTERM. Errors are printed; the exit code says what happened
/// (2: config error, 1: runtime error).
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
    let path = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default_path));
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    init_logging(&config.log);
    match serve(&path, config, factory).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
