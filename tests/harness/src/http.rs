//! A small HTTP/1.1 client over plain TCP, for the upload tests and
//! benchmarks: it does exactly what it is told (no retries, no redirects,
//! no header fix-ups), can stream a large body without holding it, stop a
//! body halfway, and count or hash a response body without keeping it.
//! One request per connection (`Connection: close`), as file-sharing
//! clients mostly do.

use std::fmt;
use std::io;
use std::time::Duration;

use sha1::{Digest as _, Sha1};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A request body.
#[derive(Debug, Clone, Copy)]
pub enum Body<'a> {
    /// No body (and no `Content-Length` unless given as a header).
    None,
    /// These bytes, with their `Content-Length`.
    Bytes(&'a [u8]),
    /// `len` bytes made of `chunk` repeated, streamed.
    Repeat {
        /// The pattern.
        chunk: &'a [u8],
        /// Total length.
        len: u64,
    },
    /// Announces `len` bytes, sends `sent` of them, then closes the
    /// connection (an interrupted upload).
    Cut {
        /// Bytes announced in `Content-Length`.
        len: u64,
        /// Bytes actually sent.
        sent: &'a [u8],
    },
}

/// What to do with the response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Keep it in [`Response::body`].
    All,
    /// Count and SHA-1 it only (large downloads).
    Digest,
    /// Count it only (benchmarks: hashing would cost the client more than
    /// the transfer).
    Count,
}

/// A response.
#[derive(Clone, Default)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// The body, with [`Keep::All`].
    pub body: Vec<u8>,
    /// Body bytes received.
    pub body_len: u64,
    /// Lowercase hex SHA-1 of the body.
    pub sha1: String,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field(
                "body",
                &String::from_utf8_lossy(&self.body[..self.body.len().min(300)]),
            )
            .field("body_len", &self.body_len)
            .finish()
    }
}

impl Response {
    /// The first value of a header (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `(host:port, path?query)` of an `http://` URL.
pub fn split_url(url: &str) -> io::Result<(String, String)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| io::Error::other(format!("not an http:// URL: {url}")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    Ok((authority.to_owned(), path.to_owned()))
}

/// Sends one request to `url` and reads the response (within `timeout`).
/// `headers` are sent as given, after `Host` and `Connection: close`; a
/// `Content-Length` is added for bodies unless `headers` has one.
pub async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Body<'_>,
    keep: Keep,
    timeout: Duration,
) -> io::Result<Response> {
    tokio::time::timeout(timeout, exchange(method, url, headers, body, keep))
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{method} {url}: timed out"),
            )
        })?
}

async fn exchange(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Body<'_>,
    keep: Keep,
) -> io::Result<Response> {
    let (authority, path) = split_url(url)?;
    let mut tcp = TcpStream::connect(&authority).await?;
    tcp.set_nodelay(true)?;
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    let has_length = headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-length"));
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let length = match body {
        Body::None => None,
        Body::Bytes(b) => Some(b.len() as u64),
        Body::Repeat { len, .. } | Body::Cut { len, .. } => Some(len),
    };
    if let (Some(len), false) = (length, has_length) {
        head.push_str(&format!("Content-Length: {len}\r\n"));
    }
    head.push_str("\r\n");
    let expect_continue = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("expect") && v.eq_ignore_ascii_case("100-continue"));
    tcp.write_all(head.as_bytes()).await?;
    let mut pending = Vec::new();
    if expect_continue {
        // Send the body only after 100 Continue; a final status instead
        // means the server refused it unseen.
        let (response, start) = read_head(&mut tcp, &mut pending).await?;
        if response.status != 100 {
            return read_body(&mut tcp, response, &pending[start..], method, keep).await;
        }
        pending.drain(..start);
    }
    match body {
        Body::None => {}
        Body::Bytes(b) => tcp.write_all(b).await?,
        Body::Repeat { chunk, len } => {
            let mut left = len;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                tcp.write_all(&chunk[..n]).await?;
                left -= n as u64;
            }
        }
        Body::Cut { sent, .. } => {
            tcp.write_all(sent).await?;
            tcp.flush().await?;
            // Give the server a moment to take the bytes, then vanish.
            tokio::time::sleep(Duration::from_millis(100)).await;
            return Ok(Response::default());
        }
    }
    read_response(&mut tcp, pending, method, keep).await
}

/// Reads until `buf` holds a whole header block; returns the parsed head
/// and where the body starts in `buf`.
async fn read_head(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<(Response, usize)> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            return Ok((parse_head(&buf[..end])?, end + 4));
        }
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed before a response",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads a response, skipping interim 1xx ones; `buf` holds bytes already
/// read.
async fn read_response(
    tcp: &mut TcpStream,
    mut buf: Vec<u8>,
    method: &str,
    keep: Keep,
) -> io::Result<Response> {
    loop {
        let (response, start) = read_head(tcp, &mut buf).await?;
        if (100..200).contains(&response.status) {
            buf.drain(..start);
            continue;
        }
        return read_body(tcp, response, &buf[start..], method, keep).await;
    }
}

/// Reads the body of `response` (`Content-Length` bytes, or to the end),
/// starting with the bytes already read.
async fn read_body(
    tcp: &mut TcpStream,
    mut response: Response,
    already: &[u8],
    method: &str,
    keep: Keep,
) -> io::Result<Response> {
    let no_body = method == "HEAD" || matches!(response.status, 204 | 304);
    let expected: Option<u64> = if no_body {
        Some(0)
    } else {
        response
            .header("content-length")
            .and_then(|v| v.parse().ok())
    };
    let mut hasher = Sha1::new();
    let mut take = |bytes: &[u8], response: &mut Response| {
        response.body_len += bytes.len() as u64;
        if keep != Keep::Count {
            hasher.update(bytes);
        }
        if keep == Keep::All {
            response.body.extend_from_slice(bytes);
        }
    };
    take(already, &mut response);
    let mut chunk = vec![0u8; 256 * 1024];
    while expected.is_none_or(|e| response.body_len < e) {
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        take(&chunk[..n], &mut response);
    }
    response.sha1 = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(response)
}

fn parse_head(head: &[u8]) -> io::Result<Response> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line: {status_line}")))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(Response {
        status,
        headers,
        ..Response::default()
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Lowercase hex SHA-1 of `bytes`.
pub fn sha1_hex(bytes: &[u8]) -> String {
    Sha1::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One HTTP/1.1 connection kept open for several requests, as browsers
/// and aiohttp use them (keep-alive), and for tests that send a request in
/// pieces or nothing at all.
pub struct Connection {
    tcp: TcpStream,
    authority: String,
    /// Bytes read past the last response.
    pending: Vec<u8>,
}

impl Connection {
    /// Connects to the host of `url` (an `http://` URL, or `host:port`).
    pub async fn open(url: &str) -> io::Result<Self> {
        let authority = match split_url(url) {
            Ok((authority, _)) => authority,
            Err(_) => url.to_owned(),
        };
        let tcp = TcpStream::connect(&authority).await?;
        tcp.set_nodelay(true)?;
        Ok(Self {
            tcp,
            authority,
            pending: Vec::new(),
        })
    }

    /// Sends a request head for `url`'s path (no `Connection: close`);
    /// `headers` as given, plus `Content-Length: body_len` when `Some`
    /// and `headers` has none.
    pub async fn send_head(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body_len: Option<u64>,
    ) -> io::Result<()> {
        let path = split_url(url).map_or_else(|_| url.to_owned(), |(_, p)| p);
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.authority);
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let has_length = headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-length"));
        if let (Some(len), false) = (body_len, has_length) {
            head.push_str(&format!("Content-Length: {len}\r\n"));
        }
        head.push_str("\r\n");
        self.tcp.write_all(head.as_bytes()).await
    }

    /// Sends raw bytes (a body, or part of one).
    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.tcp.write_all(bytes).await
    }

    /// Reads the next response (skipping 1xx) within `timeout`.
    pub async fn response(&mut self, method: &str, timeout: Duration) -> io::Result<Response> {
        let buf = std::mem::take(&mut self.pending);
        tokio::time::timeout(
            timeout,
            read_response(&mut self.tcp, buf, method, Keep::All),
        )
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no response in time"))?
    }

    /// One whole request on this connection: head, body, response.
    pub async fn request(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout: Duration,
    ) -> io::Result<Response> {
        let len =
            (method == "PUT" || method == "POST" || !body.is_empty()).then_some(body.len() as u64);
        self.send_head(method, url, headers, len).await?;
        self.send(body).await?;
        self.response(method, timeout).await
    }

    /// Waits up to `timeout` for the server to close the connection
    /// (end of stream or reset), dropping anything it sends; whether it
    /// did.
    pub async fn closed_by_server(&mut self, timeout: Duration) -> bool {
        let mut scratch = [0u8; 4096];
        tokio::time::timeout(timeout, async {
            loop {
                match self.tcp.read(&mut scratch).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok()
    }
}
