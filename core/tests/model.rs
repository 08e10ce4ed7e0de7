//! Model-based test: random sequences of operations run against a real store
//! and against a small reference model of DESIGN.md written here, from the
//! contract (the model does not use `callback_store::transitions`).

mod common;

use std::cell::RefCell;
use std::collections::HashSet;
use std::time::Duration;

use callback_store::{
    Callback, Claim, Error, ErrorCode, JsonObject, ListQuery, NewCallback, Order, Organization,
    Status, Store,
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
    /// Completes with this created_session_id, giving this claim token.
    Complete(&'static str, Token),
    /// Fails with this failure_cause, giving this claim token.
    Fail(&'static str, Token),
    /// Minutes from the clock.
    Reschedule(i64),
}

/// The claim token a complete or fail gives.
#[derive(Debug, Clone, Copy)]
enum Token {
    None,
    /// The callback's own, when it has one (else a forged one).
    Own,
    Forged,
}

const FORGED_TOKEN: &str = "0123456789abcdef0123456789abcdef";

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
    /// `place_call` of one of the claims handed out so far; the dialer
    /// answers a session (true) or fails (false).
    PlaceCall(Index, bool),
    /// `claim_by_token` for one of the claims handed out so far, with its
    /// own token (false) or a forged one (true).
    ClaimByToken(Index, bool),
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
        3 => (prop::sample::select(vec!["sess_new_1", "sess_new_2"]), token())
            .prop_map(|(session, token)| Act::Complete(session, token)),
        3 => (prop::sample::select(vec!["no answer", "busy"]), token())
            .prop_map(|(cause, token)| Act::Fail(cause, token)),
        2 => offset().prop_map(Act::Reschedule),
    ]
}

fn token() -> impl Strategy<Value = Token> {
    prop_oneof![3 => Just(Token::None), 2 => Just(Token::Own), 1 => Just(Token::Forged)]
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
        4 => (any::<Index>(), any::<bool>()).prop_map(|(which, answers)| Op::PlaceCall(which, answers)),
        1 => (any::<Index>(), prop::bool::weighted(0.3)).prop_map(|(which, forged)| Op::ClaimByToken(which, forged)),
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
    /// INVALID_TRANSITION of a claim that cannot act (stale claim).
    Stale,
}

fn failure(err: Error) -> Failure {
    match err {
        Error::InvalidTransition { from, .. } => Failure::InvalidFrom(from),
        Error::StaleClaim { .. } => Failure::Stale,
        other => Failure::Code(other.code()),
    }
}

const NOT_FOUND: Failure = Failure::Code(ErrorCode::NotFound);

#[path = "model/reference.rs"]
mod reference;

use reference::{event_view, micros, minutes, Model, DIAL_FAILURE, PLACED_SESSION};

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
    // Every claim the store handed out, and every call a dialer placed.
    let mut claims: Vec<Claim> = Vec::new();
    let dialed: RefCell<Vec<String>> = RefCell::new(Vec::new());
    let mut model_dials = 0;
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
                let token = model.token_of(found, act);
                let got = match act {
                    Act::Cancel(reason) => org.cancel(&id, *reason),
                    Act::Dispatch => org.dispatch(&id).map(|claim| {
                        claims.push(claim.clone());
                        claim.into_callback()
                    }),
                    Act::Complete(session, _) => {
                        org.complete_dispatch(&id, session, token.as_deref())
                    }
                    Act::Fail(cause, _) => org.fail_dispatch(&id, cause, token.as_deref()),
                    Act::Reschedule(m) => org.reschedule(&id, model.clock + minutes(*m)),
                };
                let want = model.transition(found, act, token.as_deref());
                if let (Act::Dispatch, Ok(_)) = (act, &got) {
                    let claim = claims.last().unwrap();
                    model.handed_out(claim.id(), claim.token());
                }
                prop_assert_eq!(got.map_err(failure), want, "{}", here);
            }
            Op::ClaimDue(offset, limit) => {
                let at = model.clock + minutes(*offset);
                let got = store.claim_due(at, *limit).map_err(failure);
                let want = model.claim_due(micros(at), *limit);
                for claim in got.iter().flatten() {
                    model.handed_out(claim.id(), claim.token());
                    claims.push(claim.clone());
                }
                let got = got.map(|c| c.into_iter().map(Claim::into_callback).collect());
                prop_assert_eq!(got, Ok(want), "{}", here);
            }
            Op::PlaceCall(_, _) | Op::ClaimByToken(_, _) if claims.is_empty() => continue,
            Op::PlaceCall(which, answers) => {
                let claim = &claims[which.index(claims.len())];
                let dialer = |cb: &Callback| {
                    dialed.borrow_mut().push(cb.id.clone());
                    match answers {
                        true => Ok(PLACED_SESSION.to_owned()),
                        false => Err(DIAL_FAILURE.to_owned()),
                    }
                };
                let got = store.place_call(&dialer, claim).map_err(failure);
                let (want, dials) = model.place_call(claim.id(), claim.token(), *answers);
                model_dials += usize::from(dials);
                prop_assert_eq!(got, want, "{}", here);
            }
            Op::ClaimByToken(which, forged) => {
                let claim = &claims[which.index(claims.len())];
                let token = if *forged { FORGED_TOKEN } else { claim.token() };
                let got = store.claim_by_token(claim.id(), token).map_err(failure);
                let want = model.claim_by_token(claim.id(), token);
                if let Ok(again) = &got {
                    prop_assert_eq!(again.token(), token, "{}", here);
                }
                prop_assert_eq!(got.map(Claim::into_callback), want, "{}", here);
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
                clock.advance(*by).unwrap();
                model.clock += *by;
            }
        }
        prop_assert_eq!(store.now(), model.now(), "{}: clocks apart", here);
        let dialed = dialed.borrow();
        prop_assert_eq!(dialed.len(), model_dials, "{}: dials", here);
        let distinct: HashSet<&String> = dialed.iter().collect();
        prop_assert_eq!(
            distinct.len(),
            dialed.len(),
            "{}: a callback dialed twice",
            here
        );
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
