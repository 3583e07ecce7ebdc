//! A PUT's request body as the handler reads it: every wait for bytes is
//! bounded by `idle_timeout`, and a body left unread by a refusal is
//! either read to its end (small ones) or the connection is closed.

use std::time::Duration;

use axum::body::{Body, BodyDataStream};
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use futures::{FutureExt as _, StreamExt as _};

/// Bodies up to this size are read and dropped after a refusal, so that
/// the connection can carry the client's next request.
pub const DRAIN_LIMIT: u64 = 64 * 1024;

/// Why reading a body failed: status, metrics reason, text.
pub type BodyError = (StatusCode, &'static str, &'static str);

/// No byte for `idle_timeout`.
pub const STALLED: BodyError = (StatusCode::REQUEST_TIMEOUT, "stalled", "the upload stalled");

/// The client went away mid-body.
pub const INTERRUPTED: BodyError = (
    StatusCode::BAD_REQUEST,
    "interrupted",
    "the upload was interrupted",
);

/// A request body being read.
pub struct Incoming {
    stream: BodyDataStream,
    idle: Duration,
    done: bool,
    /// Stalled or interrupted: not worth waiting for again.
    broken: bool,
}

impl Incoming {
    /// Reads `body`, waiting at most `idle` for each chunk.
    pub fn new(body: Body, idle: Duration) -> Self {
        Self {
            stream: body.into_data_stream(),
            idle,
            done: false,
            broken: false,
        }
    }

    /// The next chunk; `None` at the end of the body.
    pub async fn next(&mut self) -> Result<Option<Bytes>, BodyError> {
        if self.done {
            return Ok(None);
        }
        // A chunk already there needs no timer.
        let next = match self.stream.next().now_or_never() {
            Some(ready) => Ok(ready),
            None => tokio::time::timeout(self.idle, self.stream.next()).await,
        };
        self.broken = matches!(next, Err(_) | Ok(Some(Err(_))));
        match next {
            Err(_) => Err(STALLED),
            Ok(None) => {
                self.done = true;
                Ok(None)
            }
            Ok(Some(Err(_))) => Err(INTERRUPTED),
            Ok(Some(Ok(chunk))) => Ok(Some(chunk)),
        }
    }

    /// After a refusal: reads and drops the rest of a body whose
    /// `Content-Length` is at most [`DRAIN_LIMIT`], within `idle`. Returns
    /// whether the body ended (the connection can then be reused).
    pub async fn drain(&mut self, headers: &HeaderMap) -> bool {
        if self.done {
            return true;
        }
        let small = headers.get(header::CONTENT_LENGTH).is_some_and(|v| {
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .is_some_and(|n| n <= DRAIN_LIMIT)
        });
        if self.broken || !small || headers.contains_key(header::TRANSFER_ENCODING) {
            return false;
        }
        let drained = tokio::time::timeout(self.idle, async {
            let mut read = 0u64;
            while let Ok(Some(chunk)) = self.next().await {
                read += chunk.len() as u64;
                if read > DRAIN_LIMIT {
                    break;
                }
            }
        });
        let _ = drained.await;
        self.done
    }
}
