//! The SOCKS5 listener: accepts connections, runs the handshake, pairs
//! connections by hash and relays activated bytestreams.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use satellite::{CancellationToken, Context};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::config::Settings;
use crate::limits::{Bucket, Gauge, Metrics, PerKey, Rejection, address_key};
use crate::registry::{Conn, Go, Registry, Session};
use crate::relay::{self, End, Options};
use crate::socks5::{self, HandshakeError, Reply};

/// Connections over `max_connections` still get a SOCKS5 failure reply;
/// this many at most at once, beyond which they are dropped unanswered
/// (a flood must not cost a task per connection).
const MAX_REJECTING: usize = 64;
/// Time an over-the-cap connection gets to say what it wants.
const REJECT_TIMEOUT: Duration = Duration::from_secs(5);

/// State shared by the listener, the connections and the IQ handlers.
#[derive(Debug)]
pub struct Shared {
    /// The settings.
    pub settings: Settings,
    /// Waiting and active bytestreams.
    pub registry: Registry,
    /// Counters.
    pub metrics: Arc<Metrics>,
    connections: Arc<Gauge>,
    addresses: Arc<PerKey<IpAddr>>,
    rejecting: Arc<Gauge>,
    total: Option<Arc<Bucket>>,
    next_id: AtomicU64,
}

impl Shared {
    /// State for a proxy with these settings.
    pub fn new(settings: Settings) -> Self {
        Self {
            registry: Registry::new(settings.max_sessions, settings.max_connections_per_jid),
            metrics: Arc::new(Metrics::new(settings.component.clone())),
            connections: Gauge::new(settings.max_connections),
            addresses: PerKey::new(settings.max_connections_per_address),
            rejecting: Gauge::new(MAX_REJECTING),
            total: settings.total_rate.map(Bucket::new),
            next_id: AtomicU64::new(1),
            settings,
        }
    }

    /// Open SOCKS5 connections.
    pub fn connections(&self) -> usize {
        self.connections.used()
    }

    /// Connections from `ip`'s address (see
    /// [`address_key`]) not activated yet.
    pub fn pending_from(&self, ip: IpAddr) -> usize {
        self.addresses.used(&address_key(ip))
    }
}

/// Accepts connections until `stop` is cancelled; every connection runs in
/// a task spawned with `cx.spawn`, so shutdown waits for them.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, cx: Context) {
    let stop = cx.shutdown_token();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: pause, don't spin.
                tracing::warn!(error = %e, "proxy65: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        shared.metrics.connection();
        // Until activation a connection is anonymous: its address is all
        // there is to count, so that one host cannot hold every
        // `max_connections` unit for `activation_timeout`.
        let address = shared.addresses.acquire(&address_key(peer.ip()));
        let (permit, address) = match (address, shared.connections.acquire()) {
            (Some(address), Some(permit)) => (permit, address),
            (address, _) => {
                let why = if address.is_none() {
                    Rejection::AddressCap
                } else {
                    Rejection::ConnectionCap
                };
                shared.metrics.reject(why);
                tracing::debug!(%peer, reason = why.as_str(), "proxy65: connection refused");
                if let Some(rejecting) = shared.rejecting.acquire() {
                    cx.spawn(async move {
                        let _rejecting = rejecting;
                        refuse(stream, peer, Reply::GeneralFailure).await;
                    });
                }
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        let stop = stop.clone();
        cx.spawn(async move {
            let conn = Conn {
                stream,
                peer,
                permit,
                address: Some(address),
            };
            handle(conn, shared, stop).await;
        });
    }
    tracing::info!("proxy65: listener stopped");
}

/// Raises the soft limit on open files to the hard one: every bytestream
/// holds two sockets and (with splice) four pipe ends, and systemd's
/// default soft limit of 1024 would cap the proxy near 170 transfers.
pub fn raise_fd_limit() {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
            && soft < hard
        {
            match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                Ok(()) => tracing::debug!(
                    from = soft,
                    to = hard,
                    "proxy65: raised the open-file limit"
                ),
                Err(e) => tracing::warn!(error = %e, "proxy65: cannot raise the open-file limit"),
            }
        }
    }
}

/// Completes the handshake of a connection the proxy cannot take and sends
/// a failure reply.
async fn refuse(mut stream: TcpStream, peer: SocketAddr, rep: Reply) {
    let refused = tokio::time::timeout(REJECT_TIMEOUT, async {
        if let Ok(hash) = socks5::accept(&mut stream).await {
            let _ = socks5::reply(&mut stream, rep, &hash).await;
        }
    })
    .await;
    if refused.is_err() {
        tracing::debug!(%peer, "proxy65: refused connection timed out in its handshake");
    }
}

/// One connection: handshake, pairing, waiting for activation; then either
/// hands its socket to its pair's task or relays both.
async fn handle(mut conn: Conn, shared: Arc<Shared>, stop: CancellationToken) {
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let deadline = Instant::now() + shared.settings.activation_timeout;
    // A handshake in progress must not hold up a shutdown.
    let handshake = tokio::select! {
        h = tokio::time::timeout_at(deadline, socks5::accept(&mut conn.stream)) => h,
        _ = stop.cancelled() => return,
    };
    let hash = match handshake {
        Ok(Ok(hash)) => hash,
        Ok(Err(e)) => {
            if !matches!(e, HandshakeError::Io(_)) {
                shared.metrics.reject(Rejection::BadHandshake);
            }
            tracing::debug!(peer = %conn.peer, error = %e, "proxy65: handshake failed");
            return;
        }
        Err(_) => {
            shared.metrics.reject(Rejection::ActivationTimeout);
            return;
        }
    };
    let (go_tx, go_rx) = oneshot::channel();
    let arrival = match shared.registry.arrive(&hash, id, go_tx) {
        Ok(a) => a,
        Err(why) => {
            shared.metrics.reject(why);
            tracing::debug!(peer = %conn.peer, %hash, reason = why.as_str(), "proxy65: connection refused");
            let _ = socks5::reply(&mut conn.stream, Reply::GeneralFailure, &hash).await;
            return;
        }
    };
    if socks5::reply(&mut conn.stream, Reply::Succeeded, &hash)
        .await
        .is_err()
    {
        shared.registry.leave(&hash, id);
        return;
    }
    tracing::debug!(peer = %conn.peer, %hash, ?arrival, "proxy65: connection waiting");
    let go = tokio::select! {
        go = go_rx => go.ok(),
        _ = peer_gone(&conn.stream) => None,
        _ = tokio::time::sleep_until(deadline) => {
            shared.metrics.reject(Rejection::ActivationTimeout);
            tracing::debug!(peer = %conn.peer, %hash, "proxy65: not activated in time");
            None
        }
        _ = stop.cancelled() => None,
    };
    if go.is_some() {
        // Activated: the requester's JID is counted from now on.
        conn.address = None;
    }
    match go {
        None => shared.registry.leave(&hash, id),
        Some(Go::Give(to)) => {
            // The pair's task relays; if it is gone, dropping closes us.
            let _ = to.send(conn);
        }
        Some(Go::Relay(other, session)) => {
            run_relay(conn, other, session, &shared, stop).await;
        }
    }
}

/// Resolves when the peer closes (or resets) before activation. A peer
/// that sends early data is left alone (the data waits in the socket).
async fn peer_gone(stream: &TcpStream) {
    let mut probe = [0u8; 1];
    match stream.peek(&mut probe).await {
        Ok(0) | Err(_) => {}
        Ok(_) => std::future::pending().await,
    }
}

async fn run_relay(
    conn: Conn,
    other: oneshot::Receiver<Conn>,
    session: Session,
    shared: &Shared,
    stop: CancellationToken,
) {
    let hash = session.hash.clone();
    shared.metrics.activated();
    // The pair's task sends at once; a timeout only guards a lost wakeup.
    let other = match tokio::time::timeout(Duration::from_secs(5), other).await {
        Ok(Ok(o)) => o,
        _ => {
            shared.registry.finish(&hash);
            return;
        }
    };
    let opts = Options {
        buffer_size: shared.settings.buffer_size,
        idle_timeout: shared.settings.idle_timeout,
        session: shared.settings.session_rate.map(Bucket::new),
        total: shared.total.clone(),
        metrics: Arc::clone(&shared.metrics),
        zero_copy: shared.settings.zero_copy,
    };
    let started = std::time::Instant::now();
    let (end, ab, ba) = relay::relay(other.stream, conn.stream, opts, stop).await;
    if end == End::Idle {
        shared.metrics.reject(Rejection::IdleTimeout);
    }
    shared.metrics.finished();
    shared.registry.finish(&hash);
    tracing::info!(
        %hash,
        requester = %session.requester,
        end = ?end,
        first_to_second = ab,
        second_to_first = ba,
        secs = started.elapsed().as_secs_f64(),
        "proxy65: bytestream ended"
    );
    drop((session, other.permit, conn.permit));
}
