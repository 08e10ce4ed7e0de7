//! Authentication and organization scoping of the server: every /v1 route
//! needs a valid bearer token, the 401 body is exactly the reference's, and
//! another organization's callbacks do not exist (404).

mod common;

use common::*;
use serde_json::json;

/// Every /v1 route, with a body where it takes one.
fn routes(id: &str) -> Vec<(reqwest::Method, String, Option<serde_json::Value>)> {
    use reqwest::Method;
    let cb = format!("/v1/callbacks/{id}");
    vec![
        (Method::GET, "/v1/callbacks".into(), None),
        (
            Method::POST,
            "/v1/callbacks".into(),
            Some(json!({"to_number": "+12015551234", "scheduled_at": "2030-01-01T00:00:00Z"})),
        ),
        (Method::GET, cb.clone(), None),
        (Method::GET, format!("{cb}/events"), None),
        (Method::POST, format!("{cb}/cancel"), None),
        (Method::POST, format!("{cb}/dispatch"), None),
        (
            Method::POST,
            format!("{cb}/complete"),
            Some(json!({"created_session_id": "s"})),
        ),
        (
            Method::POST,
            format!("{cb}/fail"),
            Some(json!({"failure_cause": "c"})),
        ),
        (
            Method::POST,
            format!("{cb}/reschedule"),
            Some(json!({"scheduled_at": "2031-01-01T00:00:00Z"})),
        ),
    ]
}

fn call(
    api: &Api,
    authorization: Option<&str>,
    method: reqwest::Method,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Resp {
    let mut request = api.client.request(method, format!("{}{path}", api.base));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    send(request)
}

fn assert_unauthorized(resp: &Resp, what: &str) {
    assert_eq!(resp.status, 401, "{what}: {}", resp.text);
    assert_eq!(resp.text, UNAUTHORIZED_BODY, "{what}");
    assert_eq!(
        resp.header("content-type"),
        Some("application/json"),
        "{what}"
    );
    assert_eq!(resp.header("www-authenticate"), Some("Bearer"), "{what}");
}

#[test]
fn missing_malformed_unknown_and_revoked_tokens_get_exactly_the_reference_401_on_every_route() {
    let db = TestDb::new();
    let token = db.token("org_a");
    let store = db.store();
    let revoked = store.create_api_key("org_a", "old").unwrap();
    let revoked_token = revoked.token;
    store.revoke_api_key(&revoked.key.id).unwrap();
    let server = db.serve(Options::default());
    let api = Api::new(&server.base, &token);
    let id = api.create(json!({}))["id"].as_str().unwrap().to_owned();
    let unknown = format!("Bearer cbs_{}", "A".repeat(43));
    let revoked_header = format!("Bearer {revoked_token}");
    let basic = format!("Basic {token}");
    let doubled = format!("Bearer {token} {token}");
    let bare = token.clone();
    let credentials: [(&str, Option<&str>); 8] = [
        ("missing", None),
        ("empty", Some("")),
        ("scheme only", Some("Bearer")),
        ("other scheme", Some(&basic)),
        ("two tokens", Some(&doubled)),
        ("bare token", Some(&bare)),
        ("unknown", Some(&unknown)),
        ("revoked", Some(&revoked_header)),
    ];
    for (what, authorization) in credentials {
        for (method, path, body) in routes(&id) {
            let resp = call(&api, authorization, method.clone(), &path, body.as_ref());
            assert_unauthorized(&resp, &format!("{what}: {method} {path}"));
        }
    }
    // Nothing was changed by the refused requests.
    let cb = api.get(&format!("/v1/callbacks/{id}")).json();
    assert_eq!(cb["status"], "scheduled");
    assert_eq!(
        api.get("/v1/callbacks").json()["callbacks"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn the_bearer_scheme_is_case_insensitive() {
    let db = TestDb::new();
    let token = db.token("org_a");
    let server = db.serve(Options::default());
    let api = Api::new(&server.base, &token);
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let resp = call(
            &api,
            Some(&format!("{scheme} {token}")),
            reqwest::Method::GET,
            "/v1/callbacks",
            None,
        );
        assert_eq!(resp.status, 200, "{scheme}");
    }
}

#[test]
fn authentication_comes_before_validation() {
    let db = TestDb::new();
    db.token("org_a");
    let server = db.serve(Options::default());
    let api = Api::new(&server.base, "cbs_unknown");
    let resp = call(
        &api,
        None,
        reqwest::Method::GET,
        "/v1/callbacks?limit=0&bogus=1",
        None,
    );
    assert_unauthorized(&resp, "bad query");
    let resp = call(
        &api,
        Some("Bearer cbs_unknown"),
        reqwest::Method::POST,
        "/v1/callbacks",
        Some(&json!({"to_number": "nope"})),
    );
    assert_unauthorized(&resp, "bad body");
}

#[test]
fn another_organizations_callback_is_404_on_every_route_and_absent_from_lists() {
    let db = TestDb::new();
    let token_a = db.token("org_a");
    let token_b = db.token("org_b");
    let server = db.serve(Options::default());
    let a = Api::new(&server.base, &token_a);
    let b = Api::new(&server.base, &token_b);
    let theirs = a.create(json!({"source_session_id": "shared_session"}));
    let id = theirs["id"].as_str().unwrap();
    for (method, path, body) in routes(id).into_iter().skip(2) {
        let resp = call(
            &b,
            Some(&format!("Bearer {token_b}")),
            method.clone(),
            &path,
            body.as_ref(),
        );
        resp.assert_error(404, "NOT_FOUND");
    }
    let listed = b
        .get("/v1/callbacks?source_session_id=shared_session")
        .json();
    assert_eq!(listed["callbacks"].as_array().unwrap().len(), 0);
    // Still intact for its owner, with no events from org_b's attempts.
    assert_eq!(a.get(&format!("/v1/callbacks/{id}")).json(), theirs);
    let events = a.get(&format!("/v1/callbacks/{id}/events")).json();
    assert_eq!(events["events"].as_array().unwrap().len(), 1);
    // b's own callbacks carry b's organization.
    assert_eq!(b.create(json!({}))["organization_id"], "org_b");
}

#[test]
fn the_same_idempotency_key_in_two_organizations_makes_two_callbacks() {
    let db = TestDb::new();
    let server_db = &db;
    let token_a = server_db.token("org_a");
    let token_b = server_db.token("org_b");
    let server = db.serve(Options::default());
    let a = Api::new(&server.base, &token_a);
    let b = Api::new(&server.base, &token_b);
    let one = a.create(json!({"idempotency_key": "k1"}));
    let two = b.create(json!({"idempotency_key": "k1"}));
    assert_ne!(one["id"], two["id"]);
}
