//! Limits and counters: connection and session caps (RAII permits), token
//! buckets for bandwidth, and the metrics the stats command reports.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// A counted resource with a cap; [`Gauge::acquire`] hands out permits
/// that give their unit back when dropped, so no path can leak one.
#[derive(Debug)]
pub struct Gauge {
    used: AtomicUsize,
    cap: usize,
}

/// One unit of a [`Gauge`].
#[derive(Debug)]
pub struct Permit(Arc<Gauge>);

impl Gauge {
    /// A gauge allowing `cap` units.
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            used: AtomicUsize::new(0),
            cap,
        })
    }

    /// A permit, or `None` at the cap.
    pub fn acquire(self: &Arc<Self>) -> Option<Permit> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.cap).then_some(n + 1)
            })
            .ok()
            .map(|_| Permit(Arc::clone(self)))
    }

    /// Units in use.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.used.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A cap per key (a requester's JID, a peer's address): permits that give
/// their unit back when dropped, and keys that leave the table with their
/// last permit.
#[derive(Debug)]
pub struct PerKey<K: Hash + Eq + Clone> {
    counts: Mutex<HashMap<K, usize>>,
    cap: usize,
}

/// One unit of one key of a [`PerKey`].
#[derive(Debug)]
pub struct KeyPermit<K: Hash + Eq + Clone> {
    table: Arc<PerKey<K>>,
    key: K,
}

impl<K: Hash + Eq + Clone> PerKey<K> {
    /// A table allowing `cap` units per key.
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            counts: Mutex::new(HashMap::new()),
            cap,
        })
    }

    /// A permit for `key`, or `None` when the key is at the cap.
    pub fn acquire(self: &Arc<Self>, key: &K) -> Option<KeyPermit<K>> {
        let mut counts = self.counts();
        let n = counts.entry(key.clone()).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(KeyPermit {
            table: Arc::clone(self),
            key: key.clone(),
        })
    }

    /// Units in use by `key`.
    pub fn used(&self, key: &K) -> usize {
        self.counts().get(key).copied().unwrap_or(0)
    }

    /// Keys holding at least one unit.
    pub fn keys(&self) -> usize {
        self.counts().len()
    }

    fn counts(&self) -> MutexGuard<'_, HashMap<K, usize>> {
        // Every operation leaves the map consistent before it could panic.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<K: Hash + Eq + Clone> Drop for KeyPermit<K> {
    fn drop(&mut self) {
        let mut counts = self.table.counts();
        if let Some(n) = counts.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// The address a peer is counted under for `max_connections_per_address`:
/// its IPv4 address, or the /64 network of an IPv6 address (a host is
/// usually given a whole /64, and an address per connection is free).
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut s = v6.segments();
                s[4..].fill(0);
                IpAddr::from(s)
            }
        },
    }
}

/// A token bucket in bytes. A reader waits until a whole chunk's tokens
/// are there ([`Bucket::wait_for`]), reads at most a chunk, and pays what
/// it read ([`Bucket::take`]). It starts empty and holds at most one chunk,
/// so even the first chunk is paid for: N bytes take at least N / rate.
#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    chunk: usize,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    /// A bucket refilling at `rate` bytes/s; chunks are 1/20 s worth.
    pub fn new(rate: u64) -> Arc<Self> {
        let chunk = (rate / 20).clamp(512, 1024 * 1024) as usize;
        Arc::new(Self {
            rate: rate as f64,
            chunk,
            state: Mutex::new((0.0, Instant::now())),
        })
    }

    /// The most a reader should take in one read.
    pub fn chunk(&self) -> usize {
        self.chunk
    }

    /// How long until `want` tokens are there (zero: now).
    pub fn wait_for(&self, want: usize) -> Duration {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let tokens = self.refill(&mut state);
        let want = want.min(self.chunk) as f64;
        if tokens >= want {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((want - tokens) / self.rate)
        }
    }

    /// Pays for `n` bytes read (the balance may go negative when several
    /// readers share the bucket; the next wait makes up for it).
    pub fn take(&self, n: usize) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.refill(&mut state);
        state.0 -= n as f64;
    }

    fn refill(&self, state: &mut (f64, Instant)) -> f64 {
        let now = Instant::now();
        let earned = now.duration_since(state.1).as_secs_f64() * self.rate;
        state.0 = (state.0 + earned).min(self.chunk as f64);
        state.1 = now;
        state.0
    }
}

/// Why a connection or request was refused, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The requester is not in the ACL.
    Acl,
    /// Activation of an unknown stream.
    UnknownStream,
    /// Activation with only one side connected.
    NotPaired,
    /// A second activation.
    AlreadyActive,
    /// `max_connections`.
    ConnectionCap,
    /// `max_connections_per_address`.
    AddressCap,
    /// `max_connections_per_jid`.
    JidCap,
    /// `max_sessions`.
    SessionCap,
    /// A third connection for the same hash.
    Duplicate,
    /// A malformed SOCKS5 handshake.
    BadHandshake,
    /// Not activated within `activation_timeout`.
    ActivationTimeout,
    /// No byte within `idle_timeout`.
    IdleTimeout,
}

impl Rejection {
    /// Every reason, in report order.
    pub const ALL: [Rejection; 12] = [
        Self::Acl,
        Self::UnknownStream,
        Self::NotPaired,
        Self::AlreadyActive,
        Self::ConnectionCap,
        Self::AddressCap,
        Self::JidCap,
        Self::SessionCap,
        Self::Duplicate,
        Self::BadHandshake,
        Self::ActivationTimeout,
        Self::IdleTimeout,
    ];

    /// Its name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Acl => "acl",
            Self::UnknownStream => "unknown_stream",
            Self::NotPaired => "not_paired",
            Self::AlreadyActive => "already_active",
            Self::ConnectionCap => "connection_cap",
            Self::AddressCap => "address_cap",
            Self::JidCap => "jid_cap",
            Self::SessionCap => "session_cap",
            Self::Duplicate => "duplicate",
            Self::BadHandshake => "bad_handshake",
            Self::ActivationTimeout => "activation_timeout",
            Self::IdleTimeout => "idle_timeout",
        }
    }
}

/// Counters of one proxy: kept here for the `stats` command, and
/// recorded through the `metrics` facade, which the framework serves to
/// Prometheus when `[metrics] listen` is set. Series (label
/// `component="<jid>"`): `satellite_proxy65_connections_total`,
/// `satellite_proxy65_activations_total`, `satellite_proxy65_sessions_active`,
/// `satellite_proxy65_bytes_total`, `satellite_proxy65_rejections_total` (label `reason`, see
/// [`Rejection::as_str`]).
#[derive(Debug, Default)]
pub struct Metrics {
    component: String,
    connections: AtomicU64,
    activations: AtomicU64,
    finished: AtomicU64,
    bytes: AtomicU64,
    rejections: [AtomicU64; Rejection::ALL.len()],
}

impl Metrics {
    /// Counters labelled with the component's JID.
    pub fn new(component: impl Into<String>) -> Self {
        Self {
            component: component.into(),
            ..Self::default()
        }
    }

    /// A SOCKS5 connection was accepted.
    pub fn connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("satellite_proxy65_connections_total", "component" => self.component.clone())
            .increment(1);
    }

    /// A bytestream was activated.
    pub fn activated(&self) {
        self.activations.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("satellite_proxy65_activations_total", "component" => self.component.clone())
            .increment(1);
        metrics::gauge!("satellite_proxy65_sessions_active", "component" => self.component.clone())
            .increment(1.0);
    }

    /// An activated bytestream ended.
    pub fn finished(&self) {
        self.finished.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("satellite_proxy65_sessions_active", "component" => self.component.clone())
            .decrement(1.0);
    }

    /// `n` bytes were relayed.
    pub fn bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
        metrics::counter!("satellite_proxy65_bytes_total", "component" => self.component.clone())
            .increment(n);
    }

    /// Counts a rejection.
    pub fn reject(&self, why: Rejection) {
        self.rejections[why as usize].fetch_add(1, Ordering::Relaxed);
        metrics::counter!(
            "satellite_proxy65_rejections_total",
            "component" => self.component.clone(),
            "reason" => why.as_str()
        )
        .increment(1);
    }

    /// Connections accepted so far.
    pub fn connections_total(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Bytestreams activated so far.
    pub fn activations_total(&self) -> u64 {
        self.activations.load(Ordering::Relaxed)
    }

    /// Bytestreams ended so far.
    pub fn finished_total(&self) -> u64 {
        self.finished.load(Ordering::Relaxed)
    }

    /// Bytes relayed so far (both directions).
    pub fn bytes_total(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Rejections for one reason.
    pub fn rejections(&self, why: Rejection) -> u64 {
        self.rejections[why as usize].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauge_caps_and_releases() {
        let g = Gauge::new(2);
        let a = g.acquire().expect("first");
        let _b = g.acquire().expect("second");
        assert!(g.acquire().is_none());
        drop(a);
        assert!(g.acquire().is_some());
    }

    #[test]
    fn per_key_caps_each_key_and_forgets_idle_ones() {
        let t = PerKey::new(2);
        let a1 = t.acquire(&"a").expect("a1");
        let _a2 = t.acquire(&"a").expect("a2");
        assert!(t.acquire(&"a").is_none());
        let b = t.acquire(&"b").expect("b");
        assert_eq!((t.used(&"a"), t.keys()), (2, 2));
        drop(b);
        drop(a1);
        assert_eq!((t.used(&"a"), t.used(&"b"), t.keys()), (1, 0, 1));
    }

    #[test]
    fn addresses_are_counted_by_ipv4_address_or_ipv6_network() {
        let key = |s: &str| address_key(s.parse().expect("ip"));
        assert_eq!(key("192.0.2.1"), key("::ffff:192.0.2.1"));
        assert_ne!(key("192.0.2.1"), key("192.0.2.2"));
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    }

    #[test]
    fn bucket_starts_empty_and_charges_reads() {
        let b = Bucket::new(20_000);
        assert_eq!(b.chunk(), 1000);
        let wait = b.wait_for(1000);
        assert!(
            wait > Duration::from_millis(40) && wait <= Duration::from_millis(50),
            "{wait:?}"
        );
        b.take(2000);
        let wait = b.wait_for(1000);
        assert!(wait > Duration::from_millis(140), "{wait:?}");
    }

    #[test]
    fn rejection_indices_match() {
        for (i, r) in Rejection::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }
}
