//! Bad input, the Rust part: every case of `reliability/catalogue.json` whose
//! layers include `rust` is replayed through the library on a fresh copy of
//! the fixture store (on PostgreSQL, with CALLBACK_STORE_TEST_BACKEND=postgres:
//! a fresh schema holding the fixture). Each refused input must get its documented code (and a
//! VALIDATION_ERROR must name its field), leave every row as it was and the
//! file sound; each input the catalogue marks as acceptable must succeed.
//!
//! The catalogue is data so that the Python and HTTP runners replay the same
//! cases; see its `fields` and `placeholders` for the format.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Duration;

use callback_store::input;
use callback_store::{
    parse_timestamp, Error, JsonObject, ListQuery, NewCallback, Store, Timestamp,
};
use callback_store_reliability::audit::{self, assert_none};
use callback_store_reliability::write_figures;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

const CATALOGUE: &str = include_str!("../catalogue.json");

/// The ids a case may refer to, the same in every copy of the fixture.
struct Fixture {
    dir: tempfile::TempDir,
    /// Where the fixture is: the template file, or a PostgreSQL URL.
    location: String,
    organization_id: String,
    callback_id: String,
    other_callback_id: String,
    /// The fixture organization's last callback, which the runner
    /// dispatches for a case naming `$dispatching_callback_id`.
    last_callback_id: String,
}

const DISPATCHING: &str = "$dispatching_callback_id";

fn fixture(doc: &Value) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("fixture.db");
    fixture_at(doc, dir, template.display().to_string())
}

/// The fixture's callbacks, created in the store at `location`.
fn fixture_at(doc: &Value, dir: tempfile::TempDir, location: String) -> Fixture {
    let spec = &doc["fixture"];
    let store = Store::open(&location).unwrap();
    let mut ids = Vec::new();
    let mut last = String::new();
    for (org_key, list_key) in [
        ("organization_id", "callbacks"),
        ("other_organization_id", "other_callbacks"),
    ] {
        let org = store.organization(spec[org_key].as_str().unwrap()).unwrap();
        let batch = spec[list_key]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| new_callback(c).expect("the fixture is valid"))
            .collect();
        let created = org.create_many(batch).unwrap();
        ids.push(created[0].id.clone());
        if last.is_empty() {
            last = created.last().unwrap().id.clone();
        }
    }
    drop(store); // the last connection checkpoints: the file holds everything
    Fixture {
        organization_id: spec["organization_id"].as_str().unwrap().to_owned(),
        callback_id: ids[0].clone(),
        other_callback_id: ids[1].clone(),
        last_callback_id: last,
        dir,
        location,
    }
}

// ------------------------------------------------- from JSON to the Rust API

/// A timestamp as the bindings and the CLI take one: any RFC 3339 text
/// chrono reads goes to the store as it is (so the store's own range checks
/// are what refuses it); other text is refused by `parse_timestamp`.
fn timestamp(field: &str, value: &Value) -> Result<Timestamp, Error> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{field}: not a string"));
    match DateTime::parse_from_rfc3339(text) {
        Ok(t) => Ok(t.with_timezone(&Utc)),
        Err(_) => parse_timestamp(field, text),
    }
}

fn text(input: &Value, key: &str) -> Option<String> {
    match &input[key] {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => panic!("{key}: {other} is not text"),
    }
}

fn required(input: &Value, key: &str) -> String {
    text(input, key).unwrap_or_else(|| panic!("{key} is required"))
}

/// A create's body or a list's parameters as a JSON object, for the core's
/// reader (`callback_store::input`), as the server and the command read them.
fn json_object(input: &Value) -> JsonObject {
    input
        .as_object()
        .cloned()
        .unwrap_or_else(|| panic!("{input} is not a JSON object"))
}

fn new_callback(body: &Value) -> Result<NewCallback, Error> {
    input::new_callback(json_object(body))
}

/// The list's parameters; `organization_id` picks the organization.
fn list_query(query: &Value) -> Result<ListQuery, Error> {
    let mut map = json_object(query);
    map.remove("organization_id");
    input::list_query(map)
}

// ------------------------------------------------------------ placeholders

fn expand(value: &Value, fx: &Fixture, store: &Store) -> Value {
    match value {
        Value::String(s) if s == "$callback_id" => json!(fx.callback_id),
        Value::String(s) if s == "$other_organization_callback_id" => json!(fx.other_callback_id),
        Value::String(s) if s == DISPATCHING => json!(fx.last_callback_id),
        Value::Object(map) if map.contains_key("$repeat") => {
            let unit = map["$repeat"].as_str().unwrap();
            json!(unit.repeat(map["times"].as_u64().unwrap() as usize))
        }
        Value::Object(map) if map.contains_key("$nest") => {
            let mut v = json!(0);
            for _ in 0..map["$nest"].as_u64().unwrap() {
                v = Value::Array(vec![v]);
            }
            v
        }
        Value::Object(map) if map.contains_key("$cursor") => cursor(&map["$cursor"], fx, store),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), expand(v, fx, store)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| expand(v, fx, store)).collect()),
        other => other.clone(),
    }
}

/// The next_cursor of a first page of one callback, then tampered with.
fn cursor(spec: &Value, fx: &Fixture, store: &Store) -> Value {
    let org_id = spec["organization_id"]
        .as_str()
        .unwrap_or(&fx.organization_id);
    let query = ListQuery {
        limit: 1,
        ..list_query(&spec["query"]).unwrap()
    };
    let page = store.organization(org_id).unwrap().list(&query).unwrap();
    let mut text = page.next_cursor.expect("the fixture has a second page");
    match spec["tamper"].as_str().unwrap() {
        "none" => {}
        "flip" => {
            let mid = text.len() / 2;
            let replacement = if &text[mid..=mid] == "A" { "B" } else { "A" };
            text.replace_range(mid..=mid, replacement);
        }
        "truncate" => text.truncate(text.len() - 4),
        "append" => text.push_str("AA"),
        other => panic!("unknown tamper {other}"),
    }
    json!(text)
}

// --------------------------------------------------------------- the runner

/// What an accepted input gave back, to check against the case.
enum Done {
    Rows(usize),
    Created(Value),
    Other,
}

fn execute(store: &Store, fx: &Fixture, op: &str, input: &Value) -> Result<Done, Error> {
    let org_id = text(input, "organization_id").unwrap_or_else(|| fx.organization_id.clone());
    let org = || store.organization(&org_id);
    let id = || required(input, "id");
    Ok(match op {
        "organization" => {
            store.organization(&org_id)?;
            Done::Other
        }
        "create" => {
            Done::Created(serde_json::to_value(org()?.create(new_callback(input)?)?).unwrap())
        }
        "create_many" => {
            let items = input["callbacks"].as_array().unwrap();
            let batch = items
                .iter()
                .enumerate()
                .map(|(i, c)| new_callback(c).map_err(|e| e.within_item("callbacks", i)))
                .collect::<Result<Vec<_>, _>>()?;
            org()?.create_many(batch)?;
            Done::Other
        }
        "list" => Done::Rows(org()?.list(&list_query(input)?)?.callbacks.len()),
        "get" => {
            org()?.get(&id())?;
            Done::Other
        }
        "history" => {
            org()?.history(&id())?;
            Done::Other
        }
        "cancel" => {
            org()?.cancel(&id(), text(input, "reason").as_deref())?;
            Done::Other
        }
        "dispatch" => {
            org()?.dispatch(&id())?;
            Done::Other
        }
        "complete_dispatch" => {
            let token = text(input, "claim_token");
            let session = required(input, "created_session_id");
            org()?.complete_dispatch(&id(), &session, token.as_deref())?;
            Done::Other
        }
        "fail_dispatch" => {
            let token = text(input, "claim_token");
            let cause = required(input, "failure_cause");
            org()?.fail_dispatch(&id(), &cause, token.as_deref())?;
            Done::Other
        }
        "claim_by_token" => {
            store.claim_by_token(&id(), &required(input, "claim_token"))?;
            Done::Other
        }
        "reschedule" => {
            let at = timestamp("scheduled_at", &input["scheduled_at"])?;
            org()?.reschedule(&id(), at)?;
            Done::Other
        }
        "claim_due" => {
            let now = timestamp("now", &input["now"])?;
            let limit = u32::try_from(input["limit"].as_u64().unwrap()).unwrap();
            Done::Rows(store.claim_due(now, limit)?.len())
        }
        "recover_stale" => {
            let now = timestamp("now", &input["now"])?;
            let older = Duration::from_secs(input["older_than_seconds"].as_u64().unwrap());
            Done::Rows(store.recover_stale(now, older)?.len())
        }
        "prune" => Done::Rows(store.prune(timestamp("before", &input["before"])?)? as usize),
        "authenticate" => {
            store.authenticate(&required(input, "authorization"))?;
            Done::Other
        }
        "create_api_key" => {
            store.create_api_key(&org_id, &required(input, "label"))?;
            Done::Other
        }
        "revoke_api_key" => {
            store.revoke_api_key(&required(input, "key_id"))?;
            Done::Other
        }
        // The policies are read by the core's reader, as the server's PUT
        // bodies are.
        "set_calling_policy" => {
            org()?.set_calling_policy(&input::calling_policy(json_object(input))?)?;
            Done::Other
        }
        "set_agent_calling_policy" => {
            let policy = input::calling_policy(json_object(&input["policy"]))?;
            org()?.set_agent_calling_policy(&required(input, "agent_id"), &policy)?;
            Done::Other
        }
        "clear_agent_calling_policy" => {
            org()?.clear_agent_calling_policy(&required(input, "agent_id"))?;
            Done::Other
        }
        "retry" => {
            let mut body = json_object(input);
            body.remove("id");
            org()?.retry(&id(), input::call_outcome(body)?)?;
            Done::Other
        }
        other => panic!("unknown op {other}"),
    })
}

/// The tables a refused input must not add rows to.
const TABLES: [&str; 4] = [
    "callbacks",
    "callback_events",
    "api_keys",
    "calling_policies",
];

/// The row counts of every table, and each callback's status, times and
/// claim (token, spent): a refused input must change none of them. A spend
/// changes only the claim columns and the history, so both are in. (The
/// fixture has no calling policy: a refused one adds a row or changes
/// nothing.)
fn rows(store: &Store) -> (Vec<i64>, Vec<String>) {
    if let Some(rows) = store.with_postgres(|c| {
        let counts = TABLES
            .iter()
            .map(|t| {
                c.query_one(&format!("SELECT COUNT(*) FROM {t}"), &[])
                    .unwrap()
                    .get(0)
            })
            .collect();
        let states = c
            .query(
                "SELECT id || ' ' || status || ' ' || updated_at || ' ' || \
                 COALESCE(claim_token, '-') || ' ' || COALESCE(claim_spent_at::text, '-') \
                 FROM callbacks ORDER BY seq",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        (counts, states)
    }) {
        return rows.unwrap();
    }
    store.with_connection(|c| {
        let counts = TABLES
            .iter()
            .map(|t| {
                c.query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| r.get(0))
                    .unwrap()
            })
            .collect();
        let mut stmt = c
            .prepare(
                "SELECT id || ' ' || status || ' ' || updated_at || ' ' || \
                 IFNULL(claim_token, '-') || ' ' || IFNULL(claim_spent_at, '-') \
                 FROM callbacks ORDER BY seq",
            )
            .unwrap();
        let states = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        (counts, states)
    })
}

/// Whether a value mentions the string `needle` anywhere.
fn mentions(value: &Value, needle: &str) -> bool {
    match value {
        Value::String(s) => s == needle,
        Value::Object(map) => map.values().any(|v| mentions(v, needle)),
        Value::Array(items) => items.iter().any(|v| mentions(v, needle)),
        _ => false,
    }
}

/// Runs one case on a fresh copy of the fixture; returns what went wrong.
/// On PostgreSQL the copy is a fresh schema with the fixture created anew
/// (its ids are its own), on SQLite a copy of the template file.
fn run_case(case: &Value, doc: &Value, fx: &Fixture, n: usize) -> Option<String> {
    let name = case["name"].as_str().unwrap();
    let own;
    let (fx, path) = match testkit::postgres_server() {
        Some(server) => {
            own = fixture_at(
                doc,
                tempfile::tempdir().unwrap(),
                testkit::TestDb::postgres(&server).location(),
            );
            (&own, PathBuf::from(&own.location))
        }
        None => {
            let path: PathBuf = fx.dir.path().join(format!("case-{n}.db"));
            std::fs::copy(&fx.location, &path).unwrap();
            (fx, path)
        }
    };
    let store = Store::open(&path).unwrap();
    if mentions(&case["input"], DISPATCHING) {
        // A live claim whose token the case does not know: only a forged
        // token can be given for it.
        let org = store.organization(&fx.organization_id).unwrap();
        org.dispatch(&fx.last_callback_id).unwrap();
    }
    let before = rows(&store);
    let input = expand(&case["input"], fx, &store);
    let op = case["op"].as_str().unwrap();
    let answer = match catch_unwind(AssertUnwindSafe(|| execute(&store, fx, op, &input))) {
        Ok(answer) => answer,
        Err(_) => return Some(format!("{name}: panicked")),
    };
    let problem = match (case["expected_code"].as_str(), answer) {
        (Some(code), Ok(_)) => Some(format!("{name}: accepted, expected {code}")),
        (Some(code), Err(e)) if e.code().as_str() != code => {
            Some(format!("{name}: got {} ({e}), expected {code}", e.code()))
        }
        (Some(_), Err(e)) => match case["field"].as_str() {
            Some(field) if !e.to_string().starts_with(&format!("{field}: ")) => {
                Some(format!("{name}: the message {e:?} does not name {field}"))
            }
            _ if rows(&store) != before => Some(format!("{name}: refused, but rows changed")),
            _ => None,
        },
        (None, Err(e)) => Some(format!(
            "{name}: refused with {} ({e}), expected to succeed",
            e.code()
        )),
        (None, Ok(Done::Rows(n))) => match case["expected_rows"].as_u64() {
            Some(expected) if expected as usize != n => {
                Some(format!("{name}: {n} rows, expected {expected}"))
            }
            _ => None,
        },
        (None, Ok(Done::Created(created))) => input
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| *k != "idempotency_key")
            .find(|(k, v)| created[k.as_str()] != **v)
            .map(|(k, _)| format!("{name}: {k} was not stored as given")),
        (None, Ok(Done::Other)) => None,
    };
    // A damaged file is SQLite's failure; PostgreSQL keeps its own pages.
    let sound = match store.backend_name() {
        "sqlite" => store.with_connection(audit::integrity),
        _ => Ok(()),
    };
    drop(store);
    if path.exists() {
        std::fs::remove_file(&path).ok();
    }
    problem.or_else(|| sound.err().map(|e| format!("{name}: {e}")))
}

/// Whether a case applies to a layer: all of them when it names none.
fn applies(case: &Value, layer: &str) -> bool {
    match case.get("layers").and_then(Value::as_array) {
        None => true,
        Some(layers) => layers.iter().any(|l| l == layer),
    }
}

#[test]
fn every_bad_input_of_the_catalogue_gets_its_documented_code_and_changes_no_row() {
    let doc: Value = serde_json::from_str(CATALOGUE).expect("catalogue.json is JSON");
    let cases = doc["cases"].as_array().unwrap();
    let fx = fixture(&doc);
    let mut problems = Vec::new();
    let mut rejected = 0;
    let mut accepted = 0;
    let mut by_code = std::collections::BTreeMap::<String, u64>::new();
    let rust: Vec<&Value> = cases.iter().filter(|c| applies(c, "rust")).collect();
    for (n, case) in rust.iter().enumerate() {
        match run_case(case, &doc, &fx, n) {
            Some(problem) => problems.push(problem),
            None => match case["expected_code"].as_str() {
                Some(code) => {
                    rejected += 1;
                    *by_code.entry(code.to_owned()).or_insert(0) += 1;
                }
                None => accepted += 1,
            },
        }
    }
    let layer = |l: &str| cases.iter().filter(|c| applies(c, l)).count();
    write_figures(
        "bad_input",
        &json!({
            "catalogue_cases": cases.len(),
            "cases_for_rust": rust.len(),
            "cases_for_python": layer("python"),
            "cases_for_http": layer("http"),
            "rust_inputs_rejected": rejected,
            "rust_inputs_accepted": accepted,
            "rust_rejected_by_code": by_code,
            "rust_problems": problems.len(),
        }),
    );
    assert_none("catalogue cases failed", &problems);
    assert!(
        rust.len() >= 60,
        "the Rust catalogue has only {} cases",
        rust.len()
    );
}

#[test]
fn the_catalogue_is_well_formed_for_every_runner() {
    let doc: Value = serde_json::from_str(CATALOGUE).unwrap();
    let codes = callback_store::ErrorCode::ALL.map(|c| c.as_str());
    let mut names = std::collections::HashSet::new();
    let mut problems = Vec::new();
    for case in doc["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap_or("");
        if !names.insert(name.to_owned()) || name.is_empty() {
            problems.push(format!("duplicate or empty name {name:?}"));
        }
        match &case["expected_code"] {
            Value::Null => {}
            Value::String(code) if codes.contains(&code.as_str()) => {}
            other => problems.push(format!("{name}: unknown expected_code {other}")),
        }
        if case["field"].is_string() && case["expected_code"] != "VALIDATION_ERROR" {
            problems.push(format!("{name}: a field only goes with VALIDATION_ERROR"));
        }
        if !case["input"].is_object() || !case["op"].is_string() {
            problems.push(format!("{name}: op and input are required"));
        }
        // Only the Rust runner dispatches the fixture for a case yet.
        if mentions(&case["input"], DISPATCHING) && case["layers"] != json!(["rust"]) {
            problems.push(format!("{name}: {DISPATCHING} is for the rust layer only"));
        }
    }
    assert_none("malformed catalogue cases", &problems);
    assert!(Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("catalogue.json")
        .exists());
}
