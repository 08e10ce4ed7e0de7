//! Fenced claims (DESIGN.md "Claims"): a call is placed at most once per
//! claim, whatever the caller passes. Every refusal here is checked three
//! ways: its code, a dialer that was never called, and a row (and history)
//! left exactly as it was.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::thread;
use std::time::Duration;

use callback_store::{
    Callback, CallbackEvent, Claim, Error, ErrorCode, EventAction, ManualClock, Organization,
    Status, Store,
};
use common::{at_minutes, file_store, new_callback, store, t0};

/// A dialer that counts its calls and remembers whom it called.
#[derive(Default)]
struct CountingDialer {
    calls: AtomicUsize,
    called: Mutex<Vec<String>>,
}

impl callback_store::Dispatcher for CountingDialer {
    fn place_call(&self, callback: &Callback) -> Result<String, String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.called.lock().unwrap().push(callback.id.clone());
        Ok(format!("sess_for_{}", callback.id))
    }
}

impl CountingDialer {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

fn org(store: &Store) -> Organization {
    store.organization("org_a").unwrap()
}

/// A fresh callback, dispatched now: its claim.
fn claimed(org: &Organization) -> Claim {
    let id = org.create(new_callback(60)).unwrap().id;
    org.dispatch(&id).unwrap()
}

/// The callback and its history, to compare before and after a refusal.
fn snapshot(org: &Organization, id: &str) -> (Callback, Vec<CallbackEvent>) {
    (org.get(id).unwrap(), org.history(id).unwrap())
}

fn assert_stale(err: &Error, what: &str) {
    assert_eq!(err.code(), ErrorCode::InvalidTransition, "{what}: {err}");
    assert!(
        err.to_string().contains("stale claim"),
        "{what}: the message names a stale claim: {err}"
    );
}

#[test]
fn a_claim_carries_a_fresh_128_bit_token_of_32_lowercase_hex_digits() {
    let (store, _) = store();
    let org = org(&store);
    for _ in 0..100 {
        org.create(new_callback(0)).unwrap();
    }
    let mut claims = store.claim_due(at_minutes(0), 100).unwrap();
    claims.push(claimed(&org));
    let mut tokens: Vec<&str> = claims.iter().map(Claim::token).collect();
    for token in &tokens {
        assert_eq!(token.len(), 32, "{token}");
        assert!(
            token
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
            "{token}"
        );
    }
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 101, "every claim has its own token");
}

#[test]
fn place_call_spends_the_claim_before_dialing_and_records_the_spend_in_history() {
    let (store, clock) = store();
    let org = org(&store);
    let claim = claimed(&org);
    clock.set(at_minutes(5));
    let seen_while_dialing = Mutex::new(None);
    let dialer = |cb: &Callback| {
        // The spend is committed before the dialer runs: another reader
        // already sees it in the history.
        *seen_while_dialing.lock().unwrap() = Some(org.history(&cb.id));
        Ok::<_, String>("sess_1".to_owned())
    };

    let done = store.place_call(&dialer, &claim).unwrap();

    assert_eq!(done.status, Status::Dispatched);
    let during = seen_while_dialing.into_inner().unwrap().unwrap().unwrap();
    let last = during.last().unwrap();
    assert_eq!(last.action, EventAction::PlaceCall);
    assert_eq!(
        (last.from, last.to, last.at),
        (
            Some(Status::Dispatching),
            Status::Dispatching,
            at_minutes(5)
        )
    );
    let actions: Vec<EventAction> = org
        .history(claim.id())
        .unwrap()
        .iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        [
            EventAction::Create,
            EventAction::Dispatch,
            EventAction::PlaceCall,
            EventAction::CompleteDispatch
        ]
    );
}

#[test]
fn spending_a_claim_changes_no_field_of_the_record() {
    let (store, clock) = store();
    let org = org(&store);
    let claim = claimed(&org);
    let before = org.get(claim.id()).unwrap();
    clock.set(at_minutes(7));
    let during = Mutex::new(None);
    let dialer = |cb: &Callback| {
        *during.lock().unwrap() = Some(org.get(&cb.id).unwrap());
        Err::<String, _>("no answer".to_owned())
    };
    store.place_call(&dialer, &claim).unwrap();
    assert_eq!(during.into_inner().unwrap().unwrap(), before);
}

#[test]
fn the_same_claim_placed_twice_calls_once_and_the_second_is_refused() {
    let (store, _) = store();
    let org = org(&store);
    let claim = claimed(&org);
    let dialer = CountingDialer::default();
    let first = store.place_call(&dialer, &claim).unwrap();
    let after_first = snapshot(&org, claim.id());

    let err = store.place_call(&dialer, &claim).unwrap_err();

    assert_stale(&err, "second place_call");
    assert!(err.to_string().contains("dispatched now"), "{err}");
    assert_eq!(dialer.calls(), 1);
    assert_eq!(first.status, Status::Dispatched);
    assert_eq!(snapshot(&org, claim.id()), after_first);
}

#[test]
fn a_claim_placed_again_while_its_call_is_ringing_is_refused_as_already_spent() {
    let (store, _) = store();
    let org = org(&store);
    let claim = claimed(&org);
    let inner = CountingDialer::default();
    let second = Mutex::new(None);
    let dialer = |_: &Callback| {
        // The callback is still dispatching: only the spent mark stops this.
        *second.lock().unwrap() = Some(store.place_call(&inner, &claim));
        Ok::<_, String>("sess_1".to_owned())
    };

    store.place_call(&dialer, &claim).unwrap();

    let err = second.into_inner().unwrap().unwrap().unwrap_err();
    assert_stale(&err, "while ringing");
    assert!(err.to_string().contains("already spent"), "{err}");
    assert_eq!(inner.calls(), 0);
}

#[test]
fn a_claim_spent_on_a_failed_call_cannot_call_again() {
    let (store, _) = store();
    let org = org(&store);
    let claim = claimed(&org);
    let calls = AtomicUsize::new(0);
    let failing = |_: &Callback| -> Result<String, String> {
        calls.fetch_add(1, Ordering::SeqCst);
        panic!("the dialer crashed")
    };
    let failed = store.place_call(&failing, &claim).unwrap();
    assert_eq!(failed.status, Status::Failed);
    let err = store.place_call(&failing, &claim).unwrap_err();
    assert_stale(&err, "after a failed call");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn a_claim_whose_callback_was_recovered_is_refused_without_dialing() {
    let (store, _) = store();
    let org = org(&store);
    let claim = claimed(&org);
    let recovered = store
        .recover_stale(at_minutes(30), Duration::from_secs(60))
        .unwrap();
    assert_eq!(recovered.len(), 1);
    let before = snapshot(&org, claim.id());
    let dialer = CountingDialer::default();

    let placed = store.place_call(&dialer, &claim).unwrap_err();
    let completed = org
        .complete_dispatch(claim.id(), "sess_1", Some(claim.token()))
        .unwrap_err();
    let again = store.claim_by_token(claim.id(), claim.token()).unwrap_err();

    for (what, err) in [
        ("place_call", placed),
        ("complete", completed),
        ("claim_by_token", again),
    ] {
        assert_stale(&err, what);
        assert!(err.to_string().contains("failed now"), "{what}: {err}");
    }
    assert_eq!(dialer.calls(), 0);
    assert_eq!(snapshot(&org, claim.id()), before);
}

#[test]
fn dispatch_due_goes_on_when_recovery_failed_a_callback_during_its_call() {
    let (store, _) = store();
    let org = org(&store);
    let first = org.create(new_callback(0)).unwrap();
    let second = org.create(new_callback(1)).unwrap();
    let calls = AtomicUsize::new(0);
    let slow_first_call = |cb: &Callback| {
        if calls.fetch_add(1, Ordering::SeqCst) == 0 {
            // Another worker's recovery runs while this call rings.
            let recovered = store
                .recover_stale(at_minutes(60), Duration::from_secs(60))
                .unwrap();
            assert_eq!(recovered.len(), 2, "both claims are dispatching");
        }
        Ok::<_, String>(format!("sess_{}", cb.id))
    };

    let report = store
        .dispatch_due(&slow_first_call, at_minutes(1), 10)
        .unwrap();

    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the recovered second claim is not dialed"
    );
    let failed: Vec<&str> = report.failed.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(failed, [first.id.as_str(), second.id.as_str()]);
    assert!(report.dispatched.is_empty());
    for cb in &report.failed {
        assert_eq!(cb.failure_cause.as_deref(), Some("dispatch_interrupted"));
    }
}

#[test]
fn a_forged_token_is_refused_everywhere_and_changes_nothing() {
    let (store, _) = store();
    let org = org(&store);
    let claim = claimed(&org);
    let before = snapshot(&org, claim.id());
    let forged = "0123456789abcdef0123456789abcdef";
    assert_ne!(claim.token(), forged);

    let refusals = [
        (
            "claim_by_token",
            store.claim_by_token(claim.id(), forged).map(drop),
        ),
        (
            "complete",
            org.complete_dispatch(claim.id(), "sess", Some(forged))
                .map(drop),
        ),
        (
            "fail",
            org.fail_dispatch(claim.id(), "busy", Some(forged))
                .map(drop),
        ),
    ];
    for (what, result) in refusals {
        let err = result.unwrap_err();
        assert_stale(&err, what);
        assert!(
            err.to_string().contains("not the callback's claim"),
            "{err}"
        );
    }
    assert_eq!(snapshot(&org, claim.id()), before);
    let done = org
        .complete_dispatch(claim.id(), "sess", Some(claim.token()))
        .unwrap();
    assert_eq!(done.status, Status::Dispatched);
}

#[test]
fn a_claim_token_is_a_validated_argument() {
    let (store, _) = store();
    let org = org(&store);
    let claim = claimed(&org);
    let before = snapshot(&org, claim.id());
    for bad in ["", "tab\there", &"x".repeat(256)] {
        let results = [
            store.claim_by_token(claim.id(), bad).map(drop),
            org.complete_dispatch(claim.id(), "s", Some(bad)).map(drop),
            org.fail_dispatch(claim.id(), "busy", Some(bad)).map(drop),
        ];
        for result in results {
            let err = result.unwrap_err();
            assert_eq!(err.code(), ErrorCode::ValidationError, "{bad:?}: {err}");
            assert!(err.to_string().starts_with("claim_token:"), "{err}");
        }
    }
    assert_eq!(snapshot(&org, claim.id()), before);
}

#[test]
fn claim_by_token_gives_back_the_live_claim_that_place_call_then_spends() {
    let (store, _) = store();
    let org = org(&store);
    let claim = claimed(&org);
    let elsewhere = store.claim_by_token(claim.id(), claim.token()).unwrap();
    assert_eq!(elsewhere, claim);
    let dialer = CountingDialer::default();
    store.place_call(&dialer, &elsewhere).unwrap();
    let err = store.place_call(&dialer, &claim).unwrap_err();
    assert_stale(&err, "the original after the copy was placed");
    assert_stale(
        &store.claim_by_token(claim.id(), claim.token()).unwrap_err(),
        "a spent claim",
    );
    assert_eq!(dialer.calls(), 1);
}

#[test]
fn callbacks_in_every_other_status_have_no_live_claim() {
    let (store, _) = store();
    let org = org(&store);
    let scheduled = org.create(new_callback(60)).unwrap();
    let cancelled = org.create(new_callback(60)).unwrap();
    org.cancel(&cancelled.id, None).unwrap();
    let dispatched = claimed(&org);
    org.complete_dispatch(dispatched.id(), "s", None).unwrap();
    let failed = claimed(&org);
    org.fail_dispatch(failed.id(), "busy", None).unwrap();
    let dialer = CountingDialer::default();

    for (id, token, status) in [
        (scheduled.id.as_str(), failed.token(), Status::Scheduled),
        (cancelled.id.as_str(), failed.token(), Status::Cancelled),
        (dispatched.id(), dispatched.token(), Status::Dispatched),
        (failed.id(), failed.token(), Status::Failed),
    ] {
        let before = snapshot(&org, id);
        let err = store.claim_by_token(id, token).unwrap_err();
        assert_stale(&err, status.as_str());
        assert!(
            err.to_string().contains(&format!("is {status} now")),
            "{err}"
        );
        assert_eq!(snapshot(&org, id), before);
    }
    for claim in [&dispatched, &failed] {
        assert_stale(
            &store.place_call(&dialer, claim).unwrap_err(),
            "a finished claim",
        );
    }
    assert_eq!(dialer.calls(), 0);
    let unknown = store
        .claim_by_token("cb_unknown", failed.token())
        .unwrap_err();
    assert_eq!(unknown.code(), ErrorCode::NotFound);
}

#[test]
fn complete_and_fail_without_a_token_keep_their_old_behaviour_and_end_the_claim() {
    let (store, _) = store();
    let org = org(&store);
    let claim = claimed(&org);
    org.complete_dispatch(claim.id(), "sess_by_hand", None)
        .unwrap();
    let dialer = CountingDialer::default();
    assert_stale(&store.place_call(&dialer, &claim).unwrap_err(), "finished");
    assert_eq!(dialer.calls(), 0);
}

#[test]
fn a_callback_claimed_before_claims_existed_has_no_live_claim_but_completes_without_a_token() {
    // Files migrated from schema 2 may hold callbacks left dispatching with
    // no token: no claim can be had for them, recover_stale fails them as
    // before, and a caller that dispatched them can still finish them.
    let (store, _) = store();
    let org = org(&store);
    let claim = claimed(&org);
    common::execute(&store, "UPDATE callbacks SET claim_token = NULL");
    assert_stale(
        &store.claim_by_token(claim.id(), claim.token()).unwrap_err(),
        "no token stored",
    );
    let dialer = CountingDialer::default();
    assert_stale(
        &store.place_call(&dialer, &claim).unwrap_err(),
        "no token stored",
    );
    assert_eq!(dialer.calls(), 0);
    let done = org.complete_dispatch(claim.id(), "sess", None).unwrap();
    assert_eq!(done.status, Status::Dispatched);
}

/// One claim placed by 8 threads at once through `stores` (thread `t` uses
/// `stores[t % len]`), `rounds` times: exactly one dial each round, the
/// other seven refused with INVALID_TRANSITION, one spend in the history.
fn race_one_claim(stores: &[Store], rounds: usize) {
    const THREADS: usize = 8;
    let org = org(&stores[0]);
    for round in 0..rounds {
        let claim = claimed(&org);
        let dialer = CountingDialer::default();
        let barrier = Barrier::new(THREADS);
        let answers: Vec<Result<Callback, Error>> = thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (store, claim, dialer, barrier) =
                        (&stores[t % stores.len()], &claim, &dialer, &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        store.place_call(dialer, claim)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(dialer.calls(), 1, "round {round}: one dial");
        assert_eq!(*dialer.called.lock().unwrap(), [claim.id().to_owned()]);
        let won = answers.iter().filter(|a| a.is_ok()).count();
        assert_eq!(won, 1, "round {round}: one winner");
        for err in answers.iter().filter_map(|a| a.as_ref().err()) {
            assert_stale(err, &format!("round {round}"));
        }
        let spends = org
            .history(claim.id())
            .unwrap()
            .iter()
            .filter(|e| e.action == EventAction::PlaceCall)
            .count();
        assert_eq!(spends, 1, "round {round}: one spend recorded");
    }
}

#[test]
fn one_claim_placed_from_eight_threads_sharing_a_store_dials_once_every_round() {
    let (store, _) = store();
    race_one_claim(&[store], 200);
}

#[test]
fn one_claim_placed_from_eight_connections_to_one_file_dials_once_every_round() {
    let (db, _) = common::shared_db();
    let path = db.location();
    let clock = ManualClock::new(t0());
    let stores: Vec<Store> = (0..8).map(|_| file_store(&path, &clock)).collect();
    race_one_claim(&stores, 200);
}
