//! The bundled services, by the name a config's `service` key uses.

use satellite::{BoxError, Component, ComponentBuilder, ComponentConfig};

/// Service names this binary knows.
pub const SERVICES: &[&str] = &["echo", "proxy65", "upload"];

/// Builds the component a config table describes.
pub fn factory(config: &ComponentConfig) -> Result<ComponentBuilder, BoxError> {
    let at = format!("{}: component[{}]", config.source.display(), config.index);
    let builder = Component::builder(config.clone());
    match config.service.as_deref() {
        Some("echo") => {
            let settings = config.settings::<satellite_echo::EchoSettings>()?;
            Ok(builder
                .plugin(satellite_echo::Echo::new(settings))
                .software("satellite echo", env!("CARGO_PKG_VERSION")))
        }
        Some("proxy65") => {
            let proxy = satellite_proxy65::Proxy65::from_config(config)?;
            Ok(builder
                .plugin(proxy)
                .identity("proxy", "bytestreams", "SOCKS5 Bytestreams Service")
                .software("satellite proxy65", env!("CARGO_PKG_VERSION")))
        }
        Some("upload") => {
            let upload = satellite_upload::Upload::from_config(config)?;
            Ok(builder
                .plugin(upload)
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
