//! `[component.settings]` of the proxy: where it listens, what it
//! advertises, who may use it, and its limits. Every limit has a default;
//! every error names the file and the key.
//!
//! ```toml
//! [component.settings]
//! listen = "0.0.0.0:7777"            # the SOCKS5 listener (default 127.0.0.1:7777)
//! allow = ["example.org"]            # domains or bare JIDs; "*" = anyone
//! activation_timeout = 60            # seconds an unactivated connection may wait
//! idle_timeout = 300                 # seconds without a byte in either direction
//! max_connections = 1000             # SOCKS5 connections at once, in total
//! max_connections_per_address = 20   # connections not yet activated per IPv4 address / IPv6 /64
//! max_connections_per_jid = 10       # active bytestreams per requester (bare JID)
//! max_sessions = 500                 # paired connections (bytestreams) at once
//! session_rate = 0                   # bytes/s per bytestream, 0 = unlimited
//! total_rate = 0                     # bytes/s over all bytestreams, 0 = unlimited
//! buffer_size = 1048576              # relay buffer (or pipe) per direction, bytes
//! zero_copy = false                  # true: splice(2) on Linux (less CPU; slower in our benchmark)
//!
//! [[component.settings.streamhost]]  # one per advertised address (default: the listen address)
//! host = "203.0.113.7"               # IPv4, IPv6 or a hostname, as clients should dial it
//! port = 7777                        # default: the listen port
//! ```

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use satellite::acl::Acl;
use satellite::jid::BareJid;
use satellite::{BoxError, ComponentConfig};
use serde::Deserialize;

/// The settings as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    /// SOCKS5 listen address.
    listen: Option<SocketAddr>,
    /// Advertised addresses.
    #[serde(default)]
    streamhost: Vec<RawStreamHost>,
    /// Who may use the proxy.
    allow: Option<Vec<String>>,
    activation_timeout: Option<f64>,
    idle_timeout: Option<f64>,
    max_connections: Option<usize>,
    max_connections_per_address: Option<usize>,
    max_connections_per_jid: Option<usize>,
    max_sessions: Option<usize>,
    session_rate: Option<u64>,
    total_rate: Option<u64>,
    buffer_size: Option<usize>,
    zero_copy: Option<bool>,
}

/// One `[[component.settings.streamhost]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStreamHost {
    host: String,
    port: Option<u16>,
}

/// An address the proxy advertises in its streamhost answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertised {
    /// IPv4, IPv6 (without brackets) or a hostname.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The component's JID (labels metrics and logs).
    pub component: String,
    /// The SOCKS5 listen address.
    pub listen: SocketAddr,
    /// What the streamhost query answers, in order.
    pub advertised: Vec<Advertised>,
    /// Who may query and activate.
    pub allow: Acl,
    /// How long a connection may wait for its pair and its activation.
    pub activation_timeout: Duration,
    /// How long an active bytestream may go without a byte.
    pub idle_timeout: Duration,
    /// SOCKS5 connections at once.
    pub max_connections: usize,
    /// Connections not yet activated per IPv4 address or IPv6 /64.
    pub max_connections_per_address: usize,
    /// Active bytestreams per requester bare JID.
    pub max_connections_per_jid: usize,
    /// Paired bytestreams at once.
    pub max_sessions: usize,
    /// Bytes per second per bytestream (both directions together), if capped.
    pub session_rate: Option<u64>,
    /// Bytes per second over all bytestreams, if capped.
    pub total_rate: Option<u64>,
    /// Relay buffer (or pipe) per direction.
    pub buffer_size: usize,
    /// Relay with splice(2) where the platform has it.
    pub zero_copy: bool,
}

impl Settings {
    /// Defaults for a proxy at `jid` (the ACL allows the parent domain's
    /// users: `proxy.example.org` → `example.org`).
    pub fn defaults(jid: &BareJid) -> Self {
        let listen = SocketAddr::from(([127, 0, 0, 1], 7777));
        Self {
            component: jid.to_string(),
            listen,
            advertised: vec![default_advertised(listen, jid)],
            allow: Acl::parent_domain(jid),
            activation_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(300),
            max_connections: 1000,
            max_connections_per_address: 20,
            max_connections_per_jid: 10,
            max_sessions: 500,
            session_rate: None,
            total_rate: None,
            buffer_size: 1024 * 1024,
            zero_copy: false,
        }
    }

    /// Reads and checks `[component.settings]` of one component.
    pub fn load(c: &ComponentConfig) -> Result<Self, BoxError> {
        let raw: RawSettings = c.settings()?;
        let at = |key: &str, msg: String| -> BoxError { c.settings_error(key, msg).into() };
        let mut s = Self::defaults(&c.jid);
        if let Some(listen) = raw.listen {
            s.listen = listen;
            s.advertised = vec![default_advertised(listen, &c.jid)];
        }
        if !raw.streamhost.is_empty() {
            s.advertised = Vec::new();
            for (i, h) in raw.streamhost.iter().enumerate() {
                let host = h.host.trim_start_matches('[').trim_end_matches(']');
                if host.is_empty() || host.contains(char::is_whitespace) {
                    return Err(at(
                        &format!("streamhost[{i}].host"),
                        format!(
                            "`{}` is not an address; expected an IP address or a hostname",
                            h.host
                        ),
                    ));
                }
                let port = h.port.unwrap_or(s.listen.port());
                if port == 0 {
                    return Err(at(
                        &format!("streamhost[{i}].port"),
                        "is 0; expected the port clients dial".to_owned(),
                    ));
                }
                s.advertised.push(Advertised {
                    host: host.to_owned(),
                    port,
                });
            }
        }
        if let Some(allow) = raw.allow {
            s.allow = Acl::parse(&allow).map_err(|(i, m)| at(&format!("allow[{i}]"), m))?;
        }
        s.activation_timeout = c.seconds_setting(
            "activation_timeout",
            raw.activation_timeout,
            s.activation_timeout,
        )?;
        s.idle_timeout = c.seconds_setting("idle_timeout", raw.idle_timeout, s.idle_timeout)?;
        let count = |key: &str, v: Option<usize>, default: usize| {
            c.nonzero_setting(key, v, default, "count")
        };
        s.max_connections = count("max_connections", raw.max_connections, s.max_connections)?;
        s.max_connections_per_address = count(
            "max_connections_per_address",
            raw.max_connections_per_address,
            s.max_connections_per_address,
        )?;
        s.max_connections_per_jid = count(
            "max_connections_per_jid",
            raw.max_connections_per_jid,
            s.max_connections_per_jid,
        )?;
        s.max_sessions = count("max_sessions", raw.max_sessions, s.max_sessions)?;
        s.buffer_size = count("buffer_size", raw.buffer_size, s.buffer_size)?;
        if !(1024..=16 * 1024 * 1024).contains(&s.buffer_size) {
            return Err(at(
                "buffer_size",
                format!("is {}; expected 1024 to 16777216 bytes", s.buffer_size),
            ));
        }
        s.zero_copy = raw.zero_copy.unwrap_or(s.zero_copy);
        // 0 is the documented way to say "no cap".
        s.session_rate = raw.session_rate.filter(|&r| r > 0);
        s.total_rate = raw.total_rate.filter(|&r| r > 0);
        Ok(s)
    }
}

/// The advertised address when none is configured: the listen address, or
/// the component's JID when it listens on every interface (which address
/// a client can reach is then unknown; DNS for the proxy's name is the
/// operator's best bet, as in Prosody's default).
fn default_advertised(listen: SocketAddr, jid: &BareJid) -> Advertised {
    let host = if listen.ip().is_unspecified() {
        jid.domain().as_str().to_owned()
    } else {
        match listen.ip() {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => ip.to_string(),
        }
    };
    Advertised {
        host,
        port: listen.port(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(settings: &str) -> Result<Settings, String> {
        let c = ComponentConfig::with_settings(
            "proxy.example.org",
            "/etc/satellite/proxy.toml",
            settings,
        )?;
        Settings::load(&c).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults() {
        let s = load("").expect("valid");
        assert_eq!(s.listen, SocketAddr::from(([127, 0, 0, 1], 7777)));
        assert_eq!(
            s.advertised,
            vec![Advertised {
                host: "127.0.0.1".into(),
                port: 7777
            }]
        );
        assert_eq!(s.allow, Acl::parse(&["example.org"]).expect("acl"));
        assert_eq!(s.activation_timeout, Duration::from_secs(60));
        assert_eq!(s.session_rate, None);
    }

    #[test]
    fn several_advertised_addresses() {
        let s = load(
            "listen = \"0.0.0.0:9000\"\n\
             [[streamhost]]\nhost = \"203.0.113.7\"\n\
             [[streamhost]]\nhost = \"[2001:db8::7]\"\nport = 443\n\
             [[streamhost]]\nhost = \"proxy.example.org\"\n",
        )
        .expect("valid");
        let hosts: Vec<_> = s
            .advertised
            .iter()
            .map(|a| (a.host.as_str(), a.port))
            .collect();
        assert_eq!(
            hosts,
            [
                ("203.0.113.7", 9000),
                ("2001:db8::7", 443),
                ("proxy.example.org", 9000)
            ]
        );
    }

    #[test]
    fn unspecified_listen_advertises_the_jid() {
        let s = load("listen = \"[::]:7000\"").expect("valid");
        assert_eq!(s.advertised[0].host, "proxy.example.org");
    }

    #[test]
    fn errors_name_file_and_key() {
        let err = load("max_connections = 0").expect_err("zero");
        assert_eq!(
            err,
            "/etc/satellite/proxy.toml: component[0].settings.max_connections: is 0; expected a count above 0"
        );
        let err = load("allow = [\"a@b@c\"]").expect_err("acl");
        assert!(
            err.contains("component[0].settings.allow[0]: `a@b@c` is not a JID"),
            "{err}"
        );
        let err = load("activation_timeout = -1").expect_err("negative");
        assert!(err.contains("settings.activation_timeout: is -1"), "{err}");
        let err = load("listn = \"x\"").expect_err("unknown");
        assert!(
            err.contains("component[0].settings") && err.contains("listn"),
            "{err}"
        );
    }

    #[test]
    fn acl_entries_and_fractional_timeouts() {
        let s =
            load("allow = [\"*\", \"localhost\", \"ada@example.org\"]\nactivation_timeout = 0.5")
                .expect("valid");
        use satellite::acl::AclEntry;
        assert_eq!(s.allow.entries[0], AclEntry::Anyone);
        assert_eq!(s.allow.entries[1], AclEntry::Domain("localhost".into()));
        assert!(matches!(s.allow.entries[2], AclEntry::Account(_)));
        assert_eq!(s.activation_timeout, Duration::from_millis(500));
    }
}
