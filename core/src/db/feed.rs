//! The change feed's data access (the rules are in `feed.rs`): SQLite's
//! log positions are its events' seqs, taken in commit order.

use super::rows::{event_from_row, EVENT_COLUMNS};
use super::SqliteDao;
use crate::error::Result;
use crate::feed::LoggedEvent;

/// The columns of a logged event: EVENT_COLUMNS, then its position and its
/// organization.
pub(crate) const LOGGED_EVENT_COLUMNS: &str =
    "c.id, e.action, e.from_status, e.to_status, e.at, e.detail, {position}, c.organization_id";

pub(crate) fn logged_columns(position: &str) -> String {
    debug_assert!(LOGGED_EVENT_COLUMNS.starts_with(EVENT_COLUMNS));
    LOGGED_EVENT_COLUMNS.replace("{position}", position)
}

pub(crate) fn logged_from_row<R: super::RowColumns>(row: &R) -> Result<LoggedEvent, R::Error> {
    Ok(LoggedEvent {
        event: event_from_row(row)?,
        position: row.int(6)?,
        organization_id: row.text(7)?,
    })
}

pub(crate) trait FeedRows {
    /// Whether committed events wait for a position (PostgreSQL; SQLite's
    /// events have theirs when they commit).
    fn feed_needs_positions(&self) -> Result<bool> {
        Ok(false)
    }
    /// Positions the committed events that have none yet, in seq order,
    /// after the last position (PostgreSQL, in a write transaction).
    fn position_feed(&self) -> Result<()> {
        Ok(())
    }
    /// The newest position: every position up to it is readable.
    fn feed_head(&self) -> Result<i64>;
    /// Up to `limit` events positioned in (`after`, `through`], in position
    /// order; only `organization_id`'s when given.
    fn feed_page(
        &self,
        organization_id: Option<&str>,
        after: i64,
        through: i64,
        limit: u32,
    ) -> Result<Vec<LoggedEvent>>;
}

impl FeedRows for SqliteDao<'_> {
    fn feed_head(&self) -> Result<i64> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM callback_events")?;
        Ok(stmt.query_row([], |row| row.get(0))?)
    }

    fn feed_page(
        &self,
        organization_id: Option<&str>,
        after: i64,
        through: i64,
        limit: u32,
    ) -> Result<Vec<LoggedEvent>> {
        // The log by rowid range first, then each event's callback by its
        // rowid: CROSS JOIN keeps that order whatever the planner guesses.
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {} FROM callback_events e CROSS JOIN callbacks c ON c.seq = e.callback_seq
             WHERE e.seq > ?1 AND e.seq <= ?2 AND (?3 IS NULL OR c.organization_id = ?3)
             ORDER BY e.seq LIMIT ?4",
            logged_columns("e.seq")
        ))?;
        let rows = stmt.query_map(
            rusqlite::params![after, through, organization_id, limit],
            |row| logged_from_row(row),
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
