//! The server with a dispatch webhook: calls are placed by POSTing the
//! callback to a fake dialer on loopback, and its answer decides the
//! callback's end. (`webhook_server` starts each server: a 1 s webhook
//! timeout, and a dispatcher polling every hour, so that only
//! `POST …/dispatch` places calls. The dispatcher's own rounds, recovery,
//! SIGTERM and the flags are the command's: `cli/tests/serve_webhook.rs`.)

mod common;

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
    let (_db, _server, api) = webhook_server(&dialer, |_| {});
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
    let actions = actions_of(&history);
    // The claim was spent (place_call) before the dialer was called.
    assert_eq!(
        actions,
        ["create", "dispatch", "place_call", "complete_dispatch"]
    );
}

#[test]
fn an_error_status_fails_the_callback_with_the_status_and_the_answer() {
    let dialer = Dialer::start(10);
    let (_db, _server, api) = webhook_server(&dialer, |_| {});
    let done = dispatch(&api, "error");
    assert_eq!(done["status"], "failed");
    let cause = done["failure_cause"].as_str().unwrap();
    assert!(cause.contains("HTTP 503"), "{cause}");
    assert!(cause.contains("dialer is down"), "{cause}");
}

#[test]
fn a_dialer_slower_than_the_timeout_fails_the_callback_as_timed_out() {
    let dialer = Dialer::start(10);
    let (_db, _server, api) = webhook_server(&dialer, |_| {});
    let done = dispatch(&api, "slow");
    assert_eq!(done["status"], "failed");
    let cause = done["failure_cause"].as_str().unwrap();
    assert!(cause.contains("timed out after 1000 ms"), "{cause}");
}

#[test]
fn a_garbage_or_sessionless_answer_fails_the_callback_as_a_bad_answer() {
    let dialer = Dialer::start(10);
    let (_db, _server, api) = webhook_server(&dialer, |_| {});
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
    let (_db, _server, api) = webhook_server(&dialer, |_| {});
    let done = dispatch(&api, "ok");
    assert_eq!(done["status"], "failed");
    let cause = done["failure_cause"].as_str().unwrap();
    assert!(cause.starts_with("webhook request failed"), "{cause}");
}
