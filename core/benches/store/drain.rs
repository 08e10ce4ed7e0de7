//! The drains: P4 (one worker claiming by 100 and finishing each callback,
//! against raw rusqlite) and P5 (4 worker processes against 1).
//!
//! Since claims are fenced (issue 10) a callback is finished in one of two
//! ways, and P4 measures both against the same raw baseline:
//! - `complete_dispatch` with the claim's token: the work P4 measured
//!   before (claim, then one completion per callback), the token checked
//!   in the completion's guard;
//! - `place_call`: what a worker placing calls runs. It spends the claim in
//!   its own committed transaction before the dialer runs, then completes:
//!   one more write transaction per callback than the baseline, which
//!   stays claim + complete (no token, no spend) so that the row shows what
//!   the spend costs instead of hiding it.

use std::cell::RefCell;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration as StdDuration;

use callback_store::{Callback, Claim, Durability, Store, Timestamp};
use chrono::Duration;

use crate::data::{self, t0};
use crate::raw;
use crate::stats::{time, Goal, Row};
use crate::workloads::fresh;

/// How a drain finishes each claimed callback.
#[derive(Debug, Clone, Copy)]
pub enum Finish {
    CompleteWithToken,
    PlaceCall,
}

/// The dialer of the drains: the call is answered at once, so only the
/// store's work is timed.
fn answer(cb: &Callback) -> Result<String, String> {
    Ok(format!("sess_{}", cb.id))
}

fn finish(store: &Store, claim: &Claim, how: Finish) -> Result<(), callback_store::Error> {
    match how {
        Finish::CompleteWithToken => store
            .organization(&claim.callback().organization_id)?
            .complete_dispatch(claim.id(), "sess_x", Some(claim.token()))
            .map(drop),
        Finish::PlaceCall => store.place_call(&answer, claim).map(drop),
    }
}

/// Claims by 100 and finishes each until nothing is due; returns how many.
pub fn drain(store: &Store, now: Timestamp, how: Finish) -> usize {
    let mut count = 0;
    loop {
        let claimed = store.claim_due(now, 100).unwrap();
        if claimed.is_empty() {
            return count;
        }
        for claim in &claimed {
            finish(store, claim, how).unwrap();
            count += 1;
        }
    }
}

/// P4: claim_due in batches of 100, then each callback finished with its
/// claim (completed with the token; placed through place_call), against the
/// raw UPDATE statements claiming and completing.
pub fn p4_claim_and_complete(dir: &Path, n: usize) -> Vec<Row> {
    let template = due_file(dir, n);
    let now = t0() + Duration::days(30);
    let ours = |how: Finish, name: &str| {
        let store = data::open(&copy_of(&template, dir, name), Durability::Normal);
        let (took, done) = time(|| drain(&store, now, how));
        assert_eq!(done, n, "every due callback claimed once");
        took
    };
    let with_token = ours(Finish::CompleteWithToken, "p4-ours.db");
    let placed = ours(Finish::PlaceCall, "p4-ours-place.db");
    let mut conn = raw::open(&copy_of(&template, dir, "p4-raw.db"), Durability::Normal);
    let (base, raw_done) = time(|| raw::drain(&mut conn, now));
    assert_eq!(raw_done, n);
    let rate = |d: std::time::Duration| n as f64 / d.as_secs_f64();
    vec![
        Row::new(
            "P4",
            &format!("claim_due by 100 + complete_dispatch with the claim token, {n} due"),
            rate(with_token),
            rate(base),
            "cb/s",
            Goal::AtLeast,
            0.5,
        )
        .note("the store also stores a random token per claim and checks it on completion"),
        Row::new(
            "P4",
            &format!("claim_due by 100 + place_call (spend, dial, complete), {n} due"),
            rate(placed),
            rate(base),
            "cb/s",
            Goal::AtLeast,
            0.5,
        )
        .note(
            "one more write transaction per callback than the baseline: the spend, \
             committed before the dialer runs",
        ),
    ]
}

/// A file of `n` callbacks all due by t0 + 30 days, built once.
pub fn due_file(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join(format!("due-{n}.db"));
    if !path.exists() {
        let tmp = fresh(dir, "due-building.db");
        let store = data::open(&tmp, Durability::Normal);
        data::for_each_batch(n, 1000, |org, items| {
            store.organization(org).unwrap().create_many(items).unwrap();
        });
        store.with_connection(|c| c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap());
        drop(store);
        std::fs::rename(&tmp, &path).unwrap();
    }
    path
}

pub fn copy_of(template: &Path, dir: &Path, name: &str) -> PathBuf {
    let path = fresh(dir, name);
    std::fs::copy(template, &path).unwrap();
    path
}

/// P5: 4 worker processes claiming and placing calls from one file, against
/// one worker. Workers are this bench binary run with `--worker`.
pub fn p5_worker_processes(dir: &Path, n: usize) -> Row {
    let template = due_file(dir, n);
    let run = |workers: usize| -> (std::time::Duration, Vec<String>) {
        let path = copy_of(&template, dir, &format!("p5-{workers}.db"));
        let outs: Vec<PathBuf> = (0..workers)
            .map(|w| dir.join(format!("p5-{workers}-{w}.ids")))
            .collect();
        let (elapsed, statuses) = run_workers(&["--worker".as_ref(), path.as_os_str()], &outs);
        assert!(
            statuses.iter().all(|s| s.success()),
            "a worker failed (busy error or other)"
        );
        let ids = outs
            .iter()
            .flat_map(|o| {
                std::fs::read_to_string(o)
                    .unwrap()
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect();
        (elapsed, ids)
    };
    let (one, ids_one) = run(1);
    let (four, mut ids_four) = run(4);
    assert_eq!(ids_one.len(), n);
    let total = ids_four.len();
    ids_four.sort();
    ids_four.dedup();
    let duplicates = total - ids_four.len();
    assert_eq!(duplicates, 0, "a callback was dialed twice");
    assert_eq!(ids_four.len(), n, "a due callback was missed");
    let rate = |d: std::time::Duration| n as f64 / d.as_secs_f64();
    Row::new(
        "P5",
        &format!("4 worker processes vs 1, claim_due + place_call, {n} due"),
        rate(four),
        rate(one),
        "cb/s",
        Goal::AtLeast,
        0.8,
    )
    .note(format!("duplicate dials {duplicates}, busy errors 0"))
}

/// Starts one process of this bench binary per entry of `outs`, with
/// `args` and then that entry, and waits for them all: the time from the
/// first start to the last exit, and how each exited.
pub fn run_workers(args: &[&OsStr], outs: &[PathBuf]) -> (StdDuration, Vec<ExitStatus>) {
    time(|| {
        let children: Vec<_> = outs
            .iter()
            .map(|out| {
                Command::new(std::env::current_exe().unwrap())
                    .args(args)
                    .arg(out)
                    .spawn()
                    .unwrap()
            })
            .collect();
        children
            .into_iter()
            .map(|mut c| c.wait().unwrap())
            .collect::<Vec<_>>()
    })
}

/// The body of a P5 worker process: claims by 100 and places each call;
/// writes the ids its dialer was called for.
pub fn worker(db: &Path, out: &Path) {
    let store = data::open(db, Durability::Normal);
    let now = t0() + Duration::days(30);
    let dialed = RefCell::new(String::new());
    let dialer = |cb: &Callback| {
        let mut ids = dialed.borrow_mut();
        ids.push_str(&cb.id);
        ids.push('\n');
        answer(cb)
    };
    loop {
        let claimed = store.claim_due(now, 100).unwrap_or_else(|e| {
            eprintln!("worker: claim_due failed: {e}");
            std::process::exit(1)
        });
        if claimed.is_empty() {
            break;
        }
        for claim in &claimed {
            if let Err(e) = store.place_call(&dialer, claim) {
                eprintln!("worker: place_call failed: {e}");
                std::process::exit(1);
            }
        }
    }
    std::fs::write(out, dialed.into_inner()).unwrap();
}
