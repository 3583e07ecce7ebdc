//! `[component.settings]` of the announce service. Every key has a
//! default; every error names the file and the key.
//!
//! ```toml
//! [component.settings]
//! database = "announce.sqlite"  # users seen and the MOTD (SQLite; default: in
//!                               # $STATE_DIRECTORY, else announce-<jid>/ next to
//!                               # the config file; relative to the config file)
//! message_type = "headline"     # announcements to online users: "headline",
//!                               # "chat" or "normal" (offline users always get
//!                               # "normal", which servers store offline)
//! rate = 500                    # stanzas per second at most (0 = unpaced)
//! batch = 50                    # stanzas handed to the link at once
//! privileges_wait = 5           # seconds to wait for the server's XEP-0356
//!                               # privileges after connecting
//! from_server = true            # send as the server when it grants
//!                               # message = "outgoing"; false: from the component
//! ```

use std::path::PathBuf;
use std::time::Duration;

use satellite::{BoxError, ComponentConfig};
use serde::Deserialize;

/// How announcements go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    /// `headline`: shown, never stored (the default, as ejabberd and Prosody do).
    #[default]
    Headline,
    /// `chat`.
    Chat,
    /// `normal`.
    Normal,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    database: Option<PathBuf>,
    message_type: Option<MessageKind>,
    rate: Option<u32>,
    batch: Option<usize>,
    privileges_wait: Option<f64>,
    from_server: Option<bool>,
}

/// The announce service's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The SQLite file.
    pub database: PathBuf,
    /// The type of announcements to online users.
    pub message_type: MessageKind,
    /// Stanzas per second at most; 0: unpaced.
    pub rate: u32,
    /// Stanzas per batch handed to the link.
    pub batch: usize,
    /// How long to wait for privileges after connecting.
    pub privileges_wait: Duration,
    /// Send as the server when permitted.
    pub from_server: bool,
}

impl Settings {
    /// Reads the settings of `config`.
    pub fn load(config: &ComponentConfig) -> Result<Self, BoxError> {
        let raw: RawSettings = config.settings()?;
        let database = match raw.database {
            Some(path) => config.path_setting(path),
            None => config.default_state_dir("announce").join("announce.sqlite"),
        };
        let batch = raw.batch.unwrap_or(50);
        if batch == 0 {
            return Err(config
                .settings_error("batch", "expected a number of stanzas above 0")
                .into());
        }
        Ok(Self {
            database,
            message_type: raw.message_type.unwrap_or_default(),
            rate: raw.rate.unwrap_or(500),
            batch,
            privileges_wait: config.seconds_setting(
                "privileges_wait",
                raw.privileges_wait,
                Duration::from_secs(5),
            )?,
            from_server: raw.from_server.unwrap_or(true),
        })
    }

    /// Settings for tests: a database at `database`, unpaced.
    pub fn for_tests(database: PathBuf) -> Self {
        Self {
            database,
            message_type: MessageKind::Headline,
            rate: 0,
            batch: 50,
            privileges_wait: Duration::from_secs(2),
            from_server: true,
        }
    }
}
