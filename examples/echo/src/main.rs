//! Runs the echo gateway on its own, from a satellite config file.
//!
//! Run with: `cargo run -p satellite-echo -- examples/echo/echo.toml`

use satellite::{Component, Config};
use satellite_echo::{Echo, EchoSettings};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "echo.toml".into());
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    satellite::serve::init_logging(&config.log);
    let factory = |c: &satellite::ComponentConfig| -> Result<_, satellite::BoxError> {
        Ok(Component::builder(c.clone()).plugin(Echo::new(c.settings::<EchoSettings>()?)))
    };
    match satellite::serve::serve(path.as_ref(), config, factory).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}
