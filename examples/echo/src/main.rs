//! Runs the echo gateway on its own, from a satellite config file.
//!
//! Run with: `cargo run -p satellite-echo -- examples/echo/echo.toml`

use satellite::{Component, ComponentConfig};
use satellite_echo::{Echo, EchoSettings};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    satellite::serve::main("echo.toml", |c: &ComponentConfig| {
        Ok(Component::builder(c.clone()).plugin(Echo::new(c.settings::<EchoSettings>()?)))
    })
    .await
}
