//! `[component.settings]` of the MUC service. Every limit has a default;
//! every error names the file and the key.
//!
//! ```toml
//! [component.settings]
//! name = "Chatrooms"              # the service's disco identity name
//! database = "muc.sqlite"         # rooms and archives (SQLite; default: in
//!                                 # $STATE_DIRECTORY, else muc-<jid>/ next to
//!                                 # the config file; relative to the config file)
//! create = "anyone"               # who may create rooms: "anyone", "local"
//!                                 # (users of the parent domain), "admins"
//! max_history_messages = 20       # history a room may keep, at most
//! max_occupants = 0               # occupants per room (0 = no cap)
//! max_rooms = 0                   # rooms in memory at once (0 = no cap)
//! hibernate_after = 300           # seconds an empty persistent room stays in memory
//! lock_rooms = true               # new rooms are locked until configured
//! allow_persistent = true         # false: only service admins make rooms persistent
//! allow_public = true             # false: only service admins list rooms publicly
//! allow_unaffiliated_register = false  # users without affiliation may register a nick
//!                                 # (and so become members)
//! room_lock_timeout = 300         # seconds before an unconfigured room unlocks itself
//! max_archive_query_results = 50  # MAM results per page, at most (Prosody's
//!                                 # max_archive_query_results; 20 when the query
//!                                 # names no <max/>)
//! archive_expires_after = "1w"    # archived messages are deleted after this long
//!                                 # (Prosody's muc_log_expires_after): seconds, or
//!                                 # "30s", "15m", "12h", "1d", "1w", "1y", or "never"
//!
//! [component.settings.room_defaults]   # Prosody's muc_room_default_* options
//! persistent = false
//! public = false
//! members_only = false
//! allow_member_invites = false
//! moderated = false
//! public_jids = false             # true: whois = anyone
//! change_subject = false
//! history_length = 20
//! language = "en"
//! allow_pm = "anyone"             # "participants", "moderators", "none"
//! archiving = true                # rooms archive messages (Prosody's muc_log_by_default)
//! ```

use std::time::Duration;

use satellite::{BoxError, ComponentConfig};
use serde::Deserialize;

use crate::permissions::{AllowPm, Whois};
use crate::room::config::RoomConfig;

/// Who may create rooms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CreatePolicy {
    /// Anyone who can reach the service.
    #[default]
    Anyone,
    /// Users of the service's parent domain (and admins).
    Local,
    /// Service admins only.
    Admins,
}

/// The room defaults as written in the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoomDefaults {
    persistent: Option<bool>,
    public: Option<bool>,
    members_only: Option<bool>,
    allow_member_invites: Option<bool>,
    moderated: Option<bool>,
    public_jids: Option<bool>,
    change_subject: Option<bool>,
    history_length: Option<u32>,
    language: Option<String>,
    allow_pm: Option<AllowPm>,
    archiving: Option<bool>,
}

/// The settings as written in the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    name: Option<String>,
    database: Option<std::path::PathBuf>,
    create: Option<CreatePolicy>,
    max_history_messages: Option<u32>,
    max_occupants: Option<u32>,
    max_rooms: Option<usize>,
    hibernate_after: Option<f64>,
    lock_rooms: Option<bool>,
    room_lock_timeout: Option<f64>,
    allow_unaffiliated_register: Option<bool>,
    allow_persistent: Option<bool>,
    allow_public: Option<bool>,
    max_archive_query_results: Option<usize>,
    archive_expires_after: Option<Period>,
    room_defaults: Option<RawRoomDefaults>,
}

/// A period as written: seconds, or a number with a unit, or "never".
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Period {
    Seconds(u64),
    Text(String),
}

impl Period {
    /// `None` for "never".
    fn parse(&self) -> Result<Option<Duration>, String> {
        let text = match self {
            Period::Seconds(0) => return Err("must be more than 0".to_owned()),
            Period::Seconds(n) => return Ok(Some(Duration::from_secs(*n))),
            Period::Text(t) => t.trim(),
        };
        if text == "never" {
            return Ok(None);
        }
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let n: u64 = number
            .parse()
            .map_err(|_| format!("{text:?} is not a period (\"1w\", \"12h\", \"never\")"))?;
        let unit = match unit.trim() {
            "" | "s" => 1,
            "m" | "min" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            "y" => 365 * 86_400,
            other => return Err(format!("unknown unit {other:?} in {text:?}")),
        };
        if n == 0 {
            return Err("must be more than 0".to_owned());
        }
        Ok(Some(Duration::from_secs(n.saturating_mul(unit))))
    }
}

/// Validated settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The service's disco identity name.
    pub name: String,
    /// The SQLite file of rooms and archives.
    pub database: std::path::PathBuf,
    /// Who may create rooms.
    pub create: CreatePolicy,
    /// History a room may keep, at most (Prosody's `max_history_messages`).
    pub max_history_messages: u32,
    /// Occupants per room, if capped.
    pub max_occupants: Option<u32>,
    /// Rooms in memory at once, if capped.
    pub max_rooms: Option<usize>,
    /// How long an empty persistent room stays in memory.
    pub hibernate_after: Duration,
    /// New rooms are locked until their owner configures them.
    pub lock_rooms: bool,
    /// An unconfigured room unlocks itself after this long.
    pub room_lock_timeout: Duration,
    /// Users without affiliation may register a nick (and so become
    /// members); Prosody's `allow_unaffiliated_register`.
    pub allow_unaffiliated_register: bool,
    /// Owners may make rooms persistent (else only service admins);
    /// Prosody's `muc_room_allow_persistent`.
    pub allow_persistent: bool,
    /// Owners may list rooms publicly (else only service admins);
    /// Prosody's `muc_room_allow_public`.
    pub allow_public: bool,
    /// MAM results per page, at most.
    pub max_archive_query_results: usize,
    /// Archived messages older than this are deleted (`None`: kept
    /// forever).
    pub archive_expires_after: Option<Duration>,
    /// The configuration of a new room.
    pub room_defaults: RoomConfig,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            name: "Chatrooms".to_owned(),
            database: std::path::PathBuf::from("muc.sqlite"),
            create: CreatePolicy::Anyone,
            max_history_messages: 20,
            max_occupants: None,
            max_rooms: None,
            hibernate_after: Duration::from_secs(300),
            lock_rooms: true,
            room_lock_timeout: Duration::from_secs(300),
            allow_unaffiliated_register: false,
            allow_persistent: true,
            allow_public: true,
            max_archive_query_results: 50,
            archive_expires_after: Some(Duration::from_secs(7 * 86_400)),
            room_defaults: RoomConfig::default(),
        }
    }
}

impl Settings {
    /// Reads and checks `[component.settings]` of one component.
    pub fn load(c: &ComponentConfig) -> Result<Self, BoxError> {
        let raw: RawSettings = c.settings()?;
        let mut s = Self {
            database: c.default_state_dir("muc").join("muc.sqlite"),
            ..Self::default()
        };
        if let Some(name) = raw.name {
            s.name = name;
        }
        if let Some(path) = raw.database {
            s.database = c.path_setting(path);
        }
        s.create = raw.create.unwrap_or(s.create);
        s.max_history_messages = raw.max_history_messages.unwrap_or(s.max_history_messages);
        s.max_occupants = raw.max_occupants.filter(|&n| n > 0);
        s.max_rooms = raw.max_rooms.filter(|&n| n > 0);
        s.hibernate_after =
            c.seconds_setting("hibernate_after", raw.hibernate_after, s.hibernate_after)?;
        s.lock_rooms = raw.lock_rooms.unwrap_or(s.lock_rooms);
        s.room_lock_timeout = c.seconds_setting(
            "room_lock_timeout",
            raw.room_lock_timeout,
            s.room_lock_timeout,
        )?;
        s.allow_unaffiliated_register = raw
            .allow_unaffiliated_register
            .unwrap_or(s.allow_unaffiliated_register);
        s.allow_persistent = raw.allow_persistent.unwrap_or(s.allow_persistent);
        s.allow_public = raw.allow_public.unwrap_or(s.allow_public);
        s.max_archive_query_results = raw
            .max_archive_query_results
            .unwrap_or(s.max_archive_query_results)
            .max(1);
        if let Some(period) = &raw.archive_expires_after {
            s.archive_expires_after = period
                .parse()
                .map_err(|e| c.settings_error("archive_expires_after", e))?;
        }
        let d = raw.room_defaults.unwrap_or_default();
        let r = &mut s.room_defaults;
        r.persistent = d.persistent.unwrap_or(r.persistent);
        r.public = d.public.unwrap_or(r.public);
        r.members_only = d.members_only.unwrap_or(r.members_only);
        r.allow_member_invites = d.allow_member_invites.unwrap_or(r.allow_member_invites);
        r.moderated = d.moderated.unwrap_or(r.moderated);
        if d.public_jids == Some(true) {
            r.whois = Whois::Anyone;
        }
        r.change_subject = d.change_subject.unwrap_or(r.change_subject);
        if let Some(n) = d.history_length {
            r.history_length = n.min(s.max_history_messages);
            r.default_history_messages = r.default_history_messages.min(r.history_length);
        }
        r.language = d.language.filter(|l| !l.is_empty());
        r.allow_pm = d.allow_pm.unwrap_or(r.allow_pm);
        r.archiving = d.archiving.unwrap_or(r.archiving);
        r.history_length = r.history_length.min(s.max_history_messages);
        r.default_history_messages = r.default_history_messages.min(r.history_length);
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(settings: &str) -> Result<Settings, String> {
        let c = ComponentConfig::with_settings(
            "conference.example.org",
            "/etc/satellite/muc.toml",
            settings,
        )?;
        Settings::load(&c).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults() {
        let s = load("").expect("valid");
        assert_eq!(
            s,
            Settings {
                database: "/etc/satellite/muc-conference.example.org/muc.sqlite".into(),
                ..Settings::default()
            }
        );
        assert_eq!(s.max_history_messages, 20);
        assert!(!s.room_defaults.persistent);
    }

    #[test]
    fn room_defaults_and_policy() {
        let s = load(
            "create = \"local\"\nmax_history_messages = 10\nmax_occupants = 50\n[room_defaults]\npersistent = true\npublic = true\npublic_jids = true\nhistory_length = 40\nallow_pm = \"moderators\"",
        )
        .expect("valid");
        assert_eq!(s.create, CreatePolicy::Local);
        assert_eq!(s.max_occupants, Some(50));
        assert!(s.room_defaults.persistent && s.room_defaults.public);
        assert_eq!(s.room_defaults.whois, Whois::Anyone);
        assert_eq!(
            s.room_defaults.history_length, 10,
            "capped by max_history_messages"
        );
        assert_eq!(s.room_defaults.allow_pm, AllowPm::Moderators);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let e = load("max_history = 3").expect_err("unknown key");
        assert!(e.contains("max_history"), "{e}");
        let e = load("create = \"everyone\"").expect_err("bad policy");
        assert!(e.contains("everyone"), "{e}");
        let e = load("hibernate_after = 0").expect_err("zero");
        assert!(e.contains("hibernate_after"), "{e}");
        let e = load("archive_expires_after = \"3 fortnights\"").expect_err("unit");
        assert!(e.contains("archive_expires_after"), "{e}");
    }

    #[test]
    fn archive_retention() {
        let s = load("").expect("valid");
        assert_eq!(s.archive_expires_after, Some(Duration::from_secs(604_800)));
        let s = load("archive_expires_after = \"never\"").expect("valid");
        assert_eq!(s.archive_expires_after, None);
        let s = load("archive_expires_after = \"12h\"").expect("valid");
        assert_eq!(s.archive_expires_after, Some(Duration::from_secs(43_200)));
        let s = load("archive_expires_after = 90\nmax_archive_query_results = 500").expect("valid");
        assert_eq!(s.archive_expires_after, Some(Duration::from_secs(90)));
        assert_eq!(s.max_archive_query_results, 500);
    }
}
