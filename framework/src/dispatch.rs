//! Ordering: stanzas for one address are handled one after another, stanzas
//! for different addresses concurrently.
//!
//! Each address gets a lane (a task with a bounded queue) that exists while
//! it has work. The lane key is the bare `to` JID, so a MUC room sees its
//! stanzas in order. Stanzas to the component's own JID are keyed by the
//! sender's bare JID as well: each user's requests to the service stay in
//! order, but one user's slow request does not hold up everybody else's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
use xmpp_parsers::jid::Jid;
use xmpp_parsers::minidom::Element;

use crate::Context;
use crate::error::HandlerError;
use crate::router::{RawHeader, Router};

/// How long an idle lane lives before its task exits.
const LANE_IDLE: Duration = Duration::from_secs(30);

pub(crate) struct Dispatcher {
    router: Arc<Router>,
    cx: Context,
    lanes: Mutex<Option<HashMap<String, mpsc::Sender<Element>>>>,
    lane_limit: usize,
}

impl Dispatcher {
    pub(crate) fn new(router: Arc<Router>, cx: Context, lane_limit: usize) -> Arc<Self> {
        Arc::new(Self {
            router,
            cx,
            lanes: Mutex::new(Some(HashMap::new())),
            lane_limit: lane_limit.max(1),
        })
    }

    /// Hands a stanza to its lane; never waits. A full lane or a stopping
    /// component answers with an error instead of queueing without bound.
    pub(crate) fn dispatch(self: &Arc<Self>, el: Element) {
        let key = self.lane_key(&el);
        let mut guard = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(lanes) = guard.as_mut() else {
            drop(guard);
            crate::metrics::refused(self.cx.jid().as_str(), "stopping");
            self.refuse(&el, HandlerError::service_unavailable());
            return;
        };
        let el = match lanes.get(&key) {
            None => el,
            Some(tx) => match tx.try_send(el) {
                Ok(()) => return,
                // The lane went idle and exited; start a new one.
                Err(mpsc::error::TrySendError::Closed(el)) => el,
                Err(mpsc::error::TrySendError::Full(el)) => {
                    drop(guard);
                    tracing::warn!(lane = %key, "lane full; refusing a stanza");
                    crate::metrics::refused(self.cx.jid().as_str(), "lane_full");
                    self.refuse(
                        &el,
                        HandlerError::resource_constraint("too many pending requests"),
                    );
                    return;
                }
            },
        };
        let (tx, rx) = mpsc::channel(self.lane_limit);
        // A fresh channel has room for one.
        let _ = tx.try_send(el);
        lanes.insert(key.clone(), tx);
        drop(guard);
        let this = Arc::clone(self);
        self.cx.tracker().spawn(this.lane(key, rx));
    }

    /// Stops taking stanzas; lanes finish what they hold, then exit.
    /// Returns whether this call closed it (false if it was closed already).
    pub(crate) fn close(&self) -> bool {
        self.lanes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .is_some()
    }

    async fn lane(self: Arc<Self>, key: String, mut rx: mpsc::Receiver<Element>) {
        loop {
            match tokio::time::timeout(LANE_IDLE, rx.recv()).await {
                Ok(Some(el)) => self.router.handle(&self.cx, el).await,
                Ok(None) => return,
                Err(_) => {
                    let mut guard = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
                    // Checked under the lock: nothing can be queued between
                    // this check and the removal.
                    if rx.is_empty() {
                        if let Some(lanes) = guard.as_mut() {
                            lanes.remove(&key);
                        }
                        return;
                    }
                }
            }
        }
    }

    fn refuse(&self, el: &Element, error: HandlerError) {
        if el.name() == "presence" {
            return;
        }
        if let Some(reply) = RawHeader::of(el).error_reply(error) {
            let cx = self.cx.clone();
            self.cx.tracker().spawn(async move {
                let _ = cx.send(reply).await;
            });
        }
    }

    fn lane_key(&self, el: &Element) -> String {
        let bare = |attr: &str| {
            el.attr(attr)
                .and_then(|j| Jid::new(j).ok())
                .map(|j| j.to_bare().to_string())
        };
        let to = bare("to").unwrap_or_else(|| self.cx.jid().to_string());
        if to == self.cx.jid().as_str() {
            let from = bare("from").unwrap_or_default();
            format!("{to}\u{0}{from}")
        } else {
            to
        }
    }
}
