//! The link's life: connect, pump stanzas both ways, detect a dead peer,
//! reconnect with backoff, and stop gracefully.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep, sleep_until};
use tokio_util::sync::CancellationToken;
use xmpp_parsers::iq::Iq;
use xmpp_parsers::minidom::Element;
use xmpp_parsers::ns;

use crate::backoff::Backoff;
use crate::component::{Component, LinkStatus};
use crate::context::Context;
use crate::dispatch::Dispatcher;
use crate::router::Router;
use crate::stream::{
    HandshakeError, Incoming, NS_COMPONENT, NS_STREAM, XmlLink, attr_name, stream_error_text,
};

/// A link that stayed up this long resets the backoff.
const HEALTHY_AFTER: Duration = Duration::from_secs(30);
/// First reconnect delay.
const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Stanzas written per flush.
const WRITE_BATCH: usize = 64;
/// Prefix of the link's own ping ids.
const PING_PREFIX: &str = "satellite-link-ping-";

/// How a connection ended.
enum End {
    /// Shutdown requested and completed.
    Stopped,
    /// The connection broke.
    Lost(String),
}

pub(crate) async fn run(component: Component, shutdown: CancellationToken) {
    let Component {
        config,
        router,
        status,
    } = component;
    let (cx, mut outbox) = Context::new(
        config.jid.clone(),
        config.queue_limit,
        config.request_timeout,
        shutdown.clone(),
    );
    let dispatcher = Dispatcher::new(Arc::clone(&router), cx.clone(), config.lane_limit);
    let mut backoff = Backoff::new(BACKOFF_BASE, config.reconnect_max);
    let mut carry: Option<Element> = None;
    let jid = config.jid.to_string();
    let server = config.server.clone();
    if let Err(error) = start_plugins(&cx, &router).await {
        tracing::error!(%jid, %error, "cannot start");
        wait_for_tasks(&cx, &config).await;
        status.send_replace(LinkStatus::Failed {
            error: format!("{jid}: {error}"),
        });
        return;
    }
    loop {
        status.send_replace(LinkStatus::Connecting);
        let attempt = XmlLink::connect(
            &server,
            &jid,
            config.secret.expose(),
            config.ping_interval + config.ping_timeout,
            config.ping_timeout.max(Duration::from_secs(10)),
        );
        let link = tokio::select! {
            _ = shutdown.cancelled() => break,
            link = attempt => link,
        };
        let error = match link {
            Ok(link) => {
                tracing::info!(%jid, %server, "connected");
                cx.set_connected(true);
                crate::metrics::link_up(&jid, true);
                status.send_replace(LinkStatus::Connected);
                announce_connected(&cx, &router);
                let since = Instant::now();
                let mut session = Session {
                    link,
                    cx: &cx,
                    dispatcher: &dispatcher,
                    router: &router,
                    outbox: &mut outbox,
                    carry: &mut carry,
                    config: &config,
                };
                let end = session.pump(&shutdown).await;
                cx.set_connected(false);
                crate::metrics::link_up(&jid, false);
                match end {
                    End::Stopped => {
                        close(session.link).await;
                        tracing::info!(%jid, "stopped");
                        status.send_replace(LinkStatus::Stopped);
                        return;
                    }
                    End::Lost(reason) => {
                        if since.elapsed() >= HEALTHY_AFTER {
                            backoff.reset();
                        }
                        tracing::warn!(%jid, %server, %reason, "link lost");
                        reason
                    }
                }
            }
            Err(HandshakeError::Refused(reason)) => {
                tracing::error!(
                    %jid, %server, %reason,
                    "the server refused this component; check that it declares `{jid}` and that both sides use the same secret"
                );
                format!("refused: {reason}")
            }
            Err(e) => {
                tracing::warn!(%jid, %server, error = %e, "cannot connect");
                e.to_string()
            }
        };
        let delay = backoff.next_delay();
        tracing::info!(%jid, retry_in = ?delay, "reconnecting later");
        status.send_replace(LinkStatus::Disconnected { error });
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = sleep(delay) => {}
        }
    }
    // Stopped while disconnected (or the link broke while stopping): let
    // running handlers finish anyway.
    if dispatcher.close() {
        run_shutdown_hooks(&cx, &router);
    }
    wait_for_tasks(&cx, &config).await;
    status.send_replace(LinkStatus::Stopped);
}

/// Lets tracked tasks (handlers, plugins' servers) finish, within the
/// shutdown timeout.
async fn wait_for_tasks(cx: &Context, config: &crate::config::ComponentConfig) {
    cx.tracker().close();
    if tokio::time::timeout(config.shutdown_timeout, cx.tracker().wait())
        .await
        .is_err()
    {
        tracing::warn!(jid = %config.jid, "handlers still running at shutdown timeout");
    }
}

/// Runs every plugin's `on_start`; the first failure cancels the
/// component's token (so what earlier plugins started stops) and is
/// returned, naming the plugin.
async fn start_plugins(cx: &Context, router: &Arc<Router>) -> Result<(), String> {
    for plugin in router.plugins() {
        if let Err(e) = plugin.on_start(cx).await {
            cx.cancel();
            return Err(format!("{}: {e}", plugin.name()));
        }
    }
    Ok(())
}

fn announce_connected(cx: &Context, router: &Arc<Router>) {
    let cx2 = cx.clone();
    let router = Arc::clone(router);
    cx.spawn(async move {
        for plugin in router.plugins() {
            if let Err(e) = plugin.on_connected(&cx2).await {
                tracing::error!(plugin = plugin.name(), error = %e, "on_connected failed");
            }
        }
    });
}

fn run_shutdown_hooks(cx: &Context, router: &Arc<Router>) {
    let cx2 = cx.clone();
    let router = Arc::clone(router);
    cx.spawn(async move {
        for plugin in router.plugins() {
            plugin.on_shutdown(&cx2).await;
        }
    });
}

/// One connection's worth of state.
struct Session<'a> {
    link: XmlLink,
    cx: &'a Context,
    dispatcher: &'a Arc<Dispatcher>,
    router: &'a Arc<Router>,
    outbox: &'a mut mpsc::Receiver<Element>,
    carry: &'a mut Option<Element>,
    config: &'a crate::config::ComponentConfig,
}

impl Session<'_> {
    async fn pump(&mut self, shutdown: &CancellationToken) -> End {
        if let Some(el) = self.carry.take()
            && let Err(e) = self.write(vec![el]).await
        {
            return End::Lost(e);
        }
        let cfg = self.config;
        let now = Instant::now();
        let mut ping_tick = interval_at(now + cfg.ping_interval, cfg.ping_interval);
        ping_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut keepalive_tick = interval_at(now + cfg.keepalive_interval, cfg.keepalive_interval);
        keepalive_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut ping_deadline: Option<Instant> = None;
        let mut last_write = now;
        let mut stopping: Option<Instant> = None;
        let far = now + Duration::from_secs(86_400 * 365);
        let mut ping_seq: u64 = 0;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled(), if stopping.is_none() => {
                    if self.dispatcher.close() {
                        run_shutdown_hooks(self.cx, self.router);
                    }
                    self.cx.tracker().close();
                    stopping = Some(Instant::now() + cfg.shutdown_timeout);
                }
                _ = self.cx.tracker().wait(), if stopping.is_some() => {
                    return self.finish().await;
                }
                _ = sleep_until(stopping.unwrap_or(far)), if stopping.is_some() => {
                    tracing::warn!(jid = %cfg.jid, "handlers still running at shutdown timeout; closing anyway");
                    return self.finish().await;
                }
                out = self.outbox.recv() => {
                    let Some(first) = out else { return End::Lost("outbox closed".into()) };
                    let mut batch = vec![first];
                    while batch.len() < WRITE_BATCH {
                        match self.outbox.try_recv() {
                            Ok(el) => batch.push(el),
                            Err(_) => break,
                        }
                    }
                    if let Err(e) = self.write(batch).await {
                        return End::Lost(e);
                    }
                    last_write = Instant::now();
                }
                incoming = self.link.read() => match incoming {
                    Incoming::Element(el) => {
                        // Any traffic proves the peer is alive.
                        ping_deadline = None;
                        if let Some(end) = self.inbound(el) {
                            return end;
                        }
                    }
                    Incoming::Silent => {
                        if ping_deadline.is_none() {
                            ping_seq += 1;
                            if let Err(e) = self.ping(ping_seq).await {
                                return End::Lost(e);
                            }
                            ping_deadline = Some(Instant::now() + cfg.ping_timeout);
                        }
                    }
                    Incoming::Closed(Some(e)) => return End::Lost(e.to_string()),
                    Incoming::Closed(None) => return End::Lost("the server closed the stream".into()),
                },
                _ = sleep_until(ping_deadline.unwrap_or(far)), if ping_deadline.is_some() => {
                    return End::Lost(format!("no answer to a ping within {:?}", cfg.ping_timeout));
                }
                _ = ping_tick.tick() => {
                    if ping_deadline.is_none() {
                        ping_seq += 1;
                        if let Err(e) = self.ping(ping_seq).await {
                            return End::Lost(e);
                        }
                        ping_deadline = Some(Instant::now() + cfg.ping_timeout);
                        last_write = Instant::now();
                    }
                }
                _ = keepalive_tick.tick() => {
                    if last_write.elapsed() >= cfg.keepalive_interval {
                        if let Err(e) = self.link.keepalive().await {
                            return End::Lost(e.to_string());
                        }
                        last_write = Instant::now();
                    }
                }
            }
        }
    }

    /// Routes one inbound element; returns an end if the stream is over.
    fn inbound(&mut self, el: Element) -> Option<End> {
        crate::metrics::received(self.config.jid.as_str());
        if el.is("error", NS_STREAM) {
            return Some(End::Lost(format!(
                "stream error from the server: {}",
                stream_error_text(&el)
            )));
        }
        if el.is("iq", NS_COMPONENT) && matches!(el.attr("type"), Some("result" | "error")) {
            if el.attr("id").is_some_and(|id| id.starts_with(PING_PREFIX)) {
                return None;
            }
            match Iq::try_from(el) {
                Ok(iq) => {
                    if let Some(iq) = self.cx.resolve(iq) {
                        tracing::debug!(id = iq.id(), "dropped an iq reply nobody waits for");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "dropped an invalid iq reply"),
            }
            return None;
        }
        self.dispatcher.dispatch(el);
        None
    }

    async fn ping(&mut self, seq: u64) -> Result<(), String> {
        let jid = &self.config.jid;
        // The server's own domain answers pings (or bounces an error:
        // either proves the round trip); a top-level component pings itself.
        let target = jid
            .as_str()
            .split_once('.')
            .filter(|(_, parent)| parent.contains('.') || *parent == "localhost")
            .map(|(_, parent)| parent.to_owned())
            .unwrap_or_else(|| jid.to_string());
        let ping = Element::builder("iq", NS_COMPONENT)
            .attr(attr_name("type"), "get")
            .attr(attr_name("id"), format!("{PING_PREFIX}{seq}"))
            .attr(attr_name("from"), jid.as_str())
            .attr(attr_name("to"), target)
            .append(Element::builder("ping", ns::PING))
            .build();
        self.write(vec![ping]).await
    }

    /// Writes a batch; on failure the unsent stanza is kept for the next
    /// connection.
    async fn write(&mut self, batch: Vec<Element>) -> Result<(), String> {
        crate::metrics::sent(self.config.jid.as_str(), batch.len());
        let mut iter = batch.into_iter();
        for el in iter.by_ref() {
            if let Err(e) = self.link.feed(&el).await {
                *self.carry = Some(el);
                return Err(e.to_string());
            }
        }
        self.link.flush().await.map_err(|e| e.to_string())
    }

    /// Writes what is still queued, then closes the stream.
    async fn finish(&mut self) -> End {
        let mut rest = Vec::new();
        while let Ok(el) = self.outbox.try_recv() {
            rest.push(el);
        }
        if !rest.is_empty()
            && let Err(e) = self.write(rest).await
        {
            tracing::warn!(error = %e, "could not write the last stanzas");
        }
        End::Stopped
    }
}

/// Closes a stream cleanly (`</stream:stream>`).
async fn close(link: XmlLink) {
    if let Err(e) = link.close().await {
        tracing::debug!(error = %e, "closing the stream");
    }
}
