//! proxy65's SOCKS5 handshake over arbitrary bytes, split anywhere.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use satellite_proxy65::socks5::{self, HASH_LEN, HandshakeError};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A client that sends its bytes in the given segments, then closes, and
/// a record of what the server wrote.
struct Segments {
    segments: VecDeque<Vec<u8>>,
    written: Vec<u8>,
}

impl AsyncRead for Segments {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let Some(mut segment) = self.segments.pop_front() else {
            return Poll::Ready(Ok(())); // end of stream
        };
        let n = segment.len().min(buf.remaining());
        buf.put_slice(&segment[..n]);
        if n < segment.len() {
            self.segments.push_front(segment.split_off(n));
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Segments {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.written.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// What a handshake came to, comparable across runs.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    result: Result<String, String>,
    written: Vec<u8>,
    unread: usize,
}

fn run(segments: Vec<Vec<u8>>) -> Outcome {
    let mut s = Segments {
        segments: segments.into(),
        written: Vec::new(),
    };
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
    }
    let result = RUNTIME.with(|rt| rt.block_on(socks5::accept(&mut s)));
    let result = result.map_err(|e| match e {
        HandshakeError::Io(e) => format!("io {:?}", e.kind()),
        other => other.to_string(),
    });
    Outcome {
        result,
        written: s.written,
        unread: s.segments.iter().map(Vec::len).sum(),
    }
}

/// `socks5_handshake`: the first byte says how many split points follow
/// (at most 16), each a byte giving the next segment's length; the rest is
/// what the client sends. The outcome (hash or error, bytes written back,
/// bytes left unread) must be the same as with everything in one segment,
/// and an accepted hash must be a lowercase hex SHA-1.
pub fn handshake(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 17).min(rest.len());
    let (cuts, stream) = rest.split_at(n);
    let whole = run(if stream.is_empty() {
        Vec::new()
    } else {
        vec![stream.to_vec()]
    });
    let mut segments = Vec::new();
    let mut at = 0;
    for &len in cuts {
        let end = (at + usize::from(len)).min(stream.len());
        // An empty read is the end of the stream: segments are never empty.
        if end > at {
            segments.push(stream[at..end].to_vec());
        }
        at = end;
    }
    if at < stream.len() {
        segments.push(stream[at..].to_vec());
    }
    let split = run(segments);
    assert_eq!(whole, split, "split at {cuts:?}");
    if let Ok(hash) = &whole.result {
        assert_eq!(hash.len(), HASH_LEN);
        assert!(hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        // The greeting's reply (version, no authentication) and nothing else yet.
        assert_eq!(whole.written, [5, 0]);
    }
}
