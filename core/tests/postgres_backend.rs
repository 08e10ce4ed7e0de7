//! What only the PostgreSQL backend has: its schema and migrations, the
//! isolation level it pins, and how it lives through lost connections and
//! an unreachable server. The rules themselves are proved on PostgreSQL by
//! the same suites as on SQLite (CALLBACK_STORE_TEST_BACKEND=postgres).
#![cfg(feature = "postgres")]

mod common;

use std::time::{Duration, Instant};

use callback_store::{ErrorCode, Status, Store, StoreOptions};
use common::new_callback;
use testkit::TestDb;

mod embedded {
    refinery::embed_migrations!("../migrations/postgres");
}

fn fresh() -> TestDb {
    TestDb::postgres(&testkit::require_postgres())
}

fn client(db: &TestDb) -> postgres::Client {
    postgres::Client::connect(&db.location(), postgres::NoTls).unwrap()
}

/// Columns, indexes and constraints of the schema the URL selects, in a
/// stable order, without the schema's name.
fn schema_of(db: &TestDb) -> Vec<String> {
    let mut c = client(db);
    let mut lines: Vec<String> = c
        .query(
            "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable
                 || ' ' || coalesce(column_default, '') || ' ' || is_identity
             FROM information_schema.columns WHERE table_schema = current_schema()
             ORDER BY table_name, ordinal_position",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    lines.extend(
        c.query(
            "SELECT replace(indexdef, current_schema() || '.', '') FROM pg_indexes
             WHERE schemaname = current_schema() ORDER BY indexname",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0)),
    );
    lines.extend(
        c.query(
            "SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
             WHERE connamespace = current_schema()::regnamespace ORDER BY conname",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0)),
    );
    lines
}

#[test]
fn a_database_migrated_step_by_step_has_the_schema_of_a_fresh_one() {
    let old = fresh();
    embedded::migrations::runner()
        .set_target(refinery::Target::Version(1))
        .run(&mut client(&old))
        .unwrap();
    client(&old)
        .batch_execute(
            "INSERT INTO callbacks (id, organization_id, to_number, scheduled_at, status,
                 created_at, updated_at)
             VALUES ('cb_old', 'org', '+12015551234', 0, 'scheduled', 0, 0)",
        )
        .unwrap();
    let upgraded = Store::open(old.location()).unwrap();
    let new = fresh();
    Store::open(new.location()).unwrap();
    assert_eq!(schema_of(&old), schema_of(&new));
    let org = upgraded.organization("org").unwrap();
    assert_eq!(org.get("cb_old").unwrap().to_number, "+12015551234");
    // The identity goes on after the migrated row.
    let made = org.create(new_callback(5)).unwrap();
    assert_eq!(org.get(&made.id).unwrap().status, Status::Scheduled);
}

#[test]
fn the_sqlite_and_postgresql_migrations_have_the_same_versions_and_names() {
    let names = |dir: &str| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(format!(
            "{}/../migrations/{dir}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sql"))
        .collect();
        names.sort();
        names
    };
    assert_eq!(names("sqlite"), names("postgres"));
}

#[test]
fn a_database_migrated_by_a_newer_version_is_refused_and_left_untouched() {
    let db = fresh();
    Store::open(db.location()).unwrap();
    client(&db)
        .batch_execute(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum)
             VALUES (999, 'future', '2030-01-01T00:00:00Z', '1')",
        )
        .unwrap();
    let before = schema_of(&db);
    let err = Store::open(db.location()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::SchemaError);
    assert!(err.to_string().contains("newer version"), "{err}");
    assert_eq!(schema_of(&db), before);
}

#[test]
fn a_schema_holding_someone_elses_callbacks_table_is_refused_and_left_untouched() {
    let db = fresh();
    client(&db)
        .batch_execute("CREATE TABLE callbacks (name TEXT); INSERT INTO callbacks VALUES ('ada')")
        .unwrap();
    let err = Store::open(db.location()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::SchemaError, "{err}");
    assert!(err.to_string().contains("not a callback store"), "{err}");
    let rows: i64 = client(&db)
        .query_one("SELECT COUNT(*) FROM callbacks", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 1);
    assert_eq!(schema_of(&db).len(), 1, "{:?}", schema_of(&db));
}

#[test]
fn a_search_path_naming_no_schema_is_a_clear_schema_error() {
    let server = testkit::require_postgres();
    let glue = if server.contains('?') { '&' } else { '?' };
    let url = format!("{server}{glue}options=-csearch_path%3Dno_such_schema_here");
    let err = Store::open(url).unwrap_err();
    assert_eq!(err.code(), ErrorCode::SchemaError, "{err}");
    assert!(err.to_string().contains("search_path"), "{err}");
}

#[test]
fn many_processes_opening_a_new_database_at_once_migrate_it_once() {
    let db = fresh();
    let location = db.location();
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let location = location.clone();
            std::thread::spawn(move || Store::open(location).map(|_| ()))
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
    let applied: i64 = client(&db)
        .query_one("SELECT COUNT(*) FROM refinery_schema_history", &[])
        .unwrap()
        .get(0);
    // One row per migration file, however many processes raced.
    let files = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../migrations/postgres"
    ))
    .unwrap()
    .count();
    assert_eq!(applied, files as i64);
}

#[test]
fn transactions_run_read_committed_whatever_the_servers_default() {
    let db = fresh();
    // The database's own default says SERIALIZABLE, as an operator might set it.
    let url = format!(
        "{}%20-cdefault_transaction_isolation%3Dserializable",
        db.location()
    );
    let store = Store::open(&url).unwrap();
    let level: String = store
        .with_postgres(|c| {
            let mut tx = c.transaction().unwrap();
            tx.query_one("SHOW transaction_isolation", &[])
                .unwrap()
                .get(0)
        })
        .unwrap()
        .unwrap();
    assert_eq!(level, "read committed");
    // And the store works under it.
    let org = store.organization("org_a").unwrap();
    let cb = org.create(new_callback(0)).unwrap();
    assert_eq!(
        store.claim_due(common::at_minutes(1), 10).unwrap()[0].id(),
        cb.id
    );
}

#[test]
fn a_lost_connection_is_replaced_on_the_next_call_without_reopening_the_store() {
    let db = fresh();
    let name = format!("lost_{}", std::process::id());
    let url = format!("{}%20-capplication_name%3D{name}", db.location());
    let store = Store::open(&url).unwrap();
    let org = store.organization("org_a").unwrap();
    let cb = org.create(new_callback(0)).unwrap();
    // Kill every server process serving this store, as a restart or a
    // network cut would.
    let killed: i64 = client(&db)
        .query_one(
            "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = $1) AS t",
            &[&name],
        )
        .unwrap()
        .get(0);
    assert!(killed >= 1, "no connection of the store was found");
    assert_eq!(org.get(&cb.id).unwrap().id, cb.id);
    let second = org.create(new_callback(1)).unwrap();
    assert_eq!(org.get(&second.id).unwrap().status, Status::Scheduled);
}

#[test]
fn an_unreachable_server_is_a_storage_error_within_the_busy_timeout() {
    // Nothing listens on port 1 of loopback.
    let started = Instant::now();
    let err = Store::open_with(
        "postgres://postgres@127.0.0.1:1/postgres",
        StoreOptions {
            busy_timeout: Duration::from_secs(2),
            ..StoreOptions::default()
        },
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::StorageError, "{err}");
    assert!(err.to_string().contains("cannot connect"), "{err}");
    // The cause is named, not only "error connecting to server".
    assert!(err.to_string().contains("refused"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_server_that_accepts_and_never_answers_fails_the_open_within_the_busy_timeout() {
    // The client's connect_timeout covers the socket, not the startup
    // handshake after it: such a server hung `Store::open` for good.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for socket in silent.incoming().take(16) {
            held.push(socket);
        }
        std::thread::sleep(Duration::from_secs(30));
    });
    let started = Instant::now();
    let err = Store::open_with(
        format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        StoreOptions {
            busy_timeout: Duration::from_secs(1),
            ..StoreOptions::default()
        },
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::StorageError, "{err}");
    assert!(err.is_busy(), "{err}");
    assert!(err.to_string().contains("within 1.0 s"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_url_that_is_not_a_postgresql_url_is_a_validation_error() {
    let err = Store::open("postgres://user@host:notaport/db").unwrap_err();
    assert_eq!(err.code(), ErrorCode::ValidationError, "{err}");
}

#[test]
fn a_row_locked_past_the_busy_timeout_is_a_busy_storage_error_and_writes_nothing() {
    let db = fresh();
    let store = Store::open_with(
        db.location(),
        StoreOptions {
            busy_timeout: Duration::from_millis(500),
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let org = store.organization("org_a").unwrap();
    let cb = org.create(new_callback(0)).unwrap();
    let mut holder = client(&db);
    let mut tx = holder.transaction().unwrap();
    tx.execute(
        "SELECT 1 FROM callbacks WHERE id = $1 FOR UPDATE",
        &[&cb.id],
    )
    .unwrap();
    let err = org.cancel(&cb.id, None).unwrap_err();
    assert_eq!(err.code(), ErrorCode::StorageError, "{err}");
    assert!(err.is_busy(), "{err}");
    tx.rollback().unwrap();
    assert_eq!(org.get(&cb.id).unwrap().status, Status::Scheduled);
    assert_eq!(org.cancel(&cb.id, None).unwrap().status, Status::Cancelled);
}

#[test]
fn a_store_dropped_on_an_async_runtime_thread_does_not_panic() {
    // Each pooled connection owns a tokio runtime, which tokio refuses to
    // drop inside another runtime's task: a server dropping its last store
    // handle there aborted (found by the fleet test).
    let store = Store::open(fresh().location()).unwrap();
    let org = store.organization("org_a").unwrap();
    org.create(new_callback(0)).unwrap();
    drop(org);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async move { drop(store) });
}
