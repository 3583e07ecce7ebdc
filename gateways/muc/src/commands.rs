//! Ad-hoc commands for the service's `admins` (XEP-0050), under the node
//! names Prosody's mod_muc uses so that admin tools work unchanged:
//! - `http://prosody.im/protocol/muc#destroy`: destroy rooms by JID.

use std::sync::Arc;

use satellite::adhoc::{Access, AdhocCommand, CommandSession, Step};
use satellite::jid::BareJid;
use satellite::xmpp::data_forms::{DataForm, DataFormType, Field, FieldType};
use satellite::{Context, HandlerError, async_trait};

use crate::plugin::Muc;

/// Destroys rooms: every occupant is told (`<destroy/>`), a persistent
/// room is deleted from the store with its archive.
pub struct DestroyRooms(pub Arc<Muc>);

#[async_trait]
impl AdhocCommand for DestroyRooms {
    fn node(&self) -> &str {
        "http://prosody.im/protocol/muc#destroy"
    }
    fn name(&self) -> &str {
        "Destroy rooms"
    }
    fn access(&self) -> Access {
        Access::Admins
    }
    async fn execute(&self, cx: &Context, s: &mut CommandSession) -> Result<Step, HandlerError> {
        let Some(rooms) = s.values.get("rooms").filter(|r| !r.is_empty()).cloned() else {
            let mut field = Field::new("rooms", FieldType::JidMulti);
            field.label = Some("Rooms to destroy".into());
            field.required = true;
            let form = DataForm::new(
                DataFormType::Form,
                "http://prosody.im/protocol/muc#destroy",
                vec![field],
            );
            return Ok(Step::form(form));
        };
        let mut destroyed = Vec::new();
        for room in rooms.iter().flat_map(|r| r.lines()).map(str::trim) {
            let Ok(jid) = BareJid::new(room) else {
                return Err(HandlerError::bad_request(format!(
                    "`{room}` is not a room JID"
                )));
            };
            if jid.domain().as_str() != cx.jid().as_str() || jid.node().is_none() {
                return Err(HandlerError::bad_request(format!(
                    "`{room}` is not a room of this service"
                )));
            }
            if self.0.destroy_room(cx, &jid).await? {
                destroyed.push(jid.to_string());
            }
        }
        tracing::info!(rooms = ?destroyed, by = %s.requester, "muc: rooms destroyed by an admin");
        Ok(Step::done().note_info(format!(
            "The following rooms were destroyed:\n{}",
            destroyed.join("\n")
        )))
    }
}
