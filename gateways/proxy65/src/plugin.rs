//! The XMPP side: disco, the streamhost query, activation, the stats
//! command, and starting the SOCKS5 listener.

use std::sync::Arc;

use satellite::adhoc::{Access, AdhocCommand, CommandSession, Step};
use satellite::jid::{BareJid, Jid};
use satellite::xmpp::data_forms::{DataForm, DataFormType, Field};
use satellite::xmpp::stanza_error::{DefinedCondition, ErrorType};
use satellite::{
    BoxError, ComponentConfig, Context, Disco, HandlerError, IqRequest, IqResult, IqRoute, IqType,
    Plugin, Scope, async_trait,
};

use crate::config::Settings;
use crate::limits::Rejection;
use crate::payload::{NS, Query, StreamHost};
use crate::server::{self, Shared};
use crate::socks5::stream_hash;

/// The proxy65 plugin: one per component.
pub struct Proxy65 {
    shared: Arc<Shared>,
}

impl Proxy65 {
    /// A proxy with these settings.
    pub fn new(settings: Settings) -> Self {
        Self {
            shared: Arc::new(Shared::new(settings)),
        }
    }

    /// A proxy configured by a component's `[component.settings]`.
    pub fn from_config(config: &ComponentConfig) -> Result<Self, BoxError> {
        Ok(Self::new(Settings::load(config)?))
    }

    /// Its state, for the stats command and tests.
    pub fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    fn allowed(&self, from: &Jid) -> bool {
        self.shared.settings.allow.allows(from)
    }

    fn streamhosts(&self, cx: &Context, sid: Option<String>) -> Query {
        let jid = Jid::from(cx.jid().clone());
        Query {
            sid,
            streamhosts: self
                .shared
                .settings
                .advertised
                .iter()
                .map(|a| StreamHost {
                    jid: jid.clone(),
                    host: a.host.clone(),
                    port: Some(a.port),
                })
                .collect(),
            ..Query::default()
        }
    }

    fn activate(&self, from: &Jid, query: Query) -> Result<(), HandlerError> {
        let (Some(sid), Some(target)) = (query.sid, query.activate) else {
            return Err(HandlerError::bad_request(
                "activation needs a sid and an <activate/> target",
            ));
        };
        let target = Jid::new(target.trim()).map_err(|e| {
            HandlerError::new(
                ErrorType::Modify,
                DefinedCondition::JidMalformed,
                Some(&format!("the target is not a JID: {e}")),
            )
        })?;
        // The requester is the activation's sender, as the server stamped
        // it: only the party that computed this hash can activate.
        let hash = stream_hash(&sid, &from.to_string(), &target.to_string());
        let requester: BareJid = from.to_bare();
        match self.shared.registry.activate(&hash, &requester) {
            Ok(()) => {
                tracing::debug!(%hash, %from, %target, "proxy65: activated");
                Ok(())
            }
            Err(why) => {
                self.shared.metrics.reject(why);
                tracing::debug!(%hash, %from, %target, reason = why.as_str(), "proxy65: activation refused");
                Err(activation_error(why))
            }
        }
    }
}

/// The stanza error for a refused activation (see the crate docs' table).
fn activation_error(why: Rejection) -> HandlerError {
    let (type_, condition, text) = match why {
        Rejection::UnknownStream => (
            ErrorType::Cancel,
            DefinedCondition::ItemNotFound,
            "no connection with this stream's hash (unknown sid, target or requester)",
        ),
        Rejection::NotPaired => (
            ErrorType::Cancel,
            DefinedCondition::NotAllowed,
            "only one party is connected to the proxy",
        ),
        Rejection::AlreadyActive => (
            ErrorType::Cancel,
            DefinedCondition::Conflict,
            "the bytestream is already activated",
        ),
        Rejection::JidCap => (
            ErrorType::Wait,
            DefinedCondition::ResourceConstraint,
            "too many active bytestreams for this JID",
        ),
        Rejection::SessionCap => (
            ErrorType::Wait,
            DefinedCondition::ResourceConstraint,
            "the proxy relays as many bytestreams as it may",
        ),
        _ => (
            ErrorType::Wait,
            DefinedCondition::InternalServerError,
            "the bytestream could not be activated",
        ),
    };
    HandlerError::new(type_, condition, Some(text))
}

#[async_trait]
impl Plugin for Proxy65 {
    fn name(&self) -> &'static str {
        "proxy65"
    }

    fn disco(&self) -> Disco {
        Disco::default()
            .identity("proxy", "bytestreams", "SOCKS5 Bytestreams Service")
            .feature(NS)
    }

    fn iq_routes(&self) -> Vec<IqRoute> {
        vec![
            IqRoute::get(NS, "query").scope(Scope::Domain),
            IqRoute::set(NS, "query").scope(Scope::Domain),
        ]
    }

    fn commands(&self) -> Vec<Arc<dyn AdhocCommand>> {
        vec![Arc::new(Stats(Arc::clone(&self.shared)))]
    }

    async fn on_start(&self, cx: &Context) -> Result<(), BoxError> {
        let listen = self.shared.settings.listen;
        server::raise_fd_limit();
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("proxy65: cannot listen on {listen}: {e}"))?;
        tracing::info!(%listen, advertised = ?self.shared.settings.advertised, "proxy65: SOCKS5 listener up");
        cx.spawn(server::serve(
            listener,
            Arc::clone(&self.shared),
            cx.clone(),
        ));
        Ok(())
    }

    async fn handle_iq(&self, cx: &Context, iq: IqRequest) -> IqResult {
        if !self.allowed(&iq.from) {
            self.shared.metrics.reject(Rejection::Acl);
            return Err(HandlerError::forbidden("you may not use this proxy"));
        }
        let query: Query = iq.parse()?;
        match iq.type_ {
            IqType::Get => Ok(Some(self.streamhosts(cx, query.sid).into())),
            IqType::Set => {
                self.activate(&iq.from, query)?;
                Ok(None)
            }
        }
    }
}

/// `stats`: the proxy's counters (admins only).
struct Stats(Arc<Shared>);

#[async_trait]
impl AdhocCommand for Stats {
    fn node(&self) -> &str {
        "stats"
    }
    fn name(&self) -> &str {
        "Proxy statistics"
    }
    fn access(&self) -> Access {
        Access::Admins
    }
    async fn execute(&self, _cx: &Context, _s: &mut CommandSession) -> Result<Step, HandlerError> {
        let m = &self.0.metrics;
        let mut fields = vec![
            Field::text_single("connections-open", &self.0.connections().to_string()),
            Field::text_single("connections-total", &m.connections_total().to_string()),
            Field::text_single("sessions-active", &self.0.registry.sessions().to_string()),
            Field::text_single("sessions-activated", &m.activations_total().to_string()),
            Field::text_single("sessions-finished", &m.finished_total().to_string()),
            Field::text_single("bytes-relayed", &m.bytes_total().to_string()),
        ];
        for why in Rejection::ALL {
            fields.push(Field::text_single(
                &format!("rejected-{}", why.as_str().replace('_', "-")),
                &m.rejections(why).to_string(),
            ));
        }
        let form = DataForm::new(DataFormType::Result_, "urn:satellite:proxy65:stats", fields);
        Ok(Step::done_with(form))
    }
}
