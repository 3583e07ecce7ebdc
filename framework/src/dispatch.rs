//! Ordering: stanzas for one address are handled one after another, stanzas
//! for different addresses concurrently.
//!
//! Each address gets a lane (a task with a bounded queue) that exists while
//! it has work. The lane key is the bare `to` JID, so a MUC room sees its
//! stanzas in order. Stanzas to the component's own JID are keyed by the
//! sender's bare JID as well: each user's requests to the service stay in
//! order, but one user's slow request does not hold up everybody else's.
//! Work queued with [`Context::on_lane`](crate::Context::on_lane) runs in
//! the same lanes, so a room's state has one writer.
//!
//! Limits: a lane holds at most `lane_limit` items and at most
//! `max_lanes` lanes exist at once. Past either, a request or message is
//! answered with `resource-constraint`; a presence waits a little for room
//! (it cannot be answered meaningfully and must not vanish: a lost
//! unavailable presence leaves a ghost in a room), then is answered with
//! an error the sender sees.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::mpsc;
use xmpp_parsers::jid::{BareJid, Jid};
use xmpp_parsers::minidom::Element;

use crate::Context;
use crate::error::{HandlerError, SendError};
use crate::router::{RawHeader, Router};

/// How long an idle lane lives before its task exits.
const LANE_IDLE: Duration = Duration::from_secs(30);
/// How long a presence waits for room in a full lane before it is
/// answered with an error.
const PRESENCE_WAIT: Duration = Duration::from_secs(5);

/// What a lane runs, in order.
pub(crate) enum LaneItem {
    /// An inbound stanza.
    Stanza(Element),
    /// Work queued with `Context::on_lane`.
    Work(BoxFuture<'static, ()>),
}

pub(crate) struct Dispatcher {
    router: Arc<Router>,
    cx: Context,
    lanes: Mutex<Option<HashMap<String, mpsc::Sender<LaneItem>>>>,
    lane_limit: usize,
    max_lanes: usize,
}

/// Why an item found no place in a lane.
enum Refusal {
    Stopping,
    LaneFull,
    TooManyLanes,
}

impl Dispatcher {
    pub(crate) fn new(
        router: Arc<Router>,
        cx: Context,
        lane_limit: usize,
        max_lanes: usize,
    ) -> Arc<Self> {
        let this = Arc::new(Self {
            router,
            cx: cx.clone(),
            lanes: Mutex::new(Some(HashMap::new())),
            lane_limit: lane_limit.max(1),
            max_lanes: max_lanes.max(1),
        });
        cx.set_dispatcher(&this);
        this
    }

    /// The component's context.
    pub(crate) fn cx(&self) -> &Context {
        &self.cx
    }

    /// Hands a stanza to its lane. Requests and messages never wait: a
    /// full lane answers them with an error. A presence waits (briefly)
    /// for room, then is answered with an error.
    pub(crate) async fn dispatch(self: &Arc<Self>, el: Element) {
        let key = self.lane_key(&el);
        let item = match self.try_queue(&key, LaneItem::Stanza(el)) {
            Ok(()) => return,
            Err((LaneItem::Stanza(el), Refusal::LaneFull)) if el.name() == "presence" => {
                match self.wait_queue(&key, LaneItem::Stanza(el)).await {
                    Ok(()) => return,
                    Err(refused) => refused,
                }
            }
            Err(refused) => refused,
        };
        let (LaneItem::Stanza(el), why) = item else {
            return;
        };
        let metrics = self.cx.metrics();
        let error = match why {
            Refusal::Stopping => {
                metrics.refused_stopping.increment(1);
                HandlerError::service_unavailable()
            }
            Refusal::LaneFull => {
                tracing::warn!(lane = %key, "lane full; refusing a stanza");
                metrics.refused_lane_full.increment(1);
                HandlerError::resource_constraint("too many pending requests")
            }
            Refusal::TooManyLanes => {
                tracing::warn!(
                    max_lanes = self.max_lanes,
                    "too many lanes; refusing a stanza"
                );
                metrics.refused_lanes.increment(1);
                HandlerError::resource_constraint("the service is busy; try again later")
            }
        };
        self.refuse(&el, error);
    }

    /// Queues work on the lane of `address`, waiting for room.
    pub(crate) async fn queue_work(
        self: &Arc<Self>,
        address: &BareJid,
        work: BoxFuture<'static, ()>,
    ) -> Result<(), SendError> {
        let key = if address == self.cx.jid() {
            format!("{address}\u{0}")
        } else {
            address.to_string()
        };
        match self.try_queue(&key, LaneItem::Work(work)) {
            Ok(()) => Ok(()),
            Err((item, Refusal::LaneFull)) => self
                .wait_queue_forever(&key, item)
                .await
                .map_err(|why| self.send_error(why)),
            Err((_, why)) => Err(self.send_error(why)),
        }
    }

    fn send_error(&self, why: Refusal) -> SendError {
        match why {
            Refusal::Stopping => SendError::Closed,
            Refusal::LaneFull | Refusal::TooManyLanes => SendError::TooManyLanes(self.max_lanes),
        }
    }

    /// Puts an item in its lane without waiting, starting the lane if
    /// needed.
    fn try_queue(self: &Arc<Self>, key: &str, item: LaneItem) -> Result<(), (LaneItem, Refusal)> {
        let mut guard = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(lanes) = guard.as_mut() else {
            return Err((item, Refusal::Stopping));
        };
        let item = match lanes.get(key) {
            None => item,
            Some(tx) => match tx.try_send(item) {
                Ok(()) => return Ok(()),
                // The lane went idle and exited; start a new one.
                Err(mpsc::error::TrySendError::Closed(item)) => {
                    lanes.remove(key);
                    item
                }
                Err(mpsc::error::TrySendError::Full(item)) => {
                    return Err((item, Refusal::LaneFull));
                }
            },
        };
        if lanes.len() >= self.max_lanes {
            return Err((item, Refusal::TooManyLanes));
        }
        let (tx, rx) = mpsc::channel(self.lane_limit);
        // A fresh channel has room for one.
        let _ = tx.try_send(item);
        lanes.insert(key.to_owned(), tx);
        drop(guard);
        let this = Arc::clone(self);
        self.cx.tracker().spawn(this.lane(key.to_owned(), rx));
        Ok(())
    }

    /// Waits for room in a full lane, at most [`PRESENCE_WAIT`].
    async fn wait_queue(
        self: &Arc<Self>,
        key: &str,
        item: LaneItem,
    ) -> Result<(), (LaneItem, Refusal)> {
        let Some(tx) = self.sender(key) else {
            return self.try_queue(key, item);
        };
        match tx.send_timeout(item, PRESENCE_WAIT).await {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendTimeoutError::Timeout(item)) => Err((item, Refusal::LaneFull)),
            // The lane exited meanwhile: start a new one.
            Err(mpsc::error::SendTimeoutError::Closed(item)) => self.try_queue(key, item),
        }
    }

    /// Waits for room in a full lane for as long as it takes (work queued
    /// by the service itself: backpressure, not refusal).
    async fn wait_queue_forever(
        self: &Arc<Self>,
        key: &str,
        item: LaneItem,
    ) -> Result<(), Refusal> {
        let Some(tx) = self.sender(key) else {
            return self.try_queue(key, item).map_err(|(_, why)| why);
        };
        match tx.send(item).await {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendError(item)) => self.try_queue(key, item).map_err(|(_, why)| why),
        }
    }

    fn sender(&self, key: &str) -> Option<mpsc::Sender<LaneItem>> {
        let guard = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        guard.as_ref()?.get(key).cloned()
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

    async fn lane(self: Arc<Self>, key: String, mut rx: mpsc::Receiver<LaneItem>) {
        loop {
            match tokio::time::timeout(LANE_IDLE, rx.recv()).await {
                Ok(Some(LaneItem::Stanza(el))) => self.router.handle(&self.cx, el).await,
                Ok(Some(LaneItem::Work(work))) => work.await,
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

    /// Answers a stanza that found no lane. Never answers an error (or a
    /// result); a presence gets a presence error, which the sender sees
    /// (a MUC client shows a failed join).
    fn refuse(&self, el: &Element, error: HandlerError) {
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
