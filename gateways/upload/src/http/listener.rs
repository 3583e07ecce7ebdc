//! Accepting HTTP connections: HTTP/1.1 and HTTP/2 (hyper), optionally
//! behind direct TLS (rustls), at most `max_connections` at once.
//!
//! Every stage has a deadline, so that sockets which say nothing cannot
//! hold the connection cap: from the accept to the first request's
//! headers (TLS handshake, protocol detection, HTTP/2 preface) within
//! `header_timeout`; each later HTTP/1.1 request's headers, idle
//! keep-alive included, within `header_timeout`; a stalled write within
//! `idle_timeout` (bodies: `http::put`). A connection over the cap gets a
//! 503 (a close on TLS), never a hang, from at most [`REFUSING`] tasks at
//! once. Request heads are capped at `max_header_size`, which also bounds
//! each HTTP/1.1 connection's read buffer. On shutdown running requests
//! finish (bounded).

use std::sync::Arc;
use std::time::Duration;

use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use satellite::{BoxError, CancellationToken};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_io_timeout::TimeoutStream;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use super::linger::Linger;
use super::sendfile::ZeroCopy;
use crate::config::TlsFiles;
use crate::service::Service;

/// How long running requests get to finish at shutdown.
const DRAIN: Duration = Duration::from_secs(10);
/// Connections over the cap being answered at once; past these, one is
/// closed after a 503 written without waiting.
pub const REFUSING: usize = 64;
/// The answer to a connection over the cap.
const OVER_CAP: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// Serves `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    service: Arc<Service>,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let router = super::router(Arc::clone(&service));
    let settings = &service.settings;
    let (idle, header_timeout) = (settings.idle_timeout, settings.header_timeout);
    let permits = Arc::new(Semaphore::new(settings.max_connections));
    let refusing = Arc::new(Semaphore::new(REFUSING));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(settings.max_header_size)
        // Bodies are never copied into hyper's buffer: downloads' bytes
        // must reach the socket wrapper as they are (`http::sendfile`).
        .writev(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(settings.max_header_size).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(idle / 2))
        .keep_alive_timeout(idle);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, most likely: wait, don't spin.
                    tracing::warn!(error = %e, "upload: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            service.metrics.refused("connections");
            tracing::warn!(%peer, "upload: max_connections reached; refusing a connection");
            match Arc::clone(&refusing).try_acquire_owned() {
                Ok(refusal) => {
                    tokio::spawn(refuse(tcp, tls.is_none(), refusal));
                }
                Err(_) => {
                    // A fresh socket's send buffer takes it at once (the
                    // std socket is non-blocking; tokio's would not know
                    // yet that it is writable).
                    if tls.is_none()
                        && let Ok(mut tcp) = tcp.into_std()
                    {
                        let _ = std::io::Write::write(&mut tcp, OVER_CAP);
                    }
                }
            }
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (tcp, zero_copy) = ZeroCopy::connection(tcp);
        // Files go out with sendfile on plain connections only.
        let zero_copy = tls.is_none().then_some(zero_copy);
        let mut io = TimeoutStream::new(Linger::new(tcp));
        io.set_write_timeout(Some(idle));
        let io = Box::pin(io);
        // The deadline ends with the first request's headers.
        let first_request = Arc::new(Notify::new());
        let signal = Arc::clone(&first_request);
        let service = TowerToHyperService::new(router.clone().map_request(
            move |mut r: Request<Incoming>| {
                signal.notify_one();
                if let Some(zero_copy) = &zero_copy {
                    r.extensions_mut().insert(zero_copy.clone());
                }
                r
            },
        ));
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let connection = async move {
                match tls {
                    None => {
                        let conn = builder.serve_connection(TokioIo::new(io), service);
                        watcher.watch(conn.into_owned()).await
                    }
                    Some(acceptor) => {
                        let stream = acceptor.accept(io).await?;
                        let conn = builder.serve_connection(TokioIo::new(stream), service);
                        watcher.watch(conn.into_owned()).await
                    }
                }
            };
            tokio::pin!(connection);
            let result = tokio::select! {
                result = &mut connection => result,
                () = first_request.notified() => connection.await,
                () = tokio::time::sleep(header_timeout) => Err("no request within header_timeout".into()),
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "upload: connection ended");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN) => tracing::warn!("upload: requests still running at shutdown"),
    }
}

/// A connection over the cap: a 503 on plain HTTP, then a short lingering
/// close (the client reads the 503, not a reset); a close on TLS.
async fn refuse(mut tcp: TcpStream, plain: bool, _refusing: OwnedSemaphorePermit) {
    if !plain {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        tcp.write_all(OVER_CAP).await?;
        tcp.shutdown().await?;
        let mut scratch = [0u8; 4096];
        while tcp.read(&mut scratch).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}
/// A TLS acceptor from PEM files, offering HTTP/2 and HTTP/1.1.
pub fn tls_acceptor(files: &TlsFiles) -> Result<TlsAcceptor, BoxError> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("tls_cert `{}`: {e}", files.cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls_cert `{}`: no certificate in the file",
            files.cert.display()
        )
        .into());
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("tls_key `{}`: {e}", files.key.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| format!("tls_cert/tls_key: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
