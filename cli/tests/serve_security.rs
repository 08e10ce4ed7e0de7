//! Security of `callback-store serve` as a process beside the command: a
//! key revoked by `keys revoke` while the server runs is refused at its
//! next request, and API tokens are never written to the database (the
//! file and its WAL on SQLite, the rows on PostgreSQL) or the server's
//! log. (Isolation and bounded requests are proved in-process by
//! `server/tests/http_security.rs`.)

mod common;

use std::time::Instant;

use common::*;
use serde_json::json;

#[test]
fn a_key_revoked_with_the_command_while_the_server_runs_gets_401_on_its_next_request() {
    let db = TestDb::new();
    let created = db.ok(&["--org", "org_a", "keys", "create", "--label", "doomed"]);
    let doomed = created["token"].as_str().unwrap().to_owned();
    let key_id = created["key"]["id"].as_str().unwrap().to_owned();
    let kept = db.token("org_a");
    let server = db.serve(&[]);
    // One client: its kept-alive connection is the one that gets the 401.
    let api = Api::new(&server.base, &doomed);
    let id = api.create(json!({}))["id"].as_str().unwrap().to_owned();
    assert_eq!(api.get("/v1/callbacks").status, 200);

    let revoked = db.ok(&["keys", "revoke", &key_id]);
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    let since = Instant::now();
    let resp = api.get("/v1/callbacks");
    assert_eq!(resp.status, 401, "{}", resp.text);
    assert_eq!(resp.text, UNAUTHORIZED_BODY);
    let mut routes = callback_routes(&id);
    routes.push(("GET", "/v1/callbacks".into(), None));
    routes.push((
        "POST",
        "/v1/callbacks".into(),
        Some(json!({"to_number": "+12015551234", "scheduled_at": "2030-01-01T00:00:00Z"})),
    ));
    for (method, path, body) in routes {
        let resp = api.call(method, &path, body.as_ref());
        assert_eq!(resp.status, 401, "{method} {path}: {}", resp.text);
        assert_eq!(resp.text, UNAUTHORIZED_BODY, "{method} {path}");
    }
    println!(
        "revoked key refused on its next request and on all 9 routes within {} ms of the revocation",
        since.elapsed().as_millis()
    );
    // The organization's other key still works, and nothing was changed.
    let other = Api::new(&server.base, &kept);
    let cb = other.get(&format!("/v1/callbacks/{id}"));
    assert_eq!(cb.status, 200, "{}", cb.text);
    assert_eq!(cb.json()["status"], "scheduled");
    assert_eq!(other.list_all("").len(), 1);
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// What the database holds: on SQLite the bytes of the file and its -wal
/// and -shm, those that exist; on PostgreSQL every row of every table of
/// its schema as text (BYTEA columns in hex, so a token's bytes are looked
/// for in hex too).
fn database_bytes(db: &TestDb) -> Vec<u8> {
    let mut bytes = Vec::new();
    match db {
        TestDb::Sqlite { path, .. } => {
            for suffix in ["", "-wal", "-shm"] {
                let mut path = path.clone().into_os_string();
                path.push(suffix);
                if let Ok(b) = std::fs::read(&path) {
                    bytes.extend(b);
                }
            }
        }
        TestDb::Postgres { .. } => {
            let schema = schema_of(db).unwrap();
            for table in tables_of(db) {
                let sql = format!("SELECT t::text FROM {schema}.{table} t");
                for row in texts_beside(db, &sql) {
                    bytes.extend(row.into_bytes());
                    bytes.push(b'\n');
                }
            }
        }
    }
    bytes
}

/// The lowercase hex of some bytes, as PostgreSQL prints a BYTEA.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn api_tokens_appear_nowhere_in_the_database_or_the_log_after_the_server_used_them() {
    let db = TestDb::new();
    let first = db.ok(&["--org", "org_a", "keys", "create", "--label", "first"]);
    let second = db.ok(&["--org", "org_b", "keys", "create", "--label", "second"]);
    let tokens: Vec<String> = [&first, &second]
        .iter()
        .map(|k| k["token"].as_str().unwrap().to_owned())
        .collect();
    let unknown = format!("cbs_{}", "Z".repeat(43));
    let server = db.serve(&["--no-recovery"]);
    for token in &tokens {
        let api = Api::new(&server.base, token);
        for _ in 0..20 {
            let id = api.create(json!({}))["id"].as_str().unwrap().to_owned();
            api.post(&format!("/v1/callbacks/{id}/dispatch"), None);
            assert_eq!(api.get("/v1/callbacks").status, 200);
        }
    }
    assert_eq!(
        Api::new(&server.base, &unknown).get("/v1/callbacks").status,
        401
    );
    db.ok(&["keys", "revoke", first["key"]["id"].as_str().unwrap()]);

    let check = |when: &str, bytes: &[u8], log: &[String]| {
        // The scan finds what is there: the key ids and the organizations.
        for known in [&first["key"]["id"], &second["key"]["id"]] {
            assert!(
                contains(bytes, known.as_str().unwrap().as_bytes()),
                "{when}: the scan misses {known}"
            );
        }
        for token in tokens.iter().chain([&unknown]) {
            let secret = token.trim_start_matches("cbs_");
            assert!(
                !contains(bytes, secret.as_bytes()),
                "{when}: a token is in the database"
            );
            assert!(
                !contains(bytes, hex(secret.as_bytes()).as_bytes()),
                "{when}: a token's bytes are in the database"
            );
            assert!(
                !log.iter().any(|l| l.contains(secret)),
                "{when}: a token is in the log"
            );
        }
    };
    let running = database_bytes(&db);
    if let TestDb::Sqlite { path, .. } = &db {
        assert!(
            std::fs::metadata(format!("{}-wal", path.display())).is_ok_and(|m| m.len() > 0),
            "the server's writes are in the WAL while it runs"
        );
    }
    check("while the server runs", &running, &server.log());
    let log = server.log();
    assert!(server.stop().success());
    check("after the server stopped", &database_bytes(&db), &log);
}
