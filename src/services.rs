//! The bundled services, by the name a config's `service` key uses.

use std::net::SocketAddr;

use satellite::{BoxError, Component, ComponentBuilder, ComponentConfig};

/// Service names this binary knows.
pub const SERVICES: &[&str] = &["announce", "echo", "muc", "proxy65", "upload"];

/// Builds the component a config table describes, after the service's
/// preflight checks (TLS files, listeners, directories): what
/// `satellite run` starts, on start and on reload.
pub fn factory(config: &ComponentConfig) -> Result<ComponentBuilder, BoxError> {
    builder(config, true)
}

/// Builds the component a config table describes. The service's settings
/// are read and its preflight checks run; with `bind` false its listen
/// addresses are not test-bound.
pub fn builder(config: &ComponentConfig, bind: bool) -> Result<ComponentBuilder, BoxError> {
    let at = format!("{}: component[{}]", config.source.display(), config.index);
    let builder = Component::builder(config.clone());
    match config.service.as_deref() {
        Some("announce") => {
            let settings = satellite_announce::Settings::load(config)?;
            Ok(builder
                .plugin(satellite_announce::AnnouncePlugin::new(
                    satellite_announce::Announce::new(config, settings),
                ))
                .software("satellite announce", env!("CARGO_PKG_VERSION")))
        }
        Some("echo") => {
            let settings = config.settings::<satellite_echo::EchoSettings>()?;
            Ok(builder
                .plugin(satellite_echo::Echo::new(settings))
                .software("satellite echo", env!("CARGO_PKG_VERSION")))
        }
        Some("muc") => {
            let settings = satellite_muc::Settings::load(config)?;
            Ok(builder
                .plugin(satellite_muc::MucPlugin::new(satellite_muc::Muc::new(
                    config, settings,
                )))
                .software("satellite muc", env!("CARGO_PKG_VERSION")))
        }
        Some("proxy65") => {
            let settings = satellite_proxy65::Settings::load(config)?;
            satellite_proxy65::preflight::check(config, &settings, bind)?;
            Ok(builder
                .plugin(satellite_proxy65::Proxy65::new(settings))
                .identity("proxy", "bytestreams", "SOCKS5 Bytestreams Service")
                .software("satellite proxy65", env!("CARGO_PKG_VERSION")))
        }
        Some("upload") => {
            let settings = satellite_upload::Settings::load(config)?;
            satellite_upload::preflight::check(config, &settings, bind)?;
            Ok(builder
                .plugin(satellite_upload::Upload::new(settings))
                .software("satellite upload", env!("CARGO_PKG_VERSION")))
        }
        Some(other) => Err(format!(
            "{at}.service: unknown service `{other}`; expected one of {}",
            SERVICES.join(", ")
        )
        .into()),
        None => Err(format!(
            "{at}.service: missing; expected one of {}",
            SERVICES.join(", ")
        )
        .into()),
    }
}

/// The TCP addresses a component's service listens on (none when its
/// settings do not read: [`builder`] reports that).
pub fn listeners(config: &ComponentConfig) -> Vec<SocketAddr> {
    match config.service.as_deref() {
        Some("proxy65") => satellite_proxy65::Settings::load(config)
            .map(|s| vec![s.listen])
            .unwrap_or_default(),
        Some("upload") => satellite_upload::Settings::load(config)
            .map(|s| vec![s.listen])
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}
