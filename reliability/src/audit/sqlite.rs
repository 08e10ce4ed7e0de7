//! The audit's reading path on an SQLite file: the file's own checks and
//! the snapshot of every callback and its events, in one transaction.

use rusqlite::Connection;

use super::{callback_row, CallbackRow, EventRow, Snapshot, CALLBACKS_SQL, EVENTS_SQL};

/// `PRAGMA integrity_check` and `PRAGMA foreign_key_check` on the file.
pub fn integrity(conn: &Connection) -> Result<(), String> {
    let mut stmt = conn
        .prepare("PRAGMA integrity_check")
        .map_err(|e| e.to_string())?;
    let lines: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| format!("integrity_check failed to run: {e}"))?;
    if lines != ["ok"] {
        return Err(format!("integrity_check: {}", lines.join("; ")));
    }
    let mut stmt = conn
        .prepare("PRAGMA foreign_key_check")
        .map_err(|e| e.to_string())?;
    let orphans = stmt
        .query_map([], |_| Ok(()))
        .map_err(|e| e.to_string())?
        .count();
    if orphans > 0 {
        return Err(format!("foreign_key_check: {orphans} rows point nowhere"));
    }
    Ok(())
}

/// Every callback and its events of an SQLite file, in one transaction.
pub fn snapshot(conn: &Connection) -> rusqlite::Result<Snapshot> {
    conn.execute_batch("BEGIN")?;
    let read = || -> rusqlite::Result<Snapshot> {
        let mut snap = Snapshot::default();
        let mut stmt = conn.prepare(CALLBACKS_SQL)?;
        let rows = stmt.query_map([], |r| {
            let status_text: String = r.get(3)?;
            let metadata: String = r.get(5)?;
            Ok(CallbackRow {
                expires_at: r.get(8)?,
                attempted_at: r.get(9)?,
                ..callback_row(
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    &status_text,
                    r.get(4)?,
                    &metadata,
                    r.get(6)?,
                    r.get(7)?,
                )
            })
        })?;
        snap.callbacks = rows.collect::<rusqlite::Result<_>>()?;
        let mut stmt = conn.prepare(EVENTS_SQL)?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                EventRow {
                    action: r.get(1)?,
                    from: r.get(2)?,
                    to: r.get(3)?,
                    detail: r.get(4)?,
                },
            ))
        })?;
        for row in rows {
            let (seq, event) = row?;
            snap.events.entry(seq).or_default().push(event);
        }
        Ok(snap)
    };
    let out = read();
    conn.execute_batch("COMMIT")?;
    out
}
