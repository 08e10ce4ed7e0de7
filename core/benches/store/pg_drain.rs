//! P8: claim_due by 100 + complete_dispatch with the claim's token, on
//! PostgreSQL, by 1, 2 and 4 worker processes draining one shared queue,
//! and one worker against the same SQL through the raw `postgres` crate.
//!
//! Workers are this bench binary run with `--pg-worker MODE URL OUT`:
//! - `store`: `Store::claim_due(now, 100)`, then `complete_dispatch` of
//!   each with its token, until nothing is due;
//! - `raw`: the statements the store sends for that, the same SQL text in
//!   the same transactions, each prepared once (core/src/db/postgres.rs
//!   and postgres/moves.rs): per claim START TRANSACTION, the claiming
//!   `WITH picked … UPDATE … RETURNING`, one history INSERT per claimed
//!   callback, COMMIT; per completion START TRANSACTION, `SELECT … FOR
//!   UPDATE`, the guarded `UPDATE … RETURNING`, the history INSERT, COMMIT;
//! - `lean`: the same changes and history rows in one statement per claim
//!   and one per completion (data-modifying CTEs, autocommit): not the
//!   store's SQL, a measure of what its round trips cost.
//!
//! Each run gets a fresh schema with `n` due callbacks (COPY); the runs of
//! every configuration are interleaved in rounds and the median reported
//! with its spread. Each worker writes the ids it completed (checked: no
//! callback twice, none missed) and the time it spent in each statement.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use callback_store::{Store, Timestamp};
use postgres::{Client, IsolationLevel, Statement};
use serde_json::json;

use crate::data::t0;
use crate::pg::{self, read_row};
use crate::stats::{median_spread, Goal, Row};

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

/// The SQL text the store sends (core/src/db/postgres/moves.rs: bulk_move
/// with claim_due's pick, and set_list's claim token).
fn claim_sql() -> String {
    let token = "substr(encode(sha256(convert_to(\
        gen_random_uuid()::text || gen_random_uuid()::text, 'UTF8')), 'hex'), 1, 32)";
    format!(
        "WITH picked AS MATERIALIZED (SELECT seq AS pick FROM callbacks
                 WHERE status = 'scheduled' AND scheduled_at <= $4
                 ORDER BY scheduled_at, seq LIMIT $5 FOR UPDATE SKIP LOCKED)
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

/// The raw worker: the store's statements, one after another.
fn raw_drain(client: &mut Client, timing: &mut Timing, done: &mut Vec<String>) {
    let claim = client.prepare(&claim_sql()).unwrap();
    let event = client.prepare(INSERT_EVENT).unwrap();
    let select = client.prepare(&select_for_update_sql()).unwrap();
    let complete = client.prepare(&complete_sql()).unwrap();
    let now = claim_now().timestamp_micros();
    let store_now = store_now();
    loop {
        let mut tx = timing.time("claim: START TRANSACTION", || {
            client
                .build_transaction()
                .isolation_level(IsolationLevel::ReadCommitted)
                .start()
                .unwrap()
        });
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
    let mut tx = timing.time("complete: START TRANSACTION", || {
        client
            .build_transaction()
            .isolation_level(IsolationLevel::ReadCommitted)
            .start()
            .unwrap()
    });
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

/// Busy and total CPU seconds of the whole machine so far (/proc/stat).
fn machine_cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    let total: f64 = f.iter().take(8).sum();
    let idle = f.get(3).unwrap_or(&0.0) + f.get(4).unwrap_or(&0.0);
    ((total - idle) / 100.0, total / 100.0)
}

/// What one run measured.
struct Measured {
    rate: f64,
    kinds: Vec<(String, f64, u64)>,
    /// CPU seconds per second of the run: our workers, their backends, and
    /// everything else on the machine (other engineers' builds, the
    /// server's background work).
    cores_workers: f64,
    cores_backends: f64,
    cores_others: f64,
}

/// One timed run: `workers` processes of `mode` on a fresh schema of `n`
/// due callbacks: callbacks/s, the time per kind of statement summed over
/// the workers, and the CPU used.
fn run(base: &str, dir: &Path, mode: &str, workers: usize, n: usize) -> Measured {
    let schema = format!("bench_p8_{}_{mode}_{workers}", std::process::id());
    pg::fresh_schema(base, &schema);
    pg::load(base, &schema, n, |_| "scheduled");
    let url = pg::schema_url(base, &schema);
    let outs: Vec<PathBuf> = (0..workers)
        .map(|w| dir.join(format!("p8-{mode}-{workers}-{w}.json")))
        .collect();
    let (busy_before, _) = machine_cpu();
    let args = ["--pg-worker", mode, &url].map(OsStr::new);
    let (elapsed, statuses) = crate::drain::run_workers(&args, &outs);
    let (busy_after, _) = machine_cpu();
    assert!(statuses.iter().all(|s| s.success()), "a P8 worker failed");
    let (mut cpu_workers, mut cpu_backends) = (0.0, 0.0);
    let mut ids = Vec::new();
    let mut kinds: Vec<(String, f64, u64)> = Vec::new();
    for out in &outs {
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap();
        ids.extend(
            report["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned()),
        );
        cpu_workers += report["cpu_worker"].as_f64().unwrap();
        cpu_backends += report["cpu_backend"].as_f64().unwrap();
        for k in report["timing"].as_array().unwrap() {
            let (name, secs, count) = (
                k[0].as_str().unwrap(),
                k[1].as_f64().unwrap(),
                k[2].as_u64().unwrap(),
            );
            match kinds.iter_mut().find(|(n, _, _)| n == name) {
                Some((_, s, c)) => {
                    *s += secs;
                    *c += count;
                }
                None => kinds.push((name.to_owned(), secs, count)),
            }
        }
        let _ = std::fs::remove_file(out);
    }
    let total = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(
        total,
        ids.len(),
        "P8 {mode} x{workers}: a callback was completed twice"
    );
    assert_eq!(total, n, "P8 {mode} x{workers}: a due callback was missed");
    let mut client = pg::connect(&url);
    let dispatched: i64 = client
        .query_one(
            "SELECT COUNT(*) FROM callbacks WHERE status = 'dispatched'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        dispatched as usize, n,
        "P8 {mode} x{workers}: not all dispatched"
    );
    drop(client);
    pg::drop_schema(base, &schema);
    let secs = elapsed.as_secs_f64();
    Measured {
        rate: n as f64 / secs,
        kinds,
        cores_workers: cpu_workers / secs,
        cores_backends: cpu_backends / secs,
        cores_others: ((busy_after - busy_before) - cpu_workers - cpu_backends).max(0.0) / secs,
    }
}

/// The configurations of a round, as (mode, workers), in the order they
/// run: the pairs of the targets (store x1 with raw x1, store x1 with
/// store x4) next to each other, so that each pair meets the same load.
const CONFIGS: [(&str, usize); 6] = [
    ("raw", 4),
    ("lean", 1),
    ("raw", 1),
    ("store", 1),
    ("store", 4),
    ("store", 2),
];

/// P8: `rounds` rounds of every configuration, every other round in the
/// reverse order (A B B A), so that none always runs first. Each ratio is
/// the median of the ratios of the rounds (runs minutes apart meet
/// different loads on this shared machine; a round's pair does not).
pub fn p8_worker_processes(dir: &Path, n: usize, rounds: usize) -> Vec<Row> {
    let base = pg::base_url();
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); CONFIGS.len()];
    let mut kinds: Vec<Vec<(String, f64, u64)>> = vec![Vec::new(); CONFIGS.len()];
    // Cores used during each run: (workers, backends, others).
    let mut cores: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); CONFIGS.len()];
    for round in 0..rounds {
        for k in 0..CONFIGS.len() {
            let c = if round % 2 == 0 {
                k
            } else {
                CONFIGS.len() - 1 - k
            };
            let (mode, workers) = CONFIGS[c];
            let m = run(&base, dir, mode, workers, n);
            eprintln!(
                "bench: P8 round {} {mode} x{workers}: {:.0} cb/s; cores busy: workers {:.2}, \
                 their backends {:.2}, rest of the machine {:.2}",
                round + 1,
                m.rate,
                m.cores_workers,
                m.cores_backends,
                m.cores_others
            );
            rates[c].push(m.rate);
            cores[c].push((m.cores_workers, m.cores_backends, m.cores_others));
            // Statement times, summed over the rounds.
            for (name, secs, count) in m.kinds {
                match kinds[c].iter_mut().find(|(k, _, _)| *k == name) {
                    Some((_, s, cnt)) => {
                        *s += secs;
                        *cnt += count;
                    }
                    None => kinds[c].push((name, secs, count)),
                }
            }
        }
    }
    let at = |mode: &str, workers: usize| {
        CONFIGS
            .iter()
            .position(|&(m, w)| m == mode && w == workers)
            .unwrap()
    };
    let spread = |c: usize| {
        let (m, lo, hi) = median_spread(&rates[c]);
        format!("{m:.0} cb/s [{lo:.0}–{hi:.0}]")
    };
    // Per-round ratios: the spread of a ratio measured in the same round.
    let paired = |a: usize, b: usize| {
        let r: Vec<f64> = rates[a].iter().zip(&rates[b]).map(|(x, y)| x / y).collect();
        median_spread(&r)
    };
    let ratio_spread = |a: usize, b: usize| {
        let (m, lo, hi) = paired(a, b);
        format!("ratio of each round: median {m:.2} [{lo:.2}–{hi:.2}]")
    };
    // Microseconds per callback of each statement kind (1-worker runs).
    let per_cb = |c: usize| {
        kinds[c]
            .iter()
            .map(|(name, secs, count)| {
                format!(
                    "{name}: {:.0} us/cb ({count} calls, {:.0} us each)",
                    secs * 1e6 / (n * rounds) as f64,
                    secs * 1e6 / *count as f64
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let med = |c: usize| median_spread(&rates[c]).0;
    let (s1, s2, s4, r1, r4, l1) = (
        at("store", 1),
        at("store", 2),
        at("store", 4),
        at("raw", 1),
        at("raw", 4),
        at("lean", 1),
    );
    // Median cores used in a configuration's runs, and CPU per callback.
    let cpu = |c: usize| {
        let pick = |f: fn(&(f64, f64, f64)) -> f64| {
            median_spread(&cores[c].iter().map(f).collect::<Vec<_>>()).0
        };
        (pick(|x| x.0), pick(|x| x.1), pick(|x| x.2))
    };
    let cpu_note = |c: usize| {
        let (w, b, o) = cpu(c);
        format!(
            "cores busy: workers {w:.2}, their backends {b:.2}, rest of the machine {o:.2}; \
             CPU per callback {:.0} us (workers {:.0} + backends {:.0})",
            (w + b) * 1e6 / med(c),
            w * 1e6 / med(c),
            b * 1e6 / med(c)
        )
    };
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    // On paper: one worker keeps at most one core busy (its process and
    // its backend take turns, one round trip at a time), so on an idle
    // machine its rate is at most 1 / (CPU per callback). k workers at k'
    // times that rate then need k' x (CPU per callback with k workers /
    // with 1) cores: the growth of CPU per callback is the contention
    // (locks, shared index pages, context switches) this run measured.
    let cpu_per_cb = |c: usize| {
        let (w, b, _) = cpu(c);
        (w + b) / med(c)
    };
    let inflation = cpu_per_cb(s4) / cpu_per_cb(s1);
    let free = cpus as f64 - cpu(s4).2;
    let head = format!("PostgreSQL, claim_due by 100 + complete_dispatch, {n} due");
    vec![
        Row::new(
            "P8",
            &format!("{head}: 1 worker vs raw same SQL"),
            med(s1),
            med(r1),
            "cb/s",
            Goal::AtLeast,
            0.7,
        )
        .paired_ratio(paired(s1, r1).0)
        .note(format!(
            "ratio = median of the {rounds} rounds' own ratios; ours and baseline = medians of \
             the runs: store {}, raw {}; {}. store: {}. store {}. raw: {}. raw {}",
            spread(s1),
            spread(r1),
            ratio_spread(s1, r1),
            per_cb(s1),
            cpu_note(s1),
            per_cb(r1),
            cpu_note(r1)
        )),
        Row::new(
            "P8",
            &format!("{head}: 2 worker processes vs 1"),
            med(s2),
            med(s1),
            "cb/s",
            Goal::AtLeast,
            1.0,
        )
        .no_target()
        .paired_ratio(paired(s2, s1).0)
        .note(format!(
            "2 workers {}; {}; {}",
            spread(s2),
            ratio_spread(s2, s1),
            cpu_note(s2)
        )),
        Row::new(
            "P8",
            &format!("{head}: 4 worker processes vs 1 ({cpus} cores)"),
            med(s4),
            med(s1),
            "cb/s",
            Goal::AtLeast,
            1.5,
        )
        .paired_ratio(paired(s4, s1).0)
        .note(format!(
            "4 workers {}; {}; {}; raw same SQL 4 vs 1: {:.2} ({}); on paper: CPU per callback \
             with 4 workers is {inflation:.2}x that with 1, so 4 workers at 1.5x one need at most \
             {:.1} free cores and at 3x at most {:.1}; the rest of the machine left {free:.1} of \
             {cpus} cores to this run",
            spread(s4),
            ratio_spread(s4, s1),
            cpu_note(s4),
            paired(r4, r1).0,
            spread(r4),
            1.5 * inflation,
            3.0 * inflation
        )),
        Row::new(
            "P8",
            &format!("{head}: 1 worker vs one statement per step"),
            med(s1),
            med(l1),
            "cb/s",
            Goal::AtLeast,
            0.7,
        )
        .no_target()
        .paired_ratio(paired(s1, l1).0)
        .note(format!(
            "the same changes and history, one round trip per claim and per completion \
             (not the store's SQL): lean {}; {}. lean: {}. lean {}",
            spread(l1),
            ratio_spread(s1, l1),
            per_cb(l1),
            cpu_note(l1)
        )),
    ]
}
