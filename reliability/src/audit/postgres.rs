//! The audit's reading path on a PostgreSQL store: the snapshot of every
//! callback and its events, and the relational checks the server can be
//! asked for.

use super::{callback_row, CallbackRow, EventRow, Snapshot, CALLBACKS_SQL, EVENTS_SQL};

/// Every callback and its events of a PostgreSQL store, in one snapshot
/// (a read-only REPEATABLE READ transaction: both queries see the same
/// commits, whatever the workers do meanwhile).
pub fn snapshot_postgres(client: &mut postgres::Client) -> Result<Snapshot, postgres::Error> {
    let mut tx = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    let mut snap = Snapshot::default();
    for r in tx.query(CALLBACKS_SQL, &[])? {
        snap.callbacks.push(CallbackRow {
            expires_at: r.try_get(8)?,
            attempted_at: r.try_get(9)?,
            ..callback_row(
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
                r.try_get(5)?,
                r.try_get(6)?,
                r.try_get(7)?,
            )
        });
    }
    for r in tx.query(EVENTS_SQL, &[])? {
        let event = EventRow {
            action: r.try_get(1)?,
            from: r.try_get(2)?,
            to: r.try_get(3)?,
            detail: r.try_get(4)?,
        };
        snap.events.entry(r.try_get(0)?).or_default().push(event);
    }
    tx.commit()?;
    Ok(snap)
}

/// The relational checks PostgreSQL can be asked for: no event of a
/// callback that does not exist, no two callbacks with one id. (A killed
/// client cannot damage the server's files: its transaction is rolled back
/// when its connection drops; `PRAGMA integrity_check` has no counterpart
/// to run here.)
pub fn integrity_postgres(client: &mut postgres::Client) -> Result<(), String> {
    let count = |client: &mut postgres::Client, sql: &str| -> Result<i64, String> {
        client
            .query_one(sql, &[])
            .and_then(|r| r.try_get(0))
            .map_err(|e| format!("{sql}: {e}"))
    };
    let orphans = count(
        client,
        "SELECT count(*) FROM callback_events e
         WHERE NOT EXISTS (SELECT 1 FROM callbacks c WHERE c.seq = e.callback_seq)",
    )?;
    if orphans > 0 {
        return Err(format!("{orphans} events point to no callback"));
    }
    let twins = count(
        client,
        "SELECT count(*) FROM (SELECT id FROM callbacks GROUP BY id HAVING count(*) > 1) t",
    )?;
    if twins > 0 {
        return Err(format!("{twins} callback ids appear more than once"));
    }
    Ok(())
}
