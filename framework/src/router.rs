//! Routing: which plugin gets a stanza, and what goes back when nobody does.

use std::collections::HashMap;
use std::sync::Arc;

use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::Jid;
use xmpp_parsers::message::{Message, MessageType};
use xmpp_parsers::minidom::Element;
use xmpp_parsers::presence::Presence;
use xmpp_parsers::stanza_error::StanzaError;

use crate::Context;
use crate::error::HandlerError;
use crate::plugin::{Flow, IqRequest, IqRoute, IqType, Plugin, Scope};
use crate::stream::{NS_COMPONENT, attr_name};

/// Two plugins claim the same IQ route.
#[derive(Debug, thiserror::Error)]
#[error("plugins `{first}` and `{second}` both claim {type_:?} IQs with <{name} xmlns='{ns}'/>")]
pub struct RouteConflict {
    /// The plugin registered first.
    pub first: &'static str,
    /// The plugin registered second.
    pub second: &'static str,
    /// The IQ type.
    pub type_: IqType,
    /// The payload namespace.
    pub ns: String,
    /// The payload element name.
    pub name: String,
}

type RouteKey = (IqType, String, String);

/// The plugins of a component and the IQ routes they own.
pub(crate) struct Router {
    plugins: Vec<Arc<dyn Plugin>>,
    routes: HashMap<RouteKey, Vec<(Scope, usize)>>,
    /// Fallback routes: (type, scope, plugin index).
    fallbacks: Vec<(IqType, Scope, usize)>,
    /// Plugins that take messages and presences as elements.
    raw: Vec<usize>,
}

impl Router {
    pub(crate) fn new(plugins: Vec<Arc<dyn Plugin>>) -> Result<Self, RouteConflict> {
        let mut routes: HashMap<RouteKey, Vec<(Scope, usize)>> = HashMap::new();
        let mut fallbacks: Vec<(IqType, Scope, usize)> = Vec::new();
        for (index, plugin) in plugins.iter().enumerate() {
            for route in plugin.iq_routes() {
                if route.is_fallback() {
                    if let Some((_, _, other)) = fallbacks
                        .iter()
                        .find(|(t, s, _)| *t == route.type_ && s.overlaps(route.scope))
                    {
                        return Err(RouteConflict {
                            first: plugins[*other].name(),
                            second: plugin.name(),
                            type_: route.type_,
                            ns: "*".to_owned(),
                            name: "*".to_owned(),
                        });
                    }
                    fallbacks.push((route.type_, route.scope, index));
                    continue;
                }
                let IqRoute {
                    type_,
                    ns,
                    name,
                    scope,
                } = route;
                let owners = routes.entry((type_, ns.clone(), name.clone())).or_default();
                if let Some((_, other)) = owners.iter().find(|(s, _)| s.overlaps(scope)) {
                    return Err(RouteConflict {
                        first: plugins[*other].name(),
                        second: plugin.name(),
                        type_,
                        ns,
                        name,
                    });
                }
                owners.push((scope, index));
            }
        }
        let raw = (0..plugins.len())
            .filter(|&i| plugins[i].raw_stanzas())
            .collect();
        Ok(Self {
            plugins,
            routes,
            fallbacks,
            raw,
        })
    }

    pub(crate) fn plugins(&self) -> &[Arc<dyn Plugin>] {
        &self.plugins
    }

    fn owner(&self, type_: IqType, payload: &Element, to_domain: bool) -> Option<&Arc<dyn Plugin>> {
        let key = (type_, payload.ns(), payload.name().to_owned());
        let specific = self
            .routes
            .get(&key)
            .and_then(|owners| owners.iter().find(|(scope, _)| scope.covers(to_domain)))
            .map(|(_, index)| *index);
        let index = specific.or_else(|| {
            self.fallbacks
                .iter()
                .find(|(t, scope, _)| *t == type_ && scope.covers(to_domain))
                .map(|(_, _, index)| *index)
        })?;
        Some(&self.plugins[index])
    }

    /// Handles one inbound element (already taken off the link).
    pub(crate) async fn handle(&self, cx: &Context, el: Element) {
        if !self.raw.is_empty()
            && el.ns() == NS_COMPONENT
            && matches!(el.name(), "message" | "presence")
        {
            for &i in &self.raw {
                let plugin = &self.plugins[i];
                match plugin.handle_stanza(cx, &el).await {
                    Flow::Continue => continue,
                    Flow::Handled => return,
                    Flow::Reject(error) => {
                        reject(cx, plugin.as_ref(), &el, error).await;
                        return;
                    }
                }
            }
        }
        match Inbound::classify(el) {
            Inbound::Request(request) => self.handle_request(cx, request).await,
            Inbound::Iq(iq) => self.handle_iq(cx, iq).await,
            Inbound::Message(m) => self.handle_message(cx, m).await,
            Inbound::Presence(p) => self.handle_presence(cx, p).await,
            Inbound::Invalid { reply, reason } => {
                cx.metrics().invalid.increment(1);
                tracing::warn!(%reason, "invalid stanza");
                if let Some(reply) = reply {
                    send(cx, reply).await;
                }
            }
            Inbound::Other(el) => {
                tracing::debug!(
                    name = el.name(),
                    ns = el.ns(),
                    "ignored a non-stanza element"
                );
            }
        }
    }

    async fn handle_iq(&self, cx: &Context, iq: Iq) {
        let (type_, from, to, id, payload) = match iq {
            Iq::Get {
                from,
                to,
                id,
                payload,
            } => (IqType::Get, from, to, id, payload),
            Iq::Set {
                from,
                to,
                id,
                payload,
            } => (IqType::Set, from, to, id, payload),
            // Replies to no request of the component's (an occupant's
            // client answering what a MUC relayed, or a late reply):
            // offered to plugins, never answered, so error loops cannot
            // start.
            other => {
                for plugin in &self.plugins {
                    if !plugin.handle_iq_response(cx, &other).await.is_continue() {
                        return;
                    }
                }
                tracing::debug!(id = other.id(), "dropped an unsolicited iq reply");
                return;
            }
        };
        let Some(from) = from else {
            tracing::warn!(id, "dropped an iq without a sender");
            return;
        };
        let to = to.unwrap_or_else(|| Jid::from(cx.jid().clone()));
        let request = IqRequest {
            from,
            to,
            id,
            type_,
            payload,
        };
        self.handle_request(cx, request).await;
    }

    /// Gives a `get`/`set` to its route's owner and sends the reply,
    /// built directly as an element (no typed round trip on the hot path).
    async fn handle_request(&self, cx: &Context, request: IqRequest) {
        let (from, to, id) = (request.from.clone(), request.to.clone(), request.id.clone());
        let to_domain = request.is_to_domain();
        let result = match self.owner(request.type_, &request.payload, to_domain) {
            Some(plugin) => {
                let result = plugin.handle_iq(cx, request).await;
                if let Err(HandlerError::Internal(e)) = &result {
                    tracing::error!(plugin = plugin.name(), error = %e, "iq handler failed");
                }
                result
            }
            None => Err(HandlerError::service_unavailable()),
        };
        let (type_, child) = match result {
            Err(HandlerError::Deferred) => return,
            Ok(payload) => ("result", payload),
            Err(e) => ("error", Some(Element::from(e.into_stanza_error()))),
        };
        let reply = Element::builder("iq", NS_COMPONENT)
            .attr(attr_name("type"), type_)
            .attr(attr_name("from"), to.as_str())
            .attr(attr_name("to"), from.as_str())
            .attr(attr_name("id"), id)
            .append_all(child)
            .build();
        send(cx, reply).await;
    }

    async fn handle_message(&self, cx: &Context, message: Message) {
        for plugin in &self.plugins {
            match plugin.handle_message(cx, &message).await {
                Flow::Continue => continue,
                Flow::Handled => return,
                Flow::Reject(error) => {
                    reject(cx, plugin.as_ref(), &Element::from(message), error).await;
                    return;
                }
            }
        }
        // Nobody took it: tell the sender rather than drop it silently
        // (RFC 6121 §8.5.2); never for errors, and not for groupchat or
        // headline messages, which expect no answer.
        if matches!(message.type_, MessageType::Chat | MessageType::Normal)
            && let Some(from) = message.from.clone()
        {
            let mut reply = Message::new_with_type(MessageType::Error, Some(from));
            reply.from = message.to.clone();
            reply.id = message.id.clone();
            reply.payloads.push(
                HandlerError::service_unavailable()
                    .into_stanza_error()
                    .into(),
            );
            send(cx, reply).await;
        }
    }

    async fn handle_presence(&self, cx: &Context, presence: Presence) {
        for plugin in &self.plugins {
            match plugin.handle_presence(cx, &presence).await {
                Flow::Continue => continue,
                Flow::Handled => return,
                Flow::Reject(error) => {
                    reject(cx, plugin.as_ref(), &Element::from(presence), error).await;
                    return;
                }
            }
        }
    }
}

/// Answers a message or presence a plugin rejected: an error stanza of the
/// same kind, from the address it was sent to (never for an error).
async fn reject(cx: &Context, plugin: &dyn Plugin, stanza: &Element, error: HandlerError) {
    if let HandlerError::Internal(e) = &error {
        tracing::error!(plugin = plugin.name(), error = %e, "{} handler failed", stanza.name());
    }
    if let Some(reply) = RawHeader::of(stanza).error_reply(error) {
        send(cx, reply).await;
    }
}

async fn send(cx: &Context, reply: impl Into<Element>) {
    if let Err(e) = cx.send(reply).await {
        tracing::warn!(error = %e, "could not queue a reply");
    }
}

/// An inbound element, typed.
pub(crate) enum Inbound {
    /// An iq `get`/`set` read straight off the element (the common case).
    Request(IqRequest),
    Iq(Iq),
    Message(Message),
    Presence(Presence),
    /// A stanza that does not parse; `reply` is the error to send back,
    /// when the stanza can be answered.
    Invalid {
        reply: Option<Element>,
        reason: String,
    },
    /// Anything that is not a stanza.
    Other(Element),
}

impl Inbound {
    pub(crate) fn classify(el: Element) -> Self {
        if el.ns() != NS_COMPONENT || !matches!(el.name(), "iq" | "message" | "presence") {
            return Inbound::Other(el);
        }
        let el = match el.name() {
            "iq" => match fast_request(el) {
                Ok(request) => return Inbound::Request(request),
                Err(el) => el,
            },
            _ => el,
        };
        let header = RawHeader::of(&el);
        let parsed = match el.name() {
            "iq" => Iq::try_from(el).map(Inbound::Iq),
            "message" => Message::try_from(el).map(Inbound::Message),
            _ => Presence::try_from(el).map(Inbound::Presence),
        };
        parsed.unwrap_or_else(|e| {
            let reason = format!(
                "<{}/> from {} (id {}): {e}",
                header.name,
                header.from.as_deref().unwrap_or("?"),
                header.id.as_deref().unwrap_or("none"),
            );
            Inbound::Invalid {
                reply: header.bad_request_reply(&e.to_string()),
                reason,
            }
        })
    }
}

/// An iq `get`/`set` whose attributes and single payload are plainly
/// valid, taken apart without converting the whole stanza to a typed `Iq`
/// and back (that conversion was a fifth of the component's CPU). Anything
/// unusual goes back (`Err`) to the full typed parse, which also words the
/// `bad-request` for what is wrong.
fn fast_request(mut el: Element) -> Result<IqRequest, Element> {
    let type_ = match el.attr("type") {
        Some("get") => IqType::Get,
        Some("set") => IqType::Set,
        _ => return Err(el),
    };
    let jid = |value: Option<&str>| value.and_then(|v| Jid::new(v).ok());
    let (Some(from), Some(to), Some(id)) = (
        jid(el.attr("from")),
        jid(el.attr("to")),
        el.attr("id").filter(|id| !id.is_empty()).map(str::to_owned),
    ) else {
        return Err(el);
    };
    let mut children = el.children();
    let (Some(first), None) = (children.next(), children.next()) else {
        return Err(el);
    };
    let (name, ns) = (first.name().to_owned(), first.ns());
    if el.texts().any(|t| !t.trim().is_empty()) {
        return Err(el);
    }
    match el.remove_child(&name, ns.as_str()) {
        Some(payload) => Ok(IqRequest {
            from,
            to,
            id,
            type_,
            payload,
        }),
        None => Err(el),
    }
}

/// The addressing attributes of a stanza that failed to parse, kept so it
/// can still be answered.
pub(crate) struct RawHeader {
    name: String,
    from: Option<String>,
    to: Option<String>,
    id: Option<String>,
    type_: Option<String>,
}

impl RawHeader {
    pub(crate) fn of(el: &Element) -> Self {
        let attr = |name: &str| el.attr(name).map(str::to_owned);
        Self {
            name: el.name().to_owned(),
            from: attr("from"),
            to: attr("to"),
            id: attr("id"),
            type_: attr("type"),
        }
    }

    /// A `bad-request` error stanza of the same kind, or `None` when the
    /// stanza is an error itself (never answered) or names no sender.
    fn bad_request_reply(&self, text: &str) -> Option<Element> {
        self.error_reply(HandlerError::bad_request(text))
    }

    /// An error stanza of the same kind answering this one, or `None` when
    /// the stanza must not be answered: an error itself, a result, or one
    /// without a sender.
    pub(crate) fn error_reply(&self, error: HandlerError) -> Option<Element> {
        if matches!(self.type_.as_deref(), Some("error") | Some("result")) {
            return None;
        }
        let to = self.from.as_deref()?;
        // An unparsable `from` cannot be addressed either.
        Jid::new(to).ok()?;
        let error: StanzaError = error.into_stanza_error();
        let mut reply = Element::builder(&self.name, NS_COMPONENT)
            .attr(attr_name("type"), "error")
            .attr(attr_name("to"), to)
            .append(Element::from(error));
        if let Some(from) = self.to.as_deref().filter(|t| Jid::new(t).is_ok()) {
            reply = reply.attr(attr_name("from"), from);
        }
        if let Some(id) = &self.id {
            reply = reply.attr(attr_name("id"), id.as_str());
        }
        Some(reply.build())
    }
}

/// Entry points for the fuzz targets in `fuzz/` (not an API): the
/// router's handling of arbitrary elements, with the invariants it keeps.
#[doc(hidden)]
pub mod fuzzing {
    use xmpp_parsers::iq::{Iq, IqPayload};
    use xmpp_parsers::minidom::Element;

    use super::{Inbound, NS_COMPONENT, RawHeader, fast_request};
    use crate::error::HandlerError;
    use crate::plugin::IqType;

    /// Classifies `el` as the link does, and checks that the fast path
    /// agrees with the typed parse: an iq the fast path takes apart must
    /// parse as a typed `Iq` with the same sender, recipient, id, type and
    /// payload, and one it declines comes back unchanged. Panics when they
    /// disagree.
    pub fn classify(el: Element) {
        // What classify hands to the fast path.
        if el.name() == "iq" && el.ns() == NS_COMPONENT {
            match fast_request(el.clone()) {
                Ok(fast) => {
                    let typed = Iq::try_from(el.clone()).unwrap_or_else(|e| {
                        panic!("fast path took an iq the typed parse refuses ({e}): {el:?}")
                    });
                    let (header, payload) = typed.split();
                    assert_eq!(header.from.as_ref(), Some(&fast.from), "from of {el:?}");
                    assert_eq!(header.to.as_ref(), Some(&fast.to), "to of {el:?}");
                    assert_eq!(header.id, fast.id, "id of {el:?}");
                    match (payload, fast.type_) {
                        (IqPayload::Get(p), IqType::Get) | (IqPayload::Set(p), IqType::Set) => {
                            assert_eq!(p, fast.payload, "payload of {el:?}")
                        }
                        (_, fast) => panic!("the typed parse disagrees on {fast:?} for {el:?}"),
                    }
                }
                Err(back) => assert_eq!(back, el, "a declined iq must come back unchanged"),
            }
        }
        let _ = Inbound::classify(el);
    }

    /// The error reply the router would send for `el`, checked: never
    /// for an error or a result (no loops), always to the sender, of the
    /// same kind, with the same id, and itself never answered.
    pub fn error_reply(el: &Element, error: HandlerError) -> Option<Element> {
        let reply = RawHeader::of(el).error_reply(error)?;
        assert!(
            !matches!(el.attr("type"), Some("error" | "result")),
            "answered an error or result: {el:?}"
        );
        assert_eq!(reply.name(), el.name());
        assert_eq!(reply.attr("type"), Some("error"));
        assert_eq!(reply.attr("to"), el.attr("from"));
        assert_eq!(reply.attr("id"), el.attr("id"));
        assert!(
            RawHeader::of(&reply)
                .error_reply(HandlerError::bad_request("loop"))
                .is_none(),
            "an error reply would be answered again: {reply:?}"
        );
        Some(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> Element {
        xml.parse().expect("test xml")
    }

    #[test]
    fn invalid_message_type_gets_bad_request() {
        let el = parse(
            "<message xmlns='jabber:component:accept' from='a@b/c' to='x.b' id='m1' type='shout'/>",
        );
        let Inbound::Invalid {
            reply: Some(reply), ..
        } = Inbound::classify(el)
        else {
            panic!("expected an invalid stanza with a reply");
        };
        assert_eq!(reply.name(), "message");
        assert_eq!(reply.attr("type"), Some("error"));
        assert_eq!(reply.attr("to"), Some("a@b/c"));
        assert_eq!(reply.attr("from"), Some("x.b"));
        assert_eq!(reply.attr("id"), Some("m1"));
        let error = reply.get_child("error", NS_COMPONENT).expect("error child");
        assert!(error.has_child("bad-request", "urn:ietf:params:xml:ns:xmpp-stanzas"));
    }

    #[test]
    fn iq_without_id_is_answered_without_id() {
        let el = parse(
            "<iq xmlns='jabber:component:accept' from='a@b/c' to='x.b' type='get'><ping xmlns='urn:xmpp:ping'/></iq>",
        );
        let Inbound::Invalid {
            reply: Some(reply), ..
        } = Inbound::classify(el)
        else {
            panic!("expected an invalid stanza with a reply");
        };
        assert_eq!(reply.attr("id"), None);
        assert_eq!(reply.attr("type"), Some("error"));
    }

    #[test]
    fn invalid_error_stanza_is_never_answered() {
        let el = parse("<iq xmlns='jabber:component:accept' from='a@b/c' to='x.b' type='error'/>");
        assert!(matches!(
            Inbound::classify(el),
            Inbound::Invalid { reply: None, .. }
        ));
    }

    #[test]
    fn invalid_stanza_without_sender_is_not_answered() {
        let el = parse("<presence xmlns='jabber:component:accept' to='x.b' type='bogus'/>");
        assert!(matches!(
            Inbound::classify(el),
            Inbound::Invalid { reply: None, .. }
        ));
    }

    #[test]
    fn non_stanzas_are_other() {
        let el = parse("<features xmlns='http://etherx.jabber.org/streams'/>");
        assert!(matches!(Inbound::classify(el), Inbound::Other(_)));
    }

    struct Owner(&'static str, Vec<IqRoute>);

    #[async_trait::async_trait]
    impl Plugin for Owner {
        fn name(&self) -> &'static str {
            self.0
        }
        fn iq_routes(&self) -> Vec<IqRoute> {
            self.1.clone()
        }
    }

    #[test]
    fn duplicate_route_is_a_build_error() {
        let a = Arc::new(Owner("a", vec![IqRoute::get("urn:x", "q")]));
        let b = Arc::new(Owner("b", vec![IqRoute::get("urn:x", "q")]));
        let err = Router::new(vec![a, b]).err().expect("conflict");
        assert_eq!((err.first, err.second), ("a", "b"));
    }

    #[test]
    fn disjoint_scopes_do_not_conflict() {
        let a = Arc::new(Owner(
            "a",
            vec![IqRoute::get("urn:x", "q").scope(Scope::Domain)],
        ));
        let b = Arc::new(Owner(
            "b",
            vec![IqRoute::get("urn:x", "q").scope(Scope::Entities)],
        ));
        let set = Arc::new(Owner("c", vec![IqRoute::set("urn:x", "q")]));
        let router = Router::new(vec![a, b, set]).expect("no conflict");
        let payload = parse("<q xmlns='urn:x'/>");
        assert_eq!(
            router.owner(IqType::Get, &payload, true).map(|p| p.name()),
            Some("a")
        );
        assert_eq!(
            router.owner(IqType::Get, &payload, false).map(|p| p.name()),
            Some("b")
        );
        assert_eq!(
            router.owner(IqType::Set, &payload, false).map(|p| p.name()),
            Some("c")
        );
    }

    #[test]
    fn plain_requests_skip_the_typed_parse_and_odd_ones_do_not() {
        let iq = |inner: &str, attrs: &str| {
            parse(&format!(
                "<iq xmlns='jabber:component:accept' {attrs}>{inner}</iq>"
            ))
        };
        let plain = "type='get' id='1' from='a@b/c' to='svc.test'";
        let request = fast_request(iq("<q xmlns='urn:x'/>", plain)).expect("fast");
        assert_eq!(
            (request.id.as_str(), request.type_, request.payload.name()),
            ("1", IqType::Get, "q")
        );
        assert_eq!(request.from.as_str(), "a@b/c");
        for (inner, attrs) in [
            ("<q xmlns='urn:x'/><r xmlns='urn:x'/>", plain),
            ("", plain),
            ("text<q xmlns='urn:x'/>", plain),
            (
                "<q xmlns='urn:x'/>",
                "type='get' from='a@b/c' to='svc.test'",
            ),
            (
                "<q xmlns='urn:x'/>",
                "type='get' id='1' from='@@' to='svc.test'",
            ),
            ("<q xmlns='urn:x'/>", "type='get' id='1' to='svc.test'"),
            (
                "<q xmlns='urn:x'/>",
                "type='result' id='1' from='a@b' to='svc.test'",
            ),
        ] {
            let el = iq(inner, attrs);
            assert_eq!(fast_request(el.clone()).err(), Some(el), "{inner} {attrs}");
        }
    }
}
