//! The history on SQLite: one store-wide log of events in `seq` (commit)
//! order, each callback's events linked as a chain (migrations/sqlite V5).
//!
//! The callback's row keeps the seq of its last event (`last_event_seq`)
//! and each event the seq of the one before it (`previous_event_seq`).
//! There is no index of events by callback: appending an event writes the
//! log's last page and the callback's own row, which the transition
//! writes anyway, so a history entry costs no page at a random leaf of an
//! index (issue 14: every page a transaction touches is a WAL frame).
//! Reading a history or pruning follows the chain by rowid instead.

use rusqlite::Connection;

use super::moves::NewEvent;
use super::rows::{self, EVENT_COLUMNS};
use crate::error::Result;
use crate::model::{CallbackEvent, Status};
use crate::time::{to_micros, Timestamp};

const APPEND: &str = "INSERT INTO callback_events
             (callback_seq, action, from_status, to_status, at, detail, previous_event_seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, (SELECT last_event_seq FROM callbacks WHERE seq = ?1))";
const LINK: &str = "UPDATE callbacks SET last_event_seq = last_insert_rowid() WHERE seq = ?1";

/// Appends `event` to the log, linked after the callback's last event, and
/// makes it the callback's last. Two statements on pages the transition
/// already wrote (the log's last page, the callback's row): `last_event_seq`
/// is in no index, so the UPDATE rewrites no index entry.
pub(super) fn append(conn: &Connection, callback_seq: i64, event: &NewEvent<'_>) -> Result<()> {
    let mut insert = conn.prepare_cached(APPEND)?;
    insert.execute(rusqlite::params![
        callback_seq,
        event.action.as_str(),
        event.from.map(Status::as_str),
        event.to.as_str(),
        to_micros(event.at),
        event.detail,
    ])?;
    let mut link = conn.prepare_cached(LINK)?;
    link.execute([callback_seq])?;
    Ok(())
}

/// The seqs of the events of the callbacks `{callbacks}` selects, walked
/// back from each one's last event by rowid. A link must point to an
/// earlier event, so that even a damaged chain cannot loop.
const CHAIN: &str = "WITH RECURSIVE chain(seq) AS (
                 SELECT last_event_seq FROM callbacks WHERE {callbacks}
                 UNION ALL
                 SELECT e.previous_event_seq FROM callback_events e JOIN chain ON e.seq = chain.seq
                 WHERE e.previous_event_seq < e.seq
             )";

/// A callback's history, oldest first. CROSS JOIN fixes the order of the
/// join (SQLite keeps it as written): without statistics the planner may
/// otherwise scan the whole log and look each event up in the chain.
pub(super) fn history(
    conn: &Connection,
    organization_id: &str,
    id: &str,
) -> Result<Vec<CallbackEvent>> {
    let chain = CHAIN.replace("{callbacks}", "id = ?1 AND organization_id = ?2");
    let mut stmt = conn.prepare_cached(&format!(
        "{chain}
             SELECT {EVENT_COLUMNS}
             FROM chain CROSS JOIN callback_events e ON e.seq = chain.seq
                 CROSS JOIN callbacks c ON c.seq = e.callback_seq
             ORDER BY e.seq"
    ))?;
    let rows = stmt.query_map([id, organization_id], |row| rows::event_from_row(row))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Deletes the finished callbacks last updated before `before` and their
/// events: first the events, by each callback's chain, then the callbacks,
/// selected the same way in the same transaction. Returns how many
/// callbacks went.
///
/// When the log's newest event goes, a marker row takes its seq (see
/// `TAIL_MARKER`): SQLite numbers a new row after the largest rowid in the
/// table, so without it the next event would take a seq again that a
/// change feed reader may already have read past (feed.rs).
pub(super) fn prune(conn: &Connection, finished: &str, before: Timestamp) -> Result<usize> {
    let tail: Option<i64> = conn
        .prepare_cached("SELECT MAX(seq) FROM callback_events")?
        .query_row([], |row| row.get(0))?;
    let doomed = format!("{finished} AND updated_at < ?1");
    let chain = CHAIN.replace("{callbacks}", &doomed);
    let mut events = conn.prepare_cached(&format!(
        "{chain}
             DELETE FROM callback_events WHERE seq IN (SELECT seq FROM chain)"
    ))?;
    events.execute([to_micros(before)])?;
    let mut callbacks = conn.prepare_cached(&format!("DELETE FROM callbacks WHERE {doomed}"))?;
    let pruned = callbacks.execute([to_micros(before)])?;
    if let Some(tail) = tail {
        let marked = conn
            .prepare_cached(&format!(
                "INSERT OR IGNORE INTO callback_events (seq, callback_seq, action, to_status, at)
                 VALUES (?1, {TAIL_MARKER}, 'create', 'scheduled', 0)"
            ))?
            .execute([tail])?;
        // An earlier prune's marker, once a newer row follows it: found by
        // the seq store_meta keeps (no index of events by callback_seq).
        conn.prepare_cached(&format!(
            "DELETE FROM callback_events WHERE callback_seq = {TAIL_MARKER}
                 AND seq = (SELECT value FROM store_meta WHERE key = 'feed_tail_marker')
                 AND seq < (SELECT MAX(seq) FROM callback_events)"
        ))?
        .execute([])?;
        if marked == 1 {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO store_meta (key, value) VALUES ('feed_tail_marker', ?1)",
            )?
            .execute([tail])?;
        }
    }
    Ok(pruned)
}

/// The `callback_seq` of the row prune leaves in place of the log's newest
/// event when it deleted it: no callback has seq 0 (rowids start at 1), so
/// neither a history (it follows chains from callbacks) nor the feed (it
/// joins callbacks) ever shows it, and copies leave it out
/// (`db/copy.rs`). It holds the largest seq until a new event comes after
/// it, and the next prune deletes it (store_meta's `feed_tail_marker` says
/// where it is).
pub(crate) const TAIL_MARKER: i64 = 0;

#[cfg(test)]
mod tests {
    use super::*;

    /// The tables and indexes `sql` opens for writing, by name.
    fn written(conn: &Connection, sql: &str) -> Vec<String> {
        let written = crate::db::explain::written(conn, sql);
        written.into_iter().map(|(_, name)| name).collect()
    }

    #[test]
    fn appending_an_event_writes_the_log_and_the_callbacks_row_and_no_index() {
        // Issue 14: each page a transaction touches is one WAL frame at its
        // commit. The log's last page and the callback's row are pages the
        // transition writes anyway; an index of events by callback would
        // add a page at a random leaf for every event.
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::migrate(&mut conn).unwrap();
        assert_eq!(written(&conn, APPEND), vec!["callback_events".to_owned()]);
        assert_eq!(written(&conn, LINK), vec!["callbacks".to_owned()]);
        let indexes: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'callback_events'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 0, "the history has no index of its own");
    }
}
