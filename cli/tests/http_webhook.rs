//! `serve --dispatch-webhook`: calls are placed by POSTing the callback to a
//! fake dialer on loopback, and its answer decides the callback's end.
//! Also graceful shutdown, with a call being placed when SIGTERM arrives.
//! (`webhook_server` starts each server: a 1 s webhook timeout, and a
//! dispatcher polling every hour, so that only `POST …/dispatch` places
//! calls unless a test says otherwise.)

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn dispatch(api: &Api, mode: &str) -> Value {
    let cb = api.create(json!({"metadata": {"mode": mode}}));
    let resp = api.post(
        &format!("/v1/callbacks/{}/dispatch", cb["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(resp.status, 200, "{}", resp.text);
    let done = resp.json();
    assert_callback_shape(&done);
    done
}

#[test]
fn a_2xx_json_answer_completes_the_callback_with_its_created_session_id() {
    let dialer = Dialer::start(10);
    let (_db, _server, api) = webhook_server(&dialer, &[]);
    let done = dispatch(&api, "ok");
    let id = done["id"].as_str().unwrap();
    assert_eq!(done["status"], "dispatched");
    assert_eq!(done["created_session_id"], format!("sess_for_{id}"));
    // The dialer got the callback's JSON (dispatching), keyed by its id.
    let received = dialer.received();
    assert_eq!(received.len(), 1);
    let sent: Value = serde_json::from_str(&received[0].body).unwrap();
    assert_callback_shape(&sent);
    assert_eq!(sent["id"], id);
    assert_eq!(sent["status"], "dispatching");
    assert_eq!(received[0].header("idempotency-key"), Some(id));
    assert_eq!(received[0].header("content-type"), Some("application/json"));
    let history = api.get(&format!("/v1/callbacks/{id}/events")).json();
    let actions: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    // The claim was spent (place_call) before the dialer was called.
    assert_eq!(
        actions,
        ["create", "dispatch", "place_call", "complete_dispatch"]
    );
}

#[test]
fn an_error_status_fails_the_callback_with_the_status_and_the_answer() {
    let dialer = Dialer::start(10);
    let (_db, _server, api) = webhook_server(&dialer, &[]);
    let done = dispatch(&api, "error");
    assert_eq!(done["status"], "failed");
    let cause = done["failure_cause"].as_str().unwrap();
    assert!(cause.contains("HTTP 503"), "{cause}");
    assert!(cause.contains("dialer is down"), "{cause}");
}

#[test]
fn a_dialer_slower_than_the_timeout_fails_the_callback_as_timed_out() {
    let dialer = Dialer::start(10);
    let (_db, _server, api) = webhook_server(&dialer, &[]);
    let done = dispatch(&api, "slow");
    assert_eq!(done["status"], "failed");
    let cause = done["failure_cause"].as_str().unwrap();
    assert!(cause.contains("timed out after 1000 ms"), "{cause}");
}

#[test]
fn a_garbage_or_sessionless_answer_fails_the_callback_as_a_bad_answer() {
    let dialer = Dialer::start(10);
    let (_db, _server, api) = webhook_server(&dialer, &[]);
    let garbage = dispatch(&api, "garbage");
    assert_eq!(garbage["status"], "failed");
    let cause = garbage["failure_cause"].as_str().unwrap();
    assert!(cause.contains("without a created_session_id"), "{cause}");
    assert!(cause.contains("surprise"), "{cause}");
    let sessionless = dispatch(&api, "no-session");
    assert_eq!(sessionless["status"], "failed");
    assert!(sessionless["failure_cause"]
        .as_str()
        .unwrap()
        .contains(r#"{\"placed\":true}"#));
}

#[test]
fn an_unreachable_webhook_fails_the_callback_with_the_connection_error() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    let dialer = Dialer {
        url,
        received: Default::default(),
    };
    let (_db, _server, api) = webhook_server(&dialer, &[]);
    let done = dispatch(&api, "ok");
    assert_eq!(done["status"], "failed");
    let cause = done["failure_cause"].as_str().unwrap();
    assert!(cause.starts_with("webhook request failed"), "{cause}");
}

#[test]
fn the_dispatcher_places_due_callbacks_by_itself_and_leaves_future_ones() {
    let dialer = Dialer::start(20);
    let extra = ["--webhook-timeout", "2s", "--dispatch-interval", "100ms"];
    let (_db, server, api) = webhook_server(&dialer, &extra);
    let past = chrono::Utc::now() - chrono::Duration::minutes(1);
    let due: Vec<Value> = (0..3)
        .map(|_| api.create(json!({"scheduled_at": past.to_rfc3339()})))
        .collect();
    let future = api.create(json!({"scheduled_at": "2099-01-01T00:00:00Z"}));
    for cb in &due {
        let id = cb["id"].as_str().unwrap();
        let done = eventually(Duration::from_secs(10), || {
            let now = api.get(&format!("/v1/callbacks/{id}")).json();
            (now["status"] == "dispatched").then_some(now)
        });
        assert_eq!(done["created_session_id"], format!("sess_for_{id}"));
        let events = api.get(&format!("/v1/callbacks/{id}/events")).json();
        assert_eq!(events["events"][1]["action"], "claim_due");
    }
    let future = api
        .get(&format!("/v1/callbacks/{}", future["id"].as_str().unwrap()))
        .json();
    assert_eq!(future["status"], "scheduled");
    assert_eq!(dialer.received().len(), 3, "each due call placed once");
    assert!(server
        .log()
        .iter()
        .any(|line| line.contains("dispatched, session sess_for_")));
}

#[test]
fn sigterm_lets_the_call_being_placed_finish_and_exits_0() {
    let dialer = Dialer::start(10);
    let (_db, mut server, api) = webhook_server(&dialer, &["--webhook-timeout", "5s"]);
    let cb = api.create(json!({"metadata": {"mode": "slow"}}));
    let id = cb["id"].as_str().unwrap().to_owned();
    let client = api.client.clone();
    let url = format!("{}/v1/callbacks/{id}/dispatch", api.base);
    let token = api.token.clone();
    let request = std::thread::spawn(move || send(client.post(url).bearer_auth(token)));
    // SIGTERM once the dialer has the call.
    eventually(Duration::from_secs(10), || {
        (!dialer.received().is_empty()).then_some(())
    });
    server.terminate();
    let resp = request.join().unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json()["status"], "dispatched");
    assert_eq!(resp.json()["created_session_id"], format!("sess_slow_{id}"));
    let status = server.wait();
    assert!(status.success(), "{status:?}");
    assert!(server.log().iter().any(|l| l.contains("stopped")));
}

#[test]
fn callbacks_left_dispatching_are_failed_by_periodic_recovery() {
    let db = Db::new();
    let token = db.token("org_a");
    let server = db.serve(&["--stale-after", "300ms", "--recover-interval", "100ms"]);
    let api = Api::new(&server, &token);
    let cb = api.create(json!({}));
    let id = cb["id"].as_str().unwrap();
    let resp = api.post(&format!("/v1/callbacks/{id}/dispatch"), None);
    assert_eq!(resp.json()["status"], "dispatching");
    let failed = eventually(Duration::from_secs(10), || {
        let now = api.get(&format!("/v1/callbacks/{id}")).json();
        (now["status"] == "failed").then_some(now)
    });
    assert_eq!(failed["failure_cause"], "dispatch_interrupted");
    assert!(server.log().iter().any(|l| l.contains(id)));
}

#[test]
fn a_webhook_timeout_not_shorter_than_stale_after_is_refused_at_start() {
    let db = Db::new();
    let run = db.run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--dispatch-webhook",
        "http://127.0.0.1:9/",
        "--webhook-timeout",
        "10m",
        "--stale-after",
        "5m",
    ]);
    assert_eq!(run.code, 7, "{}", run.stderr);
    assert_eq!(run.error()["code"], "VALIDATION_ERROR");
    let run = db.run(&["serve", "--dispatch-webhook", "ftp://x/"]);
    assert_eq!(run.code, 7, "{}", run.stderr);
}
