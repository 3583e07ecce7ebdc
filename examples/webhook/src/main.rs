//! The webhook gateway: an HTTP POST with a bearer token becomes an XMPP
//! message to a configured JID (or a room the gateway joins). Alerting
//! systems, CI and cron jobs can then talk to people over XMPP.
//!
//! Run with: `cargo run -p satellite-webhook -- -c examples/webhook/webhook.toml`
//! (`--help` lists the options; the settings are in `webhook.toml`).
//!
//! ```text
//! curl -H 'Authorization: Bearer <token>' --data 'deploy finished' http://127.0.0.1:8088/
//! curl -H 'Authorization: Bearer <token>' -H 'Content-Type: application/json' \
//!      --data '{"text": "disk 91% full", "to": "ops@example.org"}' http://127.0.0.1:8088/
//! ```

mod gateway;

use satellite::{Component, ComponentConfig};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    satellite::serve::main_with(
        satellite::program!(),
        "webhook.toml",
        |c: &ComponentConfig| {
            let gateway = gateway::Webhook::new(gateway::load_settings(c)?);
            Ok(Component::builder(c.clone()).plugin(gateway))
        },
    )
    .await
}
