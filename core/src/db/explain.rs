//! What a statement will do, read from SQLite's EXPLAIN: the tests that
//! prove a statement writes only the B-trees it should (and builds no
//! ephemeral table) read its program here, without running it.

use rusqlite::types::Value;
use rusqlite::Connection;

/// The opcodes of `sql`'s program with their P2 operand (for `OpenWrite`,
/// the root page of the B-tree it opens). Every parameter is bound NULL.
pub(crate) fn program(conn: &Connection, sql: &str) -> Vec<(String, i64)> {
    let mut explain = conn.prepare(&format!("EXPLAIN {sql}")).unwrap();
    let nulls = vec![Value::Null; explain.parameter_count()];
    let rows = explain
        .query_map(rusqlite::params_from_iter(nulls), |r| {
            Ok((r.get::<_, String>(1)?, r.get::<_, i64>(3)?))
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

/// The tables and indexes `sql` opens for writing, as (type, name),
/// sorted, each once.
pub(crate) fn written(conn: &Connection, sql: &str) -> Vec<(String, String)> {
    let mut names: Vec<(String, String)> = program(conn, sql)
        .into_iter()
        .filter(|(opcode, _)| opcode == "OpenWrite")
        .map(|(_, root)| {
            conn.query_row(
                "SELECT type, name FROM sqlite_schema WHERE rootpage = ?1",
                [root],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
        })
        .collect();
    names.sort();
    names.dedup();
    names
}
