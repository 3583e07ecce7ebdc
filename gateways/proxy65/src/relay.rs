//! Copying an activated bytestream, both directions at once.
//!
//! By default one loop per direction copies through a large buffer; with
//! `zero_copy = true` on Linux the bytes go socket → pipe → socket with
//! splice(2) ([`crate::splice`]), never entering user space (less CPU, but
//! slower than the copy loop in our benchmark; see the crate README). Either way, when one side finishes
//! sending (EOF) the other side's write half is shut down, so a half-close
//! travels through the proxy and the last bytes are always delivered
//! before the FIN. Shaped bytestreams move at most a chunk a token bucket
//! allows per call; the idle timer sees every byte in either direction.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use satellite::CancellationToken;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::limits::{Bucket, Metrics};

/// How a relay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Both sides finished sending.
    Done,
    /// A socket failed (usually a reset by one side).
    Error,
    /// No byte within the idle timeout.
    Idle,
    /// The component is stopping.
    Shutdown,
}

/// What shapes a relay.
#[derive(Debug, Clone)]
pub struct Options {
    /// Buffer (or pipe) size per direction.
    pub buffer_size: usize,
    /// Idle timeout.
    pub idle_timeout: Duration,
    /// The bytestream's own bucket, if capped.
    pub session: Option<Arc<Bucket>>,
    /// The proxy-wide bucket, if capped.
    pub total: Option<Arc<Bucket>>,
    /// Where relayed bytes are added up (proxy-wide).
    pub metrics: Arc<Metrics>,
    /// Use splice(2) where available.
    pub zero_copy: bool,
}

impl Options {
    fn buckets(&self) -> impl Iterator<Item = &Bucket> {
        self.session.iter().chain(self.total.iter()).map(|b| &**b)
    }

    /// The most to move per call: the buffer, or less when shaped.
    pub(crate) fn chunk(&self, buffer: usize) -> usize {
        self.buckets()
            .map(Bucket::chunk)
            .fold(buffer, usize::min)
            .max(1)
    }

    /// Pays for `n` bytes moved.
    pub(crate) fn take_tokens(&self, n: usize) {
        for bucket in self.buckets() {
            bucket.take(n);
        }
    }
}

/// Waits until every bucket holds `chunk` tokens.
pub(crate) async fn wait_for_tokens(opts: &Options, chunk: usize) {
    for bucket in opts.buckets() {
        loop {
            let wait = bucket.wait_for(chunk);
            if wait.is_zero() {
                break;
            }
            tokio::time::sleep(wait).await;
        }
    }
}

/// Byte counts and the time of the last byte, shared by both directions.
#[derive(Debug)]
pub struct Meter {
    start: Instant,
    /// Milliseconds since `start` of the last byte either way.
    last: AtomicU64,
    forward: AtomicU64,
    backward: AtomicU64,
}

impl Meter {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last: AtomicU64::new(0),
            forward: AtomicU64::new(0),
            backward: AtomicU64::new(0),
        }
    }

    /// Counts `n` bytes moved a→b (`forward`) or b→a.
    pub(crate) fn count(&self, n: usize, forward: bool, opts: &Options) {
        let n = n as u64;
        let counter = if forward {
            &self.forward
        } else {
            &self.backward
        };
        counter.fetch_add(n, Ordering::Relaxed);
        opts.metrics.bytes(n);
        self.last
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle_since(&self) -> Instant {
        self.start + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }
}

/// Relays between `a` and `b` until both directions are done, one fails,
/// the idle timeout passes or `stop` is cancelled. Returns how it ended and
/// the bytes copied a→b and b→a.
pub async fn relay(
    mut a: TcpStream,
    mut b: TcpStream,
    opts: Options,
    stop: CancellationToken,
) -> (End, u64, u64) {
    let meter = Meter::new();
    let end = 'end: {
        #[cfg(target_os = "linux")]
        if opts.zero_copy {
            let size = opts.buffer_size;
            if let (Ok(p1), Ok(p2)) = (
                crate::splice::Pipe::new(size),
                crate::splice::Pipe::new(size),
            ) {
                let ab = crate::splice::pump(&a, &b, &p1, &opts, &meter, true);
                let ba = crate::splice::pump(&b, &a, &p2, &opts, &meter, false);
                break 'end drive(ab, ba, &meter, &opts, &stop).await;
            }
        }
        let (ar, aw) = a.split();
        let (br, bw) = b.split();
        let ab = pump(ar, bw, &opts, &meter, true);
        let ba = pump(br, aw, &opts, &meter, false);
        drive(ab, ba, &meter, &opts, &stop).await
    };
    (
        end,
        meter.forward.load(Ordering::Relaxed),
        meter.backward.load(Ordering::Relaxed),
    )
}

/// Runs both directions until they are done, one fails, the relay idles
/// out or `stop` fires.
async fn drive(
    ab: impl Future<Output = std::io::Result<()>>,
    ba: impl Future<Output = std::io::Result<()>>,
    meter: &Meter,
    opts: &Options,
    stop: &CancellationToken,
) -> End {
    tokio::pin!(ab, ba);
    let (mut ab_done, mut ba_done) = (false, false);
    loop {
        let idle_at = tokio::time::Instant::from_std(meter.idle_since() + opts.idle_timeout);
        tokio::select! {
            r = &mut ab, if !ab_done => {
                ab_done = true;
                if r.is_err() { return End::Error; }
            }
            r = &mut ba, if !ba_done => {
                ba_done = true;
                if r.is_err() { return End::Error; }
            }
            _ = tokio::time::sleep_until(idle_at) => {
                if meter.idle_since() + opts.idle_timeout <= Instant::now() {
                    return End::Idle;
                }
            }
            _ = stop.cancelled() => return End::Shutdown,
        }
        if ab_done && ba_done {
            return End::Done;
        }
    }
}

/// Copies `r` to `w` through a buffer until EOF, then shuts `w` down.
async fn pump<R, W>(
    mut r: R,
    mut w: W,
    opts: &Options,
    meter: &Meter,
    forward: bool,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let chunk = opts.chunk(opts.buffer_size);
    let mut buf = vec![0u8; chunk];
    loop {
        wait_for_tokens(opts, chunk).await;
        let n = r.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        opts.take_tokens(n);
        w.write_all(&buf[..n]).await?;
        meter.count(n, forward, opts);
    }
    w.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let (c, s) = tokio::join!(TcpStream::connect(addr), l.accept());
        (c.expect("connect"), s.expect("accept").0)
    }

    fn options(rate: Option<u64>, zero_copy: bool) -> Options {
        Options {
            buffer_size: 64 * 1024,
            idle_timeout: Duration::from_secs(5),
            session: rate.map(Bucket::new),
            total: None,
            metrics: Arc::new(Metrics::default()),
            zero_copy,
        }
    }

    #[tokio::test]
    async fn half_close_delivers_everything_both_ways() {
        for zero_copy in [true, false] {
            let (mut x, xp) = pair().await;
            let (mut y, yp) = pair().await;
            let opts = options(None, zero_copy);
            let relay = tokio::spawn(relay(xp, yp, opts, CancellationToken::new()));
            let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
            let sent = data.clone();
            let writer = tokio::spawn(async move {
                x.write_all(&sent).await.expect("write");
                x.shutdown().await.expect("half-close");
                x
            });
            let mut got = Vec::new();
            y.read_to_end(&mut got).await.expect("read");
            assert_eq!(got, data, "zero_copy {zero_copy}");
            let mut x = writer.await.expect("writer");
            // The other direction still works after the first one closed.
            y.write_all(b"reply").await.expect("write back");
            y.shutdown().await.expect("close");
            let mut back = Vec::new();
            x.read_to_end(&mut back).await.expect("read back");
            assert_eq!(back, b"reply");
            let (end, ab, ba) = relay.await.expect("join");
            assert_eq!(
                (end, ab, ba),
                (End::Done, 1_000_000, 5),
                "zero_copy {zero_copy}"
            );
        }
    }

    #[tokio::test]
    async fn rate_is_capped() {
        for zero_copy in [true, false] {
            let (mut x, xp) = pair().await;
            let (mut y, yp) = pair().await;
            let opts = options(Some(400_000), zero_copy);
            tokio::spawn(relay(xp, yp, opts, CancellationToken::new()));
            let started = Instant::now();
            tokio::spawn(async move {
                let _ = x.write_all(&[7u8; 200_000]).await;
                let _ = x.shutdown().await;
            });
            let mut got = Vec::new();
            y.read_to_end(&mut got).await.expect("read");
            let rate = got.len() as f64 / started.elapsed().as_secs_f64();
            assert_eq!(got.len(), 200_000);
            assert!(
                rate <= 400_000.0 * 1.05 && rate > 400_000.0 * 0.5,
                "{rate} (zero_copy {zero_copy})"
            );
        }
    }

    #[tokio::test]
    async fn total_rate_is_shared_by_bytestreams() {
        let total = Bucket::new(400_000);
        let started = Instant::now();
        let mut readers = Vec::new();
        for _ in 0..2 {
            let (mut x, xp) = pair().await;
            let (mut y, yp) = pair().await;
            let mut opts = options(None, true);
            opts.total = Some(Arc::clone(&total));
            tokio::spawn(relay(xp, yp, opts, CancellationToken::new()));
            tokio::spawn(async move {
                let _ = x.write_all(&[7u8; 100_000]).await;
                let _ = x.shutdown().await;
            });
            readers.push(tokio::spawn(async move {
                let mut got = Vec::new();
                y.read_to_end(&mut got).await.map(|_| got.len())
            }));
        }
        for r in readers {
            assert_eq!(r.await.expect("join").expect("read"), 100_000);
        }
        let rate = 200_000.0 / started.elapsed().as_secs_f64();
        assert!(rate <= 400_000.0 * 1.1, "{rate} B/s over both, cap 400000");
    }

    #[tokio::test]
    async fn idle_relay_ends() {
        for zero_copy in [true, false] {
            let (_x, xp) = pair().await;
            let (_y, yp) = pair().await;
            let mut opts = options(None, zero_copy);
            opts.idle_timeout = Duration::from_millis(200);
            let (end, _, _) = relay(xp, yp, opts, CancellationToken::new()).await;
            assert_eq!(end, End::Idle);
        }
    }
}
