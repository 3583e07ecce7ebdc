//! What the proxy needs from the machine, checked before it starts: its
//! SOCKS5 listener bindable. `satellite check` runs this check, and
//! `satellite run` runs the same one before starting the service (also
//! on reload), so the two never disagree.

use std::net::SocketAddr;

use satellite::{BoxError, ComponentConfig, ConfigError};

use crate::config::Settings;

/// Runs every check for the proxy of `config` (its settings already
/// read). With `bind` false the listener is not test-bound: a running
/// satellite holds its own.
pub fn check(config: &ComponentConfig, settings: &Settings, bind: bool) -> Result<(), BoxError> {
    if bind {
        listener(config, settings.listen)?;
    }
    Ok(())
}

/// `listen` can be bound now (the test listener closes at once).
pub fn listener(config: &ComponentConfig, listen: SocketAddr) -> Result<(), ConfigError> {
    std::net::TcpListener::bind(listen).map(drop).map_err(|e| {
        config.settings_error(
            "listen",
            format!("cannot listen on {listen}: {e}; expected a free address of this host"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_listen_address_is_refused() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("addr");
        let c = ComponentConfig::with_settings(
            "proxy.example.org",
            "/etc/satellite/proxy.toml",
            &format!("listen = \"{addr}\""),
        )
        .expect("config");
        let s = Settings::load(&c).expect("settings");
        let err = check(&c, &s, true).expect_err("taken").to_string();
        assert!(
            err.starts_with(&format!(
                "/etc/satellite/proxy.toml: component[0].settings.listen: cannot listen on {addr}: "
            )),
            "{err}"
        );
        check(&c, &s, false).expect("not bound without `bind`");
        drop(taken);
        check(&c, &s, true).expect("free again");
    }
}
