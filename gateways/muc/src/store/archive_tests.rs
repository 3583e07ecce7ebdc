//! The archive's tests, run against both implementations.

use std::time::Instant;

use super::archive::{ArchiveBounds, ArchiveQuery, ArchivedMessage, Paging};
use super::memory::MemoryStore;
use super::sqlite::SqliteStore;
use super::tests::room;
use super::*;

/// Microseconds; messages come in groups of three with equal timestamps,
/// so that the append order decides between them.
fn ts(i: usize) -> i64 {
    1_700_000_000_000_000 + (i as i64 / 3) * 1_000_000
}

fn message(room: &str, i: usize) -> ArchivedMessage {
    let sender = i % 5;
    ArchivedMessage {
        room: room.to_owned(),
        id: format!("{room}-{i:06}"),
        timestamp: ts(i),
        nick: format!("nick{sender}"),
        real_jid: sender
            .is_multiple_of(2)
            .then(|| format!("user{sender}@example.org")),
        // Some messages without occupant-id; sender 4's occupant-id is
        // its JID, so that `with` matches one row through both columns.
        occupant_id: match sender {
            _ if i.is_multiple_of(7) => None,
            4 => Some("user4@example.org".to_owned()),
            _ => Some(format!("occ{sender}")),
        },
        xml: format!("<message type='groupchat'><body>{i}</body></message>"),
        retracted: false,
    }
}

fn stores() -> Vec<(&'static str, Box<dyn MucStore>)> {
    vec![
        ("memory", Box::new(MemoryStore::new())),
        (
            "sqlite",
            Box::new(SqliteStore::open_in_memory().expect("in-memory sqlite")),
        ),
    ]
}

fn ids(messages: &[ArchivedMessage]) -> Vec<String> {
    messages.iter().map(|m| m.id.clone()).collect()
}

/// Pages through `q` forwards (First, After…) and backwards (Last,
/// Before…), checking each page's metadata, and returns both walks in
/// chronological order.
async fn walk(
    store: &dyn MucStore,
    room: &str,
    q: &ArchiveQuery,
    expected: usize,
) -> (Vec<String>, Vec<String>) {
    let mut forward = Vec::new();
    let mut paging = Paging::First;
    loop {
        let page = store
            .query(
                room,
                ArchiveQuery {
                    paging: paging.clone(),
                    ..q.clone()
                },
            )
            .await
            .expect("forward page");
        assert_eq!(page.count, expected);
        assert!(page.messages.len() <= q.max);
        assert_eq!(page.first, page.messages.first().map(|m| m.id.clone()));
        assert_eq!(page.last, page.messages.last().map(|m| m.id.clone()));
        forward.extend(ids(&page.messages));
        if page.complete {
            assert_eq!(forward.len(), expected, "complete only at the end");
            break;
        }
        assert_eq!(page.messages.len(), q.max, "incomplete pages are full");
        paging = Paging::After(page.last.expect("a non-empty page"));
    }
    let mut backward: Vec<Vec<String>> = Vec::new();
    let mut paging = Paging::Last;
    loop {
        let page = store
            .query(
                room,
                ArchiveQuery {
                    paging: paging.clone(),
                    ..q.clone()
                },
            )
            .await
            .expect("backward page");
        assert_eq!(page.count, expected);
        let got = ids(&page.messages);
        backward.push(got);
        if page.complete {
            break;
        }
        assert_eq!(page.messages.len(), q.max, "incomplete pages are full");
        paging = Paging::Before(page.first.expect("a non-empty page"));
    }
    backward.reverse();
    (forward, backward.concat())
}

#[tokio::test]
async fn every_filter_both_ways_through_ten_thousand_messages() {
    let all: Vec<ArchivedMessage> = (0..10_000).map(|i| message("big", i)).collect();
    let noise: Vec<ArchivedMessage> = (0..300).map(|i| message("other", i)).collect();
    let id = |i: usize| format!("big-{i:06}");
    let queries: Vec<(&str, ArchiveQuery)> = vec![
        ("everything", ArchiveQuery::new(97)),
        (
            "start and end",
            ArchiveQuery {
                start: Some(ts(1_000)),
                end: Some(ts(7_000)),
                ..ArchiveQuery::new(50)
            },
        ),
        (
            "with occupant-id",
            ArchiveQuery {
                with: Some("occ3".into()),
                ..ArchiveQuery::new(64)
            },
        ),
        (
            "with real JID",
            ArchiveQuery {
                with: Some("user2@example.org".into()),
                ..ArchiveQuery::new(100)
            },
        ),
        (
            "with, both columns on one row",
            ArchiveQuery {
                with: Some("user4@example.org".into()),
                ..ArchiveQuery::new(77)
            },
        ),
        (
            "after-id and before-id",
            ArchiveQuery {
                after_id: Some(id(2_500)),
                before_id: Some(id(4_001)),
                ..ArchiveQuery::new(33)
            },
        ),
        (
            "ids",
            ArchiveQuery {
                ids: vec![id(9_999), id(5), id(4), id(6_000), id(3)],
                ..ArchiveQuery::new(2)
            },
        ),
        (
            "everything at once",
            ArchiveQuery {
                start: Some(ts(10)),
                end: Some(ts(9_000)),
                with: Some("occ0".into()),
                after_id: Some(id(12)),
                before_id: Some(id(8_800)),
                ..ArchiveQuery::new(21)
            },
        ),
        (
            "nothing matches",
            ArchiveQuery {
                with: Some("nobody@example.org".into()),
                ..ArchiveQuery::new(10)
            },
        ),
    ];
    for (kind, store) in stores() {
        // Interleave the noise room; appends come in batches.
        for (chunk, noise) in all.chunks(1_000).zip(noise.chunks(30)) {
            store.append(chunk.to_vec()).await.expect("append");
            store.append(noise.to_vec()).await.expect("append noise");
        }
        for (name, q) in &queries {
            let position = |needle: &Option<String>| {
                needle
                    .as_ref()
                    .and_then(|n| all.iter().position(|m| &m.id == n))
            };
            let (after, before) = (position(&q.after_id), position(&q.before_id));
            let expected: Vec<String> = all
                .iter()
                .enumerate()
                .filter(|(i, m)| {
                    q.start.is_none_or(|s| m.timestamp >= s)
                        && q.end.is_none_or(|e| m.timestamp <= e)
                        && q.with.as_ref().is_none_or(|w| {
                            m.occupant_id.as_ref() == Some(w) || m.real_jid.as_ref() == Some(w)
                        })
                        && after.is_none_or(|a| *i > a)
                        && before.is_none_or(|b| *i < b)
                        && (q.ids.is_empty() || q.ids.contains(&m.id))
                })
                .map(|(_, m)| m.id.clone())
                .collect();
            let t = Instant::now();
            let (forward, backward) = walk(store.as_ref(), "big", q, expected.len()).await;
            eprintln!(
                "{kind}: {name}: {} messages both ways in {:?}",
                expected.len(),
                t.elapsed()
            );
            assert_eq!(forward, expected, "{kind}: {name}, forward");
            assert_eq!(backward, expected, "{kind}: {name}, backward");
        }

        // flip-page: the same messages newest first, same first/last.
        let q = ArchiveQuery {
            paging: Paging::Before(id(5_000)),
            ..ArchiveQuery::new(10)
        };
        let page = store.query("big", q.clone()).await.expect("page");
        let flipped = store
            .query(
                "big",
                ArchiveQuery {
                    flip_page: true,
                    ..q
                },
            )
            .await
            .expect("flipped");
        assert_eq!(
            ids(&page.messages),
            (4_990..5_000).map(id).collect::<Vec<_>>()
        );
        let mut reversed = page.messages.clone();
        reversed.reverse();
        assert_eq!(flipped.messages, reversed, "{kind}");
        assert_eq!((flipped.first, flipped.last), (page.first, page.last));
        assert!(!page.complete);

        // max = 0: the count only.
        let page = store
            .query("big", ArchiveQuery::new(0))
            .await
            .expect("count");
        assert!(page.messages.is_empty() && !page.complete);
        assert_eq!(page.count, 10_000);
        // The other room is untouched by all of it.
        let page = store
            .query("other", ArchiveQuery::new(1_000))
            .await
            .expect("other");
        assert_eq!(page.messages, noise, "{kind}");
    }
}

#[tokio::test]
async fn unknown_ids_are_item_not_found() {
    for (kind, store) in stores() {
        store
            .append((0..10).map(|i| message("r", i)).collect())
            .await
            .expect("append");
        // An id of another room is unknown here too.
        store
            .append(vec![message("elsewhere", 1)])
            .await
            .expect("append");
        let unknown = "elsewhere-000001".to_owned();
        let queries = [
            ArchiveQuery {
                paging: Paging::After(unknown.clone()),
                ..ArchiveQuery::new(5)
            },
            ArchiveQuery {
                paging: Paging::Before(unknown.clone()),
                ..ArchiveQuery::new(5)
            },
            ArchiveQuery {
                after_id: Some(unknown.clone()),
                ..ArchiveQuery::new(5)
            },
            ArchiveQuery {
                before_id: Some(unknown.clone()),
                ..ArchiveQuery::new(5)
            },
            ArchiveQuery {
                ids: vec!["r-000001".into(), unknown.clone()],
                ..ArchiveQuery::new(5)
            },
        ];
        for (room, q) in [("r", &queries[..]), ("no-such-room", &queries[..])]
            .into_iter()
            .flat_map(|(room, qs)| qs.iter().map(move |q| (room, q)))
        {
            let err = store.query(room, q.clone()).await.expect_err("unknown id");
            assert!(
                matches!(&err, ArchiveError::ItemNotFound { id }
                    if *id == unknown || room == "no-such-room"),
                "{kind}: {room} {q:?}: {err}"
            );
        }
        let page = store
            .query("no-such-room", ArchiveQuery::new(5))
            .await
            .expect("empty");
        assert!(page.messages.is_empty() && page.complete && page.count == 0);
        assert_eq!(page.first, None);
        let err = store
            .retract("r", &unknown, "<tombstone/>".into())
            .await
            .expect_err("retract unknown");
        assert!(matches!(err, ArchiveError::ItemNotFound { .. }), "{kind}");
    }
}

#[tokio::test]
async fn append_retract_bounds_history_expire_remove() {
    for (kind, store) in stores() {
        assert_eq!(store.bounds("r").await.expect("bounds"), None);
        store
            .append((0..30).map(|i| message("r", i)).collect())
            .await
            .expect("append");
        // A duplicate id fails its whole batch.
        let err = store
            .append(vec![message("r", 30), message("r", 31), message("r", 3)])
            .await
            .expect_err("duplicate");
        assert!(
            matches!(&err, ArchiveError::DuplicateId { id, .. } if id == "r-000003"),
            "{kind}: {err}"
        );
        let err = store
            .append(vec![message("r", 40), message("r", 40)])
            .await
            .expect_err("duplicate in the batch");
        assert!(matches!(err, ArchiveError::DuplicateId { .. }), "{kind}");
        assert_eq!(
            store
                .query("r", ArchiveQuery::new(100))
                .await
                .expect("q")
                .count,
            30
        );
        // A late message (an older timestamp) takes its place in time.
        let mut late = message("r", 99);
        late.timestamp = ts(0) - 1;
        store.append(vec![late]).await.expect("late");
        assert_eq!(
            store.bounds("r").await.expect("bounds"),
            Some(ArchiveBounds {
                first: ("r-000099".into(), ts(0) - 1),
                last: ("r-000029".into(), ts(29)),
            }),
            "{kind}"
        );

        store
            .retract("r", "r-000010", "<message><retracted/></message>".into())
            .await
            .expect("retract");
        let page = store
            .query(
                "r",
                ArchiveQuery {
                    ids: vec!["r-000010".into()],
                    ..ArchiveQuery::new(5)
                },
            )
            .await
            .expect("retracted");
        assert!(page.messages[0].retracted, "{kind}");
        assert_eq!(page.messages[0].xml, "<message><retracted/></message>");

        let history = store.history("r", 5, None).await.expect("history");
        assert_eq!(
            ids(&history),
            ["r-000025", "r-000026", "r-000027", "r-000028", "r-000029"],
            "{kind}"
        );
        let history = store.history("r", 100, Some(ts(27))).await.expect("since");
        assert_eq!(ids(&history), ["r-000027", "r-000028", "r-000029"]);
        assert!(store.history("r", 0, None).await.expect("none").is_empty());
        assert!(
            store
                .history("gone", 5, None)
                .await
                .expect("none")
                .is_empty()
        );

        // Retention: everything before ts(15), i.e. messages 0..15 and the late one.
        assert_eq!(store.expire(ts(15)).await.expect("expire"), 16, "{kind}");
        let first = store.bounds("r").await.expect("bounds").expect("some");
        assert_eq!(first.first.0, "r-000015");
        let page = store.query("r", ArchiveQuery::new(0)).await.expect("count");
        assert_eq!(page.count, 15, "{kind}");

        store.remove_archive("r").await.expect("remove");
        assert_eq!(store.bounds("r").await.expect("bounds"), None, "{kind}");
        assert_eq!(
            store
                .query("r", ArchiveQuery::new(5))
                .await
                .expect("q")
                .count,
            0
        );
        // Ids are free again.
        store.append(vec![message("r", 3)]).await.expect("append");
    }
}

#[tokio::test]
async fn deleting_a_stored_room_deletes_its_archive() {
    for (kind, store) in stores() {
        store
            .apply(vec![StoreOp::PutRoom(room("kept", true))])
            .await
            .expect("put");
        store
            .append(vec![message("kept", 1), message("temporary", 1)])
            .await
            .expect("append");
        // An archive outlives PutRoom (config changes).
        store
            .apply(vec![StoreOp::PutRoom(room("kept", false))])
            .await
            .expect("put");
        assert!(
            store.bounds("kept").await.expect("bounds").is_some(),
            "{kind}"
        );
        store
            .apply(vec![
                StoreOp::DeleteRoom {
                    name: "kept".into(),
                },
                StoreOp::DeleteRoom {
                    name: "temporary".into(),
                },
            ])
            .await
            .expect("delete");
        assert_eq!(store.bounds("kept").await.expect("bounds"), None, "{kind}");
        assert_eq!(store.bounds("temporary").await.expect("b"), None, "{kind}");
    }
}

#[tokio::test]
async fn the_archive_survives_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rooms.sqlite3");
    {
        let store = SqliteStore::open(&path).expect("open");
        store
            .append((0..10).map(|i| message("r", i)).collect())
            .await
            .expect("append");
    }
    let store = SqliteStore::open(&path).expect("reopen");
    let page = store
        .query("r", ArchiveQuery::new(100))
        .await
        .expect("query");
    assert_eq!(
        page.messages,
        (0..10).map(|i| message("r", i)).collect::<Vec<_>>()
    );
}

/// Prints how long pages of 50 take in a 100 000-message room (not an
/// assertion: timings depend on the machine and the build profile).
#[tokio::test]
async fn page_timings_in_a_hundred_thousand_message_room() {
    let store = SqliteStore::open_in_memory().expect("sqlite");
    let t = Instant::now();
    for chunk in (0..100_000).collect::<Vec<_>>().chunks(10_000) {
        store
            .append(chunk.iter().map(|&i| message("huge", i)).collect())
            .await
            .expect("append");
        store
            .append(
                chunk
                    .iter()
                    .take(100)
                    .map(|&i| message("small", i))
                    .collect(),
            )
            .await
            .expect("append");
    }
    eprintln!("appended 100 000 messages in {:?}", t.elapsed());
    let id = |i: usize| format!("huge-{i:06}");
    let cases = [
        ("first page", ArchiveQuery::new(50)),
        (
            "middle, forward",
            ArchiveQuery {
                paging: Paging::After(id(50_000)),
                ..ArchiveQuery::new(50)
            },
        ),
        (
            "middle, backward",
            ArchiveQuery {
                paging: Paging::Before(id(50_000)),
                ..ArchiveQuery::new(50)
            },
        ),
        (
            "last page",
            ArchiveQuery {
                paging: Paging::Last,
                ..ArchiveQuery::new(50)
            },
        ),
        (
            "time window, middle",
            ArchiveQuery {
                start: Some(ts(40_000)),
                end: Some(ts(41_000)),
                paging: Paging::After(id(40_500)),
                ..ArchiveQuery::new(50)
            },
        ),
        (
            "with, last page",
            ArchiveQuery {
                with: Some("occ3".into()),
                paging: Paging::Last,
                ..ArchiveQuery::new(50)
            },
        ),
    ];
    for (name, q) in cases {
        let plan = store
            .explain_archive_query("huge", q.clone())
            .await
            .expect("plan");
        let runs = 20;
        let t = Instant::now();
        let mut page = None;
        for _ in 0..runs {
            page = Some(store.query("huge", q.clone()).await.expect("query"));
        }
        let page = page.expect("ran");
        assert_eq!(page.messages.len(), 50, "{name}");
        eprintln!(
            "{name}: {:?} per page of 50 (count {}, plan: {})",
            t.elapsed() / runs,
            page.count,
            plan.join("; ")
        );
    }
    let t = Instant::now();
    let history = store.history("huge", 20, None).await.expect("history");
    eprintln!("history of 20: {:?}", t.elapsed());
    assert_eq!(history.len(), 20);
}

/// Concurrent writes share transactions (group commit), yet each stands
/// alone: the one that fails is refused and the others are committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_commit_together_and_fail_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rooms.sqlite3");
    let store = SqliteStore::open(&path).expect("open");
    store.append(vec![message("r0", 7)]).await.expect("append");
    let t = Instant::now();
    let tasks: Vec<_> = (0..40)
        .map(|r| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for i in 0..10 {
                    outcomes.push(store.append(vec![message(&format!("r{r}"), i)]).await);
                }
                let put = store
                    .apply(vec![StoreOp::PutRoom(room(&format!("r{r}"), true))])
                    .await;
                (outcomes, put)
            })
        })
        .collect();
    let mut failures = 0;
    for task in tasks {
        let (outcomes, put) = task.await.expect("task");
        put.expect("put room");
        for outcome in outcomes {
            if let Err(e) = outcome {
                assert!(matches!(e, ArchiveError::DuplicateId { .. }), "{e}");
                failures += 1;
            }
        }
    }
    eprintln!("440 concurrent writes in {:?}", t.elapsed());
    assert_eq!(failures, 1, "only r0's message 7 was a duplicate");
    drop(store);
    let store = SqliteStore::open(&path).expect("reopen");
    assert_eq!(store.count_rooms(false).await.expect("count"), 40);
    for r in 0..40 {
        let page = store
            .query(&format!("r{r}"), ArchiveQuery::new(100))
            .await
            .expect("query");
        assert_eq!(page.count, 10, "r{r}");
    }
}
