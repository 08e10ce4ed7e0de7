//! Crash recovery: a worker process doing batches of creations, claims,
//! placed calls, completions, cancels and reschedules is killed with SIGKILL
//! at random moments, again and again, on the same file. After every kill
//! the file is sound and every promise still holds.
//!
//! Sizes: `RELIABILITY_KILLS` (50 here, 500 in scripts/reliability.sh),
//! `RELIABILITY_SEED`.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use callback_store::{Status, Store, DISPATCH_INTERRUPTED};
use callback_store_reliability::audit::{self, assert_none};
use callback_store_reliability::{env_usize, read_log, seed, write_figures, Rng};
use chrono::Utc;
use serde_json::json;

const WORKER: &str = env!("CARGO_BIN_EXE_crash-worker");

#[derive(Debug, Default)]
struct Figures {
    kills: usize,
    kills_survived: usize,
    kills_while_working: usize,
    rows_lost: u64,
    batches_committed: usize,
    calls_placed: usize,
    orphans_recovered: usize,
    duplicate_placements: usize,
}

fn spawn_churn(db: &Path, log: &Path, seed: u64, run: usize) -> Child {
    Command::new(WORKER)
        .args(["churn", "--db"])
        .arg(db)
        .arg("--log")
        .arg(log)
        .args(["--seed", &seed.to_string(), "--run", &run.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the crash-worker binary starts")
}

/// Kills the worker at a moment chosen by `rng`: for the first kills, while
/// it opens (and migrates) the file; then once it works, after a delay that
/// varies from nothing to a few dozen commits. Returns whether it was working.
fn kill_at_random(child: &mut Child, rng: &mut Rng, kill: usize) -> bool {
    let early = kill < 3 || rng.chance(10);
    let mut working = false;
    if early {
        std::thread::sleep(Duration::from_micros(rng.below(8_000)));
    } else {
        let mut line = String::new();
        let stdout = child.stdout.as_mut().expect("piped");
        let read = BufReader::new(stdout).read_line(&mut line).unwrap_or(0);
        working = read > 0 && line.trim() == "ready";
        let delay = match rng.below(4) {
            0 => rng.below(2_000),
            1 => rng.below(30_000),
            _ => rng.below(250_000),
        };
        std::thread::sleep(Duration::from_micros(delay));
    }
    if let Some(status) = child.try_wait().expect("wait works") {
        let mut err = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            std::io::Read::read_to_string(&mut stderr, &mut err).ok();
        }
        panic!("the worker stopped by itself before kill {kill} ({status}): {err}");
    }
    child.kill().expect("SIGKILL is delivered");
    child.wait().expect("the killed worker is reaped");
    working
}

/// Everything checked after a kill; returns the figures of this kill.
fn audit_after_kill(db: &Path, log: &Path, kill: usize, figures: &mut Figures) {
    let store = Store::open(db).unwrap_or_else(|e| panic!("after kill {kill}: reopen: {e}"));
    store
        .with_connection(audit::integrity)
        .unwrap_or_else(|e| panic!("after kill {kill}: {e}"));
    let snap = store
        .with_connection(audit::snapshot)
        .unwrap_or_else(|e| panic!("after kill {kill}: reading the file: {e}"));
    assert_none(
        &format!("invalid histories after kill {kill}"),
        &snap.history_problems(),
    );
    assert_none(
        &format!("partial batches after kill {kill}"),
        &snap.partial_batches(),
    );

    // Committed batches are all there: the log line was written only after
    // create_many returned.
    let lines = read_log(log);
    let sizes = snap.batch_sizes();
    let mut lost = Vec::new();
    let mut committed = 0;
    let mut placed: HashMap<&str, usize> = HashMap::new();
    for words in &lines {
        match words.as_slice() {
            [what, batch, size] if what == "committed" => {
                committed += 1;
                let size: u64 = size.parse().expect("a batch size");
                let found = sizes.get(batch.as_str()).copied().unwrap_or(0);
                if found != size {
                    lost.push(format!(
                        "batch {batch}: {found} of {size} committed callbacks"
                    ));
                    figures.rows_lost += size.saturating_sub(found);
                }
            }
            [what, id] if what == "placed" => *placed.entry(id.as_str()).or_insert(0) += 1,
            other => panic!("unexpected log line {other:?}"),
        }
    }
    assert_none(&format!("committed batches lost by kill {kill}"), &lost);

    // At most once: no call placed twice, each placed callback was claimed
    // once and never went back; each dispatched callback was placed first.
    let by_id = snap.by_id();
    let claims = snap.claims();
    let mut problems = Vec::new();
    for (id, n) in &placed {
        if *n > 1 {
            figures.duplicate_placements += 1;
            problems.push(format!("{id} was placed {n} times"));
        }
        match by_id.get(id) {
            None => problems.push(format!("{id} was placed but is not in the file")),
            Some(cb) => {
                if !matches!(
                    cb.status,
                    Status::Dispatching | Status::Dispatched | Status::Failed
                ) {
                    problems.push(format!("{id} was placed but is {}", cb.status));
                }
                if claims.get(id) != Some(&1) {
                    problems.push(format!(
                        "{id} was placed but claimed {:?} times",
                        claims.get(id)
                    ));
                }
            }
        }
    }
    for cb in snap
        .callbacks
        .iter()
        .filter(|c| c.status == Status::Dispatched)
    {
        if !placed.contains_key(cb.id.as_str()) {
            problems.push(format!(
                "{} is dispatched but its call was never placed",
                cb.id
            ));
        }
    }
    assert_none(
        &format!("at-most-once violations after kill {kill}"),
        &problems,
    );

    // Recovery: what the dead worker left dispatching is failed, nothing else.
    let orphans: HashSet<String> = snap
        .callbacks
        .iter()
        .filter(|c| c.status == Status::Dispatching)
        .map(|c| c.id.clone())
        .collect();
    let recovered = store
        .recover_stale(Utc::now(), Duration::ZERO)
        .unwrap_or_else(|e| panic!("after kill {kill}: recover_stale: {e}"));
    let recovered_ids: HashSet<String> = recovered.iter().map(|c| c.id.clone()).collect();
    assert_eq!(
        recovered_ids, orphans,
        "after kill {kill}: recover_stale took other callbacks"
    );
    for cb in &recovered {
        assert_eq!(cb.status, Status::Failed, "{}", cb.id);
        assert_eq!(
            cb.failure_cause.as_deref(),
            Some(DISPATCH_INTERRUPTED),
            "{}",
            cb.id
        );
    }
    let after = store.with_connection(audit::snapshot).expect("readable");
    assert_eq!(
        after.count(Status::Dispatching),
        0,
        "after kill {kill}: still dispatching"
    );

    figures.orphans_recovered += recovered.len();
    figures.batches_committed = committed;
    figures.calls_placed = placed.len();
}

#[test]
fn a_store_killed_at_any_moment_keeps_every_committed_batch_and_places_no_call_twice() {
    let kills = env_usize("RELIABILITY_KILLS", 50);
    let seed = seed(6_000_001);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let log = dir.path().join("work.log");
    let mut rng = Rng::new(seed);
    let mut figures = Figures::default();
    let started = Instant::now();
    for kill in 0..kills {
        let mut child = spawn_churn(&db, &log, seed.wrapping_add(kill as u64), kill);
        if kill_at_random(&mut child, &mut rng, kill) {
            figures.kills_while_working += 1;
        }
        figures.kills += 1;
        audit_after_kill(&db, &log, kill, &mut figures);
        figures.kills_survived += 1;
    }

    // The final file, once more from scratch, with every history.
    let store = Store::open(&db).unwrap();
    store.with_connection(audit::integrity).unwrap();
    let snap = store.with_connection(audit::snapshot).unwrap();
    assert_none("invalid final histories", &snap.history_problems());
    let completions = snap
        .callbacks
        .iter()
        .flat_map(|c| snap.history(c))
        .filter(|e| e.action == "complete_dispatch")
        .count();
    assert_eq!(completions, snap.count(Status::Dispatched));

    write_figures(
        "crash",
        &json!({
            "kills": figures.kills,
            "kills_survived": figures.kills_survived,
            "kills_while_working": figures.kills_while_working,
            "callbacks": snap.callbacks.len(),
            "batches_committed": figures.batches_committed,
            "calls_placed": figures.calls_placed,
            "orphans_recovered": figures.orphans_recovered,
            "rows_lost": figures.rows_lost,
            "duplicate_placements": figures.duplicate_placements,
            "seed": seed,
            "seconds": started.elapsed().as_secs(),
        }),
    );
    assert_eq!(figures.rows_lost, 0);
    // The kills must land while the worker works, or they prove nothing.
    assert!(
        figures.kills_while_working * 2 >= kills,
        "only {} of {kills} kills hit a working worker",
        figures.kills_while_working
    );
    assert!(
        figures.batches_committed * 4 >= kills,
        "the workers committed only {} batches in {kills} runs",
        figures.batches_committed
    );
}
