//! The calling policy from the command: `policy get|set|clear` (the
//! organization's, or an agent's override), `retry` of a call that did not
//! reach the person, and `create --timezone --expires-at`. The rules of a
//! policy are the core's; these tests prove the command reads, stores and
//! prints them, and refuses what the store refuses without writing.

mod common;

use chrono::Datelike;
use common::*;
use serde_json::{json, Value};

const ORG: &str = "org_a";

/// The policy of DESIGN.md, every field given.
fn business_hours() -> Value {
    json!({
        "timezone": "America/New_York",
        "windows": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "21:00"}],
        "max_attempts": 3,
        "retry_intervals": ["2h", "1d"],
        "retry_on": ["no_answer", "busy", "voicemail"]
    })
}

/// A temporary file holding `text`; the folder lives as long as the guard.
fn file_with(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.json");
    std::fs::write(&path, text).unwrap();
    (dir, path.display().to_string())
}

fn org<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["--org", ORG];
    all.extend_from_slice(args);
    all
}

/// Runs, expects exit `status` with nothing on stdout, and returns the
/// error body from stderr, whose code must be `code`.
fn fails(db: &TestDb, args: &[&str], status: i32, code: &str) -> Value {
    let run = db.run(args);
    assert_eq!(run.code, status, "{args:?}: {}", run.stderr);
    assert_eq!(run.stdout, "", "{args:?}");
    let body = run.error();
    assert_eq!(body["code"], code, "{args:?}");
    body
}

fn message(body: &Value) -> &str {
    body["error"].as_str().unwrap()
}

#[test]
fn a_policy_set_from_a_file_is_the_policy_get_prints() {
    let db = TestDb::new();
    // Before any set, the organization has the documented default.
    assert_eq!(
        db.ok(&org(&["policy", "get"])),
        json!({"timezone": "UTC", "windows": [], "max_attempts": 1,
               "retry_intervals": ["1h"], "retry_on": ["no_answer", "busy", "voicemail"]})
    );
    let (_dir, path) = file_with(&business_hours().to_string());
    assert_eq!(
        db.ok(&org(&["policy", "set", "--file", &path])),
        business_hours()
    );
    assert_eq!(db.ok(&org(&["policy", "get"])), business_hours());
    // Other organizations keep theirs.
    assert_eq!(
        db.ok(&["--org", "org_b", "policy", "get"])["timezone"],
        "UTC"
    );
}

#[test]
fn a_policy_read_from_stdin_takes_defaults_for_absent_fields() {
    let db = TestDb::new();
    let run = db.run_with_input(
        &org(&["policy", "set", "-"]),
        br#"{"timezone": "Europe/Paris", "max_attempts": 2}"#,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let expected = json!({"timezone": "Europe/Paris", "windows": [], "max_attempts": 2,
                          "retry_intervals": ["1h"], "retry_on": ["no_answer", "busy", "voicemail"]});
    assert_eq!(run.json(), expected);
    assert_eq!(db.ok(&org(&["policy", "get"])), expected);
}

#[test]
fn flags_replace_their_fields_of_the_json_and_set_replaces_the_whole_policy() {
    let db = TestDb::new();
    let (_dir, path) = file_with(&business_hours().to_string());
    let set = db.ok(&org(&[
        "policy",
        "set",
        "--file",
        &path,
        "--window",
        "mon-fri 09:00-17:00",
        "--window",
        "sat,sun 10:00-14:00",
        "--retry-intervals",
        "30m,4h",
        "--retry-on",
        "busy",
    ]));
    assert_eq!(
        set,
        json!({
            "timezone": "America/New_York",
            "windows": [
                {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"},
                {"days": ["sat", "sun"], "start": "10:00", "end": "14:00"}
            ],
            "max_attempts": 3,
            "retry_intervals": ["30m", "4h"],
            "retry_on": ["busy"]
        })
    );
    // Without a file, the fields no flag gives take their defaults: set
    // replaces the stored policy, it never merges with it.
    let set = db.ok(&org(&[
        "policy",
        "set",
        "--timezone",
        "Asia/Tokyo",
        "--max-attempts",
        "4",
    ]));
    assert_eq!(set["windows"], json!([]));
    assert_eq!(set["max_attempts"], 4);
    assert_eq!(db.ok(&org(&["policy", "get"])), set);
}

#[test]
fn policy_set_needs_a_policy_to_set() {
    let db = TestDb::new();
    // Neither a file nor a flag: a usage error, nothing opened or written.
    let run = db.run(&org(&["policy", "set"]));
    assert_eq!(run.code, 2, "{}", run.stderr);
    // A file that cannot be read fails outside the store.
    let run = db.run(&org(&[
        "policy",
        "set",
        "--file",
        "/nonexistent/policy.json",
    ]));
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("cannot read"), "{}", run.stderr);
}

#[test]
fn an_agents_override_is_set_read_and_cleared_apart_from_the_organizations() {
    let db = TestDb::new();
    // No override yet: the core's NOT_FOUND, for get and clear alike.
    let body = fails(
        &db,
        &org(&["policy", "get", "--agent", "agent_1"]),
        4,
        "NOT_FOUND",
    );
    assert!(message(&body).contains("agent_1"), "{body}");
    fails(
        &db,
        &org(&["policy", "clear", "--agent", "agent_1"]),
        4,
        "NOT_FOUND",
    );

    let (_dir, path) = file_with(&business_hours().to_string());
    let set = db.ok(&org(&["policy", "set", "--agent", "agent_1", &path]));
    assert_eq!(set, business_hours());
    assert_eq!(
        db.ok(&org(&["policy", "get", "--agent", "agent_1"])),
        business_hours()
    );
    // The organization's policy and other agents are untouched.
    assert_eq!(db.ok(&org(&["policy", "get"]))["timezone"], "UTC");
    fails(
        &db,
        &org(&["policy", "get", "--agent", "agent_2"]),
        4,
        "NOT_FOUND",
    );

    assert_eq!(
        db.ok(&org(&["policy", "clear", "--agent", "agent_1"])),
        json!({"agent_id": "agent_1", "cleared": true})
    );
    fails(
        &db,
        &org(&["policy", "get", "--agent", "agent_1"]),
        4,
        "NOT_FOUND",
    );
    // Cleared once, there is nothing left to clear.
    fails(
        &db,
        &org(&["policy", "clear", "--agent", "agent_1"]),
        4,
        "NOT_FOUND",
    );
}

#[test]
fn a_policy_breaking_a_rule_is_a_validation_error_naming_the_field_and_changes_nothing() {
    let db = TestDb::new();
    let (_dir, path) = file_with(&business_hours().to_string());
    db.ok(&org(&["policy", "set", "--file", &path]));
    let with = |change: Value| {
        let mut policy = business_hours();
        for (k, v) in change.as_object().unwrap() {
            policy[k] = v.clone();
        }
        policy.to_string()
    };
    let cases = [
        (
            with(json!({"windows": [{"days": ["mon"], "start": "21:00", "end": "08:00"}]})),
            "windows[0].end: ",
        ),
        (with(json!({"timezone": "Mars/Olympus_Mons"})), "timezone: "),
        (with(json!({"max_attempts": 0})), "max_attempts: "),
        (
            with(json!({"retry_intervals": ["2h", "soon"]})),
            "retry_intervals[1]: ",
        ),
        (with(json!({"retry_on": ["hung_up"]})), "retry_on[0]: "),
        (
            with(json!({"windows": [{"days": ["mon"], "start": "8am", "end": "21:00"}]})),
            "windows[0].start: ",
        ),
        // The core's reader refuses fields it does not know.
        (with(json!({"max_retries": 5})), "body: "),
        ("[1, 2]".to_owned(), "body: "),
    ];
    for (text, field) in cases {
        let (_bad_dir, bad) = file_with(&text);
        for scope in [&[][..], &["--agent", "agent_1"][..]] {
            let mut args = org(&["policy", "set", "--file", &bad]);
            args.extend_from_slice(scope);
            let body = fails(&db, &args, 7, "VALIDATION_ERROR");
            assert!(message(&body).starts_with(field), "{text}: {body}");
        }
        // Nothing was written: the organization keeps its policy, the agent
        // still has no override.
        assert_eq!(db.ok(&org(&["policy", "get"])), business_hours());
        fails(
            &db,
            &org(&["policy", "get", "--agent", "agent_1"]),
            4,
            "NOT_FOUND",
        );
    }
    // A flag's bad value is the store's VALIDATION_ERROR too, named by the
    // field it fills.
    let body = fails(
        &db,
        &org(&["policy", "set", "--window", "mon 21:00-08:00"]),
        7,
        "VALIDATION_ERROR",
    );
    assert!(message(&body).starts_with("windows[0].end: "), "{body}");
    let body = fails(
        &db,
        &org(&["policy", "set", "--window", "weekdays 08:00-21:00"]),
        7,
        "VALIDATION_ERROR",
    );
    assert!(message(&body).starts_with("window: "), "{body}");
    assert_eq!(db.ok(&org(&["policy", "get"])), business_hours());
}

fn count(db: &TestDb) -> usize {
    db.ok(&org(&["list", "--all"]))["callbacks"]
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn retry_after_fail_creates_attempt_2_and_refuses_beyond_max_attempts() {
    let db = TestDb::new();
    // `failed` is not in retry_on: `fail` alone makes no follow-up, so the
    // one below is retry's.
    db.ok(&org(&[
        "policy",
        "set",
        "--max-attempts",
        "2",
        "--retry-intervals",
        "1h",
        "--retry-on",
        "no_answer",
    ]));
    let id = db.create_at(ORG, "now");
    assert_eq!(db.ok(&org(&["get", &id]))["attempt"], 1);
    // Only a dispatched or failed callback has a call to follow up.
    let body = fails(
        &db,
        &org(&["retry", &id, "--outcome", "no_answer"]),
        5,
        "INVALID_TRANSITION",
    );
    assert!(message(&body).contains("scheduled"), "{body}");

    db.ok(&org(&["dispatch", &id]));
    db.ok(&org(&["fail", &id, "--cause", "carrier_error"]));
    assert_eq!(count(&db), 1);
    let follow_up = db.ok(&org(&["retry", &id, "--outcome", "no_answer"]));
    assert_callback_shape_with_extensions(&follow_up);
    assert_ne!(follow_up["id"], id);
    assert_eq!(follow_up["status"], "scheduled");
    assert_eq!(follow_up["attempt"], 2);
    assert_eq!(follow_up["previous_callback_id"], id.as_str());
    assert_eq!(follow_up["to_number"], "+12015551234");
    // Scheduled one retry interval (1h) from now.
    let at =
        callback_store::parse_timestamp("t", follow_up["scheduled_at"].as_str().unwrap()).unwrap();
    let wait = at - chrono::Utc::now();
    assert!(
        wait > chrono::Duration::minutes(55) && wait <= chrono::Duration::hours(1),
        "{wait}"
    );
    // The failed callback itself is unchanged.
    assert_eq!(db.ok(&org(&["get", &id]))["status"], "failed");
    // Asked again, the same follow-up: a retried command never doubles it.
    assert_eq!(
        db.ok(&org(&["retry", &id, "--outcome", "no_answer"])),
        follow_up
    );
    assert_eq!(count(&db), 2);

    // Attempt 2 is the last max_attempts 2 allows.
    let second = follow_up["id"].as_str().unwrap();
    db.ok(&org(&["dispatch", second]));
    db.ok(&org(&["fail", second, "--cause", "carrier_error"]));
    let body = fails(
        &db,
        &org(&["retry", second, "--outcome", "no_answer"]),
        5,
        "INVALID_TRANSITION",
    );
    assert!(message(&body).contains("max_attempts 2"), "{body}");
    assert_eq!(count(&db), 2);
}

#[test]
fn fail_already_follows_up_when_the_policy_retries_failed_and_retry_prints_that_one() {
    let db = TestDb::new();
    db.ok(&org(&[
        "policy",
        "set",
        "--max-attempts",
        "2",
        "--retry-on",
        "failed",
    ]));
    let id = db.create_at(ORG, "now");
    db.ok(&org(&["dispatch", &id]));
    db.ok(&org(&["fail", &id, "--cause", "carrier_error"]));
    // The store made attempt 2 with the failure, in the same transaction.
    assert_eq!(count(&db), 2);
    let follow_up = db.ok(&org(&["retry", &id, "--outcome", "failed"]));
    assert_eq!(follow_up["attempt"], 2);
    assert_eq!(follow_up["previous_callback_id"], id.as_str());
    assert_eq!(count(&db), 2);
}

#[test]
fn retry_refuses_an_outcome_the_policy_does_not_retry_and_names_a_bad_one() {
    let db = TestDb::new();
    db.ok(&org(&["policy", "set", "--max-attempts", "3"]));
    let id = db.create_at(ORG, "now");
    db.ok(&org(&["dispatch", &id]));
    db.ok(&org(&["complete", &id, "--session", "sess_1"]));
    // The default retry_on has no `failed`.
    let body = fails(
        &db,
        &org(&["retry", &id, "--outcome", "failed"]),
        5,
        "INVALID_TRANSITION",
    );
    assert!(message(&body).contains("retry_on"), "{body}");
    // An outcome that is none of the four is the core's VALIDATION_ERROR.
    let body = fails(
        &db,
        &org(&["retry", &id, "--outcome", "hung_up"]),
        7,
        "VALIDATION_ERROR",
    );
    assert!(message(&body).starts_with("outcome: "), "{body}");
    // The dispatched call (the person did not pick up) earns its follow-up.
    let follow_up = db.ok(&org(&["retry", &id, "--outcome", "no_answer"]));
    assert_eq!(follow_up["attempt"], 2);
}

#[test]
fn create_takes_a_timezone_and_a_deadline_and_shows_them() {
    let db = TestDb::new();
    let cb = db.ok(&org(&[
        "create",
        "--to",
        "+12015551234",
        "--at",
        "2030-03-05T10:00:00Z",
        "--timezone",
        "Europe/Paris",
        "--expires-at",
        "2030-03-06T12:00:00+01:00",
    ]));
    assert_callback_shape_with_extensions(&cb);
    assert_eq!(cb["timezone"], "Europe/Paris");
    assert_eq!(cb["expires_at"], "2030-03-06T11:00:00Z");
    assert_eq!(cb["attempt"], 1);
    assert_eq!(cb["previous_callback_id"], Value::Null);
    let id = cb["id"].as_str().unwrap();
    assert_eq!(db.ok(&org(&["get", id])), cb);
    let table = db.run(&org(&["--format", "table", "get", id]));
    assert_eq!(table.code, 0, "{}", table.stderr);
    let line = |key: &str| {
        table
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{key} ")))
            .unwrap_or_else(|| panic!("{key}: {}", table.stdout))
            .split_whitespace()
            .last()
            .unwrap()
            .to_owned()
    };
    assert_eq!(line("timezone"), "Europe/Paris");
    assert_eq!(line("expires_at"), "2030-03-06T11:00:00Z");

    // Without them, none: the policy's zone applies, and no deadline.
    let plain = db.ok(&org(&["get", &db.create_at(ORG, "+1d")]));
    assert_eq!(plain["timezone"], Value::Null);
    assert_eq!(plain["expires_at"], Value::Null);

    let body = fails(
        &db,
        &org(&[
            "create",
            "--to",
            "+12015551234",
            "--at",
            "+1d",
            "--timezone",
            "Mars/Olympus_Mons",
        ]),
        7,
        "VALIDATION_ERROR",
    );
    assert!(message(&body).starts_with("timezone: "), "{body}");
    let body = fails(
        &db,
        &org(&[
            "create",
            "--to",
            "+12015551234",
            "--at",
            "+1d",
            "--expires-at",
            "soon",
        ]),
        7,
        "VALIDATION_ERROR",
    );
    assert!(message(&body).starts_with("expires_at: "), "{body}");
}

#[test]
fn a_policy_set_from_the_command_governs_dispatch() {
    let db = TestDb::new();
    // Windows on every day but today and tomorrow (UTC): now is outside all
    // of them, even if the day turns while the test runs.
    let today = chrono::Utc::now().weekday().num_days_from_monday() as usize;
    let days: Vec<&str> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != today && *i != (today + 1) % 7)
        .map(|(_, d)| d)
        .collect();
    let window = format!("{} 00:00-24:00", days.join(","));
    db.ok(&org(&["policy", "set", "--window", &window]));
    let id = db.create_at(ORG, "-1m");
    let claims = db.ok(&["claim-due"]);
    assert_eq!(claims["claims"], json!([]), "{claims}");
    let body = fails(&db, &org(&["dispatch", &id]), 5, "INVALID_TRANSITION");
    assert!(message(&body).contains(&id), "{body}");
}

#[test]
fn policy_tables_show_windows_in_the_window_flags_shorthand() {
    let db = TestDb::new();
    let (_dir, path) = file_with(&business_hours().to_string());
    db.ok(&org(&["policy", "set", "--file", &path]));
    let run = db.run(&org(&["--format", "table", "policy", "get"]));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("\nwindows          mon-fri 08:00-21:00\n"),
        "{}",
        run.stdout
    );
}

/// The record's 21 keys of the reference, then the 4 of the calling
/// policy, in that order.
fn assert_callback_shape_with_extensions(callback: &Value) {
    let keys: Vec<&str> = callback
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected: Vec<&str> = CALLBACK_KEYS
        .iter()
        .chain(callback_store::EXTENSION_KEYS.iter())
        .copied()
        .collect();
    assert_eq!(keys, expected);
}
