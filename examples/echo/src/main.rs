//! Runs the echo gateway on its own, from a satellite config file.
//!
//! Run with: `cargo run -p satellite-echo -- -c examples/echo/echo.toml`
//! (`--help` lists the options).

use satellite::{Component, ComponentConfig};
use satellite_echo::{Echo, EchoSettings};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    satellite::serve::main_with(satellite::program!(), "echo.toml", |c: &ComponentConfig| {
        Ok(Component::builder(c.clone()).plugin(Echo::new(c.settings::<EchoSettings>()?)))
    })
    .await
}
