//! Deadlines and follow-up attempts (DESIGN.md "Calling policy"): a
//! callback still scheduled at its expires_at is never dialed; `retry`
//! creates the next attempt when the policy allows, once per attempt.

mod common;

use std::sync::{Arc, Barrier};

use callback_store::{
    CallOutcome, CallResult, Callback, CallingPolicy, CallingWindow, Dispatcher, ErrorCode,
    EventAction, NewCallback, Organization, Status, Store, Timestamp, Weekday,
};
use common::{shared_db, store};

fn utc(text: &str) -> Timestamp {
    callback_store::parse_timestamp("t", text).unwrap()
}

fn retrying(max_attempts: u32, intervals: &[&str], on: &[CallOutcome]) -> CallingPolicy {
    CallingPolicy {
        max_attempts,
        retry_intervals: intervals.iter().map(|s| (*s).to_owned()).collect(),
        retry_on: on.to_vec(),
        ..CallingPolicy::default()
    }
}

/// A callback of `org` placed and completed at the clock's time.
fn called(store: &Store, org: &Organization, new: NewCallback) -> Callback {
    let created = org.create(new).unwrap();
    let claim = org.dispatch(&created.id).unwrap();
    store
        .place_call(&|_: &Callback| Ok::<_, String>("sess_1".to_owned()), &claim)
        .unwrap()
}

fn a_callback() -> NewCallback {
    NewCallback {
        agent_id: Some("agent_7".into()),
        reason: Some("asked for a call back".into()),
        metadata: serde_json::json!({"quote": 42})
            .as_object()
            .unwrap()
            .clone(),
        ..NewCallback::new("+12015551234", common::t0())
    }
}

#[test]
fn a_follow_up_copies_the_callback_after_the_interval_and_links_both_histories() {
    let (store, _) = store();
    let org = store.organization("org").unwrap();
    org.set_calling_policy(&retrying(3, &["2h", "1d"], &[CallOutcome::NoAnswer]))
        .unwrap();
    let first = called(&store, &org, a_callback());
    let second = org.retry(&first.id, CallOutcome::NoAnswer).unwrap();
    assert_eq!(second.attempt, 2);
    assert_eq!(
        second.previous_callback_id.as_deref(),
        Some(first.id.as_str())
    );
    assert_eq!(second.status, Status::Scheduled);
    assert_eq!(
        second.scheduled_at,
        common::t0() + chrono::Duration::hours(2)
    );
    assert_eq!(
        (
            &second.to_number,
            &second.agent_id,
            &second.reason,
            &second.metadata
        ),
        (
            &first.to_number,
            &first.agent_id,
            &first.reason,
            &first.metadata
        )
    );
    // The original stays as it was: at most one call per attempt.
    assert_eq!(org.get(&first.id).unwrap(), first);
    let original = org.history(&first.id).unwrap();
    let link = original.last().unwrap();
    assert_eq!(link.action, EventAction::Retry);
    assert_eq!(
        (link.from, link.to),
        (Some(Status::Dispatched), Status::Dispatched)
    );
    assert!(link.detail.as_deref().unwrap().contains(&second.id));
    let created = &org.history(&second.id).unwrap()[0];
    assert!(created.detail.as_deref().unwrap().contains(&first.id));
}

#[test]
fn retry_chains_stop_at_max_attempts_and_the_last_interval_repeats() {
    let (store, clock) = store();
    let org = store.organization("org").unwrap();
    org.set_calling_policy(&retrying(4, &["2h", "1d"], &[CallOutcome::Busy]))
        .unwrap();
    let mut current = called(&store, &org, a_callback());
    let mut waits = Vec::new();
    for attempt in 2..=4 {
        let next = org.retry(&current.id, CallOutcome::Busy).unwrap();
        assert_eq!(next.attempt, attempt);
        waits.push(next.scheduled_at - store.now());
        clock.set(next.scheduled_at);
        let claim = org.dispatch(&next.id).unwrap();
        current = org
            .fail_dispatch(&next.id, "busy", Some(claim.token()))
            .unwrap();
    }
    let hours: Vec<i64> = waits.iter().map(|d| d.num_hours()).collect();
    assert_eq!(hours, vec![2, 24, 24]);
    let err = org.retry(&current.id, CallOutcome::Busy).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidTransition);
    assert!(err.to_string().contains("max_attempts 4"), "{err}");
}

#[test]
fn retrying_the_same_attempt_again_returns_the_same_follow_up() {
    let (store, _) = store();
    let org = store.organization("org").unwrap();
    org.set_calling_policy(&retrying(3, &["1h"], &CallOutcome::ALL))
        .unwrap();
    let first = called(&store, &org, a_callback());
    let a = org.retry(&first.id, CallOutcome::NoAnswer).unwrap();
    let b = org.retry(&first.id, CallOutcome::Voicemail).unwrap();
    assert_eq!(a, b);
    assert_eq!(common::row_count(&store, "callbacks"), 2);
}

#[test]
fn eight_connections_retrying_one_callback_create_one_follow_up() {
    let (db, clock) = shared_db();
    let setup = common::file_store(db.location(), &clock);
    let org = setup.organization("org").unwrap();
    org.set_calling_policy(&retrying(3, &["1h"], &[CallOutcome::NoAnswer]))
        .unwrap();
    let first = called(&setup, &org, a_callback());
    let barrier = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let store = common::file_store(db.location(), &clock);
            let (barrier, id) = (Arc::clone(&barrier), first.id.clone());
            std::thread::spawn(move || {
                let org = store.organization("org").unwrap();
                barrier.wait();
                org.retry(&id, CallOutcome::NoAnswer).unwrap().id
            })
        })
        .collect();
    let ids: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(common::row_count(&setup, "callbacks"), 2);
}

#[test]
fn refused_retries_say_why_and_write_nothing() {
    let (store, _) = store();
    let org = store.organization("org").unwrap();
    let scheduled = org.create(a_callback()).unwrap();
    let err = org.retry(&scheduled.id, CallOutcome::NoAnswer).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidTransition);
    assert!(err.to_string().contains("it is scheduled"), "{err}");
    // The default policy allows one attempt.
    let first = called(&store, &org, a_callback());
    let err = org.retry(&first.id, CallOutcome::NoAnswer).unwrap_err();
    assert!(err.to_string().contains("max_attempts 1"), "{err}");
    org.set_calling_policy(&retrying(3, &["1h"], &[CallOutcome::NoAnswer]))
        .unwrap();
    let err = org.retry(&first.id, CallOutcome::Busy).unwrap_err();
    assert!(
        err.to_string().contains("does not retry outcome busy"),
        "{err}"
    );
    // An interval that lands after the deadline.
    let deadline = org
        .create(NewCallback {
            expires_at: Some(common::t0() + chrono::Duration::minutes(30)),
            ..a_callback()
        })
        .unwrap();
    let claim = org.dispatch(&deadline.id).unwrap();
    store
        .place_call(
            &|_: &Callback| Err::<String, _>("no line".to_owned()),
            &claim,
        )
        .unwrap();
    let err = org.retry(&deadline.id, CallOutcome::NoAnswer).unwrap_err();
    assert!(err.to_string().contains("past its deadline"), "{err}");
    assert_eq!(common::row_count(&store, "callbacks"), 3);
    assert!(org
        .history(&first.id)
        .unwrap()
        .iter()
        .all(|e| e.action != EventAction::Retry));
}

#[test]
fn a_follow_up_waits_for_the_next_window_and_keeps_the_deadline() {
    let (store, clock) = store();
    let org = store.organization("org").unwrap();
    org.set_calling_policy(&CallingPolicy {
        timezone: "America/New_York".into(),
        windows: vec![CallingWindow {
            days: vec![
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
            ],
            start: "08:00".into(),
            end: "21:00".into(),
        }],
        ..retrying(3, &["2h"], &[CallOutcome::NoAnswer])
    })
    .unwrap();
    // Friday 2030-01-11 20:00 EST (01:00Z Saturday): two hours later it is
    // Friday 22:00, closed until Monday 08:00 = 13:00Z.
    clock.set(utc("2030-01-12T01:00:00Z"));
    let deadline = utc("2030-01-20T00:00:00Z");
    let first = called(
        &store,
        &org,
        NewCallback {
            expires_at: Some(deadline),
            ..NewCallback::new("+12015551234", utc("2030-01-12T01:00:00Z"))
        },
    );
    let next = org.retry(&first.id, CallOutcome::NoAnswer).unwrap();
    assert_eq!(next.scheduled_at, utc("2030-01-14T13:00:00Z"));
    assert_eq!(next.expires_at, Some(deadline));
}

/// A dialer that reaches nobody.
struct NoAnswer;

impl Dispatcher for NoAnswer {
    fn place_call(&self, _: &Callback) -> Result<String, String> {
        Err("place_call_for_result is the one called".to_owned())
    }

    fn place_call_for_result(&self, _: &Callback) -> CallResult {
        CallResult::NotReached(CallOutcome::NoAnswer)
    }
}

#[test]
fn failed_and_unanswered_calls_retry_by_themselves_when_the_policy_lists_them() {
    let (store, clock) = store();
    let org = store.organization("org").unwrap();
    org.set_calling_policy(&retrying(
        2,
        &["30m"],
        &[CallOutcome::Failed, CallOutcome::NoAnswer],
    ))
    .unwrap();
    let failing = org.create(a_callback()).unwrap();
    let claim = org.dispatch(&failing.id).unwrap();
    org.fail_dispatch(&failing.id, "carrier down", Some(claim.token()))
        .unwrap();
    let follow_up = org
        .list(&callback_store::ListQuery::default())
        .unwrap()
        .callbacks
        .into_iter()
        .find(|c| c.previous_callback_id.as_deref() == Some(failing.id.as_str()))
        .expect("a follow-up of the failed call");
    assert_eq!(follow_up.attempt, 2);
    // The dialer's "nobody answered" fails the call with that outcome and retries it.
    clock.set(follow_up.scheduled_at);
    org.set_calling_policy(&retrying(3, &["30m"], &[CallOutcome::NoAnswer]))
        .unwrap();
    let report = store
        .dispatch_due(&NoAnswer, follow_up.scheduled_at, 10)
        .unwrap();
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].failure_cause.as_deref(), Some("no_answer"));
    let third = org.retry(&follow_up.id, CallOutcome::NoAnswer).unwrap();
    assert_eq!(third.attempt, 3);
    assert_eq!(common::row_count(&store, "callbacks"), 3);
}

#[test]
fn a_callback_still_scheduled_at_its_deadline_is_expired_and_never_claimed() {
    let (store, clock) = store();
    let org = store.organization("org").unwrap();
    let deadline = utc("2030-01-01T02:00:00Z");
    let met_by_claim = org
        .create(NewCallback {
            expires_at: Some(deadline),
            ..NewCallback::new("+12015551234", utc("2030-01-01T01:00:00Z"))
        })
        .unwrap();
    let swept = org
        .create(NewCallback {
            expires_at: Some(deadline),
            ..NewCallback::new(
                "+12015551234",
                utc("2030-01-01T05:00:00Z") - chrono::Duration::hours(4),
            )
        })
        .unwrap();
    // The last instant before the deadline may still ring.
    let last = store
        .claim_due(deadline - chrono::Duration::microseconds(1), 1)
        .unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].id(), met_by_claim.id);
    // At the deadline, claim_due meets the other one and expires it.
    assert!(store.claim_due(deadline, 10).unwrap().is_empty());
    let expired = org.get(&swept.id).unwrap();
    assert_eq!(expired.status, Status::Failed);
    assert_eq!(
        expired.failure_cause.as_deref(),
        Some(callback_store::EXPIRED)
    );
    let history = org.history(&swept.id).unwrap();
    assert_eq!(history.last().unwrap().action, EventAction::Expire);
    // The sweep reaches one nobody claimed; dispatch past the deadline is refused.
    let later = org
        .create(NewCallback {
            expires_at: Some(utc("2030-01-01T03:00:00Z")),
            ..NewCallback::new("+12015551234", utc("2030-01-01T02:30:00Z"))
        })
        .unwrap();
    clock.set(utc("2030-01-01T03:00:00Z"));
    let err = org.dispatch(&later.id).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidTransition);
    assert!(err.to_string().contains("deadline"), "{err}");
    let swept_now = store
        .expire_overdue(utc("2030-01-01T03:00:00Z"), 100)
        .unwrap();
    assert_eq!(swept_now.len(), 1);
    assert_eq!(swept_now[0].id, later.id);
    assert!(store
        .expire_overdue(utc("2030-01-01T04:00:00Z"), 100)
        .unwrap()
        .is_empty());
}
