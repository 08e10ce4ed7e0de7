//! SQLite query plans for the tests that prove a statement searches an
//! index: EXPLAIN QUERY PLAN, and the check that rejects full scans.

use callback_store::Store;
use rusqlite::Connection;

/// Whitespace-insensitive text, with Rust's `\` line continuations joined.
pub fn normalized(text: &str) -> String {
    text.replace("\\\n", " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The plan's lines, as `EXPLAIN QUERY PLAN` details. Parameters stay
/// unbound (NULL): without statistics the plan does not depend on them.
pub fn plan(store: &Store, sql: &str) -> Vec<String> {
    store.with_connection(|conn: &Connection| {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap_or_else(|e| panic!("{e}: {sql}"));
        let mut rows = stmt.raw_query();
        let mut lines = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            lines.push(row.get::<_, String>("detail").unwrap());
        }
        lines
    })
}

/// Fails on any full scan of a table (with or without a covering index:
/// `SCAN t USING INDEX` still reads every entry), and requires that each
/// of `indexes` is searched.
pub fn assert_searches(what: &str, sql: &str, lines: &[String], indexes: &[&str]) {
    let shown = || format!("{what}\n  SQL: {}\n  plan: {lines:#?}", normalized(sql));
    for line in lines {
        // Reading a subquery's own rows back (at most a page), the list
        // of seqs a bulk move was given (json_each of its parameter), or
        // the queue of a chain's walk (one row per event walked), is no
        // table scan.
        let table_scan = line.starts_with("SCAN ")
            && !line.starts_with("SCAN (subquery")
            && line != "SCAN chain"
            && !line.starts_with("SCAN json_each VIRTUAL TABLE");
        assert!(!table_scan, "full scan: {line}\n{}", shown());
    }
    assert!(
        lines.iter().any(|l| l.starts_with("SEARCH ")),
        "no index search\n{}",
        shown()
    );
    for index in indexes {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("SEARCH ") && l.contains(&format!("INDEX {index} "))),
            "expected a SEARCH using {index}\n{}",
            shown()
        );
    }
}

/// These plans are SQLite's (the PostgreSQL ones are in
/// query_plans_postgres.rs), whatever backend the run tests the rules on.
pub fn plans_store() -> Store {
    Store::open_in_memory().unwrap()
}
