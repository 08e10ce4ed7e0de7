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

mod worker;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::pg;
use crate::stats::{median_spread, Goal, Row};

pub use worker::worker;

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
