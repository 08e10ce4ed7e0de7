//! Replays the language-neutral conformance vectors of `tests/vectors/*.json`
//! (format: `tests/vectors/README.md`) on a fresh in-memory store per case.
//! Every case runs; the test then fails listing each failing case by name.

#[path = "vectors/calling_policy.rs"]
mod calling_policy;
mod common;
#[path = "vectors/compare.rs"]
mod compare;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use callback_store::input;
use callback_store::{
    Callback, Claim, Error, ListQuery, ManualClock, NewCallback, Organization, Store, StoreOptions,
    Timestamp,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Map, Value};

use compare::{at_path, difference, expand, expected_error, is_name, show};

/// Fewer cases than this means a file went missing.
const MIN_CASES: usize = 45;

/// The outcome of one operation: its result as API JSON, or the store's error.
type Outcome = Result<Value, Error>;

/// Err: the vector itself is broken (unknown op, missing argument, ...).
type VectorResult<T> = Result<T, String>;

/// `tests/vectors`, or the folder named by `CALLBACK_STORE_VECTORS` (to try
/// a vector being written).
fn vectors_dir() -> PathBuf {
    match std::env::var_os("CALLBACK_STORE_VECTORS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors"),
    }
}

#[test]
fn conformance_vectors() {
    let dir = vectors_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();

    let mut names = HashSet::new();
    let mut failures = Vec::new();
    let mut per_file = Vec::new();
    let mut per_file_counts = 0;
    for file in &files {
        let file_name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(file).unwrap();
        let cases: Vec<Value> = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{file_name} is not a JSON array of cases: {e}"));
        per_file.push(format!("{file_name}: {}", cases.len()));
        per_file_counts += cases.len();
        for (index, case) in cases.iter().enumerate() {
            let name = case["name"].as_str().unwrap_or("<unnamed>").to_owned();
            let result = if names.insert(name.clone()) {
                run_case(case)
            } else {
                Err("duplicate case name".to_owned())
            };
            if let Err(message) = result {
                failures.push(format!("[{file_name} #{index}] {name}\n{message}"));
            }
        }
    }
    let total = per_file_counts;
    eprintln!(
        "conformance vectors: {total} cases ({})",
        per_file.join(", ")
    );
    let mut problems = Vec::new();
    if !failures.is_empty() {
        problems.push(format!(
            "{} of {total} vector cases failed:\n\n{}",
            failures.len(),
            failures.join("\n\n")
        ));
    }
    if total < MIN_CASES {
        problems.push(format!(
            "only {total} vector cases in {} (at least {MIN_CASES} expected): was a file lost?",
            dir.display()
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

fn run_case(case: &Value) -> VectorResult<()> {
    let case = object(case, "case")?;
    check_keys(case, &["name", "description", "clock", "steps"], "case")?;
    let start = timestamp(case.get("clock").ok_or("case has no clock")?)?;
    let clock = ManualClock::new(start);
    let store = common::open_store(StoreOptions {
        clock: Arc::new(clock.clone()),
        ..StoreOptions::default()
    })
    .map_err(|e| format!("cannot open a store: {e}"))?;
    let steps = case
        .get("steps")
        .and_then(Value::as_array)
        .ok_or("case has no steps array")?;
    let mut saved = HashMap::new();
    let mut claims = Claims::default();
    for (i, step) in steps.iter().enumerate() {
        let op = step["op"].as_str().unwrap_or("?");
        run_step(&store, &clock, step, &mut saved, &mut claims)
            .map_err(|e| format!("  step {i} ({op}): {e}"))?;
    }
    Ok(())
}

/// The claims a case was handed, by token, and how many times its dialers
/// were called (vectors README, "Claims").
#[derive(Default)]
struct Claims {
    by_token: HashMap<String, Claim>,
    dials: std::cell::Cell<u64>,
}

impl Claims {
    fn keep(&mut self, claims: &[Claim]) {
        for claim in claims {
            self.by_token
                .insert(claim.token().to_owned(), claim.clone());
        }
    }

    /// A dialer that does what `dialer` says, counting each call.
    fn dialer<'a>(
        &'a self,
        dialer: &Value,
    ) -> VectorResult<impl Fn(&Callback) -> Result<String, String> + 'a> {
        let dialer = object(dialer, "dialer")?;
        check_keys(dialer, &["session", "error"], "dialer")?;
        let answer = match (opt_string(dialer, "session")?, opt_string(dialer, "error")?) {
            (Some(session), None) => Ok(session),
            (None, Some(message)) => Err(message),
            _ => return Err("a dialer has exactly one of session and error".into()),
        };
        Ok(move |_: &Callback| {
            self.dials.set(self.dials.get() + 1);
            answer.clone()
        })
    }
}

fn run_step(
    store: &Store,
    clock: &ManualClock,
    step: &Value,
    saved: &mut HashMap<String, String>,
    claims: &mut Claims,
) -> VectorResult<()> {
    let step = object(step, "step")?;
    check_keys(step, &["op", "org", "args", "expect", "save"], "step")?;
    let op = step.get("op").and_then(Value::as_str).ok_or("no op")?;
    let org = match step.get("org") {
        Some(org) => Some(
            expand(org, saved)?
                .as_str()
                .ok_or("org must be a string")?
                .to_owned(),
        ),
        None => None,
    };
    let args = expand(step.get("args").unwrap_or(&json!({})), saved)?;
    let args = object(&args, "args")?;
    let expect = step.get("expect").map(|e| expand(e, saved)).transpose()?;
    if op.ends_with("_clock") && (expect.is_some() || step.contains_key("save")) {
        return Err("a clock step has no expect or save".into());
    }

    let outcome = match op {
        "dispatch" | "claim_due" | "claim_by_token" | "place_call" | "dials" => {
            claim_op(store, claims, op, org.as_deref(), args)?
        }
        _ => run_op(store, clock, op, org.as_deref(), args)?,
    };
    match (&expect, &outcome) {
        (None, Ok(_)) => {}
        (Some(exp), _) if expected_error(exp).is_some() => {
            let (code, field) = expected_error(exp).unwrap();
            match &outcome {
                // `field`: the message names it first, as `field: rule`.
                Err(e) if e.code().as_str() == code => {
                    if let Some(field) = field {
                        if !e.to_string().starts_with(&format!("{field}: ")) {
                            return Err(format!("expected {code} naming {field}, got: {e}"));
                        }
                    }
                }
                Err(e) => return Err(format!("expected error {code}, got {}: {e}", e.code())),
                Ok(v) => return Err(format!("expected error {code}, got success:\n{}", show(v))),
            }
        }
        (_, Err(e)) => return Err(format!("expected success, got {}: {e}", e.code())),
        (Some(exp), Ok(actual)) => {
            if let Some(diff) = difference(exp, actual, "$") {
                return Err(format!(
                    "{diff}\n  expected:\n{}\n  actual:\n{}",
                    show(exp),
                    show(actual)
                ));
            }
        }
    }

    if let Some(save) = step.get("save") {
        let result = outcome.as_ref().map_err(|_| "save on a step that fails")?;
        for (name, path) in object(save, "save")? {
            let path = path.as_str().ok_or("a save path is a string")?;
            if !is_name(name) {
                return Err(format!("{name:?} is not a valid saved name"));
            }
            let value = at_path(result, path)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("save {name}: no string at path {path:?}"))?;
            saved.insert(name.clone(), value.to_owned());
        }
    }
    Ok(())
}

fn run_op(
    store: &Store,
    clock: &ManualClock,
    op: &str,
    org: Option<&str>,
    a: &Map<String, Value>,
) -> VectorResult<Outcome> {
    let store_wide = matches!(
        op,
        "set_clock"
            | "advance_clock"
            | "recover_stale"
            | "prune"
            | "create_api_key"
            | "revoke_api_key"
            | "authenticate"
            | "expire_overdue"
    );
    if store_wide && org.is_some() {
        return Err(format!("{op} is store-wide: it takes no org"));
    }
    let outcome = match op {
        "set_clock" => {
            clock.set(ts(a, "now")?);
            Ok(Value::Null)
        }
        "advance_clock" => {
            clock
                .advance(chrono::Duration::seconds(int(a, "seconds")? as i64))
                .map_err(|e| format!("advance_clock: {e}"))?;
            Ok(Value::Null)
        }
        "recover_stale" => store
            .recover_stale(
                ts(a, "now")?,
                Duration::from_secs(int(a, "older_than_seconds")?),
            )
            .map(to_json),
        "prune" => store.prune(ts(a, "before")?).map(to_json),
        "expire_overdue" => store
            .expire_overdue(ts(a, "now")?, u32_arg(a, "limit")?)
            .map(to_json),
        "create_api_key" => store
            .create_api_key(&string(a, "organization_id")?, &string(a, "label")?)
            .map(to_json),
        "revoke_api_key" => store.revoke_api_key(&string(a, "key_id")?).map(to_json),
        "authenticate" => store
            .authenticate(&string(a, "authorization")?)
            .map(|o| json!({ "organization_id": o.id() })),
        _ => {
            let org = org.ok_or_else(|| format!("{op} needs an org"))?;
            let call = organization_op(op, a)?;
            store.organization(org).and_then(|o| call(&o))
        }
    };
    Ok(outcome)
}

/// The ops that hand out claims or use them; the claims are kept in
/// `claims`, so that `place_call` can pass the very object it was handed.
fn claim_op(
    store: &Store,
    claims: &mut Claims,
    op: &str,
    org: Option<&str>,
    a: &Map<String, Value>,
) -> VectorResult<Outcome> {
    if (op == "dispatch") != org.is_some() {
        return Err(format!("{op}: only dispatch takes an org"));
    }
    let handed: Result<Vec<Claim>, Error> = match op {
        "dispatch" => {
            let id = string(a, "id")?;
            let org = org.unwrap_or_default();
            let claim = store.organization(org).and_then(|o| o.dispatch(&id));
            return Ok(claim.map(|c| {
                claims.keep(std::slice::from_ref(&c));
                to_json(c)
            }));
        }
        "claim_by_token" => store
            .claim_by_token(&string(a, "id")?, &string(a, "token")?)
            .map(|c| vec![c]),
        "claim_due" => store.claim_due(ts(a, "now")?, u32_arg(a, "limit")?),
        "place_call" => {
            let token = string(a, "token")?;
            let claim = claims
                .by_token
                .get(&token)
                .ok_or_else(|| format!("no claim of this case has the token {token:?}"))?;
            let dialer = claims.dialer(a.get("dialer").ok_or("no dialer")?)?;
            return Ok(store.place_call(&dialer, claim).map(to_json));
        }
        "dials" => return Ok(Ok(json!(claims.dials.get()))),
        other => return Err(format!("unknown claim op {other:?}")),
    };
    Ok(handed.map(|handed| {
        claims.keep(&handed);
        if op == "claim_by_token" {
            to_json(&handed[0])
        } else {
            to_json(handed)
        }
    }))
}

type OrgCall = Box<dyn FnOnce(&Organization) -> Outcome>;

/// Parses the arguments of an organization op, returning the call to make.
fn organization_op(op: &str, a: &Map<String, Value>) -> VectorResult<OrgCall> {
    let id = || string(a, "id");
    Ok(match op {
        "create" => {
            let new = new_callback(a.get("callback").ok_or("no callback")?)?;
            Box::new(move |o| new.and_then(|new| o.create(new)).map(to_json))
        }
        "create_many" => {
            let items = a
                .get("callbacks")
                .and_then(Value::as_array)
                .ok_or("callbacks must be an array")?
                .iter()
                .map(new_callback)
                .collect::<VectorResult<Vec<_>>>()?;
            let batch: Result<Vec<NewCallback>, Error> = (items.into_iter().enumerate())
                .map(|(i, item)| item.map_err(|e| e.within_item("callbacks", i)))
                .collect();
            Box::new(move |o| batch.and_then(|batch| o.create_many(batch)).map(to_json))
        }
        "get" => {
            let id = id()?;
            Box::new(move |o| o.get(&id).map(to_json))
        }
        "list" => {
            let query = list_query(a.get("query").ok_or("no query")?)?;
            Box::new(move |o| query.and_then(|query| o.list(&query)).map(to_json))
        }
        "cancel" => {
            let (id, reason) = (id()?, opt_string(a, "reason")?);
            Box::new(move |o| o.cancel(&id, reason.as_deref()).map(to_json))
        }
        "complete_dispatch" => {
            let (id, session) = (id()?, string(a, "created_session_id")?);
            let token = opt_string(a, "claim_token")?;
            Box::new(move |o| {
                o.complete_dispatch(&id, &session, token.as_deref())
                    .map(to_json)
            })
        }
        "fail_dispatch" => {
            let (id, cause) = (id()?, string(a, "failure_cause")?);
            let token = opt_string(a, "claim_token")?;
            Box::new(move |o| o.fail_dispatch(&id, &cause, token.as_deref()).map(to_json))
        }
        "reschedule" => {
            let (id, at) = (id()?, ts(a, "scheduled_at")?);
            Box::new(move |o| o.reschedule(&id, at).map(to_json))
        }
        "history" => {
            let id = id()?;
            Box::new(move |o| o.history(&id).map(to_json))
        }
        other => calling_policy::organization_op(other, a)?
            .ok_or_else(|| format!("unknown op {other:?}"))?,
    })
}

fn to_json<T: Serialize>(value: T) -> Value {
    serde_json::to_value(value).expect("results serialize")
}

/// NewCallback from its JSON, by the core's reader: a key the reader does
/// not know is a broken vector; a value it refuses is the step's outcome.
fn new_callback(value: &Value) -> VectorResult<Result<NewCallback, Error>> {
    let map = object(value, "callback")?;
    check_keys(map, &input::NEW_CALLBACK_FIELDS, "callback")?;
    Ok(input::new_callback(map.clone()))
}

fn list_query(value: &Value) -> VectorResult<Result<ListQuery, Error>> {
    let map = object(value, "query")?;
    check_keys(map, &input::LIST_QUERY_FIELDS, "query")?;
    Ok(input::list_query(map.clone()))
}

// ---- argument accessors ---------------------------------------------------

fn object<'v>(value: &'v Value, what: &str) -> VectorResult<&'v Map<String, Value>> {
    value
        .as_object()
        .ok_or_else(|| format!("{what} must be an object"))
}

fn check_keys(map: &Map<String, Value>, allowed: &[&str], what: &str) -> VectorResult<()> {
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!("unknown {what} key {k:?}")),
        None => Ok(()),
    }
}

/// An RFC 3339 timestamp, without the store's range check.
fn timestamp(value: &Value) -> VectorResult<Timestamp> {
    let text = value.as_str().ok_or("a timestamp is a string")?;
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("bad timestamp {text:?}: {e}"))
}

fn ts(a: &Map<String, Value>, key: &str) -> VectorResult<Timestamp> {
    timestamp(
        a.get(key)
            .ok_or_else(|| format!("missing argument {key}"))?,
    )
}

fn string(a: &Map<String, Value>, key: &str) -> VectorResult<String> {
    opt_string(a, key)?.ok_or_else(|| format!("missing argument {key}"))
}

fn opt_string(a: &Map<String, Value>, key: &str) -> VectorResult<Option<String>> {
    match a.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("{key} must be a string, got {other}")),
    }
}

fn int(a: &Map<String, Value>, key: &str) -> VectorResult<u64> {
    a.get(key)
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("{key} must be a non-negative integer"))
}

fn u32_arg(a: &Map<String, Value>, key: &str) -> VectorResult<u32> {
    u32::try_from(int(a, key)?).map_err(|_| format!("{key} does not fit a u32"))
}
