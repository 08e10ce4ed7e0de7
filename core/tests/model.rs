//! Model-based test: random sequences of operations run against a real store
//! and against a small reference model of DESIGN.md written here, from the
//! contract (the model does not use `callback_store::transitions`).

mod common;

use std::collections::HashSet;
use std::time::Duration;

use callback_store::{
    Callback, CallbackEvent, Error, ErrorCode, EventAction, JsonObject, ListQuery, NewCallback,
    Order, Organization, Status, Store, Timestamp,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;

const ORGS: [&str; 2] = ["org_a", "org_b"];
const UNKNOWN_IDS: [&str; 2] = ["cb_0190c0ffee0000000000000000000000", "no-such-callback"];
const NUMBERS: [&str; 2] = ["+12015551234", "+442071838750"];

/// The input of a create, reduced to the fields the test varies.
#[derive(Debug, Clone, PartialEq)]
struct Payload {
    to: usize,
    minutes: i64,
    source: Option<&'static str>,
    reason: Option<&'static str>,
    tag: Option<u8>,
}

impl Payload {
    fn new_callback(&self, key: Option<u8>) -> NewCallback {
        NewCallback {
            to_number: NUMBERS[self.to].to_owned(),
            source_session_id: self.source.map(str::to_owned),
            reason: self.reason.map(str::to_owned),
            metadata: self.metadata(),
            idempotency_key: key.map(|k| format!("key-{k}")),
            ..common::new_callback(self.minutes)
        }
    }

    fn metadata(&self) -> JsonObject {
        let tag = self.tag.map(|t| ("tag".to_owned(), t.into()));
        tag.into_iter().collect()
    }
}

/// Which callback an operation names.
#[derive(Debug, Clone)]
enum Target {
    /// One created so far (maybe pruned since), through its own organization.
    Own(Index),
    /// One created so far, through the other organization.
    OtherOrg(Index),
    /// An id the store never made.
    Unknown(usize),
}

/// A transition asked of one callback, with its generated argument.
#[derive(Debug, Clone)]
enum Act {
    Cancel(Option<&'static str>),
    Dispatch,
    /// Completes with this created_session_id.
    Complete(&'static str),
    /// Fails with this failure_cause.
    Fail(&'static str),
    /// Minutes from the clock.
    Reschedule(i64),
}

/// Organizations are 0 and 1; keys are `key-{n}`.
#[derive(Debug, Clone)]
enum Op {
    /// (organization, payload, idempotency key)
    Create(usize, Payload, Option<u8>),
    /// Sends an earlier create request again: as it was, or one minute later.
    Replay(Index, bool),
    /// (organization, items, the item made invalid)
    CreateMany(usize, Vec<(Payload, Option<u8>)>, Option<Index>),
    Get(Target),
    Transition(Target, Act),
    /// `claim_due(clock + minutes, limit)`.
    ClaimDue(i64, u32),
    /// `recover_stale(clock + minutes, older_than minutes)`.
    RecoverStale(i64, u64),
    /// `prune(clock + minutes)`.
    Prune(i64),
    /// (organization, status filter, order, page size): every page.
    List(usize, Option<Status>, Order, u32),
    History(Target),
    /// Moves the clock on (by minutes, or by nanoseconds the store drops).
    Advance(chrono::Duration),
}

prop_compose! {
    fn payload()(
        to in 0..NUMBERS.len(),
        minutes in prop::sample::select(vec![-30i64, 0, 15, 30, 60]),
        source in prop::option::of(prop::sample::select(vec!["sess_1", "sess_2"])),
        reason in prop::option::of(Just("after the meeting")),
        tag in prop::option::of(0u8..2),
    ) -> Payload {
        Payload { to, minutes, source, reason, tag }
    }
}

/// Minutes from the clock, few enough that times often coincide exactly
/// (boundaries: due at now, stale at the horizon, pruned at the cutoff).
fn offset() -> impl Strategy<Value = i64> {
    prop::sample::select(vec![-30i64, -15, 0, 15, 30, 60])
}

fn key() -> impl Strategy<Value = Option<u8>> {
    prop_oneof![1 => Just(None), 2 => (0u8..3).prop_map(Some)]
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        10 => any::<Index>().prop_map(Target::Own),
        1 => any::<Index>().prop_map(Target::OtherOrg),
        1 => (0..UNKNOWN_IDS.len()).prop_map(Target::Unknown),
    ]
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        3 => prop::option::of(Just("changed their mind")).prop_map(Act::Cancel),
        4 => Just(Act::Dispatch),
        3 => prop::sample::select(vec!["sess_new_1", "sess_new_2"]).prop_map(Act::Complete),
        3 => prop::sample::select(vec!["no answer", "busy"]).prop_map(Act::Fail),
        2 => offset().prop_map(Act::Reschedule),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let status = prop::option::of(prop::sample::select(Status::ALL.to_vec()));
    let order = prop::sample::select(vec![Order::CreatedDesc, Order::ScheduledAsc]);
    let limit = prop::sample::select(vec![1u32, 2, 5, 100]);
    let older_than = prop::sample::select(vec![0u64, 15, 30]);
    prop_oneof![
        6 => (0..2usize, payload(), key()).prop_map(|(o, p, k)| Op::Create(o, p, k)),
        2 => (any::<Index>(), any::<bool>()).prop_map(|(which, tweak)| Op::Replay(which, tweak)),
        2 => (0..2usize, vec((payload(), key()), 1..=3), prop::option::weighted(0.3, any::<Index>()))
            .prop_map(|(org, items, invalid)| Op::CreateMany(org, items, invalid)),
        2 => target().prop_map(Op::Get),
        15 => (target(), act()).prop_map(|(t, a)| Op::Transition(t, a)),
        2 => (offset(), 1u32..=4).prop_map(|(offset, limit)| Op::ClaimDue(offset, limit)),
        2 => (offset(), older_than).prop_map(|(offset, older)| Op::RecoverStale(offset, older)),
        1 => offset().prop_map(Op::Prune),
        3 => (0..2usize, status, order, limit)
            .prop_map(|(org, status, order, limit)| Op::List(org, status, order, limit)),
        2 => target().prop_map(Op::History),
        2 => prop::sample::select(vec![0i64, 15, 30, 60]).prop_map(|m| Op::Advance(minutes(m))),
        1 => (1i64..=2500).prop_map(|n| Op::Advance(chrono::Duration::nanoseconds(n))),
    ]
}

/// What an operation answered when it failed: the code, and for a refused
/// transition the status the store says it found.
#[derive(Debug, Clone, PartialEq)]
enum Failure {
    Code(ErrorCode),
    InvalidFrom(Status),
}

fn failure(err: Error) -> Failure {
    match err {
        Error::InvalidTransition { from, .. } => Failure::InvalidFrom(from),
        other => Failure::Code(other.code()),
    }
}

const NOT_FOUND: Failure = Failure::Code(ErrorCode::NotFound);

/// One callback as the model knows it: the record `get` must return, and
/// what the model needs besides.
#[derive(Debug, Clone)]
struct MCallback {
    cb: Callback,
    org: usize,
    seq: usize,
    payload: Payload,
    key: Option<u8>,
    events: Vec<EventView>,
    pruned: bool,
}

impl MCallback {
    fn record(&mut self, action: EventAction, to: Status, at: Timestamp, detail: Option<String>) {
        let from = Some(self.cb.status);
        self.events
            .push((self.cb.id.clone(), action, from, to, at, detail));
        self.cb.status = to;
        self.cb.updated_at = at;
    }
}

/// An event as compared: (callback, action, from, to, at, detail). DESIGN.md
/// fixes the detail of a cancel (its reason) and of a failure (its cause);
/// other details are the store's choice, and the model records None.
type EventView = (
    String,
    EventAction,
    Option<Status>,
    Status,
    Timestamp,
    Option<String>,
);

fn event_view(e: CallbackEvent) -> EventView {
    use EventAction::*;
    let fixed = matches!(e.action, Cancel | FailDispatch | RecoverStale);
    let detail = if fixed { e.detail } else { None };
    (e.callback_id, e.action, e.from, e.to, e.at, detail)
}

/// The cell of DESIGN.md's transition table.
enum Cell {
    Move(Status),
    Unchanged,
    Invalid,
}

/// DESIGN.md's table, row by row, for the per-callback actions.
fn table(from: Status, act: &Act) -> Cell {
    use Status::*;
    match (from, act) {
        (Scheduled, Act::Cancel(_)) => Cell::Move(Cancelled),
        (Cancelled, Act::Cancel(_)) => Cell::Unchanged,
        (Scheduled, Act::Dispatch) => Cell::Move(Dispatching),
        (Dispatching, Act::Complete(_)) => Cell::Move(Dispatched),
        (Dispatching, Act::Fail(_)) => Cell::Move(Failed),
        (Scheduled, Act::Reschedule(_)) => Cell::Move(Scheduled),
        _ => Cell::Invalid,
    }
}

/// Drops what is below a microsecond, as the store keeps time.
fn micros(t: Timestamp) -> Timestamp {
    chrono::DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap()
}

fn minutes(m: i64) -> chrono::Duration {
    chrono::Duration::minutes(m)
}

#[derive(Debug, Clone, Default)]
struct Model {
    /// The clock as set, below microseconds included.
    clock: Timestamp,
    callbacks: Vec<MCallback>,
    next_seq: usize,
    /// Every valid create request so far, for replays.
    requests: Vec<(usize, Payload, Option<u8>)>,
}

impl Model {
    fn now(&self) -> Timestamp {
        micros(self.clock)
    }

    /// The callback a target names, the organization to ask through, and
    /// the model's callback when the store must find it.
    fn resolve(&self, target: &Target) -> (usize, String, Option<usize>) {
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
    fn create(&mut self, org: usize, p: &Payload, key: Option<u8>, new_id: Option<&str>) -> Answer {
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
            pipeline_config: JsonObject::new(),
            metadata: p.metadata(),
            failure_cause: None,
            attempted_at: None,
            dispatched_at: None,
            cancelled_at: None,
            created_at: now,
            updated_at: now,
        };
        let created = (cb.id.clone(), Create, None, Scheduled, now, None);
        let (seq, payload, events) = (self.next_seq, p.clone(), vec![created]);
        self.next_seq += 1;
        let pruned = false;
        self.callbacks.push(MCallback {
            cb,
            org,
            seq,
            payload,
            key,
            events,
            pruned,
        });
        Ok(self.callbacks.last().unwrap().cb.clone())
    }

    fn transition(&mut self, found: Option<usize>, act: &Act) -> Answer {
        let now = self.now();
        let reschedule_to = |m: i64| micros(self.clock + minutes(m));
        let c = &mut self.callbacks[found.ok_or(NOT_FOUND)?];
        let to = match table(c.cb.status, act) {
            Cell::Invalid => return Err(Failure::InvalidFrom(c.cb.status)),
            Cell::Unchanged => return Ok(c.cb.clone()),
            Cell::Move(to) => to,
        };
        let (action, detail) = match act {
            Act::Cancel(reason) => {
                c.cb.cancelled_at = Some(now);
                (EventAction::Cancel, reason.map(str::to_owned))
            }
            Act::Dispatch => {
                c.cb.attempted_at = Some(now);
                (EventAction::Dispatch, None)
            }
            Act::Complete(session) => {
                c.cb.created_session_id = Some(session.to_string());
                c.cb.dispatched_at = Some(now);
                (EventAction::CompleteDispatch, None)
            }
            Act::Fail(cause) => {
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
    fn claim_due(&mut self, now: Timestamp, limit: u32) -> Vec<Callback> {
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

    /// Dispatching callbacks whose attempt started before the horizon fail.
    fn recover_stale(&mut self, now: Timestamp, horizon: Timestamp) -> Vec<Callback> {
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
    fn prune(&mut self, before: Timestamp) -> u64 {
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

    fn list(&self, org: usize, status: Option<Status>, order: Order) -> Vec<Callback> {
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

type Answer = Result<Callback, Failure>;

/// Every page of a list, following the cursors.
fn list_all(org: &Organization, mut query: ListQuery) -> Result<Vec<Callback>, Failure> {
    let mut all = Vec::new();
    for _ in 0..1000 {
        let page = org.list(&query).map_err(failure)?;
        all.extend(page.callbacks);
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return Ok(all),
        }
    }
    panic!("a list never ended: its cursors go round");
}

fn sorted_by_id(mut callbacks: Vec<Callback>) -> Vec<Callback> {
    callbacks.sort_by(|a, b| a.id.cmp(&b.id));
    callbacks
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let (store, clock): (Store, _) = common::store();
    let orgs = ORGS.map(|o| store.organization(o).unwrap());
    let mut model = Model {
        clock: common::t0(),
        ..Model::default()
    };
    for (step, op) in ops.iter().enumerate() {
        let here = format!("step {step}: {op:?}");
        match op {
            Op::Create(..) | Op::Replay(..) => {
                let (org, payload, key) = match op {
                    Op::Create(org, payload, key) => (*org, payload.clone(), *key),
                    Op::Replay(_, _) if model.requests.is_empty() => continue,
                    Op::Replay(which, tweak) => {
                        let (org, mut payload, key) =
                            model.requests[which.index(model.requests.len())].clone();
                        payload.minutes += i64::from(*tweak);
                        (org, payload, key)
                    }
                    _ => unreachable!(),
                };
                model.requests.push((org, payload.clone(), key));
                let got = orgs[org].create(payload.new_callback(key)).map_err(failure);
                let id = got.as_ref().ok().map(|c| c.id.clone());
                let want = model.create(org, &payload, key, id.as_deref());
                prop_assert_eq!(got, want, "{}", here);
            }
            Op::CreateMany(org, items, invalid) => {
                let bad = invalid.as_ref().map(|i| i.index(items.len()));
                let mut batch: Vec<NewCallback> =
                    items.iter().map(|(p, k)| p.new_callback(*k)).collect();
                if let Some(bad) = bad {
                    batch[bad].to_number = "12015551234".into(); // no '+': not E.164
                }
                let got = orgs[*org].create_many(batch).map_err(failure);
                let want = if bad.is_some() {
                    Err(Failure::Code(ErrorCode::ValidationError))
                } else {
                    let requests = items.iter().map(|(p, k)| (*org, p.clone(), *k));
                    model.requests.extend(requests);
                    let ids: Vec<String> = got.iter().flatten().map(|c| c.id.clone()).collect();
                    // All or nothing: the model keeps the batch only if every item succeeds.
                    let mut trial = model.clone();
                    let want = (items.iter().enumerate())
                        .map(|(i, (p, k))| {
                            trial.create(*org, p, *k, ids.get(i).map(String::as_str))
                        })
                        .collect::<Result<Vec<_>, _>>();
                    if want.is_ok() {
                        model = trial;
                    }
                    want
                };
                prop_assert_eq!(got, want, "{}", here);
            }
            Op::Get(target) => {
                let (org, id, found) = model.resolve(target);
                let got = orgs[org].get(&id).map_err(failure);
                let want = found.map(|k| model.callbacks[k].cb.clone());
                prop_assert_eq!(got, want.ok_or(NOT_FOUND), "{}", here);
            }
            Op::Transition(target, act) => {
                let (org, id, found) = model.resolve(target);
                let org = &orgs[org];
                let got = match act {
                    Act::Cancel(reason) => org.cancel(&id, *reason),
                    Act::Dispatch => org.dispatch(&id),
                    Act::Complete(session) => org.complete_dispatch(&id, session, None),
                    Act::Fail(cause) => org.fail_dispatch(&id, cause, None),
                    Act::Reschedule(m) => org.reschedule(&id, model.clock + minutes(*m)),
                };
                let want = model.transition(found, act);
                prop_assert_eq!(got.map_err(failure), want, "{}", here);
            }
            Op::ClaimDue(offset, limit) => {
                let at = model.clock + minutes(*offset);
                let got = store.claim_due(at, *limit).map_err(failure);
                prop_assert_eq!(got, Ok(model.claim_due(micros(at), *limit)), "{}", here);
            }
            Op::RecoverStale(offset, older_than) => {
                let at = model.clock + minutes(*offset);
                let older = Duration::from_secs(older_than * 60);
                let got = store.recover_stale(at, older).map_err(failure);
                let horizon = micros(at) - minutes(*older_than as i64);
                let want = sorted_by_id(model.recover_stale(micros(at), horizon));
                prop_assert_eq!(got.map(sorted_by_id), Ok(want), "{}", here);
            }
            Op::Prune(offset) => {
                let before = model.clock + minutes(*offset);
                let got = store.prune(before).map_err(failure);
                prop_assert_eq!(got, Ok(model.prune(micros(before))), "{}", here);
            }
            Op::List(org, status, order, limit) => {
                let (status, order, limit) = (*status, *order, *limit);
                let mut query = ListQuery::default();
                (query.status, query.order, query.limit) = (status, order, limit);
                let got = list_all(&orgs[*org], query);
                prop_assert_eq!(got, Ok(model.list(*org, status, order)), "{}", here);
            }
            Op::History(target) => {
                let (org, id, found) = model.resolve(target);
                let got = orgs[org].history(&id).map_err(failure);
                let got = got.map(|events| events.into_iter().map(event_view).collect());
                let want = found.map(|k| model.callbacks[k].events.clone());
                prop_assert_eq!(got, want.ok_or(NOT_FOUND), "{}", here);
            }
            Op::Advance(by) => {
                clock.advance(*by);
                model.clock += *by;
            }
        }
        prop_assert_eq!(store.now(), model.now(), "{}: clocks apart", here);
        check_all(&model, &orgs, &here)?;
    }
    Ok(())
}

/// The model's view of every callback it knows, and of its history, equals
/// the store's (NOT_FOUND once pruned); ids are unique and look like `cb_…`.
fn check_all(model: &Model, orgs: &[Organization], here: &str) -> Result<(), TestCaseError> {
    let ids: HashSet<&str> = model.callbacks.iter().map(|c| c.cb.id.as_str()).collect();
    prop_assert_eq!(ids.len(), model.callbacks.len(), "{}: ids repeat", here);
    for c in &model.callbacks {
        prop_assert!(c.cb.id.starts_with("cb_"), "{}: bad id {}", here, c.cb.id);
        let got = orgs[c.org].get(&c.cb.id).map_err(failure);
        let want = (!c.pruned).then(|| c.cb.clone()).ok_or(NOT_FOUND);
        prop_assert_eq!(got, want, "{}: callback {} (seq {})", here, c.cb.id, c.seq);
        let history = orgs[c.org].history(&c.cb.id).map_err(failure);
        let history = history.map(|events| events.into_iter().map(event_view).collect());
        let want = (!c.pruned).then(|| c.events.clone()).ok_or(NOT_FOUND);
        prop_assert_eq!(history, want, "{}: history of {}", here, c.cb.id);
    }
    Ok(())
}

/// 64 cases unless `PROPTEST_CASES` says otherwise. `ProptestConfig::default()`
/// reads that variable but falls back to 256, and setting `cases` here would
/// override the variable, so it is only set when the variable is absent.
/// Failures are not persisted to a file: the shrunk sequence is printed.
fn config() -> ProptestConfig {
    let defaults = ProptestConfig::default();
    let from_env = std::env::var_os("PROPTEST_CASES").is_some();
    let cases = if from_env { defaults.cases } else { 64 };
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..defaults
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn store_agrees_with_the_reference_model_on_random_operation_sequences(ops in vec(op(), 1..=40)) {
        run(ops)?;
    }
}
