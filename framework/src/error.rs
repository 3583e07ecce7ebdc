//! Errors a handler returns, and how they become stanza errors.

use std::fmt;

use xmpp_parsers::minidom::Element;
use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};

/// A boxed error for internal failures.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a handler returns instead of a result.
///
/// An error is a reply: [`HandlerError::Stanza`] is sent back to the
/// requester as is, [`HandlerError::Internal`] is logged and answered with
/// `internal-server-error` (its text is never sent: it may hold details a
/// remote user should not see).
#[derive(Debug)]
#[non_exhaustive]
pub enum HandlerError {
    /// A stanza error to send back.
    Stanza(Box<StanzaError>),
    /// A failure of ours: logged, replied as `internal-server-error`.
    Internal(BoxError),
    /// No reply now: the handler answers the request itself, later (a MUC
    /// relays an IQ to an occupant and sends the occupant's answer back).
    Deferred,
}

impl HandlerError {
    /// A stanza error of the given type and condition, with an optional
    /// human-readable text.
    pub fn new(type_: ErrorType, condition: DefinedCondition, text: Option<&str>) -> Self {
        let error = match text {
            Some(t) => StanzaError::new(type_, condition, "en", t),
            None => StanzaError {
                type_,
                by: None,
                defined_condition: condition,
                texts: Default::default(),
                other: None,
            },
        };
        Self::Stanza(Box::new(error))
    }

    /// `bad-request` (modify): the request was malformed.
    pub fn bad_request(text: impl AsRef<str>) -> Self {
        Self::new(
            ErrorType::Modify,
            DefinedCondition::BadRequest,
            Some(text.as_ref()),
        )
    }

    /// `service-unavailable` (cancel): nobody here handles this.
    pub fn service_unavailable() -> Self {
        Self::new(
            ErrorType::Cancel,
            DefinedCondition::ServiceUnavailable,
            None,
        )
    }

    /// `feature-not-implemented` (cancel).
    pub fn feature_not_implemented() -> Self {
        Self::new(
            ErrorType::Cancel,
            DefinedCondition::FeatureNotImplemented,
            None,
        )
    }

    /// `forbidden` (auth): the requester may not do this.
    pub fn forbidden(text: impl AsRef<str>) -> Self {
        Self::new(
            ErrorType::Auth,
            DefinedCondition::Forbidden,
            Some(text.as_ref()),
        )
    }

    /// `item-not-found` (cancel).
    pub fn item_not_found() -> Self {
        Self::new(ErrorType::Cancel, DefinedCondition::ItemNotFound, None)
    }

    /// `not-acceptable` (modify).
    pub fn not_acceptable(text: impl AsRef<str>) -> Self {
        Self::new(
            ErrorType::Modify,
            DefinedCondition::NotAcceptable,
            Some(text.as_ref()),
        )
    }

    /// `resource-constraint` (wait): try again later.
    pub fn resource_constraint(text: impl AsRef<str>) -> Self {
        Self::new(
            ErrorType::Wait,
            DefinedCondition::ResourceConstraint,
            Some(text.as_ref()),
        )
    }

    /// An internal failure (logged, replied as `internal-server-error`).
    pub fn internal(error: impl Into<BoxError>) -> Self {
        Self::Internal(error.into())
    }

    /// Adds an application-specific condition element to a stanza error
    /// (e.g. XEP-0050's `<bad-sessionid/>`).
    pub fn with_app_condition(mut self, condition: Element) -> Self {
        if let Self::Stanza(e) = &mut self {
            e.other = Some(condition);
        }
        self
    }

    /// The stanza error to send for this error. `Internal` (and
    /// `Deferred`, which is never sent) becomes a bare
    /// `internal-server-error`.
    pub fn into_stanza_error(self) -> StanzaError {
        match self {
            Self::Stanza(e) => *e,
            Self::Internal(_) | Self::Deferred => StanzaError {
                type_: ErrorType::Wait,
                by: None,
                defined_condition: DefinedCondition::InternalServerError,
                texts: Default::default(),
                other: None,
            },
        }
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stanza(e) => {
                let condition = Element::from(e.defined_condition.clone());
                write!(f, "stanza error {}", condition.name())?;
                if let Some((_, text)) = e.texts.iter().next() {
                    write!(f, ": {text}")?;
                }
                Ok(())
            }
            Self::Internal(e) => write!(f, "internal error: {e}"),
            Self::Deferred => write!(f, "answered later by the handler"),
        }
    }
}

impl std::error::Error for HandlerError {}

impl From<StanzaError> for HandlerError {
    fn from(e: StanzaError) -> Self {
        Self::Stanza(Box::new(e))
    }
}

impl From<xmpp_parsers::Error> for HandlerError {
    /// A payload that does not parse is the requester's mistake.
    fn from(e: xmpp_parsers::Error) -> Self {
        Self::bad_request(e.to_string())
    }
}

impl From<xmpp_parsers::FromElementError> for HandlerError {
    /// A payload that does not parse is the requester's mistake.
    fn from(e: xmpp_parsers::FromElementError) -> Self {
        Self::bad_request(e.to_string())
    }
}

/// Why [`crate::Context::send`] did not take a stanza.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The link is down and the outbound queue is at its bound.
    #[error("the link is down and the outbound queue is full ({0} stanzas)")]
    QueueFull(usize),
    /// The component has stopped.
    #[error("the component has stopped")]
    Closed,
    /// Work for a new address could not be queued: as many addresses as
    /// `max_lanes` allows have work in progress.
    #[error("too many addresses have work in progress ({0} lanes)")]
    TooManyLanes(usize),
    /// The server has not granted the privilege this needs (XEP-0356).
    #[error("the server did not grant this component the privilege to do that")]
    NotPermitted,
}

/// Why [`crate::Context::request`] produced no result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The request could not be queued.
    #[error(transparent)]
    Send(#[from] SendError),
    /// No reply arrived in time.
    #[error("no reply within {0:?}")]
    Timeout(std::time::Duration),
    /// The peer answered with an error.
    #[error("the peer answered with an error: {0:?}")]
    Stanza(Box<StanzaError>),
    /// The request was not a `get` or `set` iq.
    #[error("only get and set iqs can be sent as requests")]
    NotARequest,
}
