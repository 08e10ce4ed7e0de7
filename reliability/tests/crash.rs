//! Crash recovery: a worker process doing batches of creations, claims,
//! calls placed through `Store::place_call`, cancels and reschedules is
//! killed with SIGKILL at random moments, again and again, on the same file.
//! After every kill the file is sound and every promise still holds: no
//! committed batch lost, every dial on a claim spent once, no callback
//! dialed twice, and what a kill left `dispatching` (before or after its
//! claim was spent) is failed by `recover_stale` and can never be placed.
//!
//! The backend is the run's (`testkit::TestDb`): an SQLite file, or with
//! `CALLBACK_STORE_TEST_BACKEND=postgres` and `CALLBACK_STORE_TEST_POSTGRES`
//! a fresh schema on that server; the figures are `crash` or
//! `crash_postgres`.
//!
//! Sizes: `RELIABILITY_KILLS` (50 here, 500 in scripts/reliability.sh),
//! `RELIABILITY_SEED`.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use callback_store::{ErrorCode, Status, Store, DISPATCH_INTERRUPTED};
use callback_store_reliability::audit::{self, assert_none};
use callback_store_reliability::{env_usize, figures_name, read_log, seed, write_figures, Rng};
use chrono::Utc;
use serde_json::json;
use testkit::TestDb;

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
    /// Left `dispatching` by a kill after the claim was spent: dialed, or
    /// killed between the spend and the dial.
    spent_unfinished: usize,
    dialed_unfinished: usize,
    spent_undialed: usize,
    /// Callbacks that reached their deadline unplaced, at the last audit.
    expired: usize,
    /// Left `dispatching` by a kill between the claim and its spend.
    claimed_unspent: usize,
}

fn spawn_churn(db: &str, log: &Path, seed: u64, run: usize) -> Child {
    Command::new(WORKER)
        .args(["churn", "--db", db])
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
fn audit_after_kill(db: &str, log: &Path, kill: usize, figures: &mut Figures) {
    let store = Store::open(db).unwrap_or_else(|e| panic!("after kill {kill}: reopen: {e}"));
    audit::check_integrity(&store).unwrap_or_else(|e| panic!("after kill {kill}: {e}"));
    let snap =
        audit::read(&store).unwrap_or_else(|e| panic!("after kill {kill}: reading the file: {e}"));
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
    let mut dials: HashMap<String, usize> = HashMap::new();
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
            [what, id, _run] if what == "dialed" => *dials.entry(id.clone()).or_insert(0) += 1,
            other => panic!("unexpected log line {other:?}"),
        }
    }
    assert_none(&format!("committed batches lost by kill {kill}"), &lost);

    // At most once: every dial on a claim spent once (the dial log is
    // written by the dialer place_call invoked), no callback dialed twice,
    // each dialed callback claimed once and never gone back; each
    // dispatched callback was dialed first.
    figures.duplicate_placements = dials.values().filter(|n| **n > 1).count();
    let mut problems = snap.dial_problems(&dials);
    problems.extend(snap.claim_problems());
    // Deadlines: nothing claimed at or after its expires_at; what expired
    // was never claimed nor dialed.
    problems.extend(snap.deadline_problems(&dials));
    figures.expired = snap
        .callbacks
        .iter()
        .filter(|c| c.failure_cause.as_deref() == Some(callback_store::EXPIRED))
        .count();
    let by_id = snap.by_id();
    let claims = snap.claims();
    for id in dials.keys() {
        let Some(cb) = by_id.get(id.as_str()) else {
            continue; // dial_problems said so
        };
        if !matches!(
            cb.status,
            Status::Dispatching | Status::Dispatched | Status::Failed
        ) {
            problems.push(format!("{id} was dialed but is {}", cb.status));
        }
        if claims.get(id.as_str()) != Some(&1) {
            problems.push(format!(
                "{id} was dialed but claimed {:?} times",
                claims.get(id.as_str())
            ));
        }
    }
    for cb in &snap.callbacks {
        if cb.status == Status::Dispatched && !dials.contains_key(&cb.id) {
            problems.push(format!("{} is dispatched but was never dialed", cb.id));
        }
    }
    // A spent claim without its dial: only a kill between the two, so the
    // callback is still dispatching or was recovered after an earlier kill.
    for cb in snap.spent_undialed(&dials) {
        let recovered = cb.status == Status::Failed
            && cb.failure_cause.as_deref() == Some(DISPATCH_INTERRUPTED);
        if cb.status != Status::Dispatching && !recovered {
            problems.push(format!(
                "{} was spent, never dialed, and is {} ({:?})",
                cb.id, cb.status, cb.failure_cause
            ));
        }
    }
    assert_none(
        &format!("at-most-once violations after kill {kill}"),
        &problems,
    );

    // Recovery: what the dead worker left dispatching is failed, nothing
    // else, and its claim (spent or not) can no longer place a call.
    let orphans: Vec<&audit::CallbackRow> = snap
        .callbacks
        .iter()
        .filter(|c| c.status == Status::Dispatching)
        .collect();
    for cb in &orphans {
        match (cb.claim_spent, dials.contains_key(&cb.id)) {
            (true, true) => figures.dialed_unfinished += 1,
            (true, false) => figures.spent_undialed += 1,
            (false, _) => figures.claimed_unspent += 1,
        }
    }
    figures.spent_unfinished = figures.dialed_unfinished + figures.spent_undialed;
    let recovered = store
        .recover_stale(Utc::now(), Duration::ZERO)
        .unwrap_or_else(|e| panic!("after kill {kill}: recover_stale: {e}"));
    let recovered_ids: HashSet<&str> = recovered.iter().map(|c| c.id.as_str()).collect();
    let orphan_ids: HashSet<&str> = orphans.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        recovered_ids, orphan_ids,
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
    for cb in &orphans {
        let token = cb
            .claim_token
            .as_deref()
            .expect("a claimed callback has a token");
        let err = store
            .claim_by_token(&cb.id, token)
            .expect_err("the claim of a recovered callback is dead");
        assert_eq!(err.code(), ErrorCode::InvalidTransition, "{}: {err}", cb.id);
    }
    let after = audit::read(&store).expect("readable");
    assert_eq!(
        after.count(Status::Dispatching),
        0,
        "after kill {kill}: still dispatching"
    );

    figures.orphans_recovered += recovered.len();
    figures.batches_committed = committed;
    figures.calls_placed = dials.len();
}

#[test]
fn a_store_killed_at_any_moment_keeps_every_committed_batch_and_places_no_call_twice() {
    let kills = env_usize("RELIABILITY_KILLS", 50);
    let seed = seed(6_000_001);
    let test_db = TestDb::new();
    let db = test_db.location();
    let dir = tempfile::tempdir().unwrap();
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
    audit::check_integrity(&store).unwrap();
    let snap = audit::read(&store).unwrap();
    assert_none("invalid final histories", &snap.history_problems());
    assert_none("final claim problems", &snap.claim_problems());
    let completions = snap
        .callbacks
        .iter()
        .flat_map(|c| snap.history(c))
        .filter(|e| e.action == "complete_dispatch")
        .count();
    assert_eq!(completions, snap.count(Status::Dispatched));

    write_figures(
        &figures_name("crash", &store),
        &json!({
            "backend": store.backend_name(),
            "kills": figures.kills,
            "kills_survived": figures.kills_survived,
            "kills_while_working": figures.kills_while_working,
            "callbacks": snap.callbacks.len(),
            "batches_committed": figures.batches_committed,
            "calls_placed": figures.calls_placed,
            "orphans_recovered": figures.orphans_recovered,
            "rows_lost": figures.rows_lost,
            "duplicate_placements": figures.duplicate_placements,
            "spent_unfinished": figures.spent_unfinished,
            "dialed_unfinished": figures.dialed_unfinished,
            "spent_undialed": figures.spent_undialed,
            "expired": figures.expired,
            "claimed_unspent_unfinished": figures.claimed_unspent,
            "seed": seed,
            "seconds": started.elapsed().as_secs(),
        }),
    );
    assert_eq!(figures.rows_lost, 0);
    assert_eq!(figures.duplicate_placements, 0);
    // The kills must land while the worker works, or they prove nothing.
    assert!(
        figures.kills_while_working * 2 >= kills,
        "only {} of {kills} kills hit a working worker",
        figures.kills_while_working
    );
    // And some between a spent claim and its completion, or the window
    // where a call may be placed but not recorded was never tested.
    assert!(
        kills < 20 || figures.spent_unfinished > 0,
        "no kill of {kills} landed between a spent claim and its completion"
    );
    assert!(
        figures.batches_committed * 4 >= kills,
        "the workers committed only {} batches in {kills} runs",
        figures.batches_committed
    );
}
