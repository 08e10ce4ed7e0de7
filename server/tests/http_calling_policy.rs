//! The calling policy over HTTP: the organization's policy and its agents'
//! overrides (`/v1/calling-policy`, `/v1/agents/{agent_id}/calling-policy`),
//! a callback's own `timezone` and `expires_at`, dispatch refused outside
//! the calling window, follow-up attempts (`POST …/retry` and a webhook
//! answer saying nobody picked up), the worker's deadline sweep, and the tz
//! database version in /healthz. The rules themselves are the core's (its
//! tests cover DST, windows and intervals); these prove the server carries
//! them: each answer's status, shape and field, and that a refused request
//! writes nothing.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use callback_store::{parse_timestamp, ManualClock};
use common::*;
use serde_json::{json, Value};

fn put(api: &Api, path: &str, body: &Value) -> Resp {
    api.call("PUT", path, Some(body))
}

/// A server whose clock stands at `now` until the test moves it.
fn server_at(
    now: &str,
    configure: impl FnOnce(&mut Options),
) -> (TestDb, Server, Api, ManualClock) {
    let clock = ManualClock::new(parse_timestamp("now", now).unwrap());
    let mut options = Options {
        clock: Some(clock.clone()),
        ..Options::default()
    };
    configure(&mut options);
    let (db, server, api) = server_with_token(options);
    (db, server, api, clock)
}

const POLICY: &str = "/v1/calling-policy";

fn agent_policy(agent: &str) -> String {
    format!("/v1/agents/{agent}/calling-policy")
}

#[test]
fn the_organization_policy_is_the_default_until_put_then_answers_what_was_put() {
    let (_db, _server, api) = server_with_token(Options::default());
    let default = api.get(POLICY);
    assert_eq!(default.status, 200, "{}", default.text);
    assert_eq!(
        default.text,
        r#"{"timezone":"UTC","windows":[],"max_attempts":1,"retry_intervals":["1h"],"retry_on":["no_answer","busy","voicemail"]}"#
    );
    let policy = json!({
        "timezone": "America/New_York",
        "windows": [{"days": ["mon", "tue"], "start": "08:00", "end": "21:00"}],
        "max_attempts": 3,
        "retry_intervals": ["2h", "1d"],
        "retry_on": ["no_answer", "busy"],
    });
    let resp = put(&api, POLICY, &policy);
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.json(), policy);
    assert_eq!(api.get(POLICY).json(), policy);
    // Absent fields take their defaults: a PUT replaces the whole policy.
    let resp = put(&api, POLICY, &json!({"timezone": "Europe/Paris"}));
    assert_eq!(resp.status, 200, "{}", resp.text);
    let expected = json!({
        "timezone": "Europe/Paris",
        "windows": [],
        "max_attempts": 1,
        "retry_intervals": ["1h"],
        "retry_on": ["no_answer", "busy", "voicemail"],
    });
    assert_eq!(api.get(POLICY).json(), expected);
}

#[test]
fn an_agent_override_round_trips_and_after_delete_is_404_again() {
    let (_db, _server, api) = server_with_token(Options::default());
    let path = agent_policy("agent_7");
    let missing = api.get(&path);
    let message = missing.assert_error(404, "NOT_FOUND");
    assert!(message.contains("agent_7"), "{message}");
    let policy = json!({
        "timezone": "Asia/Tokyo",
        "windows": [{"days": ["sat"], "start": "10:00", "end": "24:00"}],
        "max_attempts": 2,
        "retry_intervals": ["30m"],
        "retry_on": ["voicemail"],
    });
    let resp = put(&api, &path, &policy);
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json(), policy);
    assert_eq!(api.get(&path).json(), policy);
    // The override is the agent's alone: the organization keeps its own.
    assert_eq!(api.get(POLICY).json()["timezone"], "UTC");
    assert_eq!(api.get(&agent_policy("agent_8")).status, 404);

    let deleted = api.call("DELETE", &path, None);
    assert_eq!((deleted.status, deleted.text.as_str()), (204, ""));
    api.get(&path).assert_error(404, "NOT_FOUND");
    // Deleting what is not there is 404 too, not a silent success.
    api.call("DELETE", &path, None)
        .assert_error(404, "NOT_FOUND");
}

/// Bad policies, each with the field its error must name. Every rule is
/// the core's; the server must hand back its VALIDATION_ERROR as a 400.
fn bad_policies() -> Vec<(Value, &'static str)> {
    let window = |start: &str, end: &str| json!({"windows": [{"days": ["mon"], "start": start, "end": end}]});
    vec![
        (json!({"timezone": "Mars/Olympus_Mons"}), "timezone"),
        (window("10:00", "09:00"), "windows[0].end"),
        (window("10:00", "10:00"), "windows[0].end"),
        // Crossing midnight must be two windows.
        (window("22:00", "02:00"), "windows[0].end"),
        (window("8:00", "09:00"), "windows[0].start"),
        (
            json!({"windows": [{"days": ["funday"], "start": "08:00", "end": "09:00"}]}),
            "windows[0].days[0]",
        ),
        (json!({"retry_intervals": ["0h"]}), "retry_intervals[0]"),
        (json!({"retry_intervals": ["-1h"]}), "retry_intervals[0]"),
        (json!({"retry_intervals": []}), "retry_intervals"),
        (json!({"max_attempts": 0}), "max_attempts"),
        (json!({"max_attempts": 21}), "max_attempts"),
        (json!({"max_attempts": -1}), "max_attempts"),
        (json!({"retry_on": ["hung_up"]}), "retry_on[0]"),
        (json!({"window": []}), "body"),
    ]
}

#[test]
fn a_bad_policy_is_a_400_naming_its_field_and_the_stored_policy_stays() {
    let (_db, _server, api) = server_with_token(Options::default());
    let good = json!({
        "timezone": "Europe/London",
        "windows": [{"days": ["mon"], "start": "09:00", "end": "17:00"}],
        "max_attempts": 2,
        "retry_intervals": ["1h"],
        "retry_on": ["busy"],
    });
    assert_eq!(put(&api, POLICY, &good).status, 200);
    assert_eq!(put(&api, &agent_policy("agent_1"), &good).status, 200);
    for (body, field) in bad_policies() {
        for path in [
            POLICY.to_owned(),
            agent_policy("agent_1"),
            agent_policy("agent_2"),
        ] {
            let message = put(&api, &path, &body).assert_error(400, "VALIDATION_ERROR");
            assert!(
                message.starts_with(&format!("{field}: ")),
                "{path} {body}: {message}"
            );
        }
        // Nothing was written: each policy is as it was, agent_2 has none.
        assert_eq!(api.get(POLICY).json(), good, "{body}");
        assert_eq!(api.get(&agent_policy("agent_1")).json(), good, "{body}");
        assert_eq!(api.get(&agent_policy("agent_2")).status, 404, "{body}");
    }
    // A PUT needs a JSON object body, as every other body of the API.
    let empty = api.call("PUT", POLICY, None);
    let message = empty.assert_error(400, "VALIDATION_ERROR");
    assert!(message.starts_with("body: "), "{message}");
}

#[test]
fn create_keeps_timezone_and_expires_at_in_the_record_and_refuses_bad_ones() {
    let (_db, _server, api) = server_with_token(Options::default());
    let cb = api.create(json!({
        "timezone": "America/Chicago",
        "expires_at": "2030-03-06T10:00:00+01:00",
    }));
    assert_callback_shape(&cb);
    assert_eq!(cb["timezone"], "America/Chicago");
    assert_eq!(cb["expires_at"], "2030-03-06T09:00:00Z");
    assert_eq!(cb["attempt"], 1);
    assert_eq!(cb["previous_callback_id"], Value::Null);
    let id = cb["id"].as_str().unwrap();
    assert_eq!(api.get(&format!("/v1/callbacks/{id}")).json(), cb);
    // Absent, they are null (the callback follows its policy's zone).
    let plain = api.create(json!({}));
    assert_callback_shape(&plain);
    assert_eq!(
        (&plain["timezone"], &plain["expires_at"]),
        (&Value::Null, &Value::Null)
    );

    for (extra, field) in [
        (json!({"timezone": "Nowhere/Special"}), "timezone"),
        (json!({"expires_at": "2030-03-05T10:00:00Z"}), "expires_at"),
        (json!({"expires_at": "2030-03-04T10:00:00Z"}), "expires_at"),
        (json!({"expires_at": "tomorrow"}), "expires_at"),
    ] {
        let mut body = json!({"to_number": "+12015551234", "scheduled_at": "2030-03-05T10:00:00Z"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let message = api
            .post("/v1/callbacks", Some(&body))
            .assert_error(400, "VALIDATION_ERROR");
        assert!(
            message.starts_with(&format!("{field}: ")),
            "{body}: {message}"
        );
    }
    assert_eq!(
        api.list_all("").len(),
        2,
        "a refused create wrote a callback"
    );
}

#[test]
fn dispatch_outside_the_calling_window_is_409_naming_the_next_opening() {
    // Tuesday 10:00 UTC; the only window is Monday 08:00 to 09:00 UTC.
    let (_db, _server, api, clock) = server_at("2030-03-05T10:00:00Z", |_| {});
    let window = json!({"windows": [{"days": ["mon"], "start": "08:00", "end": "09:00"}]});
    assert_eq!(put(&api, POLICY, &window).status, 200);
    let cb = api.create(json!({}));
    let id = cb["id"].as_str().unwrap();
    let refused = api.post(&format!("/v1/callbacks/{id}/dispatch"), None);
    assert_eq!(refused.header("claim-token"), None);
    let message = refused.assert_error(409, "INVALID_TRANSITION");
    assert!(message.contains("2030-03-11T08:00:00Z"), "{message}");
    assert_eq!(
        api.get(&format!("/v1/callbacks/{id}")).json()["status"],
        "scheduled"
    );
    // Inside the window, the same dispatch goes through.
    clock.set(parse_timestamp("now", "2030-03-11T08:30:00Z").unwrap());
    let (dispatching, _) = api.dispatch(id);
    assert_eq!(dispatching["status"], "dispatching");
}

#[test]
fn retry_creates_the_next_attempt_once_and_refuses_beyond_max_attempts() {
    let (_db, _server, api) = server_with_token(Options::default());
    let policy = json!({"max_attempts": 2, "retry_intervals": ["1h"], "retry_on": ["no_answer"]});
    assert_eq!(put(&api, POLICY, &policy).status, 200);
    let first = api.create(json!({"reason": "pricing", "timezone": "Europe/Rome"}));
    let first_id = first["id"].as_str().unwrap();
    let failed = fail_call(&api, first_id);

    let retry = |id: &str, outcome: &str| {
        api.post(
            &format!("/v1/callbacks/{id}/retry"),
            Some(&json!({"outcome": outcome})),
        )
    };
    let resp = retry(first_id, "no_answer");
    assert_eq!(resp.status, 200, "{}", resp.text);
    let follow_up = resp.json();
    assert_callback_shape(&follow_up);
    assert_ne!(follow_up["id"], first["id"]);
    assert_eq!(follow_up["status"], "scheduled");
    assert_eq!(follow_up["attempt"], 2);
    assert_eq!(follow_up["previous_callback_id"], first_id);
    assert_eq!(follow_up["reason"], "pricing");
    assert_eq!(follow_up["timezone"], "Europe/Rome");
    // The callback itself is left as it was.
    let after = api.get(&format!("/v1/callbacks/{first_id}")).json();
    assert_eq!(
        (&after["status"], &after["failure_cause"]),
        (&failed["status"], &failed["failure_cause"])
    );

    // Repeated: the same follow-up, no second one.
    let again = retry(first_id, "no_answer");
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json()["id"], follow_up["id"]);
    assert_eq!(api.list_all("").len(), 2);

    // Attempt 2 of 2 did not reach the person either: no attempt 3.
    let second_id = follow_up["id"].as_str().unwrap();
    fail_call(&api, second_id);
    let message = retry(second_id, "no_answer").assert_error(409, "INVALID_TRANSITION");
    assert!(message.contains(second_id), "{message}");
    assert_eq!(api.list_all("").len(), 2);
}

#[test]
fn retry_refuses_what_the_policy_does_not_retry_and_reads_its_body_strictly() {
    let (_db, _server, api) = server_with_token(Options::default());
    let policy = json!({"max_attempts": 3, "retry_on": ["no_answer"]});
    assert_eq!(put(&api, POLICY, &policy).status, 200);
    let cb = api.create(json!({}));
    let id = cb["id"].as_str().unwrap();
    let path = format!("/v1/callbacks/{id}/retry");
    // Still scheduled: there was no call to follow up.
    api.post(&path, Some(&json!({"outcome": "no_answer"})))
        .assert_error(409, "INVALID_TRANSITION");
    fail_call(&api, id);
    // Busy is not in retry_on.
    api.post(&path, Some(&json!({"outcome": "busy"})))
        .assert_error(409, "INVALID_TRANSITION");
    for (body, field) in [
        (json!({"outcome": "hung_up"}), "outcome"),
        (json!({}), "outcome"),
        (json!({"outcome": "busy", "when": "now"}), "body"),
    ] {
        let message = api
            .post(&path, Some(&body))
            .assert_error(400, "VALIDATION_ERROR");
        assert!(
            message.starts_with(&format!("{field}: ")),
            "{body}: {message}"
        );
    }
    api.post(
        "/v1/callbacks/cb_unknown/retry",
        Some(&json!({"outcome": "no_answer"})),
    )
    .assert_error(404, "NOT_FOUND");
    assert_eq!(
        api.list_all("").len(),
        1,
        "a refused retry created a callback"
    );
}

#[test]
fn the_worker_fails_callbacks_still_scheduled_at_their_deadline_as_expired() {
    let (_db, _server, api, clock) = server_at("2030-03-05T09:00:00Z", |options| {
        options.recover_interval = Duration::from_millis(50);
    });
    let overdue = api.create(json!({"expires_at": "2030-03-05T12:00:00Z"}));
    let later = api.create(json!({"expires_at": "2030-03-05T18:00:00Z"}));
    let open_ended = api.create(json!({}));
    clock.set(parse_timestamp("now", "2030-03-05T13:00:00Z").unwrap());
    let get = |cb: &Value| {
        api.get(&format!("/v1/callbacks/{}", cb["id"].as_str().unwrap()))
            .json()
    };
    let expired = eventually(Duration::from_secs(20), || {
        let now = get(&overdue);
        (now["status"] == "failed").then_some(now)
    });
    assert_eq!(expired["failure_cause"], callback_store::EXPIRED);
    let history = api.get(&format!(
        "/v1/callbacks/{}/events",
        overdue["id"].as_str().unwrap()
    ));
    assert_eq!(actions_of(&history.json()), ["create", "expire"]);
    // Only what is past its deadline: the others are still scheduled.
    assert_eq!(get(&later)["status"], "scheduled");
    assert_eq!(get(&open_ended)["status"], "scheduled");
}

#[test]
fn a_webhook_answer_no_answer_fails_the_callback_and_creates_its_follow_up() {
    let dialer = answering(r#"{"outcome":"no_answer"}"#);
    let (_db, _server, api) = webhook_server(&dialer, |_| {});
    let policy = json!({"max_attempts": 2, "retry_intervals": ["2h"], "retry_on": ["no_answer"]});
    assert_eq!(put(&api, POLICY, &policy).status, 200);
    let cb = api.create(json!({}));
    let id = cb["id"].as_str().unwrap();
    let resp = api.post(&format!("/v1/callbacks/{id}/dispatch"), None);
    assert_eq!(resp.status, 200, "{}", resp.text);
    let done = resp.json();
    assert_callback_shape(&done);
    assert_eq!(done["status"], "failed");
    assert_eq!(done["failure_cause"], "no_answer");
    let follow_ups: Vec<Value> = api
        .list_all("")
        .into_iter()
        .filter(|c| c["previous_callback_id"] == id)
        .collect();
    assert_eq!(follow_ups.len(), 1, "{follow_ups:?}");
    assert_eq!(follow_ups[0]["attempt"], 2);
    assert_eq!(follow_ups[0]["status"], "scheduled");
    // Asking for the retry now answers the follow-up the webhook made.
    let retry = api.post(
        &format!("/v1/callbacks/{id}/retry"),
        Some(&json!({"outcome": "no_answer"})),
    );
    assert_eq!(retry.status, 200, "{}", retry.text);
    assert_eq!(retry.json()["id"], follow_ups[0]["id"]);
}

#[test]
fn a_webhook_answer_busy_under_the_default_policy_only_fails_the_callback() {
    // The default policy: one attempt, so the outcome is recorded, no more.
    let dialer = answering(r#"{"outcome":"busy"}"#);
    let (_db, _server, api) = webhook_server(&dialer, |_| {});
    let cb = api.create(json!({}));
    let id = cb["id"].as_str().unwrap();
    let done = api
        .post(&format!("/v1/callbacks/{id}/dispatch"), None)
        .json();
    assert_eq!(
        (done["status"].as_str(), done["failure_cause"].as_str()),
        (Some("failed"), Some("busy"))
    );
    assert_eq!(api.list_all("").len(), 1);
}

#[test]
fn healthz_names_the_tz_database_version() {
    let (_db, server, _api) = server_with_token(Options::default());
    let health = send(client().get(server.url("/healthz")));
    assert_eq!(health.status, 200);
    assert_eq!(
        health.text,
        format!(
            r#"{{"status":"ok","tzdb_version":"{}"}}"#,
            callback_store::tzdb_version()
        )
    );
    // A real version, like 2025b, not an empty string.
    assert!(callback_store::tzdb_version().starts_with("20"));
}

// ------------------------------------------------------------------ helpers

/// Dispatches `id` (no webhook: it is left dispatching) and fails it with
/// its claim: the callback, `failed`.
fn fail_call(api: &Api, id: &str) -> Value {
    let (_, token) = api.dispatch(id);
    let resp = api.post(
        &format!("/v1/callbacks/{id}/fail"),
        Some(&json!({"failure_cause": "nobody picked up", "claim_token": token})),
    );
    assert_eq!(resp.status, 200, "{}", resp.text);
    let failed = resp.json();
    assert_eq!(failed["status"], "failed");
    failed
}

/// A dialer on loopback answering every call `200` with `answer` (testkit's
/// dialer answers by mode, and has no mode for a call nobody picked up).
fn answering(answer: &'static str) -> Dialer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut request = Vec::new();
            let mut buf = [0; 4096];
            // The request's head, then as much body as it announces.
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if request.len() >= end + 4 + length {
                        break;
                    }
                }
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    Dialer {
        url,
        received: Default::default(),
    }
}
