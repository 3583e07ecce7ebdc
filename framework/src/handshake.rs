//! The XEP-0114 handshake digest.

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// Computes the `<handshake/>` value: lowercase hex SHA-1 of the stream id
/// followed by the shared secret (XEP-0114 §3).
///
/// ```
/// // The stream id of XEP-0114 example 2, with the secret "secret".
/// assert_eq!(
///     satellite::handshake_digest("3BF96D32", "secret"),
///     "b09ea9b3b7f586be8a08d0a3dd7466f110aeb136",
/// );
/// ```
pub fn handshake_digest(stream_id: &str, secret: &str) -> String {
    let mut hasher = Sha1::new();
    hasher.update(stream_id.as_bytes());
    hasher.update(secret.as_bytes());
    hex(&hasher.finalize())
}

/// Checks a received digest against the expected one in constant time.
pub fn verify_handshake(stream_id: &str, secret: &str, received: &str) -> bool {
    let expected = handshake_digest(stream_id, secret);
    let received = received.trim().to_ascii_lowercase();
    expected.as_bytes().ct_eq(received.as_bytes()).into()
}

/// Lowercase hexadecimal encoding.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_known_sha1() {
        // SHA-1("abc"), FIPS 180 test vector, split between id and secret.
        assert_eq!(
            handshake_digest("a", "bc"),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    #[test]
    fn verify_accepts_uppercase_and_rejects_other() {
        let d = handshake_digest("id1", "s").to_uppercase();
        assert!(verify_handshake("id1", "s", &d));
        assert!(!verify_handshake("id1", "t", &d));
        assert!(!verify_handshake("id1", "s", ""));
    }
}
