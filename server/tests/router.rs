//! The HTTP layer as a library: the Router mounted in another axum app, the
//! served description matching the routes, and `serve` stopping on its
//! shutdown future. (The full HTTP suite runs the server in-process:
//! server/tests/http_*.rs.) Each runs on the run's backend (`TestDb`).

mod common;

use std::time::Duration;

use common::{blocking, InProcess, TestDb};

use callback_store_http::{router, serve, ServeOptions};
use serde_json::Value;

async fn start(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_router_mounts_under_a_prefix_in_another_app() {
    let (_db, store, token) = blocking(|| {
        let db = TestDb::new();
        let (store, token) = (db.store(), db.token("org_a"));
        (db, store, token)
    });
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "their own page" }))
        .nest("/callbacks-api", router(store));
    let base = start(app).await;
    let client = client();
    let created = client
        .post(format!("{base}/callbacks-api/v1/callbacks"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(r#"{"to_number":"+12015551234","scheduled_at":"2030-01-01T00:00:00Z"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = serde_json::from_str(&created.text().await.unwrap()).unwrap();
    let id = created["id"].as_str().unwrap();
    let got: Value = client
        .get(format!("{base}/callbacks-api/v1/callbacks/{id}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap();
    assert_eq!(got, created);
    let theirs = client.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(theirs.text().await.unwrap(), "their own page");
}

/// Every operation of openapi.yaml is routed: none answers "no route" or
/// "method not allowed".
#[tokio::test]
async fn every_operation_in_openapi_yaml_is_routed() {
    let (_db, store, token) = blocking(|| {
        let db = TestDb::new();
        let (store, token) = (db.store(), db.token("org_a"));
        (db, store, token)
    });
    let base = start(router(store)).await;
    let spec = callback_store_http::openapi::value().unwrap();
    let client = client();
    let mut operations = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, _) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            operations += 1;
            let url = format!(
                "{base}{}",
                path.replace("{id}", "cb_unknown")
                    .replace("{agent_id}", "agent_unknown")
            );
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let resp = client
                .request(method.clone(), &url)
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            // Every answer is JSON but a 204 (DELETE), which has no body,
            // and the metrics (OpenMetrics text).
            let body: Value = match status {
                204 => Value::Null,
                200 if path == "/metrics" => Value::Null,
                _ => serde_json::from_str(&text).unwrap(),
            };
            assert_ne!(status, 405, "{method} {path}");
            // A 404 must be the resource's (it names it), not "no route".
            let error = body["error"].as_str().unwrap_or("");
            assert!(
                status != 404 || error.contains("cb_unknown") || error.contains("agent_unknown"),
                "{method} {path}: {body}"
            );
        }
    }
    assert_eq!(operations, 20);
}

#[tokio::test]
async fn serve_answers_until_its_shutdown_future_completes_then_returns() {
    let (_db, store) = blocking(|| {
        let db = TestDb::new();
        let store = db.store();
        (db, store)
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, store, ServeOptions::default(), async {
        let _ = stopped.await;
    }));
    let health: Value = client()
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap();
    assert_eq!(health["status"], "ok");
    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("serve returns after the shutdown future")
        .unwrap();
    assert!(result.is_ok());
    assert!(client()
        .get(format!("{base}/healthz"))
        .send()
        .await
        .is_err());
}
