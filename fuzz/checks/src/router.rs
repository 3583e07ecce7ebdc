//! The router: classification of raw stanzas and error replies.

use satellite::{Element, HandlerError};

/// Parses `data` as one XML element, if it is one.
fn element(data: &[u8]) -> Option<Element> {
    std::str::from_utf8(data).ok()?.parse().ok()
}

/// `router_classify`: the fast path for plain iq requests must agree with
/// the typed parse (see `satellite::fuzzing::classify`).
pub fn classify(data: &[u8]) {
    if let Some(el) = element(data) {
        satellite::fuzzing::classify(el);
    }
}

/// `error_reply`: the reply to any element keeps the no-loop rules (see
/// `satellite::fuzzing::error_reply`), for a few kinds of error.
pub fn error_reply(data: &[u8]) {
    let Some(el) = element(data) else {
        return;
    };
    for error in [
        HandlerError::bad_request("fuzz"),
        HandlerError::service_unavailable(),
        HandlerError::internal("not sent"),
    ] {
        satellite::fuzzing::error_reply(&el, error);
    }
}
