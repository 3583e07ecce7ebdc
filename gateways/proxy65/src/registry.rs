//! The pairing table: SOCKS5 connections by stream hash, waiting for their
//! other side and for activation.
//!
//! Each connection's task keeps its socket while it waits (so it can notice
//! the peer leaving and time out by itself) and registers a one-shot
//! channel here. Activation tells the first task to hand its socket over
//! and the second to relay both; so the relay runs in one task and nothing
//! here holds a socket.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use satellite::jid::BareJid;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::limits::{Gauge, Permit, Rejection};
use crate::socks5::Hash;

/// A connection after its handshake, with the permit it counts against.
#[derive(Debug)]
pub struct Conn {
    /// The socket.
    pub stream: TcpStream,
    /// Its peer's address, for logs.
    pub peer: SocketAddr,
    /// Its unit of `max_connections`.
    pub permit: Permit,
}

/// What a waiting connection's task is told to do on activation.
#[derive(Debug)]
pub enum Go {
    /// Hand the connection to the relaying task.
    Give(oneshot::Sender<Conn>),
    /// Relay: the other connection arrives on the receiver.
    Relay(oneshot::Receiver<Conn>, Session),
}

/// What an activated bytestream holds until it ends.
#[derive(Debug)]
pub struct Session {
    /// The stream hash.
    pub hash: Hash,
    /// The requester (for logs).
    pub requester: BareJid,
    /// Its unit of `max_sessions`.
    _session: Permit,
    /// Its unit of the requester's `max_connections_per_jid`.
    _jid: JidPermit,
}

/// A unit of one JID's active bytestreams.
#[derive(Debug)]
pub struct JidPermit {
    table: Arc<Mutex<HashMap<BareJid, usize>>>,
    jid: BareJid,
}

impl Drop for JidPermit {
    fn drop(&mut self) {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = table.get_mut(&self.jid) {
            *n -= 1;
            if *n == 0 {
                table.remove(&self.jid);
            }
        }
    }
}

#[derive(Debug)]
struct Waiter {
    id: u64,
    go: oneshot::Sender<Go>,
}

#[derive(Debug)]
enum Entry {
    /// One or two connections, not activated.
    Waiting {
        first: Waiter,
        /// The second connection and the `max_sessions` unit the pair holds.
        second: Option<(Waiter, Permit)>,
    },
    /// Activated; relaying until [`Registry::finish`].
    Active,
}

/// Which side of a pair a connection turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Nobody with this hash yet.
    First,
    /// The pair is complete; activation may follow.
    Second,
}

/// The table.
#[derive(Debug)]
pub struct Registry {
    entries: Mutex<HashMap<Hash, Entry>>,
    sessions: Arc<Gauge>,
    per_jid: Arc<Mutex<HashMap<BareJid, usize>>>,
    per_jid_cap: usize,
}

impl Registry {
    /// A table allowing `max_sessions` pairs and `per_jid` active
    /// bytestreams per requester.
    pub fn new(max_sessions: usize, per_jid: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            sessions: Gauge::new(max_sessions),
            per_jid: Arc::new(Mutex::new(HashMap::new())),
            per_jid_cap: per_jid,
        }
    }

    /// Registers connection `id` under `hash`.
    pub fn arrive(
        &self,
        hash: &str,
        id: u64,
        go: oneshot::Sender<Go>,
    ) -> Result<Arrival, Rejection> {
        let mut entries = self.entries();
        let waiter = Waiter { id, go };
        match entries.get_mut(hash) {
            None => {
                entries.insert(
                    hash.to_owned(),
                    Entry::Waiting {
                        first: waiter,
                        second: None,
                    },
                );
                Ok(Arrival::First)
            }
            Some(Entry::Waiting { second, .. }) if second.is_none() => {
                let permit = self.sessions.acquire().ok_or(Rejection::SessionCap)?;
                *second = Some((waiter, permit));
                Ok(Arrival::Second)
            }
            Some(_) => Err(Rejection::Duplicate),
        }
    }

    /// Connection `id` stops waiting (timeout, peer gone, shutdown). The
    /// other side, if any, keeps waiting on its own.
    pub fn leave(&self, hash: &str, id: u64) {
        let mut entries = self.entries();
        let Some(Entry::Waiting { first, second }) = entries.get_mut(hash) else {
            return;
        };
        if first.id == id {
            match second.take() {
                Some((other, _permit)) => *first = other,
                None => {
                    entries.remove(hash);
                }
            }
        } else if second.as_ref().is_some_and(|(w, _)| w.id == id) {
            *second = None;
        }
    }

    /// Activates the bytestream `hash` for `requester`, at most once.
    pub fn activate(&self, hash: &str, requester: &BareJid) -> Result<(), Rejection> {
        let mut entries = self.entries();
        let (first, second) = match entries.get_mut(hash) {
            None => return Err(Rejection::UnknownStream),
            Some(Entry::Active) => return Err(Rejection::AlreadyActive),
            Some(Entry::Waiting { first, second }) => (first, second),
        };
        // A waiter whose task has ended (between its socket closing and
        // its `leave`) counts as gone.
        if second.as_ref().is_some_and(|(w, _)| w.go.is_closed()) {
            *second = None;
        }
        if first.go.is_closed() {
            match second.take() {
                Some((other, _)) => *first = other,
                None => {
                    entries.remove(hash);
                    return Err(Rejection::UnknownStream);
                }
            }
        }
        if second.is_none() {
            return Err(Rejection::NotPaired);
        }
        let jid = self.acquire_jid(requester).ok_or(Rejection::JidCap)?;
        let Some(Entry::Waiting {
            first,
            second: Some((second, session)),
        }) = entries.insert(hash.to_owned(), Entry::Active)
        else {
            // Unreachable (checked above under the same lock); never leave
            // an Active entry without a relay behind.
            entries.remove(hash);
            return Err(Rejection::NotPaired);
        };
        let (tx, rx) = oneshot::channel();
        let session = Session {
            hash: hash.to_owned(),
            requester: requester.clone(),
            _session: session,
            _jid: jid,
        };
        let handed =
            first.go.send(Go::Give(tx)).is_ok() && second.go.send(Go::Relay(rx, session)).is_ok();
        if !handed {
            // One task ended in the instant since the check above.
            entries.remove(hash);
            return Err(Rejection::NotPaired);
        }
        Ok(())
    }

    /// The relay of `hash` ended: forget it.
    pub fn finish(&self, hash: &str) {
        let mut entries = self.entries();
        if matches!(entries.get(hash), Some(Entry::Active)) {
            entries.remove(hash);
        }
    }

    /// Entries (waiting or active).
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Paired or active bytestreams.
    pub fn sessions(&self) -> usize {
        self.sessions.used()
    }

    fn acquire_jid(&self, jid: &BareJid) -> Option<JidPermit> {
        let mut table = self.per_jid.lock().unwrap_or_else(PoisonError::into_inner);
        let n = table.entry(jid.clone()).or_insert(0);
        if *n >= self.per_jid_cap {
            return None;
        }
        *n += 1;
        Some(JidPermit {
            table: Arc::clone(&self.per_jid),
            jid: jid.clone(),
        })
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<Hash, Entry>> {
        // Every operation leaves the map consistent before it can panic.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> BareJid {
        BareJid::new(s).expect("jid")
    }

    #[test]
    fn pairing_and_activation_errors() {
        let r = Registry::new(10, 1);
        let a = jid("a@x");
        assert_eq!(r.activate("h", &a), Err(Rejection::UnknownStream));
        let (t1, mut first) = oneshot::channel();
        assert_eq!(r.arrive("h", 1, t1), Ok(Arrival::First));
        assert_eq!(r.activate("h", &a), Err(Rejection::NotPaired));
        let (t2, mut second) = oneshot::channel();
        assert_eq!(r.arrive("h", 2, t2), Ok(Arrival::Second));
        let (t3, _third) = oneshot::channel();
        assert_eq!(r.arrive("h", 3, t3), Err(Rejection::Duplicate));
        assert_eq!(r.activate("h", &a), Ok(()));
        assert_eq!(r.activate("h", &a), Err(Rejection::AlreadyActive));
        assert!(matches!(first.try_recv(), Ok(Go::Give(_))));
        let Ok(Go::Relay(_, session)) = second.try_recv() else {
            panic!("second relays");
        };
        // The requester's one allowed bytestream is in use.
        let (t4, _f) = oneshot::channel();
        let (t5, _s) = oneshot::channel();
        r.arrive("g", 4, t4).expect("first");
        r.arrive("g", 5, t5).expect("second");
        assert_eq!(r.activate("g", &a), Err(Rejection::JidCap));
        drop(session);
        r.finish("h");
        assert_eq!(r.activate("g", &a), Ok(()));
    }

    #[test]
    fn leaving_and_gone_waiters() {
        let r = Registry::new(1, 5);
        let (t1, first) = oneshot::channel();
        r.arrive("h", 1, t1).expect("first");
        let (t2, _second) = oneshot::channel();
        r.arrive("h", 2, t2).expect("second");
        // The session cap (1) is held by this pair.
        let (t3, _a) = oneshot::channel();
        r.arrive("g", 3, t3).expect("first of g");
        let (t4, _b) = oneshot::channel();
        assert_eq!(r.arrive("g", 4, t4), Err(Rejection::SessionCap));
        // The first connection's task is gone: only one side is left.
        drop(first);
        assert_eq!(r.activate("h", &jid("a@x")), Err(Rejection::NotPaired));
        r.leave("h", 2);
        assert_eq!(r.activate("h", &jid("a@x")), Err(Rejection::UnknownStream));
        assert_eq!(r.sessions(), 0);
    }
}
