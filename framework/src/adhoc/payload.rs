//! XEP-0050 (Ad-Hoc Commands) wire types.
//!
//! `xmpp-parsers` 0.23 ships data forms ([`DataForm`]) but no XEP-0050
//! payloads, so this module defines them with `xso` derives:
//!
//! * [`Command`]: the `<command xmlns='http://jabber.org/protocol/commands'/>`
//!   element, used both as the `<iq type='set'/>` request and as the
//!   `<iq type='result'/>` response;
//! * [`Actions`] and [`Note`]: its `<actions/>` and `<note/>` children;
//! * [`CommandError`]: the XEP-0050 application-specific error conditions
//!   (`<bad-action/>`, `<session-expired/>`, …), to be carried in the
//!   `other` slot of a [`StanzaError`].
//!
//! Parsing is lenient in the way `xso` 0.4 is by default: unknown attributes
//! and unknown child elements (e.g. a `jabber:x:oob` payload) are silently
//! dropped. Unknown *values* of the known enumerated attributes (`action`,
//! `status`, `<actions execute=…/>`, `<note type=…/>`) are parse errors; use
//! [`Command::has_malformed_action`] to tell the `malformed-action` case
//! apart from other parse failures.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use xmpp_parsers::data_forms::DataForm;
use xmpp_parsers::iq::{IqResultPayload, IqSetPayload};
use xmpp_parsers::minidom::Element;
use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};
use xso::{AsXml, AsXmlText, FromXml, FromXmlText};

/// The XEP-0050 namespace, `http://jabber.org/protocol/commands`.
///
/// It is also the well-known service discovery node under which the list of
/// commands is published.
pub const NS: &str = "http://jabber.org/protocol/commands";

/// Defines a fieldless enum whose variants map 1:1 onto XML attribute values,
/// with `FromStr`/`Display` and the `xso` text conversion traits.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $attr:literal, {
            $( $(#[$vmeta:meta])* $variant:ident => $value:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// The XML attribute value of this variant.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $value ),+
                }
            }
        }

        impl FromStr for $name {
            type Err = xso::error::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $value => Ok(Self::$variant), )+
                    _ => Err(xso::error::Error::Other(concat!(
                        "Unknown value for '", $attr, "' attribute."
                    ))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromXmlText for $name {
            fn from_xml_text(data: String) -> Result<Self, xso::error::Error> {
                data.parse().map_err(xso::error::Error::text_parse_error)
            }
        }

        impl AsXmlText for $name {
            fn as_xml_text(&self) -> Result<Cow<'_, str>, xso::error::Error> {
                Ok(Cow::Borrowed(self.as_str()))
            }
        }
    };
}

text_enum!(
    /// The `action` attribute of a `<command/>` (what the requester wants to
    /// happen), also used for the `execute` attribute of `<actions/>`.
    ///
    /// When a request carries no `action`, XEP-0050 says [`Action::Execute`]
    /// is implied; see [`Command::effective_action`].
    Action, "action", {
        /// `execute`: run the command, or continue with the stage's default.
        Execute => "execute",
        /// `cancel`: abort the session.
        Cancel => "cancel",
        /// `prev`: go back to the previous stage.
        Prev => "prev",
        /// `next`: progress to the next stage.
        Next => "next",
        /// `complete`: finish the command with the data given so far.
        Complete => "complete",
    }
);

impl Default for Action {
    /// `execute`, the action implied when the attribute is absent.
    fn default() -> Self {
        Action::Execute
    }
}

text_enum!(
    /// The `status` attribute of a `<command/>` response.
    Status, "status", {
        /// `executing`: the session continues; more stages follow.
        Executing => "executing",
        /// `completed`: the session has ended (successfully or not; a failure
        /// is signalled with a `<note type='error'/>`).
        Completed => "completed",
        /// `canceled`: the session has been canceled and has ended.
        Canceled => "canceled",
    }
);

text_enum!(
    /// The `type` attribute of a `<note/>`.
    NoteType, "type", {
        /// `info`: informational only (the default when absent).
        Info => "info",
        /// `warn`: a warning, e.g. about illogical yet valid data.
        Warn => "warn",
        /// `error`: an error; the text says why.
        Error => "error",
    }
);

impl Default for NoteType {
    /// `info`, the type implied when the attribute is absent.
    fn default() -> Self {
        NoteType::Info
    }
}

/// The `<actions/>` child of a `<command status='executing'/>` response:
/// which actions the requester may take at this stage.
///
/// `execute` and `cancel` are always allowed (see [`Actions::allows`]).
#[derive(FromXml, AsXml, Debug, Clone, Default, PartialEq, Eq)]
#[xml(namespace = NS, name = "actions")]
pub struct Actions {
    /// The `execute` attribute: which action `execute` stands for at this
    /// stage (the default button of a wizard). XEP-0050 restricts it to
    /// `prev`, `next` or `complete`, but this is not enforced when parsing.
    #[xml(attribute(default))]
    pub execute: Option<Action>,

    /// Whether `<prev/>` is present, i.e. going back is allowed.
    #[xml(flag)]
    pub prev: bool,

    /// Whether `<next/>` is present, i.e. progressing is allowed.
    #[xml(flag)]
    pub next: bool,

    /// Whether `<complete/>` is present, i.e. finishing is allowed.
    #[xml(flag)]
    pub complete: bool,
}

impl Actions {
    /// Actions of an intermediate stage: `<next/>` allowed and the default,
    /// plus `<prev/>` if `prev` is set.
    pub fn next(prev: bool) -> Self {
        Actions {
            execute: Some(Action::Next),
            prev,
            next: true,
            complete: false,
        }
    }

    /// Actions of a final stage: `<complete/>` allowed and the default, plus
    /// `<prev/>` if `prev` is set.
    pub fn complete(prev: bool) -> Self {
        Actions {
            execute: Some(Action::Complete),
            prev,
            next: false,
            complete: true,
        }
    }

    /// Whether `action` is allowed at this stage. `execute` and `cancel` are
    /// always allowed; `prev`, `next` and `complete` only when their child
    /// element is present.
    pub fn allows(&self, action: Action) -> bool {
        match action {
            Action::Execute | Action::Cancel => true,
            Action::Prev => self.prev,
            Action::Next => self.next,
            Action::Complete => self.complete,
        }
    }
}

/// A `<note type='…'>text</note>` child of a `<command/>` response.
#[derive(FromXml, AsXml, Debug, Clone, PartialEq, Eq)]
#[xml(namespace = NS, name = "note")]
pub struct Note {
    /// The `type` attribute; `info` when absent. Always serialised.
    #[xml(attribute(name = "type", default))]
    pub kind: NoteType,

    /// The human-readable text.
    #[xml(text)]
    pub text: String,
}

impl Note {
    /// A note of the given type.
    pub fn new(kind: NoteType, text: impl Into<String>) -> Self {
        Note {
            kind,
            text: text.into(),
        }
    }

    /// An `info` note.
    pub fn info(text: impl Into<String>) -> Self {
        Note::new(NoteType::Info, text)
    }

    /// A `warn` note.
    pub fn warn(text: impl Into<String>) -> Self {
        Note::new(NoteType::Warn, text)
    }

    /// An `error` note (XEP-0050 requires one when a completed command
    /// failed).
    pub fn error(text: impl Into<String>) -> Self {
        Note::new(NoteType::Error, text)
    }
}

/// The `<command xmlns='http://jabber.org/protocol/commands'/>` element.
///
/// Requests (`<iq type='set'/>`) normally carry `action` and, after the
/// first stage, `sessionid` and a submitted form; responses
/// (`<iq type='result'/>`) carry `status`, `sessionid`, optionally
/// `<actions/>`, notes and a form.
///
/// Children are serialised in the order actions, notes, form.
#[derive(FromXml, AsXml, Debug, Clone, PartialEq)]
#[xml(namespace = NS, name = "command")]
pub struct Command {
    /// The command node (required); matches the disco item's `node`.
    #[xml(attribute)]
    pub node: String,

    /// The session identifier, set by the responder on its first response
    /// and echoed by the requester on every later stage.
    #[xml(attribute(default))]
    pub sessionid: Option<String>,

    /// The requested action, as sent; `None` means `execute` (see
    /// [`Command::effective_action`]).
    #[xml(attribute(default))]
    pub action: Option<Action>,

    /// The status of the session, set by responders only.
    #[xml(attribute(default))]
    pub status: Option<Status>,

    /// The `xml:lang` attribute on the `<command/>` itself, if any (it is
    /// not inherited from the `<iq/>`).
    #[xml(attribute(name = "xml:lang", default))]
    pub lang: Option<String>,

    /// The actions allowed at this stage (responses only).
    #[xml(child(default))]
    pub actions: Option<Actions>,

    /// Notes to show to the user (responses only).
    #[xml(child(n = ..))]
    pub notes: Vec<Note>,

    /// The `jabber:x:data` payload: a form to fill or a result in a
    /// response, a submitted form in a request.
    #[xml(child(default))]
    pub form: Option<DataForm>,
}

impl IqSetPayload for Command {}
impl IqResultPayload for Command {}

impl Command {
    /// A bare `<command node='…'/>` with nothing else set.
    fn bare(node: impl Into<String>) -> Self {
        Command {
            node: node.into(),
            sessionid: None,
            action: None,
            status: None,
            lang: None,
            actions: None,
            notes: Vec::new(),
            form: None,
        }
    }

    /// A request to start executing `node`:
    /// `<command node='…' action='execute'/>`.
    ///
    /// Chain [`with_sessionid`](Self::with_sessionid),
    /// [`with_action`](Self::with_action) and [`with_form`](Self::with_form)
    /// to build the requests of later stages.
    pub fn request(node: impl Into<String>) -> Self {
        Command {
            action: Some(Action::Execute),
            ..Command::bare(node)
        }
    }

    /// An intermediate-stage response: `status='executing'` with the given
    /// session, allowed actions and form to fill.
    pub fn executing(
        node: impl Into<String>,
        sessionid: impl Into<String>,
        form: DataForm,
        actions: Actions,
    ) -> Self {
        Command {
            sessionid: Some(sessionid.into()),
            status: Some(Status::Executing),
            actions: Some(actions),
            form: Some(form),
            ..Command::bare(node)
        }
    }

    /// A final response: `status='completed'` for the given session. Add the
    /// outcome with [`with_note`](Self::with_note) and/or
    /// [`with_form`](Self::with_form).
    pub fn completed(node: impl Into<String>, sessionid: impl Into<String>) -> Self {
        Command {
            sessionid: Some(sessionid.into()),
            status: Some(Status::Completed),
            ..Command::bare(node)
        }
    }

    /// The response to a cancel request: `status='canceled'` for the given
    /// session.
    pub fn canceled(node: impl Into<String>, sessionid: impl Into<String>) -> Self {
        Command {
            sessionid: Some(sessionid.into()),
            status: Some(Status::Canceled),
            ..Command::bare(node)
        }
    }

    /// Appends a `<note/>`.
    #[must_use]
    pub fn with_note(mut self, kind: NoteType, text: impl Into<String>) -> Self {
        self.notes.push(Note::new(kind, text));
        self
    }

    /// Sets (replaces) the `jabber:x:data` payload.
    #[must_use]
    pub fn with_form(mut self, form: DataForm) -> Self {
        self.form = Some(form);
        self
    }

    /// Sets the `sessionid` attribute.
    #[must_use]
    pub fn with_sessionid(mut self, sessionid: impl Into<String>) -> Self {
        self.sessionid = Some(sessionid.into());
        self
    }

    /// Sets the `action` attribute.
    #[must_use]
    pub fn with_action(mut self, action: Action) -> Self {
        self.action = Some(action);
        self
    }

    /// Sets the `<actions/>` child.
    #[must_use]
    pub fn with_actions(mut self, actions: Actions) -> Self {
        self.actions = Some(actions);
        self
    }

    /// Sets the `xml:lang` attribute.
    #[must_use]
    pub fn with_lang(mut self, lang: impl Into<String>) -> Self {
        self.lang = Some(lang.into());
        self
    }

    /// The requested action, `execute` when the attribute is absent.
    pub fn effective_action(&self) -> Action {
        self.action.unwrap_or_default()
    }

    /// Whether `elem` is a `<command/>` in [`NS`] whose `action` attribute
    /// is present but not one of the five XEP-0050 values.
    ///
    /// Use it after [`Command::try_from`] failed, to answer with
    /// `<bad-request/>` + [`CommandError::MalformedAction`] instead of a
    /// plain `<bad-request/>`.
    pub fn has_malformed_action(elem: &Element) -> bool {
        elem.is("command", NS)
            && elem
                .attr("action")
                .is_some_and(|value| value.parse::<Action>().is_err())
    }
}

/// The XEP-0050 application-specific error conditions, namespaced
/// `http://jabber.org/protocol/commands`.
///
/// Each variant serialises to an empty element (e.g.
/// `<bad-sessionid xmlns='http://jabber.org/protocol/commands'/>`) meant for
/// the `other` slot of a [`StanzaError`], next to the general condition
/// given by [`CommandError::defined_condition`]. Use
/// [`CommandError::into_stanza_error`] or `StanzaError::from` to build the
/// whole `<error/>`.
#[derive(FromXml, AsXml, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[xml(namespace = NS)]
pub enum CommandError {
    /// `<malformed-action/>`: the responder does not understand the action
    /// (modify, `<bad-request/>`).
    #[xml(name = "malformed-action")]
    MalformedAction,

    /// `<bad-action/>`: the responder cannot accept the action at this
    /// stage (modify, `<bad-request/>`).
    #[xml(name = "bad-action")]
    BadAction,

    /// `<bad-locale/>`: the responder cannot accept the requested
    /// `xml:lang` (modify, `<bad-request/>`).
    #[xml(name = "bad-locale")]
    BadLocale,

    /// `<bad-payload/>`: the responder cannot accept the payload, e.g. the
    /// form lacks required fields (modify, `<bad-request/>`).
    #[xml(name = "bad-payload")]
    BadPayload,

    /// `<bad-sessionid/>`: the responder cannot accept the sessionid
    /// (modify, `<bad-request/>`).
    #[xml(name = "bad-sessionid")]
    BadSessionid,

    /// `<session-expired/>`: the session is no longer active (completed,
    /// canceled or timed out) (cancel, `<not-allowed/>`).
    #[xml(name = "session-expired")]
    SessionExpired,
}

impl CommandError {
    /// The error type XEP-0050 §4.6 pairs with this condition.
    pub fn error_type(self) -> ErrorType {
        match self {
            CommandError::SessionExpired => ErrorType::Cancel,
            _ => ErrorType::Modify,
        }
    }

    /// The general (RFC 6120) condition XEP-0050 §4.6 pairs with this one.
    pub fn defined_condition(self) -> DefinedCondition {
        match self {
            CommandError::SessionExpired => DefinedCondition::NotAllowed,
            _ => DefinedCondition::BadRequest,
        }
    }

    /// A complete `<error/>`: type, general condition and this element,
    /// without human-readable text.
    pub fn into_stanza_error(self) -> StanzaError {
        StanzaError {
            type_: self.error_type(),
            by: None,
            defined_condition: self.defined_condition(),
            texts: BTreeMap::new(),
            other: Some(Element::from(self)),
        }
    }

    /// Like [`into_stanza_error`](Self::into_stanza_error), with a
    /// human-readable `<text xml:lang='…'/>`.
    pub fn into_stanza_error_with_text(
        self,
        lang: impl Into<String>,
        text: impl Into<String>,
    ) -> StanzaError {
        let mut error = self.into_stanza_error();
        error.texts.insert(lang.into(), text.into());
        error
    }

    /// The XEP-0050 condition carried in a received `<error/>`, if any.
    pub fn from_stanza_error(error: &StanzaError) -> Option<CommandError> {
        error
            .other
            .as_ref()
            .and_then(|other| CommandError::try_from(other.clone()).ok())
    }
}

impl From<CommandError> for StanzaError {
    fn from(error: CommandError) -> Self {
        error.into_stanza_error()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xmpp_parsers::data_forms::{DataFormType, FieldType};
    use xso::error::{Error as XsoError, FromElementError};

    /// Parses `xml` into an element.
    fn elem(xml: &str) -> Element {
        xml.parse().expect("test XML is well-formed")
    }

    /// Parses `xml` as a `Command`, serialises it, parses it again, checks
    /// that both parses agree and returns the result.
    fn roundtrip(xml: &str) -> Command {
        let first = Command::try_from(elem(xml)).expect("example parses");
        let serialised = Element::from(first.clone());
        assert!(serialised.is("command", NS));
        let second = Command::try_from(serialised).expect("serialisation parses");
        assert_eq!(first, second);
        second
    }

    // XEP-0050 Example 5: execute command request.
    #[test]
    fn execute_request() {
        let cmd = roundtrip(
            "<command xmlns='http://jabber.org/protocol/commands'
                      node='list'
                      action='execute'/>",
        );
        assert_eq!(cmd.node, "list");
        assert_eq!(cmd.action, Some(Action::Execute));
        assert_eq!(cmd.sessionid, None);
        assert_eq!(cmd.status, None);
        assert_eq!(cmd.actions, None);
        assert!(cmd.notes.is_empty());
        assert!(cmd.form.is_none());
        assert_eq!(cmd, Command::request("list"));
    }

    // XEP-0050 Example 37 (command querytype): no action attribute at all.
    #[test]
    fn implied_execute() {
        let cmd = roundtrip("<command xmlns='http://jabber.org/protocol/commands' node='stats'/>");
        assert_eq!(cmd.action, None);
        assert_eq!(cmd.effective_action(), Action::Execute);
        // An absent action is not re-serialised as an explicit one.
        assert_eq!(Element::from(cmd).attr("action"), None);
    }

    // XEP-0050 Example 8: execute command result (stage 1).
    #[test]
    fn executing_stage_1() {
        let cmd = roundtrip(
            "<command xmlns='http://jabber.org/protocol/commands'
                      sessionid='config:20020923T213616Z-700'
                      node='config'
                      status='executing'>
                <actions execute='next'>
                  <next/>
                </actions>
                <x xmlns='jabber:x:data' type='form'>
                  <title>Configure Service</title>
                  <instructions>
                    Please select the service to configure.
                  </instructions>
                  <field var='service' label='Service' type='list-single'>
                    <option><value>httpd</value></option>
                    <option><value>jabberd</value></option>
                    <option><value>postgresql</value></option>
                  </field>
                </x>
              </command>",
        );
        assert_eq!(cmd.node, "config");
        assert_eq!(
            cmd.sessionid.as_deref(),
            Some("config:20020923T213616Z-700")
        );
        assert_eq!(cmd.status, Some(Status::Executing));
        assert_eq!(cmd.action, None);
        let actions = cmd.actions.clone().expect("actions present");
        assert_eq!(actions, Actions::next(false));
        assert!(actions.allows(Action::Next));
        assert!(actions.allows(Action::Execute));
        assert!(actions.allows(Action::Cancel));
        assert!(!actions.allows(Action::Prev));
        assert!(!actions.allows(Action::Complete));
        let form = cmd.form.clone().expect("form present");
        assert_eq!(form.type_, DataFormType::Form);
        assert_eq!(form.title.as_deref(), Some("Configure Service"));
        assert_eq!(
            form.instructions.as_deref().map(str::trim),
            Some("Please select the service to configure.")
        );
        assert_eq!(form.fields.len(), 1);
        assert_eq!(form.fields[0].var.as_deref(), Some("service"));
        assert_eq!(form.fields[0].type_, FieldType::ListSingle);
        assert_eq!(form.fields[0].options.len(), 3);
        assert_eq!(form.fields[0].options[2].value, "postgresql");

        let built = Command::executing(
            "config",
            "config:20020923T213616Z-700",
            form,
            Actions::next(false),
        );
        assert_eq!(cmd, built);
    }

    // XEP-0050 Example 9: execute command request (stage 2), a submitted
    // form without an action attribute.
    #[test]
    fn submit_stage_2() {
        let cmd = roundtrip(
            "<command xmlns='http://jabber.org/protocol/commands'
                      sessionid='config:20020923T213616Z-700'
                      node='config'>
                <x xmlns='jabber:x:data' type='submit'>
                  <field var='service'>
                    <value>httpd</value>
                  </field>
                </x>
              </command>",
        );
        assert_eq!(cmd.action, None);
        assert_eq!(cmd.effective_action(), Action::Execute);
        let form = cmd.form.expect("form present");
        assert_eq!(form.type_, DataFormType::Submit);
        assert_eq!(form.fields[0].var.as_deref(), Some("service"));
        assert_eq!(form.fields[0].values, vec!["httpd".to_owned()]);
    }

    // XEP-0050 Example 10: execute command result (stage 2), with
    // `<prev/>` and `<complete/>`.
    #[test]
    fn executing_stage_2_prev_complete() {
        let cmd = roundtrip(
            "<command xmlns='http://jabber.org/protocol/commands'
                      sessionid='config:20020923T213616Z-700'
                      node='config'
                      status='executing'>
                <actions execute='complete'>
                  <prev/>
                  <complete/>
                </actions>
                <x xmlns='jabber:x:data' type='form'>
                  <title>Configure Service</title>
                  <instructions>
                    Please select the run modes and state for 'httpd'.
                  </instructions>
                  <field var='runlevel' label='Run Modes' type='list-multi'>
                    <value>3</value>
                    <value>5</value>
                    <option label='Single-User'><value>1</value></option>
                    <option label='Non-Networked Multi-User'><value>2</value></option>
                    <option label='Full Multi-User'><value>3</value></option>
                    <option label='X-Window'><value>5</value></option>
                  </field>
                  <field var='state' label='Run State' type='list-single'>
                    <value>off</value>
                    <option label='Active'><value>off</value></option>
                    <option label='Inactive'><value>on</value></option>
                  </field>
                </x>
              </command>",
        );
        let actions = cmd.actions.expect("actions present");
        assert_eq!(
            actions,
            Actions {
                execute: Some(Action::Complete),
                prev: true,
                next: false,
                complete: true,
            }
        );
        assert_eq!(actions, Actions::complete(true));
        assert!(actions.allows(Action::Prev));
        assert!(!actions.allows(Action::Next));
        let form = cmd.form.expect("form present");
        assert_eq!(form.fields.len(), 2);
        assert_eq!(form.fields[0].type_, FieldType::ListMulti);
        assert_eq!(form.fields[0].values, vec!["3".to_owned(), "5".to_owned()]);
        assert_eq!(form.fields[0].options.len(), 4);
        assert_eq!(
            form.fields[0].options[1].label.as_deref(),
            Some("Non-Networked Multi-User")
        );
        assert_eq!(form.fields[1].values, vec!["off".to_owned()]);
    }

    // XEP-0050 Example 12: execute command result (stage 3), completed with
    // an info note.
    #[test]
    fn completed_with_note() {
        let cmd = roundtrip(
            "<command xmlns='http://jabber.org/protocol/commands'
                      sessionid='config:20020923T213616Z-700'
                      node='config'
                      status='completed'>
                <note type='info'>Service 'httpd' has been configured.</note>
              </command>",
        );
        assert_eq!(cmd.status, Some(Status::Completed));
        assert_eq!(
            cmd.notes,
            vec![Note::info("Service 'httpd' has been configured.")]
        );
        assert_eq!(cmd.actions, None);
        assert!(cmd.form.is_none());
        let built = Command::completed("config", "config:20020923T213616Z-700")
            .with_note(NoteType::Info, "Service 'httpd' has been configured.");
        assert_eq!(cmd, built);
    }

    // XEP-0050 Example 13: revert from stage 2 to stage 1.
    #[test]
    fn prev_request() {
        let cmd = roundtrip(
            "<command xmlns='http://jabber.org/protocol/commands'
                      sessionid='config:20020923T213616Z-700'
                      node='config'
                      action='prev'/>",
        );
        assert_eq!(cmd.action, Some(Action::Prev));
        assert_eq!(cmd.effective_action(), Action::Prev);
        assert_eq!(
            cmd,
            Command::request("config")
                .with_sessionid("config:20020923T213616Z-700")
                .with_action(Action::Prev)
        );
    }

    // `action='complete'` (as sent by a client finishing a wizard).
    #[test]
    fn complete_request() {
        let cmd = roundtrip(
            "<command xmlns='http://jabber.org/protocol/commands'
                      sessionid='config:20020923T213616Z-700'
                      node='config'
                      action='complete'>
                <x xmlns='jabber:x:data' type='submit'>
                  <field var='runlevel'><value>3</value></field>
                  <field var='state'><value>on</value></field>
                </x>
              </command>",
        );
        assert_eq!(cmd.action, Some(Action::Complete));
        assert_eq!(cmd.form.expect("form present").fields.len(), 2);
    }

    // XEP-0050 Examples 15 and 16: cancel and canceled.
    #[test]
    fn cancel_and_canceled() {
        let request = roundtrip(
            "<command xmlns='http://jabber.org/protocol/commands'
                      sessionid='config:20020923T213616Z-700'
                      node='config'
                      action='cancel'/>",
        );
        assert_eq!(request.action, Some(Action::Cancel));
        assert_eq!(request.status, None);

        let response = roundtrip(
            "<command xmlns='http://jabber.org/protocol/commands'
                      sessionid='config:20020923T213616Z-700'
                      node='config'
                      status='canceled'/>",
        );
        assert_eq!(response.status, Some(Status::Canceled));
        assert_eq!(response.action, None);
        assert_eq!(
            response,
            Command::canceled("config", "config:20020923T213616Z-700")
        );
    }

    // XEP-0050 Example 33: the command echoed in a bad-locale error.
    #[test]
    fn lang_attribute() {
        let cmd = roundtrip(
            "<command xmlns='http://jabber.org/protocol/commands'
                      node='list'
                      action='execute'
                      xml:lang='fr-ca'/>",
        );
        assert_eq!(cmd.lang.as_deref(), Some("fr-ca"));
        assert_eq!(cmd, Command::request("list").with_lang("fr-ca"));
    }

    #[test]
    fn note_types() {
        let cmd = roundtrip(
            "<command xmlns='http://jabber.org/protocol/commands'
                      node='n' sessionid='s' status='completed'>
                <note>implicit</note>
                <note type='warn'>careful</note>
                <note type='error'>failed</note>
              </command>",
        );
        assert_eq!(
            cmd.notes,
            vec![
                Note::info("implicit"),
                Note::warn("careful"),
                Note::error("failed"),
            ]
        );
        let bad = elem(
            "<command xmlns='http://jabber.org/protocol/commands' node='n'>
                <note type='fatal'>?</note>
              </command>",
        );
        assert!(Command::try_from(bad).is_err());
    }

    #[test]
    fn builders_serialise_in_order() {
        let form = DataForm {
            type_: DataFormType::Result_,
            title: Some("Done".to_owned()),
            instructions: None,
            fields: Vec::new(),
        };
        let cmd = Command::completed("n", "s")
            .with_note(NoteType::Warn, "w")
            .with_form(form)
            .with_actions(Actions::default());
        let element = Element::from(cmd.clone());
        assert_eq!(element.attr("node"), Some("n"));
        assert_eq!(element.attr("sessionid"), Some("s"));
        assert_eq!(element.attr("status"), Some("completed"));
        assert_eq!(element.attr("action"), None);
        let names: Vec<_> = element.children().map(|c| (c.name(), c.ns())).collect();
        assert_eq!(
            names,
            vec![
                ("actions", NS.to_owned()),
                ("note", NS.to_owned()),
                ("x", "jabber:x:data".to_owned()),
            ]
        );
        assert_eq!(Command::try_from(element).expect("reparses"), cmd);
    }

    #[test]
    fn unknown_action_fails() {
        let bad = elem(
            "<command xmlns='http://jabber.org/protocol/commands'
                      node='config' action='explode'/>",
        );
        assert!(Command::has_malformed_action(&bad));
        match Command::try_from(bad) {
            Err(FromElementError::Invalid(XsoError::TextParseError(_))) => {}
            other => panic!("expected a text parse error, got {other:?}"),
        }
        // Valid or absent actions are not malformed.
        assert!(!Command::has_malformed_action(&elem(
            "<command xmlns='http://jabber.org/protocol/commands' node='c' action='next'/>"
        )));
        assert!(!Command::has_malformed_action(&elem(
            "<command xmlns='http://jabber.org/protocol/commands' node='c'/>"
        )));
    }

    #[test]
    fn unknown_status_and_execute_fail() {
        assert!(
            Command::try_from(elem(
                "<command xmlns='http://jabber.org/protocol/commands' node='c' status='done'/>"
            ))
            .is_err()
        );
        assert!(
            Command::try_from(elem(
                "<command xmlns='http://jabber.org/protocol/commands' node='c'>
                    <actions execute='finish'/>
                  </command>"
            ))
            .is_err()
        );
    }

    #[test]
    fn missing_node_fails() {
        assert!(
            Command::try_from(elem(
                "<command xmlns='http://jabber.org/protocol/commands' action='execute'/>"
            ))
            .is_err()
        );
    }

    #[test]
    fn other_element_is_a_mismatch() {
        let query = elem("<query xmlns='http://jabber.org/protocol/disco#info'/>");
        assert!(matches!(
            Command::try_from(query),
            Err(FromElementError::Mismatch(_))
        ));
    }

    #[test]
    fn action_text_roundtrip() {
        for action in [
            Action::Execute,
            Action::Cancel,
            Action::Prev,
            Action::Next,
            Action::Complete,
        ] {
            assert_eq!(action.to_string().parse::<Action>().ok(), Some(action));
        }
        assert!("Execute".parse::<Action>().is_err());
        assert_eq!(Action::default(), Action::Execute);
        assert_eq!(NoteType::default(), NoteType::Info);
    }

    #[test]
    fn error_payloads() {
        let cases = [
            ("malformed-action", CommandError::MalformedAction),
            ("bad-action", CommandError::BadAction),
            ("bad-locale", CommandError::BadLocale),
            ("bad-payload", CommandError::BadPayload),
            ("bad-sessionid", CommandError::BadSessionid),
            ("session-expired", CommandError::SessionExpired),
        ];
        for (name, expected) in cases {
            let xml = format!("<{name} xmlns='http://jabber.org/protocol/commands'/>");
            let parsed = CommandError::try_from(elem(&xml)).expect("error payload parses");
            assert_eq!(parsed, expected);
            let serialised = Element::from(parsed);
            assert!(serialised.is(name, NS));
            assert_eq!(serialised.children().count(), 0);
            assert_eq!(serialised.attrs().into_iter().count(), 0);
            assert_eq!(
                CommandError::try_from(serialised).expect("reparses"),
                expected
            );
        }
    }

    #[test]
    fn error_payload_mismatches() {
        // Another element of the same namespace is not an error payload.
        assert!(matches!(
            CommandError::try_from(elem(
                "<command xmlns='http://jabber.org/protocol/commands' node='x'/>"
            )),
            Err(FromElementError::Mismatch(_))
        ));
        // Nor is a same-named element of another namespace.
        assert!(matches!(
            CommandError::try_from(elem(
                "<bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
            )),
            Err(FromElementError::Mismatch(_))
        ));
    }

    // XEP-0050 Example 33's `<error/>` (without the legacy `code`), and the
    // session-expired pairing of §4.6.
    #[test]
    fn stanza_errors() {
        let error = StanzaError::from(CommandError::BadLocale);
        assert_eq!(error.type_, ErrorType::Modify);
        assert_eq!(error.defined_condition, DefinedCondition::BadRequest);
        assert_eq!(
            CommandError::from_stanza_error(&error),
            Some(CommandError::BadLocale)
        );

        // Through the wire and back.
        let reparsed = StanzaError::try_from(Element::from(error)).expect("stanza error reparses");
        assert_eq!(
            CommandError::from_stanza_error(&reparsed),
            Some(CommandError::BadLocale)
        );

        let expired = CommandError::SessionExpired.into_stanza_error_with_text("en", "gone");
        assert_eq!(expired.type_, ErrorType::Cancel);
        assert_eq!(expired.defined_condition, DefinedCondition::NotAllowed);
        assert_eq!(expired.texts.get("en").map(String::as_str), Some("gone"));
        let other = expired.other.as_ref().expect("payload present");
        assert!(other.is("session-expired", NS));

        // A received error in the XEP's own shape.
        let received = StanzaError::try_from(elem(
            "<error xmlns='jabber:component:accept' type='modify'>
                <bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>
                <bad-sessionid xmlns='http://jabber.org/protocol/commands'/>
              </error>",
        ))
        .expect("stanza error parses");
        assert_eq!(
            CommandError::from_stanza_error(&received),
            Some(CommandError::BadSessionid)
        );
    }
}
