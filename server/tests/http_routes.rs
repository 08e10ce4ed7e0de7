//! Every route of the server (`serve` in-process, as the command runs it),
//! driven by a real HTTP client: statuses, and the exact JSON shapes of the
//! API reference.

mod common;

use common::*;
use serde_json::{json, Value};

#[test]
fn create_answers_201_with_the_21_keys_in_the_reference_order_and_a_location() {
    let (_db, _server, api) = server_with_token(Options::default());
    let body = json!({
        "to_number": "+12015551234",
        "scheduled_at": "2030-03-05T11:00:00.5+01:00",
        "source_session_id": "sess_1",
        "agent_id": "agent_1",
        "phone_number_id": "pn_1",
        "from_number": "+33123456789",
        "reason": "pricing",
        "instructions": "be brief",
        "summary": "asked for a callback",
        "pipeline_config": {"voice": "alloy"},
        "metadata": {"z": 1, "a": {"b": [1, 2]}},
    });
    let resp = api.post("/v1/callbacks", Some(&body));
    assert_eq!(resp.status, 201, "{}", resp.text);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let cb = resp.json();
    assert_callback_shape(&cb);
    assert_eq!(
        resp.header("location"),
        Some(format!("/v1/callbacks/{}", cb["id"].as_str().unwrap()).as_str())
    );
    assert!(cb["id"].as_str().unwrap().starts_with("cb_"));
    assert_eq!(cb["organization_id"], "org_a");
    assert_eq!(cb["status"], "scheduled");
    assert_eq!(cb["scheduled_at"], "2030-03-05T10:00:00.500Z");
    assert_eq!(cb["metadata"].to_string(), r#"{"z":1,"a":{"b":[1,2]}}"#);
    for key in [
        "created_session_id",
        "failure_cause",
        "attempted_at",
        "dispatched_at",
        "cancelled_at",
    ] {
        assert_eq!(cb[key], Value::Null, "{key}");
    }
    // Defaults: absent objects are {}, absent strings null.
    let minimal = api.create(json!({}));
    assert_callback_shape(&minimal);
    assert_eq!(minimal["metadata"], json!({}));
    assert_eq!(minimal["pipeline_config"], json!({}));
    assert_eq!(minimal["reason"], Value::Null);
}

#[test]
fn get_answers_the_same_callback_and_an_unknown_id_is_404() {
    let (_db, _server, api) = server_with_token(Options::default());
    let created = api.create(json!({"reason": "r"}));
    let id = created["id"].as_str().unwrap();
    let resp = api.get(&format!("/v1/callbacks/{id}"));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json(), created);
    assert_callback_shape(&resp.json());
    let msg = api
        .get("/v1/callbacks/cb_00000000000000000000000000000000")
        .assert_error(404, "NOT_FOUND");
    assert!(msg.contains("cb_00000000000000000000000000000000"), "{msg}");
}

#[test]
fn list_answers_callbacks_and_next_cursor_and_pages_without_gaps() {
    let (_db, _server, api) = server_with_token(Options::default());
    let ids: Vec<String> = (0..5)
        .map(|_| api.create(json!({}))["id"].as_str().unwrap().to_owned())
        .collect();
    let first = api.get("/v1/callbacks?limit=2");
    assert_eq!(first.status, 200);
    let page = first.json();
    let keys = keys_of(&page);
    assert_eq!(keys, ["callbacks", "next_cursor"]);
    let mut seen = Vec::new();
    let mut page = page;
    for _ in 0..10 {
        for cb in page["callbacks"].as_array().unwrap() {
            assert_callback_shape(cb);
            seen.push(cb["id"].as_str().unwrap().to_owned());
        }
        let Some(cursor) = page["next_cursor"].as_str() else {
            break;
        };
        page = api
            .get(&format!("/v1/callbacks?limit=2&cursor={cursor}"))
            .json();
    }
    let newest_first: Vec<String> = ids.into_iter().rev().collect();
    assert_eq!(seen, newest_first);
    assert_eq!(page["next_cursor"], Value::Null);
    // An empty list is still the same shape.
    let empty = api.get("/v1/callbacks?status=failed");
    assert_eq!(empty.text, r#"{"callbacks":[],"next_cursor":null}"#);
}

#[test]
fn list_filters_by_every_parameter_of_the_reference_and_the_design() {
    let (_db, _server, api) = server_with_token(Options::default());
    let a = api.create(json!({"source_session_id": "sess_a", "agent_id": "ag_1", "scheduled_at": "2030-01-01T00:00:00Z"}));
    let b = api.create(json!({"source_session_id": "sess_b", "to_number": "+4420", "scheduled_at": "2030-01-03T00:00:00Z"}));
    let c =
        api.create(json!({"source_session_id": "sess_a", "scheduled_at": "2030-01-02T00:00:00Z"}));
    api.post(
        &format!("/v1/callbacks/{}/cancel", c["id"].as_str().unwrap()),
        None,
    );
    let ids = |query: &str| -> Vec<String> {
        let resp = api.get(&format!("/v1/callbacks?{query}"));
        assert_eq!(resp.status, 200, "{query}: {}", resp.text);
        resp.json()["callbacks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|cb| cb["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let id = |cb: &Value| cb["id"].as_str().unwrap().to_owned();
    assert_eq!(ids("source_session_id=sess_a"), [id(&c), id(&a)]);
    assert_eq!(ids("status=cancelled"), [id(&c)]);
    assert_eq!(ids("status=scheduled&source_session_id=sess_a"), [id(&a)]);
    assert_eq!(ids("agent_id=ag_1"), [id(&a)]);
    assert_eq!(ids("to_number=%2B4420"), [id(&b)]);
    assert_eq!(
        ids("scheduled_after=2030-01-02T00:00:00Z"),
        [id(&c), id(&b)]
    );
    assert_eq!(ids("scheduled_before=2030-01-02T00:00:00Z"), [id(&a)]);
    assert_eq!(ids("order=scheduled_asc"), [id(&a), id(&c), id(&b)]);
    assert_eq!(ids("order=created_desc"), [id(&c), id(&b), id(&a)]);
}

#[test]
fn idempotency_key_header_returns_the_first_callback_and_a_new_payload_is_409() {
    let (_db, _server, api) = server_with_token(Options::default());
    let body = json!({"to_number": "+12015551234", "scheduled_at": "2030-03-05T10:00:00Z"});
    let post = |body: &Value, key: &str| {
        send(
            api.client
                .post(format!("{}/v1/callbacks", api.base))
                .bearer_auth(&api.token)
                .header("content-type", "application/json")
                .header("idempotency-key", key)
                .body(body.to_string()),
        )
    };
    let first = post(&body, "sess_1/callback");
    let again = post(&body, "sess_1/callback");
    assert_eq!((first.status, again.status), (201, 201));
    assert_eq!(first.json(), again.json());
    let mut other = body.clone();
    other["reason"] = json!("something else");
    let msg = post(&other, "sess_1/callback").assert_error(409, "CONFLICT");
    assert!(msg.contains("sess_1/callback"), "{msg}");
    // The body's idempotency_key is the same key.
    let mut keyed = body.clone();
    keyed["idempotency_key"] = json!("sess_1/callback");
    assert_eq!(api.post("/v1/callbacks", Some(&keyed)).json(), first.json());
    let list = api.get("/v1/callbacks").json();
    assert_eq!(list["callbacks"].as_array().unwrap().len(), 1);
}

#[test]
fn cancel_takes_an_optional_reason_and_a_cancelled_callback_is_returned_unchanged() {
    let (_db, _server, api) = server_with_token(Options::default());
    let plain = api.create(json!({}));
    let resp = api.post(
        &format!("/v1/callbacks/{}/cancel", plain["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_callback_shape(&resp.json());
    assert_eq!(resp.json()["status"], "cancelled");
    assert!(resp.json()["cancelled_at"].is_string());

    let with_reason = api.create(json!({}));
    let path = format!(
        "/v1/callbacks/{}/cancel",
        with_reason["id"].as_str().unwrap()
    );
    let cancelled = api
        .post(&path, Some(&json!({"reason": "customer called in"})))
        .json();
    assert_eq!(cancelled["status"], "cancelled");
    let again = api.post(&path, Some(&json!({"reason": "twice"})));
    assert_eq!(again.status, 200);
    assert_eq!(again.json(), cancelled);
    let events = api
        .get(&format!(
            "/v1/callbacks/{}/events",
            with_reason["id"].as_str().unwrap()
        ))
        .json();
    assert_eq!(events["events"][1]["detail"], "customer called in");
    assert_eq!(events["events"].as_array().unwrap().len(), 2);
    // `{}` and `{"reason": null}` are a cancel without reason.
    for body in [json!({}), json!({"reason": null})] {
        let cb = api.create(json!({}));
        let resp = api.post(
            &format!("/v1/callbacks/{}/cancel", cb["id"].as_str().unwrap()),
            Some(&body),
        );
        assert_eq!(resp.json()["status"], "cancelled");
    }
}

#[test]
fn dispatch_without_webhook_leaves_dispatching_for_complete_or_fail() {
    let (_db, _server, api) = server_with_token(Options::default());
    let one = api.create(json!({}));
    let id = one["id"].as_str().unwrap();
    let dispatching = api.post(&format!("/v1/callbacks/{id}/dispatch"), None);
    assert_eq!(dispatching.status, 200, "{}", dispatching.text);
    assert_callback_shape(&dispatching.json());
    assert_eq!(dispatching.json()["status"], "dispatching");
    assert!(dispatching.json()["attempted_at"].is_string());
    let done = api.post(
        &format!("/v1/callbacks/{id}/complete"),
        Some(&json!({"created_session_id": "sess_new"})),
    );
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(done.json()["status"], "dispatched");
    assert_eq!(done.json()["created_session_id"], "sess_new");
    assert!(done.json()["dispatched_at"].is_string());

    let two = api.create(json!({}));
    let id = two["id"].as_str().unwrap();
    api.post(&format!("/v1/callbacks/{id}/dispatch"), None);
    let failed = api.post(
        &format!("/v1/callbacks/{id}/fail"),
        Some(&json!({"failure_cause": "no answer from carrier"})),
    );
    assert_eq!(failed.status, 200, "{}", failed.text);
    assert_eq!(failed.json()["status"], "failed");
    assert_eq!(failed.json()["failure_cause"], "no answer from carrier");
}

#[test]
fn transitions_not_in_the_table_are_409_invalid_transition_naming_the_status() {
    let (_db, _server, api) = server_with_token(Options::default());
    let cb = api.create(json!({}));
    let id = cb["id"].as_str().unwrap();
    let msg = api
        .post(
            &format!("/v1/callbacks/{id}/complete"),
            Some(&json!({"created_session_id": "s"})),
        )
        .assert_error(409, "INVALID_TRANSITION");
    assert!(msg.contains("scheduled"), "{msg}");
    api.post(&format!("/v1/callbacks/{id}/dispatch"), None);
    for (action, body) in [
        ("cancel", None),
        ("dispatch", None),
        (
            "reschedule",
            Some(json!({"scheduled_at": "2031-01-01T00:00:00Z"})),
        ),
    ] {
        let msg = api
            .post(&format!("/v1/callbacks/{id}/{action}"), body.as_ref())
            .assert_error(409, "INVALID_TRANSITION");
        assert!(msg.contains("dispatching"), "{action}: {msg}");
    }
}

#[test]
fn reschedule_moves_a_scheduled_callback_and_the_history_keeps_the_old_time() {
    let (_db, _server, api) = server_with_token(Options::default());
    let cb = api.create(json!({"scheduled_at": "2030-03-05T10:00:00Z"}));
    let id = cb["id"].as_str().unwrap();
    let moved = api.post(
        &format!("/v1/callbacks/{id}/reschedule"),
        Some(&json!({"scheduled_at": "2030-03-06T09:30:00-05:00"})),
    );
    assert_eq!(moved.status, 200, "{}", moved.text);
    assert_eq!(moved.json()["scheduled_at"], "2030-03-06T14:30:00Z");
    assert_eq!(moved.json()["status"], "scheduled");
    let events = api.get(&format!("/v1/callbacks/{id}/events")).json();
    let last = &events["events"][1];
    assert_eq!(last["action"], "reschedule");
    assert!(last["detail"]
        .as_str()
        .unwrap()
        .contains("2030-03-05T10:00:00Z"));
}

#[test]
fn events_answer_the_history_oldest_first_with_their_keys() {
    let (_db, _server, api) = server_with_token(Options::default());
    let cb = api.create(json!({}));
    let id = cb["id"].as_str().unwrap();
    api.post(&format!("/v1/callbacks/{id}/dispatch"), None);
    api.post(
        &format!("/v1/callbacks/{id}/fail"),
        Some(&json!({"failure_cause": "busy line"})),
    );
    let resp = api.get(&format!("/v1/callbacks/{id}/events"));
    assert_eq!(resp.status, 200);
    let body = resp.json();
    let keys = keys_of(&body);
    assert_eq!(keys, ["events"]);
    let events = body["events"].as_array().unwrap();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["create", "dispatch", "fail_dispatch"]);
    let keys = keys_of(&events[0]);
    assert_eq!(
        keys,
        ["callback_id", "action", "from", "to", "at", "detail"]
    );
    assert_eq!(events[0]["from"], Value::Null);
    assert_eq!(events[2]["detail"], "busy line");
    api.get("/v1/callbacks/cb_nope/events")
        .assert_error(404, "NOT_FOUND");
}

#[test]
fn healthz_and_openapi_json_answer_without_a_token() {
    let (_db, server, _api) = server_with_token(Options::default());
    let client = client();
    let health = send(client.get(server.url("/healthz")));
    // The reference's `status`, then the tz database windows are computed with.
    let expected = format!(
        r#"{{"status":"ok","tzdb_version":"{}"}}"#,
        callback_store::tzdb_version()
    );
    assert_eq!(
        (health.status, health.text.as_str()),
        (200, expected.as_str())
    );
    let spec = send(client.get(server.url("/openapi.json")));
    assert_eq!(spec.status, 200);
    assert_eq!(spec.header("content-type"), Some("application/json"));
    let spec = spec.json();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    for (path, method) in [
        ("/v1/callbacks", "get"),
        ("/v1/callbacks", "post"),
        ("/v1/callbacks/{id}", "get"),
        ("/v1/callbacks/{id}/events", "get"),
        ("/v1/callbacks/{id}/cancel", "post"),
        ("/v1/callbacks/{id}/dispatch", "post"),
        ("/v1/callbacks/{id}/complete", "post"),
        ("/v1/callbacks/{id}/fail", "post"),
        ("/v1/callbacks/{id}/reschedule", "post"),
        ("/v1/callbacks/{id}/retry", "post"),
        ("/v1/calling-policy", "get"),
        ("/v1/calling-policy", "put"),
        ("/v1/agents/{agent_id}/calling-policy", "get"),
        ("/v1/agents/{agent_id}/calling-policy", "put"),
        ("/v1/agents/{agent_id}/calling-policy", "delete"),
        ("/healthz", "get"),
        ("/openapi.json", "get"),
    ] {
        assert!(spec["paths"][path][method].is_object(), "{method} {path}");
    }
    let required = spec["components"]["schemas"]["Callback"]["required"].clone();
    // The reference's 21 keys, then the extension keys, in the record's order.
    let keys: Vec<&str> = CALLBACK_KEYS
        .iter()
        .chain(callback_store::EXTENSION_KEYS.iter())
        .copied()
        .collect();
    assert_eq!(required, json!(keys));
}

#[test]
fn head_of_a_get_route_answers_without_a_body() {
    let (_db, _server, api) = server_with_token(Options::default());
    let resp = send(
        api.client
            .head(format!("{}/v1/callbacks", api.base))
            .bearer_auth(&api.token),
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text, "");
}

/// The answer's bytes are those of the record with its JSON parsed into a
/// map and written by serde_json (what every answer was before records
/// kept the stored text), whether created, read, listed, moved or
/// dispatched; the request's spacing and escapes do not reach them.
#[test]
fn metadata_and_pipeline_config_are_answered_in_the_compact_form_byte_for_byte() {
    let (_db, _server, api) = server_with_token(Options::default());
    let body = r#"{"to_number": "+12015551234", "scheduled_at": "2030-03-05T10:00:00Z",
        "metadata": { "z" : 1.50, "a" : ["\u00e9", "</script>", "\u2028", -0.0, 1E3, 18446744073709551615] },
        "pipeline_config": {"voice":   "alloy", "nested": {"k": [{}, [], null]}}}"#;
    let created = send(
        api.client
            .post(format!("{}/v1/callbacks", api.base))
            .bearer_auth(&api.token)
            .header("content-type", "application/json")
            .body(body),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let metadata =
        r#""metadata":{"z":1.5,"a":["é","</script>","\u2028",-0.0,1000.0,18446744073709551615]}"#;
    let pipeline = r#""pipeline_config":{"voice":"alloy","nested":{"k":[{},[],null]}}"#;
    let answers = [
        ("create", created),
        ("get", api.get(&format!("/v1/callbacks/{id}"))),
        ("list", api.get("/v1/callbacks")),
        (
            "scheduled_asc",
            api.get("/v1/callbacks?order=scheduled_asc"),
        ),
        (
            "reschedule",
            api.post(
                &format!("/v1/callbacks/{id}/reschedule"),
                Some(&json!({"scheduled_at": "2030-03-06T10:00:00Z"})),
            ),
        ),
        (
            "dispatch",
            api.post(&format!("/v1/callbacks/{id}/dispatch"), None),
        ),
    ];
    for (what, resp) in answers {
        assert!(resp.status < 300, "{what}: {}", resp.text);
        // serde_json writes U+2028 unescaped; the stored text keeps it so.
        let expected_metadata = metadata.replace(r"\u2028", "\u{2028}");
        assert!(
            resp.text.contains(&expected_metadata),
            "{what}: {}",
            resp.text
        );
        assert!(resp.text.contains(pipeline), "{what}: {}", resp.text);
        assert_eq!(resp.text, resp.json().to_string(), "{what}");
    }
}
