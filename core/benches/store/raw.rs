//! The baseline: the same SQL work written directly with rusqlite —
//! prepared statements, the same schema and indexes, no validation, no
//! events. The practical limit for the store.
//!
//! Its claim stores no claim token and its completion checks none, and it
//! has no spend (the store's place_call commits one before each call): the
//! drain rows (P4) say what the store does beyond this.

use std::path::Path;

use callback_store::{Durability, NewCallback, Timestamp};
use rusqlite::types::Value;
use rusqlite::{params, Connection};

pub fn open(path: &Path, durability: Durability) -> Connection {
    // The store creates the schema; the baseline only uses it.
    drop(super::data::open(path, durability));
    let conn = Connection::open(path).unwrap();
    // The store's own settings of this durability, so that only the SQL work
    // differs.
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000;")
        .unwrap();
    conn.execute_batch(durability.pragmas()).unwrap();
    conn
}

fn micros(t: Timestamp) -> i64 {
    t.timestamp_micros()
}

pub fn insert(conn: &Connection, org: &str, id: &str, c: &NewCallback, now: Timestamp) {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO callbacks (id, organization_id, source_session_id, agent_id, phone_number_id,
                 to_number, from_number, scheduled_at, status, reason, instructions, summary,
                 pipeline_config, metadata, created_at, updated_at, eligible_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'scheduled', ?9, ?10, ?11, ?12, ?13, ?14, ?14, ?8)",
        )
        .unwrap();
    stmt.execute(params![
        id,
        org,
        c.source_session_id,
        c.agent_id,
        c.phone_number_id,
        c.to_number,
        c.from_number,
        micros(c.scheduled_at),
        c.reason,
        c.instructions,
        c.summary,
        serde_json::to_string(&c.pipeline_config).unwrap(),
        serde_json::to_string(&c.metadata).unwrap(),
        micros(now),
    ])
    .unwrap();
}

/// Runs a SELECT of whole rows and reads every column, as an application
/// reading records would.
pub fn select_rows(conn: &Connection, sql: &str, args: &[&dyn rusqlite::ToSql]) -> Vec<Vec<Value>> {
    let mut stmt = conn.prepare_cached(sql).unwrap();
    let width = stmt.column_count();
    let rows = stmt
        .query_map(args, |row| {
            (0..width).map(|i| row.get::<_, Value>(i)).collect()
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

/// metadata and pipeline_config of a row of `COLUMNS`, parsed into the
/// maps the store returns.
pub fn parse_json_columns(row: &[Value]) -> Vec<serde_json::Map<String, serde_json::Value>> {
    [14, 15]
        .iter()
        .map(|&i| match &row[i] {
            Value::Text(text) => serde_json::from_str(text).unwrap(),
            other => panic!("column {i} is not JSON text: {other:?}"),
        })
        .collect()
}

pub const COLUMNS: &str = "seq, id, organization_id, source_session_id, created_session_id, \
    agent_id, phone_number_id, to_number, from_number, scheduled_at, status, reason, instructions, \
    summary, pipeline_config, metadata, failure_cause, attempted_at, dispatched_at, cancelled_at, \
    created_at, updated_at";

/// claim_due by hand: one transaction, one UPDATE … RETURNING.
pub fn claim(conn: &mut Connection, now: Timestamp, limit: u32) -> Vec<(String, String)> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    let claimed = {
        let mut stmt = tx
            .prepare_cached(
                "UPDATE callbacks SET status = 'dispatching', attempted_at = ?1, updated_at = ?1
                 WHERE seq IN (SELECT seq FROM callbacks WHERE status = 'scheduled'
                               AND eligible_at <= ?1 ORDER BY eligible_at, seq LIMIT ?2)
                 RETURNING id, organization_id",
            )
            .unwrap();
        let rows = stmt
            .query_map(params![micros(now), limit], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        rows.map(Result::unwrap).collect()
    };
    tx.commit().unwrap();
    claimed
}

/// complete_dispatch by hand: one transaction, one guarded UPDATE.
pub fn complete(conn: &mut Connection, id: &str, org: &str, session: &str, now: Timestamp) {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    {
        let mut stmt = tx
            .prepare_cached(
                "UPDATE callbacks SET status = 'dispatched', created_session_id = ?3,
                     dispatched_at = ?4, updated_at = ?4
                 WHERE id = ?1 AND organization_id = ?2 AND status = 'dispatching'",
            )
            .unwrap();
        stmt.execute(params![id, org, session, micros(now)])
            .unwrap();
    }
    tx.commit().unwrap();
}

/// Claims by 100 and completes each in its own transaction until nothing
/// is due: P4's drain in raw SQL. Returns how many.
pub fn drain(conn: &mut Connection, now: Timestamp) -> usize {
    let mut count = 0;
    loop {
        let claimed = claim(conn, now, 100);
        if claimed.is_empty() {
            return count;
        }
        for (id, org) in claimed {
            complete(conn, &id, &org, "sess_x", now);
            count += 1;
        }
    }
}
