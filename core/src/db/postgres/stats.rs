//! The queue's stats on PostgreSQL: the statements of `db/stats.rs`, with
//! PostgreSQL's placeholders. Reads of one statement each, never locking.

use super::super::stats::{
    closed_from_row, count_from_row, due_from_row, due_sql, StatsRows, Window, COUNT_ALL_BY_STATUS,
};
use super::{Param, PgDao};
use crate::db::Candidate;
use crate::error::Result;
use crate::model::Status;
use crate::time::{to_micros, Timestamp};

impl PgDao<'_> {
    fn due_rows<T>(
        &self,
        window: Window,
        organization_id: Option<&str>,
        now: Timestamp,
        read: impl Fn(&postgres::Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        let now = to_micros(now);
        match &organization_id {
            Some(org) => {
                let params: [Param<'_>; 2] = [org, &now];
                self.query_map(&due_sql(window, Some("$1"), "$2"), &params, read)
            }
            None => self.query_map(&due_sql(window, None, "$1"), &[&now], read),
        }
    }
}

impl StatsRows for PgDao<'_> {
    fn count_all_by_status(&self) -> Result<Vec<(String, Status, u64)>> {
        self.query_map(COUNT_ALL_BY_STATUS, &[], count_from_row)
    }

    fn due_in_window(
        &self,
        organization_id: Option<&str>,
        now: Timestamp,
    ) -> Result<Vec<(String, u64, Timestamp)>> {
        self.due_rows(Window::Open, organization_id, now, due_from_row)
    }

    fn due_window_closed(
        &self,
        organization_id: Option<&str>,
        now: Timestamp,
    ) -> Result<Vec<(Candidate, Timestamp)>> {
        self.due_rows(Window::Closed, organization_id, now, closed_from_row)
    }
}
