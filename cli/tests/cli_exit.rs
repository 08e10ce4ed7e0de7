//! The command's exit statuses (one per error code, the API's error body on
//! stderr) and `import` of JSON Lines in one transaction.

mod common;

use std::fmt::Write as _;

use callback_store::{Status, Store};
use common::*;
use serde_json::Value;

fn create(db: &TestDb) -> String {
    db.ok(&[
        "--org",
        "org_a",
        "create",
        "--to",
        "+12015551234",
        "--at",
        "2030-01-01T00:00:00Z",
    ])["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Runs, expects `status`, and returns the error body from stderr.
fn fails(db: &TestDb, args: &[&str], status: i32, code: &str) -> Value {
    let run = db.run(args);
    assert_eq!(run.code, status, "{args:?}: {}", run.stderr);
    assert_eq!(run.stdout, "", "{args:?}");
    let body = run.error();
    assert_eq!(body["code"], code, "{args:?}");
    body
}

#[test]
fn each_error_code_exits_with_its_own_status_and_prints_the_error_body() {
    let db = TestDb::new();
    let id = create(&db);
    fails(&db, &["--token", "cbs_nope", "list"], 3, "UNAUTHORIZED");
    fails(
        &db,
        &["--org", "org_a", "get", "cb_missing"],
        4,
        "NOT_FOUND",
    );
    fails(&db, &["--org", "org_b", "get", &id], 4, "NOT_FOUND");
    db.ok(&["--org", "org_a", "dispatch", &id]);
    let body = fails(
        &db,
        &["--org", "org_a", "cancel", &id],
        5,
        "INVALID_TRANSITION",
    );
    assert!(body["error"].as_str().unwrap().contains("dispatching"));
    let key = [
        "--org",
        "org_a",
        "create",
        "--to",
        "+12015551234",
        "--at",
        "2030-01-01T00:00:00Z",
        "--idempotency-key",
        "k",
    ];
    db.ok(&key);
    let mut other = key.to_vec();
    other.extend(["--reason", "different"]);
    fails(&db, &other, 6, "CONFLICT");
    let body = fails(
        &db,
        &["--org", "org_a", "create", "--to", "12345", "--at", "now"],
        7,
        "VALIDATION_ERROR",
    );
    assert!(body["error"].as_str().unwrap().starts_with("to_number: "));
    fails(
        &db,
        &[
            "--org",
            "org_a",
            "create",
            "--to",
            "+12015551234",
            "--at",
            "soon",
        ],
        7,
        "VALIDATION_ERROR",
    );
    fails(
        &db,
        &[
            "--org",
            "org_a",
            "create",
            "--to",
            "+1201",
            "--at",
            "now",
            "--metadata",
            "[1]",
        ],
        7,
        "VALIDATION_ERROR",
    );
    fails(
        &db,
        &["--org", "org_a", "list", "--limit", "101"],
        7,
        "VALIDATION_ERROR",
    );
    fails(
        &db,
        &["--org", "org_a", "list", "--status", "done"],
        7,
        "VALIDATION_ERROR",
    );
    fails(&db, &["list"], 7, "VALIDATION_ERROR");
    fails(
        &db,
        &["recover-stale", "--older-than", "ten minutes"],
        7,
        "VALIDATION_ERROR",
    );
    fails(&db, &["claim-due", "--limit", "0"], 7, "VALIDATION_ERROR");
}

#[test]
fn a_path_sqlite_cannot_open_exits_8() {
    let dir = tempfile::tempdir().unwrap();
    // A folder where the file should be: SQLite cannot open it.
    let folder = dir.path().join("a-folder.db");
    std::fs::create_dir(&folder).unwrap();
    let run = TestDb::sqlite().run(&["--db", folder.to_str().unwrap(), "init"]);
    assert_eq!(run.code, 8, "{}", run.stderr);
    assert_eq!(run.error()["code"], "STORAGE_ERROR");
}

/// The command parses the stored metadata to print it: a column changed by
/// hand into JSON no map can hold (a number beyond f64) is a storage error,
/// exit 8, not a panic; one that is not JSON at all fails when read.
#[test]
fn a_metadata_column_damaged_by_hand_exits_8() {
    let db = TestDb::new();
    let id = create(&db);
    for damage in [r#"{"n":1e400}"#, r#"{"n":"#] {
        let update = |table: &str| format!("UPDATE {table} SET metadata = '{damage}'");
        match (&db, schema_of(&db)) {
            (TestDb::Sqlite { .. }, _) => Store::open(db.location())
                .unwrap()
                .with_connection(|c| c.execute_batch(&update("callbacks")).unwrap()),
            (_, Some(schema)) => execute_beside(&db, &update(&format!("{schema}.callbacks"))),
            (_, None) => panic!("no schema in {}", db.location()),
        }
        let error = fails(&db, &["--org", "org_a", "get", &id], 8, "STORAGE_ERROR");
        assert!(!error["error"].as_str().unwrap().is_empty(), "{error}");
    }
}

/// No server at all is needed to prove it: nothing listens on port 1.
#[test]
fn a_postgres_server_that_cannot_be_reached_exits_8_within_the_busy_timeout() {
    let started = std::time::Instant::now();
    let run = TestDb::sqlite().run(&[
        "--db",
        "postgres://postgres@127.0.0.1:1/postgres",
        "--busy-timeout",
        "1s",
        "init",
    ]);
    assert_eq!(run.code, 8, "{}", run.stderr);
    let error = run.error();
    assert_eq!(error["code"], "STORAGE_ERROR");
    assert!(
        error["error"].as_str().unwrap().contains("PostgreSQL"),
        "{error}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

/// On SQLite a file of another program; on PostgreSQL a schema whose
/// `callbacks` table another program made.
#[test]
fn a_database_another_program_made_exits_9_and_is_left_as_it_was() {
    let db = TestDb::new();
    let notes = "not a database, just notes\n".repeat(200);
    let schema = schema_of(&db);
    match (&db, &schema) {
        (TestDb::Sqlite { path, .. }, _) => std::fs::write(path, &notes).unwrap(),
        (_, Some(schema)) => execute_beside(
            &db,
            &format!(
                "CREATE TABLE {schema}.callbacks (note TEXT); INSERT INTO {schema}.callbacks VALUES ('theirs')"
            ),
        ),
        (_, None) => panic!("no schema in {}", db.location()),
    }
    let run = db.run(&["init"]);
    assert_eq!(run.code, 9, "{}", run.stderr);
    assert_eq!(run.error()["code"], "SCHEMA_ERROR");
    // serve refuses it the same way, before listening.
    let run = db.run(&["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(run.code, 9, "{}", run.stderr);
    match (&db, &schema) {
        (TestDb::Sqlite { path, .. }, _) => {
            assert_eq!(std::fs::read_to_string(path).unwrap(), notes)
        }
        (_, Some(schema)) => {
            let theirs = texts_beside(&db, &format!("SELECT note FROM {schema}.callbacks"));
            assert_eq!(theirs, ["theirs"]);
            assert_eq!(
                tables_of(&db),
                ["callbacks"],
                "only their table, none of ours"
            );
        }
        (_, None) => unreachable!(),
    }
}

#[test]
fn usage_errors_exit_2_and_failures_outside_the_store_exit_1() {
    let db = TestDb::new();
    assert_eq!(db.run(&["frobnicate"]).code, 2);
    assert_eq!(db.run(&["--org", "org_a", "create", "--at", "now"]).code, 2);
    assert_eq!(db.run(&["--org", "a", "--token", "t", "list"]).code, 2);
    let run = db.run(&["--org", "org_a", "import", "/nonexistent/file.jsonl"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("/nonexistent/file.jsonl"));
    // A port already taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let run = db.run(&["serve", "--listen", &address]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("cannot listen"), "{}", run.stderr);
}

fn lines(count: usize) -> String {
    let mut text = String::new();
    for i in 0..count {
        writeln!(
            text,
            r#"{{"to_number":"+1201555{:04}","scheduled_at":"2030-01-01T00:00:00Z","source_session_id":"sess_{i}","metadata":{{"row":{i}}}}}"#,
            i % 10_000
        )
        .unwrap();
        if i % 1000 == 999 {
            text.push('\n'); // blank lines are skipped
        }
    }
    text
}

#[test]
fn import_of_10k_json_lines_creates_them_all_in_one_transaction() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("callbacks.jsonl");
    std::fs::write(&file, lines(10_000)).unwrap();
    let out = db.ok(&["--org", "org_a", "import", file.to_str().unwrap()]);
    assert_eq!(out["imported"], 10_000);
    let ids = out["ids"].as_array().unwrap();
    assert_eq!(ids.len(), 10_000);
    let store = Store::open(db.location()).unwrap();
    let org = store.organization("org_a").unwrap();
    let counts = org.count_by_status().unwrap();
    assert!(counts.contains(&(Status::Scheduled, 10_000)), "{counts:?}");
    // Line order is kept: the 1234th line is the 1234th id.
    let cb = org.get(ids[1233].as_str().unwrap()).unwrap();
    assert_eq!(cb.source_session_id.as_deref(), Some("sess_1233"));
    assert_eq!(cb.metadata.to_map().unwrap()["row"], 1233);
}

#[test]
fn import_is_all_or_nothing_and_names_the_bad_line() {
    let db = TestDb::new();
    let mut text = lines(5);
    text.push_str(
        r#"{"to_number":"+12015551234","scheduled_at":"2030-01-01T00:00:00Z","colour":"red"}"#,
    );
    text.push('\n');
    let run = db.run_with_input(&["--org", "org_a", "import", "-"], text.as_bytes());
    assert_eq!(run.code, 7, "{}", run.stderr);
    let msg = run.error()["error"].as_str().unwrap().to_owned();
    assert!(
        msg.starts_with("line 6: body: unknown field colour"),
        "{msg}"
    );

    let mut text = lines(3);
    text.push_str("{not json\n");
    let run = db.run_with_input(&["--org", "org_a", "import"], text.as_bytes());
    assert_eq!(run.code, 7);
    assert!(run.error()["error"]
        .as_str()
        .unwrap()
        .starts_with("line 4: malformed JSON"));

    // A rule the store checks (the number) is reported by line, too.
    let text = lines(2) + "\n" + r#"{"to_number":"12","scheduled_at":"2030-01-01T00:00:00Z"}"#;
    let run = db.run_with_input(&["--org", "org_a", "import"], text.as_bytes());
    assert_eq!(run.code, 7);
    let msg = run.error()["error"].as_str().unwrap().to_owned();
    assert!(
        msg.starts_with("line 4: to_number: must be an E.164"),
        "{msg}"
    );

    // Nothing was written by the failed imports.
    let listed = db.ok(&["--org", "org_a", "list"]);
    assert_eq!(listed["callbacks"].as_array().unwrap().len(), 0);
    // From stdin, it works.
    let run = db.run_with_input(&["--org", "org_a", "import"], lines(3).as_bytes());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["imported"], 3);
    assert_eq!(run.stderr, "", "no progress when stderr is not a terminal");
}

#[test]
fn import_shows_progress_on_stderr_when_it_is_a_terminal() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("callbacks.jsonl");
    let out = dir.path().join("out.json");
    std::fs::write(&file, lines(2500)).unwrap();
    // `script` runs the command on a pseudo-terminal and copies what it shows.
    let command = format!(
        "{BIN} --db '{}' --org org_a import {} > {}",
        db.location(),
        file.display(),
        out.display()
    );
    let shown = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()
        .unwrap();
    assert!(shown.status.success(), "{shown:?}");
    let screen = String::from_utf8_lossy(&shown.stdout);
    assert!(screen.contains("read 2000 callbacks"), "{screen}");
    assert!(
        screen.contains("read 2500 callbacks; writing them in one transaction"),
        "{screen}"
    );
    assert!(screen.contains("imported 2500 callbacks"), "{screen}");
    let printed: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(printed["imported"], 2500);
}
