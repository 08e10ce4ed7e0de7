//! `serve --dispatch-webhook` places at most one call per claim: the
//! dispatcher and `POST …/dispatch` racing for the same callbacks call each
//! person once, a spent claim cannot finish the callback again, and a call
//! whose callback was recovered while it was being placed cannot overwrite
//! the recovery.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use callback_store::Store;
use common::*;
use serde_json::{json, Value};

/// How many calls the dialer received for each callback id.
fn calls_by_id(dialer: &Dialer) -> HashMap<String, usize> {
    let mut calls = HashMap::new();
    for received in dialer.received() {
        let callback: Value = serde_json::from_str(&received.body).unwrap();
        *calls
            .entry(callback["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    calls
}

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
fn the_claim_a_webhook_dispatch_spent_cannot_finish_the_callback_again() {
    let dialer = Dialer::start(10);
    let (_db, _server, api) = webhook_server(&dialer, &[]);
    let id = api.create(json!({}))["id"].as_str().unwrap().to_owned();
    let (done, claim) = api.dispatch(&id);
    assert_eq!(done["status"], "dispatched");
    let before = api.get(&format!("/v1/callbacks/{id}")).json();
    let msg = api
        .post(
            &format!("/v1/callbacks/{id}/fail"),
            Some(&json!({"failure_cause": "late", "claim_token": claim})),
        )
        .assert_error(409, "INVALID_TRANSITION");
    assert!(msg.contains("stale claim"), "{msg}");
    assert_eq!(api.get(&format!("/v1/callbacks/{id}")).json(), before);
    assert_eq!(dialer.received().len(), 1);
}

#[test]
fn a_call_whose_callback_was_recovered_meanwhile_cannot_overwrite_the_recovery() {
    let dialer = Dialer::start(10);
    // Recovery is left to this test, which runs it while the call is placed.
    let extra = ["--webhook-timeout", "5s", "--no-recovery"];
    let (db, _server, api) = webhook_server(&dialer, &extra);
    let id = api.create(json!({"metadata": {"mode": "slow"}}))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (client, url) = (
        api.client.clone(),
        format!("{}/v1/callbacks/{id}/dispatch", api.base),
    );
    let token = api.token.clone();
    let request = std::thread::spawn(move || send(client.post(url).bearer_auth(token)));
    // While the dialer is still answering, another process recovers it.
    eventually(Duration::from_secs(10), || {
        (!dialer.received().is_empty()).then_some(())
    });
    let store = Store::open(&db.path).unwrap();
    assert_eq!(
        store
            .recover_stale(store.now(), Duration::ZERO)
            .unwrap()
            .len(),
        1
    );
    let resp = request.join().unwrap();
    let msg = resp.assert_error(409, "INVALID_TRANSITION");
    assert!(msg.contains("stale claim"), "{msg}");
    let now = api.get(&format!("/v1/callbacks/{id}")).json();
    assert_eq!(now["status"], "failed");
    assert_eq!(now["failure_cause"], "dispatch_interrupted");
    // A failed callback is never dispatched again: still one call.
    api.post(&format!("/v1/callbacks/{id}/dispatch"), None)
        .assert_error(409, "INVALID_TRANSITION");
    assert_eq!(dialer.received().len(), 1);
}
