//! Bad input, the HTTP part: every case of `reliability/catalogue.json`
//! whose layers include `http` is sent to the real server (in-process) as
//! the request that carries it, over a plain socket (so that any bytes can
//! be sent: a NUL in a header, invalid UTF-8, a 64 KiB target). Each refused
//! input must get its documented status and JSON error body (a
//! VALIDATION_ERROR naming its field) and change no row of the database; each
//! input the catalogue marks as acceptable must succeed.
//!
//! How a case becomes a request: `create` is `POST /v1/callbacks` with the
//! input as its body; `list` is `GET /v1/callbacks` with the input as its
//! query string, its `organization_id` being the organization of the token;
//! `get`, `history`, `cancel`, `dispatch`, `complete_dispatch`,
//! `fail_dispatch`, `reschedule` and `retry` are the routes of the callback
//! `id` with the other arguments as the body; `set_calling_policy` is
//! `PUT /v1/calling-policy` with the input as its body,
//! `set_agent_calling_policy` `PUT /v1/agents/{agent_id}/calling-policy`
//! with the input's `policy`, `clear_agent_calling_policy` its `DELETE`;
//! `authenticate` is `GET /v1/callbacks`
//! with the input as the Authorization header, verbatim; `http` cases give
//! the request themselves (their paths are relative to `/v1`). The catalogue's
//! `http_status`, `http_code` and `http_field` say where HTTP answers
//! otherwise than the library, and its `http_note` why.
//!
//! All cases share one server and one database holding the fixture: refused
//! inputs change nothing (checked after each), and the accepted creations,
//! which add a callback, run last so that every list sees only the fixture.

mod common;

use std::collections::BTreeMap;

use callback_store::{parse_timestamp, NewCallback, Store};
use common::*;
use serde_json::{json, Value};

const CATALOGUE: &str = include_str!("../../reliability/catalogue.json");

/// Dropped in this order: the server stops before its folder goes.
struct Fixture {
    server: Server,
    store: Store,
    _db: TestDb,
    organization_id: String,
    callback_id: String,
    other_callback_id: String,
    /// The token of each organization a case acts for.
    tokens: BTreeMap<String, String>,
}

fn fixture(doc: &Value) -> Fixture {
    let spec = &doc["fixture"];
    let db = TestDb::new();
    let store = db.store();
    let mut ids = Vec::new();
    for (org_key, list_key) in [
        ("organization_id", "callbacks"),
        ("other_organization_id", "other_callbacks"),
    ] {
        let org = store.organization(spec[org_key].as_str().unwrap()).unwrap();
        let batch = spec[list_key]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| NewCallback {
                source_session_id: c["source_session_id"].as_str().map(str::to_owned),
                agent_id: c["agent_id"].as_str().map(str::to_owned),
                ..NewCallback::new(
                    c["to_number"].as_str().unwrap(),
                    parse_timestamp("scheduled_at", c["scheduled_at"].as_str().unwrap()).unwrap(),
                )
            })
            .collect();
        ids.push(org.create_many(batch).unwrap()[0].id.clone());
    }
    // A token for the fixture's organizations and every one a case names.
    let mut tokens = BTreeMap::new();
    let named = doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["input"]["organization_id"].as_str());
    for org in [
        spec["organization_id"].as_str().unwrap(),
        spec["other_organization_id"].as_str().unwrap(),
    ]
    .into_iter()
    .chain(named)
    {
        if let Ok(created) = store.create_api_key(org, "catalogue") {
            tokens.insert(org.to_owned(), created.token);
        }
    }
    let server = db.serve(Options::default());
    Fixture {
        organization_id: spec["organization_id"].as_str().unwrap().to_owned(),
        callback_id: ids[0].clone(),
        other_callback_id: ids[1].clone(),
        tokens,
        store,
        server,
        _db: db,
    }
}

// ------------------------------------------------------------ placeholders

/// The JSON text of a catalogue value with its placeholders expanded.
/// Written as text, so that `{"$nest": 10000}` never becomes a Rust value
/// 10,000 levels deep.
fn json_text(value: &Value, fx: &Fixture) -> String {
    match value {
        Value::Object(map) if map.contains_key("$nest") => {
            let n = map["$nest"].as_u64().unwrap() as usize;
            format!("{}0{}", "[".repeat(n), "]".repeat(n))
        }
        Value::Object(map) if !map.keys().any(|k| k.starts_with('$')) => {
            let fields: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}:{}", json!(k), json_text(v, fx)))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(|v| json_text(v, fx)).collect();
            format!("[{}]", items.join(","))
        }
        other => scalar(other, fx).to_string(),
    }
}

/// A catalogue value without nesting placeholders, expanded.
fn scalar(value: &Value, fx: &Fixture) -> Value {
    match value {
        Value::String(s) if s == "$callback_id" => json!(fx.callback_id),
        Value::String(s) if s == "$other_organization_callback_id" => json!(fx.other_callback_id),
        Value::Object(map) if map.contains_key("$repeat") => {
            let unit = map["$repeat"].as_str().unwrap();
            json!(unit.repeat(map["times"].as_u64().unwrap() as usize))
        }
        Value::Object(map) if map.contains_key("$cursor") => cursor(&map["$cursor"], fx),
        other if !other.is_object() => other.clone(),
        other => serde_json::from_str(&json_text(other, fx)).unwrap(),
    }
}

/// Query-string or header text of a value: strings as they are, numbers
/// as JSON writes them (`-1`, `2.5`).
fn param(value: &Value, fx: &Fixture) -> String {
    match scalar(value, fx) {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// `/v1/callbacks` with a query string, every value percent-encoded.
fn list_target(pairs: &[(String, String)]) -> String {
    let mut url = reqwest::Url::parse("http://test/v1/callbacks").unwrap();
    if !pairs.is_empty() {
        url.query_pairs_mut().extend_pairs(pairs);
    }
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

/// `/v1/callbacks/{id}` (then `/{action}`), the id percent-encoded.
fn callback_target(id: &str, action: Option<&str>) -> String {
    let mut url = reqwest::Url::parse("http://test/v1/callbacks").unwrap();
    url.path_segments_mut().unwrap().push(id);
    if let Some(action) = action {
        url.path_segments_mut().unwrap().push(action);
    }
    url.path().to_owned()
}

/// `/v1/agents/{agent_id}/calling-policy`, the id percent-encoded.
fn agent_policy_target(agent_id: &str) -> String {
    let mut url = reqwest::Url::parse("http://test/v1/agents").unwrap();
    url.path_segments_mut()
        .unwrap()
        .push(agent_id)
        .push("calling-policy");
    url.path().to_owned()
}

fn bearer(fx: &Fixture, org: &str) -> Vec<u8> {
    format!("Bearer {}", fx.tokens[org]).into_bytes()
}

/// The next_cursor of a first page of one callback, then tampered with.
fn cursor(spec: &Value, fx: &Fixture) -> Value {
    let org = spec["organization_id"]
        .as_str()
        .unwrap_or(&fx.organization_id);
    let mut pairs = vec![("limit".to_owned(), "1".to_owned())];
    for (k, v) in spec["query"].as_object().unwrap() {
        pairs.push((k.clone(), param(v, fx)));
    }
    let answer = raw_exchange(
        &fx.server.base,
        "GET",
        &list_target(&pairs),
        &[("authorization", &bearer(fx, org))],
        b"",
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    let page: Value = serde_json::from_slice(&answer.body).unwrap();
    let mut text = page["next_cursor"].as_str().unwrap().to_owned();
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

// --------------------------------------------------------- the requests

struct Request {
    method: &'static str,
    target: String,
    authorization: Vec<u8>,
    body: Vec<u8>,
}

/// The body of an action: the named arguments present in the input.
fn action_body(input: &Value, names: &[&str], fx: &Fixture) -> Vec<u8> {
    let map = input.as_object().unwrap();
    let fields: Vec<String> = names
        .iter()
        .filter_map(|n| {
            map.get(*n)
                .map(|v| format!("{}:{}", json!(n), json_text(v, fx)))
        })
        .collect();
    if fields.is_empty() {
        Vec::new()
    } else {
        format!("{{{}}}", fields.join(",")).into_bytes()
    }
}

fn request(op: &str, input: &Value, fx: &Fixture) -> Request {
    let org = input["organization_id"]
        .as_str()
        .unwrap_or(&fx.organization_id);
    let mut req = Request {
        method: "POST",
        target: String::new(),
        authorization: bearer(fx, org),
        body: Vec::new(),
    };
    let id = || param(&input["id"], fx);
    let action = |name: &str, fields: &[&str]| {
        (
            callback_target(&id(), Some(name)),
            action_body(input, fields, fx),
        )
    };
    match op {
        "create" => {
            req.target = "/v1/callbacks".into();
            req.body = json_text(input, fx).into_bytes();
        }
        "list" => {
            req.method = "GET";
            let pairs: Vec<(String, String)> = input
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| *k != "organization_id")
                .map(|(k, v)| (k.clone(), param(v, fx)))
                .collect();
            req.target = list_target(&pairs);
        }
        "authenticate" => {
            req.method = "GET";
            req.target = "/v1/callbacks".into();
            req.authorization = param(&input["authorization"], fx).into_bytes();
        }
        "get" => {
            req.method = "GET";
            req.target = callback_target(&id(), None);
        }
        "history" => {
            req.method = "GET";
            req.target = callback_target(&id(), Some("events"));
        }
        "cancel" => (req.target, req.body) = action("cancel", &["reason"]),
        "dispatch" => (req.target, req.body) = action("dispatch", &[]),
        "complete_dispatch" => {
            (req.target, req.body) = action("complete", &["created_session_id", "claim_token"])
        }
        "fail_dispatch" => {
            (req.target, req.body) = action("fail", &["failure_cause", "claim_token"])
        }
        "reschedule" => (req.target, req.body) = action("reschedule", &["scheduled_at"]),
        "retry" => (req.target, req.body) = action("retry", &["outcome"]),
        "set_calling_policy" => {
            req.method = "PUT";
            req.target = "/v1/calling-policy".into();
            req.body = json_text(input, fx).into_bytes();
        }
        "set_agent_calling_policy" => {
            req.method = "PUT";
            req.target = agent_policy_target(&param(&input["agent_id"], fx));
            req.body = json_text(&input["policy"], fx).into_bytes();
        }
        "clear_agent_calling_policy" => {
            req.method = "DELETE";
            req.target = agent_policy_target(&param(&input["agent_id"], fx));
        }
        "http" => {
            req.method = if input["method"] == "GET" {
                "GET"
            } else {
                "POST"
            };
            let pairs: Vec<(String, String)> = input["query"]
                .as_object()
                .map(|q| q.iter().map(|(k, v)| (k.clone(), param(v, fx))).collect())
                .unwrap_or_default();
            let path = format!("/v1{}", input["path"].as_str().unwrap());
            assert_eq!(path, "/v1/callbacks", "the runner knows only this path");
            req.target = list_target(&pairs);
            req.body = if let Some(raw) = input["raw_body"].as_str() {
                raw.as_bytes().to_vec()
            } else if let Some(hex) = input["raw_body_hex"].as_str() {
                (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect()
            } else if input.get("body").is_some() {
                json_text(&input["body"], fx).into_bytes()
            } else {
                Vec::new()
            };
        }
        other => panic!("{other}: not an operation of the HTTP API"),
    }
    req
}

fn send_request(fx: &Fixture, req: &Request) -> RawAnswer {
    let mut headers: Vec<(&str, &[u8])> = vec![("authorization", &req.authorization)];
    if !req.body.is_empty() {
        headers.push(("content-type", b"application/json"));
    }
    raw_exchange(
        &fx.server.base,
        req.method,
        &req.target,
        &headers,
        &req.body,
    )
}

// --------------------------------------------------------------- the runner

/// (callbacks, events, API keys, calling policies) in the database, read
/// by this process. The fixture has no policy: a refused one would add a row.
fn rows(store: &Store) -> [i64; 4] {
    [
        "callbacks",
        "callback_events",
        "api_keys",
        "calling_policies",
    ]
    .map(|t| count(store, &format!("SELECT COUNT(*) FROM {t}")))
}

fn status_of(code: &str) -> u16 {
    match code {
        "VALIDATION_ERROR" => 400,
        "UNAUTHORIZED" => 401,
        "NOT_FOUND" => 404,
        "INVALID_TRANSITION" | "CONFLICT" => 409,
        other => panic!("no HTTP status for {other}"),
    }
}

/// Runs one case; what went wrong, if anything.
fn run_case(case: &Value, fx: &Fixture) -> Option<String> {
    let name = case["name"].as_str().unwrap();
    let op = case["op"].as_str().unwrap();
    let before = rows(&fx.store);
    let req = request(op, &case["input"], fx);
    let answer = send_request(fx, &req);
    let after = rows(&fx.store);
    let what = format!(
        "{name} ({} {})",
        req.method,
        &req.target[..req.target.len().min(60)]
    );
    if answer.status >= 500 {
        return Some(format!(
            "{what}: server error {} {}",
            answer.status,
            answer.text()
        ));
    }
    let body: Value = match serde_json::from_slice(&answer.body) {
        Ok(body) if answer.header("content-type") == Some("application/json") => body,
        _ => {
            return Some(format!(
                "{what}: not a JSON answer: {} {:?}",
                answer.head,
                answer.text()
            ))
        }
    };
    let Some(code) = case["http_code"]
        .as_str()
        .or(case["expected_code"].as_str())
    else {
        return accepted(case, &what, &answer, &body, before, after, fx);
    };
    let status = case["http_status"]
        .as_u64()
        .map_or(status_of(code), |s| s as u16);
    let keys: Vec<&String> = body
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    let message = body["error"].as_str().unwrap_or("");
    // A field named for the library's code is not named for another HTTP code.
    let field = match case["http_code"].as_str() {
        Some(_) => case["http_field"].as_str(),
        None => case["http_field"].as_str().or(case["field"].as_str()),
    };
    if answer.status != status || body["code"] != code || keys != ["error", "code"] {
        Some(format!(
            "{what}: got {} {body}, expected {status} {code}",
            answer.status
        ))
    } else if field.is_some_and(|f| !message.starts_with(&format!("{f}: "))) {
        Some(format!(
            "{what}: the message {message:?} does not name {}",
            field.unwrap()
        ))
    } else if after != before {
        Some(format!(
            "{what}: refused, but rows changed {before:?} -> {after:?}"
        ))
    } else {
        None
    }
}

/// Checks an input the catalogue accepts: a list of the expected length
/// (no row changed) or a creation storing every field as given.
fn accepted(
    case: &Value,
    what: &str,
    answer: &RawAnswer,
    body: &Value,
    before: [i64; 4],
    after: [i64; 4],
    fx: &Fixture,
) -> Option<String> {
    match case["op"].as_str().unwrap() {
        "list" => {
            let n = body["callbacks"].as_array().map_or(usize::MAX, Vec::len);
            let expected = case["expected_rows"].as_u64().unwrap() as usize;
            if answer.status != 200 || n != expected {
                Some(format!(
                    "{what}: {} with {n} callbacks, expected 200 with {expected}: {body}",
                    answer.status
                ))
            } else if after != before {
                Some(format!(
                    "{what}: a list, but rows changed {before:?} -> {after:?}"
                ))
            } else {
                None
            }
        }
        "create" => {
            let sent: Value = serde_json::from_str(&json_text(&case["input"], fx)).unwrap();
            if answer.status != 201 {
                return Some(format!("{what}: {} {body}, expected 201", answer.status));
            }
            if after[0] != before[0] + 1 {
                return Some(format!(
                    "{what}: rows {before:?} -> {after:?}, expected one more callback"
                ));
            }
            sent.as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| *k != "idempotency_key")
                .find(|(k, v)| body[k.as_str()] != **v)
                .map(|(k, _)| format!("{what}: {k} was not stored as given"))
        }
        other => panic!("{what}: no check for an accepted {other}"),
    }
}

fn applies_to_http(case: &Value) -> bool {
    match case.get("layers").and_then(Value::as_array) {
        None => true,
        Some(layers) => layers.iter().any(|l| l == "http"),
    }
}

#[test]
fn every_bad_input_of_the_catalogue_gets_its_documented_status_and_code_over_http_and_changes_no_row(
) {
    let started = std::time::Instant::now();
    let doc: Value = serde_json::from_str(CATALOGUE).expect("catalogue.json is JSON");
    let fx = fixture(&doc);
    let cases: Vec<&Value> = doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| applies_to_http(c))
        .collect();
    // Accepted creations add a callback: they run last.
    let (creations, others): (Vec<&Value>, Vec<&Value>) = cases
        .iter()
        .partition(|c| c["op"] == "create" && c["expected_code"].is_null());
    let mut problems = Vec::new();
    let mut by_code = BTreeMap::<String, usize>::new();
    let mut accepted = 0;
    for case in others.iter().chain(&creations) {
        match run_case(case, &fx) {
            Some(problem) => problems.push(problem),
            None => match case["http_code"]
                .as_str()
                .or(case["expected_code"].as_str())
            {
                Some(code) => *by_code.entry(code.to_owned()).or_default() += 1,
                None => accepted += 1,
            },
        }
    }
    // The file's own check on SQLite; PostgreSQL's storage is the server's.
    let integrity = match fx.store.backend_name() {
        "sqlite" => fx
            .store
            .with_connection(|c| c.query_row("PRAGMA integrity_check", [], |r| r.get(0)))
            .unwrap(),
        other => format!("not checked on {other}"),
    };
    let panics = fx.server.panics();
    let rejected: usize = by_code.values().sum();
    let changed = problems
        .iter()
        .filter(|p| p.contains("rows changed"))
        .count();
    println!(
        "http catalogue: {} cases replayed in {:.1} s: {rejected} rejected with their code {by_code:?}, {accepted} accepted, {changed} changed rows, {} problems; integrity {integrity}",
        cases.len(),
        started.elapsed().as_secs_f64(),
        problems.len()
    );
    assert!(
        problems.is_empty(),
        "{} catalogue cases failed over HTTP:\n{}",
        problems.len(),
        problems.join("\n")
    );
    if fx.store.backend_name() == "sqlite" {
        assert_eq!(integrity, "ok");
    }
    assert!(panics.is_empty(), "the server panicked: {panics:?}");
    assert!(cases.len() >= 100, "only {} HTTP cases", cases.len());
}
