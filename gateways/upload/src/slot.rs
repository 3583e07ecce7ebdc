//! Issuing a slot: policy (who, how large, which type, quotas, disk), the
//! catalog record, and the signed URLs.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use satellite::HandlerError;
use satellite::jid::Jid;
use satellite::xmpp::http_upload::{Get, Header, HeaderName, Put, SlotResult};

use crate::catalog::{Catalog, Entry, Quotas};
use crate::request::{Refusal, SlotRequest};
use crate::service::{Service, now};
use crate::token::Grant;

/// What is percent-encoded in a URL path segment: all but RFC 3986's
/// unreserved characters.
pub const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The content type assumed when a slot request names none (as Prosody
/// does), for the `allowed_types` check.
pub const DEFAULT_TYPE: &str = "application/octet-stream";

/// An issued slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// The slot id.
    pub id: String,
    /// Where the file will be served.
    pub get_url: String,
    /// Where to PUT it (the token in the query).
    pub put_url: String,
    /// The PUT authorisation, also offered as an `Authorization` header.
    pub token: String,
}

impl From<Slot> for SlotResult {
    fn from(slot: Slot) -> Self {
        SlotResult {
            put: Put {
                url: slot.put_url,
                headers: vec![Header {
                    name: HeaderName::Authorization,
                    value: format!("Bearer {}", slot.token),
                }],
            },
            get: Get { url: slot.get_url },
        }
    }
}

/// A fresh slot id: 128 random bits, base64url (22 characters).
pub fn new_id() -> String {
    use base64::Engine as _;
    let bytes: [u8; 16] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether a URL path segment can be a slot id (ours, or the UUIDs of
/// mod_http_upload_external).
pub fn valid_id(id: &str) -> bool {
    (8..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The URL of a file: `<public_url><id>/<file name>`.
pub fn file_url(public_url: &str, id: &str, filename: &str) -> String {
    format!(
        "{public_url}{}/{}",
        utf8_percent_encode(id, SEGMENT),
        utf8_percent_encode(filename, SEGMENT)
    )
}

/// Checks a request from `from` against the policy and the quotas, records
/// the slot and signs its URLs.
pub async fn issue(service: &Service, from: &Jid, req: SlotRequest) -> Result<Slot, HandlerError> {
    let s = &service.settings;
    let refuse = |r: Refusal| -> HandlerError {
        service.metrics.refused(r.reason());
        tracing::debug!(%from, reason = r.reason(), "upload: slot refused");
        r.into()
    };
    if !s.allow.allows(from) {
        return Err(refuse(Refusal::Access));
    }
    if req.size > s.max_file_size {
        return Err(refuse(Refusal::TooLarge(s.max_file_size)));
    }
    if !s.type_allowed(req.content_type.as_deref().unwrap_or(DEFAULT_TYPE)) {
        return Err(refuse(Refusal::Type));
    }
    if let Some(free) = service.storage.free_space()
        && free.saturating_sub(req.size) < s.min_free_space
    {
        tracing::warn!(
            free,
            min_free_space = s.min_free_space,
            "upload: the disk is nearly full; refusing slots"
        );
        return Err(refuse(Refusal::Disk));
    }
    let created = now();
    let entry = Entry {
        id: new_id(),
        owner: Some(from.to_bare().to_string()),
        filename: req.filename,
        size: req.size,
        content_type: req.content_type,
        created,
        slot_expires: created + s.slot_lifetime.as_secs().max(1) as i64,
        completed: None,
    };
    let quotas = Quotas {
        daily: s.daily_quota,
        user: s.user_quota,
        global: s.global_quota,
        expire_after: s.expire_after.map(|d| d.as_secs() as i64),
        open_slots: s.max_open_slots,
    };
    let record = entry.clone();
    let reserved = service
        .catalog
        .run(move |conn| Catalog::reserve(conn, &record, &quotas, created))
        .await
        .map_err(HandlerError::internal)?;
    reserved.map_err(refuse)?;

    let path = format!("{}/{}", entry.id, entry.filename);
    let token = service.key.sign(&Grant {
        path: &path,
        size: entry.size,
        content_type: entry.content_type.as_deref().unwrap_or_default(),
        expires: entry.slot_expires,
    });
    let get_url = file_url(&s.public_url, &entry.id, &entry.filename);
    let put_url = format!("{get_url}?token={token}");
    service.metrics.slot();
    tracing::info!(%from, id = %entry.id, size = entry.size, "upload: slot issued");
    Ok(Slot {
        id: entry.id,
        get_url,
        put_url,
        token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_encode_names() {
        assert_eq!(
            file_url("https://u.example/", "AbC-_9", "très cool?.jpg"),
            "https://u.example/AbC-_9/tr%C3%A8s%20cool%3F.jpg"
        );
        let id = new_id();
        assert_eq!(id.len(), 22);
        assert!(valid_id(&id));
        assert!(valid_id("6ed3b1b4-4f2b-4e2c-9f5e-0c5b1e9a3d21"));
        assert!(!valid_id("../etc"));
        assert!(!valid_id("short"));
    }
}
