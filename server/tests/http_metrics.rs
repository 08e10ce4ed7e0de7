//! `GET /metrics` and `GET /v1/stats`: the OpenMetrics exposition and the
//! dashboard's JSON, who sees what (an operator every organization and the
//! process's counters, an organization's key its own store gauges only, no
//! token nothing), and a worker's metrics port (`serve_metrics`).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use callback_store_http::{
    run_workers, serve_metrics, Metrics, TaskTracker, Webhook, WorkerOptions,
};
use common::*;
use serde_json::{json, Value};

/// One sample of the exposition: its name and labels as written, and its value.
type Samples = BTreeMap<String, f64>;

/// The samples of an OpenMetrics text, keyed `name{labels}`; checks that
/// it ends with `# EOF` and that every other line is a comment or a sample.
fn samples(text: &str) -> Samples {
    assert!(text.ends_with("# EOF\n"), "{text}");
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| {
            let (key, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
            (
                key.to_owned(),
                value.parse().unwrap_or_else(|_| panic!("{line}")),
            )
        })
        .collect()
}

fn scrape(base: &str, token: &str) -> Resp {
    send(client().get(format!("{base}/metrics")).bearer_auth(token))
}

fn scraped(base: &str, token: &str) -> Samples {
    let resp = scrape(base, token);
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(
        resp.header("content-type"),
        Some(callback_store_http::METRICS_CONTENT_TYPE)
    );
    samples(&resp.text)
}

fn gauge(samples: &Samples, org: &str, status: &str) -> f64 {
    let key = format!("callback_store_callbacks{{organization_id=\"{org}\",status=\"{status}\"}}");
    *samples
        .get(&key)
        .unwrap_or_else(|| panic!("no {key} in {samples:#?}"))
}

/// A server with org_a's API, org_b's, and an operator token.
fn two_organizations(options: Options) -> (TestDb, Server, Api, Api, String) {
    let (db, server, a) = server_with_token(options);
    let b = Api::new(&server.base, &db.token("org_b"));
    let operator = db.store().create_operator_key("ops").unwrap().token;
    (db, server, a, b, operator)
}

#[test]
fn metrics_without_a_valid_token_are_401_with_the_reference_body() {
    let (_db, server, _api) = server_with_token(Options::default());
    let none = send(client().get(server.url("/metrics")));
    assert_eq!((none.status, none.text.as_str()), (401, UNAUTHORIZED_BODY));
    let unknown = scrape(&server.base, "not-a-token");
    assert_eq!(
        (unknown.status, unknown.text.as_str()),
        (401, UNAUTHORIZED_BODY)
    );
}

#[test]
fn an_organizations_key_sees_its_own_store_gauges_and_nothing_of_another_or_of_the_process() {
    let (_db, server, a, b, _) = two_organizations(Options::default());
    a.create(json!({}));
    b.create(json!({"scheduled_at": "2020-01-01T00:00:00Z"}));
    let seen = scraped(&server.base, &a.token);
    assert_eq!(gauge(&seen, "org_a", "scheduled"), 1.0);
    assert_eq!(
        gauge(&seen, "org_a", "cancelled"),
        0.0,
        "every status, zero included"
    );
    assert!(seen.contains_key("callback_store_due_callbacks{organization_id=\"org_a\"}"));
    for key in seen.keys() {
        assert!(
            !key.contains("org_b"),
            "another organization's series: {key}"
        );
        assert!(
            key.contains("organization_id=\"org_a\""),
            "a process-wide series: {key}"
        );
    }
}

#[test]
fn an_operator_sees_every_organization_and_the_process_counters_by_route_template() {
    let dialer = Dialer::start(10);
    let (db, server, a) = webhook_server(&dialer, |_| {});
    let b = Api::new(&server.base, &db.token("org_b"));
    let operator = db.store().create_operator_key("ops").unwrap().token;
    let placed = a.create(json!({"scheduled_at": "2020-01-01T00:00:00Z"}));
    let id = placed["id"].as_str().unwrap();
    assert_eq!(
        a.post(&format!("/v1/callbacks/{id}/dispatch"), None).status,
        200
    );
    let failing = a.create(json!({"metadata": {"mode": "error"}}));
    let failing = failing["id"].as_str().unwrap();
    a.post(&format!("/v1/callbacks/{failing}/dispatch"), None);
    b.create(json!({"scheduled_at": "2020-01-01T00:00:00Z"}));
    assert_eq!(a.get(&format!("/v1/callbacks/{id}")).status, 200);

    let seen = scraped(&server.base, &operator);
    assert_eq!(gauge(&seen, "org_a", "dispatched"), 1.0);
    assert_eq!(gauge(&seen, "org_a", "failed"), 1.0);
    assert_eq!(gauge(&seen, "org_b", "scheduled"), 1.0);
    assert_eq!(
        seen["callback_store_due_callbacks{organization_id=\"org_b\"}"],
        1.0
    );
    assert!(seen["callback_store_oldest_due_age_seconds{organization_id=\"org_b\"}"] > 0.0);
    assert_eq!(seen["callback_store_claims_total"], 2.0);
    assert_eq!(
        seen["callback_store_dispatch_outcomes_total{outcome=\"dispatched\"}"],
        1.0
    );
    assert_eq!(
        seen["callback_store_dispatch_outcomes_total{outcome=\"failed\"}"],
        1.0
    );
    assert_eq!(seen["callback_store_webhook_duration_seconds_count"], 2.0);
    assert!(seen.contains_key("callback_store_busy_retries_total"));
    assert!(seen.contains_key("callback_store_follow_ups_created_total"));
    let get_one = "callback_store_http_requests_total{method=\"GET\",route=\"/v1/callbacks/{id}\",status=\"200\"}";
    assert_eq!(seen[get_one], 1.0, "{seen:#?}");
    assert!(seen.contains_key(
        "callback_store_http_request_duration_seconds_count{method=\"POST\",route=\"/v1/callbacks\"}"
    ));
    assert!(
        seen.keys().all(|k| !k.contains(id)),
        "a raw path became a label"
    );
}

#[test]
fn a_request_to_no_route_is_counted_as_unmatched_never_by_its_path() {
    let (db, server, api) = server_with_token(Options::default());
    let operator = db.store().create_operator_key("ops").unwrap().token;
    assert_eq!(api.get("/no/such/route/cb_123").status, 404);
    let seen = scraped(&server.base, &operator);
    let unmatched =
        "callback_store_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}";
    assert_eq!(seen[unmatched], 1.0, "{seen:#?}");
    assert!(seen.keys().all(|k| !k.contains("cb_123")));
}

#[test]
fn stats_give_an_organization_its_own_and_an_operator_every_organization() {
    let (_db, server, a, b, operator) = two_organizations(Options::default());
    let due = a.create(json!({"scheduled_at": "2020-01-01T00:00:00Z"}));
    a.create(json!({"scheduled_at": "2020-01-02T00:00:00Z"}));
    let cancelled = a.create(json!({}));
    a.post(
        &format!("/v1/callbacks/{}/cancel", cancelled["id"].as_str().unwrap()),
        None,
    );
    b.create(json!({}));

    let own = a.get("/v1/stats");
    assert_eq!(own.status, 200, "{}", own.text);
    let expected = json!({
        "organization_id": "org_a",
        "counts": {"scheduled": 2, "dispatching": 0, "dispatched": 0, "cancelled": 1, "failed": 0},
        "due": 2,
        "oldest_due_at": due["scheduled_at"],
    });
    assert_eq!(own.json(), expected);
    assert_eq!(own.text, expected.to_string(), "keys in this order");

    let all = Api::new(&server.base, &operator).get("/v1/stats");
    assert_eq!(all.status, 200, "{}", all.text);
    let all = all.json();
    let organizations = all["organizations"].as_array().unwrap();
    assert_eq!(organizations.len(), 2);
    assert_eq!(organizations[0], expected);
    assert_eq!(organizations[1]["organization_id"], "org_b");
    assert_eq!(organizations[1]["oldest_due_at"], Value::Null);

    let none = send(client().get(server.url("/v1/stats")));
    assert_eq!((none.status, none.text.as_str()), (401, UNAUTHORIZED_BODY));
    a.get("/v1/stats?org=org_b")
        .assert_error(400, "VALIDATION_ERROR");
}

/// `callback-store worker --metrics-addr`: the worker's loops and its
/// metrics port, in-process.
#[test]
fn a_workers_metrics_port_serves_its_claims_outcomes_and_the_store_gauges() {
    let dialer = Dialer::start(10);
    let db = TestDb::new();
    let store = db.store();
    let operator = store.create_operator_key("ops").unwrap().token;
    let org_token = db.token("org_a");
    let org = store.organization("org_a").unwrap();
    let due = callback_store::NewCallback::new(
        "+12015551234",
        store.now() - chrono::Duration::minutes(1),
    );
    org.create(due).unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let metrics = Metrics::new();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let options = WorkerOptions {
        webhook: Some(
            Webhook::new(&dialer.url, Duration::from_secs(2))
                .unwrap()
                .with_metrics(metrics.clone()),
        ),
        ..WorkerOptions::default()
    };
    let workers = runtime.spawn(run_workers(
        store.clone(),
        options,
        TaskTracker::new(),
        shutdown(stopped.clone()),
    ));
    let exporter = runtime.spawn(serve_metrics(
        listener,
        store.clone(),
        metrics,
        shutdown(stopped),
    ));

    let seen = eventually(Duration::from_secs(20), || {
        let seen = scraped(&base, &operator);
        (seen.get("callback_store_dispatch_outcomes_total{outcome=\"dispatched\"}") == Some(&1.0))
            .then_some(seen)
    });
    assert_eq!(seen["callback_store_claims_total"], 1.0);
    assert_eq!(seen["callback_store_webhook_duration_seconds_count"], 1.0);
    assert_eq!(gauge(&seen, "org_a", "dispatched"), 1.0);
    let own = scraped(&base, &org_token);
    assert!(
        own.keys().all(|k| k.contains("organization_id=\"org_a\"")),
        "{own:#?}"
    );
    let none = send(client().get(format!("{base}/metrics")));
    assert_eq!(none.status, 401);
    assert_eq!(
        send(client().get(format!("{base}/v1/callbacks"))).status,
        404
    );

    stop.send(true).unwrap();
    runtime.block_on(workers).unwrap();
    runtime.block_on(exporter).unwrap().unwrap();
}
