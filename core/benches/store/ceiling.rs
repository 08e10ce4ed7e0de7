//! The machine's ceiling for the store's kind of work, measured in the same
//! run as the store, and deterministic counts that do not move with the
//! noise of a shared machine (issue 14).
//!
//! - C1: a raw `UPDATE` of a random row of a table with one index, plus one
//!   `INSERT` into a second table, a transaction each: the most
//!   transitions-with-history per second this disk and SQLite allow at the
//!   store's pragmas (Normal). C2: the same statements, all in one
//!   transaction: the ceiling when commits are shared.
//! - W1–W3: WAL frames (pages appended to the write-ahead log) per create,
//!   per claim of 100 and per drained callback (its share of a claim of 100
//!   plus its completion), against the frames of one C1 transaction. The
//!   count depends only on the schema and the statements, not on timing.
//!   Since V5 (the history as a chain of events, no index of events by
//!   callback) a completion writes the row's page, the log's last page and
//!   one or two pages of each index over the status it changes
//!   (`by_org_status`: its delete and its insert at a random place;
//!   `by_org_status_scheduled`, `stale`, `finished`): 6.0 frames, and a
//!   drained callback 8.0 (V4: 7.0 and 9.5; 20,000 due).
//! - Completions committed 100 per transaction (issue 14's <= 3) are not
//!   measured here: the public API commits each completion, and grouping
//!   them is the group-commit work's, which will add its own row.

use std::path::{Path, PathBuf};

use callback_store::{Durability, Store};
use chrono::Duration;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rusqlite::{params, Connection, TransactionBehavior};

use crate::data::{self, t0};
use crate::stats::{time, Goal, Row};
use crate::workloads::fresh;

/// The ceiling's table, `n` rows, at the store's pragmas of Normal.
fn ceiling_file(dir: &Path, name: &str, n: usize) -> (PathBuf, Connection) {
    let path = fresh(dir, name);
    let conn = Connection::open(&path).unwrap();
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
        .unwrap();
    conn.execute_batch(Durability::Normal.pragmas()).unwrap();
    conn.execute_batch(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, status INTEGER NOT NULL, at INTEGER NOT NULL);
         CREATE INDEX items_by_status ON items (status);
         CREATE TABLE log (id INTEGER PRIMARY KEY, item INTEGER NOT NULL, at INTEGER NOT NULL);",
    )
    .unwrap();
    let tx = conn.unchecked_transaction().unwrap();
    {
        let mut insert = tx
            .prepare("INSERT INTO items (id, status, at) VALUES (?1, 0, 0)")
            .unwrap();
        for id in 1..=n as i64 {
            insert.execute([id]).unwrap();
        }
    }
    tx.commit().unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    (path, conn)
}

/// One transition with its history, as raw SQL: the row changes status
/// (an indexed column) and a log row is appended.
fn transition(conn: &Connection, id: i64, at: i64) {
    conn.prepare_cached("UPDATE items SET status = 1, at = ?2 WHERE id = ?1")
        .unwrap()
        .execute(params![id, at])
        .unwrap();
    conn.prepare_cached("INSERT INTO log (item, at) VALUES (?1, ?2)")
        .unwrap()
        .execute(params![id, at])
        .unwrap();
}

/// Random distinct rows, the same for every run.
fn order(n: usize) -> Vec<i64> {
    let mut ids: Vec<i64> = (1..=n as i64).collect();
    ids.shuffle(&mut StdRng::seed_from_u64(data::SEED));
    ids
}

/// WAL frames written since the last TRUNCATE checkpoint of `wal`'s
/// database (no checkpoint may run in between).
fn frames(wal: &Path, page_size: i64) -> f64 {
    let bytes = std::fs::metadata(wal).map(|m| m.len() as i64).unwrap_or(0);
    // A 32-byte header, then each frame: a 24-byte header and a page.
    ((bytes - 32).max(0) / (24 + page_size)) as f64
}

fn wal_of(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}-wal", path.display()))
}

/// The ceiling rows C1 and C2 and the frames of one C1 transaction.
pub struct Ceiling {
    pub rows: Vec<Row>,
    /// C1's transactions per second.
    pub per_transaction: f64,
    pub frames_per_transaction: f64,
}

pub fn ceiling(dir: &Path, n: usize) -> Ceiling {
    let ids = order(n);
    let (_, conn) = ceiling_file(dir, "ceiling-each.db", n);
    let (each, ()) = time(|| {
        for (at, id) in ids.iter().enumerate() {
            let tx = conn.unchecked_transaction().unwrap();
            transition(&tx, *id, at as i64);
            tx.commit().unwrap();
        }
    });
    let (_, conn) = ceiling_file(dir, "ceiling-one.db", n);
    let (one, ()) = time(|| {
        let tx = conn.unchecked_transaction().unwrap();
        for (at, id) in ids.iter().enumerate() {
            transition(&tx, *id, at as i64);
        }
        tx.commit().unwrap();
    });
    // Frames of 1000 transactions, with no checkpoint in between.
    let (path, mut conn) = ceiling_file(dir, "ceiling-frames.db", n);
    conn.execute_batch("PRAGMA wal_autocheckpoint = 0").unwrap();
    let page_size: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    let sample = ids.len().min(1000);
    for (at, id) in ids.iter().take(sample).enumerate() {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        transition(&tx, *id, at as i64);
        tx.commit().unwrap();
    }
    let frames_per_transaction = frames(&wal_of(&path), page_size) / sample as f64;
    let per_transaction = n as f64 / each.as_secs_f64();
    let per_row = n as f64 / one.as_secs_f64();
    let rows = vec![
        Row::new(
            "C1",
            &format!("ceiling: UPDATE of a random indexed row + INSERT, a transaction each, {n}"),
            per_transaction,
            per_row,
            "op/s",
            Goal::AtLeast,
            0.0,
        )
        .no_target()
        .note(format!(
            "baseline: C2, the same {n} in one transaction; {frames_per_transaction:.1} WAL frames per transaction"
        )),
    ];
    Ceiling {
        rows,
        per_transaction,
        frames_per_transaction,
    }
}

/// P4 as a fraction of the per-transaction ceiling (issue 14: >= 0.20).
pub fn p4_of_ceiling(p4_rate: f64, ceiling: &Ceiling) -> Row {
    Row::new(
        "C3",
        "claim_due by 100 + complete_dispatch one by one, against the ceiling C1",
        p4_rate,
        ceiling.per_transaction,
        "cb/s",
        Goal::AtLeast,
        0.20,
    )
    .note("the store's drain of P4 (with the claim token) as a fraction of raw transitions")
}

/// W1–W3: WAL frames per create, per claim of 100, per drained callback,
/// on a store of `n` due callbacks, against one C1 transaction's frames.
pub fn wal_frames(dir: &Path, template: &Path, ceiling: &Ceiling) -> Vec<Row> {
    let (store, counter) = counted_store(dir, template, "wal-frames.db");
    let (wal, page_size) = (&counter.wal, counter.page_size);
    let restart = restart_count;
    let now = t0() + Duration::days(30);
    restart(&store);
    let org = store.organization("org_frames").unwrap();
    let creates = 100;
    let mut rng = StdRng::seed_from_u64(data::SEED);
    for i in 0..creates {
        org.create(data::callback(&mut rng, i)).unwrap();
    }
    let per_create = frames(wal, page_size) / creates as f64;
    restart(&store);
    let claims = store.claim_due(now, 100).unwrap();
    let per_claim = frames(wal, page_size);
    restart(&store);
    for claim in &claims {
        store
            .organization(&claim.callback().organization_id)
            .unwrap()
            .complete_dispatch(claim.id(), "sess_x", Some(claim.token()))
            .unwrap();
    }
    let per_completion = frames(wal, page_size) / claims.len() as f64;
    let per_drained = per_claim / claims.len() as f64 + per_completion;
    let c1 = ceiling.frames_per_transaction;
    let row = |id: &str, workload: &str, ours: f64| {
        Row::new(id, workload, ours, c1, "frames", Goal::AtMost, 0.0).no_target()
    };
    vec![
        row("W1", "WAL frames per create, one by one", per_create),
        row("W2", "WAL frames per claim_due of 100", per_claim),
        row(
            "W3",
            "WAL frames per drained callback (its share of a claim of 100 + its completion)",
            per_drained,
        )
        .note(format!(
            "completion alone {per_completion:.1} (V4 layout: 9.5, completion 7.0); baseline: one C1 transaction; issue 14's target: <= 6"
        )),
    ]
}

/// Where a store's WAL frames are counted.
struct FrameCounter {
    wal: PathBuf,
    page_size: i64,
}

/// A copy of `template` opened as a store whose WAL frames can be counted.
fn counted_store(dir: &Path, template: &Path, name: &str) -> (Store, FrameCounter) {
    let path = fresh(dir, name);
    std::fs::copy(template, &path).unwrap();
    let store = data::open(&path, Durability::Normal);
    let counter = FrameCounter {
        wal: wal_of(&path),
        page_size: page_size(&store),
    };
    (store, counter)
}

/// Empties the WAL and stops checkpoints, so that its size counts the
/// frames written from now on.
fn restart_count(store: &Store) {
    store.with_connection(|c| {
        c.execute_batch("PRAGMA wal_autocheckpoint = 0; PRAGMA wal_checkpoint(TRUNCATE);")
            .unwrap()
    })
}

/// W4: WAL frames per drained callback when a claim of 100 is completed
/// with one `complete_many` (issue 14's target: <= 3).
pub fn frames_of_batched_drain(dir: &Path, template: &Path, ceiling: &Ceiling) -> Row {
    let (store, counter) = counted_store(dir, template, "wal-frames-many.db");
    let now = t0() + Duration::days(30);
    restart_count(&store);
    let claims = store.claim_due(now, 100).unwrap();
    crate::groups::complete_all(&store, &claims);
    let per_drained = frames(&counter.wal, counter.page_size) / claims.len() as f64;
    Row::new(
        "W4",
        "WAL frames per drained callback, a claim of 100 completed by one complete_many",
        per_drained,
        ceiling.frames_per_transaction,
        "frames",
        Goal::AtMost,
        0.0,
    )
    .no_target()
    .note("baseline: one C1 transaction; issue 14's target: <= 3")
}

fn page_size(store: &Store) -> i64 {
    store.with_connection(|c| c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap())
}
