//! Stateless PUT authorisation: HMAC-SHA256 over what a slot allows.
//!
//! A slot's PUT URL carries `?token=<expiry>.<mac>` (and the slot also
//! lists it as an `Authorization: Bearer` header, which XEP-0363 clients
//! send): the MAC covers the path (`<slot id>/<file name>`), the size, the
//! content type and the expiry, so the HTTP side needs no state to check a
//! PUT. Slots survive a restart, and instances that share the key and the
//! storage serve each other's slots.
//!
//! The same HTTP server also checks the tokens of Prosody's
//! mod_http_upload_external (`?v=` and `?v2=`, HMAC-SHA256 hex; ejabberd's
//! `external_secret` uses `v`), so a server's own slot logic can store
//! files here. All comparisons are constant-time (`hmac`'s `verify_slice`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Domain separation: a MAC made for something else never verifies here.
const CONTEXT: &[u8] = b"satellite-upload-slot-v1";

/// What a slot authorises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant<'a> {
    /// `<slot id>/<file name>`, decoded.
    pub path: &'a str,
    /// Exact size of the PUT body.
    pub size: u64,
    /// Content type of the slot; empty when the client gave none.
    pub content_type: &'a str,
    /// Unix seconds after which a PUT may no longer start.
    pub expires: i64,
}

/// Why a token does not authorise a PUT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not of the token's shape.
    Malformed,
    /// The MAC does not match: forged, or for another path, size or type.
    Forged,
    /// Valid, but past its expiry.
    Expired,
}

/// The slot signing key.
#[derive(Clone)]
pub struct SlotKey(Vec<u8>);

impl std::fmt::Debug for SlotKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SlotKey(<redacted>)")
    }
}

impl SlotKey {
    /// A key from its bytes (at least 16).
    pub fn new(bytes: Vec<u8>) -> Option<Self> {
        (bytes.len() >= 16).then_some(Self(bytes))
    }

    fn mac(&self, g: &Grant<'_>) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        for part in [
            CONTEXT,
            g.path.as_bytes(),
            g.size.to_string().as_bytes(),
            g.content_type.as_bytes(),
            g.expires.to_string().as_bytes(),
        ] {
            mac.update(part);
            mac.update(b"\0");
        }
        mac
    }

    /// The token for a grant: `<expiry>.<base64url MAC>`.
    pub fn sign(&self, g: &Grant<'_>) -> String {
        let tag = self.mac(g).finalize().into_bytes();
        format!("{}.{}", g.expires, URL_SAFE_NO_PAD.encode(tag))
    }

    /// Checks a token against what the PUT asks for; `now` in unix
    /// seconds. Returns the token's expiry.
    pub fn verify(
        &self,
        token: &str,
        path: &str,
        size: u64,
        content_type: &str,
        now: i64,
    ) -> Result<i64, TokenError> {
        let (expires, tag) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let expires: i64 = expires.parse().map_err(|_| TokenError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TokenError::Malformed)?;
        let grant = Grant {
            path,
            size,
            content_type,
            expires,
        };
        self.mac(&grant)
            .verify_slice(&tag)
            .map_err(|_| TokenError::Forged)?;
        if now > expires {
            return Err(TokenError::Expired);
        }
        Ok(expires)
    }
}

/// The versions of mod_http_upload_external's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExternalVersion {
    /// `?v=`: HMAC over `<path> <size>`.
    V1,
    /// `?v2=`: HMAC over `<path>\0<size>\0<content type>`.
    V2,
}

/// Checks a mod_http_upload_external token (lowercase or uppercase hex).
pub fn verify_external(
    secret: &[u8],
    version: ExternalVersion,
    hex_mac: &str,
    path: &str,
    size: u64,
    content_type: &str,
) -> Result<(), TokenError> {
    let tag = decode_hex(hex_mac).ok_or(TokenError::Malformed)?;
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    match version {
        ExternalVersion::V1 => mac.update(format!("{path} {size}").as_bytes()),
        ExternalVersion::V2 => mac.update(format!("{path}\0{size}\0{content_type}").as_bytes()),
    }
    mac.verify_slice(&tag).map_err(|_| TokenError::Forged)
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SlotKey {
        SlotKey::new(b"0123456789abcdef0123456789abcdef".to_vec()).expect("key")
    }

    fn grant(expires: i64) -> Grant<'static> {
        Grant {
            path: "AbC/cat.jpg",
            size: 1234,
            content_type: "image/jpeg",
            expires,
        }
    }

    #[test]
    fn signs_and_verifies() {
        let t = key().sign(&grant(1000));
        assert!(t.starts_with("1000."));
        assert_eq!(
            key().verify(&t, "AbC/cat.jpg", 1234, "image/jpeg", 999),
            Ok(1000)
        );
        assert_eq!(
            key().verify(&t, "AbC/cat.jpg", 1234, "image/jpeg", 1001),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn any_change_is_a_forgery() {
        let k = key();
        let t = k.sign(&grant(1000));
        assert_eq!(
            k.verify(&t, "AbC/dog.jpg", 1234, "image/jpeg", 0),
            Err(TokenError::Forged)
        );
        assert_eq!(
            k.verify(&t, "AbC/cat.jpg", 1235, "image/jpeg", 0),
            Err(TokenError::Forged)
        );
        assert_eq!(
            k.verify(&t, "AbC/cat.jpg", 1234, "text/html", 0),
            Err(TokenError::Forged)
        );
        let later = t.replacen("1000.", "99999.", 1);
        assert_eq!(
            k.verify(&later, "AbC/cat.jpg", 1234, "image/jpeg", 0),
            Err(TokenError::Forged)
        );
        let other = SlotKey::new(vec![7; 32]).expect("key");
        assert_eq!(
            other.verify(&t, "AbC/cat.jpg", 1234, "image/jpeg", 0),
            Err(TokenError::Forged)
        );
        assert_eq!(
            k.verify("nonsense", "AbC/cat.jpg", 1234, "image/jpeg", 0),
            Err(TokenError::Malformed)
        );
        assert!(SlotKey::new(vec![1; 8]).is_none());
    }

    #[test]
    fn external_tokens_match_prosodys_module() {
        // Computed independently: printf 'abc/a b.txt\0005\000text/plain' |
        // openssl dgst -sha256 -hmac secret (v2), and 'abc/a b.txt 5' (v1).
        let v2 = "0dafff35cac18f46bf8b044ca6bfc3c3e48e075c7fe5b318677525740ed7c90b";
        let v1 = "7c5a2dbcb502db346539c26a0d9952d164101874218fe2fa7267c75172f377b0";
        let check = |version, mac: &str, size, ty| {
            verify_external(b"secret", version, mac, "abc/a b.txt", size, ty)
        };
        assert_eq!(check(ExternalVersion::V2, v2, 5, "text/plain"), Ok(()));
        assert_eq!(
            check(ExternalVersion::V2, &v2.to_uppercase(), 5, "text/plain"),
            Ok(())
        );
        assert_eq!(check(ExternalVersion::V1, v1, 5, "ignored"), Ok(()));
        assert_eq!(
            check(ExternalVersion::V2, v2, 6, "text/plain"),
            Err(TokenError::Forged)
        );
        assert_eq!(
            check(ExternalVersion::V2, v2, 5, "text/html"),
            Err(TokenError::Forged)
        );
        assert_eq!(
            check(ExternalVersion::V1, v2, 5, ""),
            Err(TokenError::Forged)
        );
        assert_eq!(
            check(ExternalVersion::V1, "zz", 5, ""),
            Err(TokenError::Malformed)
        );
    }
}
