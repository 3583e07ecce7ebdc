//! Property tests of upload's quota arithmetic (the catalog's `reserve`)
//! against a model: a slot is granted exactly when the daily and the
//! per-user quota have room, and a refusal's `<retry/>` stamp is the first
//! second at which the same request fits.

use proptest::prelude::*;
use satellite_upload::catalog::{Catalog, DAY, Entry, Quotas};
use satellite_upload::request::{Quota, Refusal};

const DAILY: u64 = 1000;
const USER: u64 = 1500;
const EXPIRE: i64 = 3 * DAY;
const OWNERS: [&str; 2] = ["ada@x", "bob@x"];

const QUOTAS: Quotas = Quotas {
    daily: DAILY,
    user: Some(USER),
    global: None,
    expire_after: Some(EXPIRE),
    open_slots: 1000,
};

/// A granted slot, uploaded at once.
struct Row {
    owner: usize,
    size: u64,
    at: i64,
}

/// Bytes of `owner` counted against the daily quota at `t`.
fn daily(rows: &[Row], owner: usize, t: i64) -> u64 {
    rows.iter()
        .filter(|r| r.owner == owner && r.at > t - DAY)
        .map(|r| r.size)
        .sum()
}

/// Bytes of `owner` stored at `t` (a file leaves `EXPIRE` after upload).
fn stored(rows: &[Row], owner: usize, t: i64) -> u64 {
    rows.iter()
        .filter(|r| r.owner == owner && r.at + EXPIRE > t)
        .map(|r| r.size)
        .sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn grants_and_retry_stamps_match_the_model(
        requests in proptest::collection::vec((0..OWNERS.len(), 1..=DAILY + 100, 0..DAY / 3), 1..40)
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let catalog = Catalog::open(&dir.path().join("c.sqlite3")).expect("open");
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let mut rows: Vec<Row> = Vec::new();
        let mut now = 1_000_000i64;
        for (i, (owner, size, step)) in requests.into_iter().enumerate() {
            now += step;
            let entry = Entry {
                id: format!("slot{i:04}"),
                owner: Some(OWNERS[owner].to_owned()),
                filename: "f.bin".to_owned(),
                size,
                content_type: None,
                created: now,
                slot_expires: now + 300,
                completed: None,
            };
            let id = entry.id.clone();
            let got = rt
                .block_on(catalog.run(move |conn| {
                    let got = Catalog::reserve(conn, &entry, &QUOTAS, now)?;
                    if got.is_ok() {
                        Catalog::complete(conn, &id, None, now)?;
                    }
                    Ok(got)
                }))
                .expect("database");
            // Completed files count until the sweep removes them; the model
            // removes them when they leave.
            let daily_fits = daily(&rows, owner, now) + size <= DAILY;
            let user_fits = rows
                .iter()
                .filter(|r| r.owner == owner)
                .map(|r| r.size)
                .sum::<u64>()
                + size
                <= USER;
            match got {
                Ok(()) => {
                    prop_assert!(daily_fits && user_fits, "granted over a quota");
                    rows.push(Row { owner, size, at: now });
                }
                Err(Refusal::Quota { which: Quota::Daily, retry_at }) => {
                    prop_assert!(!daily_fits);
                    match retry_at {
                        None => prop_assert!(size > DAILY),
                        Some(r) => {
                            prop_assert!(r > now);
                            prop_assert!(daily(&rows, owner, r) + size <= DAILY, "fits at {}", r);
                            prop_assert!(daily(&rows, owner, r - 1) + size > DAILY, "not before");
                        }
                    }
                }
                Err(Refusal::Quota { which: Quota::User, retry_at }) => {
                    prop_assert!(daily_fits && !user_fits);
                    match retry_at {
                        None => prop_assert!(size > USER),
                        Some(r) => {
                            prop_assert!(stored(&rows, owner, r) + size <= USER, "fits at {}", r);
                            prop_assert!(stored(&rows, owner, r - 1) + size > USER, "not before");
                        }
                    }
                }
                Err(other) => prop_assert!(false, "unexpected refusal {:?}", other),
            }
        }
    }
}
