//! A lingering close: when a connection is shut down, the bytes the client
//! is still sending (the rest of a refused upload) are read and dropped
//! for a moment before the socket closes. Closing a socket with unread
//! bytes makes the kernel send a reset, which can destroy the response the
//! client has not read yet.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// How long a closing connection reads what the client still sends.
const LINGER: Duration = Duration::from_secs(2);
/// How much it reads at most.
const LINGER_BYTES: usize = 16 * 1024 * 1024;

/// `inner`, shut down with a lingering close.
pub struct Linger<I> {
    inner: I,
    /// Set once the write side is shut down: until when to read.
    until: Option<Pin<Box<Sleep>>>,
    drained: usize,
}

impl<I> Linger<I> {
    /// Wraps `inner`.
    pub fn new(inner: I) -> Self {
        Self {
            inner,
            until: None,
            drained: 0,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Linger<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Linger<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.until.is_none() {
            ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            this.until = Some(Box::pin(tokio::time::sleep(LINGER)));
        }
        let mut scratch = [0u8; 8192];
        loop {
            if let Some(until) = this.until.as_mut()
                && until.as_mut().poll(cx).is_ready()
            {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Pending => return Poll::Pending,
                // The client closed too, or the socket failed: done.
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {
                    this.drained += buf.filled().len();
                    if this.drained > LINGER_BYTES {
                        return Poll::Ready(Ok(()));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test]
    async fn the_response_survives_a_client_still_sending() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            let mut io = Linger::new(tcp);
            let mut head = [0u8; 16];
            io.read_exact(&mut head).await.expect("head");
            io.write_all(b"refused").await.expect("write");
            io.shutdown().await.expect("shutdown");
        });
        let mut client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        // 16 bytes of "head", then 2 MiB the server never asked for.
        client.write_all(&[b'h'; 16]).await.expect("head");
        let body = vec![b'x'; 2 * 1024 * 1024];
        client.write_all(&body).await.expect("the body is taken");
        client.shutdown().await.expect("shutdown");
        let mut response = Vec::new();
        client.read_to_end(&mut response).await.expect("no reset");
        assert_eq!(response, b"refused");
        server.await.expect("server");
    }
}
