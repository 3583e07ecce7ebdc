//! Accepting HTTP connections: HTTP/1.1 and HTTP/2 (hyper), optionally
//! behind direct TLS (rustls), at most `max_connections` at once (one more
//! gets a 503, never a hang), a write that stalls for `idle_timeout` ends
//! the connection, and on shutdown running requests finish (bounded).

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use satellite::{BoxError, CancellationToken};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_io_timeout::TimeoutStream;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;
use crate::service::Service;

/// How long running requests get to finish at shutdown.
const DRAIN: Duration = Duration::from_secs(10);
/// hyper's HTTP/1 read buffer: large reads for large uploads.
const READ_BUFFER: usize = 1024 * 1024;

/// Serves `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    service: Arc<Service>,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let router = super::router(Arc::clone(&service));
    let idle = service.settings.idle_timeout;
    let permits = Arc::new(Semaphore::new(service.settings.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(idle)
        .max_buf_size(READ_BUFFER);
    builder
        .http2()
        .timer(TokioTimer::new())
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
            tokio::spawn(refuse(tcp, tls.is_none()));
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let mut io = TimeoutStream::new(tcp);
        io.set_write_timeout(Some(idle));
        let io = Box::pin(io);
        let service = TowerToHyperService::new(router.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let result = match tls {
                None => {
                    let conn = builder.serve_connection(TokioIo::new(io), service);
                    watcher.watch(conn.into_owned()).await
                }
                Some(acceptor) => match tokio::time::timeout(idle, acceptor.accept(io)).await {
                    Ok(Ok(stream)) => {
                        let conn = builder.serve_connection(TokioIo::new(stream), service);
                        watcher.watch(conn.into_owned()).await
                    }
                    Ok(Err(e)) => Err(e.into()),
                    Err(_) => Err("TLS handshake timed out".into()),
                },
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

/// A connection over the cap: a 503 on plain HTTP, a close on TLS.
async fn refuse(mut tcp: TcpStream, plain: bool) {
    if plain {
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            tcp.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            ),
        )
        .await;
    }
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
