//! `[component.settings]` of the upload service. Every limit has a
//! default; every error names the file and the key.
//!
//! ```toml
//! [component.settings]
//! listen = "127.0.0.1:8363"          # the HTTP listener
//! public_url = "https://upload.example.org/files/"  # what URLs in slots start with
//!                                    # (default: http://<listen>/; behind nginx/Caddy: their URL)
//! storage_dir = "/var/lib/satellite/upload"  # default: $STATE_DIRECTORY, else
//!                                    # upload-<jid>/ next to the config file
//! allow = ["example.org"]            # who may request slots: domains, bare JIDs, "*"
//!                                    # (default: the parent domain's users)
//! max_file_size = 104857600          # bytes per file
//! daily_quota = 1048576000           # bytes of slots per user per 24 h (default: 10 x max_file_size)
//! user_quota = 1073741824            # bytes stored per user at once (0 = no cap)
//! global_quota = 0                   # bytes stored in all (0 = no cap)
//! min_free_space = 268435456         # refuse slots that would leave less free disk than this
//! allowed_types = []                 # MIME types allowed ("image/*" wildcards); empty = any
//! inline_types = ["image/*", "video/*", "audio/*", "text/plain"]  # shown inline; others download
//! expire_after = 604800              # seconds a file is kept (0 = forever)
//! slot_lifetime = 300                # seconds a slot's PUT authorisation is valid
//! sweep_interval = 300               # seconds between expiry sweeps
//! fsync = false                      # true: a file is on disk before its PUT is answered
//! idle_timeout = 60                  # seconds an HTTP transfer may go without a byte
//! header_timeout = 10                # seconds from connecting to a request's headers being in
//!                                    # (TLS handshake, HTTP/2 preface included); also how long
//!                                    # an idle HTTP/1.1 keep-alive connection stays open
//! max_connections = 1024             # HTTP connections at once
//! max_header_size = 65536            # bytes of a request's head; also each HTTP/1.1
//!                                    # connection's read buffer (memory: × max_connections)
//! max_uploads = 128                  # PUTs receiving a body at once (each has a writer
//!                                    # thread); more wait up to idle_timeout, then get 503
//! max_open_slots = 100               # slots per user issued and not yet uploaded
//! cors_origins = ["*"]               # origins web clients may upload from
//! slot_key_file = "slot.key"         # HMAC key of slot URLs (default: generated in storage_dir)
//! external_secret_file = "ext.secret"  # enables the mod_http_upload_external back end
//! tls_cert = "upload.crt"           # serve HTTPS directly (with tls_key); relative paths
//! tls_key = "upload.key"             # like secret files: $CREDENTIALS_DIRECTORY, then next
//!                                    # to the config (the unit's service user cannot read
//!                                    # a root-only key: hand it over with LoadCredential=)
//! ```

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use satellite::acl::Acl;
use satellite::jid::BareJid;
use satellite::{BoxError, ComponentConfig, Secret};
use serde::Deserialize;

use crate::mime::MimePattern;

/// The settings as written in the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    listen: Option<SocketAddr>,
    public_url: Option<String>,
    storage_dir: Option<PathBuf>,
    allow: Option<Vec<String>>,
    max_file_size: Option<u64>,
    daily_quota: Option<u64>,
    user_quota: Option<u64>,
    global_quota: Option<u64>,
    min_free_space: Option<u64>,
    allowed_types: Option<Vec<String>>,
    inline_types: Option<Vec<String>>,
    expire_after: Option<f64>,
    slot_lifetime: Option<f64>,
    sweep_interval: Option<f64>,
    idle_timeout: Option<f64>,
    header_timeout: Option<f64>,
    fsync: Option<bool>,
    max_connections: Option<usize>,
    max_header_size: Option<usize>,
    max_uploads: Option<usize>,
    max_open_slots: Option<u64>,
    cors_origins: Option<Vec<String>>,
    slot_key_file: Option<PathBuf>,
    external_secret: Option<String>,
    external_secret_file: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

/// Certificate chain and key for direct HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The component's JID (labels metrics and logs).
    pub component: String,
    /// HTTP listen address.
    pub listen: SocketAddr,
    /// Base of every slot URL, ending in `/`.
    pub public_url: String,
    /// Where files, partial uploads and the database live.
    pub storage_dir: PathBuf,
    /// Who may request slots.
    pub allow: Acl,
    /// Bytes per file.
    pub max_file_size: u64,
    /// Bytes of slots per user in any 24 hours.
    pub daily_quota: u64,
    /// Bytes stored per user at once, if capped.
    pub user_quota: Option<u64>,
    /// Bytes stored in all, if capped.
    pub global_quota: Option<u64>,
    /// Free disk space a slot may not eat into.
    pub min_free_space: u64,
    /// MIME types allowed; empty = any.
    pub allowed_types: Vec<MimePattern>,
    /// MIME types served inline; others get `Content-Disposition: attachment`.
    pub inline_types: Vec<MimePattern>,
    /// How long a file is kept, if it expires.
    pub expire_after: Option<Duration>,
    /// How long a slot's PUT authorisation is valid.
    pub slot_lifetime: Duration,
    /// Time between expiry sweeps.
    pub sweep_interval: Duration,
    /// An HTTP transfer without a byte for this long is cut.
    pub idle_timeout: Duration,
    /// Deadline from accepting a connection (TLS handshake, protocol
    /// detection, HTTP/2 preface) until its first request's headers are
    /// in, and for each later HTTP/1.1 request's headers.
    pub header_timeout: Duration,
    /// fsync each file before it becomes visible.
    pub fsync: bool,
    /// HTTP connections at once.
    pub max_connections: usize,
    /// Bytes of a request head (HTTP/1.1 request line and headers, HTTP/2
    /// header list); also the read buffer of an HTTP/1.1 connection.
    pub max_header_size: usize,
    /// PUTs receiving their body at once (each holds a blocking writer
    /// thread, so this stays below tokio's blocking pool).
    pub max_uploads: usize,
    /// Slots per user issued and not yet uploaded, whose PUT window is
    /// open.
    pub max_open_slots: u64,
    /// Origins allowed by CORS (`*` = any).
    pub cors_origins: Vec<String>,
    /// The slot URL signing key, from `slot_key_file` (`None`: generated
    /// in `storage_dir` at the first start).
    pub slot_key: Option<Secret>,
    /// Shared secret of Prosody's mod_http_upload_external (and ejabberd's
    /// `external_secret`), if that back end is on.
    pub external_secret: Option<Secret>,
    /// Direct HTTPS, if configured.
    pub tls: Option<TlsFiles>,
}

const MIB: u64 = 1024 * 1024;
/// tokio's blocking pool (512 threads) less room for file reads and the
/// catalog.
const MAX_UPLOADS_CAP: usize = 384;
/// hyper's floor for its read buffer, and a ceiling.
const HEADER_SIZES: std::ops::RangeInclusive<usize> = 8192..=1024 * 1024;

impl Settings {
    /// Defaults for a service at `jid`, storing under `storage_dir`.
    pub fn defaults(jid: &BareJid, storage_dir: PathBuf) -> Self {
        let listen = SocketAddr::from(([127, 0, 0, 1], 8363));
        let max_file_size = 100 * MIB;
        Self {
            component: jid.to_string(),
            listen,
            public_url: default_public_url(listen, jid),
            storage_dir,
            allow: Acl::parent_domain(jid),
            max_file_size,
            daily_quota: 10 * max_file_size,
            user_quota: Some(1024 * MIB),
            global_quota: None,
            min_free_space: 256 * MIB,
            allowed_types: Vec::new(),
            inline_types: ["image/*", "video/*", "audio/*", "text/plain"]
                .iter()
                .filter_map(|t| MimePattern::parse(t).ok())
                .collect(),
            expire_after: Some(Duration::from_secs(7 * 86400)),
            slot_lifetime: Duration::from_secs(300),
            sweep_interval: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(10),
            fsync: false,
            max_connections: 1024,
            max_header_size: 64 * 1024,
            max_uploads: 128,
            max_open_slots: 100,
            cors_origins: vec!["*".to_owned()],
            slot_key: None,
            external_secret: None,
            tls: None,
        }
    }

    /// Reads and checks `[component.settings]` of one component.
    pub fn load(c: &ComponentConfig) -> Result<Self, BoxError> {
        let raw: RawSettings = c.settings()?;
        let at = |key: &str, msg: String| -> BoxError { c.settings_error(key, msg).into() };
        let default_dir = c.default_state_dir("upload");
        let mut s = Self::defaults(&c.jid, default_dir);
        if let Some(listen) = raw.listen {
            s.listen = listen;
            s.public_url = default_public_url(listen, &c.jid);
        }
        let explicit_url = raw.public_url.is_some();
        if let Some(url) = raw.public_url {
            s.public_url = check_public_url(&url).map_err(|m| at("public_url", m))?;
        }
        if let Some(dir) = raw.storage_dir {
            s.storage_dir = c.path_setting(dir);
        }
        if let Some(allow) = raw.allow {
            s.allow = Acl::parse(&allow).map_err(|(i, m)| at(&format!("allow[{i}]"), m))?;
        }
        let bytes = |key: &str, v: Option<u64>, default: u64| match v {
            None => Ok(default),
            Some(0) => Err(at(
                key,
                "is 0; expected a number of bytes above 0".to_owned(),
            )),
            Some(n) => Ok(n),
        };
        s.max_file_size = bytes("max_file_size", raw.max_file_size, s.max_file_size)?;
        s.daily_quota = bytes("daily_quota", raw.daily_quota, 10 * s.max_file_size)?;
        // 0 is the documented way to say "no cap".
        if let Some(q) = raw.user_quota {
            s.user_quota = (q > 0).then_some(q);
        }
        s.global_quota = raw.global_quota.filter(|&q| q > 0);
        s.min_free_space = raw.min_free_space.unwrap_or(s.min_free_space);
        if let Some(types) = raw.allowed_types {
            s.allowed_types = mime_list("allowed_types", &types, &at)?;
        }
        if let Some(types) = raw.inline_types {
            s.inline_types = mime_list("inline_types", &types, &at)?;
        }
        let secs =
            |key: &str, v: Option<f64>, default: Duration| c.seconds_setting(key, v, default);
        s.expire_after = match raw.expire_after {
            Some(0.0) => None,
            other => Some(secs(
                "expire_after",
                other,
                s.expire_after.unwrap_or_default(),
            )?),
        };
        s.slot_lifetime = secs("slot_lifetime", raw.slot_lifetime, s.slot_lifetime)?;
        s.sweep_interval = secs("sweep_interval", raw.sweep_interval, s.sweep_interval)?;
        s.idle_timeout = secs("idle_timeout", raw.idle_timeout, s.idle_timeout)?;
        s.header_timeout = secs("header_timeout", raw.header_timeout, s.header_timeout)?;
        s.fsync = raw.fsync.unwrap_or(s.fsync);
        s.max_connections = c.nonzero_setting(
            "max_connections",
            raw.max_connections,
            s.max_connections,
            "count",
        )?;
        if let Some(size) = raw.max_header_size {
            if !HEADER_SIZES.contains(&size) {
                return Err(at(
                    "max_header_size",
                    format!(
                        "is {size}; expected a number of bytes from {} to {}",
                        HEADER_SIZES.start(),
                        HEADER_SIZES.end()
                    ),
                ));
            }
            s.max_header_size = size;
        }
        s.max_uploads =
            c.nonzero_setting("max_uploads", raw.max_uploads, s.max_uploads, "count")?;
        if s.max_uploads > MAX_UPLOADS_CAP {
            return Err(at(
                "max_uploads",
                format!(
                    "is {}; expected at most {MAX_UPLOADS_CAP} (each upload holds one of tokio's 512 blocking threads, which downloads and the catalog need too)",
                    s.max_uploads
                ),
            ));
        }
        s.max_open_slots = c.nonzero_setting(
            "max_open_slots",
            raw.max_open_slots,
            s.max_open_slots,
            "count",
        )?;
        if let Some(origins) = raw.cors_origins {
            for (i, o) in origins.iter().enumerate() {
                if o != "*" && !(o.starts_with("http://") || o.starts_with("https://")) {
                    return Err(at(
                        &format!("cors_origins[{i}]"),
                        format!("`{o}` is not an origin; expected `*` or `https://host[:port]`"),
                    ));
                }
            }
            s.cors_origins = origins;
        }
        if let Some(path) = raw.slot_key_file {
            let key = Secret::from_file(&c.source, &path).map_err(|m| at("slot_key_file", m))?;
            if key.expose().len() < 16 {
                return Err(at(
                    "slot_key_file",
                    "holds fewer than 16 bytes; expected a random key (e.g. `openssl rand -hex 32`)"
                        .to_owned(),
                ));
            }
            s.slot_key = Some(key);
        }
        s.external_secret = Secret::from_pair(
            &c.source,
            "external_secret",
            raw.external_secret,
            raw.external_secret_file,
        )
        .map_err(|(key, m)| at(&key, m))?;
        s.tls = match (raw.tls_cert, raw.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: credential_path(c.config_dir(), cert),
                key: credential_path(c.config_dir(), key),
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(at(
                    "tls_key",
                    "missing; `tls_cert` needs the matching PEM private key".to_owned(),
                ));
            }
            (None, Some(_)) => {
                return Err(at(
                    "tls_cert",
                    "missing; `tls_key` needs the matching PEM certificate chain".to_owned(),
                ));
            }
        };
        if s.tls.is_some() && !explicit_url {
            s.public_url = s.public_url.replacen("http://", "https://", 1);
        }
        Ok(s)
    }

    /// Whether `content_type` may be uploaded.
    pub fn type_allowed(&self, content_type: &str) -> bool {
        self.allowed_types.is_empty() || self.allowed_types.iter().any(|p| p.matches(content_type))
    }

    /// Whether files of `content_type` are shown inline in browsers. Types
    /// that can carry scripts or markup (SVG, HTML, XML) never are, whatever
    /// `inline_types` says: `image/*` must not make an SVG a web page.
    pub fn inline(&self, content_type: &str) -> bool {
        let scriptable = crate::mime::essence(content_type).is_none_or(|t| {
            ["svg", "html", "xml", "script"]
                .iter()
                .any(|w| t.contains(w))
        });
        !scriptable && self.inline_types.iter().any(|p| p.matches(content_type))
    }

    /// `Cache-Control: max-age` for served files: their remaining life is
    /// unknown to caches, so the whole `expire_after` (or a year).
    pub fn cache_max_age(&self) -> u64 {
        self.expire_after
            .map_or(365 * 86400, |d| d.as_secs().max(1))
            .min(365 * 86400)
    }
}

fn mime_list(
    key: &str,
    types: &[String],
    at: &dyn Fn(&str, String) -> BoxError,
) -> Result<Vec<MimePattern>, BoxError> {
    types
        .iter()
        .enumerate()
        .map(|(i, t)| MimePattern::parse(t).map_err(|m| at(&format!("{key}[{i}]"), m)))
        .collect()
}

/// `http://<listen>/`, or `http://<jid>:<port>/` when listening on every
/// interface (which address clients reach is then unknown).
fn default_public_url(listen: SocketAddr, jid: &BareJid) -> String {
    let host = match listen.ip() {
        ip if ip.is_unspecified() => jid.domain().as_str().to_owned(),
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    };
    format!("http://{host}:{}/", listen.port())
}

fn check_public_url(url: &str) -> Result<String, String> {
    let expected = "expected an absolute http(s) URL such as `https://upload.example.org/`";
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("`{url}` is not an http(s) URL; {expected}"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || url.contains(['?', '#', ' ']) {
        return Err(format!("`{url}` has no host or has a query; {expected}"));
    }
    let mut url = url.to_owned();
    if !url.ends_with('/') {
        url.push('/');
    }
    Ok(url)
}

/// A file read like a secret file: a relative path is taken from
/// `$CREDENTIALS_DIRECTORY` (systemd `LoadCredential=`) when it is there,
/// else from the config file's directory.
fn credential_path(config_dir: &Path, path: PathBuf) -> PathBuf {
    if path.is_relative()
        && let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY")
    {
        let candidate = PathBuf::from(dir).join(&path);
        if candidate.exists() {
            return candidate;
        }
    }
    config_dir.join(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(settings: &str) -> Result<Settings, String> {
        let c = ComponentConfig::with_settings(
            "upload.example.org",
            "/etc/satellite/upload.toml",
            settings,
        )?;
        Settings::load(&c).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults() {
        let s = load("").expect("valid");
        assert_eq!(s.public_url, "http://127.0.0.1:8363/");
        assert_eq!(s.max_file_size, 100 * MIB);
        assert_eq!(s.daily_quota, 1000 * MIB);
        assert!(s.type_allowed("application/x-anything"));
        assert!(s.inline("image/png"));
        assert!(!s.inline("text/html"));
        assert!(!s.inline("image/svg+xml"), "an SVG is never inline");
        assert_eq!(s.expire_after, Some(Duration::from_secs(604800)));
        assert!(s.external_secret.is_none());
        assert_eq!(s.header_timeout, Duration::from_secs(10));
        assert_eq!(
            (s.max_header_size, s.max_uploads, s.max_open_slots),
            (65536, 128, 100)
        );
        let sized = load("max_file_size = 1000").expect("valid");
        assert_eq!(sized.daily_quota, 10_000);
    }

    #[test]
    fn public_url_and_listen() {
        let s = load("listen = \"0.0.0.0:9000\"").expect("valid");
        assert_eq!(s.public_url, "http://upload.example.org:9000/");
        let s = load("public_url = \"https://files.example.org/up\"").expect("valid");
        assert_eq!(s.public_url, "https://files.example.org/up/");
        let err = load("public_url = \"ftp://x/\"").expect_err("scheme");
        assert!(
            err.starts_with("/etc/satellite/upload.toml: component[0].settings.public_url: `ftp://x/` is not an http(s) URL"),
            "{err}"
        );
    }

    #[test]
    fn errors_name_file_and_key() {
        let err = load("max_file_size = 0").expect_err("zero");
        assert_eq!(
            err,
            "/etc/satellite/upload.toml: component[0].settings.max_file_size: is 0; expected a number of bytes above 0"
        );
        let err = load("allowed_types = [\"image/png\", \"nonsense\"]").expect_err("mime");
        assert!(
            err.contains("settings.allowed_types[1]: `nonsense` is not a MIME type"),
            "{err}"
        );
        let tls = load("tls_cert = \"c.pem\"\ntls_key = \"k.pem\"").expect("tls");
        assert_eq!(tls.public_url, "https://127.0.0.1:8363/");
        assert_eq!(
            tls.tls.map(|t| t.cert),
            Some(PathBuf::from("/etc/satellite/c.pem"))
        );
        let err = load("tls_cert = \"c.pem\"").expect_err("no key");
        assert!(err.contains("settings.tls_key: missing"), "{err}");
        let err = load("expire_after = -5").expect_err("negative");
        assert!(err.contains("settings.expire_after: is -5"), "{err}");
        let err = load("cors_origins = [\"example.org\"]").expect_err("origin");
        assert!(err.contains("settings.cors_origins[0]"), "{err}");
        let err = load("max_header_size = 100").expect_err("small");
        assert!(
            err.contains("settings.max_header_size: is 100; expected a number of bytes from 8192"),
            "{err}"
        );
        let err = load("max_uploads = 1000").expect_err("above the pool");
        assert!(
            err.contains("settings.max_uploads: is 1000; expected at most 384"),
            "{err}"
        );
        let err = load("max_open_slots = 0").expect_err("zero");
        assert!(err.contains("settings.max_open_slots: is 0"), "{err}");
        let err = load("header_timeout = 0").expect_err("zero");
        assert!(err.contains("settings.header_timeout: is 0"), "{err}");
        let err = load("max_size = 5").expect_err("unknown key");
        assert!(err.contains("max_size"), "{err}");
    }

    #[test]
    fn zero_means_no_cap_or_forever() {
        let s = load("user_quota = 0\nglobal_quota = 0\nexpire_after = 0").expect("valid");
        assert_eq!(s.user_quota, None);
        assert_eq!(s.global_quota, None);
        assert_eq!(s.expire_after, None);
        assert_eq!(s.cache_max_age(), 365 * 86400);
        let s = load("allowed_types = [\"image/*\", \"text/plain\"]").expect("valid");
        assert!(s.type_allowed("image/jpeg"));
        assert!(s.type_allowed("TEXT/PLAIN; charset=utf-8"));
        assert!(!s.type_allowed("application/x-executable"));
    }
}
