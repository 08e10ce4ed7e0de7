//! Deterministic data sets: 100 organizations, realistic field sizes
//! (instructions ~500 bytes, metadata 10 keys), mixed statuses.

use std::path::Path;
use std::sync::Arc;

use callback_store::{Durability, ManualClock, NewCallback, Store, StoreOptions, Timestamp};
use chrono::{Duration, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

pub const ORGANIZATIONS: usize = 100;
pub const SEED: u64 = 0x00C0_FFEE;

pub fn t0() -> Timestamp {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()
}

pub fn org_id(i: usize) -> String {
    format!("org_{:03}", i % ORGANIZATIONS)
}

pub fn options(durability: Durability) -> StoreOptions {
    StoreOptions {
        durability,
        clock: Arc::new(ManualClock::new(t0())),
        ..StoreOptions::default()
    }
}

pub fn open(path: &Path, durability: Durability) -> Store {
    Store::open_with(path, options(durability)).expect("open bench store")
}

/// The `i`-th callback of the data set; the same `i` always gives the same one.
pub fn callback(rng: &mut StdRng, i: usize) -> NewCallback {
    let words = [
        "call", "back", "about", "the", "pricing", "plan", "renewal", "question", "customer",
        "prefers", "mornings", "mention", "discount", "invoice",
    ];
    let mut instructions = String::with_capacity(520);
    while instructions.len() < 500 {
        instructions.push_str(words[rng.random_range(0..words.len())]);
        instructions.push(' ');
    }
    let mut metadata = serde_json::Map::new();
    for k in 0..10 {
        metadata.insert(
            format!("key_{k}"),
            json!(format!("value-{}", rng.random_range(0..1000))),
        );
    }
    NewCallback {
        source_session_id: Some(format!("sess_{}", i / 3)),
        agent_id: Some(format!("agent_{}", i % 20)),
        phone_number_id: Some(format!("pn_{}", i % 7)),
        from_number: Some("+12015550000".into()),
        reason: Some("customer asked for a callback".into()),
        instructions: Some(instructions),
        summary: Some("Discussed the renewal; wants numbers in writing.".into()),
        pipeline_config: serde_json::Map::from_iter([("voice".to_owned(), json!("alloy"))]),
        metadata,
        ..NewCallback::new(
            format!("+1201555{:04}", i % 10_000),
            t0() + Duration::minutes(rng.random_range(-1440..10_080)),
        )
    }
}

/// The organization of the `k`-th batch: half of all batches go to
/// `org_000` (one big customer, so that page 1000 exists), the rest round
/// robin over the 99 others.
pub fn batch_org(k: usize) -> String {
    if k % 2 == 0 {
        org_id(0)
    } else {
        org_id(1 + (k / 2) % (ORGANIZATIONS - 1))
    }
}

/// The organization the list and get workloads read.
pub const BIG_ORG: &str = "org_000";

/// Callbacks `0..n` in batches of `batch`, each batch for one organization,
/// generated as they are consumed so that a million rows do not sit in memory.
pub fn for_each_batch(n: usize, batch: usize, mut f: impl FnMut(&str, Vec<NewCallback>)) {
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut start = 0;
    while start < n {
        let end = (start + batch).min(n);
        let items = (start..end).map(|i| callback(&mut rng, i)).collect();
        f(&batch_org(start / batch), items);
        start = end;
    }
}

/// A store of `n` callbacks with mixed statuses, built once and reused.
pub fn populated(path: &Path, n: usize) -> Store {
    if path.exists() {
        return open(path, Durability::Normal);
    }
    let store = open(path, Durability::Normal);
    for_each_batch(n, 1000, |org, items| {
        store.organization(org).unwrap().create_many(items).unwrap();
    });
    // Mix the statuses without the rules (setup only): a third finished.
    store.with_connection(|c| {
        c.execute_batch(
            "UPDATE callbacks SET status = CASE seq % 6
                 WHEN 1 THEN 'dispatched' WHEN 2 THEN 'cancelled' WHEN 3 THEN 'failed'
                 ELSE 'scheduled' END
             WHERE seq % 6 IN (1, 2, 3);
             PRAGMA wal_checkpoint(TRUNCATE);",
        )
        .unwrap()
    });
    store
}
