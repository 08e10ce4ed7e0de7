//! `callback-store serve --dispatch-webhook` as a process: the flags that
//! set the dispatcher, recovery and the webhook timeout, what the server
//! logs of the calls it places and the callbacks it recovers, SIGTERM
//! during a call, and the flags refused at start. (What the webhook's
//! answers do to a callback is proved in-process by
//! `server/tests/http_webhook.rs` and `http_webhook_claims.rs`.)
//! `webhook_server` starts each server: a 1 s webhook timeout, and a
//! dispatcher polling every hour, so that only `POST …/dispatch` places
//! calls unless a test says otherwise.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

#[test]
fn the_dispatcher_and_post_dispatch_racing_for_callbacks_call_each_once() {
    const CALLBACKS: usize = 20;
    // Room for twice the calls, so that a second call would be seen.
    let dialer = Dialer::start(2 * CALLBACKS);
    let extra = [
        "--webhook-timeout",
        "5s",
        "--dispatch-interval",
        "5ms",
        "--dispatch-batch",
        "2",
    ];
    let (_db, server, api) = webhook_server(&dialer, &extra);
    // All due at one instant, when the dispatcher and the requests both go.
    let due_at = chrono::Utc::now() + chrono::Duration::seconds(2);
    let ids: Vec<String> = (0..CALLBACKS)
        .map(|_| {
            let cb = api.create(json!({"scheduled_at": due_at.to_rfc3339()}));
            cb["id"].as_str().unwrap().to_owned()
        })
        .collect();
    let requests: Vec<_> = ids
        .iter()
        .map(|id| {
            let (client, token) = (api.client.clone(), api.token.clone());
            let url = format!("{}/v1/callbacks/{id}/dispatch", api.base);
            std::thread::spawn(move || {
                let wait = (due_at - chrono::Utc::now()).to_std().unwrap_or_default();
                std::thread::sleep(wait);
                send(client.post(url).bearer_auth(token))
            })
        })
        .collect();
    let mut won_by_requests = 0;
    for request in requests {
        let resp = request.join().unwrap();
        if resp.status == 200 {
            assert_eq!(resp.json()["status"], "dispatched", "{}", resp.text);
            won_by_requests += 1;
        } else {
            // The dispatcher claimed it first.
            resp.assert_error(409, "INVALID_TRANSITION");
        }
    }
    for id in &ids {
        eventually(Duration::from_secs(15), || {
            (api.get(&format!("/v1/callbacks/{id}")).json()["status"] == "dispatched").then_some(())
        });
    }
    let calls = calls_by_id(&dialer);
    for id in &ids {
        assert_eq!(calls.get(id), Some(&1), "calls for {id}");
    }
    assert_eq!(dialer.received().len(), CALLBACKS);
    let won_by_dispatcher = server
        .log()
        .iter()
        .filter(|l| l.contains("dispatched, session"))
        .count();
    assert_eq!(won_by_requests + won_by_dispatcher, CALLBACKS);
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
    let db = TestDb::new();
    let token = db.token("org_a");
    let server = db.serve(&["--stale-after", "300ms", "--recover-interval", "100ms"]);
    let api = Api::new(&server.base, &token);
    let cb = api.create(json!({}));
    let id = cb["id"].as_str().unwrap();
    let resp = api.post(&format!("/v1/callbacks/{id}/dispatch"), None);
    assert_eq!(resp.json()["status"], "dispatching");
    let failed = eventually(Duration::from_secs(10), || {
        let now = api.get(&format!("/v1/callbacks/{id}")).json();
        (now["status"] == "failed").then_some(now)
    });
    assert_eq!(failed["failure_cause"], "dispatch_interrupted");
    // The log line follows the commit that the API already shows: wait for it.
    eventually(Duration::from_secs(10), || {
        server.log().iter().any(|l| l.contains(id)).then_some(())
    });
}

#[test]
fn a_webhook_timeout_not_shorter_than_stale_after_is_refused_at_start() {
    let db = TestDb::new();
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
