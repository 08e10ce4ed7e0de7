//! `callback-store stats` (the JSON of `GET /v1/stats`, or a table) and
//! `callback-store worker --metrics-addr` (the worker's own /metrics).

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[test]
fn stats_print_an_organizations_counts_backlog_and_oldest_due_as_the_api_does() {
    let db = TestDb::new();
    let due = db.create_at("org_a", "2020-01-01T00:00:00Z");
    db.create_at("org_a", "+1d");
    let cancelled = db.create_at("org_a", "+2d");
    db.ok(&["--org", "org_a", "cancel", &cancelled]);
    db.create_at("org_b", "+1d");
    let scheduled_at = db.ok(&["--org", "org_a", "get", &due])["scheduled_at"].clone();

    let own = db.ok(&["--org", "org_a", "stats"]);
    let expected = json!({
        "organization_id": "org_a",
        "counts": {"scheduled": 2, "dispatching": 0, "dispatched": 0, "cancelled": 1, "failed": 0},
        "due": 1,
        "oldest_due_at": scheduled_at,
    });
    assert_eq!(own, expected);
    let all = db.ok(&["stats", "--all"]);
    assert_eq!(all["organizations"][0], expected);
    assert_eq!(all["organizations"][1]["organization_id"], "org_b");
    assert_eq!(all["organizations"].as_array().unwrap().len(), 2);

    let table = db.run(&["stats", "--all", "--format", "table"]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert!(
        lines[0].starts_with("ORGANIZATION_ID  SCHEDULED"),
        "{}",
        table.stdout
    );
    assert!(
        lines[1].starts_with("org_a            2"),
        "{}",
        table.stdout
    );
    assert_eq!(lines.len(), 3, "{}", table.stdout);

    let nobody = db.run(&["stats"]);
    assert_eq!(nobody.code, 7, "{}", nobody.stderr);
    assert_eq!(nobody.error()["code"], "VALIDATION_ERROR");
}

#[test]
fn a_workers_metrics_addr_serves_its_calls_to_a_bearer_token_only() {
    let db = TestDb::new();
    let dialer = Dialer::start(5);
    let operator = db.ok(&["keys", "create", "--operator"])["token"]
        .as_str()
        .unwrap()
        .to_owned();
    db.create_at("org_a", "-1m");
    let (worker, metrics_url) = Process::start(
        &db.location(),
        &[
            "worker",
            "--webhook-url",
            &dialer.url,
            "--dispatch-interval",
            "100ms",
            "--metrics-addr",
            "127.0.0.1:0",
        ],
        "metrics on ",
    );
    let text = eventually(Duration::from_secs(20), || {
        let resp = send(client().get(&metrics_url).bearer_auth(&operator));
        assert_eq!(resp.status, 200, "{}", resp.text);
        resp.text
            .contains("callback_store_dispatch_outcomes_total{outcome=\"dispatched\"} 1")
            .then_some(resp.text)
    });
    assert!(text.contains("callback_store_claims_total 1\n"), "{text}");
    assert!(text
        .contains("callback_store_callbacks{organization_id=\"org_a\",status=\"dispatched\"} 1\n"));
    assert!(text.ends_with("# EOF\n"));
    let anonymous = send(client().get(&metrics_url));
    assert_eq!(anonymous.status, 401);
    assert!(worker.stop().success());

    let bad = db.run(&[
        "worker",
        "--webhook-url",
        &dialer.url,
        "--metrics-addr",
        "nowhere",
    ]);
    assert_eq!(bad.code, 7, "{}", bad.stderr);
    assert!(bad.error()["error"]
        .as_str()
        .unwrap()
        .starts_with("metrics_addr: "));
}
