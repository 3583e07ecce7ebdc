//! A bundled service's component running inside the test process, against
//! a real server: the tests reach its plugin's state directly.

use std::path::Path;
use std::time::Duration;

use satellite::{CancellationToken, Component, ComponentConfig, Config, LinkStatus, Plugin};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const T: Duration = Duration::from_secs(10);

/// A running component.
pub struct InProcess {
    /// Its link's state.
    pub status: watch::Receiver<LinkStatus>,
    token: CancellationToken,
    handle: JoinHandle<()>,
}

impl InProcess {
    /// Runs a built component (without waiting for its link).
    pub fn spawn(component: Component) -> Self {
        let status = component.status();
        let token = CancellationToken::new();
        let handle = tokio::spawn(component.run(token.clone()));
        Self {
            status,
            token,
            handle,
        }
    }

    /// Waits until the link is up; panics naming `what` after 10 s.
    pub async fn wait_connected(&self, what: &str) {
        let mut status = self.status.clone();
        if tokio::time::timeout(T, status.wait_for(|s| *s == LinkStatus::Connected))
            .await
            .is_err()
        {
            panic!("{what}: not connected; status {:?}", *self.status.borrow());
        }
    }

    /// Parses `config` (one `[[component]]`), builds the component with the
    /// plugin `plugin` makes from it, runs it and waits until its link is up.
    pub async fn start<P: Plugin>(
        config: &str,
        plugin: impl FnOnce(&ComponentConfig) -> P,
    ) -> Self {
        let config = Config::parse(Path::new("test.toml"), config).expect("config");
        let c = &config.components[0];
        let component = Component::builder(c.clone())
            .plugin(plugin(c))
            .build()
            .expect("build");
        let running = Self::spawn(component);
        running.wait_connected("the component").await;
        running
    }

    /// Stops it (SIGTERM's path: handlers finish, the stream closes).
    pub async fn stop(self) {
        self.token.cancel();
        tokio::time::timeout(T, self.handle)
            .await
            .expect("stopped in time")
            .expect("join");
    }
}
