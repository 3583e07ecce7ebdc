//! XEP-0050 ad-hoc commands with XEP-0004 forms.
//!
//! A command implements [`AdhocCommand`]; the framework lists it in disco
//! (node `http://jabber.org/protocol/commands`), keeps sessions (bound to
//! the requester's full JID, expiring when idle, at most 8 per account and
//! 1024 in all, counted from the request that opens one), and handles `execute`,
//! `next`, `prev`, `complete` and `cancel`. A multi-stage command looks at
//! [`CommandSession::stage`] and the values submitted so far.
//!
//! ```
//! use satellite::adhoc::{AdhocCommand, CommandSession, Step};
//! use satellite::xmpp::data_forms::{DataForm, DataFormType, Field, FieldType};
//! use satellite::{async_trait, Context, HandlerError};
//!
//! struct Greet;
//!
//! #[async_trait]
//! impl AdhocCommand for Greet {
//!     fn node(&self) -> &str { "greet" }
//!     fn name(&self) -> &str { "Say hello" }
//!     async fn execute(&self, _cx: &Context, s: &mut CommandSession) -> Result<Step, HandlerError> {
//!         match s.value("name") {
//!             None => Ok(Step::form(DataForm::new(DataFormType::Form, "urn:example:greet",
//!                 vec![Field::new("name", FieldType::TextSingle)]))),
//!             Some(name) => Ok(Step::done().note_info(format!("Hello, {name}!"))),
//!         }
//!     }
//! }
//! ```

pub mod payload;
#[doc(hidden)]
pub mod sessions;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use xmpp_parsers::data_forms::{DataForm, DataFormType};
use xmpp_parsers::disco::{DiscoInfoResult, Identity, Item};
use xmpp_parsers::jid::{BareJid, Jid};
use xmpp_parsers::minidom::Element;
use xmpp_parsers::ns;

use crate::Context;
use crate::error::HandlerError;
use crate::plugin::{Disco, DiscoItems, IqRequest, IqResult, IqRoute, ItemsQuery, Plugin, Scope};
use payload::{Action, Actions, Command, CommandError, Note, NoteType};
use sessions::{Lease, Limits, Refused, SessionTable};

/// Who may list and run a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone who can reach the component.
    Anyone,
    /// Only the component's configured `admins`.
    Admins,
}

/// One ad-hoc command.
#[async_trait]
pub trait AdhocCommand: Send + Sync + 'static {
    /// The command's node (unique within the component).
    fn node(&self) -> &str;
    /// Its human-readable name.
    fn name(&self) -> &str;
    /// Who may list and run it (default: anyone).
    fn access(&self) -> Access {
        Access::Anyone
    }
    /// Runs one stage. Called with stage 0 on `execute`; after each
    /// submitted form the stage goes up by one (down on `prev`).
    async fn execute(
        &self,
        cx: &Context,
        session: &mut CommandSession,
    ) -> Result<Step, HandlerError>;
}

/// The state of one run of a command.
#[derive(Debug, Clone)]
pub struct CommandSession {
    /// Who runs it.
    pub requester: Jid,
    /// Stage number, from 0.
    pub stage: usize,
    /// The action that led to this stage.
    pub action: Action,
    /// Every field value submitted so far, by var.
    pub values: BTreeMap<String, Vec<String>>,
    /// The form submitted with this action, if any.
    pub submitted: Option<DataForm>,
}

impl CommandSession {
    /// The first submitted value of a field.
    pub fn value(&self, var: &str) -> Option<&str> {
        self.values.get(var)?.first().map(String::as_str)
    }
}

/// What a stage produced.
#[derive(Debug, Clone)]
pub enum Step {
    /// Ask for a form; `more` tells whether stages follow.
    Form {
        /// The form to fill in.
        form: DataForm,
        /// Whether further stages follow (offer `next`, else `complete`).
        more: bool,
        /// Notes shown with the form.
        notes: Vec<Note>,
    },
    /// The command is done.
    Done {
        /// A result form to show, if any.
        form: Option<DataForm>,
        /// Notes (e.g. "Sent to 12 users").
        notes: Vec<Note>,
    },
}

impl Step {
    /// A form that is the last stage.
    pub fn form(form: DataForm) -> Self {
        Step::Form {
            form,
            more: false,
            notes: Vec::new(),
        }
    }

    /// A form with stages after it.
    pub fn form_then_more(form: DataForm) -> Self {
        Step::Form {
            form,
            more: true,
            notes: Vec::new(),
        }
    }

    /// Completion without a result form.
    pub fn done() -> Self {
        Step::Done {
            form: None,
            notes: Vec::new(),
        }
    }

    /// Completion with a result form.
    pub fn done_with(form: DataForm) -> Self {
        Step::Done {
            form: Some(form),
            notes: Vec::new(),
        }
    }

    /// Adds an info note.
    pub fn note_info(self, text: impl Into<String>) -> Self {
        self.note(Note::new(NoteType::Info, text))
    }

    /// Adds a note.
    pub fn note(mut self, note: Note) -> Self {
        match &mut self {
            Step::Form { notes, .. } | Step::Done { notes, .. } => notes.push(note),
        }
        self
    }
}

/// What a session keeps between its stages.
struct OpenSession {
    session: CommandSession,
    /// Whether the stage shown offered `prev`.
    has_prev: bool,
}

/// The built-in plugin serving ad-hoc commands.
pub(crate) struct AdhocPlugin {
    commands: Vec<Arc<dyn AdhocCommand>>,
    admins: Vec<BareJid>,
    sessions: SessionTable<OpenSession>,
}

impl AdhocPlugin {
    pub(crate) fn new(commands: Vec<Arc<dyn AdhocCommand>>, admins: Vec<BareJid>) -> Self {
        Self::with_limits(commands, admins, Limits::default())
    }

    pub(crate) fn with_limits(
        commands: Vec<Arc<dyn AdhocCommand>>,
        admins: Vec<BareJid>,
        limits: Limits,
    ) -> Self {
        Self {
            commands,
            admins,
            sessions: SessionTable::new(limits),
        }
    }

    fn allowed(&self, command: &dyn AdhocCommand, requester: &Jid) -> bool {
        match command.access() {
            Access::Anyone => true,
            Access::Admins => self.admins.iter().any(|a| *a == requester.to_bare()),
        }
    }

    fn find(&self, node: &str) -> Option<&Arc<dyn AdhocCommand>> {
        self.commands.iter().find(|c| c.node() == node)
    }

    async fn run_stage(
        &self,
        cx: &Context,
        command: &dyn AdhocCommand,
        lease: Lease<OpenSession>,
        mut open: OpenSession,
    ) -> IqResult {
        // An error (or this request being dropped) drops the lease, which
        // ends the session.
        let step = command.execute(cx, &mut open.session).await?;
        let node = command.node().to_owned();
        let sessionid = lease.id().to_owned();
        let reply = match step {
            Step::Form { form, more, notes } => {
                let prev = open.session.stage > 0;
                let actions = if more {
                    Actions::next(prev)
                } else {
                    Actions::complete(prev)
                };
                open.has_prev = prev;
                lease.keep(open, Instant::now());
                let mut c = Command::executing(node, sessionid, form, actions);
                c.notes = notes;
                c
            }
            Step::Done { form, notes } => {
                let mut c = Command::completed(node, sessionid);
                c.form = form;
                c.notes = notes;
                c
            }
        };
        Ok(Some(reply.into()))
    }
}

fn bad_session() -> HandlerError {
    HandlerError::from(CommandError::BadSessionid.into_stanza_error())
}

fn refused(why: Refused) -> HandlerError {
    match why {
        Refused::TooMany => HandlerError::resource_constraint("too many open command sessions"),
        Refused::BadSession => bad_session(),
    }
}

/// A form in a request without a `type` is a submission (Prosody and
/// ejabberd take it so, and admin tools send it so); typed here so that
/// it parses.
fn lenient_form_type(mut command: Element) -> Element {
    for x in command.children_mut() {
        if x.is("x", ns::DATA_FORMS) && x.attr("type").is_none() {
            crate::stream::set_attr(x, "type", "submit");
        }
    }
    command
}

fn submitted_values(form: &DataForm) -> impl Iterator<Item = (String, Vec<String>)> + '_ {
    form.fields
        .iter()
        .filter(|f| !f.is_form_type(&form.type_))
        .filter_map(|f| Some((f.var.clone()?, f.values.clone())))
}

#[async_trait]
impl Plugin for AdhocPlugin {
    fn name(&self) -> &'static str {
        "adhoc"
    }

    fn disco(&self) -> Disco {
        if self.commands.is_empty() {
            return Disco::default();
        }
        Disco::default().feature(payload::NS)
    }

    fn iq_routes(&self) -> Vec<IqRoute> {
        vec![IqRoute::set(payload::NS, "command").scope(Scope::Domain)]
    }

    async fn disco_info(
        &self,
        _cx: &Context,
        from: &Jid,
        to: &Jid,
        node: Option<&str>,
    ) -> Option<DiscoInfoResult> {
        let node = node?;
        if to.node().is_some() || to.resource().is_some() {
            return None;
        }
        let mut info = DiscoInfoResult {
            node: None,
            identities: Vec::new(),
            features: Default::default(),
            extensions: Vec::new(),
        };
        if node == payload::NS {
            info.identities.push(Identity::new(
                "automation",
                "command-list",
                "en",
                "Commands",
            ));
        } else {
            let command = self.find(node).filter(|c| self.allowed(c.as_ref(), from))?;
            info.identities.push(Identity::new(
                "automation",
                "command-node",
                "en",
                command.name(),
            ));
            info.features.insert(payload::NS.to_owned());
            info.features.insert(ns::DATA_FORMS.to_owned());
        }
        Some(info)
    }

    async fn disco_items(&self, cx: &Context, query: &ItemsQuery) -> DiscoItems {
        let to = &query.to;
        if query.node.as_deref() != Some(payload::NS)
            || to.node().is_some()
            || to.resource().is_some()
        {
            return DiscoItems::default();
        }
        self.commands
            .iter()
            .filter(|c| self.allowed(c.as_ref(), &query.from))
            .map(|c| Item {
                jid: Jid::from(cx.jid().clone()),
                node: Some(c.node().to_owned()),
                name: Some(c.name().to_owned()),
            })
            .collect::<Vec<_>>()
            .into()
    }

    async fn handle_iq(&self, cx: &Context, iq: IqRequest) -> IqResult {
        if Command::has_malformed_action(&iq.payload) {
            return Err(CommandError::MalformedAction.into_stanza_error().into());
        }
        let request = Command::try_from(lenient_form_type(iq.payload.clone()))?;
        let command = self
            .find(&request.node)
            .ok_or_else(HandlerError::item_not_found)?;
        if !self.allowed(command.as_ref(), &iq.from) {
            return Err(HandlerError::forbidden(
                "this command is for administrators",
            ));
        }
        let action = request.effective_action();
        let Some(sessionid) = request.sessionid.clone() else {
            if action != Action::Execute {
                return Err(CommandError::BadAction.into_stanza_error().into());
            }
            let lease = self
                .sessions
                .start(&request.node, &iq.from, Instant::now())
                .map_err(refused)?;
            let mut session = CommandSession {
                requester: iq.from.clone(),
                stage: 0,
                action,
                values: BTreeMap::new(),
                submitted: None,
            };
            if let Some(form) = &request.form {
                session.values.extend(submitted_values(form));
                session.submitted = Some(form.clone());
            }
            let open = OpenSession {
                session,
                has_prev: false,
            };
            return self.run_stage(cx, command.as_ref(), lease, open).await;
        };
        let (lease, mut open) = self
            .sessions
            .resume(&sessionid, &request.node, &iq.from, Instant::now())
            .map_err(refused)?;
        match action {
            Action::Cancel => {
                return Ok(Some(Command::canceled(request.node, sessionid).into()));
            }
            Action::Prev => {
                if !open.has_prev {
                    lease.keep(open, Instant::now());
                    return Err(CommandError::BadAction.into_stanza_error().into());
                }
                open.session.stage = open.session.stage.saturating_sub(1);
                open.session.submitted = None;
            }
            Action::Execute | Action::Next | Action::Complete => {
                if let Some(form) = &request.form {
                    if form.type_ == DataFormType::Cancel {
                        return Ok(Some(Command::canceled(request.node, sessionid).into()));
                    }
                    open.session.values.extend(submitted_values(form));
                }
                open.session.submitted = request.form.clone();
                open.session.stage += 1;
            }
        }
        open.session.action = action;
        self.run_stage(cx, command.as_ref(), lease, open).await
    }
}

#[cfg(test)]
mod tests;
