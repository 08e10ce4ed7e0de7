//! Reading rows into records, once for both backends: each backend's row
//! type says how to get a column by position, and the records are built
//! from those getters here.

use std::fmt::Display;

use super::{col, Stored};
use crate::error::Error;
use crate::model::{ApiKey, Callback, CallbackEvent, EventAction, JsonObjectText, Status};
use crate::time::Timestamp;

/// A row of either backend, read by column position. Timestamps are
/// integer microseconds since the Unix epoch in both.
pub(crate) trait RowColumns {
    /// The backend's own error, so that SQLite's row closures keep theirs.
    type Error;
    fn text(&self, i: usize) -> Result<String, Self::Error>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, Self::Error>;
    fn int(&self, i: usize) -> Result<i64, Self::Error>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>, Self::Error>;
    /// A stored value this build cannot read back (a damaged or foreign row).
    fn invalid(i: usize, err: impl Display) -> Self::Error;

    fn time(&self, i: usize) -> Result<Timestamp, Self::Error> {
        let micros = self.int(i)?;
        Timestamp::from_timestamp_micros(micros)
            .ok_or_else(|| Self::invalid(i, format!("{micros} is out of the timestamp range")))
    }

    fn opt_time(&self, i: usize) -> Result<Option<Timestamp>, Self::Error> {
        match self.opt_int(i)? {
            None => Ok(None),
            Some(micros) => Timestamp::from_timestamp_micros(micros)
                .map(Some)
                .ok_or_else(|| Self::invalid(i, format!("{micros} is out of the timestamp range"))),
        }
    }

    fn status(&self, i: usize) -> Result<Status, Self::Error> {
        self.text(i)?
            .parse()
            .map_err(|e: Error| Self::invalid(i, e))
    }

    /// The stored text as it is, not parsed into a map (JsonObjectText's
    /// `from_stored` says what it still checks, and why).
    fn json(&self, i: usize) -> Result<JsonObjectText, Self::Error> {
        JsonObjectText::from_stored(self.text(i)?).map_err(|e| Self::invalid(i, e))
    }
}

impl RowColumns for rusqlite::Row<'_> {
    type Error = rusqlite::Error;
    fn text(&self, i: usize) -> rusqlite::Result<String> {
        self.get(i)
    }
    fn opt_text(&self, i: usize) -> rusqlite::Result<Option<String>> {
        self.get(i)
    }
    fn int(&self, i: usize) -> rusqlite::Result<i64> {
        self.get(i)
    }
    fn opt_int(&self, i: usize) -> rusqlite::Result<Option<i64>> {
        self.get(i)
    }
    fn invalid(i: usize, err: impl Display) -> rusqlite::Error {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            err.to_string().into(),
        )
    }
}

impl Stored {
    /// A callback from a row whose first columns are CALLBACK_COLUMNS.
    pub(crate) fn from_row<R: RowColumns>(row: &R) -> Result<Stored, R::Error> {
        Ok(Stored {
            seq: row.int(col::SEQ)?,
            callback: Callback {
                id: row.text(col::ID)?,
                organization_id: row.text(col::ORGANIZATION_ID)?,
                source_session_id: row.opt_text(col::SOURCE_SESSION_ID)?,
                created_session_id: row.opt_text(col::CREATED_SESSION_ID)?,
                agent_id: row.opt_text(col::AGENT_ID)?,
                phone_number_id: row.opt_text(col::PHONE_NUMBER_ID)?,
                to_number: row.text(col::TO_NUMBER)?,
                from_number: row.opt_text(col::FROM_NUMBER)?,
                scheduled_at: row.time(col::SCHEDULED_AT)?,
                status: row.status(col::STATUS)?,
                reason: row.opt_text(col::REASON)?,
                instructions: row.opt_text(col::INSTRUCTIONS)?,
                summary: row.opt_text(col::SUMMARY)?,
                pipeline_config: row.json(col::PIPELINE_CONFIG)?,
                metadata: row.json(col::METADATA)?,
                failure_cause: row.opt_text(col::FAILURE_CAUSE)?,
                attempted_at: row.opt_time(col::ATTEMPTED_AT)?,
                dispatched_at: row.opt_time(col::DISPATCHED_AT)?,
                cancelled_at: row.opt_time(col::CANCELLED_AT)?,
                created_at: row.time(col::CREATED_AT)?,
                updated_at: row.time(col::UPDATED_AT)?,
                timezone: row.opt_text(col::TIMEZONE)?,
                expires_at: row.opt_time(col::EXPIRES_AT)?,
                attempt: u32::try_from(row.int(col::ATTEMPT)?)
                    .map_err(|e| R::invalid(col::ATTEMPT, e))?,
                previous_callback_id: row.opt_text(col::PREVIOUS_CALLBACK_ID)?,
            },
        })
    }
}

impl super::Candidate {
    /// A candidate from a row of CANDIDATE_COLUMNS.
    pub(crate) fn from_row<R: RowColumns>(row: &R) -> Result<Self, R::Error> {
        Ok(super::Candidate {
            seq: row.int(0)?,
            organization_id: row.text(1)?,
            agent_id: row.opt_text(2)?,
            timezone: row.opt_text(3)?,
            scheduled_at: row.time(4)?,
            expires_at: row.opt_time(5)?,
            window_ends_at: row.opt_time(6)?,
        })
    }
}

/// The columns of a history entry, in the order EVENT_COLUMNS names them.
pub(crate) const EVENT_COLUMNS: &str = "c.id, e.action, e.from_status, e.to_status, e.at, e.detail";

pub(crate) fn event_from_row<R: RowColumns>(row: &R) -> Result<CallbackEvent, R::Error> {
    let action = row.text(1)?;
    Ok(CallbackEvent {
        callback_id: row.text(0)?,
        action: EventAction::parse(&action)
            .ok_or_else(|| R::invalid(1, format!("unknown action {action}")))?,
        from: row
            .opt_text(2)?
            .map(|s| s.parse().map_err(|e: Error| R::invalid(2, e)))
            .transpose()?,
        to: row.status(3)?,
        at: row.time(4)?,
        detail: row.opt_text(5)?,
    })
}

/// The columns of an API key, in the order API_KEY_COLUMNS names them.
pub(crate) const API_KEY_COLUMNS: &str = "id, organization_id, label, created_at, revoked_at";

pub(crate) fn api_key_from_row<R: RowColumns>(row: &R) -> Result<ApiKey, R::Error> {
    Ok(ApiKey {
        id: row.text(0)?,
        organization_id: row.text(1)?,
        label: row.text(2)?,
        created_at: row.time(3)?,
        revoked_at: row.opt_time(4)?,
    })
}
