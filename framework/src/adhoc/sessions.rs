//! The table of open ad-hoc command sessions and its limits.
//!
//! A session holds its place from the request that starts it, not from
//! the moment its first stage returns, and keeps it while any of its
//! stages runs: requests arriving at once cannot together pass a limit
//! that each of them checked alone. The limits count accounts (bare
//! JIDs), so one account with many resources is one requester; a
//! session itself stays bound to the full JID that started it.
//!
//! The table is synchronous and knows nothing of commands (it stores any
//! `T`), so the state machine can be driven directly by tests and fuzz
//! targets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use xmpp_parsers::jid::{BareJid, Jid};

/// How many sessions may be open, and for how long unused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open sessions per account (bare JID), running or waiting.
    pub per_account: usize,
    /// Open sessions in all.
    pub total: usize,
    /// A session waiting this long for its next request is forgotten.
    pub idle: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            per_account: 8,
            total: 1024,
            idle: Duration::from_secs(600),
        }
    }
}

/// Why the table refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// A new session would pass a limit.
    TooMany,
    /// No waiting session with this id, node and requester (unknown,
    /// expired, someone else's, or one of its stages is running).
    BadSession,
}

struct Entry<T> {
    node: String,
    requester: Jid,
    account: BareJid,
    state: State<T>,
}

enum State<T> {
    /// A stage runs; its [`Lease`] holds the session.
    Running,
    /// Waiting for the requester's next action.
    Waiting { value: T, since: Instant },
}

type Entries<T> = HashMap<String, Entry<T>>;

/// Open sessions by id.
pub struct SessionTable<T> {
    entries: Arc<Mutex<Entries<T>>>,
    limits: Limits,
}

/// A session while one of its stages runs. [`Lease::keep`] puts it back
/// to wait for the next action; dropping the lease (the command
/// completed, was cancelled or failed, or the request was abandoned)
/// removes it, so no path leaves a place taken.
pub struct Lease<T> {
    entries: Arc<Mutex<Entries<T>>>,
    id: String,
    kept: bool,
}

impl<T> SessionTable<T> {
    /// An empty table.
    pub fn new(limits: Limits) -> Self {
        Self {
            entries: Arc::new(Mutex::new(HashMap::new())),
            limits,
        }
    }

    /// Its limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Opens a session of `node` for `requester`, running its first stage.
    pub fn start(&self, node: &str, requester: &Jid, now: Instant) -> Result<Lease<T>, Refused> {
        let mut entries = self.lock();
        self.expire(&mut entries, now);
        let account = requester.to_bare();
        let mine = entries.values().filter(|e| e.account == account).count();
        if mine >= self.limits.per_account || entries.len() >= self.limits.total {
            return Err(Refused::TooMany);
        }
        let id = loop {
            let id = format!("{:016x}", rand::random::<u64>());
            if !entries.contains_key(&id) {
                break id;
            }
        };
        entries.insert(
            id.clone(),
            Entry {
                node: node.to_owned(),
                requester: requester.clone(),
                account,
                state: State::Running,
            },
        );
        Ok(Lease {
            entries: Arc::clone(&self.entries),
            id,
            kept: false,
        })
    }

    /// Takes the waiting session `id` for its next stage: only the full
    /// JID that started it may, for the same node, and only one stage at
    /// a time.
    pub fn resume(
        &self,
        id: &str,
        node: &str,
        requester: &Jid,
        now: Instant,
    ) -> Result<(Lease<T>, T), Refused> {
        let mut entries = self.lock();
        self.expire(&mut entries, now);
        let entry = entries.get_mut(id).ok_or(Refused::BadSession)?;
        if entry.node != node
            || entry.requester != *requester
            || matches!(entry.state, State::Running)
        {
            return Err(Refused::BadSession);
        }
        let State::Waiting { value, .. } = std::mem::replace(&mut entry.state, State::Running)
        else {
            return Err(Refused::BadSession);
        };
        Ok((
            Lease {
                entries: Arc::clone(&self.entries),
                id: id.to_owned(),
                kept: false,
            },
            value,
        ))
    }

    /// Open sessions (running or waiting).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Open sessions of one account.
    pub fn count(&self, account: &BareJid) -> usize {
        self.lock()
            .values()
            .filter(|e| e.account == *account)
            .count()
    }

    /// Sessions whose stage is running.
    pub fn running(&self) -> usize {
        self.lock()
            .values()
            .filter(|e| matches!(e.state, State::Running))
            .count()
    }

    fn expire(&self, entries: &mut Entries<T>, now: Instant) {
        let idle = self.limits.idle;
        entries.retain(|_, e| match e.state {
            State::Running => true,
            State::Waiting { since, .. } => now.saturating_duration_since(since) < idle,
        });
    }

    fn lock(&self) -> MutexGuard<'_, Entries<T>> {
        lock(&self.entries)
    }
}

impl<T> Lease<T> {
    /// The session's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Puts the session back to wait for its next action, with its state.
    pub fn keep(mut self, value: T, now: Instant) {
        if let Some(entry) = lock(&self.entries).get_mut(&self.id) {
            entry.state = State::Waiting { value, since: now };
            self.kept = true;
        }
    }
}

impl<T> Drop for Lease<T> {
    fn drop(&mut self) {
        if !self.kept {
            lock(&self.entries).remove(&self.id);
        }
    }
}

fn lock<T>(entries: &Mutex<Entries<T>>) -> MutexGuard<'_, Entries<T>> {
    // Every operation leaves the map consistent before it could panic.
    entries.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> Jid {
        Jid::new(s).expect("jid")
    }

    fn limits(per_account: usize, total: usize) -> Limits {
        Limits {
            per_account,
            total,
            idle: Duration::from_secs(60),
        }
    }

    #[test]
    fn running_sessions_count_against_the_limits() {
        let t = SessionTable::<()>::new(limits(2, 3));
        let now = Instant::now();
        // Two stages running at once, none returned yet: the third is refused.
        let a = t.start("n", &jid("u@x/1"), now).expect("first");
        let _b = t.start("n", &jid("u@x/2"), now).expect("second");
        assert_eq!(
            t.start("n", &jid("u@x/3"), now).err(),
            Some(Refused::TooMany),
            "resources of one account are one requester"
        );
        let _c = t.start("n", &jid("v@x/1"), now).expect("other account");
        assert_eq!(
            t.start("n", &jid("w@x/1"), now).err(),
            Some(Refused::TooMany)
        );
        drop(a);
        assert!(t.start("n", &jid("w@x/1"), now).is_ok());
    }

    #[test]
    fn resume_only_by_the_starter_one_stage_at_a_time() {
        let t = SessionTable::new(limits(8, 8));
        let now = Instant::now();
        let me = jid("u@x/phone");
        let lease = t.start("n", &me, now).expect("start");
        let id = lease.id().to_owned();
        assert_eq!(
            t.resume(&id, "n", &me, now).err(),
            Some(Refused::BadSession),
            "still running"
        );
        lease.keep(7, now);
        assert_eq!(
            t.resume(&id, "n", &jid("u@x/laptop"), now).err(),
            Some(Refused::BadSession)
        );
        assert_eq!(
            t.resume(&id, "m", &me, now).err(),
            Some(Refused::BadSession)
        );
        let (lease, value) = t.resume(&id, "n", &me, now).expect("resume");
        assert_eq!(value, 7);
        drop(lease);
        assert!(t.is_empty());
    }

    #[test]
    fn waiting_sessions_expire_running_ones_do_not() {
        let t = SessionTable::new(limits(8, 8));
        let now = Instant::now();
        let me = jid("u@x/r");
        let waiting = t.start("n", &me, now).expect("start");
        let id = waiting.id().to_owned();
        waiting.keep((), now);
        let _running = t.start("n", &me, now).expect("start");
        let later = now + Duration::from_secs(61);
        assert_eq!(
            t.resume(&id, "n", &me, later).err(),
            Some(Refused::BadSession)
        );
        assert_eq!(t.len(), 1);
        assert_eq!(t.running(), 1);
    }
}
