//! `callback-store copy`: an SQLite file into PostgreSQL and back, as a
//! user runs it: the report, the copied callbacks, history and keys read
//! by the command on the target, a refused non-empty target, a missing
//! source. The rules of the copy itself are proved in core/tests/copy.rs.

mod common;

use common::*;
use serde_json::Value;

const ORG: &str = "org_a";

/// Runs `copy --from from --to to` (`--db`, which copy does not use, is
/// `from`'s).
fn copy(from: &TestDb, to: &TestDb) -> Run {
    from.run(&["copy", "--from", &from.location(), "--to", &to.location()])
}

/// What the command shows of a store: the list, each callback's history,
/// the keys.
fn seen(db: &TestDb) -> Vec<Value> {
    let list = db.ok(&["--org", ORG, "list", "--all", "--order", "scheduled_asc"]);
    let mut seen = vec![list.clone(), db.ok(&["--org", ORG, "keys", "list"])];
    for callback in list["callbacks"].as_array().unwrap() {
        let id = callback["id"].as_str().unwrap();
        seen.push(db.ok(&["--org", ORG, "history", id]));
    }
    seen
}

#[test]
fn copy_moves_a_file_to_postgres_and_back_with_the_same_checksum() {
    let file = TestDb::sqlite();
    let ids: Vec<String> = (0..5)
        .map(|i| file.create_at(ORG, &format!("+{i}d")))
        .collect();
    file.ok(&[
        "--org",
        ORG,
        "cancel",
        &ids[0],
        "--reason",
        "no longer needed",
    ]);
    file.ok(&["--org", ORG, "dispatch", &ids[1]]);
    let token = file.token(ORG);
    let expected = seen(&file);

    let pg = TestDb::postgres(&require_postgres());
    let run = copy(&file, &pg);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    assert_eq!(report["callbacks"], 5);
    assert_eq!(report["events"], 7); // 5 creations, a cancel, a dispatch
    assert_eq!(report["api_keys"], 1);
    let checksum = report["checksum"].as_str().unwrap();
    assert!(checksum.len() == 64 && checksum.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(seen(&pg), expected);
    let by_token = pg.ok(&["--token", &token, "get", &ids[2]]);
    assert_eq!(by_token["id"], ids[2].as_str());

    let back = TestDb::sqlite();
    let run = copy(&pg, &back);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json(), report);
    assert_eq!(seen(&back), expected);
}

#[test]
fn copy_into_a_store_that_is_not_empty_fails_with_validation_error_and_writes_nothing() {
    let file = TestDb::sqlite();
    file.create_at(ORG, "+1d");
    let pg = TestDb::postgres(&require_postgres());
    let mine = pg.create_at("org_b", "+2d");
    let before = pg.ok(&["--org", "org_b", "list"]);
    let run = copy(&file, &pg);
    assert_eq!(run.code, 7, "{}", run.stderr);
    let error = run.error();
    assert_eq!(error["code"], "VALIDATION_ERROR");
    let message = error["error"].as_str().unwrap();
    assert!(message.contains("holds 1 callback, 1 event"), "{message}");
    assert!(run.stdout.is_empty());
    assert_eq!(pg.ok(&["--org", "org_b", "list"]), before);
    assert_eq!(
        pg.ok(&["--org", ORG, "list"])["callbacks"],
        Value::Array(vec![])
    );
    assert_eq!(
        pg.ok(&["--org", "org_b", "get", &mine])["id"],
        mine.as_str()
    );
}

#[test]
fn copy_from_a_file_that_does_not_exist_fails_and_creates_nothing() {
    let missing = TestDb::sqlite();
    let target = TestDb::sqlite();
    let run = copy(&missing, &target);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("no such file"), "{}", run.stderr);
    assert!(!database_created(&missing) && !database_created(&target));
}

#[test]
fn copy_help_says_the_target_must_be_empty_and_that_the_copy_is_verified() {
    let run = TestDb::sqlite().run(&["copy", "--help"]);
    assert_eq!(run.code, 0);
    for words in ["--from", "--to", "must be empty", "checksum", "PostgreSQL"] {
        assert!(run.stdout.contains(words), "{words}: {}", run.stdout);
    }
    let run = TestDb::sqlite().run(&["copy", "--from", "a.db"]);
    assert_eq!(run.code, 2, "--to is required");
}

#[test]
fn copy_from_a_store_into_itself_is_a_validation_error() {
    let run = TestDb::sqlite().run(&["copy", "--from", "a.db", "--to", "a.db"]);
    assert_eq!(run.code, 7, "{}", run.stderr);
    assert!(run.stderr.contains("same store"), "{}", run.stderr);
}
