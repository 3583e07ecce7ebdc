//! The global tracing subscriber, with a `[log] level` that a reload can
//! change (a filter behind a reload handle). The format cannot change
//! without a restart: the writer is chosen once.

use std::sync::OnceLock;

use tracing_subscriber::layer::{Layered, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

use crate::config::{Config, ConfigError, LogConfig, LogFormat};

type FilterHandle = reload::Handle<EnvFilter, Registry>;
type Formatter =
    Box<dyn Layer<Layered<reload::Layer<EnvFilter, Registry>, Registry>> + Send + Sync>;

/// What [`init_logging`] installed.
struct Installed {
    filter: FilterHandle,
    format: LogFormat,
    /// `RUST_LOG` decides the level, not the config.
    from_env: bool,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// Installs the global tracing subscriber: plain text (journald adds its
/// own timestamps, so none are printed when `JOURNAL_STREAM` is set) or
/// JSON lines. `RUST_LOG` overrides the configured level; otherwise a
/// reload (SIGHUP) applies a changed `[log] level`.
pub fn init_logging(config: &LogConfig) {
    let env = EnvFilter::try_from_default_env().ok();
    let from_env = env.is_some();
    let filter = env
        .or_else(|| EnvFilter::try_new(&config.level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    use std::io::IsTerminal;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let fmt: Formatter = match (config.format, journald) {
        (LogFormat::Json, _) => fmt.json().boxed(),
        (LogFormat::Text, true) => fmt.without_time().boxed(),
        (LogFormat::Text, false) => fmt.boxed(),
    };
    // Already installed (tests, or an embedding program): keep that one.
    if tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init()
        .is_ok()
    {
        let _ = INSTALLED.set(Installed {
            filter: handle,
            format: config.format,
            from_env,
        });
    }
}

/// Checks that `[log] level` is a tracing filter.
pub(super) fn check(config: &Config) -> Result<(), ConfigError> {
    EnvFilter::try_new(&config.log.level)
        .map(drop)
        .map_err(|e| ConfigError {
            file: config.file.clone(),
            message: format!(
                "log.level: `{}` is not a tracing filter ({e}); expected e.g. \"info\" or \"satellite=debug,info\"",
                config.log.level
            ),
        })
}

/// Applies a reloaded `[log]` table where it can (`applied` follows);
/// returns what needs a restart or was ignored, for the log and the
/// systemd status.
pub(super) fn reload(applied: &mut LogConfig, new: &LogConfig) -> Vec<String> {
    let mut notes = Vec::new();
    let Some(installed) = INSTALLED.get() else {
        return notes;
    };
    if new.format != installed.format {
        notes.push("[log] format changed; it applies at the next restart".to_owned());
    }
    if new.level != applied.level {
        if installed.from_env {
            notes.push("[log] level changed, but RUST_LOG is set and decides the level".to_owned());
        } else {
            match EnvFilter::try_new(&new.level) {
                Ok(filter) => match installed.filter.reload(filter) {
                    Ok(()) => {
                        tracing::info!(level = %new.level, "log level changed");
                        applied.level.clone_from(&new.level);
                    }
                    Err(e) => notes.push(format!("[log] level not changed: {e}")),
                },
                Err(e) => notes.push(format!(
                    "[log] level `{}` is not a tracing filter ({e}); keeping `{}`",
                    new.level, applied.level
                )),
            }
        }
    }
    notes
}
