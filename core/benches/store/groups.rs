//! Shared commits (issue 14): P4 with 8 threads sharing one store, group
//! commit on against off in the same run, and `complete_many` of 100; each
//! also as a fraction of the per-transaction ceiling C1, and the WAL frames
//! per drained callback when completions commit 100 at a time.

use std::path::Path;

use callback_store::{Claim, Completion, Durability, Store, StoreOptions, Timestamp};
use chrono::Duration;

use crate::ceiling::{self, Ceiling};
use crate::data::{self, t0};
use crate::drain::{copy_of, drain, due_file, Finish};
use crate::stats::{time, Goal, Row};

const THREADS: usize = 8;

fn open(path: &Path, group_commit: bool, durability: Durability) -> Store {
    let options = StoreOptions {
        group_commit,
        ..data::options(durability)
    };
    Store::open_with(path, options).expect("open bench store")
}

/// `THREADS` workers on one store, each claiming by 100 and completing
/// every claim with its token, until nothing is due; how many were done.
fn drain_in_threads(store: &Store, now: Timestamp) -> usize {
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|_| s.spawn(|| drain(store, now, Finish::CompleteWithToken)))
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    })
}

/// Completes a claim of up to 100 with one `complete_many`; how many.
pub fn complete_all(store: &Store, claims: &[Claim]) -> usize {
    let completions: Vec<Completion<'_>> = claims
        .iter()
        .map(|claim| Completion {
            claim,
            created_session_id: "sess_x",
        })
        .collect();
    let answers = store.complete_many(&completions).unwrap();
    answers.into_iter().map(Result::unwrap).count()
}

/// One worker claiming by 100 and completing each batch with one
/// `complete_many`.
fn drain_in_batches(store: &Store, now: Timestamp) -> usize {
    let mut done = 0;
    loop {
        let claims = store.claim_due(now, 100).unwrap();
        if claims.is_empty() {
            return done;
        }
        done += complete_all(store, &claims);
    }
}

/// P4 with 8 threads (group commit on vs off, at Normal and at Full), C4
/// (Normal's as a fraction of C1), P4 with complete_many, C5 (that against
/// C1), and W4.
pub fn p4_shared_commits(dir: &Path, n: usize, ceiling: &Ceiling) -> Vec<Row> {
    let template = due_file(dir, n);
    let now = t0() + Duration::days(30);
    let threads = |group_commit: bool, durability: Durability, template: &Path, n: usize| {
        let name = format!("p4-threads-{group_commit}-{durability:?}.db");
        let store = open(&copy_of(template, dir, &name), group_commit, durability);
        let commits = store.commit_count().unwrap();
        let (took, done) = time(|| drain_in_threads(&store, now));
        assert_eq!(done, n, "every due callback completed once");
        let commits = store.commit_count().unwrap() - commits;
        (n as f64 / took.as_secs_f64(), commits)
    };
    let (off, commits_off) = threads(false, Durability::Normal, &template, n);
    let (on, commits_on) = threads(true, Durability::Normal, &template, n);
    // At Full every commit is synced: a tenth of the callbacks is enough.
    let n_full = (n / 10).max(100);
    let template_full = due_file(dir, n_full);
    let (full_off, _) = threads(false, Durability::Full, &template_full, n_full);
    let (full_on, _) = threads(true, Durability::Full, &template_full, n_full);
    let store = open(
        &copy_of(&template, dir, "p4-many.db"),
        true,
        Durability::Normal,
    );
    let (took, done) = time(|| drain_in_batches(&store, now));
    assert_eq!(done, n);
    let many = n as f64 / took.as_secs_f64();
    let writes_per_member = |commits: u64| (n + n / 100) as f64 / commits as f64;
    vec![
        Row::new(
            "P4",
            &format!(
                "claim_due by 100 + complete_dispatch from {THREADS} threads on one store, \
                 group commit on vs off, {n} due"
            ),
            on,
            off,
            "cb/s",
            Goal::AtLeast,
            0.0,
        )
        .no_target()
        .note(format!(
            "{:.1} writes per commit on ({commits_on} commits), {:.1} off",
            writes_per_member(commits_on),
            writes_per_member(commits_off)
        )),
        Row::new(
            "P4",
            &format!(
                "the same at Full (every commit synced), group commit on vs off, {n_full} due"
            ),
            full_on,
            full_off,
            "cb/s",
            Goal::AtLeast,
            0.0,
        )
        .no_target(),
        Row::new(
            "C4",
            &format!("P4 from {THREADS} threads with group commit, against the ceiling C1"),
            on,
            ceiling.per_transaction,
            "cb/s",
            Goal::AtLeast,
            0.40,
        ),
        Row::new(
            "C5",
            "claim_due by 100 + complete_many of those 100, against the ceiling C1",
            many,
            ceiling.per_transaction,
            "cb/s",
            Goal::AtLeast,
            0.0,
        )
        .no_target(),
        ceiling::frames_of_batched_drain(dir, &template, ceiling),
    ]
}
