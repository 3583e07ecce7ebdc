//! Zero-copy downloads: on a plain-TCP HTTP/1.1 connection a stored file
//! goes from the page cache to the socket with `sendfile(2)`, never
//! through user space.
//!
//! hyper writes a response body itself, so the body it is given is made
//! of placeholder chunks: slices of one static zero-filled block. The
//! connection's socket wrapper, [`SendfileStream`], knows that block's
//! address: when hyper hands it placeholder bytes it sends as many bytes
//! of the file with `sendfile` instead, from the download queued on the
//! connection by [`ZeroCopy::body`]. hyper's HTTP/1 writes are in order and
//! one response at a time, and it is told to write vectored (never to copy
//! a body into its own buffer), so the placeholders reach the wrapper in
//! the order the files were queued. Placeholder bytes with no download
//! queued end the connection with an error rather than reaching the
//! client. TLS and HTTP/2 connections read the file as before.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::fd::AsFd as _;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use axum::body::Body;
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// The placeholder block: a body chunk is a slice of it.
static PLACEHOLDER: [u8; CHUNK] = [0; CHUNK];
/// The largest placeholder chunk (and so the largest `sendfile` call).
const CHUNK: usize = 1024 * 1024;

/// Whether `buf` lies inside the placeholder block.
fn is_placeholder(buf: &[u8]) -> bool {
    let block = PLACEHOLDER.as_ptr_range();
    let (start, end) = (buf.as_ptr(), buf.as_ptr().wrapping_add(buf.len()));
    !buf.is_empty() && block.start <= start && end <= block.end
}

/// A file range queued for a connection.
struct Download {
    file: File,
    offset: i64,
    left: u64,
}

type Queue = Arc<Mutex<VecDeque<Download>>>;

/// A connection's zero-copy downloads, for the request handlers (found in
/// the request's extensions on the connections that can take them).
#[derive(Clone, Default)]
pub struct ZeroCopy {
    queue: Queue,
}

impl ZeroCopy {
    /// A connection that can send files with `sendfile`, and its handle.
    pub fn connection(tcp: TcpStream) -> (SendfileStream, Self) {
        let handle = Self::default();
        let stream = SendfileStream {
            tcp,
            queue: Arc::clone(&handle.queue),
        };
        (stream, handle)
    }

    /// The body of a response sending `range` of `file`. The download is
    /// queued when hyper starts on the body, so a response that is never
    /// sent leaves nothing behind.
    pub fn body(&self, file: File, range: Range<u64>) -> io::Result<Body> {
        let offset = i64::try_from(range.start).map_err(io::Error::other)?;
        let left = range.end.saturating_sub(range.start);
        let download = Download { file, offset, left };
        let queue = Arc::clone(&self.queue);
        let chunks = futures::stream::unfold(
            (Some((download, queue)), left),
            |(mut pending, left)| async move {
                if left == 0 {
                    return None;
                }
                if let Some((download, queue)) = pending.take() {
                    queue
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push_back(download);
                }
                let n = left.min(CHUNK as u64);
                let chunk = Bytes::from_static(&PLACEHOLDER[..n as usize]);
                Some((Ok::<_, io::Error>(chunk), (None, left - n)))
            },
        );
        Ok(Body::from_stream(chunks))
    }
}

/// A TCP connection whose placeholder writes become `sendfile` calls.
pub struct SendfileStream {
    tcp: TcpStream,
    queue: Queue,
}

impl SendfileStream {
    /// Sends up to `len` bytes of the queued download.
    fn poll_sendfile(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<usize>> {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(download) = queue.front_mut() else {
            return Poll::Ready(Err(io::Error::other(
                "a download's bytes with no file queued",
            )));
        };
        let count = len.min(usize::try_from(download.left).unwrap_or(usize::MAX));
        loop {
            ready!(self.tcp.poll_write_ready(cx))?;
            let sent = self.tcp.try_io(Interest::WRITABLE, || {
                nix::sys::sendfile::sendfile64(
                    self.tcp.as_fd(),
                    download.file.as_fd(),
                    Some(&mut download.offset),
                    count,
                )
                .map_err(io::Error::from)
            });
            match sent {
                Ok(0) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file is shorter than its range",
                    )));
                }
                Ok(n) => {
                    download.left -= n as u64;
                    if download.left == 0 {
                        queue.pop_front();
                    }
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncRead for SendfileStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendfileStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if is_placeholder(buf) {
            return self.poll_sendfile(cx, buf.len());
        }
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let bufs = match bufs.iter().position(|b| !b.is_empty()) {
            Some(first) => &bufs[first..],
            None => return Poll::Ready(Ok(0)),
        };
        if is_placeholder(&bufs[0]) {
            return self.poll_sendfile(cx, bufs[0].len());
        }
        // What comes before the first placeholder, written as usual.
        let plain = bufs
            .iter()
            .position(|b| is_placeholder(b))
            .unwrap_or(bufs.len());
        Pin::new(&mut self.tcp).poll_write_vectored(cx, &bufs[..plain])
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[test]
    fn only_the_block_is_a_placeholder() {
        assert!(is_placeholder(&PLACEHOLDER[..10]));
        assert!(is_placeholder(&PLACEHOLDER[CHUNK - 1..]));
        assert!(!is_placeholder(&PLACEHOLDER[..0]));
        assert!(!is_placeholder(&[0u8; 16]));
    }

    /// Writes `head`, the body of `range` of a file, and `tail` through the
    /// wrapper the way hyper does (placeholders interleaved with headers,
    /// in vectored writes), and returns what the peer received.
    async fn through_the_wrapper(content: &[u8], range: Range<u64>) -> Vec<u8> {
        let mut file = tempfile::tempfile().expect("temp file");
        file.write_all(content).expect("write");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = tokio::spawn(async move {
            let mut tcp = TcpStream::connect(addr).await.expect("connect");
            let mut got = Vec::new();
            tcp.read_to_end(&mut got).await.expect("read");
            got
        });
        let (tcp, _) = listener.accept().await.expect("accept");
        let (mut io, zero_copy) = ZeroCopy::connection(tcp);
        let body = zero_copy.body(file, range).expect("body");
        let mut frames = body.into_data_stream();
        let mut pending: Vec<Bytes> = vec![Bytes::from_static(b"HEAD|")];
        use futures::StreamExt as _;
        while let Some(chunk) = frames.next().await {
            pending.push(chunk.expect("chunk"));
            // Write vectored until everything pending went out.
            while !pending.is_empty() {
                let slices: Vec<io::IoSlice<'_>> =
                    pending.iter().map(|b| io::IoSlice::new(b)).collect();
                let mut n = io.write_vectored(&slices).await.expect("write");
                while n > 0 {
                    let first = &mut pending[0];
                    let take = n.min(first.len());
                    bytes::Buf::advance(first, take);
                    n -= take;
                    if first.is_empty() {
                        pending.remove(0);
                    }
                }
            }
        }
        io.write_all(b"|TAIL").await.expect("tail");
        io.shutdown().await.expect("shutdown");
        drop(io);
        client.await.expect("client")
    }

    #[tokio::test]
    async fn the_file_goes_out_in_place_of_the_placeholders() {
        let content: Vec<u8> = (0..3 * CHUNK + 12345).map(|i| (i % 251) as u8).collect();
        let got = through_the_wrapper(&content, 0..content.len() as u64).await;
        let mut expected = b"HEAD|".to_vec();
        expected.extend_from_slice(&content);
        expected.extend_from_slice(b"|TAIL");
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "the bytes differ");

        let got = through_the_wrapper(&content, 1000..1000 + CHUNK as u64 + 7).await;
        let mut expected = b"HEAD|".to_vec();
        expected.extend_from_slice(&content[1000..1000 + CHUNK + 7]);
        expected.extend_from_slice(b"|TAIL");
        assert!(got == expected, "the range's bytes differ");
    }

    #[tokio::test]
    async fn placeholders_without_a_download_are_refused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let _client = TcpStream::connect(addr).await.expect("connect");
        let (tcp, _) = listener.accept().await.expect("accept");
        let (mut io, _zero_copy) = ZeroCopy::connection(tcp);
        let err = io
            .write_all(&PLACEHOLDER[..100])
            .await
            .expect_err("refused");
        assert_eq!(err.kind(), io::ErrorKind::Other);
    }
}
