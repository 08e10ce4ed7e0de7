//! The transition table of DESIGN.md, as one table. Every state change in the
//! store looks its outcome up here; no method checks statuses on its own.

use serde::{Deserialize, Serialize};

use crate::status::Status;

/// What a caller asks of a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Cancel,
    /// "Dispatch now", for one callback, whatever its scheduled_at.
    Dispatch,
    /// A worker taking due callbacks; the same column of the table as `Dispatch`.
    ClaimDue,
    CompleteDispatch,
    FailDispatch,
    Reschedule,
    /// Store-wide: callbacks left `dispatching` by a dead process.
    RecoverStale,
    /// Spending a claim just before its call is placed. The callback stays
    /// `dispatching`; the claim can place no other call.
    PlaceCall,
    /// Store-wide: callbacks still `scheduled` at their `expires_at`.
    Expire,
    /// A follow-up attempt of a finished call that did not reach the person.
    Retry,
}

/// The cell of the table for (status, action).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The action succeeds and the callback takes this status.
    Move(Status),
    /// The action succeeds and changes nothing (cancel of a cancelled callback).
    Unchanged,
    /// The action is refused with INVALID_TRANSITION.
    Invalid,
    /// The action never selects callbacks in this status ("—" in DESIGN.md).
    NotSelected,
    /// The action succeeds, the callback keeps its status, and a new
    /// callback (the next attempt) follows it.
    FollowUp,
}

use Outcome::{FollowUp, Invalid, Move, NotSelected, Unchanged};
use Status::{Cancelled, Dispatched, Dispatching, Failed, Scheduled};

const COLUMNS: usize = 9;

/// Rows in `Status::ALL` order; columns: cancel, dispatch/claim_due,
/// complete_dispatch, fail_dispatch, reschedule, recover_stale, place_call,
/// expire, retry.
///
/// place_call keeps a `dispatching` callback `dispatching`: what it changes
/// is the claim (spent), guarded by the claim's token as well as the status.
/// retry keeps the finished callback as it is (at most one call per
/// attempt) and creates the next attempt beside it.
#[rustfmt::skip]
const TABLE: [[Outcome; COLUMNS]; 5] = [
    /* scheduled   */ [Move(Cancelled), Move(Dispatching), Invalid, Invalid, Move(Scheduled), NotSelected, Invalid, Move(Failed), Invalid],
    /* dispatching */ [Invalid, Invalid, Move(Dispatched), Move(Failed), Invalid, Move(Failed), Move(Dispatching), NotSelected, Invalid],
    /* dispatched  */ [Invalid, Invalid, Invalid, Invalid, Invalid, NotSelected, Invalid, NotSelected, FollowUp],
    /* cancelled   */ [Unchanged, Invalid, Invalid, Invalid, Invalid, NotSelected, Invalid, NotSelected, Invalid],
    /* failed      */ [Invalid, Invalid, Invalid, Invalid, Invalid, NotSelected, Invalid, NotSelected, FollowUp],
];

impl Action {
    pub const ALL: [Action; 10] = [
        Action::Cancel,
        Action::Dispatch,
        Action::ClaimDue,
        Action::CompleteDispatch,
        Action::FailDispatch,
        Action::Reschedule,
        Action::RecoverStale,
        Action::PlaceCall,
        Action::Expire,
        Action::Retry,
    ];

    fn column(self) -> usize {
        match self {
            Action::Cancel => 0,
            Action::Dispatch | Action::ClaimDue => 1,
            Action::CompleteDispatch => 2,
            Action::FailDispatch => 3,
            Action::Reschedule => 4,
            Action::RecoverStale => 5,
            Action::PlaceCall => 6,
            Action::Expire => 7,
            Action::Retry => 8,
        }
    }

    /// The operation's name, as in DESIGN.md and the event history.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Cancel => "cancel",
            Action::Dispatch => "dispatch",
            Action::ClaimDue => "claim_due",
            Action::CompleteDispatch => "complete_dispatch",
            Action::FailDispatch => "fail_dispatch",
            Action::Reschedule => "reschedule",
            Action::RecoverStale => "recover_stale",
            Action::PlaceCall => "place_call",
            Action::Expire => "expire",
            Action::Retry => "retry",
        }
    }

    pub(crate) fn past_tense(self) -> &'static str {
        match self {
            Action::Cancel => "cancelled",
            Action::Dispatch | Action::ClaimDue => "dispatched",
            Action::CompleteDispatch => "completed",
            Action::FailDispatch => "failed",
            Action::Reschedule => "rescheduled",
            Action::RecoverStale => "recovered",
            Action::PlaceCall => "placed",
            Action::Expire => "expired",
            Action::Retry => "retried",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The table's cell for a callback in `from` asked to `action`.
pub fn outcome(from: Status, action: Action) -> Outcome {
    TABLE[from.index()][action.column()]
}

/// The statuses from which `action` follows a callback up with a new attempt.
pub fn follows_up_from(action: Action) -> impl Iterator<Item = Status> {
    Status::ALL
        .into_iter()
        .filter(move |s| outcome(*s, action) == FollowUp)
}

/// The statuses from which `action` moves a callback.
pub fn sources(action: Action) -> impl Iterator<Item = Status> {
    Status::ALL
        .into_iter()
        .filter(move |s| matches!(outcome(*s, action), Move(_)))
}

/// Whether `action` hands out a claim: the callback enters `dispatching`
/// with a fresh token.
pub fn makes_claim(action: Action) -> bool {
    sources(action).any(|from| outcome(from, action) == Move(Dispatching) && from != Dispatching)
}

/// The one status a store-wide action (claim_due, recover_stale) selects,
/// and the status it moves those callbacks to.
pub(crate) fn bulk_move(action: Action) -> (Status, Status) {
    let mut moves = Status::ALL
        .into_iter()
        .filter_map(|from| match outcome(from, action) {
            Move(to) => Some((from, to)),
            _ => None,
        });
    let only = moves.next().expect("a bulk action moves from one status");
    debug_assert!(
        moves.next().is_none(),
        "a bulk action moves from one status"
    );
    only
}

/// A status no action can leave: its callbacks are done and may be pruned.
pub fn is_terminal(status: Status) -> bool {
    Action::ALL
        .into_iter()
        .all(|a| !matches!(outcome(status, a), Move(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_actions_each_select_exactly_one_status() {
        for action in [Action::ClaimDue, Action::RecoverStale, Action::Expire] {
            assert_eq!(sources(action).count(), 1, "{action}");
        }
        assert_eq!(bulk_move(Action::ClaimDue), (Scheduled, Dispatching));
        assert_eq!(bulk_move(Action::RecoverStale), (Dispatching, Failed));
        assert_eq!(bulk_move(Action::Expire), (Scheduled, Failed));
    }

    #[test]
    fn only_dispatch_and_claim_due_make_claims_and_only_dispatching_callbacks_are_placed() {
        let making: Vec<Action> = Action::ALL
            .into_iter()
            .filter(|a| makes_claim(*a))
            .collect();
        assert_eq!(making, vec![Action::Dispatch, Action::ClaimDue]);
        assert_eq!(
            sources(Action::PlaceCall).collect::<Vec<_>>(),
            vec![Dispatching]
        );
        assert_eq!(outcome(Dispatching, Action::PlaceCall), Move(Dispatching));
    }

    #[test]
    fn only_finished_calls_that_did_not_reach_anyone_are_followed_up() {
        assert_eq!(
            follows_up_from(Action::Retry).collect::<Vec<_>>(),
            vec![Dispatched, Failed]
        );
        for action in Action::ALL.into_iter().filter(|a| *a != Action::Retry) {
            assert_eq!(follows_up_from(action).count(), 0, "{action}");
        }
    }

    #[test]
    fn terminal_statuses_are_dispatched_cancelled_and_failed() {
        let terminal: Vec<Status> = Status::ALL
            .into_iter()
            .filter(|s| is_terminal(*s))
            .collect();
        assert_eq!(terminal, vec![Dispatched, Cancelled, Failed]);
    }

    #[test]
    fn no_action_moves_a_callback_back_to_scheduled_once_it_left() {
        for from in Status::ALL.into_iter().filter(|s| *s != Scheduled) {
            for action in Action::ALL {
                assert_ne!(outcome(from, action), Move(Scheduled), "{from} {action}");
            }
        }
    }
}
