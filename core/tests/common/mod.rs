//! Fixtures shared by the integration tests.
#![allow(dead_code)]

pub mod refused;

use std::sync::Arc;

use callback_store::{ManualClock, NewCallback, Store, StoreOptions, Timestamp};
use chrono::{TimeZone, Utc};

/// 2030-01-01T00:00:00Z: the fixed "now" of every test store.
pub fn t0() -> Timestamp {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()
}

/// `t0()` plus some minutes.
pub fn at_minutes(minutes: i64) -> Timestamp {
    t0() + chrono::Duration::minutes(minutes)
}

/// An in-memory store whose clock stands at `t0()` until moved.
pub fn store() -> (Store, ManualClock) {
    let clock = ManualClock::new(t0());
    let store = Store::open_in_memory_with(StoreOptions {
        clock: Arc::new(clock.clone()),
        ..StoreOptions::default()
    })
    .unwrap();
    (store, clock)
}

/// A file store in `dir` with the given clock.
pub fn file_store(path: &std::path::Path, clock: &ManualClock) -> Store {
    Store::open_with(
        path,
        StoreOptions {
            clock: Arc::new(clock.clone()),
            ..StoreOptions::default()
        },
    )
    .unwrap()
}

/// A valid callback due `minutes` after `t0()`.
pub fn new_callback(minutes: i64) -> NewCallback {
    NewCallback::new("+12015551234", at_minutes(minutes))
}

/// How many rows the table holds, across organizations.
pub fn row_count(store: &Store, table: &str) -> i64 {
    store.with_connection(|c| {
        c.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    })
}

/// The callbacks of claims, for tests about the records rather than the claims.
pub fn callbacks(claims: Vec<callback_store::Claim>) -> Vec<callback_store::Callback> {
    claims
        .into_iter()
        .map(callback_store::Claim::into_callback)
        .collect()
}
