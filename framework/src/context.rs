//! The handle handlers use to talk to the world.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::{BareJid, Jid};
use xmpp_parsers::minidom::Element;

use crate::dispatch::Dispatcher;
use crate::error::{RequestError, SendError};
use crate::metrics::ComponentMetrics;
use crate::privilege::{PrivilegeCell, PrivilegeState, Privileges};

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
    /// One per link (`connections`); stanzas to one bare JID always take
    /// the same one, so they stay in order.
    outboxes: Box<[Outbox]>,
    pending: Mutex<HashMap<String, Pending>>,
    next_id: AtomicU64,
    id_prefix: String,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    request_timeout: Duration,
    dispatcher: OnceLock<Weak<Dispatcher>>,
    metrics: ComponentMetrics,
    privileges: PrivilegeCell,
}

struct Pending {
    to: Option<Jid>,
    reply: oneshot::Sender<Iq>,
}

/// Stanzas serialized by their sender, on their way to the link: one
/// stanza, or a batch from [`Context::send_many`] written as one.
///
/// Serializing in the sending task keeps the link task to writing bytes,
/// so a fan-out of N stanzas costs the link N memcpys, not N
/// serializations. The chunk holds its share of the queue's byte budget
/// until it is written.
pub(crate) struct Chunk {
    pub(crate) bytes: Vec<u8>,
    pub(crate) stanzas: usize,
    _budget: OwnedSemaphorePermit,
}

/// The bounded queue between senders and the link, bounded both in
/// entries and in bytes. It outlives a connection, so stanzas sent while
/// the link is down go out after the reconnect.
pub(crate) struct Outbox {
    tx: mpsc::Sender<Chunk>,
    bytes: Arc<Semaphore>,
    byte_limit: usize,
    connected: AtomicBool,
    capacity: usize,
    /// The server refused this link (it allows one connection per
    /// component): no longer chosen.
    retired: AtomicBool,
    /// Stanzas queued for this link so far.
    queued: AtomicU64,
    /// Told when the answer to this link's ping arrives.
    pong: tokio::sync::Notify,
}

/// The queue's bounds.
pub(crate) struct QueueLimits {
    /// Entries (a stanza, or one `send_many` batch).
    pub(crate) stanzas: usize,
    /// Bytes of serialized stanzas.
    pub(crate) bytes: usize,
}

impl Context {
    pub(crate) fn new(
        jid: BareJid,
        limits: QueueLimits,
        links: usize,
        request_timeout: Duration,
        shutdown: CancellationToken,
    ) -> (Self, Vec<mpsc::Receiver<Chunk>>) {
        let capacity = limits.stanzas.max(1);
        // A semaphore holds at most usize::MAX >> 3 permits, and a chunk
        // takes at most u32::MAX of them at once.
        let byte_limit = limits.bytes.clamp(1, u32::MAX as usize);
        let mut outboxes = Vec::new();
        let mut receivers = Vec::new();
        for _ in 0..links.max(1) {
            let (tx, rx) = mpsc::channel(capacity);
            outboxes.push(Outbox {
                tx,
                bytes: Arc::new(Semaphore::new(byte_limit)),
                byte_limit,
                connected: AtomicBool::new(false),
                capacity,
                retired: AtomicBool::new(false),
                queued: AtomicU64::new(0),
                pong: tokio::sync::Notify::new(),
            });
            receivers.push(rx);
        }
        let metrics = ComponentMetrics::new(jid.as_str());
        let shared = Shared {
            jid,
            outboxes: outboxes.into_boxed_slice(),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            id_prefix: format!("sat{:08x}", rand::random::<u32>()),
            tracker: TaskTracker::new(),
            shutdown,
            request_timeout,
            dispatcher: OnceLock::new(),
            metrics,
            privileges: PrivilegeCell::new(),
        };
        (
            Self {
                shared: Arc::new(shared),
            },
            receivers,
        )
    }

    /// The component's JID (`upload.example.org`).
    pub fn jid(&self) -> &BareJid {
        &self.shared.jid
    }

    /// Queues a stanza for the server. A stanza without `from` is sent from
    /// the component's JID (servers require a `from` on component stanzas).
    ///
    /// The stanza is serialized here, in the caller's task. While the link
    /// is up this waits for room in the queue (bounded in stanzas and in
    /// bytes); while it is down, stanzas are kept (up to the configured
    /// `queue_limit` and `queue_bytes`) and delivered after the reconnect,
    /// and past that bound this returns [`SendError::QueueFull`].
    pub async fn send(&self, stanza: impl Into<Element>) -> Result<(), SendError> {
        let el = stanza.into();
        let link = self.link_for(el.attr("to"));
        let mut bytes = Vec::with_capacity(256);
        self.serialize(el, &mut bytes);
        self.enqueue(link, bytes, 1).await
    }

    /// Queues many stanzas as one batch: serialized here, written by the
    /// link in one go, in order, with no other stanza in between. This is
    /// the way to fan out (one groupchat message to every occupant). Waits
    /// for room while the link is up; while it is down the whole batch is
    /// kept or refused with [`SendError::QueueFull`].
    pub async fn send_many<I>(&self, stanzas: I) -> Result<(), SendError>
    where
        I: IntoIterator,
        I::Item: Into<Element>,
    {
        let links = self.shared.outboxes.len();
        if links == 1 {
            let mut bytes = Vec::new();
            let mut count = 0;
            for stanza in stanzas {
                self.serialize(stanza.into(), &mut bytes);
                count += 1;
            }
            if count == 0 {
                return Ok(());
            }
            return self.enqueue(0, bytes, count).await;
        }
        // Several links: one batch per link, each recipient on its own.
        let mut batches: Vec<(Vec<u8>, usize)> = vec![(Vec::new(), 0); links];
        for stanza in stanzas {
            let el = stanza.into();
            let batch = &mut batches[self.link_for(el.attr("to"))];
            self.serialize(el, &mut batch.0);
            batch.1 += 1;
        }
        for (link, (bytes, count)) in batches.into_iter().enumerate() {
            if count > 0 {
                self.enqueue(link, bytes, count).await?;
            }
        }
        Ok(())
    }

    /// The link a stanza to `to` goes out on: with several, chosen by its
    /// bare JID among the links the server did not refuse, so that the
    /// stanzas to one address keep their order.
    fn link_for(&self, to: Option<&str>) -> usize {
        let outboxes = &self.shared.outboxes;
        if outboxes.len() == 1 {
            return 0;
        }
        let open: Vec<usize> = (0..outboxes.len())
            .filter(|&i| !outboxes[i].retired.load(Ordering::Acquire))
            .collect();
        if open.len() <= 1 {
            return open.first().copied().unwrap_or(0);
        }
        let bare = to.map_or("", |t| t.split_once('/').map_or(t, |(bare, _)| bare));
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&bare.to_ascii_lowercase(), &mut hasher);
        open[(std::hash::Hasher::finish(&hasher) % open.len() as u64) as usize]
    }

    fn serialize(&self, mut el: Element, out: &mut Vec<u8>) {
        if el.attr("from").is_none() {
            crate::stream::set_attr(&mut el, "from", self.shared.jid.as_str());
        }
        // Writing to a Vec cannot fail; a stanza that cannot be written
        // (an invalid name smuggled in) is dropped, not half-written.
        let start = out.len();
        if let Err(e) = el.write_to(out) {
            out.truncate(start);
            tracing::error!(error = %e, name = el.name(), "could not serialize a stanza; dropped");
        }
    }

    async fn enqueue(&self, link: usize, bytes: Vec<u8>, stanzas: usize) -> Result<(), SendError> {
        let outbox = &self.shared.outboxes[link];
        outbox.queued.fetch_add(stanzas as u64, Ordering::Relaxed);
        // A batch larger than the whole budget still goes, alone.
        let need = bytes.len().clamp(1, outbox.byte_limit) as u32;
        let full = || {
            self.shared.metrics.refused_queue_full.increment(1);
            SendError::QueueFull(outbox.capacity)
        };
        if outbox.connected.load(Ordering::Acquire) {
            let budget = Arc::clone(&outbox.bytes)
                .acquire_many_owned(need)
                .await
                .map_err(|_| SendError::Closed)?;
            let chunk = Chunk {
                bytes,
                stanzas,
                _budget: budget,
            };
            outbox.tx.send(chunk).await.map_err(|_| SendError::Closed)
        } else {
            let budget = Arc::clone(&outbox.bytes)
                .try_acquire_many_owned(need)
                .map_err(|_| full())?;
            let chunk = Chunk {
                bytes,
                stanzas,
                _budget: budget,
            };
            outbox.tx.try_send(chunk).map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => full(),
                mpsc::error::TrySendError::Closed(_) => SendError::Closed,
            })
        }
    }

    /// Runs `work` on the lane of `address`: after every stanza and piece
    /// of work already queued for that address, before any queued later,
    /// and never at the same time as another of them. This is how a timer,
    /// an ad-hoc command or an admin action changes a room's state with
    /// the room's single writer (a MUC room's lane is its bare JID).
    ///
    /// Returns once the work is queued (waiting for room in the lane);
    /// fails with [`SendError::Closed`] when the component is stopping
    /// and [`SendError::QueueFull`] when no lane can be opened.
    pub async fn on_lane<F>(&self, address: &BareJid, work: F) -> Result<(), SendError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let dispatcher = self
            .shared
            .dispatcher
            .get()
            .and_then(Weak::upgrade)
            .ok_or(SendError::Closed)?;
        dispatcher.queue_work(address, Box::pin(work)).await
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
        self.shared
            .outboxes
            .iter()
            .any(|o| o.connected.load(Ordering::Acquire))
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

    pub(crate) fn set_dispatcher(&self, dispatcher: &Arc<Dispatcher>) {
        let _ = self.shared.dispatcher.set(Arc::downgrade(dispatcher));
    }

    pub(crate) fn metrics(&self) -> &ComponentMetrics {
        &self.shared.metrics
    }

    pub(crate) fn tracker(&self) -> &TaskTracker {
        &self.shared.tracker
    }

    /// Stops choosing a link the server refused, and passes what was
    /// queued for it to the first link.
    pub(crate) async fn retire(
        &self,
        link: usize,
        mut queue: mpsc::Receiver<Chunk>,
        carry: Vec<Chunk>,
    ) {
        let outboxes = &self.shared.outboxes;
        if link == 0 || link >= outboxes.len() {
            return;
        }
        outboxes[link].retired.store(true, Ordering::Release);
        queue.close();
        let first = &outboxes[0].tx;
        for chunk in carry {
            let _ = first.send(chunk).await;
        }
        while let Some(chunk) = queue.recv().await {
            let _ = first.send(chunk).await;
        }
    }

    /// How many stanzas were sent (queued) on each of the component's
    /// connections (`connections` in the config), in link order: with
    /// several, each address's stanzas keep to one link.
    pub fn sent_per_link(&self) -> Vec<u64> {
        self.shared
            .outboxes
            .iter()
            .map(|o| o.queued.load(Ordering::Relaxed))
            .collect()
    }

    /// Where the answer to link `link`'s ping is announced (the first
    /// link's for an unknown index).
    pub(crate) fn pong(&self, link: usize) -> &tokio::sync::Notify {
        let outboxes = &self.shared.outboxes;
        &outboxes.get(link).unwrap_or(&outboxes[0]).pong
    }

    /// Whether link `link` is up.
    pub(crate) fn link_connected(&self, link: usize) -> bool {
        self.shared
            .outboxes
            .get(link)
            .is_some_and(|o| o.connected.load(Ordering::Acquire))
    }

    /// Marks a link up or down. Privileges (XEP-0356) are the first
    /// link's: granted and forgotten with it.
    pub(crate) fn set_connected(&self, link: usize, up: bool) {
        if link == 0 {
            self.shared.privileges.reset(up);
        }
        if let Some(outbox) = self.shared.outboxes.get(link) {
            outbox.connected.store(up, Ordering::Release);
        }
    }

    pub(crate) fn grant_privileges(&self, privileges: Privileges) {
        tracing::info!(jid = %self.shared.jid, ?privileges, "the server granted privileges (XEP-0356)");
        self.shared.privileges.grant(privileges);
    }

    /// What the server granted this connection (XEP-0356), if anything
    /// yet: `None` while disconnected, before the server's advertisement
    /// and on servers that grant nothing. See [`crate::privilege`].
    pub fn privileges(&self) -> Option<Arc<Privileges>> {
        self.shared.privileges.current()
    }

    /// Waits up to `timeout` for the server's privileges on the current
    /// (or next) connection. `None` when nothing was granted in time: the
    /// server has no privileged-entity support for this component.
    pub async fn wait_privileges(&self, timeout: Duration) -> Option<Arc<Privileges>> {
        let mut rx = self.shared.privileges.subscribe();
        let granted = rx.wait_for(|s| matches!(s, PrivilegeState::Granted(_)));
        match tokio::time::timeout(timeout, granted).await {
            Ok(Ok(state)) => match &*state {
                PrivilegeState::Granted(p) => Some(Arc::clone(p)),
                _ => None,
            },
            _ => None,
        }
    }

    /// Sends `message` as the server (its `from` is the server's domain
    /// when absent, else a bare JID of the server's): wrapped per XEP-0356
    /// and handed to the server. Fails with [`SendError::NotPermitted`]
    /// unless this connection holds the `message = "outgoing"` permission.
    pub async fn send_as_server(
        &self,
        message: xmpp_parsers::message::Message,
    ) -> Result<(), SendError> {
        match self.privileges().filter(|p| p.message_outgoing) {
            Some(p) => self.send(p.wrap_message(message, &self.shared.jid)).await,
            None => Err(SendError::NotPermitted),
        }
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
