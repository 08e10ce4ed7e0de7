//! The records and enums of the bindings: the core's, field for field, with
//! timestamps and JSON objects as the custom types of `types.rs`, and the
//! From conversions between the two.

use std::sync::Arc;
use std::time::Duration;

use callback_store as core;

use crate::error::Result;
use crate::store::ManualClock;
use crate::types::{opt_ts, parse_opt, JsonObject, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum Status {
    Scheduled,
    Dispatching,
    Dispatched,
    Cancelled,
    Failed,
}

impl From<core::Status> for Status {
    fn from(s: core::Status) -> Self {
        match s {
            core::Status::Scheduled => Status::Scheduled,
            core::Status::Dispatching => Status::Dispatching,
            core::Status::Dispatched => Status::Dispatched,
            core::Status::Cancelled => Status::Cancelled,
            core::Status::Failed => Status::Failed,
        }
    }
}

impl From<Status> for core::Status {
    fn from(s: Status) -> Self {
        match s {
            Status::Scheduled => core::Status::Scheduled,
            Status::Dispatching => core::Status::Dispatching,
            Status::Dispatched => core::Status::Dispatched,
            Status::Cancelled => core::Status::Cancelled,
            Status::Failed => core::Status::Failed,
        }
    }
}

/// The order of a list: newest first (default) or soonest scheduled first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum Order {
    CreatedDesc,
    ScheduledAsc,
}

impl From<Order> for core::Order {
    fn from(o: Order) -> Self {
        match o {
            Order::CreatedDesc => core::Order::CreatedDesc,
            Order::ScheduledAsc => core::Order::ScheduledAsc,
        }
    }
}

/// What an event of a callback's history records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum EventAction {
    Create,
    Cancel,
    Dispatch,
    ClaimDue,
    CompleteDispatch,
    FailDispatch,
    Reschedule,
    RecoverStale,
    /// A claim was spent: the call is being placed.
    PlaceCall,
    /// Still scheduled at its deadline (`expires_at`): failed, never dialed.
    Expire,
    /// A follow-up attempt was created; `detail` names it.
    Retry,
}

impl From<core::EventAction> for EventAction {
    fn from(a: core::EventAction) -> Self {
        match a {
            core::EventAction::Create => EventAction::Create,
            core::EventAction::Cancel => EventAction::Cancel,
            core::EventAction::Dispatch => EventAction::Dispatch,
            core::EventAction::ClaimDue => EventAction::ClaimDue,
            core::EventAction::CompleteDispatch => EventAction::CompleteDispatch,
            core::EventAction::FailDispatch => EventAction::FailDispatch,
            core::EventAction::Reschedule => EventAction::Reschedule,
            core::EventAction::RecoverStale => EventAction::RecoverStale,
            core::EventAction::PlaceCall => EventAction::PlaceCall,
            core::EventAction::Expire => EventAction::Expire,
            core::EventAction::Retry => EventAction::Retry,
        }
    }
}

/// How a commit reaches the disk: `Full` (default) survives a power cut,
/// `Normal` only a crash of the process, and is faster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum Durability {
    Full,
    Normal,
}

/// A scheduled callback: the API reference's object, key for key.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Callback {
    pub id: String,
    pub organization_id: String,
    pub source_session_id: Option<String>,
    pub created_session_id: Option<String>,
    pub agent_id: Option<String>,
    pub phone_number_id: Option<String>,
    pub to_number: String,
    pub from_number: Option<String>,
    pub scheduled_at: Timestamp,
    pub status: Status,
    pub reason: Option<String>,
    pub instructions: Option<String>,
    pub summary: Option<String>,
    pub pipeline_config: JsonObject,
    pub metadata: JsonObject,
    pub failure_cause: Option<String>,
    pub attempted_at: Option<Timestamp>,
    pub dispatched_at: Option<Timestamp>,
    pub cancelled_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    // The extension keys of DESIGN.md, after the reference's 21.
    /// The callee's IANA time zone; None: its agent's or organization's
    /// calling policy gives the zone.
    pub timezone: Option<String>,
    /// Still `scheduled` at this instant, it is never dialed: it fails with
    /// cause `expired`.
    pub expires_at: Option<Timestamp>,
    /// 1 for a first call, 2 for its first follow-up, …
    pub attempt: u32,
    /// The callback this attempt follows up (`retry`), or None.
    pub previous_callback_id: Option<String>,
}

impl From<core::Callback> for Callback {
    fn from(c: core::Callback) -> Self {
        Callback {
            pipeline_config: c.pipeline_config.into(),
            metadata: c.metadata.into(),
            id: c.id,
            organization_id: c.organization_id,
            source_session_id: c.source_session_id,
            created_session_id: c.created_session_id,
            agent_id: c.agent_id,
            phone_number_id: c.phone_number_id,
            to_number: c.to_number,
            from_number: c.from_number,
            scheduled_at: c.scheduled_at.into(),
            status: c.status.into(),
            reason: c.reason,
            instructions: c.instructions,
            summary: c.summary,
            failure_cause: c.failure_cause,
            attempted_at: opt_ts(c.attempted_at),
            dispatched_at: opt_ts(c.dispatched_at),
            cancelled_at: opt_ts(c.cancelled_at),
            created_at: c.created_at.into(),
            updated_at: c.updated_at.into(),
            timezone: c.timezone,
            expires_at: opt_ts(c.expires_at),
            attempt: c.attempt,
            previous_callback_id: c.previous_callback_id,
        }
    }
}

/// What a caller gives to create a callback. `pipeline_config` and
/// `metadata` not given are `{}`. With an `idempotency_key`, creating again
/// returns the first callback; the same key with another payload is a
/// CONFLICT.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct NewCallback {
    pub to_number: String,
    pub scheduled_at: Timestamp,
    #[uniffi(default = None)]
    pub source_session_id: Option<String>,
    #[uniffi(default = None)]
    pub agent_id: Option<String>,
    #[uniffi(default = None)]
    pub phone_number_id: Option<String>,
    #[uniffi(default = None)]
    pub from_number: Option<String>,
    #[uniffi(default = None)]
    pub reason: Option<String>,
    #[uniffi(default = None)]
    pub instructions: Option<String>,
    #[uniffi(default = None)]
    pub summary: Option<String>,
    #[uniffi(default = None)]
    pub pipeline_config: Option<JsonObject>,
    #[uniffi(default = None)]
    pub metadata: Option<JsonObject>,
    #[uniffi(default = None)]
    pub idempotency_key: Option<String>,
    // After idempotency_key, so that the fields before keep their places.
    /// The callee's IANA time zone (`America/New_York`); None: the calling
    /// policy's.
    #[uniffi(default = None)]
    pub timezone: Option<String>,
    /// The deadline, later than scheduled_at: a callback still scheduled
    /// then is never dialed.
    #[uniffi(default = None)]
    pub expires_at: Option<Timestamp>,
}

impl NewCallback {
    pub(crate) fn to_core(&self) -> core::Result<core::NewCallback> {
        let object = |field: &str, value: &Option<JsonObject>| {
            value
                .as_ref()
                .map(|j| j.parse(field))
                .transpose()
                .map(Option::unwrap_or_default)
        };
        Ok(core::NewCallback {
            to_number: self.to_number.clone(),
            scheduled_at: self.scheduled_at.parse("scheduled_at")?,
            source_session_id: self.source_session_id.clone(),
            agent_id: self.agent_id.clone(),
            phone_number_id: self.phone_number_id.clone(),
            from_number: self.from_number.clone(),
            reason: self.reason.clone(),
            instructions: self.instructions.clone(),
            summary: self.summary.clone(),
            pipeline_config: object("pipeline_config", &self.pipeline_config)?,
            metadata: object("metadata", &self.metadata)?,
            timezone: self.timezone.clone(),
            expires_at: parse_opt("expires_at", &self.expires_at)?,
            idempotency_key: self.idempotency_key.clone(),
        })
    }
}

/// A list request; filters combine with AND. `scheduled_after` is
/// inclusive, `scheduled_before` exclusive. `order` not given is
/// `CreatedDesc`, `limit` not given is 25 (1..=100, never clamped).
/// `cursor` is the `next_cursor` of the previous page of the same query.
#[derive(Debug, Clone, PartialEq, Default, uniffi::Record)]
pub struct ListQuery {
    #[uniffi(default = None)]
    pub status: Option<Status>,
    #[uniffi(default = None)]
    pub source_session_id: Option<String>,
    #[uniffi(default = None)]
    pub agent_id: Option<String>,
    #[uniffi(default = None)]
    pub to_number: Option<String>,
    #[uniffi(default = None)]
    pub scheduled_after: Option<Timestamp>,
    #[uniffi(default = None)]
    pub scheduled_before: Option<Timestamp>,
    #[uniffi(default = None)]
    pub order: Option<Order>,
    #[uniffi(default = None)]
    pub limit: Option<u32>,
    #[uniffi(default = None)]
    pub cursor: Option<String>,
}

impl ListQuery {
    pub(crate) fn to_core(&self) -> core::Result<core::ListQuery> {
        let defaults = core::ListQuery::default();
        Ok(core::ListQuery {
            status: self.status.map(Into::into),
            source_session_id: self.source_session_id.clone(),
            agent_id: self.agent_id.clone(),
            to_number: self.to_number.clone(),
            scheduled_after: parse_opt("scheduled_after", &self.scheduled_after)?,
            scheduled_before: parse_opt("scheduled_before", &self.scheduled_before)?,
            order: self.order.map_or(defaults.order, Into::into),
            limit: self.limit.unwrap_or(defaults.limit),
            cursor: self.cursor.clone(),
        })
    }
}

/// One page of a list; `next_cursor` is None on the last page.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Page {
    pub callbacks: Vec<Callback>,
    pub next_cursor: Option<String>,
}

impl From<core::Page> for Page {
    fn from(p: core::Page) -> Self {
        Page {
            callbacks: p.callbacks.into_iter().map(Into::into).collect(),
            next_cursor: p.next_cursor,
        }
    }
}

/// One entry of a callback's history: its creation or one transition.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct CallbackEvent {
    pub callback_id: String,
    pub action: EventAction,
    pub from: Option<Status>,
    pub to: Status,
    pub at: Timestamp,
    pub detail: Option<String>,
}

impl From<core::CallbackEvent> for CallbackEvent {
    fn from(e: core::CallbackEvent) -> Self {
        CallbackEvent {
            callback_id: e.callback_id,
            action: e.action.into(),
            from: e.from.map(Into::into),
            to: e.to.into(),
            at: e.at.into(),
            detail: e.detail,
        }
    }
}

/// An API key as listed; the token is never stored, only its hash.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ApiKey {
    pub id: String,
    pub organization_id: String,
    pub label: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

impl From<core::ApiKey> for ApiKey {
    fn from(k: core::ApiKey) -> Self {
        ApiKey {
            id: k.id,
            organization_id: k.organization_id,
            label: k.label,
            created_at: k.created_at.into(),
            revoked_at: opt_ts(k.revoked_at),
        }
    }
}

/// A freshly created key with its token, which is shown this once.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct CreatedApiKey {
    pub key: ApiKey,
    pub token: String,
}

impl From<core::CreatedApiKey> for CreatedApiKey {
    fn from(k: core::CreatedApiKey) -> Self {
        CreatedApiKey {
            key: k.key.into(),
            token: k.token,
        }
    }
}

/// What a dispatch run did: the callbacks it completed and those it failed.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct DispatchReport {
    pub dispatched: Vec<Callback>,
    pub failed: Vec<Callback>,
}

impl From<core::DispatchReport> for DispatchReport {
    fn from(r: core::DispatchReport) -> Self {
        DispatchReport {
            dispatched: r.dispatched.into_iter().map(Into::into).collect(),
            failed: r.failed.into_iter().map(Into::into).collect(),
        }
    }
}

/// How many of an organization's callbacks are in one status.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct StatusCount {
    pub status: Status,
    pub count: u64,
}

/// How to open a store. Not given: a 5 s busy timeout, `Durability.Full`,
/// the system clock, 10 connections. `clock`: a `ManualClock` the store
/// reads "now" from. `max_connections`: PostgreSQL only (ignored by SQLite,
/// whose store has one connection): the most connections the store keeps
/// open, so that up to this many of its threads work at once; at least 1.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct StoreOptions {
    #[uniffi(default = None)]
    pub busy_timeout: Option<Duration>,
    #[uniffi(default = None)]
    pub durability: Option<Durability>,
    #[uniffi(default = None)]
    pub clock: Option<Arc<ManualClock>>,
    #[uniffi(default = None)]
    pub max_connections: Option<u32>,
}

impl StoreOptions {
    pub(crate) fn to_core(options: Option<StoreOptions>) -> Result<core::StoreOptions> {
        let mut out = core::StoreOptions::default();
        let Some(options) = options else {
            return Ok(out);
        };
        if let Some(timeout) = options.busy_timeout {
            // SQLite takes the timeout as an i32 of milliseconds.
            if timeout.as_millis() > i32::MAX as u128 {
                return Err(core::Error::validation(
                    "busy_timeout",
                    format!(
                        "must be at most {} ms, got {} ms",
                        i32::MAX,
                        timeout.as_millis()
                    ),
                )
                .into());
            }
            out.busy_timeout = timeout;
        }
        if let Some(durability) = options.durability {
            out.durability = match durability {
                Durability::Full => core::Durability::Full,
                Durability::Normal => core::Durability::Normal,
            };
        }
        if let Some(clock) = options.clock {
            out.clock = Arc::new(clock.inner.clone());
        }
        if let Some(max_connections) = options.max_connections {
            out.max_connections = max_connections;
        }
        Ok(out)
    }
}
