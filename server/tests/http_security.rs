//! Security of the HTTP server, run in-process: organizations are isolated
//! on every route whatever the status of the callback, and request bodies,
//! targets and headers are bounded (each refusal a JSON error, never a 5xx
//! nor a panic). (A key revoked by the command while the server runs, and
//! tokens kept out of the files and the log: `cli/tests/serve_security.rs`.)

mod common;

use callback_store::{parse_timestamp, NewCallback};
use common::*;
use serde_json::{json, Value};

#[test]
fn another_organizations_callbacks_are_not_found_on_every_route_in_every_status_and_never_listed() {
    let db = TestDb::new();
    let store = db.store();
    let at = parse_timestamp("scheduled_at", "2030-01-01T00:00:00Z").unwrap();
    let new = || NewCallback {
        source_session_id: Some("sess_shared".into()),
        agent_id: Some("agent_shared".into()),
        idempotency_key: None,
        ..NewCallback::new("+12015551234", at)
    };
    // org_a owns a callback in each status; org_b one of its own, alike.
    let a = store.organization("org_a").unwrap();
    let ids: Vec<String> = (0..5).map(|_| a.create(new()).unwrap().id).collect();
    a.dispatch(&ids[1]).unwrap();
    a.dispatch(&ids[2]).unwrap();
    a.complete_dispatch(&ids[2], "sess_done", None).unwrap();
    a.cancel(&ids[3], Some("no longer needed")).unwrap();
    a.dispatch(&ids[4]).unwrap();
    a.fail_dispatch(&ids[4], "no answer", None).unwrap();
    a.create(NewCallback {
        idempotency_key: Some("key_of_a".into()),
        ..new()
    })
    .unwrap();
    store.organization("org_b").unwrap().create(new()).unwrap();
    let token_a = store.create_api_key("org_a", "owner").unwrap().token;
    let token_b = store.create_api_key("org_b", "intruder").unwrap().token;
    let server = db.serve(Options::default());
    let owner = Api::new(&server.base, &token_a);
    let intruder = Api::new(&server.base, &token_b);
    let snapshot = |id: &str| {
        (
            owner.get(&format!("/v1/callbacks/{id}")).json(),
            owner.get(&format!("/v1/callbacks/{id}/events")).json(),
        )
    };
    let before: Vec<_> = ids.iter().map(|id| snapshot(id)).collect();

    let mut tried = 0;
    for id in &ids {
        for (method, path, body) in callback_routes(id) {
            let resp = intruder.call(method, &path, body.as_ref());
            let message = resp.assert_error(404, "NOT_FOUND");
            assert!(!message.contains("org_a"), "{method} {path}: {message}");
            tried += 1;
        }
    }
    assert_eq!(tried, 5 * 7);
    // Nothing changed, not even an event.
    let after: Vec<_> = ids.iter().map(|id| snapshot(id)).collect();
    assert_eq!(after, before);

    // No list of org_b shows them, whatever the filter, order or page.
    for query in [
        "",
        "&status=scheduled",
        "&status=dispatching",
        "&status=dispatched",
        "&status=cancelled",
        "&status=failed",
        "&source_session_id=sess_shared",
        "&agent_id=agent_shared",
        "&to_number=%2B12015551234",
        "&scheduled_after=2029-01-01T00:00:00Z&scheduled_before=2031-01-01T00:00:00Z",
        "&order=scheduled_asc",
    ] {
        let seen = intruder.list_all(query);
        for cb in &seen {
            assert_eq!(cb["organization_id"], "org_b", "{query}: {cb}");
        }
        let mine = owner.list_all(query);
        assert!(mine.iter().all(|cb| cb["organization_id"] == "org_a"));
    }
    assert_eq!(intruder.list_all("").len(), 1);
    // A cursor of org_a is refused for org_b.
    let page = owner.get("/v1/callbacks?limit=1").json();
    let cursor = page["next_cursor"].as_str().unwrap();
    let next = format!("/v1/callbacks?limit=1&cursor={cursor}");
    assert_eq!(owner.get(&next).status, 200, "the owner's own cursor works");
    let msg = intruder.get(&next).assert_error(400, "VALIDATION_ERROR");
    assert!(msg.starts_with("cursor: "), "{msg}");
    // org_a's idempotency key neither conflicts nor answers org_a's callback.
    let made = intruder.post(
        "/v1/callbacks",
        Some(&json!({"to_number": "+12015559999", "scheduled_at": "2030-02-01T00:00:00Z", "idempotency_key": "key_of_a"})),
    );
    assert_eq!(made.status, 201, "{}", made.text);
    assert_eq!(made.json()["organization_id"], "org_b");
}

/// A refusal that must be a JSON error with this status and code.
fn assert_json_error(answer: &RawAnswer, status: u16, what: &str) -> String {
    assert_eq!(answer.status, status, "{what}: {}", answer.text());
    assert_eq!(
        answer.header("content-type"),
        Some("application/json"),
        "{what}"
    );
    let body: Value = serde_json::from_slice(&answer.body)
        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", answer.text()));
    assert_eq!(body["code"], "VALIDATION_ERROR", "{what}: {body}");
    body["error"].as_str().unwrap().to_owned()
}

#[test]
fn request_bodies_targets_and_headers_are_bounded_and_each_refusal_is_json_never_a_server_error() {
    let db = TestDb::new();
    let token = db.token("org_a");
    let server = db.serve(Options::default());
    let api = Api::new(&server.base, &token);
    api.create(json!({}));
    let store = db.store();
    let rows = || {
        (
            count(&store, "SELECT COUNT(*) FROM callbacks"),
            count(&store, "SELECT COUNT(*) FROM callback_events"),
        )
    };
    let before = rows();
    let auth = format!("Bearer {token}").into_bytes();
    let json_type: &[u8] = b"application/json";
    let headers: [(&str, &[u8]); 2] = [("authorization", &auth), ("content-type", json_type)];
    // A creation whose summary makes the body exactly `len` bytes long.
    let body_of = |len: usize| {
        let head =
            r#"{"to_number":"+12015551234","scheduled_at":"2030-01-01T00:00:00Z","summary":""#;
        format!("{head}{}\"}}", "s".repeat(len - head.len() - 2)).into_bytes()
    };
    let post = |body: &[u8]| raw_exchange(&server.base, "POST", "/v1/callbacks", &headers, body);
    let get = |target: &str| raw_exchange(&server.base, "GET", target, &headers[..1], b"");

    // Bodies: at most 256 KiB; one byte more is 413 before it is read.
    let limit = 256 * 1024;
    let at_limit = body_of(limit);
    assert_eq!(at_limit.len(), limit);
    let msg = assert_json_error(&post(&at_limit), 400, "a body of 256 KiB");
    assert!(
        msg.starts_with("summary: "),
        "read, then refused by the text rule: {msg}"
    );
    let msg = assert_json_error(&post(&body_of(limit + 1)), 413, "a body of 256 KiB + 1");
    assert!(msg.starts_with("body: "), "{msg}");
    assert_json_error(&post(&body_of(8 << 20)), 413, "a body of 8 MiB");

    // Targets: hyper refuses a path and query string of 64 KiB (414); under
    // it, every value is refused by its own rule (400).
    let msg = assert_json_error(
        &get(&format!("/v1/callbacks?agent_id={}", "q".repeat(65536))),
        414,
        "a 64 KiB query string",
    );
    assert!(msg.contains("64 KiB"), "{msg}");
    assert_json_error(
        &get(&format!("/v1/callbacks/{}", "i".repeat(70_000))),
        414,
        "a 70 KB path",
    );
    let msg = assert_json_error(
        &get(&format!("/v1/callbacks?agent_id={}", "q".repeat(60_000))),
        400,
        "a 60 KB value",
    );
    assert!(msg.starts_with("agent_id: "), "{msg}");
    let many: Vec<String> = (0..5000).map(|i| format!("p{i}=1")).collect();
    let msg = assert_json_error(
        &get(&format!("/v1/callbacks?{}", many.join("&"))),
        400,
        "5,000 query parameters",
    );
    assert!(msg.starts_with("query: unknown parameters"), "{msg}");

    // Headers: over hyper's buffer is 431; a byte HTTP forbids is 400.
    let big = vec![b'h'; 500 * 1024];
    let answer = raw_exchange(
        &server.base,
        "GET",
        "/v1/callbacks",
        &[("authorization", &auth), ("x-padding", &big)],
        b"",
    );
    assert_json_error(&answer, 431, "a 500 KiB header");
    let answer = raw_exchange(
        &server.base,
        "GET",
        "/v1/callbacks",
        &[("authorization", b"Bearer cbs_\0")],
        b"",
    );
    assert_json_error(&answer, 400, "a NUL byte in a header");

    // Nothing was written, and the server still answers.
    assert_eq!(rows(), before);
    assert_eq!(api.get("/healthz").status, 200);
    assert_eq!(api.list_all("").len(), 1);
    let panics = server.panics();
    assert!(panics.is_empty(), "the server panicked: {panics:?}");
}
