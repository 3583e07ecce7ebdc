//! Configuration: one TOML file, one `[[component]]` table per subdomain.
//!
//! ```toml
//! [[component]]
//! service = "echo"                 # which bundled service (for the satellite binary)
//! jid = "echo.example.org"         # the name the server knows the component by
//! server = "127.0.0.1:5347"        # the server's component port
//! secret_file = "echo.secret"      # or: secret = "…"
//!
//! [component.settings]             # service-specific settings
//! greeting = "hello"
//! ```
//!
//! A relative `secret_file` is looked up in `$CREDENTIALS_DIRECTORY` first
//! (systemd `LoadCredential=`), then next to the config file. Every error
//! names the file, the key and what was expected.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use xmpp_parsers::jid::BareJid;

/// A configuration error, with the file, the key and what was expected.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// What is wrong, naming the key.
    pub message: String,
}

impl ConfigError {
    fn new(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            message: message.into(),
        }
    }
}

/// A shared secret. Never printed: `Debug` shows `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; only for the handshake and server snippets.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads a secret file the way `secret_file` is read: a relative path
    /// is looked up in `$CREDENTIALS_DIRECTORY` first, then next to
    /// `config_file`; trailing newlines are trimmed. The error says which
    /// file could not be read and what was expected.
    pub fn from_file(config_file: &Path, path: &Path) -> Result<Self, String> {
        read_secret_file(config_file, path).map(Self)
    }

    /// The secret a `<key> = "…"` / `<key>_file = "path"` pair of settings
    /// gives: at most one of the two, not empty; `None` when neither is
    /// set. The error is (the key at fault, what is wrong and what was
    /// expected).
    pub fn from_pair(
        config_file: &Path,
        key: &str,
        value: Option<String>,
        file: Option<PathBuf>,
    ) -> Result<Option<Self>, (String, String)> {
        let secret = match (value, file) {
            (Some(_), Some(_)) => {
                return Err((
                    key.to_owned(),
                    format!("both `{key}` and `{key}_file` are set; expected exactly one"),
                ));
            }
            (None, None) => return Ok(None),
            (Some(v), None) => v,
            (None, Some(path)) => {
                read_secret_file(config_file, &path).map_err(|m| (format!("{key}_file"), m))?
            }
        };
        if secret.trim().is_empty() {
            return Err((
                key.to_owned(),
                "is empty; expected a non-empty shared secret".to_owned(),
            ));
        }
        Ok(Some(Self(secret)))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Log output settings (`[log]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `"text"` (journald-friendly, the default) or `"json"`.
    pub format: LogFormat,
    /// A tracing filter such as `"info"` or `"satellite=debug,info"`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Plain text lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Prometheus metrics settings (`[metrics]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where to serve `/metrics` (e.g. `"127.0.0.1:9100"`); off when absent.
    pub listen: Option<std::net::SocketAddr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    log: LogConfig,
    #[serde(default)]
    metrics: MetricsConfig,
    #[serde(default)]
    component: Vec<RawComponent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    jid: String,
    server: String,
    secret: Option<String>,
    secret_file: Option<PathBuf>,
    service: Option<String>,
    #[serde(default)]
    settings: toml::Table,
    #[serde(default)]
    admins: Vec<String>,
    queue_limit: Option<usize>,
    queue_bytes: Option<usize>,
    connections: Option<usize>,
    lane_limit: Option<usize>,
    max_lanes: Option<usize>,
    ping_interval: Option<u64>,
    ping_timeout: Option<u64>,
    keepalive_interval: Option<u64>,
    request_timeout: Option<u64>,
    shutdown_timeout: Option<u64>,
    reconnect_max: Option<u64>,
}

/// The whole config file.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where it was read from.
    pub file: PathBuf,
    /// `[log]`.
    pub log: LogConfig,
    /// `[metrics]`.
    pub metrics: MetricsConfig,
    /// The `[[component]]` tables, in file order.
    pub components: Vec<ComponentConfig>,
}

/// One component: its link to the server and its service settings.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ComponentConfig {
    /// The component's JID (`upload.example.org`).
    pub jid: BareJid,
    /// The server's component port, `host:port`.
    pub server: String,
    /// The shared secret.
    pub secret: Secret,
    /// Which bundled service runs here (used by the `satellite` binary).
    pub service: Option<String>,
    /// `[component.settings]`, for the service to read with
    /// [`ComponentConfig::settings`].
    pub settings: toml::Table,
    /// JIDs allowed to run admin commands.
    pub admins: Vec<BareJid>,
    /// Stanzas (or `send_many` batches) queued for the link: kept while
    /// the link is down, and while it is up senders wait past it
    /// (default 4096).
    pub queue_limit: usize,
    /// Bytes of serialized stanzas queued for the link, the same way
    /// (default 16 MiB).
    pub queue_bytes: usize,
    /// Connections kept to the server for this component (default 1).
    /// ejabberd balances a component's traffic over its connections;
    /// Prosody allows one (the others are dropped, with one warning).
    pub connections: usize,
    /// Stanzas waiting per address before new ones are refused with
    /// `resource-constraint` (default 1024: a blast of messages into one
    /// room fits).
    pub lane_limit: usize,
    /// Addresses with work in progress at once (each has a lane); past
    /// it, stanzas for a new address are refused with
    /// `resource-constraint` (default 16384).
    pub max_lanes: usize,
    /// How often to ping the server (default 60 s).
    pub ping_interval: Duration,
    /// How long a ping may go unanswered before the link counts as dead
    /// (default 30 s).
    pub ping_timeout: Duration,
    /// Write silence after which a whitespace keepalive is sent (default 30 s).
    pub keepalive_interval: Duration,
    /// Default timeout of [`crate::Context::request`] (default 30 s).
    pub request_timeout: Duration,
    /// How long running handlers get to finish on shutdown (default 10 s).
    pub shutdown_timeout: Duration,
    /// Upper bound of the reconnect delay (default 60 s).
    pub reconnect_max: Duration,
    /// Where the config was read from, for error messages.
    pub source: PathBuf,
    /// The component's index in the file, for error messages.
    pub index: usize,
}

impl ComponentConfig {
    /// A config with defaults, for code and tests.
    pub fn new(jid: BareJid, server: impl Into<String>, secret: Secret) -> Self {
        Self {
            jid,
            server: server.into(),
            secret,
            service: None,
            settings: toml::Table::new(),
            admins: Vec::new(),
            queue_limit: 4096,
            queue_bytes: 16 << 20,
            connections: 1,
            lane_limit: 1024,
            max_lanes: 16_384,
            ping_interval: Duration::from_secs(60),
            ping_timeout: Duration::from_secs(30),
            keepalive_interval: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(10),
            reconnect_max: Duration::from_secs(60),
            source: PathBuf::new(),
            index: 0,
        }
    }

    /// Deserializes `[component.settings]` into a service's own settings
    /// type; errors name the file and the key.
    pub fn settings<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        T::deserialize(self.settings.clone()).map_err(|e| {
            ConfigError::new(
                &self.source,
                format!("component[{}].settings: {e}", self.index),
            )
        })
    }

    /// An error about a key of `[component.settings]`:
    /// `<file>: component[<i>].settings.<key>: <message>`, where the
    /// message says what is wrong and what was expected.
    pub fn settings_error(&self, key: &str, message: impl fmt::Display) -> ConfigError {
        ConfigError::new(
            &self.source,
            format!("component[{}].settings.{key}: {message}", self.index),
        )
    }

    /// Where a service keeps its state by default: systemd's
    /// `$STATE_DIRECTORY` (the first, when it lists several), else
    /// `<service>-<jid>` next to the config file.
    pub fn default_state_dir(&self, service: &str) -> PathBuf {
        match std::env::var_os("STATE_DIRECTORY") {
            Some(dirs) => PathBuf::from(
                dirs.to_string_lossy()
                    .split(':')
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            ),
            None => self.config_dir().join(format!("{service}-{}", self.jid)),
        }
    }

    /// The directory of the config file (relative paths in settings are
    /// relative to it).
    pub fn config_dir(&self) -> &Path {
        self.source.parent().unwrap_or(Path::new("."))
    }

    /// A path setting: relative paths are taken from the config file's
    /// directory.
    pub fn path_setting(&self, path: PathBuf) -> PathBuf {
        if path.is_relative() {
            self.config_dir().join(path)
        } else {
            path
        }
    }

    /// A duration setting written in seconds (fractions allowed), above 0;
    /// `default` when absent.
    pub fn seconds_setting(
        &self,
        key: &str,
        value: Option<f64>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match value {
            None => Ok(default),
            Some(x) if x.is_finite() && x > 0.0 && x < 1e10 => Ok(Duration::from_secs_f64(x)),
            Some(x) => {
                Err(self
                    .settings_error(key, format!("is {x}; expected a number of seconds above 0")))
            }
        }
    }

    /// A count or size setting above 0 (`what` names its unit, e.g.
    /// "count" or "number of bytes"); `default` when absent.
    pub fn nonzero_setting<T>(
        &self,
        key: &str,
        value: Option<T>,
        default: T,
        what: &str,
    ) -> Result<T, ConfigError>
    where
        T: Copy + PartialEq + Default + fmt::Display,
    {
        match value {
            None => Ok(default),
            Some(v) if v == T::default() => {
                Err(self.settings_error(key, format!("is {v}; expected a {what} above 0")))
            }
            Some(v) => Ok(v),
        }
    }

    /// A config of `jid` read from `source` with these settings (TOML), for
    /// a service's own config tests.
    pub fn with_settings(jid: &str, source: &str, settings: &str) -> Result<Self, String> {
        let jid = BareJid::new(jid).map_err(|e| format!("{jid}: {e}"))?;
        let mut c = Self::new(jid, "127.0.0.1:5347", Secret::new("test-secret"));
        c.source = PathBuf::from(source);
        c.settings = toml::from_str(settings).map_err(|e| e.to_string())?;
        Ok(c)
    }
}

impl Config {
    /// Reads and validates a config file, loading secrets from files.
    pub fn load(file: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let file = file.as_ref();
        let text = std::fs::read_to_string(file)
            .map_err(|e| ConfigError::new(file, format!("cannot read the config file: {e}")))?;
        Self::parse(file, &text)
    }

    /// Parses config text; `file` is used for messages and relative paths.
    pub fn parse(file: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw: RawFile =
            toml::from_str(text).map_err(|e| ConfigError::new(file, e.to_string()))?;
        if raw.component.is_empty() {
            return Err(ConfigError::new(
                file,
                "no [[component]] table: expected at least one, with jid, server and secret or secret_file",
            ));
        }
        let mut components = Vec::new();
        for (index, c) in raw.component.into_iter().enumerate() {
            let component = validate(file, index, c)?;
            if let Some(first) = components
                .iter()
                .find(|o: &&ComponentConfig| o.jid == component.jid)
            {
                return Err(ConfigError::new(
                    file,
                    format!(
                        "component[{index}].jid: `{}` is already used by component[{}]; expected one table per JID",
                        component.jid, first.index
                    ),
                ));
            }
            components.push(component);
        }
        Ok(Self {
            file: file.to_owned(),
            log: raw.log,
            metrics: raw.metrics,
            components,
        })
    }
}

fn validate(file: &Path, index: usize, c: RawComponent) -> Result<ComponentConfig, ConfigError> {
    let at =
        |key: &str, msg: String| ConfigError::new(file, format!("component[{index}].{key}: {msg}"));
    let jid = BareJid::new(&c.jid)
        .ok()
        .filter(|j| j.node().is_none())
        .ok_or_else(|| {
            at(
                "jid",
                format!(
                    "`{}` is not a domain JID; expected a domain such as `upload.example.org`",
                    c.jid
                ),
            )
        })?;
    let valid_server = c
        .server
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if !valid_server {
        return Err(at(
            "server",
            format!(
                "`{}` is not host:port; expected e.g. `127.0.0.1:5347`",
                c.server
            ),
        ));
    }
    let secret = Secret::from_pair(file, "secret", c.secret, c.secret_file)
        .map_err(|(key, m)| at(&key, m))?
        .ok_or_else(|| {
            at(
                "secret",
                "missing; expected `secret = \"…\"` or `secret_file = \"path\"`".to_owned(),
            )
        })?;
    let mut admins = Vec::new();
    for (i, a) in c.admins.iter().enumerate() {
        admins.push(BareJid::new(a).map_err(|e| {
            at(
                &format!("admins[{i}]"),
                format!("`{a}` is not a valid JID ({e}); expected e.g. `admin@example.org`"),
            )
        })?);
    }
    let secs = |key: &str, v: Option<u64>, default: u64| -> Result<Duration, ConfigError> {
        match v {
            Some(0) => Err(at(
                key,
                "is 0; expected a number of seconds above 0".to_owned(),
            )),
            Some(n) => Ok(Duration::from_secs(n)),
            None => Ok(Duration::from_secs(default)),
        }
    };
    let count = |key: &str, v: Option<usize>, default: usize| -> Result<usize, ConfigError> {
        match v {
            Some(0) => Err(at(key, "is 0; expected a count above 0".to_owned())),
            Some(n) => Ok(n),
            None => Ok(default),
        }
    };
    let mut config = ComponentConfig::new(jid, c.server, secret);
    config.service = c.service;
    config.settings = c.settings;
    config.admins = admins;
    config.queue_limit = count("queue_limit", c.queue_limit, 4096)?;
    config.queue_bytes = count("queue_bytes", c.queue_bytes, 16 << 20)?;
    config.connections = count("connections", c.connections, 1)?;
    config.lane_limit = count("lane_limit", c.lane_limit, 1024)?;
    config.max_lanes = count("max_lanes", c.max_lanes, 16_384)?;
    config.ping_interval = secs("ping_interval", c.ping_interval, 60)?;
    config.ping_timeout = secs("ping_timeout", c.ping_timeout, 30)?;
    config.keepalive_interval = secs("keepalive_interval", c.keepalive_interval, 30)?;
    config.request_timeout = secs("request_timeout", c.request_timeout, 30)?;
    config.shutdown_timeout = secs("shutdown_timeout", c.shutdown_timeout, 10)?;
    config.reconnect_max = secs("reconnect_max", c.reconnect_max, 60)?;
    config.source = file.to_owned();
    config.index = index;
    Ok(config)
}

/// Reads a secret file: `$CREDENTIALS_DIRECTORY/<path>` first for relative
/// paths, then relative to the config file. Trailing newlines are trimmed.
fn read_secret_file(config_file: &Path, path: &Path) -> Result<String, String> {
    let mut candidates = Vec::new();
    if path.is_relative() {
        if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
            candidates.push(PathBuf::from(dir).join(path));
        }
        let base = config_file.parent().unwrap_or(Path::new("."));
        candidates.push(base.join(path));
    } else {
        candidates.push(path.to_owned());
    }
    let mut last = String::new();
    for candidate in &candidates {
        match std::fs::read_to_string(candidate) {
            Ok(text) => return Ok(text.trim_end_matches(['\r', '\n']).to_owned()),
            Err(e) => last = format!("cannot read `{}`: {e}", candidate.display()),
        }
    }
    Err(format!(
        "{last}; expected a readable file holding the shared secret"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("/etc/satellite/test.toml"), text).map_err(|e| e.to_string())
    }

    const MINIMAL: &str =
        "[[component]]\njid = \"echo.example.org\"\nserver = \"127.0.0.1:5347\"\nsecret = \"s\"\n";

    #[test]
    fn minimal_config_has_defaults() {
        let config = parse(MINIMAL).expect("valid");
        let c = &config.components[0];
        assert_eq!(c.jid.as_str(), "echo.example.org");
        assert_eq!(c.queue_limit, 4096);
        assert_eq!(c.ping_interval, Duration::from_secs(60));
        assert_eq!(config.log.format, LogFormat::Text);
    }

    #[test]
    fn unknown_key_names_file_key_and_expected() {
        let err = parse(&format!("{MINIMAL}jidd = \"x\"\n")).expect_err("unknown key");
        assert!(err.starts_with("/etc/satellite/test.toml: "), "{err}");
        assert!(err.contains("unknown field `jidd`"), "{err}");
        assert!(err.contains("expected one of"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let err = parse(&MINIMAL.replace("\"127.0.0.1:5347\"", "5347")).expect_err("type");
        assert!(err.contains("server"), "{err}");
        assert!(err.contains("expected a string"), "{err}");
    }

    #[test]
    fn bad_jid_and_server_are_explained() {
        let err = parse(&MINIMAL.replace("echo.example.org", "user@example.org")).expect_err("jid");
        assert!(
            err.contains("component[0].jid: `user@example.org` is not a domain JID"),
            "{err}"
        );
        let err = parse(&MINIMAL.replace("127.0.0.1:5347", "localhost")).expect_err("server");
        assert!(
            err.contains("component[0].server: `localhost` is not host:port"),
            "{err}"
        );
    }

    #[test]
    fn secret_rules() {
        let err = parse(&MINIMAL.replace("secret = \"s\"\n", "")).expect_err("missing");
        assert!(err.contains("component[0].secret: missing"), "{err}");
        let err = parse(&format!("{MINIMAL}secret_file = \"x\"\n")).expect_err("both");
        assert!(err.contains("both `secret` and `secret_file`"), "{err}");
        let err = parse(&MINIMAL.replace("secret = \"s\"", "secret_file = \"/nonexistent/s\""))
            .expect_err("unreadable");
        assert!(
            err.contains("component[0].secret_file: cannot read `/nonexistent/s`"),
            "{err}"
        );
    }

    #[test]
    fn secret_file_is_read_and_trimmed_and_never_printed() {
        let dir = std::env::temp_dir().join(format!("satellite-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("echo.secret"), "hunter2\n").expect("write");
        let text = MINIMAL.replace("secret = \"s\"", "secret_file = \"echo.secret\"");
        let config = Config::parse(&dir.join("c.toml"), &text).expect("valid");
        assert_eq!(config.components[0].secret.expose(), "hunter2");
        assert!(!format!("{config:?}").contains("hunter2"));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn duplicate_jids_are_refused() {
        let err = parse(&format!("{MINIMAL}{MINIMAL}")).expect_err("dup");
        assert!(
            err.contains("component[1].jid: `echo.example.org` is already used by component[0]"),
            "{err}"
        );
    }

    #[test]
    fn zero_limits_are_refused() {
        let err = parse(&format!("{MINIMAL}queue_limit = 0\n")).expect_err("zero");
        assert!(err.contains("component[0].queue_limit: is 0"), "{err}");
    }

    #[test]
    fn settings_errors_name_the_table() {
        #[derive(Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct S {
            greeting: String,
        }
        let config =
            parse(&format!("{MINIMAL}[component.settings]\ngreeting = 3\n")).expect("valid");
        let err = config.components[0]
            .settings::<S>()
            .expect_err("type")
            .to_string();
        assert!(err.contains("component[0].settings"), "{err}");
        assert!(err.contains("greeting") || err.contains("string"), "{err}");
    }
}
