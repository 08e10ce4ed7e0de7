//! Writers that share commits: many threads on one store (group commit on
//! SQLite), `complete_many`, and `dispatch_due_with` placing calls
//! concurrently. Each keeps the rules of one writer at a time: one winner
//! per transition, nothing dialed twice, a refused item fails alone.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use callback_store::{
    Callback, Completion, DispatchOptions, ErrorCode, Status, Store, StoreOptions, MAX_CONCURRENCY,
};
use common::{at_minutes, file_store, new_callback, shared_db, store};

/// A dialer that records whom it called, from any number of threads.
#[derive(Default)]
struct Dialer {
    called: Mutex<Vec<String>>,
    busy_now: AtomicUsize,
    most_at_once: AtomicUsize,
}

impl callback_store::Dispatcher for Dialer {
    fn place_call(&self, callback: &Callback) -> Result<String, String> {
        let now = self.busy_now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
        // Long enough for the other workers to be dialing too.
        thread::sleep(std::time::Duration::from_millis(5));
        self.called.lock().unwrap().push(callback.id.clone());
        self.busy_now.fetch_sub(1, Ordering::SeqCst);
        if callback.to_number.ends_with('9') {
            Err("the line is dead".to_owned())
        } else {
            Ok(format!("sess_{}", callback.id))
        }
    }
}

#[test]
fn threads_sharing_one_store_each_win_their_own_transitions_and_share_commits() {
    let (db, clock) = shared_db();
    let store = file_store(db.location(), &clock);
    let org = store.organization("org_a").unwrap();
    let made: Vec<Callback> = (0..200)
        .map(|i| org.create(new_callback(i % 5)).unwrap())
        .collect();
    clock.set(at_minutes(10));
    let commits_before = store.commit_count();
    let claims = store.claim_due(store.now(), 200).unwrap();
    assert_eq!(claims.len(), 200);
    // 8 threads complete the claims, and 8 more try to cancel the same
    // callbacks: each callback ends completed, by its claim, exactly once.
    let barrier = Barrier::new(16);
    let (completed, cancelled) = thread::scope(|s| {
        let completing: Vec<_> = claims
            .chunks(25)
            .map(|chunk| {
                let (org, barrier) = (&org, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    chunk
                        .iter()
                        .map(|c| org.complete_dispatch(c.id(), "sess_x", Some(c.token())))
                        .filter(Result::is_ok)
                        .count()
                })
            })
            .collect();
        let cancelling: Vec<_> = made
            .chunks(25)
            .map(|chunk| {
                let (org, barrier) = (&org, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    chunk
                        .iter()
                        .map(|c| org.cancel(&c.id, None))
                        .map(|r| r.map_err(|e| e.code()))
                        .filter(|r| r != &Err(ErrorCode::InvalidTransition))
                        .count()
                })
            })
            .collect();
        let sum = |hs: Vec<thread::ScopedJoinHandle<'_, usize>>| {
            hs.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
        };
        (sum(completing), sum(cancelling))
    });
    assert_eq!(completed, 200, "a dispatching callback cannot be cancelled");
    assert_eq!(cancelled, 0);
    // Every answer was durable: a second store on the database sees it all.
    let other = file_store(db.location(), &clock);
    let counts = other
        .organization("org_a")
        .unwrap()
        .count_by_status()
        .unwrap();
    assert!(counts.contains(&(Status::Dispatched, 200)), "{counts:?}");
    if let (Some(before), Some(after)) = (commits_before, store.commit_count()) {
        // 1 claim + 200 completions + 200 refused cancels, fewer commits.
        assert!(
            after - before < 401,
            "{} commits: none shared",
            after - before
        );
    }
}

#[test]
fn complete_many_completes_each_claim_in_one_commit_and_refuses_stale_ones_alone() {
    let (store, clock) = store();
    let org = store.organization("org_a").unwrap();
    for i in 0..5 {
        org.create(new_callback(i)).unwrap();
    }
    clock.set(at_minutes(10));
    let claims = store.claim_due(store.now(), 5).unwrap();
    // Claim 1 is finished behind the batch's back: its completion is stale.
    org.fail_dispatch(claims[1].id(), "hung up", Some(claims[1].token()))
        .unwrap();
    let commits_before = store.commit_count();
    let sessions = ["sess_0", "sess_1", "", "sess_3", "sess_4"];
    let completions: Vec<Completion<'_>> = claims
        .iter()
        .zip(sessions)
        .map(|(claim, created_session_id)| Completion {
            claim,
            created_session_id,
        })
        .collect();
    let answers = store.complete_many(&completions).unwrap();
    let codes: Vec<_> = answers
        .iter()
        .map(|a| a.as_ref().err().map(|e| e.code()))
        .collect();
    assert_eq!(
        codes,
        [
            None,
            Some(ErrorCode::InvalidTransition),
            Some(ErrorCode::ValidationError),
            None,
            None
        ]
    );
    let empty = answers[2].as_ref().unwrap_err().to_string();
    assert!(
        empty.contains("completions[2].created_session_id"),
        "{empty}"
    );
    if let (Some(before), Some(after)) = (commits_before, store.commit_count()) {
        assert_eq!(after - before, 1, "one commit for the batch");
    }
    for (i, claim) in claims.iter().enumerate() {
        let now = org.get(claim.id()).unwrap();
        let expected = match i {
            1 => Status::Failed,
            2 => Status::Dispatching,
            _ => Status::Dispatched,
        };
        assert_eq!(now.status, expected, "callback {i}");
        // One history entry per transition that happened.
        let entries = org.history(claim.id()).unwrap().len();
        assert_eq!(entries, if i == 2 { 2 } else { 3 }, "callback {i}");
    }
    // The same batch again: every item is stale now, nothing changes.
    let again = store.complete_many(&completions).unwrap();
    assert!(again.iter().all(|a| a.is_err()));
}

#[test]
fn dispatch_due_with_concurrency_places_each_call_once_and_reports_in_claim_order() {
    let (store, clock) = store();
    let org = store.organization("org_a").unwrap();
    for i in 0..40 {
        let mut new = new_callback(i % 7);
        new.to_number = format!("+1201555{:04}", 1000 + i);
        org.create(new).unwrap();
    }
    clock.set(at_minutes(10));
    let dialer = Dialer::default();
    let options = DispatchOptions { concurrency: 8 };
    let report = store
        .dispatch_due_with(&dialer, store.now(), 40, &options)
        .unwrap();
    let called = dialer.called.lock().unwrap().clone();
    assert_eq!(called.len(), 40);
    assert_eq!(
        called.iter().collect::<HashSet<_>>().len(),
        40,
        "nobody twice"
    );
    assert!(
        dialer.most_at_once.load(Ordering::SeqCst) > 1,
        "calls overlapped"
    );
    // Numbers ending in 9 fail (1009, 1019, 1029, 1039).
    assert_eq!(report.failed.len(), 4);
    assert_eq!(report.dispatched.len(), 36);
    // In claim order: soonest first, as claim_due hands them out.
    let scheduled: Vec<_> = report.dispatched.iter().map(|c| c.scheduled_at).collect();
    assert!(scheduled.windows(2).all(|w| w[0] <= w[1]), "{scheduled:?}");
    // Nothing left to dial.
    let again = store
        .dispatch_due_with(&dialer, store.now(), 40, &options)
        .unwrap();
    assert!(again.dispatched.is_empty() && again.failed.is_empty());
}

#[test]
fn dispatch_due_with_refuses_a_concurrency_out_of_range_and_claims_nothing() {
    let (store, clock) = store();
    let org = store.organization("org_a").unwrap();
    org.create(new_callback(0)).unwrap();
    clock.set(at_minutes(10));
    let dialer = Dialer::default();
    for concurrency in [0, MAX_CONCURRENCY + 1] {
        let e = store
            .dispatch_due_with(&dialer, store.now(), 10, &DispatchOptions { concurrency })
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::ValidationError);
        assert!(e
            .to_string()
            .starts_with("concurrency: must be between 1 and 256"));
    }
    assert_eq!(org.count_by_status().unwrap()[0], (Status::Scheduled, 1));
}

#[test]
fn writes_of_many_threads_commit_once_each_with_group_commit_off() {
    let (db, clock) = shared_db();
    let options = StoreOptions {
        clock: Arc::new(clock.clone()),
        group_commit: false,
        ..StoreOptions::default()
    };
    let store = Store::open_with(db.location(), options).unwrap();
    let Some(before) = store.commit_count() else {
        return; // PostgreSQL: the option is SQLite's.
    };
    let org = store.organization("org_a").unwrap();
    thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for i in 0..25 {
                    org.create(new_callback(i)).unwrap();
                }
            });
        }
    });
    assert_eq!(store.commit_count().unwrap() - before, 100);
}
