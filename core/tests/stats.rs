//! The queue's stats (`Organization::stats`, `Store::stats`): counts of
//! every status, the due backlog exactly as `claim_due` would take it, the
//! oldest due callback's eligible instant; and the store's process
//! counters (busy retries, follow-ups created).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use callback_store::{
    CallOutcome, CallingPolicy, CallingWindow, ErrorCode, NewCallback, OrganizationStats, Status,
    Store, StoreOptions, Timestamp, Weekday,
};
use common::{at_minutes, new_callback, store, t0};

fn counts(pairs: &[(Status, u64)]) -> BTreeMap<Status, u64> {
    let mut all: BTreeMap<Status, u64> = Status::ALL.into_iter().map(|s| (s, 0)).collect();
    all.extend(pairs.iter().copied());
    all
}

/// How many callbacks claim_due takes at `now` (on a throwaway basis: it
/// claims them).
fn claimed_now(store: &Store, now: Timestamp) -> usize {
    store.claim_due(now, 10_000).unwrap().len()
}

fn utc(text: &str) -> Timestamp {
    callback_store::parse_timestamp("t", text).unwrap()
}

#[test]
fn counts_name_every_status_zero_included_for_that_organization_only() {
    let (store, _) = store();
    let a = store.organization("org_a").unwrap();
    let b = store.organization("org_b").unwrap();
    let first = a.create(new_callback(-10)).unwrap();
    let second = a.create(new_callback(-5)).unwrap();
    a.create(new_callback(30)).unwrap();
    a.cancel(&first.id, None).unwrap();
    a.dispatch(&second.id).unwrap();
    b.create(new_callback(-1)).unwrap();

    let stats = a.stats(t0()).unwrap();
    assert_eq!(stats.organization_id, "org_a");
    assert_eq!(
        stats.counts,
        counts(&[
            (Status::Scheduled, 1),
            (Status::Dispatching, 1),
            (Status::Cancelled, 1)
        ])
    );
    assert_eq!(
        stats.counts.into_iter().collect::<Vec<_>>(),
        a.count_by_status().unwrap()
    );
    let nobody = store
        .organization("org_empty")
        .unwrap()
        .stats(t0())
        .unwrap();
    assert_eq!(nobody.counts, counts(&[]));
    assert_eq!((nobody.due, nobody.oldest_due_at), (0, None));
}

#[test]
fn due_is_what_claim_due_would_take_now_and_oldest_is_its_earliest_eligible_instant() {
    let (store, _) = store();
    let org = store.organization("org_due").unwrap();
    org.create(new_callback(-30)).unwrap();
    org.create(new_callback(-10)).unwrap();
    org.create(new_callback(5)).unwrap(); // not yet
    let cancelled = org.create(new_callback(-20)).unwrap();
    org.cancel(&cancelled.id, None).unwrap();
    // Past its deadline at t0: claim_due expires it, it is not due.
    org.create(NewCallback {
        expires_at: Some(at_minutes(-1)),
        ..new_callback(-40)
    })
    .unwrap();

    let stats = org.stats(t0()).unwrap();
    assert_eq!(stats.due, 2);
    assert_eq!(stats.oldest_due_at, Some(at_minutes(-30)));
    assert_eq!(stats.oldest_due_age(t0()), Duration::from_secs(30 * 60));
    assert_eq!(claimed_now(&store, t0()), 2);
    let after = org.stats(t0()).unwrap();
    assert_eq!((after.due, after.oldest_due_at), (0, None));
    assert_eq!(after.counts[&Status::Dispatching], 2);
    assert_eq!(after.counts[&Status::Failed], 1, "the expired one");
}

#[test]
fn a_callback_whose_window_closed_unclaimed_is_due_only_while_another_window_is_open() {
    let (store, _) = store();
    let org = store.organization("org_windows").unwrap();
    org.set_calling_policy(&CallingPolicy {
        windows: vec![CallingWindow {
            days: Weekday::ALL.to_vec(),
            start: "08:00".into(),
            end: "21:00".into(),
        }],
        ..CallingPolicy::default()
    })
    .unwrap();
    // Due Tuesday 10:00 UTC; no worker comes that day.
    org.create(NewCallback::new(
        "+12015551234",
        utc("2030-01-01T10:00:00Z"),
    ))
    .unwrap();
    for (now, due) in [
        ("2030-01-01T09:00:00Z", 0), // before its time
        ("2030-01-01T12:00:00Z", 1), // inside the window
        ("2030-01-01T22:00:00Z", 0), // the window closed
        ("2030-01-02T09:00:00Z", 1), // the next day's window is open
    ] {
        let stats = org.stats(utc(now)).unwrap();
        assert_eq!(stats.due, due, "at {now}");
        let expected = (due == 1).then(|| utc("2030-01-01T10:00:00Z"));
        assert_eq!(stats.oldest_due_at, expected, "at {now}");
    }
    assert_eq!(claimed_now(&store, utc("2030-01-02T09:00:00Z")), 1);
}

#[test]
fn the_store_wide_stats_are_each_organizations_own_by_id() {
    let (store, _) = store();
    for (org, due) in [("org_b", 2), ("org_a", 1), ("org_c", 0)] {
        let org = store.organization(org).unwrap();
        for minutes in 0..due {
            org.create(new_callback(-1 - minutes)).unwrap();
        }
        org.create(new_callback(60)).unwrap();
    }
    let all = store.stats(t0()).unwrap();
    let ids: Vec<&str> = all.iter().map(|s| s.organization_id.as_str()).collect();
    assert_eq!(ids, ["org_a", "org_b", "org_c"]);
    let one_by_one: Vec<OrganizationStats> = ids
        .iter()
        .map(|id| store.organization(id).unwrap().stats(t0()).unwrap())
        .collect();
    assert_eq!(all, one_by_one);
    assert_eq!(all.iter().map(|s| s.due).collect::<Vec<_>>(), [1, 2, 0]);
}

#[test]
fn stats_refuse_an_instant_outside_the_stored_range() {
    let (store, _) = store();
    let beyond = callback_store::max_timestamp() + chrono::Duration::days(1);
    let org = store.organization("org").unwrap();
    assert_eq!(
        org.stats(beyond).unwrap_err().code(),
        ErrorCode::ValidationError
    );
    assert_eq!(
        store.stats(beyond).unwrap_err().code(),
        ErrorCode::ValidationError
    );
}

#[test]
fn follow_ups_are_counted_once_each_when_created_not_when_found_again() {
    let (store, _) = store();
    let org = store.organization("org").unwrap();
    org.set_calling_policy(&CallingPolicy {
        max_attempts: 3,
        retry_on: vec![CallOutcome::NoAnswer, CallOutcome::Failed],
        ..CallingPolicy::default()
    })
    .unwrap();
    assert_eq!(store.follow_ups_created(), 0);
    let first = org.create(new_callback(0)).unwrap();
    let claim = org.dispatch(&first.id).unwrap();
    org.complete_dispatch(&first.id, "sess_1", Some(claim.token()))
        .unwrap();
    org.retry(&first.id, CallOutcome::NoAnswer).unwrap();
    org.retry(&first.id, CallOutcome::NoAnswer).unwrap(); // the same one
    assert_eq!(store.follow_ups_created(), 1);
    // A failed call whose outcome the policy retries makes one in the
    // same transaction.
    let second = org.create(new_callback(1)).unwrap();
    let claim = org.dispatch(&second.id).unwrap();
    store
        .place_call(
            &|_: &callback_store::Callback| Err::<String, _>("line dead".to_owned()),
            &claim,
        )
        .unwrap();
    assert_eq!(store.follow_ups_created(), 2);
    // A refused retry (attempts used up) counts nothing.
    let follow_up = org.retry(&first.id, CallOutcome::NoAnswer).unwrap();
    assert!(org.retry(&follow_up.id, CallOutcome::NoAnswer).is_err());
    assert_eq!(store.follow_ups_created(), 2);
}

#[test]
fn busy_retries_count_the_waits_for_another_writer_of_the_same_file() {
    if testkit::postgres_server().is_some() {
        return; // SQLite's busy handler; PostgreSQL's retries are below.
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.db");
    let holder = Store::open(&path).unwrap();
    let waiter = Store::open_with(
        &path,
        StoreOptions {
            busy_timeout: Duration::from_secs(10),
            clock: Arc::new(callback_store::ManualClock::new(t0())),
            ..StoreOptions::default()
        },
    )
    .unwrap();
    assert_eq!(waiter.busy_retries(), 0);
    let (locked, release) = (
        Arc::new(std::sync::Barrier::new(2)),
        Arc::new(std::sync::Barrier::new(2)),
    );
    let holding = {
        let (holder, locked, release) = (holder.clone(), locked.clone(), release.clone());
        std::thread::spawn(move || {
            holder.with_connection(|conn| {
                conn.execute_batch("BEGIN IMMEDIATE").unwrap();
                locked.wait();
                std::thread::sleep(Duration::from_millis(200));
                conn.execute_batch("COMMIT").unwrap();
            });
            release.wait();
        })
    };
    locked.wait();
    let org = waiter.organization("org").unwrap();
    org.create(new_callback(0)).unwrap();
    release.wait();
    holding.join().unwrap();
    assert!(waiter.busy_retries() > 0, "the create waited for the lock");
    assert_eq!(holder.busy_retries(), 0, "counted per store");
}

#[cfg(feature = "postgres")]
#[test]
fn busy_retries_count_the_operations_postgres_tried_again() {
    let db = testkit::TestDb::postgres(&testkit::require_postgres());
    let store = Store::open_with(
        db.location(),
        StoreOptions {
            max_connections: 1,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let org = store.organization("org").unwrap();
    org.create(new_callback(0)).unwrap();
    assert_eq!(store.busy_retries(), 0);
    // The pool's one connection ends under the store: its next operation
    // fails on it, and is tried again on a new one.
    let ended = store
        .with_postgres(|c| c.batch_execute("SELECT pg_terminate_backend(pg_backend_pid())"))
        .unwrap();
    assert!(ended.is_ok(), "with_postgres itself ran");
    org.create(new_callback(1)).unwrap();
    assert!(store.busy_retries() >= 1, "{}", store.busy_retries());
}
