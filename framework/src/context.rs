//! The handle handlers use to talk to the world.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::{BareJid, Jid};
use xmpp_parsers::minidom::Element;

use crate::error::{RequestError, SendError};

/// What a handler gets: the component's JID, a way to send stanzas and to
/// make requests, a place to spawn tracked tasks, and the shutdown signal.
///
/// Cheap to clone.
#[derive(Clone)]
pub struct Context {
    shared: Arc<Shared>,
}

struct Shared {
    jid: BareJid,
    outbox: Outbox,
    pending: Mutex<HashMap<String, Pending>>,
    next_id: AtomicU64,
    id_prefix: String,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    request_timeout: Duration,
}

struct Pending {
    to: Option<Jid>,
    reply: oneshot::Sender<Iq>,
}

/// The bounded queue between senders and the link. It outlives a
/// connection, so stanzas sent while the link is down go out after the
/// reconnect.
pub(crate) struct Outbox {
    tx: mpsc::Sender<Element>,
    connected: AtomicBool,
    capacity: usize,
}

impl Context {
    pub(crate) fn new(
        jid: BareJid,
        queue_limit: usize,
        request_timeout: Duration,
        shutdown: CancellationToken,
    ) -> (Self, mpsc::Receiver<Element>) {
        let capacity = queue_limit.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let shared = Shared {
            jid,
            outbox: Outbox {
                tx,
                connected: AtomicBool::new(false),
                capacity,
            },
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            id_prefix: format!("sat{:08x}", rand::random::<u32>()),
            tracker: TaskTracker::new(),
            shutdown,
            request_timeout,
        };
        (
            Self {
                shared: Arc::new(shared),
            },
            rx,
        )
    }

    /// The component's JID (`upload.example.org`).
    pub fn jid(&self) -> &BareJid {
        &self.shared.jid
    }

    /// Queues a stanza for the server. A stanza without `from` is sent from
    /// the component's JID (servers require a `from` on component stanzas).
    ///
    /// While the link is up this waits for room in the queue; while it is
    /// down, stanzas are kept (up to the configured `queue_limit`) and
    /// delivered after the reconnect, and past that bound this returns
    /// [`SendError::QueueFull`].
    pub async fn send(&self, stanza: impl Into<Element>) -> Result<(), SendError> {
        let mut el = stanza.into();
        if el.attr("from").is_none() {
            crate::stream::set_attr(&mut el, "from", self.shared.jid.as_str());
        }
        let outbox = &self.shared.outbox;
        if outbox.connected.load(Ordering::Acquire) {
            outbox.tx.send(el).await.map_err(|_| SendError::Closed)
        } else {
            outbox.tx.try_send(el).map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => {
                    crate::metrics::refused(self.shared.jid.as_str(), "queue_full");
                    SendError::QueueFull(outbox.capacity)
                }
                mpsc::error::TrySendError::Closed(_) => SendError::Closed,
            })
        }
    }

    /// Sends an IQ `get`/`set` and waits for its reply (within the
    /// configured request timeout). Resolves to the result's payload, or to
    /// the error the peer answered with.
    pub async fn request(&self, iq: Iq) -> Result<Option<Element>, RequestError> {
        self.request_with_timeout(iq, self.shared.request_timeout)
            .await
    }

    /// Like [`Context::request`], with an explicit timeout.
    pub async fn request_with_timeout(
        &self,
        mut iq: Iq,
        timeout: Duration,
    ) -> Result<Option<Element>, RequestError> {
        if !matches!(iq, Iq::Get { .. } | Iq::Set { .. }) {
            return Err(RequestError::NotARequest);
        }
        let id = self.next_id();
        *iq.id_mut() = id.clone();
        let (tx, rx) = oneshot::channel();
        let pending = Pending {
            to: iq.to().cloned(),
            reply: tx,
        };
        self.pending().insert(id.clone(), pending);
        if let Err(e) = self.send(iq).await {
            self.pending().remove(&id);
            return Err(e.into());
        }
        let reply = tokio::time::timeout(timeout, rx).await;
        self.pending().remove(&id);
        match reply {
            Ok(Ok(Iq::Result { payload, .. })) => Ok(payload),
            Ok(Ok(Iq::Error { error, .. })) => Err(RequestError::Stanza(Box::new(error))),
            Ok(Ok(_)) | Ok(Err(_)) => Err(RequestError::Send(SendError::Closed)),
            Err(_) => Err(RequestError::Timeout(timeout)),
        }
    }

    /// Spawns a task the component waits for on shutdown (within its
    /// shutdown timeout). Long-running tasks should watch
    /// [`Context::shutdown_token`].
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.shared.tracker.spawn(task)
    }

    /// Cancelled when the component starts to stop.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shared.shutdown.clone()
    }

    /// Whether the component is stopping.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.shutdown.is_cancelled()
    }

    /// Whether the link to the server is up right now.
    pub fn is_connected(&self) -> bool {
        self.shared.outbox.connected.load(Ordering::Acquire)
    }

    /// A fresh stanza id, unique within this process run.
    pub fn next_id(&self) -> String {
        let n = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.shared.id_prefix)
    }

    /// Stops the component (a plugin failed to start).
    pub(crate) fn cancel(&self) {
        self.shared.shutdown.cancel();
    }

    pub(crate) fn tracker(&self) -> &TaskTracker {
        &self.shared.tracker
    }

    pub(crate) fn set_connected(&self, up: bool) {
        self.shared.outbox.connected.store(up, Ordering::Release);
    }

    /// Hands a reply to the request waiting for it. Returns the iq back if
    /// nobody waits for it (or it comes from someone the request did not go
    /// to, which would be a spoofing attempt).
    pub(crate) fn resolve(&self, iq: Iq) -> Option<Iq> {
        let mut pending = self.pending();
        let Some(waiting) = pending.get(iq.id()) else {
            return Some(iq);
        };
        let from_ok = match (&waiting.to, iq.from()) {
            (Some(to), Some(from)) => to == from,
            (Some(to), None) => to.as_str() == self.shared.jid.as_str(),
            (None, _) => true,
        };
        if !from_ok {
            return Some(iq);
        }
        match pending.remove(iq.id()) {
            Some(waiting) => {
                let _ = waiting.reply.send(iq);
                None
            }
            None => Some(iq),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        // A panic while holding this lock leaves the map consistent (each
        // operation is a single insert/remove), so poisoning is ignored.
        self.shared
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
