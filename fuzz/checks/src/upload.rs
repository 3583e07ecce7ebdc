//! Upload's parsers: `Range`, request paths, slot requests, file names,
//! and PUT tokens.

use satellite::Element;
use satellite::minidom::rxml::NcName;
use satellite_upload::http::{path as url, range as ranges};
use satellite_upload::mime;
use satellite_upload::request::{MAX_FILENAME, NS, SlotRequest, sanitise_filename};
use satellite_upload::slot::valid_id;
use satellite_upload::token::{Grant, SlotKey, TokenError};

use crate::split;

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

fn u64_at(data: &[u8]) -> (u64, &[u8]) {
    let n = data.len().min(8);
    let mut b = [0u8; 8];
    b[..n].copy_from_slice(&data[..n]);
    (u64::from_le_bytes(b), &data[n..])
}

/// `upload_range`: eight bytes of file length (small lengths are the
/// interesting ones, so mostly below 2^16), then a `Range` value. A served
/// range lies inside the file and is not empty; an empty file or several
/// ranges get the whole file.
pub fn range(data: &[u8]) {
    let (raw, rest) = u64_at(data);
    let len = if raw >> 63 == 1 { raw } else { raw % 65_536 };
    let Some(value) = text(rest) else {
        return;
    };
    match ranges::parse(value, len) {
        Some(Ok(r)) => {
            assert!(r.start < r.end && r.end <= len, "{value:?} of {len}: {r:?}");
            assert!(!value.contains(','));
        }
        Some(Err(())) => assert!(len > 0),
        None => {}
    }
    if len == 0 || value.contains(',') {
        assert_eq!(ranges::parse(value, len), None);
    }
}

/// `upload_path`: a request path names a valid slot id and a one-segment,
/// non-empty file name; the other path helpers take anything.
pub fn path(data: &[u8]) {
    let Some(path) = text(data) else {
        return;
    };
    if let Some((id, name)) = url::parse(path) {
        assert!(valid_id(&id), "{id:?}");
        assert!(!name.is_empty() && !name.contains('/'), "{name:?}");
    }
    let p = url::url_path(path);
    assert!(!p.contains(['?', '#']));
    let _ = url::relative_path(path, "https://upload.example.org/files/");
    let _ = url::relative_path(path, path);
    let _ = url::query_param(Some(path), "token");
}

/// `slot_request`: a first byte saying which attributes are present, then
/// file name, size and content type separated by NUL bytes. An accepted
/// request carries a safe file name and a lowercase MIME essence.
pub fn slot_request(data: &[u8]) {
    let Some((&present, rest)) = data.split_first() else {
        return;
    };
    let (filename, rest) = split(rest, 0);
    let (size, content_type) = split(rest, 0);
    let (Some(filename), Some(size), Some(content_type)) =
        (text(filename), text(size), text(content_type))
    else {
        return;
    };
    let mut el = Element::builder("request", NS);
    for (bit, name, value) in [
        (1, "filename", filename),
        (2, "size", size),
        (4, "content-type", content_type),
    ] {
        if present & bit != 0 {
            let Ok(name) = NcName::try_from(name) else {
                return;
            };
            el = el.attr(name, value);
        }
    }
    let Ok(request) = SlotRequest::parse(&el.build()) else {
        return;
    };
    check_name(&request.filename);
    assert_eq!(size.trim().parse::<u64>().ok(), Some(request.size));
    if let Some(t) = &request.content_type {
        assert_eq!(mime::essence(t).as_deref(), Some(t.as_str()));
        assert_eq!(*t, t.to_ascii_lowercase());
    }
}

/// `filename_sanitise`: any name either is refused or becomes a safe one.
pub fn filename(data: &[u8]) {
    if let Some(name) = text(data)
        && let Some(clean) = sanitise_filename(name)
    {
        check_name(&clean);
    }
}

/// What a sanitised file name must be: one non-empty path segment of at
/// most [`MAX_FILENAME`] bytes without control characters or trailing
/// white space, which sanitising again leaves as it is.
fn check_name(name: &str) {
    assert!(!name.is_empty() && name != "." && name != "..", "{name:?}");
    assert!(name.len() <= MAX_FILENAME, "{} bytes", name.len());
    assert!(!name.contains(['/', '\\']), "{name:?}");
    assert!(!name.chars().any(char::is_control), "{name:?}");
    assert_eq!(name.trim(), name, "white space around {name:?}");
    assert_eq!(
        sanitise_filename(name).as_deref(),
        Some(name),
        "sanitising {name:?} again"
    );
}

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

/// `token_verify`: a grant (size, expiry, path and content type without
/// NUL, as the service signs them) and a mutation. The signed token
/// verifies until its expiry; any change to the path, size, content type
/// or expiry fails, and so does any change to the token's bytes unless it
/// spells the same expiry and MAC.
pub fn token(data: &[u8]) {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let (size, rest) = u64_at(rest);
    let (expires, rest) = u64_at(rest);
    let expires = expires as i64;
    let (path, rest) = split(rest, 0);
    let (content_type, mutation) = split(rest, 0);
    let (Some(path), Some(content_type)) = (text(path), text(content_type)) else {
        return;
    };
    let Some(key) = SlotKey::new(KEY.to_vec()) else {
        return;
    };
    let grant = Grant {
        path,
        size,
        content_type,
        expires,
    };
    let token = key.sign(&grant);
    let verify = |token: &str, path: &str, size: u64, content_type: &str, now: i64| {
        key.verify(token, path, size, content_type, now)
    };
    assert_eq!(
        verify(&token, path, size, content_type, expires),
        Ok(expires)
    );
    if let Some(later) = expires.checked_add(1) {
        assert_eq!(
            verify(&token, path, size, content_type, later),
            Err(TokenError::Expired)
        );
    }
    let now = expires.saturating_sub(1);
    let m = |i: usize| mutation.get(i).copied().unwrap_or(1);
    match kind % 6 {
        0 => {
            // Another path: one byte inserted, or changed.
            let mut p = path.as_bytes().to_vec();
            let at = usize::from(m(0)) % (p.len() + 1);
            match p.get_mut(at) {
                Some(b) if m(1) != *b && m(1) != 0 => *b = m(1),
                _ => p.insert(at, m(1).max(1)),
            }
            if let Some(p) = text(&p) {
                assert!(
                    verify(&token, p, size, content_type, now).is_err(),
                    "path {p:?}"
                );
            }
        }
        1 => {
            let other = size ^ u64_at(mutation).0.max(1);
            assert!(
                verify(&token, path, other, content_type, now).is_err(),
                "size {other}"
            );
        }
        2 => {
            let mut t = content_type.to_owned();
            t.push(char::from(m(0).max(1) % 128).max('\u{1}'));
            assert!(verify(&token, path, size, &t, now).is_err(), "type {t:?}");
        }
        3 => {
            // The same MAC with another expiry.
            let other = expires ^ (u64_at(mutation).0.max(1) as i64);
            let (_, tag) = token.split_once('.').unwrap_or_default();
            let forged = format!("{other}.{tag}");
            assert!(
                verify(&forged, path, size, content_type, other.min(now)).is_err(),
                "expiry {other}"
            );
        }
        _ => {
            // Bytes of the token changed, removed or added.
            let mut t = token.clone().into_bytes();
            let at = usize::from(m(0)) % t.len();
            match kind % 6 {
                4 if t[at] != m(1) => t[at] = m(1),
                4 => t.push(m(1)),
                _ if m(1) & 1 == 0 => {
                    t.remove(at);
                }
                _ => t.insert(at, m(2)),
            }
            let Some(t) = text(&t) else {
                return;
            };
            if let Ok(got) = verify(t, path, size, content_type, now) {
                assert_eq!(got, expires, "{t:?} verified for another expiry");
                let tag = |s: &str| s.split_once('.').map(|(_, tag)| tag.to_owned());
                assert_eq!(tag(t), tag(&token), "{t:?} verified with another MAC");
            }
        }
    }
}
