//! The archive side of the service: MAM queries answered on the room's
//! lane (access checked on the room in memory, then one read of the
//! store, then the results and the `<fin/>`), and retention.

use std::sync::{Arc, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use satellite::jid::BareJid;
use satellite::{Context, Element, HandlerError, IqRequest, IqResult};

use super::{Muc, into_iq_result, send};
use crate::mam::{self, Request};
use crate::store::ArchiveError;

/// Retention runs at most this often.
const EXPIRE_EVERY: Duration = Duration::from_secs(3600);

impl Muc {
    /// Answers a MAM request to the room `jid` (which exists).
    pub(super) async fn answer_mam(
        &self,
        cx: &Context,
        iq: &IqRequest,
        stanza: &Element,
        jid: &BareJid,
        request: Result<Request, crate::stanza::Error>,
    ) -> IqResult {
        let room_jid = jid.as_str();
        let refuse = |e: crate::stanza::Error| match e.reply_to(stanza, Some(room_jid)) {
            Some(reply) => into_iq_result(reply),
            None => Err(HandlerError::bad_request("")),
        };
        let request = match request {
            Ok(r) => r,
            Err(e) => return refuse(e),
        };
        let env = self.env();
        let access = {
            let Some(live) = self.rooms().get(jid).cloned() else {
                return Err(HandlerError::item_not_found());
            };
            let live = live.lock().unwrap_or_else(PoisonError::into_inner);
            mam::access(&live.room, &env, &iq.from)
        };
        let access = match access {
            Ok(a) => a,
            Err(e) => return refuse(e),
        };
        let store = self.store().map_err(HandlerError::Internal)?;
        let name = jid.node().map(|n| n.to_string()).unwrap_or_default();
        let query = match request {
            Request::Form => return Ok(Some(mam::form())),
            Request::Metadata => {
                let bounds = store.bounds(&name).await.map_err(internal)?;
                return Ok(Some(mam::metadata(bounds.as_ref())));
            }
            Request::Query(q) => q,
        };
        if let Err(e) = mam::check_query(&query, access) {
            return refuse(e);
        }
        let paging = query.archive.paging.clone();
        let page = match store.query(&name, query.archive.clone()).await {
            Ok(page) => page,
            Err(ArchiveError::ItemNotFound { .. }) => {
                return refuse(crate::stanza::Error::new("cancel", "item-not-found"));
            }
            Err(e) => return Err(internal(e)),
        };
        let to = iq.from.as_str();
        let results: Vec<Element> = page
            .messages
            .iter()
            .filter_map(|m| mam::result_message(room_jid, to, query.queryid.as_deref(), m, access))
            .collect();
        send(cx, results).await;
        Ok(Some(mam::fin(&page, &paging)))
    }

    /// Deletes archived messages older than `archive_expires_after`, now
    /// and then, until the service stops.
    pub(super) fn spawn_retention(self: &Arc<Self>, cx: &Context) {
        let Some(keep) = self.settings.archive_expires_after else {
            return;
        };
        let this = Arc::clone(self);
        let token = cx.shutdown_token();
        let every = (keep / 10).clamp(Duration::from_secs(1), EXPIRE_EVERY);
        cx.spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tick.tick() => this.expire_once(keep).await,
                }
            }
        });
    }

    async fn expire_once(&self, keep: Duration) {
        let Ok(store) = self.store() else {
            return;
        };
        let cutoff = SystemTime::now()
            .checked_sub(keep)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_micros() as i64);
        match store.expire(cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, "expired archived messages"),
            Err(e) => tracing::warn!(error = %e, "archive retention failed"),
        }
    }
}

fn internal(e: ArchiveError) -> HandlerError {
    HandlerError::Internal(Box::new(e))
}
