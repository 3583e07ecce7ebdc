//! Small builders for the stanzas the room engine sends: elements with
//! attributes, text children, error replies. Stanzas are plain
//! [`Element`]s in the component namespace, so one built message can be
//! cloned per recipient with only `to` changed.

use satellite::Element;
use satellite::minidom::rxml::{Namespace, NcName};

/// The namespace of stanzas on a component link (XEP-0114).
pub const NS_STANZA: &str = "jabber:component:accept";
/// XEP-0045 join payload.
pub const NS_MUC: &str = "http://jabber.org/protocol/muc";
/// XEP-0045 occupant payload.
pub const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
/// XEP-0045 moderator/admin queries.
pub const NS_MUC_ADMIN: &str = "http://jabber.org/protocol/muc#admin";
/// XEP-0045 owner queries.
pub const NS_MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";
/// XEP-0004 data forms.
pub const NS_DATA: &str = "jabber:x:data";
/// XEP-0030 disco#info.
pub const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// XEP-0030 disco#items.
pub const NS_DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
/// XEP-0203 delayed delivery.
pub const NS_DELAY: &str = "urn:xmpp:delay";
/// RFC 6120 stanza error conditions.
pub const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
/// XEP-0077 in-band registration (nick registration, §7.10).
pub const NS_REGISTER: &str = "jabber:iq:register";
/// XEP-0059 result set management.
pub const NS_RSM: &str = "http://jabber.org/protocol/rsm";
/// XEP-0249 direct invitations (added to mediated ones for old clients).
pub const NS_CONFERENCE: &str = "jabber:x:conference";

/// An attribute name; every name used here is a valid XML name.
fn attr_name(name: &'static str) -> NcName {
    NcName::try_from(name).unwrap_or_else(|_| {
        // Unreachable with the literals used in this crate.
        NcName::try_from("invalid").unwrap_or_else(|_| unreachable!())
    })
}

/// Sets (or replaces) an unnamespaced attribute.
pub fn set_attr(el: &mut Element, name: &'static str, value: impl Into<String>) {
    el.set_attr(Namespace::NONE, attr_name(name), value.into());
}

/// Removes an unnamespaced attribute.
pub fn remove_attr(el: &mut Element, name: &str) {
    el.attrs_mut().remove(&Namespace::NONE, name);
}

/// An empty element.
pub fn el(name: &str, ns: &str) -> Element {
    Element::bare(name, ns)
}

/// An element with attributes (pairs whose value is `None` are left out).
pub fn el_attrs(name: &str, ns: &str, attrs: &[(&'static str, Option<&str>)]) -> Element {
    let mut e = Element::bare(name, ns);
    for (k, v) in attrs {
        if let Some(v) = v {
            set_attr(&mut e, k, *v);
        }
    }
    e
}

/// An element holding text.
pub fn text_el(name: &str, ns: &str, text: &str) -> Element {
    let mut e = Element::bare(name, ns);
    if !text.is_empty() {
        e.append_text(text);
    }
    e
}

/// A stanza (`message`, `presence`, `iq`) with `from`, `to` and `type`.
pub fn stanza(kind: &str, from: &str, to: &str, type_: Option<&str>) -> Element {
    el_attrs(
        kind,
        NS_STANZA,
        &[("from", Some(from)), ("to", Some(to)), ("type", type_)],
    )
}

/// A `<status code='…'/>` of muc#user.
pub fn status(code: u16) -> Element {
    let mut s = el("status", NS_MUC_USER);
    set_attr(&mut s, "code", code.to_string());
    s
}

/// The text of a child in the stanza's own namespace (`body`, `subject`,
/// `status`…), if present.
pub fn child_text(stanza: &Element, name: &str) -> Option<String> {
    stanza
        .children()
        .find(|c| c.name() == name && c.ns() == stanza.ns())
        .map(Element::text)
}

/// Whether the stanza has a child of that name in its own namespace.
pub fn has_child(stanza: &Element, name: &str) -> bool {
    stanza
        .children()
        .any(|c| c.name() == name && c.ns() == stanza.ns())
}

/// A stanza error: what the sender is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// `auth`, `cancel`, `modify`, `wait`.
    pub type_: &'static str,
    /// The RFC 6120 condition (`forbidden`, `not-allowed`…).
    pub condition: &'static str,
    /// Human-readable text, if any.
    pub text: Option<String>,
}

impl Error {
    /// An error with a type and condition.
    pub fn new(type_: &'static str, condition: &'static str) -> Self {
        Self {
            type_,
            condition,
            text: None,
        }
    }

    /// The same with a text.
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    /// The `<error/>` element, with `by` if given.
    pub fn to_element(&self, by: Option<&str>) -> Element {
        let mut e = el_attrs(
            "error",
            NS_STANZA,
            &[("type", Some(self.type_)), ("by", by)],
        );
        e.append_child(el(self.condition, NS_STANZAS));
        if let Some(text) = &self.text {
            e.append_child(text_el("text", NS_STANZAS, text));
        }
        e
    }

    /// The error reply to `stanza` (same kind, `from` and `to` swapped, same
    /// id), or `None` when `stanza` is itself an error (never answered).
    pub fn reply_to(&self, stanza: &Element, by: Option<&str>) -> Option<Element> {
        if stanza.attr("type") == Some("error") {
            return None;
        }
        let mut reply = el_attrs(
            stanza.name(),
            NS_STANZA,
            &[
                ("from", stanza.attr("to")),
                ("to", stanza.attr("from")),
                ("id", stanza.attr("id")),
                ("type", Some("error")),
            ],
        );
        reply.append_child(self.to_element(by));
        Some(reply)
    }
}

/// The condition and text of an error stanza, if it carries one.
pub fn error_condition(stanza: &Element) -> Option<(String, Option<String>)> {
    let error = stanza.children().find(|c| c.name() == "error")?;
    let condition = error
        .children()
        .find(|c| c.ns() == NS_STANZAS && c.name() != "text")?
        .name()
        .to_owned();
    let text = error
        .children()
        .find(|c| c.ns() == NS_STANZAS && c.name() == "text")
        .map(Element::text);
    Some((condition, text))
}

/// Copies `stanza` without its muc and muc#user payloads (what a room
/// strips from presences and private messages it relays).
pub fn without_muc_payloads(stanza: &Element) -> Element {
    let mut out = el(stanza.name(), &stanza.ns());
    for (ns, name, value) in stanza.attrs().iter().map(|((n, k), v)| (n, k, v)) {
        out.set_attr(ns.clone(), name.clone(), value.clone());
    }
    for node in stanza.nodes() {
        if let Some(child) = node.as_element()
            && (child.ns() == NS_MUC || child.ns() == NS_MUC_USER)
        {
            continue;
        }
        out.append_node(node.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_reply_swaps_addresses_and_never_answers_errors() {
        let m: Element = "<message xmlns='jabber:component:accept' from='a@b/c' to='r@muc.b' id='1' type='groupchat'><body>x</body></message>"
            .parse()
            .expect("xml");
        let e = Error::new("auth", "forbidden").with_text("no");
        let reply = e.reply_to(&m, Some("r@muc.b")).expect("reply");
        assert_eq!(reply.attr("to"), Some("a@b/c"));
        assert_eq!(reply.attr("from"), Some("r@muc.b"));
        assert_eq!(reply.attr("id"), Some("1"));
        assert_eq!(reply.attr("type"), Some("error"));
        let err = reply.get_child("error", NS_STANZA).expect("error");
        assert_eq!(err.attr("by"), Some("r@muc.b"));
        assert!(err.has_child("forbidden", NS_STANZAS));
        assert!(e.reply_to(&reply, None).is_none());
        assert_eq!(
            error_condition(&reply),
            Some(("forbidden".to_owned(), Some("no".to_owned())))
        );
    }

    #[test]
    fn strips_muc_payloads() {
        let p: Element = "<presence xmlns='jabber:component:accept' from='a@b/c'><show>away</show><x xmlns='http://jabber.org/protocol/muc'/><x xmlns='vcard-temp:x:update'/></presence>"
            .parse()
            .expect("xml");
        let s = without_muc_payloads(&p);
        assert_eq!(s.attr("from"), Some("a@b/c"));
        assert!(!s.has_child("x", NS_MUC));
        assert!(s.has_child("x", "vcard-temp:x:update"));
        assert_eq!(child_text(&s, "show").as_deref(), Some("away"));
    }
}
