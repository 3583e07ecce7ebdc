//! `PUT /<slot id>/<file name>`: checks the authorisation, streams the
//! body to a partial file, and commits it only when exactly the slot's
//! bytes arrived.
//!
//! | status | when |
//! |---|---|
//! | 201 | stored |
//! | 401 | no authorisation (no `token`, `Bearer`, `v` or `v2`) |
//! | 403 | forged or expired authorisation, or `v`/`v2` while the external back end is off |
//! | 404 | the path names no slot, or the slot's record is gone (its file was deleted) |
//! | 408 | the body stalled for `idle_timeout` |
//! | 409 | the slot was already uploaded, or another PUT to it is running |
//! | 411 | no `Content-Length` (chunked uploads cannot be checked against the slot) |
//! | 413 / 400 | `Content-Length` larger / smaller than the slot (or, through the server's own slots, than `max_file_size`) |
//! | 415 | `Content-Type` other than the slot's, or not in `allowed_types` when the slot named none |
//! | 500 | the disk failed (nothing is kept) |
//! | 503 | `max_uploads` PUTs were receiving for `idle_timeout` (`Retry-After`) |
//! | 507 | through the server's own slots: the file would leave less than `min_free_space` |
//!
//! Nothing is set up for a body before its first byte arrives: a PUT
//! whose body never comes holds no writer thread and no file. A refusal
//! answered before the body was read either reads a small body to its end
//! (the connection stays usable) or carries `Connection: close`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use satellite::Secret;

use super::body::Incoming;
use super::path::{parse, query_param, relative_path};
use super::reply;
use crate::catalog::{Catalog, Entry};
use crate::service::{Service, now};
use crate::token::{ExternalVersion, TokenError, verify_external};

/// What authorised a PUT.
#[derive(Debug, PartialEq, Eq)]
enum Authority {
    /// One of our slots.
    Slot,
    /// The XMPP server's own slot (mod_http_upload_external).
    External,
}

/// The PUT handler.
pub async fn put(service: Arc<Service>, parts: Parts, body: Body) -> Response {
    let mut body = Incoming::new(body, service.settings.idle_timeout);
    match receive(&service, &parts, &mut body).await {
        Ok(response) => response,
        Err((status, reason, text)) => {
            service.metrics.refused(reason);
            tracing::debug!(path = %parts.uri.path(), %status, reason, "upload: PUT refused");
            // A keep-alive client sends its next request on this
            // connection: it must either be able to (the body was read)
            // or be told it cannot.
            let reusable = body.drain(&parts.headers).await;
            let mut response = reply(status, text);
            let headers = response.headers_mut();
            if status == StatusCode::UNAUTHORIZED {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            if status == StatusCode::SERVICE_UNAVAILABLE {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            // (HTTP/2 has no such header: hyper resets the stream instead.)
            if !reusable && parts.version < Version::HTTP_2 {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            response
        }
    }
}

/// A refusal: status, metrics reason, text for the client.
type Refused = (StatusCode, &'static str, &'static str);

const NO_SLOT: Refused = (StatusCode::NOT_FOUND, "no_slot", "no such upload slot");
const FORGED: Refused = (
    StatusCode::FORBIDDEN,
    "forged",
    "invalid upload authorisation",
);
const CONFLICT: Refused = (
    StatusCode::CONFLICT,
    "conflict",
    "this slot was already used",
);
const STORAGE: Refused = (
    StatusCode::INTERNAL_SERVER_ERROR,
    "storage",
    "storage error",
);
const BUSY: Refused = (
    StatusCode::SERVICE_UNAVAILABLE,
    "busy",
    "too many uploads at once; try again shortly",
);
const TYPE: Refused = (
    StatusCode::UNSUPPORTED_MEDIA_TYPE,
    "type",
    "this file type is not allowed",
);

async fn receive(
    service: &Arc<Service>,
    parts: &Parts,
    body: &mut Incoming,
) -> Result<Response, Refused> {
    let (id, filename) = parse(parts.uri.path()).ok_or(NO_SLOT)?;
    let length = content_length(&parts.headers)?;
    let raw_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or_default();
    let content_type = crate::mime::essence(raw_type);
    let path = format!("{id}/{filename}");
    let authority = authorize(
        service,
        parts,
        &id,
        &path,
        length,
        raw_type,
        content_type.as_deref(),
    )
    .await?;

    let storage_error = |e: std::io::Error| {
        tracing::error!(%id, error = %e, "upload: storage failed");
        STORAGE
    };
    // Refused before the body is read (a second PUT); the commit checks
    // again, for a PUT that raced this one.
    if service
        .storage
        .stat(&id)
        .await
        .map_err(storage_error)?
        .is_some()
    {
        return Err(CONFLICT);
    }
    let _claim = service.claim(&id).ok_or(CONFLICT)?;

    // The writer (a blocking thread) starts with the first byte, and only
    // `max_uploads` of them at once.
    let first = body.next().await?;
    let _upload = service
        .upload_permit(service.settings.idle_timeout)
        .await
        .ok_or(BUSY)?;
    let mut partial = service.storage.create(&id).await.map_err(storage_error)?;
    let mut received = 0u64;
    let mut next = first;
    while let Some(chunk) = next {
        received += chunk.len() as u64;
        if received > length {
            return Err((
                StatusCode::PAYLOAD_TOO_LARGE,
                "size_mismatch",
                "more bytes than the slot's size",
            ));
        }
        partial.write(chunk).await.map_err(storage_error)?;
        next = body.next().await.inspect_err(|_| {
            tracing::info!(%id, received, length, "upload: stalled or interrupted; nothing kept");
        })?;
    }
    if received != length {
        return Err((
            StatusCode::BAD_REQUEST,
            "interrupted",
            "fewer bytes than Content-Length",
        ));
    }
    match partial.commit().await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(CONFLICT),
        Err(e) => return Err(storage_error(e)),
    }
    let completed = now();
    let recorded = match authority {
        Authority::Slot => {
            let (id, ty) = (id.clone(), content_type.clone());
            service
                .catalog
                .run(move |conn| Catalog::complete(conn, &id, ty.as_deref(), completed))
                .await
        }
        Authority::External => {
            let entry = Entry {
                id: id.clone(),
                owner: None,
                filename,
                size: length,
                content_type: content_type.or_else(|| Some(crate::slot::DEFAULT_TYPE.to_owned())),
                created: completed,
                slot_expires: completed,
                completed: Some(completed),
            };
            service
                .catalog
                .run(move |conn| Catalog::record_external(conn, &entry, completed))
                .await
                .map(|()| true)
        }
    };
    match recorded {
        Ok(true) => {}
        Ok(false) => {
            // The slot was deleted while its body came in.
            let _ = service.storage.remove(&id).await;
            return Err(NO_SLOT);
        }
        Err(e) => {
            tracing::error!(%id, error = %e, "upload: cannot record the upload");
            return Err(STORAGE);
        }
    }
    service.metrics.uploaded(length);
    tracing::info!(%id, bytes = length, via = ?authority, "upload: stored");
    Ok((StatusCode::CREATED, "created\n").into_response())
}

fn content_length(headers: &HeaderMap) -> Result<u64, Refused> {
    let missing = (
        StatusCode::LENGTH_REQUIRED,
        "no_length",
        "Content-Length is required",
    );
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return Err(missing);
    }
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .ok_or(missing)
}

/// Checks the request's authorisation against what it sends.
async fn authorize(
    service: &Service,
    parts: &Parts,
    id: &str,
    path: &str,
    length: u64,
    raw_type: &str,
    content_type: Option<&str>,
) -> Result<Authority, Refused> {
    let query = parts.uri.query();
    let bearer = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned());
    if let Some(token) = query_param(query, "token").or(bearer) {
        let now = now();
        let exact = service
            .key
            .verify(&token, path, length, content_type.unwrap_or_default(), now);
        let (verdict, typeless) = match exact {
            // A slot requested without a type was signed with none.
            Err(TokenError::Forged) => (service.key.verify(&token, path, length, "", now), true),
            other => (other, false),
        };
        return match verdict {
            Ok(_) => {
                // A slot requested without a type takes any type the
                // policy allows, not any type at all.
                if typeless
                    && !service
                        .settings
                        .type_allowed(content_type.unwrap_or(crate::slot::DEFAULT_TYPE))
                {
                    return Err(TYPE);
                }
                slot_open(service, id).await?;
                Ok(Authority::Slot)
            }
            Err(TokenError::Expired) => Err((
                StatusCode::FORBIDDEN,
                "expired",
                "the upload slot has expired",
            )),
            Err(_) => Err(explain_mismatch(service, &token, id, path, length, content_type).await),
        };
    }
    let external = [("v2", ExternalVersion::V2), ("v", ExternalVersion::V1)]
        .into_iter()
        .find_map(|(key, version)| query_param(query, key).map(|mac| (version, mac)));
    if let Some((version, mac)) = external {
        let secret: &Secret = service.settings.external_secret.as_ref().ok_or((
            FORGED.0,
            FORGED.1,
            "the external upload back end is not enabled",
        ))?;
        // The server signed the whole path under its upload URL (Prosody:
        // `<uuid>/<name>`, ejabberd: `<user>/<random>/<name>`).
        let signed =
            relative_path(parts.uri.path(), &service.settings.public_url).ok_or(NO_SLOT)?;
        let ty = if raw_type.is_empty() {
            crate::slot::DEFAULT_TYPE
        } else {
            raw_type
        };
        verify_external(
            secret.expose().as_bytes(),
            version,
            &mac,
            &signed,
            length,
            ty,
        )
        .map_err(|_| FORGED)?;
        external_policy(service, id, length, ty).await?;
        return Ok(Authority::External);
    }
    Err((
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "no upload authorisation",
    ))
}

/// A slot token is good only while its slot's record is open: a slot
/// whose file an admin deleted (the row went with it) is not uploaded
/// again, ownerless and outside its owner's quota.
async fn slot_open(service: &Service, id: &str) -> Result<(), Refused> {
    let lookup = id.to_owned();
    let row = service
        .catalog
        .run(move |conn| Catalog::get(conn, &lookup))
        .await
        .map_err(|e| {
            tracing::error!(%id, error = %e, "upload: catalog lookup failed");
            STORAGE
        })?;
    match row {
        None => Err(NO_SLOT),
        Some(row) if row.completed.is_some() => Err(CONFLICT),
        Some(_) => Ok(()),
    }
}

/// The limits a server's own slot skipped (it was issued by the XMPP
/// server's policy, not ours), and the once-only use of its token, which
/// never expires.
async fn external_policy(
    service: &Service,
    id: &str,
    length: u64,
    content_type: &str,
) -> Result<(), Refused> {
    let s = &service.settings;
    if length > s.max_file_size {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "larger than this service's max_file_size",
        ));
    }
    if !s.type_allowed(content_type) {
        return Err(TYPE);
    }
    if let Some(free) = service.storage.free_space()
        && free.saturating_sub(length) < s.min_free_space
    {
        tracing::warn!(
            free,
            min_free_space = s.min_free_space,
            "upload: the disk is nearly full; refusing an upload"
        );
        return Err((
            StatusCode::INSUFFICIENT_STORAGE,
            "disk_full",
            "the server is out of storage",
        ));
    }
    let lookup = id.to_owned();
    let spent = service
        .catalog
        .run(move |conn| Catalog::spent(conn, &lookup))
        .await
        .map_err(|e| {
            tracing::error!(%id, error = %e, "upload: catalog lookup failed");
            STORAGE
        })?;
    if spent {
        return Err(CONFLICT);
    }
    Ok(())
}

/// A token that does not verify for what the PUT sends: if it verifies
/// for the slot's recorded size and type, the PUT does not match its slot
/// (413/400/415); otherwise it is forged (403).
async fn explain_mismatch(
    service: &Service,
    token: &str,
    id: &str,
    path: &str,
    length: u64,
    content_type: Option<&str>,
) -> Refused {
    let id = id.to_owned();
    let Ok(Some(slot)) = service
        .catalog
        .run(move |conn| Catalog::get(conn, &id))
        .await
    else {
        return FORGED;
    };
    let slot_type = slot.content_type.clone().unwrap_or_default();
    // At the dawn of time nothing has expired: this checks the MAC only.
    if service
        .key
        .verify(token, path, slot.size, &slot_type, i64::MIN)
        .is_err()
    {
        return FORGED;
    }
    if length > slot.size {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "size_mismatch",
            "Content-Length is larger than the slot's size",
        )
    } else if length < slot.size {
        (
            StatusCode::BAD_REQUEST,
            "size_mismatch",
            "Content-Length is smaller than the slot's size",
        )
    } else if !slot_type.is_empty() && content_type.unwrap_or_default() != slot_type {
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "type_mismatch",
            "Content-Type differs from the slot's",
        )
    } else {
        FORGED
    }
}
