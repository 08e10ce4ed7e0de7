//! The transition table of DESIGN.md, cell by cell: 5 statuses × 6 actions
//! (the seventh column, place_call, takes a claim: see claims.rs).
//!
//! Each callback is brought into its status through the public API (create;
//! dispatch; dispatch + complete_dispatch; cancel; dispatch + fail_dispatch),
//! then one action is applied and its exact outcome checked: the new record,
//! field by field, and the one history event it appends; or
//! INVALID_TRANSITION with nothing changed; or, for the store-wide actions
//! ("—" cells), the callback left alone.

mod common;

use std::time::Duration;

use callback_store::transitions::{self, Outcome};
use callback_store::Status::{self, Cancelled, Dispatched, Dispatching, Failed, Scheduled};
use callback_store::{
    Action, Callback, CallbackEvent, Claim, Error, ErrorCode, EventAction, ManualClock,
    NewCallback, Organization, Store, Timestamp, DISPATCH_INTERRUPTED, MAX_CLAIM,
};
use common::{at_minutes, callbacks, new_callback, row_count, store, t0};

/// Arguments of the transitions that bring a callback into its status.
const SETUP_REASON: &str = "customer is on holiday";
const SETUP_SESSION: &str = "sess_setup";
const SETUP_CAUSE: &str = "line busy";
/// Arguments of the action under test.
const REASON: &str = "the customer asked us not to call";
const SESSION: &str = "sess_new_call";
const CAUSE: &str = "carrier rejected the call";
const HALF_HOUR: Duration = Duration::from_secs(30 * 60);

/// When the action under test runs (setup happens between t0 and +2 min).
fn action_at() -> Timestamp {
    at_minutes(5)
}

/// The new time given to `reschedule`.
fn new_time() -> Timestamp {
    at_minutes(24 * 60)
}

fn far_future() -> Timestamp {
    at_minutes(10 * 365 * 24 * 60)
}

struct Fixture {
    store: Store,
    clock: ManualClock,
    org: Organization,
}

fn fixture() -> Fixture {
    let (store, clock) = store();
    let org = store.organization("org_a").unwrap();
    Fixture { store, clock, org }
}

impl Fixture {
    /// A callback due at +60 min, brought into `status` through the public
    /// API: created at t0, dispatched at +1 min, then completed, failed or
    /// cancelled at +2 min. The clock is left at `action_at()`.
    fn in_status(&self, status: Status) -> Callback {
        self.clock.set(t0());
        let id = self.org.create(new_callback(60)).unwrap().id;
        let reached = match status {
            Scheduled => self.org.get(&id).unwrap(),
            Cancelled => {
                self.clock.set(at_minutes(2));
                self.org.cancel(&id, Some(SETUP_REASON)).unwrap()
            }
            Dispatching | Dispatched | Failed => {
                self.clock.set(at_minutes(1));
                let dispatching = self.org.dispatch(&id).unwrap().into_callback();
                self.clock.set(at_minutes(2));
                match status {
                    Dispatched => self
                        .org
                        .complete_dispatch(&id, SETUP_SESSION, None)
                        .unwrap(),
                    Failed => self.org.fail_dispatch(&id, SETUP_CAUSE, None).unwrap(),
                    _ => dispatching,
                }
            }
        };
        assert_eq!(reached.status, status, "setup reached {status}");
        self.clock.set(action_at());
        reached
    }

    fn history(&self, cb: &Callback) -> Vec<CallbackEvent> {
        self.org.history(&cb.id).unwrap()
    }

    fn rows(&self) -> (i64, i64) {
        let count = |table| row_count(&self.store, table);
        (count("callbacks"), count("callback_events"))
    }

    /// The callback and its history are exactly as they were.
    fn assert_untouched(&self, before: &Callback, history: &[CallbackEvent]) {
        assert_eq!(&self.org.get(&before.id).unwrap(), before, "changed");
        assert_eq!(self.history(before), history, "history changed");
    }

    /// A transition returned `expected`, stored it, and appended exactly one
    /// event from `before`'s status to `expected`'s; returns its detail.
    fn assert_moved(
        &self,
        (before, history): (&Callback, &[CallbackEvent]),
        after: &Callback,
        expected: &Callback,
        (action, at): (EventAction, Timestamp),
    ) -> Option<String> {
        assert_eq!(after, expected);
        assert_eq!(&self.org.get(&before.id).unwrap(), expected, "as stored");
        let events = self.history(before);
        assert_eq!(events.len(), history.len() + 1, "one new event");
        assert_eq!(&events[..history.len()], history, "older events kept");
        let new = events.last().unwrap();
        assert_eq!(new.callback_id, before.id);
        assert_eq!(
            (new.action, new.from, new.to, new.at),
            (action, Some(before.status), expected.status, at)
        );
        new.detail.clone()
    }
}

/// The five per-callback actions of an `Organization`.
#[derive(Debug, Clone, Copy)]
enum Op {
    Cancel,
    Dispatch,
    Complete,
    Fail,
    Reschedule,
}

impl Op {
    fn action(self) -> Action {
        match self {
            Op::Cancel => Action::Cancel,
            Op::Dispatch => Action::Dispatch,
            Op::Complete => Action::CompleteDispatch,
            Op::Fail => Action::FailDispatch,
            Op::Reschedule => Action::Reschedule,
        }
    }

    fn event(self) -> EventAction {
        self.action().into()
    }

    fn apply(self, org: &Organization, id: &str) -> Result<Callback, Error> {
        match self {
            Op::Cancel => org.cancel(id, Some(REASON)),
            Op::Dispatch => org.dispatch(id).map(Claim::into_callback),
            Op::Complete => org.complete_dispatch(id, SESSION, None),
            Op::Fail => org.fail_dispatch(id, CAUSE, None),
            Op::Reschedule => org.reschedule(id, new_time()),
        }
    }
}

// --- The table itself ---------------------------------------------------------

/// DESIGN.md's table, written out again: columns cancel, dispatch/claim_due,
/// complete_dispatch, fail_dispatch, reschedule, recover_stale, place_call
/// (proven in claims.rs), expire and retry (proven in follow_ups.rs).
fn design_cell(from: Status, column: usize) -> Outcome {
    use Outcome::{FollowUp as F, Invalid as I, Move as M, NotSelected as N, Unchanged as U};
    let row: [Outcome; 9] = match from {
        Scheduled => [
            M(Cancelled),
            M(Dispatching),
            I,
            I,
            M(Scheduled),
            N,
            I,
            M(Failed),
            I,
        ],
        Dispatching => [
            I,
            I,
            M(Dispatched),
            M(Failed),
            I,
            M(Failed),
            M(Dispatching),
            N,
            I,
        ],
        Dispatched => [I, I, I, I, I, N, I, N, F],
        Cancelled => [U, I, I, I, I, N, I, N, I],
        Failed => [I, I, I, I, I, N, I, N, F],
    };
    row[column]
}

#[test]
fn the_code_transition_table_is_exactly_the_design_table() {
    let columns = [
        (Action::Cancel, 0),
        (Action::Dispatch, 1),
        (Action::ClaimDue, 1),
        (Action::CompleteDispatch, 2),
        (Action::FailDispatch, 3),
        (Action::Reschedule, 4),
        (Action::RecoverStale, 5),
        (Action::PlaceCall, 6),
        (Action::Expire, 7),
        (Action::Retry, 8),
    ];
    assert_eq!(
        columns.len(),
        Action::ALL.len(),
        "every action has its column"
    );
    for from in Status::ALL {
        for (action, column) in columns {
            let cell = design_cell(from, column);
            assert_eq!(
                transitions::outcome(from, action),
                cell,
                "{from} × {action}"
            );
        }
    }
}

// --- INVALID_TRANSITION cells -------------------------------------------------

fn assert_invalid_transition(status: Status, op: Op) {
    let f = fixture();
    let cb = f.in_status(status);
    let history = f.history(&cb);
    let rows = f.rows();

    let err = op.apply(&f.org, &cb.id).unwrap_err();

    assert_eq!(err.code(), ErrorCode::InvalidTransition, "{err}");
    let (id, action, from) = (cb.id.clone(), op.action(), status);
    assert_eq!(err, Error::InvalidTransition { id, action, from });
    let message = err.to_string();
    assert!(message.contains(action.as_str()), "no action: {message}");
    assert!(message.contains(status.as_str()), "no status: {message}");
    f.assert_untouched(&cb, &history);
    assert_eq!(f.rows(), rows, "no row written");
}

macro_rules! invalid_transition_cells {
    ($($name:ident: $status:ident, $op:ident;)*) => {$(
        #[test]
        fn $name() {
            assert_invalid_transition($status, Op::$op);
        }
    )*};
}

invalid_transition_cells! {
    complete_dispatch_of_a_scheduled_callback_is_an_invalid_transition: Scheduled, Complete;
    fail_dispatch_of_a_scheduled_callback_is_an_invalid_transition: Scheduled, Fail;

    cancel_of_a_dispatching_callback_is_an_invalid_transition: Dispatching, Cancel;
    dispatch_of_a_dispatching_callback_is_an_invalid_transition: Dispatching, Dispatch;
    reschedule_of_a_dispatching_callback_is_an_invalid_transition: Dispatching, Reschedule;

    cancel_of_a_dispatched_callback_is_an_invalid_transition: Dispatched, Cancel;
    dispatch_of_a_dispatched_callback_is_an_invalid_transition: Dispatched, Dispatch;
    complete_dispatch_of_a_dispatched_callback_is_an_invalid_transition: Dispatched, Complete;
    fail_dispatch_of_a_dispatched_callback_is_an_invalid_transition: Dispatched, Fail;
    reschedule_of_a_dispatched_callback_is_an_invalid_transition: Dispatched, Reschedule;

    dispatch_of_a_cancelled_callback_is_an_invalid_transition: Cancelled, Dispatch;
    complete_dispatch_of_a_cancelled_callback_is_an_invalid_transition: Cancelled, Complete;
    fail_dispatch_of_a_cancelled_callback_is_an_invalid_transition: Cancelled, Fail;
    reschedule_of_a_cancelled_callback_is_an_invalid_transition: Cancelled, Reschedule;

    cancel_of_a_failed_callback_is_an_invalid_transition: Failed, Cancel;
    dispatch_of_a_failed_callback_is_an_invalid_transition: Failed, Dispatch;
    complete_dispatch_of_a_failed_callback_is_an_invalid_transition: Failed, Complete;
    fail_dispatch_of_a_failed_callback_is_an_invalid_transition: Failed, Fail;
    reschedule_of_a_failed_callback_is_an_invalid_transition: Failed, Reschedule;
}

// --- Cells that move a callback -----------------------------------------------

/// Applies `op` to a callback in `from` at `action_at()`: it must become
/// `before` with `status = to`, `updated_at = action_at()` and `set` applied,
/// nothing else. Returns the detail of the one event it appended.
fn assert_moves(from: Status, op: Op, to: Status, set: fn(&mut Callback)) -> Option<String> {
    let f = fixture();
    let before = f.in_status(from);
    let history = f.history(&before);
    let after = op.apply(&f.org, &before.id).unwrap();
    let mut expected = Callback {
        status: to,
        updated_at: action_at(),
        ..before.clone()
    };
    set(&mut expected);
    f.assert_moved(
        (&before, &history),
        &after,
        &expected,
        (op.event(), action_at()),
    )
}

macro_rules! moving_cells {
    ($($name:ident: $from:ident, $op:ident => $to:ident, $set:expr, detail $detail:expr;)*) => {$(
        #[test]
        fn $name() {
            let detail = assert_moves($from, Op::$op, $to, $set);
            assert_eq!(detail.as_deref(), $detail, "event detail");
        }
    )*};
}

moving_cells! {
    cancel_of_a_scheduled_callback_makes_it_cancelled_with_cancelled_at_and_the_reason_in_history:
        Scheduled, Cancel => Cancelled, |cb| cb.cancelled_at = Some(action_at()), detail Some(REASON);
    // Due at +60 min, dispatched at +5 min: dispatch ignores scheduled_at.
    dispatch_of_a_scheduled_callback_not_yet_due_makes_it_dispatching_with_attempted_at:
        Scheduled, Dispatch => Dispatching, |cb| cb.attempted_at = Some(action_at()), detail None;
    complete_dispatch_of_a_dispatching_callback_makes_it_dispatched_with_dispatched_at_and_session:
        Dispatching, Complete => Dispatched, |cb| {
            cb.dispatched_at = Some(action_at());
            cb.created_session_id = Some(SESSION.into());
        }, detail Some(SESSION);
    fail_dispatch_of_a_dispatching_callback_makes_it_failed_with_the_failure_cause_in_history:
        Dispatching, Fail => Failed, |cb| cb.failure_cause = Some(CAUSE.into()), detail Some(CAUSE);
}

#[test]
fn reschedule_of_a_scheduled_callback_keeps_it_scheduled_at_the_new_time_and_records_the_old_one() {
    let detail = assert_moves(Scheduled, Op::Reschedule, Scheduled, |cb| {
        cb.scheduled_at = new_time();
    })
    .unwrap_or_default();
    assert!(detail.contains("2030-01-01T01:00:00Z"), "{detail:?}");
}

#[test]
fn cancel_without_a_reason_records_a_cancel_event_without_detail() {
    let f = fixture();
    let before = f.in_status(Scheduled);
    let history = f.history(&before);
    let after = f.org.cancel(&before.id, None).unwrap();
    let expected = Callback {
        status: Cancelled,
        cancelled_at: Some(action_at()),
        updated_at: action_at(),
        ..before.clone()
    };
    let event = (EventAction::Cancel, action_at());
    let detail = f.assert_moved((&before, &history), &after, &expected, event);
    assert_eq!(detail, None);
}

#[test]
fn cancel_of_a_cancelled_callback_is_a_no_op_that_returns_it_unchanged_without_a_new_event() {
    let f = fixture();
    let before = f.in_status(Cancelled);
    let history = f.history(&before);
    let rows = f.rows();

    let again = f.org.cancel(&before.id, Some(REASON)).unwrap();
    let without_reason = f.org.cancel(&before.id, None).unwrap();

    assert_eq!(again, before, "returned unchanged");
    assert_eq!(without_reason, before);
    assert_eq!(again.cancelled_at, Some(at_minutes(2)), "first cancel's");
    assert_eq!(again.updated_at, at_minutes(2));
    f.assert_untouched(&before, &history);
    assert_eq!(f.rows(), rows, "no event appended");
}

#[test]
fn every_status_reached_through_the_api_has_one_event_per_transition_with_its_detail() {
    use EventAction::{Cancel, CompleteDispatch, Create, Dispatch, FailDispatch};
    let f = fixture();
    type Events = &'static [(EventAction, Option<&'static str>)];
    let expected: [(Status, Events); 5] = [
        (Scheduled, &[(Create, None)]),
        (Dispatching, &[(Create, None), (Dispatch, None)]),
        (
            Dispatched,
            &[
                (Create, None),
                (Dispatch, None),
                (CompleteDispatch, Some(SETUP_SESSION)),
            ],
        ),
        (Cancelled, &[(Create, None), (Cancel, Some(SETUP_REASON))]),
        (
            Failed,
            &[
                (Create, None),
                (Dispatch, None),
                (FailDispatch, Some(SETUP_CAUSE)),
            ],
        ),
    ];
    for (status, events) in expected {
        let cb = f.in_status(status);
        let history = f.history(&cb);
        let got: Vec<_> = history
            .iter()
            .map(|e| (e.action, e.detail.as_deref()))
            .collect();
        assert_eq!(got, events, "{status}");
        assert_eq!((history[0].from, history[0].to), (None, Scheduled));
        for pair in history.windows(2) {
            assert_eq!(pair[1].from, Some(pair[0].to), "{status}: events chain");
        }
        assert_eq!(history.last().unwrap().to, status);
        assert!(history.iter().all(|e| e.callback_id == cb.id));
    }
}

// --- The dispatch column through claim_due ------------------------------------

#[test]
fn claim_due_moves_a_due_scheduled_callback_to_dispatching_with_attempted_at_now() {
    let f = fixture();
    let before = f.in_status(Scheduled);
    let history = f.history(&before);
    let now = before.scheduled_at;

    let claimed = callbacks(f.store.claim_due(now, 10).unwrap());

    let expected = Callback {
        status: Dispatching,
        attempted_at: Some(now),
        updated_at: now,
        ..before.clone()
    };
    assert_eq!(claimed.len(), 1);
    let event = (EventAction::ClaimDue, now);
    let detail = f.assert_moved((&before, &history), &claimed[0], &expected, event);
    assert_eq!(detail, None);
}

#[test]
fn claim_due_takes_a_callback_due_exactly_now_but_not_one_due_a_microsecond_later() {
    let f = fixture();
    let due = f.in_status(Scheduled);
    let one_micro_later = due.scheduled_at + chrono::Duration::microseconds(1);
    let later = f
        .org
        .create(NewCallback::new("+12015551234", one_micro_later))
        .unwrap();
    let later_history = f.history(&later);

    let claimed = callbacks(f.store.claim_due(due.scheduled_at, 10).unwrap());

    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, due.id);
    f.assert_untouched(&later, &later_history);
}

#[test]
fn claim_due_takes_the_oldest_due_first_across_organizations_and_respects_the_limit() {
    let f = fixture();
    let b = f.store.organization("org_b").unwrap();
    let a30 = f.org.create(new_callback(30)).unwrap();
    let b40 = b.create(new_callback(40)).unwrap();
    let a10 = f.org.create(new_callback(10)).unwrap();
    let a50 = f.org.create(new_callback(50)).unwrap();
    let b20 = b.create(new_callback(20)).unwrap();
    let now = at_minutes(40);

    let first = callbacks(f.store.claim_due(now, 2).unwrap());
    let second = callbacks(f.store.claim_due(now, MAX_CLAIM).unwrap());
    let third = callbacks(f.store.claim_due(now, MAX_CLAIM).unwrap());

    let ids = |cbs: &[Callback]| cbs.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&first), vec![a10.id.clone(), b20.id.clone()]);
    assert_eq!(ids(&second), vec![a30.id.clone(), b40.id.clone()]);
    assert!(third.is_empty(), "nothing left due");
    assert_eq!(first[1].organization_id, "org_b");
    for cb in first.iter().chain(&second) {
        assert_eq!((cb.status, cb.attempted_at), (Dispatching, Some(now)));
    }
    assert_eq!(f.org.get(&a50.id).unwrap(), a50, "not due, left scheduled");
}

// --- "—" cells: store-wide actions leave other statuses alone -----------------

fn assert_claim_due_leaves_alone(status: Status) {
    let f = fixture();
    let cb = f.in_status(status);
    let history = f.history(&cb);
    let claimed = callbacks(f.store.claim_due(far_future(), MAX_CLAIM).unwrap());
    assert!(claimed.is_empty(), "{status} callback claimed: {claimed:?}");
    f.assert_untouched(&cb, &history);
}

fn assert_recover_stale_leaves_alone(status: Status) {
    let f = fixture();
    let cb = f.in_status(status);
    let history = f.history(&cb);
    let recovered = f.store.recover_stale(far_future(), Duration::ZERO).unwrap();
    assert!(recovered.is_empty(), "{status} recovered: {recovered:?}");
    f.assert_untouched(&cb, &history);
}

macro_rules! left_alone {
    ($($name:ident: $check:ident($status:ident);)*) => {$(
        #[test]
        fn $name() {
            $check($status);
        }
    )*};
}

left_alone! {
    claim_due_never_takes_a_dispatching_callback: assert_claim_due_leaves_alone(Dispatching);
    claim_due_never_takes_a_dispatched_callback: assert_claim_due_leaves_alone(Dispatched);
    claim_due_never_takes_a_cancelled_callback: assert_claim_due_leaves_alone(Cancelled);
    claim_due_never_takes_a_failed_callback: assert_claim_due_leaves_alone(Failed);

    recover_stale_never_touches_a_scheduled_callback: assert_recover_stale_leaves_alone(Scheduled);
    recover_stale_never_touches_a_dispatched_callback: assert_recover_stale_leaves_alone(Dispatched);
    recover_stale_never_touches_a_cancelled_callback: assert_recover_stale_leaves_alone(Cancelled);
    recover_stale_never_touches_a_failed_callback: assert_recover_stale_leaves_alone(Failed);
}

// --- recover_stale ------------------------------------------------------------

#[test]
fn recover_stale_fails_a_dispatching_callback_attempted_before_the_horizon_as_dispatch_interrupted()
{
    let f = fixture();
    let before = f.in_status(Dispatching);
    assert_eq!(before.attempted_at, Some(at_minutes(1)));
    let history = f.history(&before);
    let now = at_minutes(40); // horizon +10 min, attempted at +1 min

    let recovered = f.store.recover_stale(now, HALF_HOUR).unwrap();

    let expected = Callback {
        status: Failed,
        failure_cause: Some("dispatch_interrupted".to_owned()),
        updated_at: now,
        ..before.clone()
    };
    assert_eq!(DISPATCH_INTERRUPTED, "dispatch_interrupted");
    assert_eq!(recovered.len(), 1);
    let event = (EventAction::RecoverStale, now);
    let detail = f.assert_moved((&before, &history), &recovered[0], &expected, event);
    assert_eq!(detail.as_deref(), Some("dispatch_interrupted"));
}

#[test]
fn recover_stale_leaves_a_dispatching_callback_attempted_at_or_after_the_horizon() {
    let f = fixture();
    let cb = f.in_status(Dispatching);
    let history = f.history(&cb);
    let attempted = cb.attempted_at.unwrap();
    let minutes = chrono::Duration::minutes;

    // The horizon (now - 30 min) before the attempt, then exactly at it.
    for now in [attempted, attempted + minutes(29), attempted + minutes(30)] {
        let recovered = f.store.recover_stale(now, HALF_HOUR).unwrap();
        assert!(recovered.is_empty(), "recovered at {now}: {recovered:?}");
        f.assert_untouched(&cb, &history);
    }

    let just_after = attempted + minutes(30) + chrono::Duration::microseconds(1);
    let recovered = f.store.recover_stale(just_after, HALF_HOUR).unwrap();
    assert_eq!(recovered.len(), 1, "older than the horizon by 1 µs");
    assert_eq!(recovered[0].status, Failed);
}

#[test]
fn recover_stale_fails_only_the_stale_dispatching_callback_among_every_status() {
    let f = fixture();
    let all: Vec<Callback> = Status::ALL.into_iter().map(|s| f.in_status(s)).collect();
    let histories: Vec<_> = all.iter().map(|cb| f.history(cb)).collect();

    let recovered = f.store.recover_stale(at_minutes(40), HALF_HOUR).unwrap();

    assert_eq!(recovered.len(), 1);
    for (cb, history) in all.iter().zip(&histories) {
        if cb.status == Dispatching {
            assert_eq!(recovered[0].id, cb.id);
            assert_eq!(f.org.get(&cb.id).unwrap().status, Failed);
        } else {
            f.assert_untouched(cb, history);
        }
    }
}
