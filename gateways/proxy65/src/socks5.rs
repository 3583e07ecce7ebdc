//! The server side of the RFC 1928 handshake, as XEP-0065 uses it.
//!
//! Written by hand on tokio alone: XEP-0065 needs a small subset (no
//! authentication, `CONNECT` with a domain-name address that is really a
//! 40-character hash, port 0), which is less code than adapting a general
//! SOCKS library. Every field is read with `read_exact`, so the greeting
//! and the request may arrive in one segment, or split anywhere across
//! many.

use std::fmt;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const VERSION: u8 = 5;
const NO_AUTH: u8 = 0;
const NO_ACCEPTABLE_METHOD: u8 = 0xff;
const CMD_CONNECT: u8 = 1;
const ATYP_DOMAIN: u8 = 3;
/// Length of DST.ADDR: hex SHA-1.
pub const HASH_LEN: usize = 40;

/// The stream's identity: lowercase hex SHA-1(SID ‖ requester ‖ target).
pub type Hash = String;

/// RFC 1928 reply codes (`REP`) this server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// `0x00` succeeded.
    Succeeded = 0,
    /// `0x01` general SOCKS server failure (limits, shutdown, duplicates).
    GeneralFailure = 1,
    /// `0x02` connection not allowed by ruleset (an address that is not a
    /// stream hash).
    NotAllowed = 2,
    /// `0x07` command not supported (anything but CONNECT).
    CommandNotSupported = 7,
    /// `0x08` address type not supported (anything but a domain name).
    AddressTypeNotSupported = 8,
}

/// Why a handshake failed.
#[derive(Debug)]
pub enum HandshakeError {
    /// The socket failed or closed mid-handshake.
    Io(std::io::Error),
    /// Not SOCKS version 5.
    Version(u8),
    /// The client does not offer "no authentication".
    NoAcceptableMethod,
    /// A request the proxy refuses; the failure reply was sent.
    Refused(Reply),
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "socket error: {e}"),
            Self::Version(v) => write!(f, "not SOCKS5 (version byte {v})"),
            Self::NoAcceptableMethod => f.write_str("no acceptable authentication method"),
            Self::Refused(r) => write!(f, "request refused ({r:?})"),
        }
    }
}

impl From<std::io::Error> for HandshakeError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// Reads the greeting, picks "no authentication", reads the CONNECT
/// request and returns its hash. The reply to the request is left to the
/// caller ([`reply`]), which knows whether the connection is accepted.
/// Malformed requests get their failure reply here.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) -> Result<Hash, HandshakeError> {
    let mut head = [0u8; 2];
    s.read_exact(&mut head).await?;
    if head[0] != VERSION {
        return Err(HandshakeError::Version(head[0]));
    }
    let mut methods = vec![0u8; usize::from(head[1])];
    s.read_exact(&mut methods).await?;
    if !methods.contains(&NO_AUTH) {
        s.write_all(&[VERSION, NO_ACCEPTABLE_METHOD]).await?;
        return Err(HandshakeError::NoAcceptableMethod);
    }
    s.write_all(&[VERSION, NO_AUTH]).await?;

    // VER CMD RSV ATYP
    let mut request = [0u8; 4];
    s.read_exact(&mut request).await?;
    if request[0] != VERSION {
        return Err(HandshakeError::Version(request[0]));
    }
    if request[3] != ATYP_DOMAIN {
        return refuse(s, Reply::AddressTypeNotSupported).await;
    }
    let mut len = [0u8; 1];
    s.read_exact(&mut len).await?;
    let mut addr = vec![0u8; usize::from(len[0])];
    s.read_exact(&mut addr).await?;
    // DST.PORT: XEP-0065 says 0; other values are accepted (nothing is
    // dialled, so the port carries no meaning).
    let mut port = [0u8; 2];
    s.read_exact(&mut port).await?;
    if request[1] != CMD_CONNECT {
        return refuse(s, Reply::CommandNotSupported).await;
    }
    match String::from_utf8(addr) {
        Ok(hash) if is_hash(&hash) => Ok(hash),
        _ => refuse(s, Reply::NotAllowed).await,
    }
}

/// Sends the reply to the CONNECT request: on success BND.ADDR echoes the
/// hash (as XEP-0065 §6.3.3 shows), on failure it is 0.0.0.0:0.
pub async fn reply<S: AsyncWrite + Unpin>(
    s: &mut S,
    rep: Reply,
    hash: &str,
) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(7 + HASH_LEN);
    if rep == Reply::Succeeded {
        out.extend_from_slice(&[VERSION, rep as u8, 0, ATYP_DOMAIN, HASH_LEN as u8]);
        out.extend_from_slice(hash.as_bytes());
        out.extend_from_slice(&[0, 0]);
    } else {
        out.extend_from_slice(&[VERSION, rep as u8, 0, 1, 0, 0, 0, 0, 0, 0]);
    }
    s.write_all(&out).await?;
    s.flush().await
}

async fn refuse<S: AsyncWrite + Unpin>(s: &mut S, rep: Reply) -> Result<Hash, HandshakeError> {
    reply(s, rep, "").await?;
    Err(HandshakeError::Refused(rep))
}

/// Whether `s` is a lowercase hex SHA-1. Clients that send uppercase are
/// refused rather than folded: the requester's hash is lowercase by the
/// XEP, so an uppercase one could never pair.
fn is_hash(s: &str) -> bool {
    s.len() == HASH_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// DST.ADDR for a stream: lowercase hex SHA-1(SID ‖ requester ‖ target).
pub fn stream_hash(sid: &str, requester: &str, target: &str) -> Hash {
    use sha1::{Digest, Sha1};
    let mut h = Sha1::new();
    h.update(sid.as_bytes());
    h.update(requester.as_bytes());
    h.update(target.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    fn request(hash: &str) -> Vec<u8> {
        let mut r = vec![5, 1, 0, 5, 1, 0, 3, hash.len() as u8];
        r.extend_from_slice(hash.as_bytes());
        r.extend_from_slice(&[0, 0]);
        r
    }

    const H: &str = "0123456789abcdef0123456789abcdef01234567";

    #[tokio::test]
    async fn greeting_and_request_in_one_segment() {
        let (mut client, mut server) = duplex(1024);
        client.write_all(&request(H)).await.expect("write");
        let hash = accept(&mut server).await.expect("handshake");
        assert_eq!(hash, H);
        reply(&mut server, Reply::Succeeded, &hash)
            .await
            .expect("reply");
        let mut got = [0u8; 2 + 5 + 40 + 2];
        client.read_exact(&mut got).await.expect("read");
        assert_eq!(&got[..7], &[5, 0, 5, 0, 0, 3, 40]);
        assert_eq!(&got[7..47], H.as_bytes());
    }

    #[tokio::test]
    async fn request_split_byte_by_byte() {
        let (mut client, mut server) = duplex(1024);
        let task =
            tokio::spawn(async move { accept(&mut server).await.map_err(|e| e.to_string()) });
        for b in request(H) {
            client.write_all(&[b]).await.expect("write");
            tokio::task::yield_now().await;
        }
        assert_eq!(task.await.expect("join").expect("handshake"), H);
    }

    #[tokio::test]
    async fn refusals() {
        // No "no authentication" method offered.
        let (mut client, mut server) = duplex(1024);
        client.write_all(&[5, 1, 2]).await.expect("write");
        assert!(matches!(
            accept(&mut server).await,
            Err(HandshakeError::NoAcceptableMethod)
        ));
        let mut got = [0u8; 2];
        client.read_exact(&mut got).await.expect("read");
        assert_eq!(got, [5, 0xff]);

        // An IPv4 address instead of a hash.
        let (mut client, mut server) = duplex(1024);
        client
            .write_all(&[5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 80])
            .await
            .expect("write");
        assert!(matches!(
            accept(&mut server).await,
            Err(HandshakeError::Refused(Reply::AddressTypeNotSupported))
        ));
        let mut got = [0u8; 12];
        client.read_exact(&mut got).await.expect("read");
        assert_eq!(&got[2..4], &[5, 8]);

        // Not a lowercase hex SHA-1.
        let (mut client, mut server) = duplex(1024);
        client
            .write_all(&request(&H.to_uppercase()))
            .await
            .expect("write");
        assert!(matches!(
            accept(&mut server).await,
            Err(HandshakeError::Refused(Reply::NotAllowed))
        ));

        // SOCKS4.
        let (mut client, mut server) = duplex(1024);
        client.write_all(&[4, 1, 0, 80]).await.expect("write");
        assert!(matches!(
            accept(&mut server).await,
            Err(HandshakeError::Version(4))
        ));
    }

    #[test]
    fn hash_matches_a_known_value() {
        // `printf %s sida@x/rb@x/r | sha1sum`
        assert_eq!(
            stream_hash("sid", "a@x/r", "b@x/r"),
            "db425e7b70c078b985fa1cdc4f5464c3e91dd83c"
        );
        assert_eq!(
            stream_hash("", "", ""),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
    }
}
