//! The link's life: connect, pump stanzas both ways, detect a dead peer,
//! reconnect with backoff, and stop gracefully.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep, sleep_until};
use tokio_util::sync::CancellationToken;
use xmpp_parsers::iq::Iq;
use xmpp_parsers::minidom::Element;
use xmpp_parsers::ns;

use crate::backoff::Backoff;
use crate::component::{Component, LinkStatus};
use crate::context::{Chunk, Context, QueueLimits};
use crate::dispatch::Dispatcher;
use crate::router::Router;
use crate::stream::{
    HandshakeError, Incoming, LinkReader, LinkWriter, NS_COMPONENT, NS_STREAM, XmlLink, attr_name,
    stream_error_text,
};

/// A link that stayed up this long resets the backoff.
const HEALTHY_AFTER: Duration = Duration::from_secs(30);
/// First reconnect delay.
const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// The longest steady retry interval while the server's port refuses.
const STEADY: Duration = Duration::from_secs(1);
/// How the reason of a link lost to a stream error starts.
const STREAM_ERROR: &str = "stream error from the server";
/// Bytes of queued stanzas gathered into one write.
const WRITE_BATCH_BYTES: usize = 64 * 1024;
/// Prefix of the link's own ping ids.
const PING_PREFIX: &str = "satellite-link-ping-";

/// How soon to try again.
enum Retry {
    /// The server is not there (yet): its port refuses or resets. Cheap to
    /// retry, and it should be back within about a second of returning.
    Steady,
    /// The server is there and said no, or does not answer: exponential
    /// backoff up to `reconnect_max`.
    Backoff,
}

/// The interval of [`Retry::Steady`]: 0.5 to 1 s, so that components of
/// one process (or of many) do not knock in lockstep.
fn steady_delay() -> Duration {
    STEADY.mul_f64(0.5 + 0.5 * rand::random::<f64>())
}

/// Retry soon for a refused or reset connection, back off for the rest
/// (timeouts: an unreachable or hung server).
fn retry_for(e: &HandshakeError) -> Retry {
    use std::io::ErrorKind::*;
    match e {
        HandshakeError::Io(io)
            if matches!(
                io.kind(),
                ConnectionRefused
                    | ConnectionReset
                    | ConnectionAborted
                    | BrokenPipe
                    | UnexpectedEof
            ) =>
        {
            Retry::Steady
        }
        _ => Retry::Backoff,
    }
}

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
    let limits = QueueLimits {
        stanzas: config.queue_limit,
        bytes: config.queue_bytes,
    };
    let (cx, outboxes) = Context::new(
        config.jid.clone(),
        limits,
        config.connections,
        config.request_timeout,
        shutdown.clone(),
    );
    let dispatcher = Dispatcher::new(
        Arc::clone(&router),
        cx.clone(),
        config.lane_limit,
        config.max_lanes,
    );
    let _registration = crate::registry::register(&config.server, config.jid.as_str(), &dispatcher);
    let jid = config.jid.to_string();
    if let Err(error) = start_plugins(&cx, &router).await {
        tracing::error!(%jid, %error, "cannot start");
        wait_for_tasks(&cx, &config).await;
        status.send_replace(LinkStatus::Failed {
            error: format!("{jid}: {error}"),
        });
        return;
    }
    let config = Arc::new(config);
    let shared = LinkShared {
        cx: cx.clone(),
        dispatcher: Arc::clone(&dispatcher),
        router: Arc::clone(&router),
        config: Arc::clone(&config),
        shutdown: shutdown.clone(),
    };
    let mut outboxes = outboxes.into_iter();
    let first = outboxes.next().map(|outbox| Queue {
        outbox,
        carry: Vec::new(),
    });
    // Further links (`connections`): each its own loop; the first reports
    // the component's status.
    let mut others = Vec::new();
    for (i, outbox) in outboxes.enumerate() {
        let shared = shared.clone();
        let queue = Queue {
            outbox,
            carry: Vec::new(),
        };
        others.push(tokio::spawn(async move {
            link_loop(i + 1, &shared, queue, None).await;
        }));
    }
    if let Some(queue) = first {
        link_loop(0, &shared, queue, Some(&status)).await;
    }
    for other in others {
        let _ = other.await;
    }
    // Stopped while disconnected (or the link broke while stopping): let
    // running handlers finish anyway.
    if dispatcher.close() {
        run_shutdown_hooks(&cx, &router);
    }
    wait_for_tasks(&cx, &config).await;
    status.send_replace(LinkStatus::Stopped);
}

/// What the links of one component share.
#[derive(Clone)]
struct LinkShared {
    cx: Context,
    dispatcher: Arc<Dispatcher>,
    router: Arc<Router>,
    config: Arc<crate::config::ComponentConfig>,
    shutdown: CancellationToken,
}

/// One link's life: connect, pump, reconnect, until the component stops
/// (or, for a further link, until the server refuses it as a second
/// connection).
async fn link_loop(
    index: usize,
    shared: &LinkShared,
    queue: Queue,
    status: Option<&watch::Sender<LinkStatus>>,
) {
    let LinkShared {
        cx,
        dispatcher,
        router,
        config,
        shutdown,
    } = shared;
    let config: &crate::config::ComponentConfig = config;
    let report = |s: LinkStatus| {
        if let Some(status) = status {
            status.send_replace(s);
        }
    };
    let mut queue = Some(queue);
    let mut backoff = Backoff::new(BACKOFF_BASE, config.reconnect_max);
    let jid = config.jid.to_string();
    let server = config.server.clone();
    // The last reason a connection failed: each distinct one is logged
    // once, not at every retry.
    let mut last_cause: Option<String> = None;
    if index > 0 {
        // Further links connect once the first is up, so that a server
        // allowing one connection refuses one of them, not the first.
        loop {
            if cx.link_connected(0) {
                break;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = sleep(Duration::from_millis(100)) => {}
            }
        }
    }
    loop {
        report(LinkStatus::Connecting);
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
        let (error, retry) = match link {
            Ok(link) => {
                tracing::info!(%jid, %server, "connected");
                last_cause = None;
                cx.set_connected(index, true);
                cx.metrics().link_up(true);
                report(LinkStatus::Connected);
                announce_connected(cx, router);
                let since = Instant::now();
                let (reader, writer) = link.split();
                let session = Session {
                    index,
                    reader,
                    writer,
                    cx,
                    dispatcher,
                    router,
                    queue: queue
                        .take()
                        .expect("the queue is back after every connection"),
                    config,
                };
                let (end, back) = session.pump(shutdown).await;
                queue = Some(back);
                cx.set_connected(index, false);
                if !cx.is_connected() {
                    cx.metrics().link_up(false);
                }
                match end {
                    End::Stopped => {
                        tracing::info!(%jid, "stopped");
                        return;
                    }
                    End::Lost(reason) => {
                        if since.elapsed() >= HEALTHY_AFTER {
                            backoff.reset();
                        }
                        tracing::warn!(%jid, %server, %reason, "link lost");
                        // A server that said why it ends the stream is
                        // alive and means it; a connection that just
                        // broke is most likely a restart: come back soon.
                        let retry = if reason.starts_with(STREAM_ERROR) {
                            Retry::Backoff
                        } else {
                            Retry::Steady
                        };
                        (reason, retry)
                    }
                }
            }
            Err(HandshakeError::Refused(reason))
                if index > 0 && reason.starts_with("conflict") && cx.is_connected() =>
            {
                tracing::warn!(
                    %jid, %server, %reason,
                    "the server allows one connection for `{jid}` (Prosody does): keeping one, not {}",
                    config.connections
                );
                if let Some(Queue { outbox, carry }) = queue.take() {
                    cx.retire(index, outbox, carry).await;
                }
                return;
            }
            Err(HandshakeError::Refused(reason)) => {
                if last_cause.as_deref() != Some(reason.as_str()) {
                    tracing::error!(
                        %jid, %server, %reason,
                        "the server refused this component; check that it declares `{jid}` and that both sides use the same secret"
                    );
                }
                last_cause = Some(reason.clone());
                (format!("refused: {reason}"), Retry::Backoff)
            }
            Err(e) => {
                let text = e.to_string();
                if last_cause.as_deref() != Some(text.as_str()) {
                    tracing::warn!(%jid, %server, error = %e, "cannot connect");
                }
                last_cause = Some(text.clone());
                (text, retry_for(&e))
            }
        };
        let delay = match retry {
            Retry::Steady => steady_delay(),
            Retry::Backoff => backoff.next_delay(),
        };
        tracing::debug!(%jid, retry_in = ?delay, "reconnecting later");
        report(LinkStatus::Disconnected { error });
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = sleep(delay) => {}
        }
    }
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
    /// Which of the component's links this is.
    index: usize,
    reader: LinkReader,
    writer: LinkWriter,
    cx: &'a Context,
    dispatcher: &'a Arc<Dispatcher>,
    router: &'a Arc<Router>,
    queue: Queue,
    config: &'a crate::config::ComponentConfig,
}

/// What outlives a connection on the writing side: the outbox, and what a
/// broken connection left unwritten.
struct Queue {
    outbox: mpsc::Receiver<Chunk>,
    carry: Vec<Chunk>,
}

/// How the reading side ended.
enum ReadEnd {
    /// Shutdown: handlers are done; the writer drains and the stream closes.
    Stop,
    /// The connection broke.
    Lost(String),
}

impl Session<'_> {
    /// Reads here and writes on a task of its own: a long outbound blast
    /// never keeps the link from reading (pings are answered, replies
    /// resolved), a read never waits for a write, and on two cores the
    /// two run side by side.
    async fn pump(self, shutdown: &CancellationToken) -> (End, Queue) {
        let Session {
            index,
            mut reader,
            writer,
            cx,
            dispatcher,
            router,
            queue,
            config,
        } = self;
        let (ping_tx, ping_rx) = mpsc::channel::<Vec<u8>>(4);
        let drain = CancellationToken::new();
        let lost = CancellationToken::new();
        let signals = WriterSignals {
            pings: ping_rx,
            drain: drain.clone(),
            lost: lost.clone(),
        };
        let mut write = tokio::spawn(write_side(
            writer,
            queue,
            signals,
            cx.clone(),
            config.keepalive_interval,
        ));
        // The link's pings: its index (answers are told apart by it) and
        // where they are written.
        let read = read_loop(
            (index, ping_tx),
            &mut reader,
            cx,
            dispatcher,
            router,
            config,
            shutdown,
        );
        tokio::pin!(read);
        let (end, joined) = tokio::select! {
            end = &mut read => {
                match end {
                    ReadEnd::Lost(e) => {
                        lost.cancel();
                        (End::Lost(e), write.await)
                    }
                    ReadEnd::Stop => {
                        drain.cancel();
                        (End::Stopped, write.await)
                    }
                }
            }
            joined = &mut write => {
                let end = match &joined {
                    Ok((Err(e), ..)) => End::Lost(e.clone()),
                    _ => End::Lost("the writer stopped".into()),
                };
                (end, joined)
            }
        };
        match joined {
            Ok((result, writer, queue)) => {
                if let (End::Stopped, Err(e)) = (&end, &result) {
                    tracing::warn!(error = %e, "could not write the last stanzas");
                }
                if matches!(end, End::Stopped) {
                    close(writer).await;
                }
                (end, queue)
            }
            // The writer task panicked: what it held is gone. Only a bug
            // gets here; the link restarts with an empty outbox.
            Err(e) => {
                tracing::error!(error = %e, "the link's writer failed");
                let (_, outbox) = mpsc::channel(1);
                let queue = Queue {
                    outbox,
                    carry: Vec::new(),
                };
                (End::Lost("the writer failed".into()), queue)
            }
        }
    }
}

/// How the reading side steers the writer.
struct WriterSignals {
    /// The link's own pings, written before anything queued.
    pings: mpsc::Receiver<Vec<u8>>,
    /// Write what is queued, then stop (shutdown).
    drain: CancellationToken,
    /// The connection is gone: stop now, keeping what is unwritten.
    lost: CancellationToken,
}

async fn write_side(
    mut writer: LinkWriter,
    mut queue: Queue,
    signals: WriterSignals,
    cx: Context,
    keepalive: Duration,
) -> (Result<(), String>, LinkWriter, Queue) {
    let result = write_loop(&mut writer, &mut queue, signals, &cx, keepalive).await;
    (result, writer, queue)
}

/// The reading side: routes what arrives, pings a silent server, and on
/// shutdown lets handlers finish (still reading their replies).
async fn read_loop(
    (index, ping_tx): (usize, mpsc::Sender<Vec<u8>>),
    reader: &mut LinkReader,
    cx: &Context,
    dispatcher: &Arc<Dispatcher>,
    router: &Arc<Router>,
    cfg: &crate::config::ComponentConfig,
    shutdown: &CancellationToken,
) -> ReadEnd {
    let now = Instant::now();
    let mut ping_tick = interval_at(now + cfg.ping_interval, cfg.ping_interval);
    ping_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut ping_deadline: Option<Instant> = None;
    let mut stopping: Option<Instant> = None;
    let far = now + Duration::from_secs(86_400 * 365);
    let mut ping_seq: u64 = 0;
    let send_ping = |seq: u64| {
        // A full ping queue means pings are already on their way.
        let _ = ping_tx.try_send(ping_bytes(cfg, index, seq));
        Some(Instant::now() + cfg.ping_timeout)
    };
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled(), if stopping.is_none() => {
                if dispatcher.close() {
                    run_shutdown_hooks(cx, router);
                }
                cx.tracker().close();
                stopping = Some(Instant::now() + cfg.shutdown_timeout);
            }
            _ = cx.tracker().wait(), if stopping.is_some() => return ReadEnd::Stop,
            _ = sleep_until(stopping.unwrap_or(far)), if stopping.is_some() => {
                tracing::warn!(jid = %cfg.jid, "handlers still running at shutdown timeout; closing anyway");
                return ReadEnd::Stop;
            }
            incoming = reader.read() => match incoming {
                Incoming::Element(el) => {
                    // Any traffic proves the peer is alive.
                    ping_deadline = None;
                    if let Some(reason) = inbound(cx, dispatcher, &cfg.server, el).await {
                        return ReadEnd::Lost(reason);
                    }
                }
                Incoming::Silent => {
                    if ping_deadline.is_none() {
                        ping_seq += 1;
                        ping_deadline = send_ping(ping_seq);
                    }
                }
                Incoming::Closed(Some(e)) => return ReadEnd::Lost(e.to_string()),
                Incoming::Closed(None) => return ReadEnd::Lost("the server closed the stream".into()),
            },
            // The answer to this link's ping, whichever link of the
            // process it came in on (ejabberd may hand a host's stanzas
            // to any connection bound to it).
            _ = cx.pong(index).notified(), if ping_deadline.is_some() => {
                ping_deadline = None;
            }
            _ = sleep_until(ping_deadline.unwrap_or(far)), if ping_deadline.is_some() => {
                return ReadEnd::Lost(format!("no answer to a ping within {:?}", cfg.ping_timeout));
            }
            _ = ping_tick.tick() => {
                if ping_deadline.is_none() {
                    ping_seq += 1;
                    ping_deadline = send_ping(ping_seq);
                }
            }
        }
    }
}

/// Routes one inbound element; returns why the stream is over, if it is.
async fn inbound(
    cx: &Context,
    dispatcher: &Arc<Dispatcher>,
    server: &str,
    el: Element,
) -> Option<String> {
    cx.metrics().received.increment(1);
    if el.is("error", NS_STREAM) {
        return Some(format!("{STREAM_ERROR}: {}", stream_error_text(&el)));
    }
    // The server's XEP-0356 grants are the link's, not a plugin's message.
    if let Some(privileges) = crate::privilege::advertisement(cx.jid(), &el) {
        cx.grant_privileges(privileges);
        return None;
    }
    // A stanza for another host: another component of this process, or
    // one the server's listener should not send here.
    let other;
    let (cx, dispatcher) = match el.attr("to").map(crate::registry::domain_of) {
        Some(host) if !host.eq_ignore_ascii_case(cx.jid().as_str()) => {
            match crate::registry::lookup(server, host) {
                Some(found) => {
                    other = found;
                    (other.cx(), &other)
                }
                None => {
                    unserved(cx, server, host, &el).await;
                    return None;
                }
            }
        }
        _ => (cx, dispatcher),
    };
    if let Some(ping) = el.attr("id").and_then(|id| id.strip_prefix(PING_PREFIX))
        && el.is("iq", NS_COMPONENT)
    {
        let link = ping
            .split_once('-')
            .and_then(|(link, _)| link.parse().ok())
            .unwrap_or(0);
        cx.pong(link).notify_one();
        return None;
    }
    if el.is("iq", NS_COMPONENT) && matches!(el.attr("type"), Some("result" | "error")) {
        match Iq::try_from(el) {
            Ok(iq) => {
                // Nobody waits for it: plugins may (a relayed request).
                if let Some(iq) = cx.resolve(iq) {
                    dispatcher.dispatch(Element::from(iq)).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "dropped an invalid iq reply"),
        }
        return None;
    }
    dispatcher.dispatch(el).await;
    None
}

/// A stanza for a host this process does not run: answered with
/// `service-unavailable` (never silence), and the operator told once.
async fn unserved(cx: &Context, server: &str, host: &str, el: &Element) {
    if crate::registry::first_warning(server, host) {
        tracing::warn!(
            component = %cx.jid(), %server, %host,
            "the server sends stanzas for `{host}` over this component's link, but this process does not run `{host}`: the server's listener binds hosts to this connection that belong elsewhere (ejabberd: give each satellite process a listener whose `hosts` are only its own components)"
        );
    }
    cx.metrics().refused_unserved.increment(1);
    if let Some(reply) =
        crate::router::RawHeader::of(el).error_reply(crate::HandlerError::service_unavailable())
        && let Err(e) = cx.send(reply).await
    {
        tracing::debug!(error = %e, "could not answer a stanza for another host");
    }
}

/// The link's own ping, serialized.
fn ping_bytes(cfg: &crate::config::ComponentConfig, index: usize, seq: u64) -> Vec<u8> {
    let jid = &cfg.jid;
    // The server's own domain answers pings (or bounces an error: either
    // proves the round trip); a top-level component pings itself.
    let target = jid
        .as_str()
        .split_once('.')
        .filter(|(_, parent)| parent.contains('.') || *parent == "localhost")
        .map(|(_, parent)| parent.to_owned())
        .unwrap_or_else(|| jid.to_string());
    let ping = Element::builder("iq", NS_COMPONENT)
        .attr(attr_name("type"), "get")
        .attr(attr_name("id"), format!("{PING_PREFIX}{index}-{seq}"))
        .attr(attr_name("from"), jid.as_str())
        .attr(attr_name("to"), target)
        .append(Element::builder("ping", ns::PING))
        .build();
    let mut bytes = Vec::new();
    // Writing a well-formed element to a Vec cannot fail.
    let _ = ping.write_to(&mut bytes);
    bytes
}

/// The writing side: takes serialized chunks off the outbox and writes
/// them, several per system call when they queue up; pings first; a
/// whitespace keepalive after write silence. A chunk whose write failed
/// (or was cut short by a lost connection) is kept, with those buffered
/// with it, for the next connection.
async fn write_loop(
    writer: &mut LinkWriter,
    queue: &mut Queue,
    mut signals: WriterSignals,
    cx: &Context,
    keepalive_interval: Duration,
) -> Result<(), String> {
    let sent = &cx.metrics().sent;
    let Queue { outbox, carry } = queue;
    let mut batch: Vec<Chunk> = std::mem::take(carry);
    let mut keepalive = interval_at(Instant::now() + keepalive_interval, keepalive_interval);
    keepalive.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_write = Instant::now();
    loop {
        if !batch.is_empty() {
            let written = tokio::select! {
                r = write_batch(writer, &mut batch, sent) => r,
                _ = signals.lost.cancelled() => Err("the link was lost".to_owned()),
            };
            if let Err(e) = written {
                carry.append(&mut batch);
                return Err(e);
            }
            last_write = Instant::now();
        }
        tokio::select! {
            biased;
            _ = signals.lost.cancelled() => return Err("the link was lost".to_owned()),
            Some(ping) = signals.pings.recv() => {
                let result = match writer.write(&ping).await {
                    Ok(()) => writer.flush().await,
                    Err(e) => Err(e),
                };
                result.map_err(|e| e.to_string())?;
                last_write = Instant::now();
            }
            _ = signals.drain.cancelled() => {
                while let Ok(chunk) = outbox.try_recv() {
                    batch.push(chunk);
                }
                let written = write_batch(writer, &mut batch, sent).await;
                if written.is_err() {
                    carry.append(&mut batch);
                }
                return written;
            }
            chunk = outbox.recv() => {
                let Some(chunk) = chunk else { return Err("outbox closed".into()) };
                let mut bytes = chunk.bytes.len();
                batch.push(chunk);
                while bytes < WRITE_BATCH_BYTES {
                    match outbox.try_recv() {
                        Ok(chunk) => {
                            bytes += chunk.bytes.len();
                            batch.push(chunk);
                        }
                        Err(_) => break,
                    }
                }
            }
            _ = keepalive.tick() => {
                if last_write.elapsed() >= keepalive_interval {
                    writer.keepalive().await.map_err(|e| e.to_string())?;
                    last_write = Instant::now();
                }
            }
        }
    }
}

/// Writes and flushes a batch of chunks, emptying it on success. On
/// failure the batch is left as it was: what was buffered may not have
/// left.
async fn write_batch(
    writer: &mut LinkWriter,
    batch: &mut Vec<Chunk>,
    sent: &metrics::Counter,
) -> Result<(), String> {
    for chunk in batch.iter() {
        writer
            .write(&chunk.bytes)
            .await
            .map_err(|e| e.to_string())?;
    }
    writer.flush().await.map_err(|e| e.to_string())?;
    sent.increment(batch.iter().map(|c| c.stanzas as u64).sum());
    batch.clear();
    Ok(())
}

/// Closes a stream cleanly (`</stream:stream>`).
async fn close(writer: LinkWriter) {
    if let Err(e) = writer.close().await {
        tracing::debug!(error = %e, "closing the stream");
    }
}
