//! # satellite-fuzz-checks
//!
//! The checks satellite's fuzz targets run. Each function takes arbitrary
//! bytes, feeds them to one parser or state machine of the project and
//! asserts what must hold whatever the input (a panic is a finding). The
//! libFuzzer targets in `fuzz/fuzz_targets/` are one line each around
//! these; the tests of this crate replay every seed in `fuzz/corpus/` on
//! stable Rust, so `cargo test --workspace` runs every target briefly.
//!
//! | target | what it feeds | what must hold |
//! |---|---|---|
//! | `router_classify` | an element | the router's fast path agrees with the typed parse |
//! | `error_reply` | an element | never answers an error or result; the reply is never answered |
//! | `adhoc_sessions` | operations | the session table keeps its limits and bindings |
//! | `socks5_handshake` | bytes, split anywhere | the same outcome however the bytes are split |
//! | `upload_range` | a `Range` header and a length | ranges lie inside the file |
//! | `upload_path` | a request path | slot ids are valid, file names one segment |
//! | `slot_request` | a `<request/>` | a sanitised, bounded file name; a lowercase type |
//! | `token_verify` | a grant and a mutation | any change to the grant or token fails |
//! | `filename_sanitise` | a file name | the result is safe and sanitising it again keeps it |
//!
//! Run them long with `scripts/fuzz.sh` (nightly and cargo-fuzz).

#![forbid(unsafe_code)]

pub mod adhoc;
pub mod router;
pub mod socks5;
pub mod upload;

/// A target: its name and its check.
pub type Target = (&'static str, fn(&[u8]));

/// The targets by name, as `fuzz/fuzz_targets/<name>.rs` and
/// `fuzz/corpus/<name>/` call them.
pub const TARGETS: [Target; 9] = [
    ("router_classify", router::classify),
    ("error_reply", router::error_reply),
    ("adhoc_sessions", adhoc::sessions),
    ("socks5_handshake", socks5::handshake),
    ("upload_range", upload::range),
    ("upload_path", upload::path),
    ("slot_request", upload::slot_request),
    ("token_verify", upload::token),
    ("filename_sanitise", upload::filename),
];

/// Splits `data` at the first `sep` byte (the rest is empty without one).
pub fn split(data: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == sep) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}
