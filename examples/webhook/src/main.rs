//! The webhook gateway: an HTTP POST with a bearer token becomes an XMPP
//! message to a configured JID (or a room the gateway joins). Alerting
//! systems, CI and cron jobs can then talk to people over XMPP.
//!
//! Run with: `cargo run -p satellite-webhook -- examples/webhook/webhook.toml`
//!
//! ```text
//! curl -H 'Authorization: Bearer <token>' --data 'deploy finished' http://127.0.0.1:8088/
//! curl -H 'Authorization: Bearer <token>' -H 'Content-Type: application/json' \
//!      --data '{"text": "disk 91% full", "to": "ops@example.org"}' http://127.0.0.1:8088/
//! ```

mod gateway;

use satellite::{Component, Config};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "webhook.toml".into());
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    satellite::serve::init_logging(&config.log);
    let factory = |c: &satellite::ComponentConfig| -> Result<_, satellite::BoxError> {
        let gateway = gateway::Webhook::new(gateway::load_settings(c)?);
        Ok(Component::builder(c.clone()).plugin(gateway))
    };
    match satellite::serve::serve(path.as_ref(), config, factory).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}
