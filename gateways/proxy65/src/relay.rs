//! Copying an activated bytestream, both directions at once.
//!
//! One loop per direction over large buffers (the syscall count, not the
//! copy, bounds loopback throughput; see the benchmark). When one side
//! finishes sending (EOF), the other side's write half is shut down, so a
//! half-close travels through the proxy and the last bytes are always
//! delivered before the FIN. Shaped bytestreams read in chunks a token
//! bucket allows; the idle timer sees every byte in either direction.

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
    /// Buffer per direction.
    pub buffer_size: usize,
    /// Idle timeout.
    pub idle_timeout: Duration,
    /// The bytestream's own bucket, if capped.
    pub session: Option<Arc<Bucket>>,
    /// The proxy-wide bucket, if capped.
    pub total: Option<Arc<Bucket>>,
    /// Where relayed bytes are added up (proxy-wide).
    pub metrics: Arc<Metrics>,
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
    let start = Instant::now();
    // Milliseconds since `start` of the last byte either way.
    let activity = AtomicU64::new(0);
    let (ab_bytes, ba_bytes) = (AtomicU64::new(0), AtomicU64::new(0));
    let (ar, aw) = a.split();
    let (br, bw) = b.split();
    let ab = pump(ar, bw, &opts, &activity, start, &ab_bytes);
    let ba = pump(br, aw, &opts, &activity, start, &ba_bytes);
    tokio::pin!(ab, ba);
    let (mut ab_done, mut ba_done) = (false, false);
    let end = loop {
        let last = Duration::from_millis(activity.load(Ordering::Relaxed));
        let idle_at = tokio::time::Instant::from_std(start + last + opts.idle_timeout);
        tokio::select! {
            r = &mut ab, if !ab_done => {
                ab_done = true;
                if r.is_err() { break End::Error; }
            }
            r = &mut ba, if !ba_done => {
                ba_done = true;
                if r.is_err() { break End::Error; }
            }
            _ = tokio::time::sleep_until(idle_at) => {
                let last = Duration::from_millis(activity.load(Ordering::Relaxed));
                if start.elapsed() >= last + opts.idle_timeout {
                    break End::Idle;
                }
            }
            _ = stop.cancelled() => break End::Shutdown,
        }
        if ab_done && ba_done {
            break End::Done;
        }
    };
    (
        end,
        ab_bytes.load(Ordering::Relaxed),
        ba_bytes.load(Ordering::Relaxed),
    )
}

/// Copies `r` to `w` until EOF, then shuts `w` down.
async fn pump<R, W>(
    mut r: R,
    mut w: W,
    opts: &Options,
    activity: &AtomicU64,
    start: Instant,
    copied: &AtomicU64,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let buckets: Vec<&Bucket> = opts
        .session
        .iter()
        .chain(opts.total.iter())
        .map(|b| &**b)
        .collect();
    let chunk = buckets
        .iter()
        .map(|b| b.chunk())
        .fold(opts.buffer_size, usize::min)
        .max(1);
    let mut buf = vec![0u8; chunk];
    loop {
        for bucket in &buckets {
            loop {
                let wait = bucket.wait_for(chunk);
                if wait.is_zero() {
                    break;
                }
                tokio::time::sleep(wait).await;
            }
        }
        let n = r.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        for bucket in &buckets {
            bucket.take(n);
        }
        w.write_all(&buf[..n]).await?;
        copied.fetch_add(n as u64, Ordering::Relaxed);
        opts.metrics.bytes.fetch_add(n as u64, Ordering::Relaxed);
        activity.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
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

    fn options(rate: Option<u64>) -> Options {
        Options {
            buffer_size: 64 * 1024,
            idle_timeout: Duration::from_secs(5),
            session: rate.map(Bucket::new),
            total: None,
            metrics: Arc::new(Metrics::default()),
        }
    }

    #[tokio::test]
    async fn half_close_delivers_everything_both_ways() {
        let (mut x, xp) = pair().await;
        let (mut y, yp) = pair().await;
        let relay = tokio::spawn(relay(xp, yp, options(None), CancellationToken::new()));
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        x.write_all(&data).await.expect("write");
        x.shutdown().await.expect("half-close");
        let mut got = Vec::new();
        y.read_to_end(&mut got).await.expect("read");
        assert_eq!(got, data);
        // The other direction still works after the first one closed.
        y.write_all(b"reply").await.expect("write back");
        y.shutdown().await.expect("close");
        let mut back = Vec::new();
        x.read_to_end(&mut back).await.expect("read back");
        assert_eq!(back, b"reply");
        let (end, ab, ba) = relay.await.expect("join");
        assert_eq!((end, ab, ba), (End::Done, 1_000_000, 5));
    }

    #[tokio::test]
    async fn rate_is_capped() {
        let (mut x, xp) = pair().await;
        let (mut y, yp) = pair().await;
        tokio::spawn(relay(
            xp,
            yp,
            options(Some(400_000)),
            CancellationToken::new(),
        ));
        let started = Instant::now();
        tokio::spawn(async move {
            let _ = x.write_all(&[7u8; 200_000]).await;
            let _ = x.shutdown().await;
        });
        let mut got = Vec::new();
        y.read_to_end(&mut got).await.expect("read");
        let rate = got.len() as f64 / started.elapsed().as_secs_f64();
        assert_eq!(got.len(), 200_000);
        assert!(rate <= 400_000.0 * 1.05 && rate > 400_000.0 * 0.5, "{rate}");
    }

    #[tokio::test]
    async fn idle_relay_ends() {
        let (_x, xp) = pair().await;
        let (_y, yp) = pair().await;
        let mut opts = options(None);
        opts.idle_timeout = Duration::from_millis(200);
        let (end, _, _) = relay(xp, yp, opts, CancellationToken::new()).await;
        assert_eq!(end, End::Idle);
    }
}
