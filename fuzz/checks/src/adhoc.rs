//! The ad-hoc session table, driven by arbitrary operations and checked
//! against a model after each one.

use std::time::{Duration, Instant};

use satellite::adhoc::sessions::{Lease, Limits, Refused, SessionTable};
use satellite::jid::{BareJid, Jid};

const LIMITS: Limits = Limits {
    per_account: 3,
    total: 5,
    idle: Duration::from_secs(10),
};
const REQUESTERS: [&str; 5] = ["a@x/1", "a@x/2", "a@x", "b@x/1", "c@y/1"];
const NODES: [&str; 2] = ["one", "two"];

/// A session as the model sees it.
struct Open {
    id: String,
    node: &'static str,
    requester: Jid,
    /// `None` while running.
    since: Option<Instant>,
}

struct Model {
    table: SessionTable<u8>,
    open: Vec<Open>,
    leases: Vec<Lease<u8>>,
    start: Instant,
    now: Instant,
}

impl Model {
    fn expire(&mut self) {
        let now = self.now;
        self.open
            .retain(|o| o.since.is_none_or(|t| now.duration_since(t) < LIMITS.idle));
    }

    fn account(&self, account: &BareJid) -> usize {
        self.open
            .iter()
            .filter(|o| o.requester.to_bare() == *account)
            .count()
    }

    fn check(&self) {
        assert_eq!(self.table.len(), self.open.len(), "open sessions");
        assert!(self.table.len() <= LIMITS.total);
        let running = self.open.iter().filter(|o| o.since.is_none()).count();
        assert_eq!(self.table.running(), running, "running sessions");
        assert_eq!(running, self.leases.len(), "one lease per running session");
        for r in REQUESTERS {
            let account = jid(r).to_bare();
            let n = self.table.count(&account);
            assert_eq!(n, self.account(&account), "sessions of {account}");
            assert!(n <= LIMITS.per_account, "{account} has {n} sessions");
        }
    }
}

fn jid(s: &str) -> Jid {
    Jid::new(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// `adhoc_sessions`: start, keep, drop and resume sessions and let time
/// pass, in any order; the table must agree with the model throughout.
pub fn sessions(data: &[u8]) {
    let start = Instant::now();
    let mut m = Model {
        table: SessionTable::new(LIMITS),
        open: Vec::new(),
        leases: Vec::new(),
        start,
        now: start,
    };
    let mut bytes = data.chunks_exact(3);
    for op in bytes.by_ref().take(512) {
        let (kind, a, b) = (op[0] % 6, usize::from(op[1]), op[2]);
        match kind {
            0 => {
                let requester = jid(REQUESTERS[a % REQUESTERS.len()]);
                let node = NODES[usize::from(b) % NODES.len()];
                m.expire();
                let fits = m.account(&requester.to_bare()) < LIMITS.per_account
                    && m.open.len() < LIMITS.total;
                match m.table.start(node, &requester, m.now) {
                    Ok(lease) => {
                        assert!(fits, "started past a limit");
                        assert!(m.open.iter().all(|o| o.id != lease.id()), "id reused");
                        m.open.push(Open {
                            id: lease.id().to_owned(),
                            node,
                            requester,
                            since: None,
                        });
                        m.leases.push(lease);
                    }
                    Err(why) => {
                        assert_eq!(why, Refused::TooMany);
                        assert!(!fits, "refused within the limits");
                    }
                }
            }
            1 | 2 if !m.leases.is_empty() => {
                let lease = m.leases.swap_remove(a % m.leases.len());
                let i = m
                    .open
                    .iter()
                    .position(|o| o.id == lease.id())
                    .unwrap_or_else(|| panic!("lease {} not in the model", lease.id()));
                if kind == 1 {
                    lease.keep(b, m.now);
                    m.open[i].since = Some(m.now);
                } else {
                    drop(lease);
                    m.open.swap_remove(i);
                }
            }
            3 if !m.open.is_empty() => {
                let target = &m.open[a % m.open.len()];
                let id = target.id.clone();
                // Mostly the right node and requester, sometimes not.
                let node = if b & 1 == 0 {
                    target.node
                } else {
                    NODES[usize::from(b >> 1) % NODES.len()]
                };
                let requester = if b & 2 == 0 {
                    target.requester.clone()
                } else {
                    jid(REQUESTERS[usize::from(b >> 2) % REQUESTERS.len()])
                };
                m.expire();
                let waiting = m.open.iter().position(|o| {
                    o.id == id && o.node == node && o.requester == requester && o.since.is_some()
                });
                match (m.table.resume(&id, node, &requester, m.now), waiting) {
                    (Ok((lease, _)), Some(i)) => {
                        m.open[i].since = None;
                        m.leases.push(lease);
                    }
                    (Err(Refused::BadSession), None) => {}
                    (got, want) => panic!(
                        "resume {id} {node} {requester}: table {:?}, model {want:?}",
                        got.map(|(_, v)| v)
                    ),
                }
            }
            4 => m.now += Duration::from_secs(u64::from(b % 16)),
            5 => {
                let id = format!("{:016x}", u64::from(b) << 8 | a as u64);
                let requester = jid(REQUESTERS[a % REQUESTERS.len()]);
                m.expire();
                let known = m.open.iter().any(|o| o.id == id);
                let got = m.table.resume(&id, "one", &requester, m.now);
                if !known {
                    assert_eq!(got.err(), Some(Refused::BadSession), "unknown id {id}");
                } else if let Ok((lease, _)) = got {
                    let o = m.open.iter_mut().find(|o| o.id == id).expect("known");
                    assert!(o.node == "one" && o.requester == requester && o.since.is_some());
                    o.since = None;
                    m.leases.push(lease);
                }
            }
            _ => {}
        }
        m.check();
    }
    assert!(m.now >= m.start);
    // Dropping every lease leaves only the waiting sessions.
    m.leases.clear();
    m.open.retain(|o| o.since.is_some());
    m.check();
}
