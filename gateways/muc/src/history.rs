//! Discussion history (XEP-0045 §7.2.15): the last messages of a room,
//! sent to a joining occupant with `<delay/>`, as the join asks
//! (`maxchars`, `maxstanzas`, `seconds`, `since`).

use std::collections::VecDeque;

use satellite::Element;

use crate::stanza::{NS_DELAY, NS_MUC, el_attrs, set_attr};

/// One kept message: the reflected stanza (no `to`) with its `<delay/>`.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    stanza: Element,
    /// Unix seconds.
    at: i64,
    /// Serialized length, for `maxchars`.
    chars: usize,
}

/// A room's history.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    entries: VecDeque<Entry>,
}

/// What a join asked for (`<history/>` in its muc payload).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryRequest {
    /// Characters of XML at most.
    pub max_chars: Option<usize>,
    /// Messages at most.
    pub max_stanzas: Option<usize>,
    /// Only messages at or after this time (unix seconds; from `since`
    /// and `seconds`, the later of both).
    pub since: Option<i64>,
}

impl HistoryRequest {
    /// Reads `<x xmlns='http://jabber.org/protocol/muc'><history …/></x>`
    /// from a join presence; `now` resolves `seconds`.
    pub fn from_join(presence: &Element, now: i64) -> Self {
        let Some(h) = presence
            .get_child("x", NS_MUC)
            .and_then(|x| x.get_child("history", NS_MUC))
        else {
            return Self::default();
        };
        let num = |name: &str| h.attr(name).and_then(|v| v.trim().parse::<i64>().ok());
        let since = h
            .attr("since")
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s.trim()).ok())
            .map(|d| d.timestamp());
        let seconds = num("seconds").map(|s| now - s.max(0));
        Self {
            max_chars: num("maxchars").map(|n| n.max(0) as usize),
            max_stanzas: num("maxstanzas").map(|n| n.max(0) as usize),
            since: match (since, seconds) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            },
        }
    }

    /// Whether the join asked for nothing in particular.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// An XEP-0082 timestamp.
pub fn stamp(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl History {
    /// Keeps a reflected message (sent `from` the occupant, without `to`),
    /// dropping the oldest beyond `length`.
    pub fn push(&mut self, reflected: &Element, room_jid: &str, at: i64, length: usize) {
        if length == 0 {
            self.entries.clear();
            return;
        }
        let mut stanza = reflected.clone();
        stanza.append_child(el_attrs(
            "delay",
            NS_DELAY,
            &[("from", Some(room_jid)), ("stamp", Some(&stamp(at)))],
        ));
        let chars = String::from(&stanza).len();
        self.entries.push_back(Entry { stanza, at, chars });
        self.truncate(length);
    }

    /// Drops the oldest messages beyond `length`.
    pub fn truncate(&mut self, length: usize) {
        while self.entries.len() > length {
            self.entries.pop_front();
        }
    }

    /// How many messages are kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The messages for a join, oldest first, addressed `to` the session.
    /// `default_stanzas` applies when the join asked for nothing.
    pub fn for_join(&self, req: &HistoryRequest, default_stanzas: usize, to: &str) -> Vec<Element> {
        let max_stanzas = if req.is_default() {
            default_stanzas
        } else {
            req.max_stanzas.unwrap_or(usize::MAX)
        };
        let mut n = 0;
        let mut chars = 0;
        for e in self.entries.iter().rev() {
            if let Some(max) = req.max_chars {
                chars += e.chars + to.len();
                if chars > max {
                    break;
                }
            }
            if req.since.is_some_and(|since| e.at < since) || n + 1 > max_stanzas {
                break;
            }
            n += 1;
        }
        self.entries
            .iter()
            .skip(self.entries.len() - n)
            .map(|e| {
                let mut m = e.stanza.clone();
                set_attr(&mut m, "to", to);
                m
            })
            .collect()
    }
}

/// Whether a groupchat message belongs in history (XEP-0334 hints, a body,
/// an encrypted payload or a chat marker), as Prosody decides.
pub fn is_historic(message: &Element) -> bool {
    let has = |name: &str, ns: &str| message.has_child(name, ns);
    if has("no-store", "urn:xmpp:hints") || has("no-permanent-store", "urn:xmpp:hints") {
        return false;
    }
    has("store", "urn:xmpp:hints")
        || crate::stanza::has_child(message, "body")
        || has("encryption", "urn:xmpp:eme:0")
        || message
            .children()
            .any(|c| c.ns() == "urn:xmpp:chat-markers:0")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(i: usize) -> Element {
        format!("<message xmlns='jabber:component:accept' from='r@m/n' type='groupchat' id='{i}'><body>message {i}</body></message>")
            .parse()
            .expect("xml")
    }

    fn join(history: &str) -> Element {
        format!("<presence xmlns='jabber:component:accept'><x xmlns='http://jabber.org/protocol/muc'>{history}</x></presence>")
            .parse()
            .expect("xml")
    }

    fn filled() -> History {
        let mut h = History::default();
        for i in 0..10 {
            h.push(&msg(i), "r@m", 1000 + i as i64 * 10, 5);
        }
        h
    }

    #[test]
    fn keeps_the_last_length_messages_with_delay() {
        let h = filled();
        assert_eq!(h.len(), 5);
        let out = h.for_join(&HistoryRequest::default(), 20, "a@b/c");
        assert_eq!(out.len(), 5);
        assert_eq!(out[0].attr("id"), Some("5"));
        assert_eq!(out[0].attr("to"), Some("a@b/c"));
        let delay = out[0].get_child("delay", NS_DELAY).expect("delay");
        assert_eq!(delay.attr("from"), Some("r@m"));
        assert_eq!(delay.attr("stamp"), Some("1970-01-01T00:17:30Z"));
    }

    #[test]
    fn maxstanzas_seconds_since_maxchars() {
        let h = filled();
        let req = HistoryRequest::from_join(&join("<history maxstanzas='2'/>"), 2000);
        let out = h.for_join(&req, 20, "a@b/c");
        assert_eq!(
            out.iter().map(|m| m.attr("id")).collect::<Vec<_>>(),
            [Some("8"), Some("9")]
        );
        let req = HistoryRequest::from_join(&join("<history seconds='15'/>"), 1095);
        assert_eq!(h.for_join(&req, 20, "a@b/c").len(), 2);
        let req = HistoryRequest::from_join(&join("<history since='1970-01-01T00:17:50Z'/>"), 5000);
        assert_eq!(h.for_join(&req, 20, "a@b/c").len(), 3);
        let req = HistoryRequest::from_join(&join("<history maxchars='0'/>"), 0);
        assert!(h.for_join(&req, 20, "a@b/c").is_empty());
        // No <history/>: the room's default number.
        assert_eq!(h.for_join(&HistoryRequest::default(), 1, "a@b/c").len(), 1);
    }

    #[test]
    fn zero_length_keeps_nothing() {
        let mut h = filled();
        h.push(&msg(11), "r@m", 0, 0);
        assert!(h.is_empty());
    }

    #[test]
    fn historic_messages() {
        assert!(is_historic(&msg(1)));
        let subject: Element =
            "<message xmlns='jabber:component:accept'><subject>x</subject></message>"
                .parse()
                .expect("xml");
        assert!(!is_historic(&subject));
        let hinted: Element = "<message xmlns='jabber:component:accept'><body>x</body><no-store xmlns='urn:xmpp:hints'/></message>".parse().expect("xml");
        assert!(!is_historic(&hinted));
    }
}
