//! The statements of the queue's stats (the rules are in `stats.rs`). Both
//! backends run the same SQL, written here once with each backend's
//! placeholders, so that they cannot disagree on what is due.

use rusqlite::ToSql;

use super::{Candidate, SqliteDao, CANDIDATE_COLUMNS};
use crate::error::Result;
use crate::model::Status;
use crate::time::{to_micros, Timestamp};
use crate::transitions::{self, Action};

pub(crate) trait StatsRows {
    /// (organization, status, count) of every organization's callbacks.
    fn count_all_by_status(&self) -> Result<Vec<(String, Status, u64)>>;
    /// Per organization (one when given): how many due callbacks are
    /// inside their calling window at `now` and before their deadline,
    /// and the earliest eligible instant among them.
    fn due_in_window(
        &self,
        organization_id: Option<&str>,
        now: Timestamp,
    ) -> Result<Vec<(String, u64, Timestamp)>>;
    /// The due callbacks (before their deadline) whose window closed
    /// before `now` with no worker meeting them, with their eligible
    /// instant: the calling policy decides whether another window is open.
    fn due_window_closed(
        &self,
        organization_id: Option<&str>,
        now: Timestamp,
    ) -> Result<Vec<(Candidate, Timestamp)>>;
}

/// Which of the due callbacks a statement reads: by their window.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Window {
    Open,
    Closed,
}

/// The count of every organization's callbacks by status: the index on
/// (organization_id, status) holds both columns, so this reads that index,
/// not the table.
pub(crate) const COUNT_ALL_BY_STATUS: &str =
    "SELECT organization_id, status, COUNT(*) FROM callbacks GROUP BY organization_id, status";

/// The due callbacks of `window`, as `claim_due` selects its candidates
/// (scheduled, eligible_at <= now: the partial index `callbacks_due`),
/// less those past their deadline (claim_due expires them). `org` and
/// `now` are the backend's placeholders for the organization (None: all)
/// and the instant.
///
/// With an organization, `scheduled_at <= now` is implied (a callback is
/// never eligible before its scheduled time: eligibility is computed from
/// scheduled_at onwards) and lets the index on (organization_id, status,
/// scheduled_at) bound the search to that organization's past schedule.
pub(crate) fn due_sql(window: Window, org: Option<&str>, now: &str) -> String {
    let (scheduled, _) = transitions::bulk_move(Action::ClaimDue);
    let organization = match org {
        Some(org) => format!("organization_id = {org} AND scheduled_at <= {now} AND "),
        None => String::new(),
    };
    let filter = format!(
        "{organization}status = '{scheduled}' AND eligible_at <= {now} \
         AND (expires_at IS NULL OR expires_at > {now})"
    );
    match window {
        // Grouped by an expression, not the column: grouping by the column,
        // SQLite walks the whole index on (organization_id, status) to get
        // the groups in order instead of searching the due index.
        Window::Open => format!(
            "SELECT organization_id || '', COUNT(*), MIN(eligible_at) FROM callbacks
             WHERE {filter} AND (window_ends_at IS NULL OR window_ends_at > {now})
             GROUP BY organization_id || ''"
        ),
        Window::Closed => format!(
            "SELECT {CANDIDATE_COLUMNS}, eligible_at FROM callbacks
             WHERE {filter} AND window_ends_at <= {now}"
        ),
    }
}

/// The column after CANDIDATE_COLUMNS in `due_sql(Window::Closed, …)`.
pub(crate) const CLOSED_ELIGIBLE_AT: usize = 7;

/// A row of `due_sql(Window::Open, …)`.
pub(crate) fn due_from_row<R: super::RowColumns>(
    row: &R,
) -> std::result::Result<(String, u64, Timestamp), R::Error> {
    Ok((row.text(0)?, row.int(1)? as u64, row.time(2)?))
}

/// A row of `due_sql(Window::Closed, …)`.
pub(crate) fn closed_from_row<R: super::RowColumns>(
    row: &R,
) -> std::result::Result<(Candidate, Timestamp), R::Error> {
    Ok((Candidate::from_row(row)?, row.time(CLOSED_ELIGIBLE_AT)?))
}

/// A row of COUNT_ALL_BY_STATUS.
pub(crate) fn count_from_row<R: super::RowColumns>(
    row: &R,
) -> std::result::Result<(String, Status, u64), R::Error> {
    Ok((row.text(0)?, row.status(1)?, row.int(2)? as u64))
}

impl SqliteDao<'_> {
    /// Runs a due statement with SQLite's numbered placeholders.
    fn due_rows<T>(
        &self,
        window: Window,
        organization_id: Option<&str>,
        now: Timestamp,
        read: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let now = to_micros(now);
        let (sql, params): (String, Vec<&dyn ToSql>) = match &organization_id {
            Some(org) => (due_sql(window, Some("?1"), "?2"), vec![org, &now]),
            None => (due_sql(window, None, "?1"), vec![&now]),
        };
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params.as_slice(), read)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

impl StatsRows for SqliteDao<'_> {
    fn count_all_by_status(&self) -> Result<Vec<(String, Status, u64)>> {
        let mut stmt = self.conn.prepare_cached(COUNT_ALL_BY_STATUS)?;
        let rows = stmt.query_map([], |row| count_from_row(row))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn due_in_window(
        &self,
        organization_id: Option<&str>,
        now: Timestamp,
    ) -> Result<Vec<(String, u64, Timestamp)>> {
        self.due_rows(Window::Open, organization_id, now, |row| due_from_row(row))
    }

    fn due_window_closed(
        &self,
        organization_id: Option<&str>,
        now: Timestamp,
    ) -> Result<Vec<(Candidate, Timestamp)>> {
        self.due_rows(Window::Closed, organization_id, now, |row| {
            closed_from_row(row)
        })
    }
}
