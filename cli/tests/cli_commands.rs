//! Each subcommand end to end on a temporary database: the API's JSON on
//! stdout, tables with --format table, organization by --org or --token.

mod common;

use common::*;
use serde_json::{json, Value};

fn create(db: &TestDb, extra: &[&str]) -> Value {
    let mut args = vec![
        "--org",
        "org_a",
        "create",
        "--to",
        "+12015551234",
        "--at",
        "2030-03-05T10:00:00Z",
    ];
    args.extend_from_slice(extra);
    db.ok(&args)
}

fn id(cb: &Value) -> String {
    cb["id"].as_str().unwrap().to_owned()
}

#[test]
fn init_creates_and_migrates_the_database() {
    let db = TestDb::new();
    assert!(!database_created(&db));
    let out = db.ok(&["init"]);
    assert!(database_created(&db));
    assert_eq!(out, json!({"database": db.location()}));
    // Again on the same database is fine.
    db.ok(&["init"]);
}

#[test]
fn create_takes_every_field_as_a_flag_and_prints_the_callback_json() {
    let db = TestDb::new();
    let cb = db.ok(&[
        "--org",
        "org_a",
        "create",
        "--to-number",
        "+12015551234",
        "--scheduled-at",
        "2030-03-05T11:00:00+01:00",
        "--source-session-id",
        "sess_1",
        "--agent-id",
        "agent_1",
        "--phone-number-id",
        "pn_1",
        "--from-number",
        "+33123456789",
        "--reason",
        "pricing",
        "--instructions",
        "be brief",
        "--summary",
        "asked for a callback",
        "--pipeline-config",
        r#"{"voice":"alloy"}"#,
        "--metadata",
        r#"{"z":1,"a":2}"#,
        "--idempotency-key",
        "k1",
    ]);
    assert_callback_shape(&cb);
    assert_eq!(cb["scheduled_at"], "2030-03-05T10:00:00Z");
    assert_eq!(cb["source_session_id"], "sess_1");
    assert_eq!(cb["agent_id"], "agent_1");
    assert_eq!(cb["phone_number_id"], "pn_1");
    assert_eq!(cb["from_number"], "+33123456789");
    assert_eq!(cb["reason"], "pricing");
    assert_eq!(cb["instructions"], "be brief");
    assert_eq!(cb["summary"], "asked for a callback");
    assert_eq!(cb["pipeline_config"], json!({"voice": "alloy"}));
    assert_eq!(cb["metadata"].to_string(), r#"{"z":1,"a":2}"#);
    // The same idempotency key returns the same callback.
    let again = db.ok(&[
        "--org",
        "org_a",
        "create",
        "--to",
        "+12015551234",
        "--at",
        "2030-03-05T10:00:00Z",
        "--source-session-id",
        "sess_1",
        "--agent-id",
        "agent_1",
        "--phone-number-id",
        "pn_1",
        "--from",
        "+33123456789",
        "--reason",
        "pricing",
        "--instructions",
        "be brief",
        "--summary",
        "asked for a callback",
        "--pipeline-config",
        r#"{"voice":"alloy"}"#,
        "--metadata",
        r#"{"a":2,"z":1}"#,
        "--idempotency-key",
        "k1",
    ]);
    assert_eq!(again["id"], cb["id"]);
}

#[test]
fn relative_times_are_from_now() {
    let db = TestDb::new();
    let before = chrono::Utc::now();
    let cb = db.ok(&[
        "--org",
        "org_a",
        "create",
        "--to",
        "+12015551234",
        "--at",
        "+2d",
    ]);
    let at = chrono::DateTime::parse_from_rfc3339(cb["scheduled_at"].as_str().unwrap()).unwrap();
    let delta = at.with_timezone(&chrono::Utc) - before;
    assert!(
        (delta - chrono::Duration::days(2)).num_seconds().abs() < 60,
        "{delta}"
    );
}

#[test]
fn get_cancel_dispatch_complete_fail_reschedule_and_history_print_the_api_json() {
    let db = TestDb::new();
    let a = create(&db, &[]);
    assert_eq!(db.ok(&["--org", "org_a", "get", &id(&a)]), a);

    let cancelled = db.ok(&["--org", "org_a", "cancel", &id(&a), "--reason", "called in"]);
    assert_eq!(cancelled["status"], "cancelled");

    let b = create(&db, &[]);
    let moved = db.ok(&[
        "--org",
        "org_a",
        "reschedule",
        &id(&b),
        "--at",
        "2031-01-01T00:00:00Z",
    ]);
    assert_eq!(moved["scheduled_at"], "2031-01-01T00:00:00Z");
    let claim = db.ok(&["--org", "org_a", "dispatch", &id(&b)]);
    assert_callback_shape(&claim["callback"]);
    assert_eq!(claim["callback"]["status"], "dispatching");
    assert!(is_claim_token(&claim["token"]), "{claim}");
    let done = db.ok(&["--org", "org_a", "complete", &id(&b), "--session", "sess_9"]);
    assert_eq!(done["status"], "dispatched");
    assert_eq!(done["created_session_id"], "sess_9");

    let c = create(&db, &[]);
    db.ok(&["--org", "org_a", "dispatch", &id(&c)]);
    let failed = db.ok(&["--org", "org_a", "fail", &id(&c), "--cause", "busy line"]);
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["failure_cause"], "busy line");

    let history = db.ok(&["--org", "org_a", "history", &id(&b)]);
    let actions = actions_of(&history);
    assert_eq!(
        actions,
        ["create", "reschedule", "dispatch", "complete_dispatch"]
    );
    let history = db.ok(&["--org", "org_a", "history", &id(&a)]);
    assert_eq!(history["events"][1]["detail"], "called in");
}

#[test]
fn list_filters_pages_and_follows_cursors_with_all() {
    let db = TestDb::new();
    let ids: Vec<String> = (0..7)
        .map(|i| {
            id(&create(
                &db,
                &[
                    "--source-session-id",
                    if i % 2 == 0 { "even" } else { "odd" },
                ],
            ))
        })
        .collect();
    let page = db.ok(&["--org", "org_a", "list", "--limit", "3"]);
    let keys = keys_of(&page);
    assert_eq!(keys, ["callbacks", "next_cursor"]);
    assert_eq!(page["callbacks"].as_array().unwrap().len(), 3);
    let cursor = page["next_cursor"].as_str().unwrap();
    let next = db.ok(&["--org", "org_a", "list", "--limit", "3", "--cursor", cursor]);
    assert_eq!(next["callbacks"][0]["id"], ids[3]);

    let all = db.ok(&["--org", "org_a", "list", "--limit", "2", "--all"]);
    let listed: Vec<&str> = all["callbacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    let newest_first: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    assert_eq!(listed, newest_first);
    assert_eq!(all["next_cursor"], Value::Null);

    let odd = db.ok(&[
        "--org",
        "org_a",
        "list",
        "--source-session-id",
        "odd",
        "--order",
        "scheduled_asc",
        "--all",
    ]);
    assert_eq!(odd["callbacks"].as_array().unwrap().len(), 3);
    let none = db.ok(&["--org", "org_a", "list", "--status", "failed"]);
    assert_eq!(none["callbacks"], json!([]));
    let filtered = db.ok(&[
        "--org",
        "org_a",
        "list",
        "--to-number",
        "+12015551234",
        "--agent-id",
        "nobody",
        "--scheduled-after",
        "2030-01-01T00:00:00Z",
        "--scheduled-before",
        "2031-01-01T00:00:00Z",
    ]);
    assert_eq!(filtered["callbacks"], json!([]));
}

#[test]
fn format_table_prints_aligned_columns_for_people() {
    let db = TestDb::new();
    let cb = create(&db, &["--reason", "wants pricing"]);
    let run = db.run(&["--org", "org_a", "--format", "table", "list"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("ID"), "{}", run.stdout);
    assert!(lines[0].contains("STATUS") && lines[0].contains("SCHEDULED_AT"));
    assert!(lines[1].starts_with(cb["id"].as_str().unwrap()));
    assert!(lines[1].contains("wants pricing"));
    let status_column = lines[0].find("STATUS").unwrap();
    assert_eq!(&lines[1][status_column..status_column + 9], "scheduled");
    let one = db.run(&[
        "--org",
        "org_a",
        "--format",
        "table",
        "get",
        cb["id"].as_str().unwrap(),
    ]);
    assert!(one
        .stdout
        .lines()
        .any(|l| l.starts_with("to_number") && l.ends_with("+12015551234")));
    let failed = db.run(&["--org", "org_a", "--format", "table", "get", "cb_nope"]);
    assert_eq!(failed.code, 4);
    assert!(
        failed
            .stderr
            .starts_with("error: callback cb_nope not found (NOT_FOUND)"),
        "{}",
        failed.stderr
    );
}

#[test]
fn claim_due_recover_stale_and_prune_work_across_organizations() {
    let db = TestDb::new();
    let a = db.ok(&[
        "--org",
        "org_a",
        "create",
        "--to",
        "+12015551234",
        "--at",
        "-1h",
    ]);
    let b = db.ok(&[
        "--org",
        "org_b",
        "create",
        "--to",
        "+12015551234",
        "--at",
        "-30m",
    ]);
    let later = db.ok(&[
        "--org",
        "org_b",
        "create",
        "--to",
        "+12015551234",
        "--at",
        "2040-01-01T00:00:00Z",
    ]);
    let none = db.ok(&["claim-due", "--now", "-2h"]);
    assert_eq!(none, json!({"claims": []}));
    let claimed = db.ok(&["claim-due", "--limit", "10"]);
    let claims = claimed["claims"].as_array().unwrap();
    let claimed_ids: Vec<&str> = claims
        .iter()
        .map(|c| c["callback"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        claimed_ids,
        [a["id"].as_str().unwrap(), b["id"].as_str().unwrap()]
    );
    for claim in claims {
        assert_callback_shape(&claim["callback"]);
        assert_eq!(claim["callback"]["status"], "dispatching");
        assert!(is_claim_token(&claim["token"]), "{claim}");
    }
    assert_ne!(claims[0]["token"], claims[1]["token"]);
    let none = db.ok(&["claim-due"]);
    assert_eq!(none, json!({"claims": []}));

    let recovered = db.ok(&["recover-stale", "--older-than", "0s"]);
    assert_eq!(recovered["callbacks"].as_array().unwrap().len(), 2);
    assert_eq!(
        recovered["callbacks"][0]["failure_cause"],
        "dispatch_interrupted"
    );
    assert_eq!(
        db.ok(&["--org", "org_b", "get", &id(&later)])["status"],
        "scheduled"
    );

    let kept = db.ok(&["prune", "--older-than", "30d"]);
    assert_eq!(kept["deleted"], 0);
    let pruned = db.ok(&["prune", "--older-than", "0s"]);
    assert_eq!(pruned["deleted"], 2);
    assert_eq!(db.run(&["--org", "org_a", "get", &id(&a)]).code, 4);
    assert_eq!(
        db.ok(&["--org", "org_b", "get", &id(&later)])["status"],
        "scheduled"
    );
}

#[test]
fn keys_create_list_and_revoke_and_token_acts_for_its_organization() {
    let db = TestDb::new();
    let created = db.ok(&["--org", "org_a", "keys", "create", "--label", "ci"]);
    let token = created["token"].as_str().unwrap();
    assert!(token.starts_with("cbs_"));
    assert_eq!(created["key"]["organization_id"], "org_a");
    assert_eq!(created["key"]["label"], "ci");
    let listed = db.ok(&["--org", "org_a", "keys", "list"]);
    assert_eq!(listed["keys"].as_array().unwrap().len(), 1);
    assert!(
        !listed.to_string().contains(token),
        "tokens are never listed"
    );

    let cb = db.ok(&[
        "--token",
        token,
        "create",
        "--to",
        "+12015551234",
        "--at",
        "now",
    ]);
    assert_eq!(cb["organization_id"], "org_a");
    assert_eq!(db.ok(&["--token", token, "get", &id(&cb)])["id"], cb["id"]);

    let revoked = db.ok(&["keys", "revoke", created["key"]["id"].as_str().unwrap()]);
    assert!(revoked["revoked_at"].is_string());
    let refused = db.run(&["--token", token, "list"]);
    assert_eq!(refused.code, 3);
    assert_eq!(refused.stderr.trim(), UNAUTHORIZED_BODY);
}

#[test]
fn the_database_comes_from_callback_store_db_when_db_is_not_given() {
    let db = TestDb::new();
    let output = std::process::Command::new(BIN)
        .args([
            "--org",
            "org_a",
            "create",
            "--to",
            "+12015551234",
            "--at",
            "now",
        ])
        .env("CALLBACK_STORE_DB", db.location())
        .env_remove("CALLBACK_STORE_TOKEN")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(database_created(&db));
    assert_eq!(
        db.ok(&["--org", "org_a", "list"])["callbacks"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn serve_on_a_fresh_database_prints_a_key_and_a_curl_line_that_works() {
    let db = TestDb::new();
    let server = db.serve(&[]);
    let log = server.log().join("\n");
    let curl = log
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("curl "))
        .unwrap_or_else(|| panic!("no curl line: {log}"));
    let token = curl.split("Bearer ").nth(1).unwrap().trim_end_matches('\'');
    assert!(curl.contains(&server.url("/v1/callbacks")), "{curl}");
    let resp = send(client().get(server.url("/v1/callbacks")).bearer_auth(token));
    assert_eq!(resp.text, r#"{"callbacks":[],"next_cursor":null}"#);
    assert!(log.contains("org_default"), "{log}");
    drop(server);
    // Not on the next start: the key exists already.
    let again = db.serve(&[]);
    assert!(!again.log().join("\n").contains("curl"));
}

#[test]
fn help_documents_the_exit_status_of_every_code() {
    let db = TestDb::new();
    let run = db.run(&["--help"]);
    assert_eq!(run.code, 0);
    for code in [
        "UNAUTHORIZED",
        "NOT_FOUND",
        "INVALID_TRANSITION",
        "CONFLICT",
        "VALIDATION_ERROR",
        "STORAGE_ERROR",
        "SCHEMA_ERROR",
    ] {
        assert!(run.stdout.contains(code), "{code}");
    }
}

#[test]
fn db_help_says_it_takes_a_file_path_or_a_postgres_url_and_how_to_choose_the_schema() {
    let run = TestDb::new().run(&["--help"]);
    assert_eq!(run.code, 0);
    let help = run.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    for text in [
        "--db <PATH|URL>",
        "an SQLite file's path",
        "`postgres://` or `postgresql://` URL",
        "options=-csearch_path%3D<schema>",
    ] {
        assert!(help.contains(text), "{text}: {help}");
    }
}
