//! The P8 worker process (`--pg-worker MODE URL OUT`): drains the shared
//! queue with the store (`store`), with the store's own SQL through the
//! raw `postgres` crate (`raw`), or with one statement per step (`lean`),
//! and reports the ids it completed, the time it spent in each statement
//! and the CPU it and its server backend used.

use std::path::Path;
use std::time::{Duration, Instant};

use callback_store::{Store, Timestamp};
use postgres::{Client, IsolationLevel, Statement, Transaction};
use serde_json::json;

use crate::data::t0;
use crate::pg::{self, read_row};

/// Seconds and number of calls per kind of statement (or store call).
#[derive(Default)]
struct Timing(Vec<(&'static str, Duration, u64)>);

impl Timing {
    fn time<T>(&mut self, kind: &'static str, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        let took = start.elapsed();
        match self.0.iter_mut().find(|(k, _, _)| *k == kind) {
            Some((_, total, count)) => {
                *total += took;
                *count += 1;
            }
            None => self.0.push((kind, took, 1)),
        }
        out
    }
}

fn claim_now() -> Timestamp {
    t0() + chrono::Duration::days(30)
}

/// The store's clock in the bench (data::options): what it writes as
/// updated_at, dispatched_at and the history's `at` of a completion.
fn store_now() -> i64 {
    t0().timestamp_micros()
}

const SESSION: &str = "sess_x";

/// The claim as one statement: claim_due's pick by next eligible instant
/// and the bulk move with set_list's claim token (core/src/db/postgres/
/// moves.rs). The store sends the pick and the move as two statements
/// (calling policy: it decides between the two in Rust), one round trip
/// more per claim of a batch than this lean replay.
fn claim_sql() -> String {
    let token = "substr(encode(sha256(convert_to(\
        gen_random_uuid()::text || gen_random_uuid()::text, 'UTF8')), 'hex'), 1, 32)";
    format!(
        "WITH picked AS MATERIALIZED (SELECT seq AS pick FROM callbacks
                 WHERE status = 'scheduled' AND eligible_at <= $4
                 ORDER BY eligible_at, seq LIMIT $5 FOR UPDATE SKIP LOCKED)
             UPDATE callbacks SET status = $1, updated_at = $2, attempted_at = $3, claim_token = {token}
             FROM picked WHERE callbacks.seq = picked.pick AND status = 'scheduled'
             RETURNING {}, claim_token",
        pg::COLUMNS
    )
}

const INSERT_EVENT: &str =
    "INSERT INTO callback_events (callback_seq, action, from_status, to_status, at, detail)
             VALUES ($1, $2, $3, $4, $5, $6)";

fn complete_sql() -> String {
    format!(
        "UPDATE callbacks SET status = $1, updated_at = $2, created_session_id = $3, dispatched_at = $4 \
         WHERE id = $5 AND status = $6 AND organization_id = $7 AND claim_token = $8
                 RETURNING {}, claim_token",
        pg::COLUMNS
    )
}

fn select_for_update_sql() -> String {
    format!(
        "SELECT {} FROM callbacks
                     WHERE id = $1 AND organization_id = $2 FOR UPDATE",
        pg::COLUMNS
    )
}

/// (id, organization_id, token, seq, scheduled_at) of a claimed row.
type Claimed = (String, String, String, i64, i64);

fn claimed_of(row: &postgres::Row) -> Claimed {
    // Every column read, as the store reads every column it returns.
    std::hint::black_box(read_row(row));
    (row.get(1), row.get(2), row.get(22), row.get(0), row.get(9))
}

/// START TRANSACTION as the store begins one (read committed): of a claim
/// and of a completion alike.
fn begin(client: &mut Client) -> Transaction<'_> {
    client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .start()
        .unwrap()
}

/// The raw worker: the store's statements, one after another.
fn raw_drain(client: &mut Client, timing: &mut Timing, done: &mut Vec<String>) {
    let claim = client.prepare(&claim_sql()).unwrap();
    let event = client.prepare(INSERT_EVENT).unwrap();
    let select = client.prepare(&select_for_update_sql()).unwrap();
    let complete = client.prepare(&complete_sql()).unwrap();
    let now = claim_now().timestamp_micros();
    let store_now = store_now();
    loop {
        let mut tx = timing.time("claim: START TRANSACTION", || begin(client));
        let mut claimed: Vec<Claimed> =
            timing.time("claim: WITH picked … UPDATE … RETURNING", || {
                tx.query(&claim, &[&"dispatching", &now, &now, &now, &100i64])
                    .unwrap()
                    .iter()
                    .map(claimed_of)
                    .collect()
            });
        claimed.sort_by_key(|c| (c.4, c.3));
        for c in &claimed {
            timing.time("claim: INSERT history (one per callback)", || {
                tx.execute(
                    &event,
                    &[
                        &c.3,
                        &"claim_due",
                        &Some("scheduled"),
                        &"dispatching",
                        &now,
                        &None::<&str>,
                    ],
                )
                .unwrap()
            });
        }
        timing.time("claim: COMMIT", || tx.commit().unwrap());
        if claimed.is_empty() {
            return;
        }
        for (id, org, token, _, _) in &claimed {
            raw_complete(
                client,
                timing,
                &[&select, &complete, &event],
                id,
                org,
                token,
                store_now,
            );
            done.push(id.clone());
        }
    }
}

fn raw_complete(
    client: &mut Client,
    timing: &mut Timing,
    stmts: &[&Statement; 3],
    id: &str,
    org: &str,
    token: &str,
    now: i64,
) {
    let [select, complete, event] = *stmts;
    let mut tx = timing.time("complete: START TRANSACTION", || begin(client));
    timing.time("complete: SELECT … FOR UPDATE", || {
        let row = tx.query_opt(select, &[&id, &org]).unwrap().unwrap();
        std::hint::black_box(read_row(&row));
    });
    let seq: i64 = timing.time("complete: guarded UPDATE … RETURNING", || {
        let row = tx
            .query_opt(
                complete,
                &[
                    &"dispatched",
                    &now,
                    &SESSION,
                    &now,
                    &id,
                    &"dispatching",
                    &org,
                    &token,
                ],
            )
            .unwrap()
            .expect("the guarded UPDATE found the claimed callback");
        std::hint::black_box(read_row(&row));
        row.get(0)
    });
    timing.time("complete: INSERT history", || {
        tx.execute(
            event,
            &[
                &seq,
                &"complete_dispatch",
                &Some("dispatching"),
                &"dispatched",
                &now,
                &Some(SESSION),
            ],
        )
        .unwrap()
    });
    timing.time("complete: COMMIT", || tx.commit().unwrap());
}

/// The lean worker: the same row changes and history rows, one statement
/// (one round trip) per claim and per completion.
fn lean_drain(client: &mut Client, timing: &mut Timing, done: &mut Vec<String>) {
    let columns = pg::COLUMNS;
    let claim = client
        .prepare(&format!(
            "WITH moved AS ({}),
             history AS (INSERT INTO callback_events (callback_seq, action, from_status, to_status, at)
                 SELECT seq, 'claim_due', 'scheduled', 'dispatching', $2 FROM moved)
             SELECT * FROM moved ORDER BY scheduled_at, seq",
            claim_sql()
        ))
        .unwrap();
    let complete = client
        .prepare(&format!(
            "WITH moved AS ({}),
             history AS (INSERT INTO callback_events (callback_seq, action, from_status, to_status, at, detail)
                 SELECT seq, 'complete_dispatch', 'dispatching', 'dispatched', $2, $3 FROM moved)
             SELECT {columns}, claim_token FROM moved",
            complete_sql()
        ))
        .unwrap();
    let now = claim_now().timestamp_micros();
    let store_now = store_now();
    loop {
        let claimed: Vec<Claimed> = timing.time("claim: one statement", || {
            client
                .query(&claim, &[&"dispatching", &now, &now, &now, &100i64])
                .unwrap()
                .iter()
                .map(claimed_of)
                .collect()
        });
        if claimed.is_empty() {
            return;
        }
        for (id, org, token, _, _) in &claimed {
            timing.time("complete: one statement", || {
                let row = client
                    .query_opt(
                        &complete,
                        &[
                            &"dispatched",
                            &store_now,
                            &SESSION,
                            &store_now,
                            id,
                            &"dispatching",
                            org,
                            token,
                        ],
                    )
                    .unwrap()
                    .expect("the guarded UPDATE found the claimed callback");
                std::hint::black_box(read_row(&row));
            });
            done.push(id.clone());
        }
    }
}

fn store_drain(store: &Store, timing: &mut Timing, done: &mut Vec<String>) {
    let now = claim_now();
    loop {
        let claimed = timing.time("store: claim_due(now, 100)", || {
            store.claim_due(now, 100).unwrap_or_else(|e| {
                eprintln!("pg worker: claim_due failed: {e}");
                std::process::exit(1)
            })
        });
        if claimed.is_empty() {
            return;
        }
        for claim in &claimed {
            timing.time(
                "store: organization(..).complete_dispatch(id, session, token)",
                || {
                    store
                        .organization(&claim.callback().organization_id)
                        .and_then(|org| {
                            org.complete_dispatch(claim.id(), SESSION, Some(claim.token()))
                        })
                        .unwrap_or_else(|e| {
                            eprintln!("pg worker: complete_dispatch failed: {e}");
                            std::process::exit(1)
                        })
                },
            );
            done.push(claim.id().to_owned());
        }
    }
}

/// CPU seconds (user + system) a process has used, from /proc.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (in parentheses): utime and stime
    // are the 12th and 13th, in clock ticks (USER_HZ, 100 on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    if f.len() < 13 {
        return 0.0;
    }
    (f[11] + f[12]) / 100.0
}

fn backend_pid(client: &mut Client) -> i32 {
    client
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0)
}

/// The body of a P8 worker process (`--pg-worker MODE URL OUT`). Besides
/// the ids it completed and its statement times, it reports the CPU its
/// own process and its server backend used (both on this machine).
pub fn worker(mode: &str, url: &str, out: &Path) {
    let mut timing = Timing::default();
    let mut done = Vec::new();
    let backend = match mode {
        "store" => {
            // One connection is all a single-threaded worker uses: the pool
            // of one hands the same connection (and backend) every time.
            let store = Store::open_with(url, pg::options(1)).expect("open the PostgreSQL store");
            store_drain(&store, &mut timing, &mut done);
            store.with_postgres(backend_pid).unwrap().unwrap()
        }
        "raw" | "lean" => {
            let mut client = pg::connect(url);
            if mode == "raw" {
                raw_drain(&mut client, &mut timing, &mut done);
            } else {
                lean_drain(&mut client, &mut timing, &mut done);
            }
            backend_pid(&mut client)
        }
        other => panic!("unknown --pg-worker mode {other}"),
    };
    let timing: Vec<_> = timing
        .0
        .iter()
        .map(|(k, d, c)| json!([k, d.as_secs_f64(), c]))
        .collect();
    let report = json!({
        "ids": done,
        "timing": timing,
        "cpu_worker": cpu_seconds("self"),
        "cpu_backend": cpu_seconds(&backend.to_string()),
    });
    std::fs::write(out, serde_json::to_vec(&report).unwrap()).unwrap();
}
