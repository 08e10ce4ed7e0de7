//! Status changes over PostgreSQL: the guarded `UPDATE … RETURNING` of one
//! transition, and the store-wide moves, which take their rows with
//! `FOR UPDATE SKIP LOCKED` so that workers on many machines never wait for
//! each other or take the same callback.

use rusqlite::types::Value;

use super::{Param, Params, PgDao};
use crate::claim::ClaimColumns;
use crate::db::moves::{record_bulk, Changes, ClaimGuard, Moves, NewEvent};
use crate::db::{col, Candidate, Stored, CALLBACK_COLUMNS, CANDIDATE_COLUMNS};
use crate::error::Result;
use crate::model::Status;
use crate::time::{to_micros, Timestamp};
use crate::transitions::{self, Action};

/// A fresh claim token, in SQL: 32 lowercase hex digits (128 bits) of the
/// SHA-256 of two UUIDv4, which PostgreSQL draws from its strong random
/// source (pg_strong_random) per row, like SQLite's randomblob: claim_due
/// gives each callback its own token in one statement.
const NEW_TOKEN: &str = "substr(encode(sha256(convert_to(\
    gen_random_uuid()::text || gen_random_uuid()::text, 'UTF8')), 'hex'), 1, 32)";

/// Transitions only ever set integer (microseconds) and text columns.
/// NULL is only ever set in a BIGINT column (window_ends_at).
fn param(value: &Value) -> Param<'_> {
    static NULL: Option<i64> = None;
    match value {
        Value::Integer(i) => i,
        Value::Text(s) => s,
        _ => &NULL,
    }
}

/// The SET list of a transition: the status when it changes, updated_at
/// when the record changes, each column of `changes`, and a fresh claim
/// token when it makes one. As on SQLite, only what changes is named: an
/// UPDATE that names no indexed column can be a HOT update (no index
/// entry written), which is what a claim's spend is.
fn set_list<'a>(
    params: &mut Params<'a>,
    status: Option<&'a &'static str>,
    touch: Option<&'a i64>,
    values: &'a [(&'static str, Value)],
    new_claim: bool,
) -> String {
    let mut set = Vec::new();
    if let Some(to) = status {
        set.push(format!("status = {}", params.bind(to)));
    }
    if let Some(now) = touch {
        set.push(format!("updated_at = {}", params.bind(now)));
    }
    for (column, value) in values {
        set.push(format!("{column} = {}", params.bind(param(value))));
    }
    if new_claim {
        set.push(format!("claim_token = {NEW_TOKEN}"));
    }
    set.join(", ")
}

impl PgDao<'_> {
    /// A store-wide move of the rows `select` picks (a `SELECT seq …` that
    /// locks them with SKIP LOCKED, given the `$n` of each of `picks`),
    /// with its history.
    fn bulk_move(
        &self,
        action: Action,
        now: Timestamp,
        changes: &Changes<'_>,
        picks: &[Param<'_>],
        select: impl FnOnce(&[String]) -> String,
    ) -> Result<Vec<(Stored, Option<String>)>> {
        let (from, to) = transitions::bulk_move(action);
        let values: Vec<(&str, Value)> = changes.columns().collect();
        let (to_text, now_micros) = (to.as_str(), to_micros(now));
        let mut params = Params::default();
        let set = set_list(
            &mut params,
            Some(&to_text),
            Some(&now_micros),
            &values,
            changes.new_claim,
        );
        let names: Vec<String> = picks.iter().map(|p| params.bind(*p)).collect();
        let select = select(&names);
        // The rows are picked once, in a materialized CTE: as a subquery of
        // `seq IN (…)` the planner may run the pick more than once (it
        // claimed twice its LIMIT in our tests). The status is a literal
        // from the transition table, not input, so that the planner can use
        // the partial index of that status.
        let sql = format!(
            "WITH picked AS MATERIALIZED ({select})
             UPDATE callbacks SET {set}
             FROM picked WHERE callbacks.seq = picked.pick AND status = '{from}'
             RETURNING {CALLBACK_COLUMNS}, claim_token"
        );
        let mut moved = self.query_map(&sql, params.values(), |row| {
            Ok((Stored::from_row(row)?, row.try_get(col::CLAIM_TOKEN)?))
        })?;
        // RETURNING gives no order; workers expect the oldest first.
        moved.sort_by_key(|(s, _)| (s.callback.scheduled_at, s.seq));
        let stored: Vec<&Stored> = moved.iter().map(|(s, _)| s).collect();
        record_bulk(self, &stored, action, from, now, changes.failure_cause)?;
        Ok(moved)
    }
}

impl Moves for PgDao<'_> {
    fn apply_transition(
        &self,
        organization_id: Option<&str>,
        id: &str,
        (from, to): (Status, Status),
        changes: &Changes<'_>,
        guard: ClaimGuard<'_>,
        now: Timestamp,
    ) -> Result<Option<(Stored, Option<String>)>> {
        let values: Vec<(&str, Value)> = changes.columns().collect();
        let (to_text, from_text, now_micros) = (to.as_str(), from.as_str(), to_micros(now));
        let moves_status = from != to;
        let touch = moves_status || changes.changes_record();
        let mut params = Params::default();
        let set = set_list(
            &mut params,
            moves_status.then_some(&to_text),
            touch.then_some(&now_micros),
            &values,
            changes.new_claim,
        );
        let mut filter = format!(
            "id = {} AND status = {}",
            params.bind(&id),
            params.bind(&from_text)
        );
        if let Some(org) = &organization_id {
            filter.push_str(&format!(" AND organization_id = {}", params.bind(org)));
        }
        if let Some(token) = &guard.token {
            filter.push_str(&format!(" AND claim_token = {}", params.bind(token)));
        }
        if guard.unspent {
            filter.push_str(" AND claim_spent_at IS NULL");
        }
        let row = self.query_opt(
            &format!(
                "UPDATE callbacks SET {set} WHERE {filter}
                 RETURNING {CALLBACK_COLUMNS}, claim_token"
            ),
            params.values(),
        )?;
        row.map(|row| Ok((Stored::from_row(&row)?, row.try_get(col::CLAIM_TOKEN)?)))
            .transpose()
    }

    fn get_with_claim(&self, id: &str) -> Result<Option<(Stored, ClaimColumns)>> {
        let row = self.query_opt(
            &format!(
                "SELECT {CALLBACK_COLUMNS}, claim_token, claim_spent_at IS NOT NULL
                 FROM callbacks WHERE id = $1"
            ),
            &[&id],
        )?;
        row.map(|row| {
            let columns = ClaimColumns {
                token: row.try_get(col::CLAIM_TOKEN)?,
                spent: row.try_get(col::CLAIM_TOKEN + 1)?,
            };
            Ok((Stored::from_row(&row)?, columns))
        })
        .transpose()
    }

    fn claim_columns(&self, id: &str) -> Result<Option<ClaimColumns>> {
        let row = self.query_opt(
            "SELECT claim_token, claim_spent_at IS NOT NULL FROM callbacks WHERE id = $1",
            &[&id],
        )?;
        row.map(|row| {
            Ok(ClaimColumns {
                token: row.try_get(0)?,
                spent: row.try_get(1)?,
            })
        })
        .transpose()
    }

    /// Linked after the callback's last event, which it becomes: the same
    /// chain as SQLite's (migrations V5), so that a copy between the two
    /// backends moves true links; PostgreSQL's history and prune still read
    /// by its index of events by callback.
    fn insert_event(&self, callback_seq: i64, event: &NewEvent<'_>) -> Result<()> {
        self.execute(
            "WITH e AS (
                 INSERT INTO callback_events
                     (callback_seq, action, from_status, to_status, at, detail, previous_event_seq)
                 SELECT c.seq, $2, $3, $4, $5, $6, c.last_event_seq FROM callbacks c WHERE c.seq = $1
                 RETURNING seq, callback_seq
             )
             UPDATE callbacks c SET last_event_seq = e.seq FROM e WHERE c.seq = e.callback_seq",
            &[
                &callback_seq,
                &event.action.as_str(),
                &event.from.map(Status::as_str),
                &event.to.as_str(),
                &to_micros(event.at),
                &event.detail,
            ],
        )?;
        Ok(())
    }

    /// One statement for all of them: a claim of 100 made 100 round trips
    /// for its history (15 % of a drain's time in the P8 benchmark).
    /// Each event is linked into its callback's chain as in `insert_event`.
    fn insert_events(&self, callback_seqs: &[i64], event: &NewEvent<'_>) -> Result<()> {
        if callback_seqs.is_empty() {
            return Ok(());
        }
        self.execute(
            "WITH e AS (
                 INSERT INTO callback_events
                     (callback_seq, action, from_status, to_status, at, detail, previous_event_seq)
                 SELECT u.seq, $2, $3, $4, $5, $6, c.last_event_seq
                 FROM unnest($1::bigint[]) WITH ORDINALITY AS u(seq, n)
                     JOIN callbacks c ON c.seq = u.seq
                 ORDER BY u.n
                 RETURNING seq, callback_seq
             )
             UPDATE callbacks c SET last_event_seq = e.seq FROM e WHERE c.seq = e.callback_seq",
            &[
                &callback_seqs,
                &event.action.as_str(),
                &event.from.map(Status::as_str),
                &event.to.as_str(),
                &to_micros(event.at),
                &event.detail,
            ],
        )?;
        Ok(())
    }

    /// Soonest eligible first; rows another worker holds are skipped, not
    /// waited for, so concurrent claimers each take different callbacks.
    /// The rows stay locked until the transaction ends, through the moves
    /// that follow.
    fn due_candidates(&self, now: Timestamp, limit: u32) -> Result<Vec<Candidate>> {
        let (from, _) = transitions::bulk_move(Action::ClaimDue);
        self.query_map(
            &format!(
                "SELECT {CANDIDATE_COLUMNS} FROM callbacks
                 WHERE status = '{from}' AND eligible_at <= $1
                 ORDER BY eligible_at, seq LIMIT $2 FOR UPDATE SKIP LOCKED"
            ),
            &[&to_micros(now), &i64::from(limit)],
            Candidate::from_row,
        )
    }

    fn overdue(&self, now: Timestamp, limit: u32) -> Result<Vec<i64>> {
        let (from, _) = transitions::bulk_move(Action::Expire);
        self.query_map(
            &format!(
                "SELECT seq FROM callbacks
                 WHERE status = '{from}' AND expires_at IS NOT NULL AND expires_at <= $1
                 ORDER BY expires_at, seq LIMIT $2 FOR UPDATE SKIP LOCKED"
            ),
            &[&to_micros(now), &i64::from(limit)],
            |row| Ok(row.try_get(0)?),
        )
    }

    fn move_picked(
        &self,
        action: Action,
        seqs: &[i64],
        now: Timestamp,
        changes: &Changes<'_>,
    ) -> Result<Vec<(Stored, Option<String>)>> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let seqs = seqs.to_vec();
        self.bulk_move(action, now, changes, &[&seqs], |p| {
            format!("SELECT unnest({}::bigint[]) AS pick", p[0])
        })
    }

    fn recover_stale(
        &self,
        now: Timestamp,
        horizon: Timestamp,
        changes: &Changes<'_>,
    ) -> Result<Vec<Stored>> {
        let (from, _) = transitions::bulk_move(Action::RecoverStale);
        let horizon = to_micros(horizon);
        let mut recovered =
            self.bulk_move(Action::RecoverStale, now, changes, &[&horizon], |p| {
                format!(
                    "SELECT seq AS pick FROM callbacks
                     WHERE status = '{from}' AND attempted_at < {}
                     FOR UPDATE SKIP LOCKED",
                    p[0]
                )
            })?;
        recovered.sort_by_key(|(s, _)| s.seq);
        Ok(recovered.into_iter().map(|(s, _)| s).collect())
    }
}
