//! Claims over HTTP without a webhook: `POST …/dispatch` answers the
//! callback with its claim's token in the Claim-Token header, and complete /
//! fail with a `claim_token` finish the callback only for its live claim. A
//! spent, recovered or forged claim is 409 INVALID_TRANSITION ("stale
//! claim") and the callback is left as it was.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn setup() -> (TestDb, Server, Api) {
    // Recovery only when a test runs it, so that timing cannot change a row.
    server_with_token(Options {
        stale_after: None,
        ..Options::default()
    })
}

/// Creates and dispatches a callback: its id and the Claim-Token.
fn dispatched(api: &Api) -> (String, String) {
    let id = api.create(json!({}))["id"].as_str().unwrap().to_owned();
    let (callback, token) = api.dispatch(&id);
    assert_eq!(callback["status"], "dispatching");
    (id, token)
}

/// The two routes that finish a dispatching callback.
const FINISHERS: [&str; 2] = ["complete", "fail"];

/// The body of `complete` (session `sess_1`) or `fail` (cause `no answer`)
/// with `claim_token`.
fn finish(action: &str, claim_token: impl Into<Value>) -> Value {
    let field = match action {
        "complete" => ("created_session_id", "sess_1"),
        _ => ("failure_cause", "no answer"),
    };
    json!({field.0: field.1, "claim_token": claim_token.into()})
}

fn get(api: &Api, id: &str) -> Value {
    api.get(&format!("/v1/callbacks/{id}")).json()
}

/// Posts `action` with `body`, expects a 409 naming a stale claim, and
/// checks that the callback is exactly as it was before.
fn refused_as_stale(api: &Api, id: &str, action: &str, body: Value) {
    let before = get(api, id);
    let msg = api
        .post(&format!("/v1/callbacks/{id}/{action}"), Some(&body))
        .assert_error(409, "INVALID_TRANSITION");
    assert!(msg.contains("stale claim"), "{action}: {msg}");
    assert_eq!(get(api, id), before, "{action} {body} changed the callback");
}

#[test]
fn dispatch_answers_the_record_with_a_claim_token_header_of_its_own() {
    let (_db, _server, api) = setup();
    let (id, first) = dispatched(&api);
    let (_, second) = dispatched(&api);
    assert_ne!(first, second);
    // A dispatch that is refused makes no claim and sends no token.
    let refused = api.post(&format!("/v1/callbacks/{id}/dispatch"), None);
    refused.assert_error(409, "INVALID_TRANSITION");
    assert_eq!(refused.header("claim-token"), None);
}

#[test]
fn complete_and_fail_with_the_claims_own_token_finish_the_callback() {
    let (_db, _server, api) = setup();
    for (action, status) in [("complete", "dispatched"), ("fail", "failed")] {
        let (id, token) = dispatched(&api);
        let done = api.post(
            &format!("/v1/callbacks/{id}/{action}"),
            Some(&finish(action, token)),
        );
        assert_eq!(done.status, 200, "{}", done.text);
        assert_callback_shape(&done.json());
        assert_eq!(done.json()["status"], status);
    }
}

#[test]
fn the_same_claim_completed_twice_is_refused_the_second_time() {
    let (_db, _server, api) = setup();
    let (id, token) = dispatched(&api);
    let body = finish("complete", token.as_str());
    let first = api.post(&format!("/v1/callbacks/{id}/complete"), Some(&body));
    assert_eq!(first.status, 200, "{}", first.text);
    for action in FINISHERS {
        refused_as_stale(&api, &id, action, finish(action, token.as_str()));
    }
    assert_eq!(get(&api, &id)["created_session_id"], "sess_1");
}

#[test]
fn a_claim_whose_callback_was_recovered_cannot_finish_it() {
    let (db, _server, api) = setup();
    let (id, token) = dispatched(&api);
    let store = db.store();
    let recovered = store.recover_stale(store.now(), Duration::ZERO).unwrap();
    assert_eq!(recovered.len(), 1);
    for action in FINISHERS {
        refused_as_stale(&api, &id, action, finish(action, token.as_str()));
    }
    assert_eq!(get(&api, &id)["failure_cause"], "dispatch_interrupted");
}

#[test]
fn a_forged_claim_token_is_refused_and_the_real_claim_still_finishes() {
    let (_db, _server, api) = setup();
    let (id, token) = dispatched(&api);
    // Another callback's live claim is no claim on this one either.
    let (_, other) = dispatched(&api);
    for forged in ["0123456789abcdef0123456789abcdef", other.as_str()] {
        assert_ne!(forged, token);
        for action in FINISHERS {
            refused_as_stale(&api, &id, action, finish(action, forged));
        }
    }
    assert_eq!(get(&api, &id)["status"], "dispatching");
    let done = api.post(
        &format!("/v1/callbacks/{id}/complete"),
        Some(&finish("complete", token)),
    );
    assert_eq!(done.json()["status"], "dispatched");
}

#[test]
fn an_absent_or_null_claim_token_is_not_checked() {
    let (_db, _server, api) = setup();
    for action in FINISHERS {
        let (id, _) = dispatched(&api);
        let null = api.post(
            &format!("/v1/callbacks/{id}/{action}"),
            Some(&finish(action, Value::Null)),
        );
        assert_eq!(null.status, 200, "{action}: {}", null.text);
    }
    let (id, _) = dispatched(&api);
    let absent = api.post(
        &format!("/v1/callbacks/{id}/fail"),
        Some(&json!({"failure_cause": "busy"})),
    );
    assert_eq!(absent.status, 200, "{}", absent.text);
}

#[test]
fn a_malformed_claim_token_is_a_validation_error_naming_the_field() {
    let (_db, _server, api) = setup();
    let (id, _) = dispatched(&api);
    for (token, rule) in [
        (json!(""), "claim_token: must be 1 to 255 bytes"),
        (
            json!(7),
            "claim_token: must be a string or null, got a number",
        ),
    ] {
        for action in FINISHERS {
            let body = finish(action, token.clone());
            let msg = api
                .post(&format!("/v1/callbacks/{id}/{action}"), Some(&body))
                .assert_error(400, "VALIDATION_ERROR");
            assert!(msg.starts_with(rule), "{action} {body}: {msg}");
        }
    }
    let msg = api
        .post(
            &format!("/v1/callbacks/{id}/complete"),
            Some(&json!({"created_session_id": "x", "claim": "y"})),
        )
        .assert_error(400, "VALIDATION_ERROR");
    assert!(
        msg.ends_with("allowed: created_session_id, claim_token"),
        "{msg}"
    );
    assert_eq!(get(&api, &id)["status"], "dispatching");
}
