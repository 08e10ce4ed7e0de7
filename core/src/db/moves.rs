//! Data access for status changes: the guarded UPDATE of one callback, the
//! store-wide moves (claim_due, recover_stale) and the history rows each
//! change appends.

use rusqlite::types::Value;
use rusqlite::{named_params, OptionalExtension, ToSql};

use super::{Dao, Stored, CALLBACK_COLUMNS};
use crate::error::Result;
use crate::model::{EventAction, Status};
use crate::time::{to_micros, Timestamp};
use crate::transitions;

/// The columns a transition sets besides status and updated_at; `None`
/// leaves a column as it is.
#[derive(Debug, Default)]
pub(crate) struct Changes<'a> {
    pub scheduled_at: Option<Timestamp>,
    pub created_session_id: Option<&'a str>,
    pub failure_cause: Option<&'a str>,
    pub attempted_at: Option<Timestamp>,
    pub dispatched_at: Option<Timestamp>,
    pub cancelled_at: Option<Timestamp>,
}

impl Changes<'_> {
    /// The columns this transition writes, with their values.
    fn columns(&self) -> impl Iterator<Item = (&'static str, Value)> {
        let micros = |t: Option<Timestamp>| t.map(|t| Value::Integer(to_micros(t)));
        let text = |s: Option<&str>| s.map(|s| Value::Text(s.to_owned()));
        [
            ("scheduled_at", micros(self.scheduled_at)),
            ("created_session_id", text(self.created_session_id)),
            ("failure_cause", text(self.failure_cause)),
            ("attempted_at", micros(self.attempted_at)),
            ("dispatched_at", micros(self.dispatched_at)),
            ("cancelled_at", micros(self.cancelled_at)),
        ]
        .into_iter()
        .filter_map(|(column, value)| Some((column, value?)))
    }
}

/// The guarded UPDATE of one transition, setting only `columns` besides
/// status and updated_at. SQLite rewrites the entries of every index over a
/// column named in SET, changed or not, and every index page it rewrites is
/// one more page appended to the WAL at commit: a completion that also named
/// scheduled_at (even as `COALESCE(NULL, scheduled_at)`) rewrote the
/// schedule index for nothing.
fn transition_sql(columns: &[&str]) -> String {
    let set: String = columns.iter().map(|c| format!(", {c} = :{c}")).collect();
    format!(
        "UPDATE callbacks SET status = :to, updated_at = :now{set}
             WHERE id = :id AND (:org IS NULL OR organization_id = :org) AND status = :from
             RETURNING {CALLBACK_COLUMNS}"
    )
}

/// One event of a callback's history, to append.
pub(crate) struct NewEvent<'a> {
    pub action: EventAction,
    pub from: Option<Status>,
    pub to: Status,
    pub at: Timestamp,
    pub detail: Option<&'a str>,
}

impl Dao<'_> {
    /// The guarded UPDATE of one transition: it only matches while the
    /// callback is still in `from`, so of two racing writers one wins.
    pub fn apply_transition(
        &self,
        organization_id: Option<&str>,
        id: &str,
        from: Status,
        to: Status,
        changes: &Changes<'_>,
        now: Timestamp,
    ) -> Result<Option<Stored>> {
        let (columns, values): (Vec<&str>, Vec<Value>) = changes.columns().unzip();
        let mut stmt = self.conn.prepare_cached(&transition_sql(&columns))?;
        let names: Vec<String> = columns.iter().map(|c| format!(":{c}")).collect();
        let (to, from, now) = (to.as_str(), from.as_str(), to_micros(now));
        let mut params: Vec<(&str, &dyn ToSql)> = vec![
            (":to", &to),
            (":now", &now),
            (":id", &id),
            (":org", &organization_id),
            (":from", &from),
        ];
        params.extend(
            names
                .iter()
                .zip(&values)
                .map(|(n, v)| (n.as_str(), v as &dyn ToSql)),
        );
        Ok(stmt
            .query_row(params.as_slice(), Stored::from_row)
            .optional()?)
    }

    pub fn insert_event(&self, callback_seq: i64, event: &NewEvent<'_>) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO callback_events (callback_seq, action, from_status, to_status, at, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        stmt.execute(rusqlite::params![
            callback_seq,
            event.action.as_str(),
            event.from.map(Status::as_str),
            event.to.as_str(),
            to_micros(event.at),
            event.detail,
        ])?;
        Ok(())
    }

    /// Moves up to `limit` due callbacks, oldest scheduled first, from
    /// `scheduled` to `dispatching`, across all organizations.
    pub fn claim_due(&self, now: Timestamp, limit: u32) -> Result<Vec<Stored>> {
        let (from, to) = transitions::bulk_move(transitions::Action::ClaimDue);
        // The statuses are literals so that SQLite can use the partial index
        // of due callbacks; they come from the transition table, not input.
        let mut stmt = self.conn.prepare_cached(&format!(
            "UPDATE callbacks SET status = '{to}', attempted_at = :now, updated_at = :now
             WHERE seq IN (
                 SELECT seq FROM callbacks
                 WHERE status = '{from}' AND scheduled_at <= :now
                 ORDER BY scheduled_at, seq LIMIT :limit)
             RETURNING {CALLBACK_COLUMNS}"
        ))?;
        let rows = stmt.query_map(
            named_params! { ":now": to_micros(now), ":limit": limit },
            Stored::from_row,
        )?;
        let mut claimed = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        // RETURNING gives no order; workers expect the oldest first.
        claimed.sort_by_key(|s| (s.callback.scheduled_at, s.seq));
        self.record_bulk(&claimed, transitions::Action::ClaimDue, from, now, None)?;
        Ok(claimed)
    }

    /// Fails callbacks left `dispatching` since before `horizon`.
    pub fn recover_stale(
        &self,
        now: Timestamp,
        horizon: Timestamp,
        cause: &str,
    ) -> Result<Vec<Stored>> {
        let (from, to) = transitions::bulk_move(transitions::Action::RecoverStale);
        let mut stmt = self.conn.prepare_cached(&format!(
            "UPDATE callbacks SET status = '{to}', failure_cause = :cause, updated_at = :now
             WHERE status = '{from}' AND attempted_at < :horizon
             RETURNING {CALLBACK_COLUMNS}"
        ))?;
        let rows = stmt.query_map(
            named_params! { ":now": to_micros(now), ":horizon": to_micros(horizon), ":cause": cause },
            Stored::from_row,
        )?;
        let mut recovered = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        recovered.sort_by_key(|s| s.seq);
        self.record_bulk(
            &recovered,
            transitions::Action::RecoverStale,
            from,
            now,
            Some(cause),
        )?;
        Ok(recovered)
    }

    fn record_bulk(
        &self,
        moved: &[Stored],
        action: transitions::Action,
        from: Status,
        at: Timestamp,
        detail: Option<&str>,
    ) -> Result<()> {
        for stored in moved {
            self.insert_event(
                stored.seq,
                &NewEvent {
                    action: action.into(),
                    from: Some(from),
                    to: stored.callback.status,
                    at,
                    detail,
                },
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;
    use rusqlite::Connection;

    /// The indexes the UPDATE of a transition setting `changes` opens for
    /// writing, by name.
    fn indexes_written(conn: &Connection, changes: &Changes<'_>) -> Vec<String> {
        let columns: Vec<&str> = changes.columns().map(|(c, _)| c).collect();
        let mut explain = conn
            .prepare(&format!("EXPLAIN {}", transition_sql(&columns)))
            .unwrap();
        let nulls = vec![Value::Null; explain.parameter_count()];
        let roots: Vec<i64> = explain
            .query_map(rusqlite::params_from_iter(nulls), |r| {
                Ok((r.get::<_, String>(1)?, r.get::<_, i64>(3)?))
            })
            .unwrap()
            .map(Result::unwrap)
            .filter(|(opcode, _)| opcode == "OpenWrite")
            .map(|(_, root)| root)
            .collect();
        let mut names: Vec<String> = roots
            .iter()
            .filter_map(|root| {
                conn.query_row(
                    "SELECT name FROM sqlite_schema WHERE type = 'index' AND rootpage = ?1",
                    [root],
                    |r| r.get(0),
                )
                .ok()
            })
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_transition_rewrites_only_the_indexes_over_the_columns_it_sets() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::migrate(&mut conn).unwrap();
        let now = Timestamp::UNIX_EPOCH;
        let cases = [
            (
                "complete_dispatch",
                Changes {
                    created_session_id: Some("sess_1"),
                    dispatched_at: Some(now),
                    ..Changes::default()
                },
            ),
            (
                "cancel",
                Changes {
                    cancelled_at: Some(now),
                    ..Changes::default()
                },
            ),
            (
                "fail_dispatch",
                Changes {
                    failure_cause: Some("no answer"),
                    ..Changes::default()
                },
            ),
        ];
        for (what, changes) in &cases {
            let written = indexes_written(&conn, changes);
            assert!(
                written.contains(&"callbacks_by_org_status".to_owned()),
                "{what}: {written:?}"
            );
            for untouched in [
                "callbacks_by_org",
                "callbacks_by_org_scheduled",
                "callbacks_by_org_source",
                "callbacks_by_org_to_number",
                "callbacks_idempotency",
            ] {
                assert!(
                    !written.contains(&untouched.to_owned()),
                    "{what} rewrites {untouched}: {written:?}"
                );
            }
        }
        let reschedule = Changes {
            scheduled_at: Some(now),
            ..Changes::default()
        };
        assert!(
            indexes_written(&conn, &reschedule).contains(&"callbacks_by_org_scheduled".to_owned())
        );
    }
}
