//! A component: its plugins, built into a router, and the link that feeds it.

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::adhoc::{AdhocCommand, AdhocPlugin};
use crate::config::ComponentConfig;
use crate::disco::DiscoPlugin;
use crate::ping::Ping;
use crate::plugin::Plugin;
use crate::router::{RouteConflict, Router};
use crate::version::Version;

/// The state of a component's link, as seen from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkStatus {
    /// Connecting or handshaking.
    Connecting,
    /// Handshake done; stanzas flow.
    Connected,
    /// The link is down; a reconnect follows. `error` says why.
    Disconnected {
        /// Why the link is down.
        error: String,
    },
    /// The component has stopped.
    Stopped,
    /// A plugin could not start ([`Plugin::on_start`]
    /// failed); the component has stopped. `error` says why.
    Failed {
        /// What failed.
        error: String,
    },
}

/// Assembles a component from a config and plugins.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use satellite::{Component, ComponentConfig, Secret};
/// let config = ComponentConfig::new("echo.localhost".parse()?, "127.0.0.1:5347", Secret::new("s"));
/// let component = Component::builder(config)
///     // .plugin(MyGateway::new())
///     .build()?;
/// component.run(satellite::CancellationToken::new()).await;
/// # Ok(()) }
/// ```
pub struct ComponentBuilder {
    config: ComponentConfig,
    plugins: Vec<Arc<dyn Plugin>>,
    commands: Vec<Arc<dyn AdhocCommand>>,
    software: (String, String),
    identity: (String, String, String),
}

impl ComponentBuilder {
    /// Adds a plugin. Messages and presences are offered to plugins in the
    /// order they were added.
    pub fn plugin(self, plugin: impl Plugin) -> Self {
        self.plugin_arc(Arc::new(plugin))
    }

    /// Adds a shared plugin.
    pub fn plugin_arc(mut self, plugin: Arc<dyn Plugin>) -> Self {
        self.plugins.push(plugin);
        self
    }

    /// Adds an ad-hoc command (XEP-0050) not tied to a plugin.
    pub fn command(mut self, command: impl AdhocCommand) -> Self {
        self.commands.push(Arc::new(command));
        self
    }

    /// The name and version reported by XEP-0092 (default: satellite and
    /// the framework's version).
    pub fn software(mut self, name: &str, version: &str) -> Self {
        self.software = (name.to_owned(), version.to_owned());
        self
    }

    /// The disco identity used when no plugin declares one (default:
    /// `component/generic`).
    pub fn identity(mut self, category: &str, type_: &str, name: &str) -> Self {
        self.identity = (category.to_owned(), type_.to_owned(), name.to_owned());
        self
    }

    /// Builds the component. Fails if two plugins claim the same IQ route.
    pub fn build(self) -> Result<Component, RouteConflict> {
        let mut commands = self.commands;
        for plugin in &self.plugins {
            commands.extend(plugin.commands());
        }
        let mut plugins = self.plugins;
        plugins.push(Arc::new(Ping));
        plugins.push(Arc::new(Version::new(&self.software.0, &self.software.1)));
        plugins.push(Arc::new(AdhocPlugin::new(
            commands,
            self.config.admins.clone(),
        )));
        let disco = Arc::new(DiscoPlugin::new(self.identity));
        disco.set_plugins(plugins.clone());
        plugins.push(disco);
        let router = Router::new(plugins)?;
        let (status, _) = watch::channel(LinkStatus::Connecting);
        Ok(Component {
            config: self.config,
            router: Arc::new(router),
            status,
        })
    }
}

/// A built component, ready to [`run`](Component::run).
pub struct Component {
    pub(crate) config: ComponentConfig,
    pub(crate) router: Arc<Router>,
    pub(crate) status: watch::Sender<LinkStatus>,
}

impl Component {
    /// Starts assembling a component.
    pub fn builder(config: ComponentConfig) -> ComponentBuilder {
        ComponentBuilder {
            config,
            plugins: Vec::new(),
            commands: Vec::new(),
            software: ("satellite".to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
            identity: (
                "component".to_owned(),
                "generic".to_owned(),
                "satellite".to_owned(),
            ),
        }
    }

    /// The component's config.
    pub fn config(&self) -> &ComponentConfig {
        &self.config
    }

    /// Watches the link's state (e.g. to report readiness once connected).
    pub fn status(&self) -> watch::Receiver<LinkStatus> {
        self.status.subscribe()
    }

    /// Runs until `shutdown` is cancelled: connects, reconnects with
    /// backoff, handles stanzas, and on shutdown lets running handlers
    /// finish (within `shutdown_timeout`) and closes the stream.
    pub async fn run(self, shutdown: CancellationToken) {
        crate::link::run(self, shutdown).await
    }
}
