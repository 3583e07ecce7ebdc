//! Property tests of the pairing table: under any sequence of arrivals,
//! departures, activations, relays ending and tasks vanishing, the
//! session and per-JID gauges equal the live sessions, and when
//! everything is over no permit is left.

use proptest::prelude::*;
use satellite::jid::BareJid;
use satellite_proxy65::limits::Rejection;
use satellite_proxy65::registry::{Go, Registry, Session};
use tokio::sync::oneshot;

const HASHES: [&str; 3] = ["h0", "h1", "h2"];
const JIDS: [&str; 2] = ["a@x", "b@x"];

#[derive(Debug, Clone)]
enum Op {
    Arrive(usize),
    Leave(usize),
    /// A waiting connection's task ends without `leave`.
    Vanish(usize),
    Activate(usize, usize),
    /// A relay ends: its session is dropped and its hash finished.
    End(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..HASHES.len()).prop_map(Op::Arrive),
        1 => any::<usize>().prop_map(Op::Leave),
        1 => any::<usize>().prop_map(Op::Vanish),
        2 => (0..HASHES.len(), 0..JIDS.len()).prop_map(|(h, j)| Op::Activate(h, j)),
        1 => any::<usize>().prop_map(Op::End),
    ]
}

struct Waiting {
    hash: &'static str,
    id: u64,
    go: oneshot::Receiver<Go>,
}

fn jid(s: &str) -> BareJid {
    BareJid::new(s).expect("jid")
}

fn check(r: &Registry, sessions: &[Session], max_sessions: usize, per_jid: usize) {
    assert_eq!(r.sessions(), sessions.len(), "session gauge");
    assert!(r.sessions() <= max_sessions);
    for j in JIDS {
        let live = sessions.iter().filter(|s| s.requester == jid(j)).count();
        assert_eq!(r.sessions_of(&jid(j)), live, "sessions of {j}");
        assert!(live <= per_jid);
    }
    let requesters = JIDS
        .iter()
        .filter(|j| sessions.iter().any(|s| s.requester == jid(j)))
        .count();
    assert_eq!(r.requesters(), requesters, "idle JIDs leave the table");
    assert_eq!(r.active(), sessions.len(), "active entries");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn gauges_equal_live_entries(
        ops in proptest::collection::vec(op(), 0..64),
        max_sessions in 1usize..4,
        per_jid in 1usize..3,
    ) {
        let r = Registry::new(max_sessions, per_jid);
        let mut waiting: Vec<Waiting> = Vec::new();
        let mut sessions: Vec<Session> = Vec::new();
        let mut next = 0u64;
        for op in ops {
            match op {
                Op::Arrive(h) => {
                    next += 1;
                    let (tx, rx) = oneshot::channel();
                    let here = waiting.iter().filter(|w| w.hash == HASHES[h]).count();
                    let active = sessions.iter().any(|s| s.hash == HASHES[h]);
                    match r.arrive(HASHES[h], next, tx) {
                        Ok(_) => {
                            prop_assert!(here < 2 && !active);
                            waiting.push(Waiting { hash: HASHES[h], id: next, go: rx });
                        }
                        Err(why) => {
                            prop_assert_eq!(why, Rejection::Duplicate);
                            prop_assert!(here == 2 || active);
                        }
                    }
                }
                Op::Leave(i) if !waiting.is_empty() => {
                    let w = waiting.swap_remove(i % waiting.len());
                    r.leave(w.hash, w.id);
                }
                Op::Vanish(i) if !waiting.is_empty() => {
                    // Dropped without leave: the table must notice by itself.
                    waiting.swap_remove(i % waiting.len());
                }
                Op::Activate(h, j) => {
                    let hash = HASHES[h];
                    let result = r.activate(hash, &jid(JIDS[j]));
                    if result.is_ok() {
                        let mine: Vec<usize> = waiting
                            .iter()
                            .enumerate()
                            .filter(|(_, w)| w.hash == hash)
                            .map(|(i, _)| i)
                            .collect();
                        prop_assert_eq!(mine.len(), 2, "activated a pair");
                        let (mut a, mut b) = (
                            waiting.swap_remove(mine[1]),
                            waiting.swap_remove(mine[0]),
                        );
                        let (ga, gb) = (a.go.try_recv(), b.go.try_recv());
                        let session = match (ga, gb) {
                            (Ok(Go::Give(_)), Ok(Go::Relay(_, s)))
                            | (Ok(Go::Relay(_, s)), Ok(Go::Give(_))) => s,
                            _ => panic!("one gives, one relays"),
                        };
                        sessions.push(session);
                    }
                }
                Op::End(i) if !sessions.is_empty() => {
                    let s = sessions.swap_remove(i % sessions.len());
                    let hash = s.hash.clone();
                    drop(s);
                    r.finish(&hash);
                }
                _ => {}
            }
            check(&r, &sessions, max_sessions, per_jid);
        }
        // Everything ends: no unit is left anywhere.
        for w in waiting.drain(..) {
            r.leave(w.hash, w.id);
        }
        for s in sessions.drain(..) {
            let hash = s.hash.clone();
            drop(s);
            r.finish(&hash);
        }
        check(&r, &sessions, max_sessions, per_jid);
        // Waiters whose task vanished without `leave` are noticed when
        // their hash is next used.
        for hash in HASHES {
            prop_assert_eq!(r.activate(hash, &jid(JIDS[0])), Err(Rejection::UnknownStream));
        }
        prop_assert!(r.is_empty(), "{} entries left", r.len());
        prop_assert_eq!(r.requesters(), 0);
    }
}
