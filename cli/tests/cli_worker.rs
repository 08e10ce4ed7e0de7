//! `callback-store worker` as a process: the dispatcher and recovery of
//! `serve` without the HTTP API, against testkit's fake dialer. What the
//! webhook's answers do to a callback is proved in-process by
//! `server/tests/http_webhook.rs`; here, that a worker runs the loops, that
//! workers on one file share the work without calling anyone twice, that
//! SIGTERM lets a call finish, and the flags it refuses.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const ORG: &str = "org_a";

/// The callback `id` of org_a, read by the command.
fn get(db: &TestDb, id: &str) -> Value {
    db.ok(&["--org", ORG, "get", id])
}

/// Waits (at most `limit`) until callback `id` is `status`: the callback.
fn wait_for_status(db: &TestDb, id: &str, status: &str, limit: Duration) -> Value {
    eventually(limit, || {
        let callback = get(db, id);
        (callback["status"] == status).then_some(callback)
    })
}

/// How many lines of `log` contain `text`.
fn count_lines(log: &[String], text: &str) -> usize {
    log.iter().filter(|line| line.contains(text)).count()
}

#[test]
fn a_worker_places_each_due_callback_once_and_leaves_future_ones_scheduled() {
    let db = TestDb::new();
    let dialer = Dialer::start(20);
    let due: Vec<String> = (0..3).map(|_| db.create_at(ORG, "-1m")).collect();
    let future = db.create_at(ORG, "+1d");
    let worker = db.worker(&["--webhook-url", &dialer.url, "--dispatch-interval", "100ms"]);
    for id in &due {
        let done = wait_for_status(&db, id, "dispatched", Duration::from_secs(15));
        assert_eq!(done["created_session_id"], format!("sess_for_{id}"));
        let history = db.ok(&["--org", ORG, "history", id]);
        assert_eq!(actions_of(&history)[1], "claim_due");
    }
    assert_eq!(get(&db, &future)["status"], "scheduled");
    let calls = calls_by_id(&dialer);
    for id in &due {
        assert_eq!(calls.get(id), Some(&1), "calls for {id}");
    }
    assert_eq!(dialer.received().len(), due.len());
    // Each log line follows the commit the database already shows.
    log_settles(&worker, "dispatched, session", due.len());
    assert!(worker.stop().success());
}

#[test]
fn two_workers_on_one_database_call_each_of_200_due_callbacks_exactly_once() {
    const CALLBACKS: usize = 200;
    let db = TestDb::new();
    // Room for twice the calls, so that a second call would be seen.
    let dialer = Dialer::start(2 * CALLBACKS);
    // Due a moment from now, when both workers are claiming.
    let due_at = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let lines: String = (0..CALLBACKS)
        .map(|_| json!({"to_number": "+12015551234", "scheduled_at": due_at}).to_string() + "\n")
        .collect();
    let run = db.run_with_input(&["--org", ORG, "import"], lines.as_bytes());
    assert_eq!(run.code, 0, "{}", run.stderr);
    let ids: Vec<String> = run.json()["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), CALLBACKS);
    let flags = ["--webhook-url", &dialer.url, "--dispatch-interval", "20ms"];
    let workers = [db.worker(&flags), db.worker(&flags)];

    let dispatched = || {
        let page = db.ok(&["--org", ORG, "list", "--status", "dispatched", "--all"]);
        page["callbacks"].as_array().unwrap().len()
    };
    eventually(Duration::from_secs(60), || {
        (dispatched() == CALLBACKS).then_some(())
    });
    let calls = calls_by_id(&dialer);
    for id in &ids {
        assert_eq!(calls.get(id), Some(&1), "calls for {id}");
    }
    assert_eq!(dialer.received().len(), CALLBACKS);
    // Each call was placed and recorded by one worker or the other.
    let placed: usize = workers
        .iter()
        .map(|worker| count_lines(&worker.log(), "dispatched, session"))
        .sum();
    assert_eq!(placed, CALLBACKS);
    for worker in workers {
        assert!(worker.stop().success());
    }
}

#[test]
fn sigterm_lets_the_call_in_flight_finish_and_be_recorded_then_exits_0() {
    let db = TestDb::new();
    let dialer = Dialer::start(10);
    // The dialer answers a `slow` callback after 2.5 s.
    let cb = db.ok(&[
        "--org",
        ORG,
        "create",
        "--to",
        "+12015551234",
        "--at",
        "now",
        "--metadata",
        r#"{"mode": "slow"}"#,
    ]);
    let id = cb["id"].as_str().unwrap();
    let mut worker = db.worker(&[
        "--webhook-url",
        &dialer.url,
        "--webhook-timeout",
        "5s",
        "--dispatch-interval",
        "50ms",
    ]);
    eventually(Duration::from_secs(10), || {
        (!dialer.received().is_empty()).then_some(())
    });
    worker.terminate();
    let status = worker.wait();
    assert!(status.success(), "{status:?}: {:?}", worker.log());
    // Recorded before the process exited: nothing else could record it.
    let done = get(&db, id);
    assert_eq!(done["status"], "dispatched");
    assert_eq!(done["created_session_id"], format!("sess_slow_{id}"));
    let log = worker.log();
    assert_eq!(count_lines(&log, &format!("{id} dispatched, session")), 1);
    assert_eq!(
        log.last().map(String::as_str),
        Some("callback-store: stopped")
    );
    assert_eq!(dialer.received().len(), 1);
}

#[test]
fn a_worker_fails_callbacks_left_dispatching_unless_recovery_is_off() {
    let db = TestDb::new();
    let dialer = Dialer::start(10);
    // Claimed by a dialer that never reports back.
    let id = db.create_at(ORG, "+1d");
    db.ok(&["--org", ORG, "dispatch", &id]);
    let flags = [
        "--webhook-url",
        &dialer.url,
        "--webhook-timeout",
        "100ms",
        "--stale-after",
        "300ms",
        "--recover-interval",
        "100ms",
    ];

    let idle = db.worker(&[&flags[..], &["--no-recovery"]].concat());
    assert!(idle.log()[0].ends_with("recovery: off"), "{:?}", idle.log());
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(get(&db, &id)["status"], "dispatching");
    assert!(idle.stop().success());

    let worker = db.worker(&flags);
    assert!(
        worker.log()[0].ends_with("recovery: failing callbacks dispatching over 300ms every 100ms"),
        "{:?}",
        worker.log()
    );
    let failed = wait_for_status(&db, &id, "failed", Duration::from_secs(10));
    assert_eq!(failed["failure_cause"], "dispatch_interrupted");
    assert!(
        dialer.received().is_empty(),
        "a stale callback is never called"
    );
    log_settles(&worker, &format!("recovery: {id}"), 1);
    assert!(worker.stop().success());
}

#[test]
fn the_start_line_names_the_database_webhook_and_poll_interval() {
    let db = TestDb::new();
    let dialer = Dialer::start(1);
    let worker = db.worker(&["--webhook-url", &dialer.url, "--dispatch-batch", "8"]);
    let start = &worker.log()[0];
    assert!(
        start.starts_with(&format!("callback-store: worker on {}:", db.location())),
        "{start}"
    );
    assert!(
        start.contains(&format!(
            "placing due calls through {}, polling every 1s (8 at a time)",
            dialer.url
        )),
        "{start}"
    );
    assert!(start.contains("over 10m every 1m"), "{start}");
    assert!(worker.stop().success());
}

#[test]
fn a_worker_without_a_webhook_url_is_a_usage_error_and_opens_nothing() {
    let db = TestDb::new();
    let run = db.run(&["worker"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("the following required arguments were not provided"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--webhook-url <URL>"), "{}", run.stderr);
    assert!(!database_created(&db), "the database was created");

    // Its values are checked as serve's are: VALIDATION_ERROR, exit 7.
    for flags in [
        &["--webhook-url", "ftp://x/"][..],
        &[
            "--dispatch-webhook",
            "http://127.0.0.1:9/",
            "--webhook-timeout",
            "10m",
        ],
        &[
            "--webhook-url",
            "http://127.0.0.1:9/",
            "--dispatch-batch",
            "0",
        ],
    ] {
        let run = db.run(&[&["worker"][..], flags].concat());
        assert_eq!(run.code, 7, "{flags:?}: {}", run.stderr);
        assert_eq!(run.error()["code"], "VALIDATION_ERROR");
    }
}

/// Waits until `needle` stands on `expected` lines of the process's log
/// (a line is written after the commit it reports), then checks it is
/// exactly that many.
fn log_settles(process: &Process, needle: &str, expected: usize) {
    eventually(Duration::from_secs(10), || {
        (count_lines(&process.log(), needle) >= expected).then_some(())
    });
    assert_eq!(count_lines(&process.log(), needle), expected, "{needle}");
}
