//! The room store's tests, run against both implementations.

use std::time::Instant;

use super::memory::MemoryStore;
use super::migrations::{CURRENT, FutureSchema};
use super::sqlite::SqliteStore;
use super::*;

pub(crate) fn room(name: &str, public: bool) -> RoomRecord {
    RoomRecord {
        name: name.to_owned(),
        config: format!(r#"{{"title":"{name}","public":{public}}}"#),
        public,
        subject: None,
        created: 1_700_000_000,
    }
}

fn aff(jid: &str, affiliation: &str) -> AffiliationRecord {
    AffiliationRecord {
        jid: jid.to_owned(),
        affiliation: affiliation.to_owned(),
        reason: None,
        nick: None,
    }
}

fn subject(text: &str) -> SubjectRecord {
    SubjectRecord {
        text: text.to_owned(),
        nick: "alice".to_owned(),
        set_at: 1_700_000_100,
    }
}

/// Both stores, named for failure messages.
fn stores() -> Vec<(&'static str, Box<dyn RoomStore>)> {
    vec![
        ("memory", Box::new(MemoryStore::new())),
        (
            "sqlite",
            Box::new(SqliteStore::open_in_memory().expect("in-memory sqlite")),
        ),
    ]
}

#[tokio::test]
async fn every_op() {
    for (kind, store) in stores() {
        assert_eq!(store.load_room("a").await.expect("load"), None, "{kind}");
        let mut a = room("a", true);
        store
            .apply(vec![StoreOp::PutRoom(a.clone())])
            .await
            .expect("put");
        let loaded = store.load_room("a").await.expect("load").expect("stored");
        assert_eq!(loaded.room, a, "{kind}");
        assert!(loaded.affiliations.is_empty(), "{kind}");

        let owner = AffiliationRecord {
            reason: Some("founder".into()),
            nick: Some("Al".into()),
            ..aff("al@example.org", "owner")
        };
        store
            .apply(vec![
                StoreOp::SetAffiliation {
                    room: "a".into(),
                    record: owner.clone(),
                },
                StoreOp::SetAffiliation {
                    room: "a".into(),
                    record: aff("bo@example.org", "member"),
                },
                StoreOp::SetAffiliation {
                    room: "a".into(),
                    record: aff("troll@example.net", "outcast"),
                },
            ])
            .await
            .expect("affiliations");
        // Replace by (room, jid).
        store
            .apply(vec![StoreOp::SetAffiliation {
                room: "a".into(),
                record: aff("bo@example.org", "admin"),
            }])
            .await
            .expect("replace");
        let loaded = store.load_room("a").await.expect("load").expect("stored");
        assert_eq!(
            loaded.affiliations,
            vec![
                owner.clone(),
                aff("bo@example.org", "admin"),
                aff("troll@example.net", "outcast")
            ],
            "{kind}"
        );

        store
            .apply(vec![
                StoreOp::RemoveAffiliation {
                    room: "a".into(),
                    jid: "troll@example.net".into(),
                },
                StoreOp::RemoveAffiliation {
                    room: "a".into(),
                    jid: "nobody@example.net".into(),
                },
            ])
            .await
            .expect("remove");
        store
            .apply(vec![StoreOp::SetSubject {
                room: "a".into(),
                subject: Some(subject("Welcome")),
            }])
            .await
            .expect("subject");
        let loaded = store.load_room("a").await.expect("load").expect("stored");
        assert_eq!(loaded.room.subject, Some(subject("Welcome")), "{kind}");
        assert_eq!(loaded.affiliations.len(), 2, "{kind}");

        // PutRoom replaces the record, keeps the affiliations.
        a.config = r#"{"title":"renamed"}"#.into();
        a.public = false;
        a.subject = Some(subject("Replaced"));
        store
            .apply(vec![StoreOp::PutRoom(a.clone())])
            .await
            .expect("put again");
        let loaded = store.load_room("a").await.expect("load").expect("stored");
        assert_eq!(loaded.room, a, "{kind}");
        assert_eq!(loaded.affiliations.len(), 2, "{kind}");

        store
            .apply(vec![StoreOp::SetSubject {
                room: "a".into(),
                subject: None,
            }])
            .await
            .expect("clear subject");
        let loaded = store.load_room("a").await.expect("load").expect("stored");
        assert_eq!(loaded.room.subject, None, "{kind}");

        // Delete takes the affiliations; a new room of that name starts clean.
        store
            .apply(vec![
                StoreOp::DeleteRoom { name: "a".into() },
                StoreOp::DeleteRoom {
                    name: "never".into(),
                },
            ])
            .await
            .expect("delete");
        assert_eq!(store.load_room("a").await.expect("load"), None, "{kind}");
        store
            .apply(vec![StoreOp::PutRoom(room("a", true))])
            .await
            .expect("recreate");
        let loaded = store.load_room("a").await.expect("load").expect("stored");
        assert!(loaded.affiliations.is_empty(), "{kind}");
    }
}

#[tokio::test]
async fn a_failing_batch_leaves_nothing() {
    for (kind, store) in stores() {
        store
            .apply(vec![StoreOp::PutRoom(room("a", true))])
            .await
            .expect("put");
        let err = store
            .apply(vec![
                StoreOp::PutRoom(room("b", true)),
                StoreOp::SetSubject {
                    room: "a".into(),
                    subject: Some(subject("half")),
                },
                StoreOp::SetAffiliation {
                    room: "missing".into(),
                    record: aff("x@example.org", "member"),
                },
            ])
            .await
            .expect_err("unknown room");
        assert_eq!(
            err.downcast_ref::<UnknownRoom>(),
            Some(&UnknownRoom("missing".into())),
            "{kind}"
        );
        assert_eq!(store.load_room("b").await.expect("load"), None, "{kind}");
        let a = store.load_room("a").await.expect("load").expect("a");
        assert_eq!(a.room.subject, None, "{kind}");

        let err = store
            .apply(vec![
                StoreOp::DeleteRoom { name: "a".into() },
                StoreOp::SetSubject {
                    room: "gone".into(),
                    subject: None,
                },
            ])
            .await
            .expect_err("unknown room");
        assert!(err.downcast_ref::<UnknownRoom>().is_some(), "{kind}");
        assert!(
            store.load_room("a").await.expect("load").is_some(),
            "{kind}"
        );

        let err = store
            .apply(vec![
                StoreOp::PutRoom(room("c", true)),
                StoreOp::SetAffiliation {
                    room: "c".into(),
                    record: aff("x@example.org", "moderator"),
                },
            ])
            .await
            .expect_err("not an affiliation");
        assert!(err.downcast_ref::<BadAffiliation>().is_some(), "{kind}");
        assert_eq!(store.load_room("c").await.expect("load"), None, "{kind}");
        assert_eq!(store.count_rooms(false).await.expect("count"), 1, "{kind}");
    }
}

#[tokio::test]
async fn listing_pages_through_ten_thousand_rooms() {
    for (kind, store) in stores() {
        let ops: Vec<StoreOp> = (0..10_000)
            .map(|i| StoreOp::PutRoom(room(&format!("room{i:05}"), i % 3 != 0)))
            .collect();
        let t = Instant::now();
        store.apply(ops).await.expect("put");
        eprintln!("{kind}: 10 000 rooms stored in {:?}", t.elapsed());

        assert_eq!(store.count_rooms(false).await.expect("count"), 10_000);
        assert_eq!(store.count_rooms(true).await.expect("count"), 6_666);

        for public_only in [true, false] {
            let t = Instant::now();
            let mut seen = Vec::new();
            let mut after: Option<String> = None;
            let mut pages = 0;
            loop {
                let page = store
                    .list_rooms(public_only, after.as_deref(), 100)
                    .await
                    .expect("list");
                pages += 1;
                assert!(page.len() <= 100);
                let Some(last) = page.last() else { break };
                after = Some(last.name.clone());
                seen.extend(page.into_iter().map(|r| (r.name, r.public)));
            }
            eprintln!(
                "{kind}: {pages} pages (public only: {public_only}) in {:?}",
                t.elapsed()
            );
            let expected: Vec<(String, bool)> = (0..10_000)
                .filter(|i| !public_only || i % 3 != 0)
                .map(|i| (format!("room{i:05}"), i % 3 != 0))
                .collect();
            assert_eq!(seen, expected, "{kind} public_only={public_only}");
        }
        let page = store
            .list_rooms(true, Some("room09990"), 100)
            .await
            .expect("tail");
        assert_eq!(page.len(), 6, "{kind}");
        assert!(
            store
                .list_rooms(false, Some("zzz"), 10)
                .await
                .expect("past the end")
                .is_empty()
        );
        assert!(
            store
                .list_rooms(false, None, 0)
                .await
                .expect("none")
                .is_empty()
        );
    }
}

#[tokio::test]
async fn reopening_keeps_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rooms.sqlite3");
    {
        let store = SqliteStore::open(&path).expect("open");
        store
            .apply(vec![
                StoreOp::PutRoom(room("kept", true)),
                StoreOp::SetAffiliation {
                    room: "kept".into(),
                    record: aff("al@example.org", "owner"),
                },
                StoreOp::SetSubject {
                    room: "kept".into(),
                    subject: Some(subject("still here")),
                },
            ])
            .await
            .expect("apply");
    }
    let store = SqliteStore::open(&path).expect("reopen");
    let kept = store.load_room("kept").await.expect("load").expect("kept");
    assert_eq!(kept.room.subject, Some(subject("still here")));
    assert_eq!(kept.affiliations, vec![aff("al@example.org", "owner")]);
    assert_eq!(store.schema_version().await.expect("version"), CURRENT);
}

#[tokio::test]
async fn migrates_an_empty_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("empty.sqlite3");
    std::fs::write(&path, b"").expect("empty file");
    let store = SqliteStore::open(&path).expect("open");
    assert_eq!(store.schema_version().await.expect("version"), CURRENT);
    let mode: String = store
        .run(|c| Ok(c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?))
        .await
        .expect("journal mode");
    assert_eq!(mode, "wal");
    let (sync, fk): (i64, i64) = store
        .run(|c| {
            Ok((
                c.query_row("PRAGMA synchronous", [], |r| r.get(0))?,
                c.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?,
            ))
        })
        .await
        .expect("pragmas");
    assert_eq!((sync, fk), (2, 1), "synchronous = FULL, foreign keys on");
}

#[tokio::test]
async fn refuses_a_schema_from_the_future() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("future.sqlite3");
    {
        let conn = rusqlite::Connection::open(&path).expect("sqlite");
        conn.pragma_update(None, "user_version", CURRENT + 1)
            .expect("version");
    }
    let err = SqliteStore::open(&path).expect_err("future schema");
    assert_eq!(
        err.downcast_ref::<FutureSchema>(),
        Some(&FutureSchema {
            found: CURRENT + 1,
            known: CURRENT
        })
    );
    assert!(err.to_string().contains("newer"), "{err}");
}
