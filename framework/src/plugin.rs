//! The plugin trait: what a gateway implements.

use std::sync::Arc;

use async_trait::async_trait;
use xmpp_parsers::data_forms::DataForm;
use xmpp_parsers::disco::{DiscoInfoResult, Identity, Item};
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::Jid;
use xmpp_parsers::message::Message;
use xmpp_parsers::minidom::Element;
use xmpp_parsers::presence::Presence;
use xmpp_parsers::rsm::{SetQuery, SetResult};

use crate::Context;
use crate::adhoc::AdhocCommand;
use crate::error::{BoxError, HandlerError};

/// The reply to an IQ request: a payload (or an empty result), or an error
/// that is sent back as a stanza error.
pub type IqResult = Result<Option<Element>, HandlerError>;

/// Whether a message or presence was taken care of.
#[derive(Debug)]
#[non_exhaustive]
pub enum Flow {
    /// Offer the stanza to the next plugin.
    Continue,
    /// Stop here; no later plugin sees the stanza.
    Handled,
    /// Stop here and answer the sender with this error: the framework
    /// sends a `<message type='error'/>` or `<presence type='error'/>`
    /// (matching the stanza) from the address it was sent to
    /// (`room@muc` or `room@muc/nick`), with its id. An error stanza is
    /// never answered. [`HandlerError::Internal`] is logged and answered
    /// as `internal-server-error`.
    Reject(HandlerError),
}

impl Flow {
    /// Whether later plugins should see the stanza.
    pub fn is_continue(&self) -> bool {
        matches!(self, Flow::Continue)
    }
}

impl From<HandlerError> for Flow {
    fn from(e: HandlerError) -> Self {
        Flow::Reject(e)
    }
}

/// The type of an IQ request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IqType {
    /// `type='get'`
    Get,
    /// `type='set'`
    Set,
}

/// Which addresses of the component an IQ route covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The component's own JID (`upload.example.org`).
    Domain,
    /// Any other address at the component (`room@rooms.example.org`,
    /// `room@rooms.example.org/nick`, `rooms.example.org/resource`).
    Entities,
    /// Both.
    Any,
}

impl Scope {
    pub(crate) fn overlaps(self, other: Scope) -> bool {
        self == Scope::Any || other == Scope::Any || self == other
    }

    pub(crate) fn covers(self, to_domain: bool) -> bool {
        match self {
            Scope::Any => true,
            Scope::Domain => to_domain,
            Scope::Entities => !to_domain,
        }
    }
}

/// An IQ a plugin owns: requests of this type whose payload is the element
/// `{ns}name`, addressed within `scope`; or, for a fallback route
/// ([`IqRoute::fallback`]), every request of this type within `scope` that
/// no other route owns.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IqRoute {
    /// `get` or `set`.
    pub type_: IqType,
    /// Namespace of the payload element (empty for a fallback route).
    pub ns: String,
    /// Name of the payload element (empty for a fallback route).
    pub name: String,
    /// Addresses covered.
    pub scope: Scope,
}

impl IqRoute {
    /// A `get` route for `{ns}name`, on every address of the component.
    pub fn get(ns: &str, name: &str) -> Self {
        Self::new(IqType::Get, ns, name)
    }

    /// A `set` route for `{ns}name`, on every address of the component.
    pub fn set(ns: &str, name: &str) -> Self {
        Self::new(IqType::Set, ns, name)
    }

    fn new(type_: IqType, ns: &str, name: &str) -> Self {
        Self {
            type_,
            ns: ns.to_owned(),
            name: name.to_owned(),
            scope: Scope::Any,
        }
    }

    /// Every `get` or `set` within the route's scope that no other route
    /// owns: how a service with addressable entities takes IQs to them
    /// whatever their payload (a MUC passes an occupant's vCard or version
    /// request on to the occupant). Usually narrowed with
    /// `.scope(Scope::Entities)`. At most one fallback per type and
    /// address.
    ///
    /// ```
    /// use satellite::{IqRoute, IqType, Scope};
    /// let route = IqRoute::fallback(IqType::Get).scope(Scope::Entities);
    /// assert!(route.is_fallback());
    /// ```
    pub fn fallback(type_: IqType) -> Self {
        Self::new(type_, "", "")
    }

    /// Whether this is a fallback route.
    pub fn is_fallback(&self) -> bool {
        self.ns.is_empty() && self.name.is_empty()
    }

    /// Narrows the route to some addresses.
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }
}

/// An IQ `get` or `set` addressed to the component, for its route's owner.
#[derive(Debug, Clone)]
pub struct IqRequest {
    /// The requester.
    pub from: Jid,
    /// The address at the component it was sent to.
    pub to: Jid,
    /// The stanza id (the framework copies it to the reply).
    pub id: String,
    /// `get` or `set`.
    pub type_: IqType,
    /// The payload element.
    pub payload: Element,
}

impl IqRequest {
    /// Parses the payload into an xmpp-parsers (or xso) type; a payload that
    /// does not parse becomes a `bad-request` reply through `?`.
    pub fn parse<T>(&self) -> Result<T, HandlerError>
    where
        T: TryFrom<Element, Error = xmpp_parsers::FromElementError>,
    {
        Ok(T::try_from(self.payload.clone())?)
    }

    /// Whether the request is addressed to the component's own JID.
    pub fn is_to_domain(&self) -> bool {
        self.to.node().is_none() && self.to.resource().is_none()
    }
}

/// A disco#items request, as offered to [`Plugin::disco_items`].
#[derive(Debug, Clone)]
pub struct ItemsQuery {
    /// The requester.
    pub from: Jid,
    /// The address asked about.
    pub to: Jid,
    /// The node asked about, if any.
    pub node: Option<String>,
    /// XEP-0059 paging, when the requester asked for a page.
    pub rsm: Option<SetQuery>,
}

/// What a plugin lists for a disco#items request.
#[derive(Debug, Clone, Default)]
pub struct DiscoItems {
    /// The items (of this page, when paged).
    pub items: Vec<Item>,
    /// Set when the plugin paged its list: the page's first/last ids and
    /// the total count. The reply carries the first plugin's paging.
    pub rsm: Option<SetResult>,
}

impl From<Vec<Item>> for DiscoItems {
    fn from(items: Vec<Item>) -> Self {
        Self { items, rsm: None }
    }
}

/// What a plugin contributes to the component's disco#info (XEP-0030),
/// including XEP-0128 extended forms.
#[derive(Debug, Clone, Default)]
pub struct Disco {
    /// Identities (category/type/name).
    pub identities: Vec<Identity>,
    /// Feature vars.
    pub features: Vec<String>,
    /// Extended information forms (XEP-0128).
    pub forms: Vec<DataForm>,
}

impl Disco {
    /// Adds an identity.
    pub fn identity(mut self, category: &str, type_: &str, name: &str) -> Self {
        self.identities
            .push(Identity::new(category, type_, "en", name));
        self
    }

    /// Adds a feature.
    pub fn feature(mut self, var: &str) -> Self {
        self.features.push(var.to_owned());
        self
    }

    /// Adds an extended information form.
    pub fn form(mut self, form: DataForm) -> Self {
        self.forms.push(form);
        self
    }
}

/// A gateway, or one part of one.
///
/// Every hook has a default, so a plugin implements only what it needs.
/// Plugins are stored as `Arc<dyn Plugin>`; state lives in the struct.
///
/// ```
/// use satellite::{async_trait, Context, Flow, Plugin};
/// use satellite::xmpp::message::Message;
///
/// struct Echo;
///
/// #[async_trait]
/// impl Plugin for Echo {
///     fn name(&self) -> &'static str { "echo" }
///     async fn handle_message(&self, cx: &Context, m: &Message) -> Flow {
///         if let Some(from) = &m.from {
///             let mut reply = m.clone();
///             reply.to = Some(from.clone());
///             reply.from = m.to.clone();
///             let _ = cx.send(reply).await;
///         }
///         Flow::Handled
///     }
/// }
/// ```
#[async_trait]
pub trait Plugin: Send + Sync + 'static {
    /// A short name, used in logs.
    fn name(&self) -> &'static str;

    /// Identities, features and forms for the component's disco#info.
    fn disco(&self) -> Disco {
        Disco::default()
    }

    /// IQ requests this plugin owns. Two plugins owning the same route is
    /// an error when the component is built.
    fn iq_routes(&self) -> Vec<IqRoute> {
        Vec::new()
    }

    /// Ad-hoc commands (XEP-0050) this plugin offers.
    fn commands(&self) -> Vec<Arc<dyn AdhocCommand>> {
        Vec::new()
    }

    /// disco#info of an address other than the component's own JID, or of
    /// a node. `None` if this plugin does not know it.
    async fn disco_info(
        &self,
        _cx: &Context,
        _from: &Jid,
        _to: &Jid,
        _node: Option<&str>,
    ) -> Option<DiscoInfoResult> {
        None
    }

    /// disco#items this plugin lists at an address (and node). A plugin
    /// with long lists (a MUC's public rooms) pages them by the query's
    /// XEP-0059 `rsm` and says so in [`DiscoItems::rsm`].
    async fn disco_items(&self, _cx: &Context, _query: &ItemsQuery) -> DiscoItems {
        DiscoItems::default()
    }

    /// Called once when the component starts, before it first connects:
    /// the place to bind listeners and open storage, so that a service's
    /// own side (an HTTP or SOCKS5 listener) runs while the server is
    /// unreachable. An error stops the component
    /// ([`LinkStatus::Failed`](crate::LinkStatus::Failed)) and makes
    /// `satellite run` exit with it.
    async fn on_start(&self, _cx: &Context) -> Result<(), BoxError> {
        Ok(())
    }

    /// Called after every successful handshake (also after a reconnect).
    async fn on_connected(&self, _cx: &Context) -> Result<(), BoxError> {
        Ok(())
    }

    /// Handles an IQ request on one of [`Plugin::iq_routes`]. Return
    /// [`HandlerError::Deferred`] to answer later with
    /// [`Context::send`].
    async fn handle_iq(&self, _cx: &Context, _iq: IqRequest) -> IqResult {
        Err(HandlerError::service_unavailable())
    }

    /// Whether this plugin takes messages and presences as they arrived
    /// ([`Plugin::handle_stanza`]), before they are typed: a service that
    /// works on elements anyway (a MUC reflects what it receives) skips
    /// a parse and a rebuild per stanza, and sees stanzas that do not
    /// type (a nick that fails resourceprep) to answer them itself.
    fn raw_stanzas(&self) -> bool {
        false
    }

    /// Offered every message and presence as an element, before any
    /// plugin's typed hooks, when [`Plugin::raw_stanzas`] says so.
    /// [`Flow::Continue`] passes it on (typed, to every plugin).
    async fn handle_stanza(&self, _cx: &Context, _stanza: &Element) -> Flow {
        Flow::Continue
    }

    /// Offered every message, in plugin order. Return
    /// [`Flow::Reject`] to answer the sender with a stanza error.
    async fn handle_message(&self, _cx: &Context, _message: &Message) -> Flow {
        Flow::Continue
    }

    /// Offered every presence, in plugin order. Return
    /// [`Flow::Reject`] to answer the sender with a presence error.
    async fn handle_presence(&self, _cx: &Context, _presence: &Presence) -> Flow {
        Flow::Continue
    }

    /// Offered, in plugin order, every IQ result or error that answers no
    /// request of the component's own ([`Context::request`] gets those):
    /// a plugin that relays requests (a MUC passing a vCard request to an
    /// occupant) routes the answer back here. Never answered; the return
    /// value only says whether later plugins see it.
    async fn handle_iq_response(&self, _cx: &Context, _iq: &Iq) -> Flow {
        Flow::Continue
    }

    /// Called once when the component stops, before the stream closes.
    async fn on_shutdown(&self, _cx: &Context) {}
}
