//! The server with a dispatch webhook places at most one call per claim: a
//! spent claim cannot finish the callback again, and a call whose callback
//! was recovered while it was being placed cannot overwrite the recovery.
//! (The dispatcher and `POST …/dispatch` racing for the same callbacks:
//! `cli/tests/serve_webhook.rs`, which counts the dispatcher's wins in the
//! command's log.)

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[test]
fn the_claim_a_webhook_dispatch_spent_cannot_finish_the_callback_again() {
    let dialer = Dialer::start(10);
    let (_db, _server, api) = webhook_server(&dialer, |_| {});
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
    let (db, _server, api) = webhook_server(&dialer, |o| {
        o.webhook_timeout = Duration::from_secs(5);
        o.stale_after = None;
    });
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
    let store = db.store();
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
