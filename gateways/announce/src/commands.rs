//! XEP-0133 ad-hoc commands for the service's `admins`, under the node
//! names Prosody and ejabberd use, so admin clients work unchanged:
//! `announce` (to online users), `set-motd`, `edit-motd`, `delete-motd`.

use std::sync::Arc;

use satellite::adhoc::{Access, AdhocCommand, CommandSession, Step};
use satellite::jid::Jid;
use satellite::xmpp::data_forms::{DataForm, DataFormType, Field, FieldType};
use satellite::{Context, HandlerError, async_trait};

use crate::plugin::{Announce, Audience};

/// XEP-0133's form type.
const FORM_TYPE: &str = "http://jabber.org/protocol/admin";
/// The node names (XEP-0133).
pub const ANNOUNCE: &str = "http://jabber.org/protocol/admin#announce";
/// Set the message of the day.
pub const SET_MOTD: &str = "http://jabber.org/protocol/admin#set-motd";
/// Edit the message of the day.
pub const EDIT_MOTD: &str = "http://jabber.org/protocol/admin#edit-motd";
/// Delete the message of the day.
pub const DELETE_MOTD: &str = "http://jabber.org/protocol/admin#delete-motd";

/// Every command of the service.
pub fn all(announce: &Arc<Announce>) -> Vec<Arc<dyn AdhocCommand>> {
    vec![
        Arc::new(SendAnnouncement(Arc::clone(announce))),
        Arc::new(SetMotd {
            announce: Arc::clone(announce),
            edit: false,
        }),
        Arc::new(SetMotd {
            announce: Arc::clone(announce),
            edit: true,
        }),
        Arc::new(DeleteMotd(Arc::clone(announce))),
    ]
}

fn text_form(var: &str, label: &str, value: Option<String>) -> DataForm {
    let mut field = Field::new(var, FieldType::TextMulti);
    field.label = Some(label.into());
    field.required = true;
    if let Some(value) = value {
        field.values = value.lines().map(str::to_owned).collect();
    }
    DataForm::new(DataFormType::Form, FORM_TYPE, vec![field])
}

/// The submitted text of a text-multi field, lines joined.
fn submitted(s: &CommandSession, var: &str) -> Option<String> {
    let lines = s.values.get(var)?;
    let text = lines.join("\n").trim().to_owned();
    (!text.is_empty()).then_some(text)
}

/// Sends an announcement to every online user; the delivery report
/// follows as a message.
pub struct SendAnnouncement(pub Arc<Announce>);

#[async_trait]
impl AdhocCommand for SendAnnouncement {
    fn node(&self) -> &str {
        ANNOUNCE
    }
    fn name(&self) -> &str {
        "Send Announcement to Online Users"
    }
    fn access(&self) -> Access {
        Access::Admins
    }
    async fn execute(&self, cx: &Context, s: &mut CommandSession) -> Result<Step, HandlerError> {
        let Some(body) = submitted(s, "announcement") else {
            return Ok(Step::form(text_form("announcement", "Announcement", None)));
        };
        let targets = self.0.targets(Audience::Online)?.len();
        self.0.start(
            cx,
            Audience::Online,
            body,
            Jid::from(cx.jid().clone()),
            s.requester.clone(),
        );
        Ok(Step::done().note_info(format!(
            "Announcement sent to {targets} online resource{}; the delivery report follows as a message.",
            if targets == 1 { "" } else { "s" }
        )))
    }
}

/// Sets (or edits) the message of the day: each user gets it once, at
/// their next login.
pub struct SetMotd {
    announce: Arc<Announce>,
    edit: bool,
}

#[async_trait]
impl AdhocCommand for SetMotd {
    fn node(&self) -> &str {
        if self.edit { EDIT_MOTD } else { SET_MOTD }
    }
    fn name(&self) -> &str {
        if self.edit {
            "Edit Message of the Day"
        } else {
            "Set Message of the Day"
        }
    }
    fn access(&self) -> Access {
        Access::Admins
    }
    async fn execute(&self, _cx: &Context, s: &mut CommandSession) -> Result<Step, HandlerError> {
        let Some(body) = submitted(s, "motd") else {
            let current = self
                .edit
                .then(|| self.announce.motd().map(|m| m.body))
                .flatten();
            return Ok(Step::form(text_form("motd", "Message of the day", current)));
        };
        self.announce.set_motd(&body)?;
        Ok(
            Step::done()
                .note_info("Message of the day set; each user gets it at their next login."),
        )
    }
}

/// Deletes the message of the day.
pub struct DeleteMotd(pub Arc<Announce>);

#[async_trait]
impl AdhocCommand for DeleteMotd {
    fn node(&self) -> &str {
        DELETE_MOTD
    }
    fn name(&self) -> &str {
        "Delete Message of the Day"
    }
    fn access(&self) -> Access {
        Access::Admins
    }
    async fn execute(&self, _cx: &Context, _s: &mut CommandSession) -> Result<Step, HandlerError> {
        let note = if self.0.delete_motd()? {
            "Message of the day deleted."
        } else {
            "There was no message of the day."
        };
        Ok(Step::done().note_info(note))
    }
}
