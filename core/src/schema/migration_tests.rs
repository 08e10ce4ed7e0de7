//! Migrations on files with data: step by step from V1, and V4 to V5 (the
//! events table rebuilt around the history chain) on a file of
//! `CALLBACK_STORE_MIGRATION_ROWS` callbacks (20,000 here; scripts/
//! reliability.sh runs 1,000,000 in a release build), also with the
//! migrating process killed partway.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rusqlite::types::ValueRef;
use rusqlite::Connection;

use super::{inspect, latest_version, migrate_to};
use crate::time::to_micros;
use crate::Store;

fn rows_wanted() -> usize {
    std::env::var("CALLBACK_STORE_MIGRATION_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

/// A V4 file of `n` callbacks of every status, with the events their
/// statuses imply, appended in rounds (every creation, then the claims
/// newest first, then the endings) so that each callback's events are
/// spread over the log, as a busy store writes them. One transaction of
/// bulk INSERT … SELECT over a recursive counter.
fn v4_file(path: &Path, n: usize) {
    let mut conn = Connection::open(path).unwrap();
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
        .unwrap();
    migrate_to(&mut conn, 4);
    assert_eq!(inspect(&conn).unwrap(), 4);
    let tx = conn.transaction().unwrap();
    tx.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
         INSERT INTO callbacks (seq, id, organization_id, source_session_id, agent_id, to_number,
             scheduled_at, status, reason, metadata, attempted_at, dispatched_at, cancelled_at,
             failure_cause, created_session_id, created_at, updated_at, claim_token, eligible_at,
             idempotency_key)
         SELECT i, printf('cb_%032x', i), 'org_' || (i % 7),
             CASE WHEN i % 3 = 0 THEN 'sess_' || i END, CASE WHEN i % 4 = 0 THEN 'agent_1' END,
             printf('+1201555%04d', i % 10000), 1000000 * i, s.status,
             CASE WHEN i % 2 = 0 THEN 'reason ' || i END, '{\"n\":' || i || '}',
             CASE WHEN s.status IN ('dispatching', 'dispatched', 'failed') THEN 1000000 * i + 1 END,
             CASE WHEN s.status = 'dispatched' THEN 1000000 * i + 2 END,
             CASE WHEN s.status = 'cancelled' THEN 1000000 * i + 2 END,
             CASE WHEN s.status = 'failed' THEN 'no answer' END,
             CASE WHEN s.status = 'dispatched' THEN 'sess_new_' || i END,
             1000000 * i - 5, 1000000 * i + 2,
             CASE WHEN s.status IN ('dispatching', 'dispatched', 'failed')
                 THEN lower(hex(randomblob(16))) END,
             CASE WHEN s.status = 'scheduled' THEN 1000000 * i END,
             CASE WHEN i % 11 = 0 THEN 'key_' || i END
         FROM n JOIN (SELECT 0 AS k, 'scheduled' AS status UNION ALL SELECT 1, 'dispatching'
             UNION ALL SELECT 2, 'dispatched' UNION ALL SELECT 3, 'cancelled'
             UNION ALL SELECT 4, 'failed') s ON s.k = i % 5",
        [n as i64],
    )
    .unwrap();
    tx.execute_batch(
        "INSERT INTO callback_events (callback_seq, action, from_status, to_status, at)
         SELECT seq, 'create', NULL, 'scheduled', created_at FROM callbacks ORDER BY seq;
         INSERT INTO callback_events (callback_seq, action, from_status, to_status, at)
         SELECT seq, 'claim_due', 'scheduled', 'dispatching', attempted_at FROM callbacks
         WHERE status IN ('dispatching', 'dispatched', 'failed') ORDER BY seq DESC;
         INSERT INTO callback_events (callback_seq, action, from_status, to_status, at, detail)
         SELECT seq, CASE status WHEN 'dispatched' THEN 'complete_dispatch'
                 WHEN 'cancelled' THEN 'cancel' ELSE 'fail_dispatch' END,
             CASE status WHEN 'cancelled' THEN 'scheduled' ELSE 'dispatching' END,
             status, updated_at, failure_cause
         FROM callbacks WHERE status IN ('dispatched', 'cancelled', 'failed') ORDER BY seq;",
    )
    .unwrap();
    tx.commit().unwrap();
}

fn hash_value(value: ValueRef<'_>, h: &mut DefaultHasher) {
    match value {
        ValueRef::Null => 0u8.hash(h),
        ValueRef::Integer(i) => (1u8, i).hash(h),
        ValueRef::Real(r) => (2u8, r.to_bits()).hash(h),
        ValueRef::Text(t) => (3u8, t).hash(h),
        ValueRef::Blob(b) => (4u8, b).hash(h),
    }
}

/// A digest of every row of `table` over `columns`, in rowid order.
fn digest(conn: &Connection, table: &str, columns: &[String]) -> (u64, u64) {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {} FROM {table} ORDER BY rowid",
            columns.join(", ")
        ))
        .unwrap();
    let mut rows = stmt.query([]).unwrap();
    let (mut h, mut count) = (DefaultHasher::new(), 0);
    while let Some(row) = rows.next().unwrap() {
        for i in 0..columns.len() {
            hash_value(row.get_ref(i).unwrap(), &mut h);
        }
        count += 1;
    }
    (count, h.finish())
}

fn columns_of(conn: &Connection, table: &str) -> Vec<String> {
    let mut stmt = conn
        .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
        .unwrap();
    let rows = stmt.query_map([], |r| r.get(0)).unwrap();
    rows.map(Result::unwrap).collect()
}

/// What a V4 file holds, to be found again after the migration: the rows of
/// every table over their V4 columns, and each callback's history.
#[derive(Debug, PartialEq)]
struct Contents {
    tables: Vec<(String, Vec<String>, (u64, u64))>,
    /// (organization, id, digest of its events in order), by callback seq.
    histories: Vec<(String, String, u64)>,
}

const TABLES: [&str; 4] = [
    "callbacks",
    "callback_events",
    "api_keys",
    "calling_policies",
];

fn event_digest(action: &str, from: Option<&str>, to: &str, at: i64, detail: Option<&str>) -> u64 {
    let mut h = DefaultHasher::new();
    (action, from, to, at, detail).hash(&mut h);
    h.finish()
}

/// Reads a V4 file's contents, the histories through its events index.
fn v4_contents(conn: &Connection) -> Contents {
    let tables = TABLES
        .iter()
        .map(|t| {
            let columns = columns_of(conn, t);
            let digest = digest(conn, t, &columns);
            (t.to_string(), columns, digest)
        })
        .collect();
    let mut stmt = conn
        .prepare(
            "SELECT c.organization_id, c.id, e.action, e.from_status, e.to_status, e.at, e.detail
             FROM callbacks c JOIN callback_events e ON e.callback_seq = c.seq
             ORDER BY c.seq, e.seq",
        )
        .unwrap();
    let mut rows = stmt.query([]).unwrap();
    let mut histories: Vec<(String, String, u64)> = Vec::new();
    let mut h = DefaultHasher::new();
    while let Some(r) = rows.next().unwrap() {
        let (org, id): (String, String) = (r.get(0).unwrap(), r.get(1).unwrap());
        let event = event_digest(
            &r.get::<_, String>(2).unwrap(),
            r.get::<_, Option<String>>(3).unwrap().as_deref(),
            &r.get::<_, String>(4).unwrap(),
            r.get(5).unwrap(),
            r.get::<_, Option<String>>(6).unwrap().as_deref(),
        );
        if histories.last().is_none_or(|(_, last, _)| *last != id) {
            if let Some(last) = histories.last_mut() {
                last.2 = h.finish();
            }
            histories.push((org, id, 0));
            h = DefaultHasher::new();
        }
        event.hash(&mut h);
    }
    if let Some(last) = histories.last_mut() {
        last.2 = h.finish();
    }
    Contents { tables, histories }
}

/// Reads a migrated file's contents over the V4 columns of `before`, each
/// history through `Organization::history` (the chain).
fn migrated_contents(store: &Store, before: &Contents) -> Contents {
    let tables = store.with_connection(|conn| {
        before
            .tables
            .iter()
            .map(|(t, columns, _)| (t.clone(), columns.clone(), digest(conn, t, columns)))
            .collect()
    });
    let histories = before
        .histories
        .iter()
        .map(|(org, id, _)| {
            let mut h = DefaultHasher::new();
            for e in store.organization(org).unwrap().history(id).unwrap() {
                let from = e.from.map(|s| s.as_str());
                event_digest(
                    e.action.as_str(),
                    from,
                    e.to.as_str(),
                    to_micros(e.at),
                    e.detail.as_deref(),
                )
                .hash(&mut h);
            }
            (org.clone(), id.clone(), h.finish())
        })
        .collect();
    Contents { tables, histories }
}

/// The schema as SQLite keeps it, whitespace collapsed.
fn normalized_schema(conn: &Connection) -> Vec<(String, String, Option<String>)> {
    let mut stmt = conn
        .prepare("SELECT type, name, sql FROM sqlite_schema ORDER BY type, name")
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            let sql: Option<String> = r.get(2)?;
            let sql = sql.map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "));
            Ok((r.get(0)?, r.get(1)?, sql))
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

/// Everything a finished V4 → V5 migration must give: the same rows, the
/// same history per callback, a sound file, a fresh file's schema.
fn assert_migrated(store: &Store, before: &Contents, dir: &Path) {
    assert_eq!(migrated_contents(store, before), *before);
    store.with_connection(|conn| {
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        assert_eq!(inspect(conn).unwrap(), latest_version());
        let fresh = Store::open(dir.join(format!("fresh-{}.db", std::process::id()))).unwrap();
        assert_eq!(
            normalized_schema(conn),
            fresh.with_connection(normalized_schema)
        );
    });
}

#[test]
fn a_large_v4_file_migrates_with_every_row_and_history_and_the_schema_of_a_fresh_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v4.db");
    v4_file(&path, rows_wanted());
    let before = v4_contents(&Connection::open(&path).unwrap());
    assert_eq!(before.histories.len(), rows_wanted());
    let started = Instant::now();
    let store = Store::open(&path).unwrap();
    eprintln!(
        "V4 -> V5 of {} callbacks: {:.1} s",
        rows_wanted(),
        started.elapsed().as_secs_f64()
    );
    assert_migrated(&store, &before, dir.path());
}

const CHILD_ENV: &str = "CALLBACK_STORE_MIGRATION_CHILD";

/// The crash test's child process: opens (so migrates) the file named by
/// the environment. Run only as a child, hence ignored.
#[test]
#[ignore = "the child process of the crash test below"]
fn a_child_process_opens_the_file_named_by_the_environment() {
    let path = std::env::var(CHILD_ENV).expect("run by the crash test");
    Store::open(path).unwrap();
}

fn wal_len(path: &Path) -> u64 {
    std::fs::metadata(format!("{}-wal", path.display())).map_or(0, |m| m.len())
}

fn file_digest(path: &Path) -> u64 {
    let mut h = DefaultHasher::new();
    std::fs::read(path).unwrap().hash(&mut h);
    h.finish()
}

/// Copies the V4 template to `work`, has a child process migrate it, and
/// SIGKILLs the child once its WAL holds `kill_at` bytes (the migration is
/// writing). Returns whether the kill landed before the child finished.
fn migrate_in_child_killed_at(template: &Path, work: &Path, kill_at: u64) -> bool {
    let _ = std::fs::remove_file(format!("{}-wal", work.display()));
    let _ = std::fs::remove_file(format!("{}-shm", work.display()));
    std::fs::copy(template, work).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "schema::migration_tests::a_child_process_opens_the_file_named_by_the_environment",
        ])
        .env(CHILD_ENV, work)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "the child failed to migrate: {status}");
            return false;
        }
        if wal_len(work) >= kill_at {
            child.kill().unwrap();
            child.wait().unwrap();
            return true;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

#[test]
fn a_migration_killed_partway_leaves_v4_unchanged_or_v5_and_migrates_on_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("v4.db");
    v4_file(&template, rows_wanted());
    let before = v4_contents(&Connection::open(&template).unwrap());
    let (file_before, size) = (
        file_digest(&template),
        std::fs::metadata(&template).unwrap().len(),
    );
    assert_eq!(wal_len(&template), 0, "the template is checkpointed");
    let work: PathBuf = dir.path().join("work.db");
    let mut killed_at_v4 = 0;
    // Kills as the WAL reaches 1/16, 1/4 and 1/2 of the file's size: the
    // migration rewrites every callback and every event, so it writes
    // about the file's size to the WAL before it commits.
    for fraction in [16, 4, 2] {
        let killed = migrate_in_child_killed_at(&template, &work, size / fraction);
        // Read before anything opens the file again.
        let file_after = file_digest(&work);
        let version = inspect(&Connection::open(&work).unwrap()).unwrap();
        match version {
            4 => {
                assert!(killed, "a child that exited by itself left V4");
                // WAL mode: the file itself is only written by checkpoints
                // after a commit; the frames of the killed transaction are
                // ignored when the file is next opened.
                assert_eq!(file_after, file_before, "V4 was changed");
                assert_eq!(v4_contents(&Connection::open(&work).unwrap()), before);
                killed_at_v4 += 1;
            }
            5 => {}
            other => panic!("after the kill the file is at version {other}"),
        }
        eprintln!(
            "{} callbacks, kill at 1/{fraction} of the file in the WAL: killed {killed}, left V{version}",
            rows_wanted()
        );
        let store = Store::open(&work).unwrap();
        assert_migrated(&store, &before, dir.path());
    }
    assert!(killed_at_v4 > 0, "no kill landed while the migration ran");
}

#[test]
fn a_file_migrated_one_version_at_a_time_keeps_each_versions_callbacks_and_their_history() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steps.db");
    let mut conn = Connection::open(&path).unwrap();
    // At each version one callback, created then cancelled, its events
    // interleaved with the next version's. Written as each version's own
    // code wrote history: up to V4, events only (V5 made the chain, which
    // a writer from V5 on maintains).
    const CHAIN: i32 = 5;
    assert!(latest_version() >= CHAIN);
    for version in 1..CHAIN {
        migrate_to(&mut conn, version);
        assert_eq!(inspect(&conn).unwrap(), version);
        conn.execute_batch(&format!(
            "INSERT INTO callbacks (id, organization_id, to_number, scheduled_at, status,
                 created_at, updated_at)
             VALUES ('cb_v{version}', 'org', '+12015551234', 0, 'cancelled', {version}, {version});
             INSERT INTO callback_events (callback_seq, action, from_status, to_status, at)
             SELECT seq, 'create', NULL, 'scheduled', {version} FROM callbacks WHERE id = 'cb_v{version}';
             INSERT INTO callback_events (callback_seq, action, from_status, to_status, at)
             SELECT seq, 'cancel', 'scheduled', 'cancelled', 10 + {version}
             FROM callbacks WHERE id = 'cb_v1';"
        ))
        .unwrap();
    }
    drop(conn);
    let store = Store::open(&path).unwrap();
    let fresh = Store::open(dir.path().join("fresh.db")).unwrap();
    assert_eq!(
        store.with_connection(normalized_schema),
        fresh.with_connection(normalized_schema)
    );
    let org = store.organization("org").unwrap();
    let actions = |id: &str| -> Vec<(String, i64)> {
        let history = org.history(id).unwrap();
        history
            .iter()
            .map(|e| (e.action.as_str().to_owned(), to_micros(e.at)))
            .collect()
    };
    // cb_v1 was "cancelled" once per version: its whole chain, in order.
    let mut v1 = vec![("create".to_owned(), 1)];
    v1.extend((1..CHAIN).map(|v| ("cancel".to_owned(), 10 + i64::from(v))));
    assert_eq!(actions("cb_v1"), v1);
    for version in 2..CHAIN {
        assert_eq!(
            actions(&format!("cb_v{version}")),
            vec![("create".to_owned(), i64::from(version))]
        );
    }
    // New events go on the chain of a callback the migration linked.
    org.create(crate::NewCallback::new("+12015551234", chrono::Utc::now()))
        .unwrap();
    assert_eq!(
        store.prune(chrono::Utc::now()).unwrap(),
        u64::from((CHAIN - 1) as u32)
    );
    store.with_connection(|c| {
        let left: i64 = c
            .query_row("SELECT COUNT(*) FROM callback_events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 1, "prune leaves only the new callback's creation");
    });
}
