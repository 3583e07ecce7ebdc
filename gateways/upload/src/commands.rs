//! Ad-hoc commands for the component's `admins` (XEP-0050):
//! - `stats`: what is stored and how much room is left;
//! - `delete`: remove one file by its URL at once (abuse reports,
//!   mistakes), without waiting for it to expire.

use satellite::adhoc::{Access, AdhocCommand, CommandSession, Step};
use satellite::xmpp::data_forms::{DataForm, DataFormType, Field, FieldType};
use satellite::{Context, HandlerError, async_trait};

use crate::catalog::Catalog;
use crate::http::path::{parse, url_path};
use crate::service::{Started, now, started};

/// `stats`: stored files and bytes, open slots, uploaders, free disk.
pub struct Stats(pub Started);

#[async_trait]
impl AdhocCommand for Stats {
    fn node(&self) -> &str {
        "stats"
    }
    fn name(&self) -> &str {
        "Upload statistics"
    }
    fn access(&self) -> Access {
        Access::Admins
    }
    async fn execute(&self, _cx: &Context, _s: &mut CommandSession) -> Result<Step, HandlerError> {
        let service = started(&self.0)?;
        let t = now();
        let stats = service
            .catalog
            .run(move |c| Catalog::stats(c, t))
            .await
            .map_err(HandlerError::internal)?;
        let mut fields = vec![
            Field::text_single("stored-files", &stats.usage.files.to_string()),
            Field::text_single("stored-bytes", &stats.usage.bytes.to_string()),
            Field::text_single("open-slots", &stats.open_slots.to_string()),
            Field::text_single("uploaders", &stats.owners.to_string()),
        ];
        if let Some(free) = service.storage.free_space() {
            fields.push(Field::text_single("free-bytes", &free.to_string()));
        }
        let form = DataForm::new(DataFormType::Result_, "urn:satellite:upload:stats", fields);
        Ok(Step::done_with(form))
    }
}

/// `delete`: asks for a file's URL, then deletes the file.
pub struct Delete(pub Started);

#[async_trait]
impl AdhocCommand for Delete {
    fn node(&self) -> &str {
        "delete"
    }
    fn name(&self) -> &str {
        "Delete an uploaded file"
    }
    fn access(&self) -> Access {
        Access::Admins
    }
    async fn execute(&self, _cx: &Context, s: &mut CommandSession) -> Result<Step, HandlerError> {
        if s.stage == 0 {
            let mut url = Field::new("url", FieldType::TextSingle);
            url.label = Some("The file's URL (the GET URL that was shared)".into());
            url.required = true;
            let form = DataForm::new(DataFormType::Form, "urn:satellite:upload:delete", vec![url]);
            return Ok(Step::form(form));
        }
        let service = started(&self.0)?;
        let url = s.value("url").unwrap_or_default().trim();
        let (id, filename) = parse(url_path(url))
            .ok_or_else(|| HandlerError::bad_request("that is not the URL of an uploaded file"))?;
        let entry = service
            .find(&id, &filename)
            .await
            .map_err(HandlerError::internal)?
            .ok_or_else(HandlerError::item_not_found)?;
        if service
            .delete(vec![id.clone()])
            .await
            .map_err(HandlerError::internal)?
            .is_empty()
        {
            return Err(HandlerError::internal("the file could not be deleted"));
        }
        let _ = service.update_usage().await;
        tracing::info!(%id, by = %s.requester, "upload: file deleted by an admin");
        Ok(Step::done().note_info(format!(
            "Deleted {} ({} bytes, uploaded by {})",
            entry.filename,
            entry.size,
            entry.owner.as_deref().unwrap_or("the server's own slots")
        )))
    }
}
