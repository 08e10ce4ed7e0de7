//! The reference model of DESIGN.md the model test compares the store
//! with: every callback as the contract says it must be, written from the
//! contract (it does not use `callback_store::transitions`).

use callback_store::{
    Callback, CallbackEvent, EventAction, JsonObjectText, Order, Status, Timestamp,
};

use super::{common, Act, Failure, Payload, Target, Token, FORGED_TOKEN, NOT_FOUND, NUMBERS, ORGS};
use super::{ErrorCode, UNKNOWN_IDS};

/// One callback as the model knows it: the record `get` must return, and
/// what the model needs besides.
#[derive(Debug, Clone)]
pub(super) struct MCallback {
    pub(super) cb: Callback,
    pub(super) org: usize,
    pub(super) seq: usize,
    pub(super) payload: Payload,
    pub(super) key: Option<u8>,
    pub(super) events: Vec<EventView>,
    pub(super) pruned: bool,
    /// The token of its claim, as the store handed it out (DESIGN "Claims").
    pub(super) token: Option<String>,
    /// Whether place_call spent that claim.
    pub(super) spent: bool,
}

impl MCallback {
    pub(super) fn record(
        &mut self,
        action: EventAction,
        to: Status,
        at: Timestamp,
        detail: Option<String>,
    ) {
        let from = Some(self.cb.status);
        self.events
            .push((self.cb.id.clone(), action, from, to, at, detail));
        self.cb.status = to;
        self.cb.updated_at = at;
    }

    /// Why a claim with `token` cannot act on this callback now, if it cannot.
    pub(super) fn stale(&self, token: &str, to_place: bool) -> Option<Failure> {
        let live = self.cb.status == Status::Dispatching
            && self.token.as_deref() == Some(token)
            && !(to_place && self.spent);
        (!live).then_some(Failure::Stale)
    }
}

/// An event as compared: (callback, action, from, to, at, detail). DESIGN.md
/// fixes the detail of a cancel (its reason) and of a failure (its cause);
/// other details are the store's choice, and the model records None.
pub(super) type EventView = (
    String,
    EventAction,
    Option<Status>,
    Status,
    Timestamp,
    Option<String>,
);

pub(super) fn event_view(e: CallbackEvent) -> EventView {
    use EventAction::*;
    let fixed = matches!(e.action, Cancel | FailDispatch | RecoverStale);
    let detail = if fixed { e.detail } else { None };
    (e.callback_id, e.action, e.from, e.to, e.at, detail)
}

/// The cell of DESIGN.md's transition table.
pub(super) enum Cell {
    Move(Status),
    Unchanged,
    Invalid,
}

/// DESIGN.md's table, row by row, for the per-callback actions.
pub(super) fn table(from: Status, act: &Act) -> Cell {
    use Status::*;
    match (from, act) {
        (Scheduled, Act::Cancel(_)) => Cell::Move(Cancelled),
        (Cancelled, Act::Cancel(_)) => Cell::Unchanged,
        (Scheduled, Act::Dispatch) => Cell::Move(Dispatching),
        (Dispatching, Act::Complete(..)) => Cell::Move(Dispatched),
        (Dispatching, Act::Fail(..)) => Cell::Move(Failed),
        (Scheduled, Act::Reschedule(_)) => Cell::Move(Scheduled),
        _ => Cell::Invalid,
    }
}

/// Drops what is below a microsecond, as the store keeps time.
pub(super) fn micros(t: Timestamp) -> Timestamp {
    chrono::DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap()
}

pub(super) fn minutes(m: i64) -> chrono::Duration {
    chrono::Duration::minutes(m)
}

#[derive(Debug, Clone, Default)]
pub(super) struct Model {
    /// The clock as set, below microseconds included.
    pub(super) clock: Timestamp,
    pub(super) callbacks: Vec<MCallback>,
    pub(super) next_seq: usize,
    /// Every valid create request so far, for replays.
    pub(super) requests: Vec<(usize, Payload, Option<u8>)>,
}

impl Model {
    pub(super) fn now(&self) -> Timestamp {
        micros(self.clock)
    }

    /// The callback a target names, the organization to ask through, and
    /// the model's callback when the store must find it.
    pub(super) fn resolve(&self, target: &Target) -> (usize, String, Option<usize>) {
        let n = self.callbacks.len();
        match target {
            Target::Own(i) if n > 0 => {
                let k = i.index(n);
                let c = &self.callbacks[k];
                (c.org, c.cb.id.clone(), (!c.pruned).then_some(k))
            }
            Target::OtherOrg(i) if n > 0 => {
                let c = &self.callbacks[i.index(n)];
                (1 - c.org, c.cb.id.clone(), None)
            }
            Target::Own(i) | Target::OtherOrg(i) => (i.index(2), UNKNOWN_IDS[0].into(), None),
            Target::Unknown(u) => (u % 2, UNKNOWN_IDS[*u].to_owned(), None),
        }
    }

    /// One create. `new_id` is the id the store answered, taken as the new
    /// callback's id when the model decides that one is made.
    pub(super) fn create(
        &mut self,
        org: usize,
        p: &Payload,
        key: Option<u8>,
        new_id: Option<&str>,
    ) -> Answer {
        let same_key = |c: &&MCallback| !c.pruned && c.org == org && key.is_some() && c.key == key;
        if let Some(existing) = self.callbacks.iter().find(same_key) {
            let same_payload = existing.payload == *p;
            let conflict = Failure::Code(ErrorCode::Conflict);
            return same_payload.then(|| existing.cb.clone()).ok_or(conflict);
        }
        use {EventAction::Create, Status::Scheduled};
        let now = self.now();
        let cb = Callback {
            id: new_id.unwrap_or("<no id from the store>").to_owned(),
            organization_id: ORGS[org].to_owned(),
            source_session_id: p.source.map(str::to_owned),
            created_session_id: None,
            agent_id: None,
            phone_number_id: None,
            to_number: NUMBERS[p.to].to_owned(),
            from_number: None,
            scheduled_at: micros(common::at_minutes(p.minutes)),
            status: Scheduled,
            reason: p.reason.map(str::to_owned),
            instructions: None,
            summary: None,
            pipeline_config: JsonObjectText::empty(),
            metadata: JsonObjectText::from_map("metadata", &p.metadata()).unwrap(),
            failure_cause: None,
            attempted_at: None,
            dispatched_at: None,
            cancelled_at: None,
            created_at: now,
            updated_at: now,
            timezone: None,
            expires_at: None,
            attempt: 1,
            previous_callback_id: None,
        };
        let created = (cb.id.clone(), Create, None, Scheduled, now, None);
        let (seq, payload, events) = (self.next_seq, p.clone(), vec![created]);
        self.next_seq += 1;
        self.callbacks.push(MCallback {
            cb,
            org,
            seq,
            payload,
            key,
            events,
            pruned: false,
            token: None,
            spent: false,
        });
        Ok(self.callbacks.last().unwrap().cb.clone())
    }

    /// The claim token an act gives for the callback `found`, if any.
    pub(super) fn token_of(&self, found: Option<usize>, act: &Act) -> Option<String> {
        let choice = match act {
            Act::Complete(_, t) | Act::Fail(_, t) => *t,
            _ => Token::None,
        };
        let own = found.and_then(|k| self.callbacks[k].token.clone());
        match choice {
            Token::None => None,
            Token::Own => Some(own.unwrap_or_else(|| FORGED_TOKEN.to_owned())),
            Token::Forged => Some(FORGED_TOKEN.to_owned()),
        }
    }

    pub(super) fn transition(
        &mut self,
        found: Option<usize>,
        act: &Act,
        token: Option<&str>,
    ) -> Answer {
        let now = self.now();
        let reschedule_to = |m: i64| micros(self.clock + minutes(m));
        let c = &mut self.callbacks[found.ok_or(NOT_FOUND)?];
        let to = match table(c.cb.status, act) {
            Cell::Invalid if token.is_some() => return Err(Failure::Stale),
            Cell::Invalid => return Err(Failure::InvalidFrom(c.cb.status)),
            Cell::Unchanged => return Ok(c.cb.clone()),
            Cell::Move(to) => to,
        };
        if let Some(stale) = token.and_then(|t| c.stale(t, false)) {
            return Err(stale);
        }
        let (action, detail) = match act {
            Act::Cancel(reason) => {
                c.cb.cancelled_at = Some(now);
                (EventAction::Cancel, reason.map(str::to_owned))
            }
            Act::Dispatch => {
                c.cb.attempted_at = Some(now);
                (EventAction::Dispatch, None)
            }
            Act::Complete(session, _) => {
                c.cb.created_session_id = Some(session.to_string());
                c.cb.dispatched_at = Some(now);
                (EventAction::CompleteDispatch, None)
            }
            Act::Fail(cause, _) => {
                c.cb.failure_cause = Some(cause.to_string());
                (EventAction::FailDispatch, Some(cause.to_string()))
            }
            Act::Reschedule(m) => {
                c.cb.scheduled_at = reschedule_to(*m);
                (EventAction::Reschedule, None)
            }
        };
        c.record(action, to, now, detail);
        Ok(c.cb.clone())
    }

    /// Due scheduled callbacks of every organization, oldest first.
    pub(super) fn claim_due(&mut self, now: Timestamp, limit: u32) -> Vec<Callback> {
        let mut due: Vec<&mut MCallback> = (self.callbacks.iter_mut())
            .filter(|c| !c.pruned && c.cb.status == Status::Scheduled && c.cb.scheduled_at <= now)
            .collect();
        due.sort_by_key(|c| (c.cb.scheduled_at, c.seq));
        due.truncate(limit as usize);
        due.into_iter()
            .map(|c| {
                c.cb.attempted_at = Some(now);
                c.record(EventAction::ClaimDue, Status::Dispatching, now, None);
                c.cb.clone()
            })
            .collect()
    }

    /// The model's callback with this id, unless pruned.
    pub(super) fn by_id(&self, id: &str) -> Option<usize> {
        (self.callbacks.iter()).position(|c| !c.pruned && c.cb.id == id)
    }

    /// A claim handed out by the store takes the token the store made.
    pub(super) fn handed_out(&mut self, id: &str, token: &str) {
        if let Some(k) = self.by_id(id) {
            self.callbacks[k].token = Some(token.to_owned());
        }
    }

    /// `place_call` of the claim (id, token): spends it, dials (the answer
    /// says whether the dialer was called) and completes or fails.
    pub(super) fn place_call(&mut self, id: &str, token: &str, answers: bool) -> (Answer, bool) {
        let now = self.now();
        let Some(k) = self.by_id(id) else {
            return (Err(NOT_FOUND), false);
        };
        let c = &mut self.callbacks[k];
        if let Some(stale) = c.stale(token, true) {
            return (Err(stale), false);
        }
        c.spent = true;
        let spend = (
            id.to_owned(),
            EventAction::PlaceCall,
            Some(Status::Dispatching),
        );
        (c.events).push((spend.0, spend.1, spend.2, Status::Dispatching, now, None));
        if answers {
            c.cb.created_session_id = Some(PLACED_SESSION.to_owned());
            c.cb.dispatched_at = Some(now);
            c.record(EventAction::CompleteDispatch, Status::Dispatched, now, None);
        } else {
            c.cb.failure_cause = Some(DIAL_FAILURE.to_owned());
            let detail = Some(DIAL_FAILURE.to_owned());
            c.record(EventAction::FailDispatch, Status::Failed, now, detail);
        }
        (Ok(c.cb.clone()), true)
    }

    /// `claim_by_token`: the live, unspent claim's callback.
    pub(super) fn claim_by_token(&self, id: &str, token: &str) -> Answer {
        let c = &self.callbacks[self.by_id(id).ok_or(NOT_FOUND)?];
        match c.stale(token, true) {
            Some(stale) => Err(stale),
            None => Ok(c.cb.clone()),
        }
    }

    /// Dispatching callbacks whose attempt started before the horizon fail.
    pub(super) fn recover_stale(&mut self, now: Timestamp, horizon: Timestamp) -> Vec<Callback> {
        let cause = callback_store::DISPATCH_INTERRUPTED.to_owned();
        (self.callbacks.iter_mut())
            .filter(|c| !c.pruned && c.cb.status == Status::Dispatching)
            .filter(|c| c.cb.attempted_at.is_some_and(|a| a < horizon))
            .map(|c| {
                c.cb.failure_cause = Some(cause.clone());
                let detail = Some(cause.clone());
                c.record(EventAction::RecoverStale, Status::Failed, now, detail);
                c.cb.clone()
            })
            .collect()
    }

    /// Finished callbacks (no action moves them any more) updated before the cutoff go.
    pub(super) fn prune(&mut self, before: Timestamp) -> u64 {
        use Status::{Cancelled, Dispatched, Failed};
        let mut pruned = 0;
        for c in self.callbacks.iter_mut().filter(|c| !c.pruned) {
            let finished = matches!(c.cb.status, Dispatched | Cancelled | Failed);
            if finished && c.cb.updated_at < before {
                c.pruned = true;
                pruned += 1;
            }
        }
        pruned
    }

    pub(super) fn list(&self, org: usize, status: Option<Status>, order: Order) -> Vec<Callback> {
        let mut rows: Vec<&MCallback> = (self.callbacks.iter())
            .filter(|c| !c.pruned && c.org == org)
            .filter(|c| status.is_none() || status == Some(c.cb.status))
            .collect();
        match order {
            Order::CreatedDesc => rows.sort_by_key(|c| std::cmp::Reverse((c.cb.created_at, c.seq))),
            Order::ScheduledAsc => rows.sort_by_key(|c| (c.cb.scheduled_at, c.seq)),
        }
        rows.into_iter().map(|c| c.cb.clone()).collect()
    }
}

pub(super) type Answer = Result<Callback, Failure>;

pub(super) const PLACED_SESSION: &str = "sess_placed";
pub(super) const DIAL_FAILURE: &str = "no answer from the dialer";
