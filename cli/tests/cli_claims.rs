//! Claims through the command: `dispatch` and `claim-due` print each claim's
//! token, and `complete` / `fail --claim TOKEN` finish a callback only for
//! its live claim. A spent, recovered or forged claim exits 5
//! (INVALID_TRANSITION, "stale claim") and leaves the row as it was.

mod common;

use common::*;
use serde_json::Value;

/// The two commands that finish a dispatching callback.
const FINISHERS: [&str; 2] = ["complete", "fail"];

/// A callback of org_a due an hour ago: its id.
fn due(db: &TestDb) -> String {
    db.create_at("org_a", "-1h")
}

/// Dispatches `id` now: the token of its claim.
fn dispatch(db: &TestDb, id: &str) -> String {
    let claim = db.ok(&["--org", "org_a", "dispatch", id]);
    assert_eq!(claim["callback"]["id"], id);
    assert!(is_claim_token(&claim["token"]), "{claim}");
    claim["token"].as_str().unwrap().to_owned()
}

/// The arguments of `complete` (session `sess_1`) or `fail` (cause
/// `no answer`) for callback `id` with `--claim token`.
fn finish<'a>(action: &'a str, id: &'a str, token: &'a str) -> Vec<&'a str> {
    let (flag, value) = match action {
        "complete" => ("--session", "sess_1"),
        _ => ("--cause", "no answer"),
    };
    vec!["--org", "org_a", action, id, flag, value, "--claim", token]
}

fn get(db: &TestDb, id: &str) -> Value {
    db.ok(&["--org", "org_a", "get", id])
}

/// Runs a command that must be refused as a stale claim, and checks that the
/// callback is exactly as it was before.
fn refused_as_stale(db: &TestDb, args: &[&str], id: &str) {
    let before = get(db, id);
    let run = db.run(args);
    assert_eq!(run.code, 5, "{args:?}: {}", run.stderr);
    let body = run.error();
    assert_eq!(body["code"], "INVALID_TRANSITION");
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("stale claim"), "{message}");
    assert_eq!(get(db, id), before, "{args:?} changed the callback");
}

#[test]
fn complete_and_fail_with_the_claims_own_token_finish_the_callback() {
    let db = TestDb::new();
    for (action, status, field, value) in [
        ("complete", "dispatched", "created_session_id", "sess_1"),
        ("fail", "failed", "failure_cause", "no answer"),
    ] {
        let id = due(&db);
        let token = dispatch(&db, &id);
        let done = db.ok(&finish(action, &id, &token));
        assert_eq!(done["status"], status, "{action}");
        assert_eq!(done[field], value, "{action}");
    }
}

#[test]
fn a_claim_completed_once_cannot_complete_or_fail_it_again() {
    let db = TestDb::new();
    let id = due(&db);
    let token = dispatch(&db, &id);
    db.ok(&finish("complete", &id, &token));
    for action in FINISHERS {
        refused_as_stale(&db, &finish(action, &id, &token), &id);
    }
    assert_eq!(get(&db, &id)["created_session_id"], "sess_1");
}

#[test]
fn a_claim_whose_callback_was_recovered_cannot_finish_it() {
    let db = TestDb::new();
    let id = due(&db);
    let claimed = db.ok(&["claim-due"]);
    let claims = claimed["claims"].as_array().unwrap();
    assert_eq!(claims.len(), 1, "{claimed}");
    assert_eq!(claims[0]["callback"]["id"], id.as_str());
    let token = claims[0]["token"].as_str().unwrap().to_owned();
    let recovered = db.ok(&["recover-stale", "--older-than", "0s"]);
    assert_eq!(recovered["callbacks"][0]["id"], id.as_str());
    for action in FINISHERS {
        refused_as_stale(&db, &finish(action, &id, &token), &id);
    }
    let now = get(&db, &id);
    assert_eq!(now["status"], "failed");
    assert_eq!(now["failure_cause"], "dispatch_interrupted");
}

#[test]
fn a_forged_token_is_refused_and_the_real_claim_still_finishes_the_callback() {
    let db = TestDb::new();
    let id = due(&db);
    let token = dispatch(&db, &id);
    // Another callback's live claim is no claim on this one either.
    let other = dispatch(&db, &due(&db));
    for forged in ["0123456789abcdef0123456789abcdef", other.as_str()] {
        assert_ne!(token, forged);
        for action in FINISHERS {
            refused_as_stale(&db, &finish(action, &id, forged), &id);
        }
    }
    assert_eq!(get(&db, &id)["status"], "dispatching");
    let done = db.ok(&finish("complete", &id, &token));
    assert_eq!(done["status"], "dispatched");
}

#[test]
fn an_empty_claim_token_is_a_validation_error_naming_the_field() {
    let db = TestDb::new();
    let id = due(&db);
    dispatch(&db, &id);
    for action in FINISHERS {
        let run = db.run(&finish(action, &id, ""));
        assert_eq!(run.code, 7, "{action}: {}", run.stderr);
        let message = run.error()["error"].as_str().unwrap().to_owned();
        assert!(message.starts_with("claim_token: "), "{message}");
    }
    assert_eq!(get(&db, &id)["status"], "dispatching");
}

#[test]
fn each_dispatch_makes_a_claim_with_a_token_of_its_own() {
    let db = TestDb::new();
    let tokens: Vec<String> = (0..3).map(|_| dispatch(&db, &due(&db))).collect();
    assert_ne!(tokens[0], tokens[1]);
    assert_ne!(tokens[1], tokens[2]);
    assert_ne!(tokens[0], tokens[2]);
}

#[test]
fn dispatch_and_claim_due_tables_show_the_token() {
    let db = TestDb::new();
    let id = due(&db);
    let run = db.run(&["--org", "org_a", "--format", "table", "dispatch", &id]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let token_line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("token "))
        .unwrap();
    let token = token_line.split_whitespace().nth(1).unwrap();
    assert!(is_claim_token(&Value::from(token)), "{}", run.stdout);
    assert!(run
        .stdout
        .lines()
        .any(|l| l.starts_with("id ") && l.contains(&id)));

    due(&db);
    let run = db.run(&["--format", "table", "claim-due"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("ID "), "{}", run.stdout);
    assert!(lines[0].contains("TOKEN"), "{}", run.stdout);
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert!(is_claim_token(&Value::from(row[1])), "{}", run.stdout);
}
