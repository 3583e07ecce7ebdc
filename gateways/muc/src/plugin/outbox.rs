//! What a room says leaves in order, each outcome only after its own
//! commit, without the room's lane waiting for the disk: the lane queues
//! the outcome's writes with the store (in the room's order) and hands
//! the outcome to the room's outbox, which waits for each commit in turn
//! and then sends. Writes of consecutive stanzas of one room (and of all
//! rooms) so meet in the store's group commit, one fsync for many
//! messages, and nothing is sent that is not on disk.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;

use satellite::jid::BareJid;
use satellite::{BoxError, Context, Element};
use tokio::sync::{mpsc, oneshot};

use super::{Muc, send};
use crate::room::Outcome;

/// An outbox with nothing to do for this long ends (a new one starts
/// with the room's next outcome).
const IDLE: Duration = Duration::from_secs(5);

type Commit = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

enum Item {
    /// Send `stanzas` once `commit` is done; on failure send `on_error`.
    Send {
        commit: Option<Commit>,
        stanzas: Vec<Element>,
        on_error: Option<Element>,
    },
    /// Everything queued before was sent.
    Barrier(oneshot::Sender<()>),
}

/// The rooms' outboxes.
#[derive(Default)]
pub(super) struct Outboxes {
    rooms: Arc<Mutex<HashMap<BareJid, mpsc::UnboundedSender<Item>>>>,
}

impl Outboxes {
    fn push(&self, cx: &Context, room: &BareJid, item: Item) {
        let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        let item = match rooms.get(room) {
            Some(tx) => match tx.send(item) {
                Ok(()) => return,
                Err(mpsc::error::SendError(item)) => item,
            },
            None => item,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        // A new channel takes anything.
        let _ = tx.send(item);
        rooms.insert(room.clone(), tx);
        let map = Arc::clone(&self.rooms);
        let room = room.clone();
        let cx2 = cx.clone();
        cx.spawn(run(cx2, map, room, rx));
    }

    /// Waits until everything the room queued so far has been sent.
    pub(super) async fn flush(&self, cx: &Context, room: &BareJid) {
        let busy = self
            .rooms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(room);
        if !busy {
            return;
        }
        let (tx, rx) = oneshot::channel();
        self.push(cx, room, Item::Barrier(tx));
        let _ = rx.await;
    }
}

async fn run(
    cx: Context,
    map: Arc<Mutex<HashMap<BareJid, mpsc::UnboundedSender<Item>>>>,
    room: BareJid,
    mut rx: mpsc::UnboundedReceiver<Item>,
) {
    let token = cx.shutdown_token();
    loop {
        let next = tokio::select! {
            next = tokio::time::timeout(IDLE, rx.recv()) => next,
            // Stopping: what is queued still goes, then the outbox ends.
            _ = token.cancelled() => {
                map.lock().unwrap_or_else(PoisonError::into_inner).remove(&room);
                rx.close();
                while let Some(item) = rx.recv().await {
                    deliver(&cx, &room, item).await;
                }
                return;
            }
        };
        match next {
            Ok(Some(item)) => deliver(&cx, &room, item).await,
            Ok(None) => return,
            Err(_) => {
                let mut rooms = map.lock().unwrap_or_else(PoisonError::into_inner);
                // Checked under the lock that pushes take: nothing can
                // arrive between this check and the removal.
                if rx.is_empty() {
                    rooms.remove(&room);
                    return;
                }
            }
        }
    }
}

async fn deliver(cx: &Context, room: &BareJid, item: Item) {
    match item {
        Item::Barrier(done) => {
            let _ = done.send(());
        }
        Item::Send {
            commit,
            stanzas,
            on_error,
        } => {
            let committed = match commit {
                Some(commit) => commit.await,
                None => Ok(()),
            };
            match committed {
                Ok(()) => send(cx, stanzas).await,
                Err(e) => {
                    tracing::error!(%room, error = %e, "cannot store a room change; nothing of it was sent");
                    send(cx, on_error.into_iter().collect()).await;
                }
            }
        }
    }
}

impl Muc {
    /// Queues an outcome: its writes go to the store now (in order), its
    /// stanzas leave after they are committed. A failed commit sends
    /// nothing of it and answers `stanza` with `internal-server-error`.
    pub(super) async fn queue_outcome(
        &self,
        cx: &Context,
        room: &BareJid,
        stanza: &Element,
        mut outcome: Outcome,
    ) {
        let commit = if outcome.archive.is_empty() && outcome.writes.is_empty() {
            None
        } else {
            let archive = std::mem::take(&mut outcome.archive);
            let writes = std::mem::take(&mut outcome.writes);
            let store = self.store().map(Arc::clone);
            let mut commit: Commit = Box::pin(async move {
                let store = store?;
                if !archive.is_empty() {
                    store.append(archive).await?;
                }
                if !writes.is_empty() {
                    store.apply(writes).await?;
                }
                Ok(())
            });
            // Poll once here, on the lane: the store takes the write in
            // the room's order before the lane goes on.
            let first = std::future::poll_fn(|task| Poll::Ready(commit.as_mut().poll(task))).await;
            match first {
                Poll::Ready(result) => Some(Box::pin(std::future::ready(result)) as Commit),
                Poll::Pending => Some(commit),
            }
        };
        let by = stanza.attr("to").unwrap_or(self.jid.as_str());
        let on_error =
            crate::stanza::Error::new("wait", "internal-server-error").reply_to(stanza, Some(by));
        self.outboxes.push(
            cx,
            room,
            Item::Send {
                commit,
                stanzas: outcome.stanzas,
                on_error,
            },
        );
    }
}
