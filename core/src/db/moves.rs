//! Data access for status changes: the guarded UPDATE of one callback, the
//! store-wide moves (claim_due, recover_stale) and the history rows each
//! change appends.

use rusqlite::types::Value;
use rusqlite::{OptionalExtension, ToSql};

use super::{col, Candidate, SqliteDao, Stored, CALLBACK_COLUMNS, CANDIDATE_COLUMNS};
use crate::claim::ClaimColumns;
use crate::error::Result;
use crate::model::{EventAction, Status};
use crate::policy::Eligibility;
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
    /// Spends the callback's claim (place_call).
    pub claim_spent_at: Option<Timestamp>,
    /// Stores a fresh claim token (entering `dispatching`).
    pub new_claim: bool,
    /// When a scheduled callback may next ring (reschedule).
    pub eligibility: Option<Eligibility>,
}

impl Changes<'_> {
    /// The columns this transition writes, with their values.
    pub(super) fn columns(&self) -> impl Iterator<Item = (&'static str, Value)> {
        let micros = |t: Option<Timestamp>| t.map(|t| Value::Integer(to_micros(t)));
        let text = |s: Option<&str>| s.map(|s| Value::Text(s.to_owned()));
        [
            ("scheduled_at", micros(self.scheduled_at)),
            ("created_session_id", text(self.created_session_id)),
            ("failure_cause", text(self.failure_cause)),
            ("attempted_at", micros(self.attempted_at)),
            ("dispatched_at", micros(self.dispatched_at)),
            ("cancelled_at", micros(self.cancelled_at)),
            ("claim_spent_at", micros(self.claim_spent_at)),
            (
                "eligible_at",
                self.eligibility.map(|e| Value::Integer(to_micros(e.at))),
            ),
            (
                "window_ends_at",
                self.eligibility.map(|e| {
                    e.window_ends_at
                        .map_or(Value::Null, |t| Value::Integer(to_micros(t)))
                }),
            ),
        ]
        .into_iter()
        .filter_map(|(column, value)| Some((column, value?)))
    }

    /// Whether a field of the record (the API's JSON) changes, so that
    /// updated_at moves. Spending a claim changes none: only the history
    /// and the hidden claim columns say it happened; nor does the hidden
    /// eligibility.
    pub(super) fn changes_record(&self) -> bool {
        self.columns()
            .any(|(column, _)| !HIDDEN_COLUMNS.contains(&column))
    }
}

/// Columns a transition may set that are not fields of the record.
const HIDDEN_COLUMNS: [&str; 3] = ["claim_spent_at", "eligible_at", "window_ends_at"];

/// What the guarded UPDATE requires of the callback's claim besides its
/// status: the token of the claim the caller holds, and for place_call that
/// the claim was not spent yet.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ClaimGuard<'a> {
    pub token: Option<&'a str>,
    pub unspent: bool,
}

/// The shape of one transition's UPDATE: which columns it names.
#[derive(Debug, Clone, Copy)]
struct Shape<'s> {
    /// The status changes (a reschedule or a spend keeps it).
    status: bool,
    /// A field of the record changes, so updated_at moves.
    touch: bool,
    columns: &'s [&'s str],
    new_claim: bool,
    guard_token: bool,
    guard_unspent: bool,
}

impl<'s> Shape<'s> {
    /// A store-wide move: it changes the status, so updated_at too; no
    /// claim guards (it selects by status and time, not by claim).
    fn bulk(columns: &'s [&'s str], changes: &Changes<'_>) -> Shape<'s> {
        Shape {
            status: true,
            touch: true,
            columns,
            new_claim: changes.new_claim,
            guard_token: false,
            guard_unspent: false,
        }
    }
}

/// The guarded UPDATE of one transition, naming only what it changes.
/// SQLite rewrites the entries of every index over a column named in SET,
/// changed or not, and every index page it rewrites is one more page
/// appended to the WAL at commit: a completion that also named scheduled_at
/// (even as `COALESCE(NULL, scheduled_at)`) rewrote the schedule index for
/// nothing, and a spend that named status would rewrite both status indexes.
///
/// A new claim's token comes from SQLite's randomblob (ChaCha20 seeded from
/// the OS), evaluated per row: claim_due gives each callback its own token
/// in the same single statement.
fn transition_sql(shape: Shape<'_>) -> String {
    let set = set_clause(shape);
    let mut guard = String::new();
    if shape.guard_token {
        guard.push_str(" AND claim_token = :token");
    }
    if shape.guard_unspent {
        guard.push_str(" AND claim_spent_at IS NULL");
    }
    format!(
        "UPDATE callbacks SET {set}
             WHERE id = :id AND (:org IS NULL OR organization_id = :org) AND status = :from{guard}"
    )
}

/// What a transition's UPDATE sets, for one callback and for the
/// store-wide moves alike: the status when it changes, updated_at when the
/// record changes, the columns of the transition's `Changes` (the one place
/// that says what each action writes: `Request::changes`), and a fresh
/// claim token when it makes a claim.
fn set_clause(shape: Shape<'_>) -> String {
    let mut set: Vec<String> = Vec::new();
    if shape.status {
        set.push("status = :to".to_owned());
    }
    if shape.touch || shape.status {
        set.push("updated_at = :now".to_owned());
    }
    set.extend(shape.columns.iter().map(|c| format!("{c} = :{c}")));
    if shape.new_claim {
        set.push(format!("claim_token = {NEW_TOKEN}"));
    }
    set.join(", ")
}

/// The columns of `changes`, their `:name` parameters and their values.
fn bound_columns(changes: &Changes<'_>) -> (Vec<&'static str>, Vec<String>, Vec<Value>) {
    let (columns, values): (Vec<&str>, Vec<Value>) = changes.columns().unzip();
    let names = columns.iter().map(|c| format!(":{c}")).collect();
    (columns, names, values)
}

/// The named parameters of a transition's columns, to bind beside the others.
fn column_params<'v>(
    names: &'v [String],
    values: &'v [Value],
) -> impl Iterator<Item = (&'v str, &'v dyn ToSql)> {
    names
        .iter()
        .zip(values)
        .map(|(n, v)| (n.as_str(), v as &dyn ToSql))
}

/// A fresh claim token, in SQL: 128 random bits as 32 lowercase hex digits.
const NEW_TOKEN: &str = "lower(hex(randomblob(16)))";

/// One event of a callback's history, to append.
pub(crate) struct NewEvent<'a> {
    pub action: EventAction,
    pub from: Option<Status>,
    pub to: Status,
    pub at: Timestamp,
    pub detail: Option<&'a str>,
}

/// Status changes: the guarded UPDATE of one callback, the store-wide
/// moves, the claim columns, and the history rows each change appends.
pub(crate) trait Moves {
    /// The guarded UPDATE of one transition: it only matches while the
    /// callback is still in `from` (and, with a guard, still holds that
    /// claim), so of two racing writers one wins. Returns the callback with
    /// its claim token.
    fn apply_transition(
        &self,
        organization_id: Option<&str>,
        id: &str,
        from_to: (Status, Status),
        changes: &Changes<'_>,
        guard: ClaimGuard<'_>,
        now: Timestamp,
    ) -> Result<Option<(Stored, Option<String>)>>;
    /// The claim columns of a callback: its token (None before its first
    /// claim) and whether that claim was spent.
    /// A callback (of any organization) with its claim columns, read in
    /// one statement.
    fn get_with_claim(&self, id: &str) -> Result<Option<(Stored, ClaimColumns)>>;
    fn claim_columns(&self, id: &str) -> Result<Option<ClaimColumns>>;
    fn insert_event(&self, callback_seq: i64, event: &NewEvent<'_>) -> Result<()>;
    /// The same event for each callback of a store-wide move, in the order
    /// given. One statement each on SQLite, where a statement costs no round
    /// trip; PostgreSQL inserts them all in one.
    fn insert_events(&self, callback_seqs: &[i64], event: &NewEvent<'_>) -> Result<()> {
        for seq in callback_seqs {
            self.insert_event(*seq, event)?;
        }
        Ok(())
    }
    /// Up to `limit` scheduled callbacks whose next eligible instant has
    /// come (eligible_at <= now), soonest first, across all organizations:
    /// claim_due's candidates. PostgreSQL locks them, skipping rows another
    /// worker holds.
    fn due_candidates(&self, now: Timestamp, limit: u32) -> Result<Vec<Candidate>>;
    /// Up to `limit` scheduled callbacks whose deadline has passed
    /// (expires_at <= now), by seq, locked as `due_candidates` locks.
    fn overdue(&self, now: Timestamp, limit: u32) -> Result<Vec<i64>>;
    /// The store-wide move `action` of the callbacks `seqs` that are still
    /// in the status it selects, setting `changes` (a fresh claim token
    /// each, when it makes claims), with their history; oldest scheduled
    /// first.
    fn move_picked(
        &self,
        action: transitions::Action,
        seqs: &[i64],
        now: Timestamp,
        changes: &Changes<'_>,
    ) -> Result<Vec<(Stored, Option<String>)>>;
    /// Fails callbacks left `dispatching` since before `horizon`, setting
    /// `changes`; their failure cause is the history's detail.
    fn recover_stale(
        &self,
        now: Timestamp,
        horizon: Timestamp,
        changes: &Changes<'_>,
    ) -> Result<Vec<Stored>>;
}

impl Moves for SqliteDao<'_> {
    /// The guarded UPDATE of one transition: it only matches while the
    /// callback is still in `from` (and, with a guard, still holds that
    /// claim), so of two racing writers one wins. Returns the callback with
    /// its claim token.
    fn apply_transition(
        &self,
        organization_id: Option<&str>,
        id: &str,
        (from, to): (Status, Status),
        changes: &Changes<'_>,
        guard: ClaimGuard<'_>,
        now: Timestamp,
    ) -> Result<Option<(Stored, Option<String>)>> {
        let (columns, names, values) = bound_columns(changes);
        let shape = Shape {
            status: from != to,
            touch: changes.changes_record(),
            columns: &columns,
            new_claim: changes.new_claim,
            guard_token: guard.token.is_some(),
            guard_unspent: guard.unspent,
        };
        let mut stmt = self.conn.prepare_cached(&transition_sql(shape))?;
        let (to, from, now) = (to.as_str(), from.as_str(), to_micros(now));
        let mut params: Vec<(&str, &dyn ToSql)> =
            vec![(":id", &id), (":org", &organization_id), (":from", &from)];
        if shape.status {
            params.push((":to", &to));
        }
        if shape.status || shape.touch {
            params.push((":now", &now));
        }
        if let Some(token) = &guard.token {
            params.push((":token", token));
        }
        params.extend(column_params(&names, &values));
        // No RETURNING: SQLite buffers the rows an UPDATE … RETURNING
        // returns in an ephemeral table, opened, zero-filled and freed for
        // every statement, which cost 10 % of a drained callback's
        // instructions (bench I1: 397k → 358k); reading the one row back
        // by its unique id, on pages the UPDATE just touched, costs less.
        if stmt.execute(params.as_slice())? == 0 {
            return Ok(None);
        }
        let mut read = self.conn.prepare_cached(&format!(
            "SELECT {CALLBACK_COLUMNS}, claim_token FROM callbacks WHERE id = ?1"
        ))?;
        Ok(read
            .query_row([id], |row| {
                Ok((Stored::from_row(row)?, row.get(col::CLAIM_TOKEN)?))
            })
            .optional()?)
    }

    /// The claim columns of a callback: its token (None before its first
    /// claim) and whether that claim was spent.
    /// A callback (of any organization) with its claim columns, read in
    /// one statement.
    fn get_with_claim(&self, id: &str) -> Result<Option<(Stored, ClaimColumns)>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {CALLBACK_COLUMNS}, claim_token, claim_spent_at IS NOT NULL
             FROM callbacks WHERE id = ?1"
        ))?;
        Ok(stmt
            .query_row([id], |row| {
                let columns = ClaimColumns {
                    token: row.get(col::CLAIM_TOKEN)?,
                    spent: row.get(col::CLAIM_TOKEN + 1)?,
                };
                Ok((Stored::from_row(row)?, columns))
            })
            .optional()?)
    }

    fn claim_columns(&self, id: &str) -> Result<Option<ClaimColumns>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT claim_token, claim_spent_at IS NOT NULL FROM callbacks WHERE id = ?1",
        )?;
        Ok(stmt
            .query_row([id], |row| {
                Ok(ClaimColumns {
                    token: row.get(0)?,
                    spent: row.get(1)?,
                })
            })
            .optional()?)
    }

    /// Linked into the callback's chain of events (db/chain.rs).
    fn insert_event(&self, callback_seq: i64, event: &NewEvent<'_>) -> Result<()> {
        super::chain::append(self.conn, callback_seq, event)
    }

    fn due_candidates(&self, now: Timestamp, limit: u32) -> Result<Vec<Candidate>> {
        let (from, _) = transitions::bulk_move(transitions::Action::ClaimDue);
        // The status is a literal from the transition table, so that SQLite
        // can use the partial index of scheduled callbacks.
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {CANDIDATE_COLUMNS} FROM callbacks
             WHERE status = '{from}' AND eligible_at <= ?1
             ORDER BY eligible_at, seq LIMIT ?2"
        ))?;
        let rows = stmt.query_map(rusqlite::params![to_micros(now), limit], |row| {
            Candidate::from_row(row)
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn overdue(&self, now: Timestamp, limit: u32) -> Result<Vec<i64>> {
        let (from, _) = transitions::bulk_move(transitions::Action::Expire);
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT seq FROM callbacks
             WHERE status = '{from}' AND expires_at IS NOT NULL AND expires_at <= ?1
             ORDER BY expires_at, seq LIMIT ?2"
        ))?;
        let rows = stmt.query_map(rusqlite::params![to_micros(now), limit], |row| row.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// One UPDATE for all of them: the seqs are bound as one JSON array.
    /// A fresh claim's token comes from randomblob, evaluated per row.
    fn move_picked(
        &self,
        action: transitions::Action,
        seqs: &[i64],
        now: Timestamp,
        changes: &Changes<'_>,
    ) -> Result<Vec<(Stored, Option<String>)>> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let (from, to) = transitions::bulk_move(action);
        let (columns, names, values) = bound_columns(changes);
        let set = set_clause(Shape::bulk(&columns, changes));
        let mut stmt = self.conn.prepare_cached(&format!(
            "UPDATE callbacks SET {set}
             WHERE seq IN (SELECT value FROM json_each(:seqs)) AND status = '{from}'
             RETURNING {CALLBACK_COLUMNS}, claim_token"
        ))?;
        let picked = serde_json::to_string(seqs).unwrap_or_else(|_| "[]".to_owned());
        let (to, now_micros) = (to.as_str(), to_micros(now));
        let mut params: Vec<(&str, &dyn ToSql)> =
            vec![(":to", &to), (":now", &now_micros), (":seqs", &picked)];
        params.extend(column_params(&names, &values));
        let rows = stmt.query_map(params.as_slice(), |row| {
            Ok((Stored::from_row(row)?, row.get(col::CLAIM_TOKEN)?))
        })?;
        let mut moved = rows.collect::<rusqlite::Result<Vec<(Stored, Option<String>)>>>()?;
        // RETURNING gives no order; workers expect the oldest first.
        moved.sort_by_key(|(s, _)| (s.callback.scheduled_at, s.seq));
        let records: Vec<&Stored> = moved.iter().map(|(s, _)| s).collect();
        record_bulk(self, &records, action, from, now, changes.failure_cause)?;
        Ok(moved)
    }

    /// Fails callbacks left `dispatching` since before `horizon`, setting
    /// `changes`; their failure cause is the history's detail.
    fn recover_stale(
        &self,
        now: Timestamp,
        horizon: Timestamp,
        changes: &Changes<'_>,
    ) -> Result<Vec<Stored>> {
        let (from, to) = transitions::bulk_move(transitions::Action::RecoverStale);
        let (columns, names, values) = bound_columns(changes);
        let set = set_clause(Shape::bulk(&columns, changes));
        let mut stmt = self.conn.prepare_cached(&format!(
            "UPDATE callbacks SET {set}
             WHERE status = '{from}' AND attempted_at < :horizon
             RETURNING {CALLBACK_COLUMNS}"
        ))?;
        let (to, now_micros, horizon) = (to.as_str(), to_micros(now), to_micros(horizon));
        let mut params: Vec<(&str, &dyn ToSql)> =
            vec![(":to", &to), (":now", &now_micros), (":horizon", &horizon)];
        params.extend(column_params(&names, &values));
        let rows = stmt.query_map(params.as_slice(), |row| Stored::from_row(row))?;
        let mut recovered = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        recovered.sort_by_key(|s| s.seq);
        record_bulk(
            self,
            &recovered.iter().collect::<Vec<_>>(),
            transitions::Action::RecoverStale,
            from,
            now,
            changes.failure_cause,
        )?;
        Ok(recovered)
    }
}

/// Appends the history entry of a store-wide move to each callback moved.
pub(super) fn record_bulk(
    dao: &dyn Moves,
    moved: &[&Stored],
    action: transitions::Action,
    from: Status,
    at: Timestamp,
    detail: Option<&str>,
) -> Result<()> {
    // A store-wide move takes every callback from one status to one other.
    let Some(first) = moved.first() else {
        return Ok(());
    };
    let seqs: Vec<i64> = moved.iter().map(|s| s.seq).collect();
    dao.insert_events(
        &seqs,
        &NewEvent {
            action: action.into(),
            from: Some(from),
            to: first.callback.status,
            at,
            detail,
        },
    )
}

#[cfg(test)]
mod tests;
