//! The pairing table: SOCKS5 connections by stream hash, waiting for their
//! other side and for activation.
//!
//! Each connection's task keeps its socket while it waits (so it can notice
//! the peer leaving and time out by itself) and registers a one-shot
//! channel here. Activation tells the first task to hand its socket over
//! and the second to relay both; so the relay runs in one task and nothing
//! here holds a socket.
//!
//! A `max_sessions` unit is taken at activation, not when a second
//! connection arrives: any client can open two connections with a made-up
//! hash, but only the requester, logged in to XMPP, can activate a real
//! one. Until then a pair holds only its connections' units.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use satellite::jid::BareJid;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::limits::{Gauge, KeyPermit, PerKey, Permit, Rejection};
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
    /// Its unit of `max_connections_per_address`, given back on
    /// activation (from then on the requester's JID is counted).
    pub address: Option<KeyPermit<IpAddr>>,
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
    _jid: KeyPermit<BareJid>,
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
        /// The second connection.
        second: Option<Waiter>,
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
    per_jid: Arc<PerKey<BareJid>>,
}

impl Registry {
    /// A table allowing `max_sessions` active bytestreams, `per_jid` of
    /// them per requester.
    pub fn new(max_sessions: usize, per_jid: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            sessions: Gauge::new(max_sessions),
            per_jid: PerKey::new(per_jid),
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
        if !prune(&mut entries, hash) {
            entries.remove(hash);
        }
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
                *second = Some(waiter);
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
                Some(other) => *first = other,
                None => {
                    entries.remove(hash);
                }
            }
        } else if second.as_ref().is_some_and(|w| w.id == id) {
            *second = None;
        }
    }

    /// Activates the bytestream `hash` for `requester`, at most once.
    pub fn activate(&self, hash: &str, requester: &BareJid) -> Result<(), Rejection> {
        let mut entries = self.entries();
        if !prune(&mut entries, hash) {
            entries.remove(hash);
            return Err(Rejection::UnknownStream);
        }
        match entries.get(hash) {
            None => return Err(Rejection::UnknownStream),
            Some(Entry::Active) => return Err(Rejection::AlreadyActive),
            Some(Entry::Waiting { second: None, .. }) => return Err(Rejection::NotPaired),
            Some(Entry::Waiting { .. }) => {}
        }
        let jid = self.per_jid.acquire(requester).ok_or(Rejection::JidCap)?;
        let session = self.sessions.acquire().ok_or(Rejection::SessionCap)?;
        let Some(Entry::Waiting {
            first,
            second: Some(second),
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

    /// Activated bytestreams whose [`Session`] is alive.
    pub fn sessions(&self) -> usize {
        self.sessions.used()
    }

    /// Activated bytestreams of one requester whose [`Session`] is alive.
    pub fn sessions_of(&self, requester: &BareJid) -> usize {
        self.per_jid.used(requester)
    }

    /// Requesters with a live [`Session`].
    pub fn requesters(&self) -> usize {
        self.per_jid.keys()
    }

    /// Entries activated and not yet [`finish`](Self::finish)ed.
    pub fn active(&self) -> usize {
        self.entries()
            .values()
            .filter(|e| matches!(e, Entry::Active))
            .count()
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<Hash, Entry>> {
        // Every operation leaves the map consistent before it can panic.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Forgets the waiters of `hash` whose task has ended (between its socket
/// closing and its `leave`); `false` when none is left, so the entry must
/// go.
fn prune(entries: &mut HashMap<Hash, Entry>, hash: &str) -> bool {
    let Some(Entry::Waiting { first, second }) = entries.get_mut(hash) else {
        return true;
    };
    if second.as_ref().is_some_and(|w| w.go.is_closed()) {
        *second = None;
    }
    if first.go.is_closed() {
        match second.take() {
            Some(other) => *first = other,
            None => return false,
        }
    }
    true
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
    fn pairs_take_a_session_only_when_activated() {
        let r = Registry::new(1, 5);
        let a = jid("a@x");
        // Two pairs with made-up hashes wait without taking the one session.
        let mut keep = Vec::new();
        for (i, hash) in [(1, "h"), (2, "h"), (3, "g"), (4, "g")] {
            let (tx, rx) = oneshot::channel();
            keep.push(rx);
            r.arrive(hash, i, tx).expect("arrive");
        }
        assert_eq!(r.sessions(), 0);
        assert_eq!(r.activate("h", &a), Ok(()));
        assert_eq!(r.activate("g", &a), Err(Rejection::SessionCap));
        assert_eq!(r.sessions(), 1);
        // The refused pair still waits and can be activated later.
        let Ok(Go::Relay(_, session)) = keep[1].try_recv() else {
            panic!("second relays");
        };
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
        // The first connection's task is gone: only one side is left.
        drop(first);
        assert_eq!(r.activate("h", &jid("a@x")), Err(Rejection::NotPaired));
        r.leave("h", 2);
        assert_eq!(r.activate("h", &jid("a@x")), Err(Rejection::UnknownStream));
        assert_eq!(r.sessions(), 0);
    }
}
