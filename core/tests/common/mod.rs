//! Fixtures shared by the integration tests.
#![allow(dead_code)]

pub mod plans;
pub mod refused;

use std::sync::Arc;

use callback_store::{ManualClock, NewCallback, Store, StoreOptions, Timestamp};
use chrono::{TimeZone, Utc};
use testkit::TestDb;

/// 2030-01-01T00:00:00Z: the fixed "now" of every test store.
pub fn t0() -> Timestamp {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()
}

/// `t0()` plus some minutes.
pub fn at_minutes(minutes: i64) -> Timestamp {
    t0() + chrono::Duration::minutes(minutes)
}

/// A fresh store on this run's backend (see `testkit::TestDb`) whose clock
/// stands at `t0()` until moved: in memory on SQLite, a new schema on
/// PostgreSQL.
pub fn store() -> (Store, ManualClock) {
    let clock = ManualClock::new(t0());
    let options = StoreOptions {
        clock: Arc::new(clock.clone()),
        ..StoreOptions::default()
    };
    (open_store(options).unwrap(), clock)
}

/// A fresh store on this run's backend with `options`.
pub fn open_store(options: StoreOptions) -> callback_store::Result<Store> {
    match testkit::postgres_server() {
        Some(server) => Store::open_with(TestDb::postgres(&server).location(), options),
        None => Store::open_in_memory_with(options),
    }
}

/// A database several stores (connections, pools) open at once: a file,
/// or a schema on the run's PostgreSQL server.
pub fn shared_db() -> (TestDb, ManualClock) {
    (TestDb::new(), ManualClock::new(t0()))
}

/// A store on `location` (a file or a URL) with the given clock.
pub fn file_store(path: impl AsRef<std::path::Path>, clock: &ManualClock) -> Store {
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
    count(store, &format!("SELECT COUNT(*) FROM {table}"))
}

/// The one integer a `SELECT COUNT(*) …` (of SQL both backends read alike)
/// answers, read beside the store's rules.
pub fn count(store: &Store, sql: &str) -> i64 {
    #[cfg(feature = "postgres")]
    if let Some(count) = store.with_postgres(|c| c.query_one(sql, &[]).unwrap().get(0)) {
        return count.unwrap();
    }
    store.with_connection(|c| c.query_row(sql, [], |r| r.get(0)).unwrap())
}

/// Runs a statement beside the store's rules: to damage or age a row on
/// purpose, on either backend.
pub fn execute(store: &Store, sql: &str) {
    #[cfg(feature = "postgres")]
    if let Some(done) = store.with_postgres(|c| c.batch_execute(sql).unwrap()) {
        return done.unwrap();
    }
    store.with_connection(|c| c.execute_batch(sql).unwrap())
}

/// The callbacks of claims, for tests about the records rather than the claims.
pub fn callbacks(claims: Vec<callback_store::Claim>) -> Vec<callback_store::Callback> {
    claims
        .into_iter()
        .map(callback_store::Claim::into_callback)
        .collect()
}
