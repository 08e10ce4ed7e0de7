//! The webhook dialer places calls only for live claims: the store spends
//! the claim before the webhook is called, so a claim placed once, or whose
//! callback was recovered meanwhile, never reaches the webhook again. On
//! the run's backend (`TestDb`); the store is called off the runtime, as the
//! server calls it from its blocking pool.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use callback_store::{Callback, Status, Store};
use callback_store_http::{place_and_record, Webhook};
use common::{blocking, InProcess, TestDb};
use serde_json::{json, Value};

/// What the webhook saw of each call: the callback id, and the actions of
/// its history at the moment the webhook was called.
type Calls = Arc<Mutex<Vec<(String, Vec<String>)>>>;

/// A webhook on loopback that records each call, with the history the store
/// had when it came, and answers with a session.
async fn counting_webhook(store: Store) -> (Webhook, Calls) {
    async fn answer(
        State((store, calls)): State<(Store, Calls)>,
        body: Bytes,
    ) -> ([(header::HeaderName, &'static str); 1], String) {
        let callback: Value = serde_json::from_slice(&body).unwrap();
        let id = callback["id"].as_str().unwrap().to_owned();
        let org = callback["organization_id"].as_str().unwrap().to_owned();
        let history = {
            let (store, id) = (store.clone(), id.clone());
            tokio::task::spawn_blocking(move || store.organization(&org)?.history(&id))
                .await
                .unwrap()
                .unwrap()
        };
        let actions = history
            .iter()
            .map(|e| e.action.as_str().to_owned())
            .collect();
        calls.lock().unwrap().push((id.clone(), actions));
        let answer = json!({"created_session_id": format!("sess_for_{id}")});
        (
            [(header::CONTENT_TYPE, "application/json")],
            answer.to_string(),
        )
    }
    let calls = Calls::default();
    let app = axum::Router::new()
        .route("/", axum::routing::post(answer))
        .with_state((store, calls.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (Webhook::new(&url, Duration::from_secs(5)).unwrap(), calls)
}

/// A store on a fresh database (kept with it) with one callback of org_a
/// due now.
fn store_with_callback() -> (TestDb, Store, String) {
    blocking(|| {
        let db = TestDb::new();
        let store = db.store();
        let new = callback_store::NewCallback {
            to_number: "+12015551234".to_owned(),
            scheduled_at: store.now(),
            ..Default::default()
        };
        let id = store.organization("org_a").unwrap().create(new).unwrap().id;
        (db, store, id)
    })
}

fn get(store: &Store, id: &str) -> Callback {
    blocking(|| store.organization("org_a").unwrap().get(id).unwrap())
}

fn dispatch(store: &Store, id: &str) -> callback_store::Claim {
    blocking(|| store.organization("org_a").unwrap().dispatch(id).unwrap())
}

#[tokio::test]
async fn the_claim_is_spent_before_the_webhook_is_called() {
    let (_db, store, id) = store_with_callback();
    let (webhook, calls) = counting_webhook(store.clone()).await;
    let claim = dispatch(&store, &id);
    let done = place_and_record(&store, &webhook, claim).await.unwrap();
    assert_eq!(done.status, Status::Dispatched);
    assert_eq!(done.created_session_id, Some(format!("sess_for_{id}")));
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0, id);
    assert_eq!(calls[0].1, ["create", "dispatch", "place_call"]);
}

#[tokio::test]
async fn a_claim_placed_once_is_refused_the_second_time_and_the_webhook_not_called() {
    let (_db, store, id) = store_with_callback();
    let (webhook, calls) = counting_webhook(store.clone()).await;
    let claim = dispatch(&store, &id);
    place_and_record(&store, &webhook, claim.clone())
        .await
        .unwrap();
    let before = get(&store, &id);
    let err = place_and_record(&store, &webhook, claim).await.unwrap_err();
    assert_eq!((err.status.as_u16(), err.code), (409, "INVALID_TRANSITION"));
    assert!(err.error.contains("stale claim"), "{}", err.error);
    assert_eq!(calls.lock().unwrap().len(), 1);
    assert_eq!(get(&store, &id), before);
}

#[tokio::test]
async fn a_claim_whose_callback_was_recovered_never_reaches_the_webhook() {
    let (_db, store, id) = store_with_callback();
    let (webhook, calls) = counting_webhook(store.clone()).await;
    let claim = dispatch(&store, &id);
    let recovered = blocking(|| store.recover_stale(store.now(), Duration::ZERO).unwrap());
    assert_eq!(recovered.len(), 1);
    let before = get(&store, &id);
    let err = place_and_record(&store, &webhook, claim).await.unwrap_err();
    assert_eq!((err.status.as_u16(), err.code), (409, "INVALID_TRANSITION"));
    assert!(err.error.contains("stale claim"), "{}", err.error);
    assert!(calls.lock().unwrap().is_empty());
    assert_eq!(get(&store, &id), before);
    assert_eq!(before.status, Status::Failed);
}

/// The webhook dispatcher's runtime may be multi-threaded (as `serve`'s is):
/// the webhook call driven from the blocking pool works there too, and
/// claims placed concurrently are each placed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_placements_of_one_claim_call_the_webhook_once() {
    let (_db, store, id) = store_with_callback();
    let (webhook, calls) = counting_webhook(store.clone()).await;
    let claim = dispatch(&store, &id);
    let attempts: Vec<_> = (0..8)
        .map(|_| {
            let (store, webhook, claim) = (store.clone(), webhook.clone(), claim.clone());
            tokio::spawn(async move { place_and_record(&store, &webhook, claim).await })
        })
        .collect();
    let mut placed = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(done) => {
                assert_eq!(done.status, Status::Dispatched);
                placed += 1;
            }
            Err(err) => assert_eq!(err.code, "INVALID_TRANSITION", "{}", err.error),
        }
    }
    assert_eq!(placed, 1);
    assert_eq!(calls.lock().unwrap().len(), 1);
}
