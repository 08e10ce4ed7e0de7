//! Data access over PostgreSQL: the same traits as SQLite's, with SQL
//! written in PostgreSQL's dialect next to each method. The rules above
//! (transition table, validation, cursors, idempotency, claims) are not
//! repeated here: they call these methods exactly as they call SQLite's.
//!
//! Every statement is prepared once per connection and kept (PostgreSQL's
//! extended protocol: a cached statement costs one round trip, an uncached
//! one two).

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Display;
use std::sync::{Arc, Mutex};

use postgres::types::ToSql;
use postgres::{Client, IsolationLevel, Row, Statement, Transaction};

use super::rows::{api_key_from_row, event_from_row, API_KEY_COLUMNS, EVENT_COLUMNS};
use super::{
    list_filters, ApiKeyRows, CallbackRows, Dao, Filter, FilterValue, Moves, RowColumns, Stored,
    CALLBACK_COLUMNS,
};
use crate::cursor::Position;
use crate::error::{Error, Result};
use crate::model::{ApiKey, Callback, CallbackEvent, EventAction, ListQuery, Order, Status};
use crate::time::{to_micros, Timestamp};
use crate::transitions;
use crate::validate::ValidNewCallback;

pub(crate) mod copy;
mod feed;
mod moves;
mod policies;
mod stats;

/// One pooled connection with the statements prepared on it.
pub(crate) struct PgConnection {
    pub client: Client,
    pub statements: HashMap<String, Statement>,
    /// Every statement the store's connections have prepared, shared by
    /// the pool: the query-plan test EXPLAINs exactly the SQL that ran.
    pub seen: Arc<Mutex<BTreeSet<String>>>,
}

/// Where a DAO's statements run: straight on the connection (a read of
/// one statement is one snapshot by itself) or in a write transaction.
enum Session<'c> {
    Client(&'c mut Client),
    Transaction(Transaction<'c>),
}

/// The data access over one PostgreSQL connection, inside one transaction
/// (writes) or one statement (reads).
pub(crate) struct PgDao<'c> {
    session: RefCell<Session<'c>>,
    statements: RefCell<&'c mut HashMap<String, Statement>>,
    seen: &'c Mutex<BTreeSet<String>>,
    now: Timestamp,
}

/// A bound parameter.
pub(super) type Param<'a> = &'a (dyn ToSql + Sync);

/// Positional parameters for SQL assembled from fixed fragments: each
/// value pushed returns its `$n`. No input text ever enters the SQL.
#[derive(Default)]
pub(super) struct Params<'a> {
    values: Vec<Param<'a>>,
}

impl<'a> Params<'a> {
    pub fn bind(&mut self, value: Param<'a>) -> String {
        self.values.push(value);
        format!("${}", self.values.len())
    }

    pub fn values(&self) -> &[Param<'a>] {
        &self.values
    }
}

impl<'c> PgDao<'c> {
    pub fn reading(conn: &'c mut PgConnection, now: Timestamp) -> Self {
        PgDao {
            session: RefCell::new(Session::Client(&mut conn.client)),
            statements: RefCell::new(&mut conn.statements),
            seen: &conn.seen,
            now,
        }
    }

    /// Opens a write transaction, pinned to READ COMMITTED whatever the
    /// server's default: every write is a guarded UPDATE, a row lock or an
    /// insert, which READ COMMITTED makes correct without serialization
    /// failures (see docs/decisions.md).
    pub fn writing(conn: &'c mut PgConnection, now: impl FnOnce() -> Timestamp) -> Result<Self> {
        let tx = conn
            .client
            .build_transaction()
            .isolation_level(IsolationLevel::ReadCommitted)
            .start()?;
        Ok(PgDao {
            session: RefCell::new(Session::Transaction(tx)),
            statements: RefCell::new(&mut conn.statements),
            seen: &conn.seen,
            // Read once the transaction is open, as SQLite's writers do.
            now: now(),
        })
    }

    /// Commits a write transaction (a read has nothing to commit).
    pub fn commit(self) -> std::result::Result<(), postgres::Error> {
        match self.session.into_inner() {
            Session::Transaction(tx) => tx.commit(),
            Session::Client(_) => Ok(()),
        }
    }

    fn statement(&self, sql: &str) -> Result<Statement> {
        if let Some(statement) = self.statements.borrow().get(sql) {
            return Ok(statement.clone());
        }
        let statement = match &mut *self.session.borrow_mut() {
            Session::Client(client) => client.prepare(sql)?,
            Session::Transaction(tx) => tx.prepare(sql)?,
        };
        self.statements
            .borrow_mut()
            .insert(sql.to_owned(), statement.clone());
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sql.to_owned());
        Ok(statement)
    }

    pub(super) fn query(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>> {
        let statement = self.statement(sql)?;
        Ok(match &mut *self.session.borrow_mut() {
            Session::Client(client) => client.query(&statement, params)?,
            Session::Transaction(tx) => tx.query(&statement, params)?,
        })
    }

    pub(super) fn query_opt(&self, sql: &str, params: &[Param<'_>]) -> Result<Option<Row>> {
        let statement = self.statement(sql)?;
        Ok(match &mut *self.session.borrow_mut() {
            Session::Client(client) => client.query_opt(&statement, params)?,
            Session::Transaction(tx) => tx.query_opt(&statement, params)?,
        })
    }

    pub(super) fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        let statement = self.statement(sql)?;
        Ok(match &mut *self.session.borrow_mut() {
            Session::Client(client) => client.execute(&statement, params)?,
            Session::Transaction(tx) => tx.execute(&statement, params)?,
        })
    }

    /// Every row of a query, read into records.
    pub(super) fn query_map<T>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        read: impl Fn(&Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        self.query(sql, params)?.iter().map(read).collect()
    }
}

impl RowColumns for Row {
    type Error = Error;
    fn text(&self, i: usize) -> Result<String> {
        Ok(self.try_get(i)?)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        Ok(self.try_get(i)?)
    }
    fn int(&self, i: usize) -> Result<i64> {
        Ok(self.try_get(i)?)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        Ok(self.try_get(i)?)
    }
    fn invalid(i: usize, err: impl Display) -> Error {
        Error::storage(
            format!("PostgreSQL: column {i} holds a value this build cannot read: {err}"),
            false,
        )
    }
}

impl Dao for PgDao<'_> {
    fn now(&self) -> Timestamp {
        self.now
    }
}

impl CallbackRows for PgDao<'_> {
    fn insert_callback(
        &self,
        organization_id: &str,
        id: &str,
        new: &ValidNewCallback<'_>,
        placement: &super::Placement<'_>,
        request_hash: Option<&[u8]>,
        now: Timestamp,
    ) -> Result<Stored> {
        let input = new.input;
        let status = Status::Scheduled;
        let (scheduled_at, now_micros) = (to_micros(new.scheduled_at), to_micros(now));
        let expires_at = new.expires_at.map(to_micros);
        let attempt = i64::from(placement.attempt);
        let eligible_at = to_micros(placement.eligibility.at);
        let window_ends_at = placement.eligibility.window_ends_at.map(to_micros);
        let row = self.query_opt(
            "INSERT INTO callbacks (id, organization_id, source_session_id, agent_id, phone_number_id,
                 to_number, from_number, scheduled_at, status, reason, instructions, summary,
                 pipeline_config, metadata, created_at, updated_at, idempotency_key, request_hash,
                 timezone, expires_at, attempt, previous_callback_id, eligible_at, window_ends_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15, $16, $17,
                 $18, $19, $20, $21, $22, $23)
             RETURNING seq",
            &[
                &id,
                &organization_id,
                &input.source_session_id,
                &input.agent_id,
                &input.phone_number_id,
                &input.to_number,
                &input.from_number,
                &scheduled_at,
                &status.as_str(),
                &input.reason,
                &input.instructions,
                &input.summary,
                &new.pipeline_config.as_str(),
                &new.metadata.as_str(),
                &now_micros,
                &input.idempotency_key,
                &request_hash,
                &input.timezone,
                &expires_at,
                &attempt,
                &placement.previous_callback_id,
                &eligible_at,
                &window_ends_at,
            ],
        )?;
        let seq: i64 = row
            .ok_or_else(|| Error::storage("PostgreSQL: INSERT … RETURNING returned no row", false))?
            .try_get(0)?;
        self.insert_event(
            seq,
            &super::NewEvent {
                action: EventAction::Create,
                from: None,
                to: status,
                at: now,
                detail: placement.detail,
            },
        )?;
        Ok(Stored {
            seq,
            callback: super::created_record(organization_id, id, new, placement, now),
        })
    }

    fn find_by_idempotency_key(
        &self,
        organization_id: &str,
        key: &str,
    ) -> Result<Option<(Callback, Option<Vec<u8>>)>> {
        let row = self.query_opt(
            &format!(
                "SELECT {CALLBACK_COLUMNS}, request_hash FROM callbacks
                 WHERE organization_id = $1 AND idempotency_key = $2"
            ),
            &[&organization_id, &key],
        )?;
        row.map(|row| {
            let hash: Option<Vec<u8>> = row.try_get(super::col::AFTER)?;
            Ok((Stored::from_row(&row)?.callback, hash))
        })
        .transpose()
    }

    fn get(&self, organization_id: Option<&str>, id: &str) -> Result<Option<Stored>> {
        let row = match organization_id {
            Some(org) => self.query_opt(
                &format!(
                    "SELECT {CALLBACK_COLUMNS} FROM callbacks WHERE id = $1 AND organization_id = $2"
                ),
                &[&id, &org],
            )?,
            None => self.query_opt(
                &format!("SELECT {CALLBACK_COLUMNS} FROM callbacks WHERE id = $1"),
                &[&id],
            )?,
        };
        row.as_ref().map(Stored::from_row).transpose()
    }

    /// Locks the row until the transaction ends: under READ COMMITTED the
    /// status read here is the one the guarded UPDATE will meet, so a
    /// refusal names the status that really refused it.
    fn get_for_update(&self, organization_id: Option<&str>, id: &str) -> Result<Option<Stored>> {
        let row = match organization_id {
            Some(org) => self.query_opt(
                &format!(
                    "SELECT {CALLBACK_COLUMNS} FROM callbacks
                     WHERE id = $1 AND organization_id = $2 FOR UPDATE"
                ),
                &[&id, &org],
            )?,
            None => self.query_opt(
                &format!("SELECT {CALLBACK_COLUMNS} FROM callbacks WHERE id = $1 FOR UPDATE"),
                &[&id],
            )?,
        };
        row.as_ref().map(Stored::from_row).transpose()
    }

    fn history(&self, organization_id: &str, id: &str) -> Result<Vec<CallbackEvent>> {
        self.query_map(
            &format!(
                "SELECT {EVENT_COLUMNS}
                 FROM callbacks c JOIN callback_events e ON e.callback_seq = c.seq
                 WHERE c.id = $1 AND c.organization_id = $2
                 ORDER BY e.seq"
            ),
            &[&id, &organization_id],
            event_from_row,
        )
    }

    /// One page (plus one row). PostgreSQL seeks on a whole row-value
    /// comparison, so soonest-first resumes after `(scheduled_at, seq)` in
    /// one statement; every filter's index ends with seq (see the
    /// migration), so both orders are an index scan with nothing to sort.
    fn list(
        &self,
        organization_id: &str,
        query: &ListQuery,
        after: Option<Position>,
        rows: u32,
    ) -> Result<Vec<Stored>> {
        let rows = i64::from(rows);
        let filters = list_filters(query);
        let mut params = Params::default();
        let mut sql = format!(
            "SELECT {CALLBACK_COLUMNS} FROM callbacks WHERE organization_id = {}",
            params.bind(&organization_id)
        );
        for (kind, value) in &filters {
            let test = match kind {
                Filter::Status => "status =",
                Filter::SourceSessionId => "source_session_id =",
                Filter::AgentId => "agent_id =",
                Filter::ToNumber => "to_number =",
                Filter::ScheduledAfter => "scheduled_at >=",
                Filter::ScheduledBefore => "scheduled_at <",
            };
            let value: Param<'_> = match value {
                FilterValue::Text(text) => text,
                FilterValue::Micros(micros) => micros,
            };
            sql.push_str(&format!(" AND {test} {}", params.bind(value)));
        }
        match (query.order, &after) {
            (Order::CreatedDesc, None) => sql.push_str(" ORDER BY seq DESC"),
            (Order::CreatedDesc, Some(p)) => sql.push_str(&format!(
                " AND seq < {} ORDER BY seq DESC",
                params.bind(&p.seq)
            )),
            (Order::ScheduledAsc, None) => sql.push_str(" ORDER BY scheduled_at, seq"),
            (Order::ScheduledAsc, Some(p)) => sql.push_str(&format!(
                " AND (scheduled_at, seq) > ({}, {}) ORDER BY scheduled_at, seq",
                params.bind(&p.sort_key),
                params.bind(&p.seq)
            )),
        }
        sql.push_str(&format!(" LIMIT {}", params.bind(&rows)));
        self.query_map(&sql, params.values(), Stored::from_row)
    }

    fn prune(&self, before: Timestamp) -> Result<usize> {
        let finished: Vec<String> = Status::ALL
            .into_iter()
            .filter(|s| transitions::is_terminal(*s))
            .map(|s| format!("'{s}'"))
            .collect();
        let deleted = self.execute(
            &format!(
                "DELETE FROM callbacks WHERE status IN ({}) AND updated_at < $1",
                finished.join(", ")
            ),
            &[&to_micros(before)],
        )?;
        Ok(deleted as usize)
    }

    fn count_by_status(&self, organization_id: &str) -> Result<Vec<(Status, u64)>> {
        let counted = self.query_map(
            "SELECT status, COUNT(*) FROM callbacks WHERE organization_id = $1 GROUP BY status",
            &[&organization_id],
            |row| Ok((row.status(0)?, row.int(1)? as u64)),
        )?;
        Ok(super::every_status(counted))
    }
}

impl ApiKeyRows for PgDao<'_> {
    fn insert_api_key(&self, key: &ApiKey, token_hash: &[u8]) -> Result<()> {
        self.execute(
            "INSERT INTO api_keys (id, organization_id, label, token_hash, created_at)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &key.id,
                &key.organization_id,
                &key.label,
                &token_hash,
                &to_micros(key.created_at),
            ],
        )?;
        Ok(())
    }

    fn organization_of_token(&self, token_hash: &[u8]) -> Result<Option<String>> {
        let row = self.query_opt(
            "SELECT organization_id FROM api_keys WHERE token_hash = $1 AND revoked_at IS NULL",
            &[&token_hash],
        )?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    fn list_api_keys(&self, organization_id: &str) -> Result<Vec<ApiKey>> {
        self.query_map(
            &format!(
                "SELECT {API_KEY_COLUMNS} FROM api_keys
                 WHERE organization_id = $1 ORDER BY created_at, id"
            ),
            &[&organization_id],
            api_key_from_row,
        )
    }

    fn revoke_api_key(&self, key_id: &str, now: Timestamp) -> Result<Option<ApiKey>> {
        let row = self.query_opt(
            &format!(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1
                 RETURNING {API_KEY_COLUMNS}"
            ),
            &[&key_id, &to_micros(now)],
        )?;
        row.as_ref().map(api_key_from_row).transpose()
    }
}
