//! The components of a config as running tasks: starting them, watching
//! their links, and the difference a reload applies.
//!
//! At start, every component is built before any starts: a bad one
//! starts nothing, and one whose service cannot start ends the process.
//! On reload each component stands alone: one that cannot be built, or
//! whose service then fails to start, is left out (and reported), and
//! everything else keeps running.

use std::collections::BTreeMap;
use std::future::Future;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use xmpp_parsers::jid::BareJid;

use super::Factory;
use crate::component::{Component, LinkStatus};
use crate::config::{ComponentConfig, Config};
use crate::error::BoxError;

struct Running {
    config: ComponentConfig,
    token: CancellationToken,
    handle: JoinHandle<()>,
    status: watch::Receiver<LinkStatus>,
    /// Started with the process: if its service cannot start, the
    /// process ends (a reload's components are left out instead).
    initial: bool,
    /// Its first connection attempt has ended, connected or not.
    settled: bool,
    /// Why the link last went down, until it is up again: a retry after
    /// a refusal still shows the refusal.
    last_error: Option<String>,
}

/// A component whose service could not start; it has stopped.
pub(super) struct Failure {
    pub(super) jid: BareJid,
    pub(super) error: String,
    /// Started with the process (not by a reload).
    pub(super) initial: bool,
}

/// What a reload did, for the log and the systemd status.
#[derive(Default)]
pub(super) struct Reloaded {
    pub(super) kept: usize,
    pub(super) started: usize,
    pub(super) stopped: usize,
    /// Components left out or kept at their old settings, and why.
    pub(super) problems: Vec<String>,
}

/// The running components, by JID.
#[derive(Default)]
pub(super) struct Components {
    running: BTreeMap<BareJid, Running>,
}

impl Components {
    /// Builds every component of `config`, then starts them; the first
    /// that cannot be built is the error, and nothing starts.
    pub(super) fn start(config: &Config, factory: &Factory) -> Result<Self, BoxError> {
        let mut built = Vec::new();
        for component in &config.components {
            built.push((component.clone(), build(factory, component)?));
        }
        let mut components = Self::default();
        for (config, component) in built {
            components.spawn(config, component, true);
        }
        Ok(components)
    }

    fn spawn(&mut self, config: ComponentConfig, component: Component, initial: bool) {
        let token = CancellationToken::new();
        let status = component.status();
        tracing::info!(
            jid = %config.jid,
            server = %config.server,
            service = config.service.as_deref().unwrap_or("-"),
            "starting"
        );
        let handle = tokio::spawn(component.run(token.clone()));
        self.running.insert(
            config.jid.clone(),
            Running {
                config,
                token,
                handle,
                status,
                initial,
                settled: false,
                last_error: None,
            },
        );
    }

    /// Applies a re-read config: removed components stop, changed ones
    /// restart with their new settings (or, if those cannot be built,
    /// with their old ones), added ones start; unchanged ones keep their
    /// link. A component that cannot be built is left out.
    pub(super) async fn reload(&mut self, config: &Config, factory: &Factory) -> Reloaded {
        let mut done = Reloaded::default();
        let wanted: BTreeMap<&BareJid, &ComponentConfig> =
            config.components.iter().map(|c| (&c.jid, c)).collect();
        // Removed ones first: they may hold what an added one needs.
        let removed: Vec<BareJid> = self
            .running
            .keys()
            .filter(|jid| !wanted.contains_key(jid))
            .cloned()
            .collect();
        for jid in removed {
            if let Some(r) = self.running.remove(&jid) {
                tracing::info!(%jid, "stopping (removed from the config)");
                stop(r).await;
                done.stopped += 1;
            }
        }
        for component in &config.components {
            let jid = &component.jid;
            let old = match self.running.get(jid) {
                Some(r) if same(component, &r.config) => {
                    done.kept += 1;
                    continue;
                }
                Some(_) => self.running.remove(jid),
                None => None,
            };
            // A changed one stops first: its listeners are then free for
            // the new settings to take.
            if let Some(old) = old {
                tracing::info!(%jid, "restarting with changed settings");
                let previous = old.config.clone();
                stop(old).await;
                match build(factory, component) {
                    Ok(built) => {
                        self.spawn(component.clone(), built, false);
                        done.started += 1;
                    }
                    Err(e) => {
                        tracing::error!(%jid, error = %e, "reload: the changed settings cannot start; restarting with the previous ones");
                        done.problems
                            .push(format!("{jid} kept its previous settings: {e}"));
                        match build(factory, &previous) {
                            Ok(built) => self.spawn(previous, built, false),
                            Err(e) => {
                                tracing::error!(%jid, error = %e, "reload: the previous settings cannot start either; left out");
                                done.problems.push(format!("{jid} left out: {e}"));
                                done.stopped += 1;
                            }
                        }
                    }
                }
                continue;
            }
            match build(factory, component) {
                Ok(built) => {
                    self.spawn(component.clone(), built, false);
                    done.started += 1;
                }
                Err(e) => {
                    tracing::error!(%jid, error = %e, "reload: cannot start an added component; left out");
                    done.problems.push(format!("{jid} left out: {e}"));
                }
            }
        }
        done
    }

    /// Resolves when a component's link state has changed since the last
    /// [`Components::observe`] (never, with no components).
    pub(super) fn changed(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut receivers: Vec<_> = self.running.values().map(|r| r.status.clone()).collect();
        async move {
            // An ended task (its sender gone) is reported at once; `observe`
            // then takes it out.
            if receivers.is_empty() {
                return std::future::pending().await;
            }
            if receivers.iter().any(|r| r.has_changed().is_err()) {
                return;
            }
            let waits = receivers.iter_mut().map(|r| Box::pin(r.changed()));
            let _ = futures::future::select_all(waits).await;
        }
    }

    /// Takes in every link's state. Components whose service failed to
    /// start (or whose task ended by itself) are taken out; the failures
    /// are returned.
    pub(super) async fn observe(&mut self) -> Vec<Failure> {
        let mut failures = Vec::new();
        let mut ended = Vec::new();
        for (jid, r) in &mut self.running {
            let closed = r.status.has_changed().is_err();
            let status = r.status.borrow_and_update().clone();
            if status != LinkStatus::Connecting {
                r.settled = true;
            }
            match &status {
                LinkStatus::Connected => r.last_error = None,
                LinkStatus::Disconnected { error } => r.last_error = Some(error.clone()),
                _ => {}
            }
            if let LinkStatus::Failed { error } = status {
                failures.push(Failure {
                    jid: jid.clone(),
                    error,
                    initial: r.initial,
                });
                ended.push(jid.clone());
            } else if closed {
                tracing::warn!(%jid, "the component stopped by itself");
                ended.push(jid.clone());
            }
        }
        for jid in ended {
            if let Some(r) = self.running.remove(&jid) {
                let _ = r.handle.await;
            }
        }
        failures
    }

    /// Whether every component's first connection attempt has ended.
    pub(super) fn settled(&self) -> bool {
        self.running.values().all(|r| r.settled)
    }

    /// Each component's JID and link state, in JID order. A link trying
    /// again is shown down with its last error (as of the last
    /// [`Components::observe`]).
    pub(super) fn links(&self) -> Vec<(String, LinkStatus)> {
        self.running
            .iter()
            .map(|(jid, r)| {
                let status = match (&*r.status.borrow(), &r.last_error) {
                    (LinkStatus::Connecting, Some(error)) => LinkStatus::Disconnected {
                        error: error.clone(),
                    },
                    (status, _) => status.clone(),
                };
                (jid.to_string(), status)
            })
            .collect()
    }

    /// How many are running.
    pub(super) fn len(&self) -> usize {
        self.running.len()
    }

    /// Stops every component, all at once, and waits for them.
    pub(super) async fn stop_all(self) {
        let stops: Vec<_> = self.running.into_values().map(stop).collect();
        futures::future::join_all(stops).await;
    }
}

fn build(factory: &Factory, config: &ComponentConfig) -> Result<Component, BoxError> {
    Ok(factory(config)?.build()?)
}

/// Equal configs, ignoring where in the file they are.
fn same(a: &ComponentConfig, b: &ComponentConfig) -> bool {
    let mut b = b.clone();
    b.index = a.index;
    b.source.clone_from(&a.source);
    *a == b
}

async fn stop(r: Running) {
    r.token.cancel();
    let _ = r.handle.await;
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::context::Context;
    use crate::plugin::Plugin;

    /// A service whose start always fails, as one whose files are missing.
    struct CannotStart;

    #[async_trait::async_trait]
    impl Plugin for CannotStart {
        fn name(&self) -> &'static str {
            "cannot-start"
        }

        async fn on_start(&self, _cx: &Context) -> Result<(), BoxError> {
            Err("no such file".into())
        }
    }

    /// `bad.*` components fail to start; a `broken` setting fails to build.
    fn factory(c: &ComponentConfig) -> Result<crate::ComponentBuilder, BoxError> {
        if c.settings.contains_key("broken") {
            return Err("component[0].settings.broken: is set".into());
        }
        let builder = Component::builder(c.clone());
        Ok(if c.jid.as_str().starts_with("bad.") {
            builder.plugin(CannotStart)
        } else {
            builder
        })
    }

    fn config(tables: &[(&str, &str)]) -> Config {
        let text: String = tables
            .iter()
            .map(|(jid, settings)| {
                // Port 1: nothing listens, the links keep retrying.
                format!(
                    "[[component]]\njid = \"{jid}\"\nserver = \"127.0.0.1:1\"\nsecret = \"s\"\n[component.settings]\n{settings}\n"
                )
            })
            .collect();
        Config::parse(Path::new("/etc/satellite/t.toml"), &text).expect("valid")
    }

    async fn next_failures(components: &mut Components) -> Vec<Failure> {
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                components.changed().await;
                let failures = components.observe().await;
                if !failures.is_empty() {
                    return failures;
                }
            }
        })
        .await
        .expect("a failure in time")
    }

    #[tokio::test]
    async fn a_component_that_fails_to_start_on_reload_is_taken_out_alone() {
        let mut components =
            Components::start(&config(&[("good.example.org", "")]), &factory).expect("start");
        let done = components
            .reload(
                &config(&[("good.example.org", ""), ("bad.example.org", "")]),
                &factory,
            )
            .await;
        assert_eq!((done.kept, done.started), (1, 1));
        let failures = next_failures(&mut components).await;
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].jid.as_str(), "bad.example.org");
        assert!(!failures[0].initial, "a reload's failure is not fatal");
        assert!(
            failures[0].error.contains("cannot-start: no such file"),
            "{}",
            failures[0].error
        );
        assert_eq!(components.links().len(), 1, "the good one runs on");
        components.stop_all().await;
    }

    #[tokio::test]
    async fn a_start_failure_of_the_first_start_is_fatal() {
        let mut components =
            Components::start(&config(&[("bad.example.org", "")]), &factory).expect("start");
        let failures = next_failures(&mut components).await;
        assert!(failures[0].initial);
        components.stop_all().await;
    }

    #[tokio::test]
    async fn changed_settings_that_cannot_build_keep_the_previous_ones() {
        let mut components =
            Components::start(&config(&[("a.example.org", "x = 1")]), &factory).expect("start");
        let done = components
            .reload(
                &config(&[
                    ("a.example.org", "broken = true"),
                    ("b.example.org", "broken = true"),
                ]),
                &factory,
            )
            .await;
        assert_eq!(done.started, 0);
        assert_eq!(done.problems.len(), 2, "{:?}", done.problems);
        assert!(
            done.problems[0].starts_with("a.example.org kept its previous settings: "),
            "{:?}",
            done.problems
        );
        assert!(
            done.problems[1].starts_with("b.example.org left out: "),
            "{:?}",
            done.problems
        );
        // Still the previous settings: reloading them changes nothing.
        let done = components
            .reload(&config(&[("a.example.org", "x = 1")]), &factory)
            .await;
        assert_eq!((done.kept, done.started), (1, 0));
        components.stop_all().await;
    }
}
