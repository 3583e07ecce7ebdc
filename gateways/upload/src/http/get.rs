//! `GET`/`HEAD /<slot id>/<file name>`: streams a stored file with range
//! and conditional request support (RFC 9110 §13–14).
//!
//! - `ETag` (strong: files never change) and `Last-Modified`;
//!   `If-None-Match` / `If-Modified-Since` → 304.
//! - `Range: bytes=a-b`, `a-`, `-n` → 206 with `Content-Range`; a range
//!   past the end → 416 with `Content-Range: bytes */len`; several
//!   ranges (not parsed: see [`range`](super::range)), a reversed or
//!   malformed one, or any range of an empty file → the whole file (RFC
//!   9110 lets a server ignore Range); `If-Range` that does not match →
//!   the whole file.
//! - `Cache-Control: public, max-age=…, immutable`; `Content-Disposition`
//!   inline only for `inline_types`, with an RFC 6266 / 8187 file name.
//! - The bytes go out with `sendfile` on plain HTTP/1.1 connections
//!   ([`sendfile`](super::sendfile)), read in 1 MiB chunks otherwise.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Version, header};
use axum::response::Response;
use percent_encoding::utf8_percent_encode;

use super::path::parse;
use super::reply;
use super::sendfile::ZeroCopy;
use crate::catalog::Entry;
use crate::service::Service;

/// Bodies from this size on are sent with `sendfile` where they can be.
const ZERO_COPY_FROM: u64 = 16 * 1024;

/// The GET and HEAD handler.
pub async fn get(service: Arc<Service>, parts: Parts) -> Response {
    let not_found = || reply(StatusCode::NOT_FOUND, "no such file");
    let Some((id, filename)) = parse(parts.uri.path()) else {
        return not_found();
    };
    let entry = match service.find(&id, &filename).await {
        Ok(Some(e)) => e,
        Ok(None) => return not_found(),
        Err(e) => {
            tracing::error!(%id, error = %e, "upload: catalog lookup failed");
            return reply(StatusCode::INTERNAL_SERVER_ERROR, "storage error");
        }
    };
    let meta = match service.storage.stat(&id).await {
        Ok(Some(m)) => m,
        Ok(None) => return not_found(),
        Err(e) => {
            tracing::error!(%id, error = %e, "upload: cannot stat");
            return reply(StatusCode::INTERNAL_SERVER_ERROR, "storage error");
        }
    };
    if meta.len != entry.size {
        // Only possible after a crash cut a file short on disk: never
        // serve it as if it were whole.
        tracing::warn!(%id, stored = meta.len, expected = entry.size, "upload: file has the wrong size; not served");
        return not_found();
    }
    let modified = entry
        .completed
        .map(|t| UNIX_EPOCH + Duration::from_secs(t.max(0) as u64))
        .unwrap_or(meta.modified);
    let etag = format!("\"{id}-{}\"", entry.size);
    let last_modified = httpdate::fmt_http_date(modified);

    let mut headers = HeaderMap::new();
    let mut set = |name: header::HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    set(header::ETAG, &etag);
    set(header::LAST_MODIFIED, &last_modified);
    set(
        header::CACHE_CONTROL,
        &format!(
            "public, max-age={}, immutable",
            service.settings.cache_max_age()
        ),
    );
    set(header::ACCEPT_RANGES, "bytes");

    if not_modified(&parts.headers, &etag, modified) {
        return with_headers(StatusCode::NOT_MODIFIED, headers, Body::empty());
    }

    let content_type = entry
        .content_type
        .clone()
        .unwrap_or_else(|| crate::slot::DEFAULT_TYPE.to_owned());
    set(header::CONTENT_TYPE, &content_type);
    set(
        header::CONTENT_DISPOSITION,
        &disposition(service.settings.inline(&content_type), &entry),
    );

    let len = entry.size;
    let mut status = StatusCode::OK;
    let mut range = 0..len;
    if parts.method == Method::GET
        && let Some(requested) = requested_range(&parts.headers, &etag, modified, len)
    {
        match requested {
            Ok(r) => {
                set(
                    header::CONTENT_RANGE,
                    &format!("bytes {}-{}/{len}", r.start, r.end - 1),
                );
                status = StatusCode::PARTIAL_CONTENT;
                range = r;
            }
            Err(()) => {
                set(header::CONTENT_RANGE, &format!("bytes */{len}"));
                return with_headers(StatusCode::RANGE_NOT_SATISFIABLE, headers, Body::empty());
            }
        }
    }
    set(
        header::CONTENT_LENGTH,
        &(range.end - range.start).to_string(),
    );
    if parts.method == Method::HEAD {
        return with_headers(status, headers, Body::empty());
    }
    let bytes = range.end - range.start;
    let body = match body(&service, &parts, &id, range).await {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(%id, error = %e, "upload: cannot read");
            return reply(StatusCode::INTERNAL_SERVER_ERROR, "storage error");
        }
    };
    service.metrics.downloaded(bytes);
    with_headers(status, headers, body)
}

/// The bytes `range` of file `id`: sent with `sendfile` on a plain
/// HTTP/1.1 connection when the store has the file locally, read and
/// streamed otherwise.
async fn body(
    service: &Service,
    parts: &Parts,
    id: &str,
    range: Range<u64>,
) -> std::io::Result<Body> {
    if let Some(zero_copy) = parts.extensions.get::<ZeroCopy>()
        && parts.version <= Version::HTTP_11
        && range.end - range.start >= ZERO_COPY_FROM
        && let Some(file) = service.storage.open(id).await?
    {
        return zero_copy.body(file, range);
    }
    let stream = service.storage.read(id, range).await?;
    Ok(Body::from_stream(stream))
}

fn with_headers(status: StatusCode, headers: HeaderMap, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// RFC 9110 §13.2.2: `If-None-Match` first; `If-Modified-Since` only
/// without it.
fn not_modified(headers: &HeaderMap, etag: &str, modified: SystemTime) -> bool {
    if let Some(inm) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        return inm
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == etag);
    }
    headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .is_some_and(|since| truncate(modified) <= since)
}

/// HTTP dates have whole seconds.
fn truncate(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// The range to serve: `None` for the whole file, `Some(Err)` when
/// unsatisfiable.
fn requested_range(
    headers: &HeaderMap,
    etag: &str,
    modified: SystemTime,
    len: u64,
) -> Option<Result<Range<u64>, ()>> {
    let value = headers.get(header::RANGE)?.to_str().ok()?;
    if let Some(if_range) = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        let matches = if if_range.starts_with('"') {
            if_range == etag
        } else {
            httpdate::parse_http_date(if_range).is_ok_and(|d| d == truncate(modified))
        };
        if !matches {
            return None;
        }
    }
    crate::http::range::parse(value, len)
}

/// `inline` or `attachment`, with the file name as RFC 6266 asks: an
/// ASCII fallback and the UTF-8 name (RFC 8187).
fn disposition(inline: bool, entry: &Entry) -> String {
    let fallback: String = entry
        .filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{}; filename=\"{fallback}\"; filename*=UTF-8''{}",
        if inline { "inline" } else { "attachment" },
        utf8_percent_encode(&entry.filename, crate::slot::SEGMENT)
    )
}
