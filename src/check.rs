//! `satellite check`, which `satellite run` also runs before it starts
//! anything: what one refuses, the other refuses.

use std::net::SocketAddr;

use satellite::{BoxError, Config};

use crate::services;

/// Everything `run` needs, without connecting: the framework's checks
/// (`[log]`, `[metrics]`), each service's settings and preflight checks
/// (TLS files, listeners, directories), and no two listeners on one
/// address. With `bind` false no listen address is test-bound.
pub fn check(config: &Config, bind: bool) -> Result<(), BoxError> {
    satellite::serve::check(config, &move |c| services::builder(c, bind))?;
    distinct_listeners(config)
}

/// Two listeners of one config on one address: the second would fail
/// when it starts, which a test bind of each alone cannot see.
fn distinct_listeners(config: &Config) -> Result<(), BoxError> {
    let mut seen: Vec<(SocketAddr, String)> = Vec::new();
    if let Some(listen) = config.metrics.listen {
        seen.push((listen, "metrics.listen".to_owned()));
    }
    for c in &config.components {
        for listen in services::listeners(c) {
            let key = format!("component[{}].settings.listen", c.index);
            if let Some((_, first)) = seen.iter().find(|(a, _)| overlap(*a, listen)) {
                return Err(format!(
                    "{}: {key}: {listen} overlaps {first}; expected one listener per address and port",
                    config.file.display()
                )
                .into());
            }
            seen.push((listen, key));
        }
    }
    Ok(())
}

/// Whether two listeners would contend for one port: the same port, and
/// the same address or either one every address.
fn overlap(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    #[test]
    fn listeners_overlap_on_one_port_of_one_address_or_all() {
        assert!(overlap(addr("127.0.0.1:80"), addr("127.0.0.1:80")));
        assert!(overlap(addr("0.0.0.0:80"), addr("127.0.0.1:80")));
        assert!(overlap(addr("[::]:80"), addr("127.0.0.1:80")));
        assert!(!overlap(addr("127.0.0.1:80"), addr("127.0.0.2:80")));
        assert!(!overlap(addr("127.0.0.1:80"), addr("127.0.0.1:81")));
    }

    #[test]
    fn two_services_on_one_address_are_refused() {
        let text = "[metrics]\nlisten = \"127.0.0.1:9100\"\n\
            [[component]]\nservice = \"proxy65\"\njid = \"proxy.example.org\"\nserver = \"127.0.0.1:5347\"\nsecret = \"s\"\n\
            [component.settings]\nlisten = \"0.0.0.0:7777\"\n\
            [[component]]\nservice = \"upload\"\njid = \"upload.example.org\"\nserver = \"127.0.0.1:5347\"\nsecret = \"s\"\n\
            [component.settings]\nlisten = \"127.0.0.1:7777\"\n";
        let config =
            Config::parse(std::path::Path::new("/etc/satellite/s.toml"), text).expect("valid");
        let err = distinct_listeners(&config)
            .expect_err("overlap")
            .to_string();
        assert_eq!(
            err,
            "/etc/satellite/s.toml: component[1].settings.listen: 127.0.0.1:7777 overlaps component[0].settings.listen; expected one listener per address and port"
        );
        let text = text.replace("127.0.0.1:7777", "127.0.0.1:9100");
        let config =
            Config::parse(std::path::Path::new("/etc/satellite/s.toml"), &text).expect("valid");
        let err = distinct_listeners(&config)
            .expect_err("overlap")
            .to_string();
        assert!(err.contains("overlaps metrics.listen"), "{err}");
    }
}
