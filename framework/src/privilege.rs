//! XEP-0356 (Privileged Entity): what the server lets this component do
//! on behalf of its users, and the stanzas that use it.
//!
//! Right after the handshake a server that grants privileges (Prosody
//! with prosody-modules' mod_privilege, ejabberd with mod_privilege) sends
//! the component a message from its own domain carrying `<privilege/>`.
//! The link takes that message before routing (only from the server's
//! domain), keeps the permissions for the connection and forgets them on
//! every reconnect. Plugins read them with [`Context::privileges`], wait
//! for them with [`Context::wait_privileges`] (they arrive after
//! `on_connected`), and use them:
//! - `message = "outgoing"`: [`Context::send_as_server`] (or
//!   [`Privileges::wrap_message`] for a batch) sends a message whose
//!   `from` is the server or one of its users;
//! - `presence = "managed_entity"` (or `"roster"`): the presences of the
//!   server's users arrive at the component (`Plugin::handle_presence`);
//! - `roster = "get"`/`"set"`/`"both"`: [`roster_get`]/[`roster_set`];
//! - `iq` (v2): [`Privileges::wrap_iq`] sends an IQ as a user.
//!
//! [`Context::privileges`]: crate::Context::privileges
//! [`Context::wait_privileges`]: crate::Context::wait_privileges
//! [`Context::send_as_server`]: crate::Context::send_as_server

use std::sync::Arc;

use tokio::sync::watch;
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::{BareJid, Jid};
use xmpp_parsers::message::Message;
use xmpp_parsers::minidom::Element;

use crate::stream::{NS_COMPONENT, attr_name};

/// XEP-0356 version 2 (Prosody's mod_privilege, ejabberd ≥ 23.10).
pub const NS_PRIVILEGE_2: &str = "urn:xmpp:privilege:2";
/// XEP-0356 version 1 (older servers).
pub const NS_PRIVILEGE_1: &str = "urn:xmpp:privilege:1";
/// XEP-0297 forwarding.
pub const NS_FORWARD: &str = "urn:xmpp:forward:0";
/// The client namespace a forwarded stanza is written in.
pub const NS_CLIENT: &str = "jabber:client";
/// Rosters (RFC 6121).
pub const NS_ROSTER: &str = "jabber:iq:roster";

/// Roster access (`<perm access="roster"/>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RosterAccess {
    /// No access.
    #[default]
    None,
    /// Read users' rosters.
    Get,
    /// Change users' rosters.
    Set,
    /// Both.
    Both,
}

impl RosterAccess {
    /// Whether rosters may be read.
    pub fn can_get(self) -> bool {
        matches!(self, Self::Get | Self::Both)
    }
    /// Whether rosters may be changed.
    pub fn can_set(self) -> bool {
        matches!(self, Self::Set | Self::Both)
    }
}

/// Presence access (`<perm access="presence"/>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PresenceAccess {
    /// No presences.
    #[default]
    None,
    /// Every presence of the server's users.
    ManagedEntity,
    /// Those, plus the presences of the users' contacts.
    Roster,
}

/// One namespace of the IQ permission (v2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IqNamespace {
    /// The payload namespace.
    pub ns: String,
    /// `get` allowed.
    pub get: bool,
    /// `set` allowed.
    pub set: bool,
}

/// What the server granted this component on this connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Privileges {
    /// The server domain that granted them.
    pub server: BareJid,
    /// The namespace the server spoke ([`NS_PRIVILEGE_2`] or [`NS_PRIVILEGE_1`]).
    pub ns: String,
    /// Roster access.
    pub roster: RosterAccess,
    /// Whether messages may be sent as the server or its users.
    pub message_outgoing: bool,
    /// Presence access.
    pub presence: PresenceAccess,
    /// IQ namespaces that may be used on behalf of users (v2).
    pub iq: Vec<IqNamespace>,
}

impl Privileges {
    /// Reads a `<privilege/>` element sent by `server`; `None` when it is
    /// not one.
    pub fn parse(server: BareJid, el: &Element) -> Option<Self> {
        let ns = [NS_PRIVILEGE_2, NS_PRIVILEGE_1]
            .into_iter()
            .find(|ns| el.is("privilege", *ns))?;
        let mut privileges = Privileges {
            server,
            ns: ns.to_owned(),
            roster: RosterAccess::None,
            message_outgoing: false,
            presence: PresenceAccess::None,
            iq: Vec::new(),
        };
        for perm in el.children().filter(|c| c.is("perm", ns)) {
            let type_ = perm.attr("type").unwrap_or("none");
            match perm.attr("access") {
                Some("roster") => {
                    privileges.roster = match type_ {
                        "get" => RosterAccess::Get,
                        "set" => RosterAccess::Set,
                        "both" => RosterAccess::Both,
                        _ => RosterAccess::None,
                    }
                }
                Some("message") => privileges.message_outgoing = type_ == "outgoing",
                Some("presence") => {
                    privileges.presence = match type_ {
                        "managed_entity" => PresenceAccess::ManagedEntity,
                        "roster" => PresenceAccess::Roster,
                        _ => PresenceAccess::None,
                    }
                }
                Some("iq") => {
                    for n in perm.children().filter(|c| c.is("namespace", ns)) {
                        let Some(payload_ns) = n.attr("ns") else {
                            continue;
                        };
                        let t = n.attr("type").unwrap_or("none");
                        privileges.iq.push(IqNamespace {
                            ns: payload_ns.to_owned(),
                            get: matches!(t, "get" | "both"),
                            set: matches!(t, "set" | "both"),
                        });
                    }
                }
                _ => {}
            }
        }
        Some(privileges)
    }

    /// Whether users' presences reach the component.
    pub fn receives_presences(&self) -> bool {
        self.presence != PresenceAccess::None
    }

    /// Wraps `message` (whose `from` is the server or a bare JID of one of
    /// its users; the server's domain when absent) for sending as that
    /// entity: `<message to=server><privilege><forwarded><message/>`. The
    /// result goes out through [`Context::send`](crate::Context::send) or
    /// `send_many`; the server refuses it unless `message_outgoing`.
    pub fn wrap_message(&self, message: Message, component: &BareJid) -> Element {
        let mut inner = Element::from(message);
        if inner.attr("from").is_none() {
            crate::stream::set_attr(&mut inner, "from", self.server.as_str());
        }
        let inner = into_namespace(inner, NS_COMPONENT, NS_CLIENT);
        Element::builder("message", NS_COMPONENT)
            .attr(attr_name("from"), component.as_str())
            .attr(attr_name("to"), self.server.as_str())
            .append(
                Element::builder("privilege", self.ns.as_str())
                    .append(Element::builder("forwarded", NS_FORWARD).append(inner)),
            )
            .build()
    }

    /// Wraps an IQ to send on behalf of `user` (a bare JID of the server):
    /// `<iq to=user><privileged_iq><iq/></privileged_iq>` (XEP-0356 v2
    /// IQ permission). Send it with [`Context::request`](crate::Context::request);
    /// [`unwrap_iq_reply`] reads the answer.
    pub fn wrap_iq(&self, user: &BareJid, inner: Iq) -> Iq {
        let type_ = match &inner {
            Iq::Set { .. } => "set",
            _ => "get",
        };
        let mut inner = Element::from(inner);
        crate::stream::set_attr(&mut inner, "from", user.as_str());
        let inner = into_namespace(inner, NS_COMPONENT, NS_CLIENT);
        let payload = Element::builder("privileged_iq", self.ns.as_str())
            .append(inner)
            .build();
        request(type_ == "set", user, payload)
    }
}

/// The IQ a wrapped request's reply forwards (`<privilege><forwarded><iq/>`).
pub fn unwrap_iq_reply(payload: &Element) -> Option<Element> {
    if !payload.is("privilege", NS_PRIVILEGE_2) && !payload.is("privilege", NS_PRIVILEGE_1) {
        return None;
    }
    let forwarded = payload.get_child("forwarded", NS_FORWARD)?;
    forwarded.children().find(|c| c.name() == "iq").cloned()
}

/// A roster get for `user` (roster permission `get`): send with
/// [`Context::request`](crate::Context::request); the reply's payload is
/// the user's `<query xmlns='jabber:iq:roster'/>`.
pub fn roster_get(user: &BareJid) -> Iq {
    request(false, user, Element::builder("query", NS_ROSTER).build())
}

/// A roster set for `user` (roster permission `set`): `items` are
/// `<item xmlns='jabber:iq:roster'/>` elements.
pub fn roster_set(user: &BareJid, items: Vec<Element>) -> Iq {
    let query = Element::builder("query", NS_ROSTER)
        .append_all(items)
        .build();
    request(true, user, query)
}

/// An IQ request to `user` (its id is set when it is sent).
fn request(set: bool, user: &BareJid, payload: Element) -> Iq {
    let (from, to, id) = (None, Some(Jid::from(user.clone())), String::new());
    if set {
        Iq::Set {
            from,
            to,
            id,
            payload,
        }
    } else {
        Iq::Get {
            from,
            to,
            id,
            payload,
        }
    }
}

/// The element with `from` namespace replaced by `to`, recursively (a
/// stanza built in the component namespace, forwarded as a client one).
fn into_namespace(el: Element, from: &str, to: &str) -> Element {
    let ns = el.ns();
    let ns = if ns == from { to.to_owned() } else { ns };
    let mut out = Element::bare(el.name(), ns.clone());
    *out.attrs_mut() = el.attrs().clone();
    let mut el = el;
    for node in el.take_nodes() {
        match node {
            xmpp_parsers::minidom::Node::Element(child) => {
                // Children in the parent's namespace follow it.
                out.append_child(into_namespace(child, from, to));
            }
            xmpp_parsers::minidom::Node::Text(text) => out.append_text_node(text),
        }
    }
    out
}

/// The domain of the server this component is attached to: the parent of
/// its JID (`announce.example.org` → `example.org`; `x.localhost` →
/// `localhost`), the same rule the link's ping uses. A top-level
/// component has none.
pub fn server_domain(component: &BareJid) -> Option<BareJid> {
    component
        .as_str()
        .split_once('.')
        .filter(|(_, parent)| parent.contains('.') || *parent == "localhost")
        .and_then(|(_, parent)| BareJid::new(parent).ok())
}

/// Where a connection stands on privileges.
#[derive(Debug, Clone)]
pub enum PrivilegeState {
    /// The link is down (or no connection yet).
    Disconnected,
    /// Connected, nothing granted so far (a server without mod_privilege
    /// never sends anything).
    Waiting,
    /// What the server granted on this connection.
    Granted(Arc<Privileges>),
}

/// The privileges of the current connection, shared by the link and the
/// plugins.
pub(crate) struct PrivilegeCell {
    tx: watch::Sender<PrivilegeState>,
}

impl PrivilegeCell {
    pub(crate) fn new() -> Self {
        Self {
            tx: watch::Sender::new(PrivilegeState::Disconnected),
        }
    }

    /// A new connection (or none): what the last one granted is forgotten.
    pub(crate) fn reset(&self, connected: bool) {
        self.tx.send_replace(if connected {
            PrivilegeState::Waiting
        } else {
            PrivilegeState::Disconnected
        });
    }

    pub(crate) fn grant(&self, privileges: Privileges) {
        self.tx
            .send_replace(PrivilegeState::Granted(Arc::new(privileges)));
    }

    pub(crate) fn current(&self) -> Option<Arc<Privileges>> {
        match &*self.tx.borrow() {
            PrivilegeState::Granted(p) => Some(Arc::clone(p)),
            _ => None,
        }
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<PrivilegeState> {
        self.tx.subscribe()
    }
}

/// If `el` is the server's `<privilege/>` advertisement to `component`,
/// reads it; `None` for anything else (which goes on to routing). Only the
/// server's domain may grant privileges.
pub(crate) fn advertisement(component: &BareJid, el: &Element) -> Option<Privileges> {
    if !el.is("message", NS_COMPONENT) || el.attr("type") == Some("error") {
        return None;
    }
    let child = el
        .get_child("privilege", NS_PRIVILEGE_2)
        .or_else(|| el.get_child("privilege", NS_PRIVILEGE_1))?;
    let server = server_domain(component)?;
    let from = el.attr("from")?;
    if from != server.as_str() {
        tracing::warn!(%from, "ignored a <privilege/> message not from the server");
        return None;
    }
    Privileges::parse(server, child)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> BareJid {
        BareJid::new(s).expect("jid")
    }

    #[test]
    fn reads_prosodys_advertisement() {
        let el: Element =
            "<message xmlns='jabber:component:accept' from='localhost' to='announce.localhost'>\
            <privilege xmlns='urn:xmpp:privilege:2'><perm access='roster' type='get'/>\
            <perm access='message' type='outgoing'/><perm access='presence' type='roster'/>\
            <perm access='iq'><namespace ns='urn:x' type='both'/></perm></privilege></message>"
                .parse()
                .expect("xml");
        let p = advertisement(&jid("announce.localhost"), &el).expect("privileges");
        assert_eq!(p.server.as_str(), "localhost");
        assert_eq!(p.roster, RosterAccess::Get);
        assert!(p.message_outgoing);
        assert_eq!(p.presence, PresenceAccess::Roster);
        assert_eq!(
            p.iq,
            vec![IqNamespace {
                ns: "urn:x".into(),
                get: true,
                set: true
            }]
        );
    }

    #[test]
    fn only_the_server_grants() {
        let el: Element = "<message xmlns='jabber:component:accept' from='mallory@localhost/x' to='announce.localhost'>\
            <privilege xmlns='urn:xmpp:privilege:1'><perm access='message' type='outgoing'/></privilege></message>"
            .parse()
            .expect("xml");
        assert!(advertisement(&jid("announce.localhost"), &el).is_none());
        let plain: Element =
            "<message xmlns='jabber:component:accept' from='localhost'><body>hi</body></message>"
                .parse()
                .expect("xml");
        assert!(advertisement(&jid("announce.localhost"), &plain).is_none());
    }

    #[test]
    fn wraps_a_message_as_the_server_in_the_client_namespace() {
        let el: Element =
            "<privilege xmlns='urn:xmpp:privilege:1'><perm access='message' type='outgoing'/></privilege>"
                .parse()
                .expect("xml");
        let p = Privileges::parse(jid("example.org"), &el).expect("privileges");
        let mut m = Message::new(Some(Jid::new("a@example.org/r").expect("jid")));
        m.bodies
            .insert(xmpp_parsers::message::Lang(String::new()), "hello".into());
        let wrapped = p.wrap_message(m, &jid("announce.example.org"));
        assert_eq!(wrapped.attr("to"), Some("example.org"));
        assert_eq!(wrapped.attr("from"), Some("announce.example.org"));
        let inner = wrapped
            .get_child("privilege", NS_PRIVILEGE_1)
            .and_then(|p| p.get_child("forwarded", NS_FORWARD))
            .and_then(|f| f.get_child("message", NS_CLIENT))
            .expect("inner message");
        assert_eq!(inner.attr("from"), Some("example.org"));
        assert_eq!(
            inner.get_child("body", NS_CLIENT).map(Element::text),
            Some("hello".into())
        );
    }

    #[test]
    fn server_domain_is_the_parent() {
        assert_eq!(
            server_domain(&jid("announce.example.org")).map(|j| j.to_string()),
            Some("example.org".into())
        );
        assert_eq!(
            server_domain(&jid("announce.localhost")).map(|j| j.to_string()),
            Some("localhost".into())
        );
        assert!(server_domain(&jid("example.org")).is_none());
    }
}
