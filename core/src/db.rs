//! Data access: every SQL statement of the store, next to the method that
//! runs it. A `Dao` lives inside one transaction opened by `Store::read` or
//! `Store::write`; it never commits.

use rusqlite::{named_params, Connection, OptionalExtension, ToSql};

use crate::cursor::Position;
use crate::error::Result;
use crate::model::{Callback, CallbackEvent, EventAction, ListQuery, Order, Status};
use crate::policy::Eligibility;
use crate::time::{to_micros, Timestamp};
use crate::transitions;
use crate::validate::ValidNewCallback;

mod api_keys;
mod chain;
pub(crate) mod copy;
#[cfg(test)]
mod explain;
mod feed;
mod moves;
pub(crate) mod policies;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
mod rows;
pub(crate) mod stats;

pub(crate) use api_keys::ApiKeyRows;
pub(crate) use copy::CopyRows;
pub(crate) use feed::FeedRows;
pub(crate) use moves::{Changes, ClaimGuard, Moves, NewEvent};
pub(crate) use policies::{PolicyRows, PolicyScope};
pub(crate) use rows::RowColumns;
pub(crate) use stats::StatsRows;

/// Every column of a callback, for SELECT and RETURNING.
const CALLBACK_COLUMNS: &str = "seq, id, organization_id, source_session_id, created_session_id, \
    agent_id, phone_number_id, to_number, from_number, scheduled_at, status, reason, instructions, \
    summary, pipeline_config, metadata, failure_cause, attempted_at, dispatched_at, cancelled_at, \
    created_at, updated_at, timezone, expires_at, attempt, previous_callback_id";

/// A callback as read, with its row's insertion order (for cursors and events).
pub(crate) struct Stored {
    pub seq: i64,
    pub callback: Callback,
}

/// The position of each column of CALLBACK_COLUMNS. Rows are read by
/// position: a lookup by name searches the column names on every get, which
/// costs more than the rest of reading a row (see the list benchmark).
mod col {
    pub const SEQ: usize = 0;
    pub const ID: usize = 1;
    pub const ORGANIZATION_ID: usize = 2;
    pub const SOURCE_SESSION_ID: usize = 3;
    pub const CREATED_SESSION_ID: usize = 4;
    pub const AGENT_ID: usize = 5;
    pub const PHONE_NUMBER_ID: usize = 6;
    pub const TO_NUMBER: usize = 7;
    pub const FROM_NUMBER: usize = 8;
    pub const SCHEDULED_AT: usize = 9;
    pub const STATUS: usize = 10;
    pub const REASON: usize = 11;
    pub const INSTRUCTIONS: usize = 12;
    pub const SUMMARY: usize = 13;
    pub const PIPELINE_CONFIG: usize = 14;
    pub const METADATA: usize = 15;
    pub const FAILURE_CAUSE: usize = 16;
    pub const ATTEMPTED_AT: usize = 17;
    pub const DISPATCHED_AT: usize = 18;
    pub const CANCELLED_AT: usize = 19;
    pub const CREATED_AT: usize = 20;
    pub const UPDATED_AT: usize = 21;
    pub const TIMEZONE: usize = 22;
    pub const EXPIRES_AT: usize = 23;
    pub const ATTEMPT: usize = 24;
    pub const PREVIOUS_CALLBACK_ID: usize = 25;
    /// The first column a statement returns after the callback's own.
    pub const AFTER: usize = 26;
    /// Where a statement returns the claim token after the callback's columns.
    pub const CLAIM_TOKEN: usize = AFTER;
}

/// The record of a callback just inserted, built from the input rather
/// than read back: it is exactly what was bound (the JSON texts too), and
/// reading it back would cost a query.
pub(crate) fn created_record(
    organization_id: &str,
    id: &str,
    new: &ValidNewCallback<'_>,
    placement: &Placement<'_>,
    now: Timestamp,
) -> Callback {
    let input = new.input;
    Callback {
        id: id.to_owned(),
        organization_id: organization_id.to_owned(),
        source_session_id: input.source_session_id.clone(),
        created_session_id: None,
        agent_id: input.agent_id.clone(),
        phone_number_id: input.phone_number_id.clone(),
        to_number: input.to_number.clone(),
        from_number: input.from_number.clone(),
        scheduled_at: new.scheduled_at,
        status: Status::Scheduled,
        reason: input.reason.clone(),
        instructions: input.instructions.clone(),
        summary: input.summary.clone(),
        pipeline_config: new.pipeline_config.clone(),
        metadata: new.metadata.clone(),
        failure_cause: None,
        attempted_at: None,
        dispatched_at: None,
        cancelled_at: None,
        created_at: now,
        updated_at: now,
        timezone: input.timezone.clone(),
        expires_at: new.expires_at,
        attempt: placement.attempt,
        previous_callback_id: placement.previous_callback_id.map(str::to_owned),
    }
}

/// What the store decides about a new callback beside its input: which
/// attempt it is, and when it may first ring.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placement<'a> {
    pub attempt: u32,
    pub previous_callback_id: Option<&'a str>,
    pub eligibility: Eligibility,
    /// The creation event's detail (a follow-up names what it follows).
    pub detail: Option<&'a str>,
}

/// A scheduled callback as the calling policy sees it: enough to tell
/// whether it may ring now, and to compute when it may next.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub seq: i64,
    pub organization_id: String,
    pub agent_id: Option<String>,
    pub timezone: Option<String>,
    pub scheduled_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub window_ends_at: Option<Timestamp>,
}

/// The columns of a Candidate, in the order `Candidate::from_row` reads them.
pub(crate) const CANDIDATE_COLUMNS: &str =
    "seq, organization_id, agent_id, timezone, scheduled_at, expires_at, window_ends_at";

/// A filter of a list: each backend writes its SQL by a `match` on it, so a
/// new filter does not compile until every backend handles it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Filter {
    Status,
    SourceSessionId,
    AgentId,
    ToNumber,
    ScheduledAfter,
    ScheduledBefore,
}

/// What a filter compares with: text, or a time in microseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FilterValue<'q> {
    Text(&'q str),
    Micros(i64),
}

impl ToSql for FilterValue<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            FilterValue::Text(text) => text.to_sql(),
            FilterValue::Micros(micros) => micros.to_sql(),
        }
    }
}

/// The filters `query` sets, in the order the SQL names them, for both
/// backends. Destructured without `..`: a new field of `ListQuery` must be
/// added here.
pub(crate) fn list_filters(query: &ListQuery) -> Vec<(Filter, FilterValue<'_>)> {
    let ListQuery {
        status,
        source_session_id,
        agent_id,
        to_number,
        scheduled_after,
        scheduled_before,
        order: _,  // the ORDER BY, written by each backend
        limit: _,  // the page size, bound by each backend
        cursor: _, // the position, decoded and checked by the caller
    } = query;
    fn text(value: &Option<String>) -> Option<FilterValue<'_>> {
        value.as_deref().map(FilterValue::Text)
    }
    let micros = |value: &Option<Timestamp>| value.map(|t| FilterValue::Micros(to_micros(t)));
    [
        (
            Filter::Status,
            status.map(|s| FilterValue::Text(s.as_str())),
        ),
        (Filter::SourceSessionId, text(source_session_id)),
        (Filter::AgentId, text(agent_id)),
        (Filter::ToNumber, text(to_number)),
        (Filter::ScheduledAfter, micros(scheduled_after)),
        (Filter::ScheduledBefore, micros(scheduled_before)),
    ]
    .into_iter()
    .filter_map(|(filter, value)| Some((filter, value?)))
    .collect()
}

/// Counts by status as every backend returns them: each status once, in
/// `Status::ALL` order, zero where there is none.
pub(crate) fn every_status(counted: Vec<(Status, u64)>) -> Vec<(Status, u64)> {
    Status::ALL
        .into_iter()
        .map(|s| {
            (
                s,
                counted.iter().find(|(c, _)| *c == s).map_or(0, |(_, n)| *n),
            )
        })
        .collect()
}

/// The data access the rules call, inside one transaction opened by
/// `Store::read` or `Store::write` (it never commits): every statement the
/// store runs, one method each, grouped by what they touch. The rules (the
/// transition table, validation, cursors, idempotency) call only these
/// methods, so each backend implements these traits and nothing above them
/// changes: SQLite (`SqliteDao`) and PostgreSQL (`postgres::PgDao`).
pub(crate) trait Dao:
    CallbackRows + Moves + PolicyRows + ApiKeyRows + CopyRows + FeedRows + StatsRows
{
    /// The store's clock, read when the transaction begins: on SQLite once
    /// it holds the write lock, so that writers in turn get times in the
    /// order of their commits; on PostgreSQL writers overlap, and times
    /// need not follow commit order (docs/postgres.md).
    fn now(&self) -> Timestamp;
}

/// The data access over one SQLite connection.
pub(crate) struct SqliteDao<'c> {
    pub conn: &'c Connection,
    pub now: Timestamp,
}

impl Dao for SqliteDao<'_> {
    fn now(&self) -> Timestamp {
        self.now
    }
}

/// Callbacks as rows: creation, look-ups, lists, history, pruning.
pub(crate) trait CallbackRows {
    /// Inserts a new `scheduled` callback and its creation event. The record
    /// returned is built from the input rather than read back: it is exactly
    /// what was bound, and reading it back would cost a query.
    fn insert_callback(
        &self,
        organization_id: &str,
        id: &str,
        new: &ValidNewCallback<'_>,
        placement: &Placement<'_>,
        request_hash: Option<&[u8]>,
        now: Timestamp,
    ) -> Result<Stored>;
    /// The callback an idempotency key created, with the hash of its request.
    fn find_by_idempotency_key(
        &self,
        organization_id: &str,
        key: &str,
    ) -> Result<Option<(Callback, Option<Vec<u8>>)>>;
    /// A callback by id; `organization_id` None means any organization
    /// (store-wide work such as a dispatcher completing what it claimed).
    fn get(&self, organization_id: Option<&str>, id: &str) -> Result<Option<Stored>>;
    /// A callback by id, read to be changed in this transaction: no other
    /// writer can change it before the transaction ends. SQLite's writers
    /// already hold the file's write lock, so it is a plain read there.
    fn get_for_update(&self, organization_id: Option<&str>, id: &str) -> Result<Option<Stored>> {
        self.get(organization_id, id)
    }
    fn history(&self, organization_id: &str, id: &str) -> Result<Vec<CallbackEvent>>;
    /// One page (plus one row, to tell whether there is a next page).
    /// The SQL is assembled from fixed fragments only; every value is bound.
    fn list(
        &self,
        organization_id: &str,
        query: &ListQuery,
        after: Option<Position>,
        rows: u32,
    ) -> Result<Vec<Stored>>;
    /// Deletes finished callbacks last updated before `before`, with their
    /// events. Returns how many callbacks went.
    fn prune(&self, before: Timestamp) -> Result<usize>;
    fn count_by_status(&self, organization_id: &str) -> Result<Vec<(Status, u64)>>;
}

impl CallbackRows for SqliteDao<'_> {
    /// Inserts a new `scheduled` callback and its creation event. The record
    /// returned is built from the input rather than read back: it is exactly
    /// what was bound, and reading it back would cost a query.
    fn insert_callback(
        &self,
        organization_id: &str,
        id: &str,
        new: &ValidNewCallback<'_>,
        placement: &Placement<'_>,
        request_hash: Option<&[u8]>,
        now: Timestamp,
    ) -> Result<Stored> {
        let input = new.input;
        let status = Status::Scheduled;
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO callbacks (id, organization_id, source_session_id, agent_id, phone_number_id,
                 to_number, from_number, scheduled_at, status, reason, instructions, summary,
                 pipeline_config, metadata, created_at, updated_at, idempotency_key, request_hash,
                 timezone, expires_at, attempt, previous_callback_id, eligible_at, window_ends_at)
             VALUES (:id, :org, :source, :agent, :phone_number_id, :to, :from, :scheduled_at,
                 :status, :reason, :instructions, :summary, :pipeline_config, :metadata, :now, :now,
                 :idempotency_key, :request_hash, :timezone, :expires_at, :attempt, :previous,
                 :eligible_at, :window_ends_at)",
        )?;
        stmt.execute(named_params! {
            ":id": id,
            ":org": organization_id,
            ":source": input.source_session_id,
            ":agent": input.agent_id,
            ":phone_number_id": input.phone_number_id,
            ":to": input.to_number,
            ":from": input.from_number,
            ":scheduled_at": to_micros(new.scheduled_at),
            ":status": status.as_str(),
            ":reason": input.reason,
            ":instructions": input.instructions,
            ":summary": input.summary,
            ":pipeline_config": new.pipeline_config.as_str(),
            ":metadata": new.metadata.as_str(),
            ":now": to_micros(now),
            ":idempotency_key": input.idempotency_key,
            ":request_hash": request_hash,
            ":timezone": input.timezone,
            ":expires_at": new.expires_at.map(to_micros),
            ":attempt": placement.attempt,
            ":previous": placement.previous_callback_id,
            ":eligible_at": to_micros(placement.eligibility.at),
            ":window_ends_at": placement.eligibility.window_ends_at.map(to_micros),
        })?;
        let seq = self.conn.last_insert_rowid();
        self.insert_event(
            seq,
            &NewEvent {
                action: EventAction::Create,
                from: None,
                to: status,
                at: now,
                detail: placement.detail,
            },
        )?;
        Ok(Stored {
            seq,
            callback: created_record(organization_id, id, new, placement, now),
        })
    }

    /// The callback an idempotency key created, with the hash of its request.
    fn find_by_idempotency_key(
        &self,
        organization_id: &str,
        key: &str,
    ) -> Result<Option<(Callback, Option<Vec<u8>>)>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {CALLBACK_COLUMNS}, request_hash FROM callbacks
             WHERE organization_id = ?1 AND idempotency_key = ?2"
        ))?;
        Ok(stmt
            .query_row([organization_id, key], |row| {
                // request_hash follows the callback's columns.
                Ok((Stored::from_row(row)?.callback, row.get(col::AFTER)?))
            })
            .optional()?)
    }

    /// A callback by id; `organization_id` None means any organization
    /// (store-wide work such as a dispatcher completing what it claimed).
    fn get(&self, organization_id: Option<&str>, id: &str) -> Result<Option<Stored>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {CALLBACK_COLUMNS} FROM callbacks
             WHERE id = ?1 AND (?2 IS NULL OR organization_id = ?2)"
        ))?;
        Ok(stmt
            .query_row(rusqlite::params![id, organization_id], |row| {
                Stored::from_row(row)
            })
            .optional()?)
    }

    /// By the callback's chain of events (db/chain.rs).
    fn history(&self, organization_id: &str, id: &str) -> Result<Vec<CallbackEvent>> {
        chain::history(self.conn, organization_id, id)
    }

    /// One page (plus one row, to tell whether there is a next page).
    /// The SQL is assembled from fixed fragments only; every value is bound.
    ///
    /// Keyset paging must stay a seek when many rows tie on the sort key
    /// (SQLite only seeks on the first column of a row-value comparison):
    /// newest-first pages by `seq` alone, and soonest-first reads the rest
    /// of the tie, then, if the page is not full, the later times: two
    /// seeks in index order, nothing to sort.
    fn list(
        &self,
        organization_id: &str,
        query: &ListQuery,
        after: Option<Position>,
        rows: u32,
    ) -> Result<Vec<Stored>> {
        // Destructured without `..`: a new filter must be added to the SQL.
        let order = query.order;
        let filters = list_filters(query);
        let mut filter = String::from("organization_id = :org");
        let mut params: Vec<(&str, &dyn ToSql)> = vec![(":org", &organization_id)];
        for (kind, value) in &filters {
            let (name, clause) = match kind {
                Filter::Status => (":status", "status = :status"),
                Filter::SourceSessionId => (":source", "source_session_id = :source"),
                Filter::AgentId => (":agent", "agent_id = :agent"),
                Filter::ToNumber => (":to", "to_number = :to"),
                Filter::ScheduledAfter => (":after", "scheduled_at >= :after"),
                Filter::ScheduledBefore => (":before", "scheduled_at < :before"),
            };
            filter.push_str(" AND ");
            filter.push_str(clause);
            params.push((name, value));
        }
        if let Some(p) = &after {
            params.push((":seq", &p.seq));
            if order == Order::ScheduledAsc {
                params.push((":sort_key", &p.sort_key));
            }
        }
        let select = format!("SELECT {CALLBACK_COLUMNS} FROM callbacks WHERE {filter}");
        let run = |sql: String, limit: u32| -> Result<Vec<Stored>> {
            let mut stmt = self.conn.prepare_cached(&sql)?;
            // The two soonest-first statements do not name every parameter.
            let mut bound = Vec::with_capacity(params.len() + 1);
            for (name, value) in &params {
                if stmt.parameter_index(name)?.is_some() {
                    bound.push((*name, *value));
                }
            }
            bound.push((":rows", &limit));
            let rows = stmt.query_map(bound.as_slice(), |row| Stored::from_row(row))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        };
        match (order, after.is_some()) {
            (Order::CreatedDesc, false) => {
                run(format!("{select} ORDER BY seq DESC LIMIT :rows"), rows)
            }
            (Order::CreatedDesc, true) => run(
                format!("{select} AND seq < :seq ORDER BY seq DESC LIMIT :rows"),
                rows,
            ),
            (Order::ScheduledAsc, false) => run(
                format!("{select} ORDER BY scheduled_at, seq LIMIT :rows"),
                rows,
            ),
            (Order::ScheduledAsc, true) => {
                let mut page = run(
                    format!(
                        "{select} AND scheduled_at = :sort_key AND seq > :seq ORDER BY seq LIMIT :rows"
                    ),
                    rows,
                )?;
                let missing = rows - page.len() as u32;
                if missing > 0 {
                    page.extend(run(
                        format!(
                            "{select} AND scheduled_at > :sort_key ORDER BY scheduled_at, seq LIMIT :rows"
                        ),
                        missing,
                    )?);
                }
                Ok(page)
            }
        }
    }

    /// Deletes finished callbacks last updated before `before`, with their
    /// events (by each one's chain: db/chain.rs). Returns how many went.
    fn prune(&self, before: Timestamp) -> Result<usize> {
        // The predicate of the partial index `callbacks_finished` (V5),
        // written the same way so that the planner uses that index.
        let finished: Vec<String> = Status::ALL
            .into_iter()
            .filter(|s| transitions::is_terminal(*s))
            .map(|s| format!("status = '{s}'"))
            .collect();
        chain::prune(self.conn, &format!("({})", finished.join(" OR ")), before)
    }

    fn count_by_status(&self, organization_id: &str) -> Result<Vec<(Status, u64)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT status, COUNT(*) FROM callbacks WHERE organization_id = ?1 GROUP BY status",
        )?;
        let rows = stmt.query_map([organization_id], |row| {
            Ok((row.status(0)?, row.get::<_, i64>(1)? as u64))
        })?;
        let counted: Vec<(Status, u64)> = rows.collect::<rusqlite::Result<_>>()?;
        Ok(every_status(counted))
    }
}

impl<'c> SqliteDao<'c> {
    pub fn new(conn: &'c Connection, now: Timestamp) -> Self {
        SqliteDao { conn, now }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_positions_follow_the_column_list() {
        let names: Vec<&str> = CALLBACK_COLUMNS.split(',').map(str::trim).collect();
        let positions = [
            ("seq", col::SEQ),
            ("id", col::ID),
            ("organization_id", col::ORGANIZATION_ID),
            ("source_session_id", col::SOURCE_SESSION_ID),
            ("created_session_id", col::CREATED_SESSION_ID),
            ("agent_id", col::AGENT_ID),
            ("phone_number_id", col::PHONE_NUMBER_ID),
            ("to_number", col::TO_NUMBER),
            ("from_number", col::FROM_NUMBER),
            ("scheduled_at", col::SCHEDULED_AT),
            ("status", col::STATUS),
            ("reason", col::REASON),
            ("instructions", col::INSTRUCTIONS),
            ("summary", col::SUMMARY),
            ("pipeline_config", col::PIPELINE_CONFIG),
            ("metadata", col::METADATA),
            ("failure_cause", col::FAILURE_CAUSE),
            ("attempted_at", col::ATTEMPTED_AT),
            ("dispatched_at", col::DISPATCHED_AT),
            ("cancelled_at", col::CANCELLED_AT),
            ("created_at", col::CREATED_AT),
            ("updated_at", col::UPDATED_AT),
            ("timezone", col::TIMEZONE),
            ("expires_at", col::EXPIRES_AT),
            ("attempt", col::ATTEMPT),
            ("previous_callback_id", col::PREVIOUS_CALLBACK_ID),
        ];
        assert_eq!(names.len(), positions.len());
        for (name, position) in positions {
            assert_eq!(names[position], name);
        }
    }
}
