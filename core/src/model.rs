//! The records users hold: callbacks, their history, queries and pages, API keys.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;
pub use crate::json::JsonObjectText;
use crate::time::{rfc3339, Timestamp};
use crate::transitions::Action;

/// A JSON object (`metadata`, `pipeline_config`); key order is preserved.
pub type JsonObject = serde_json::Map<String, serde_json::Value>;

pub use crate::status::Status;

impl FromStr for Status {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Status::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| {
            Error::validation(
                "status",
                format!(
                    "must be one of scheduled, dispatching, dispatched, cancelled, failed; got {s:?}"
                ),
            )
        })
    }
}

/// A scheduled callback: the API reference's object, key for key, in its order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Callback {
    pub id: String,
    pub organization_id: String,
    pub source_session_id: Option<String>,
    pub created_session_id: Option<String>,
    pub agent_id: Option<String>,
    pub phone_number_id: Option<String>,
    pub to_number: String,
    pub from_number: Option<String>,
    #[serde(with = "rfc3339")]
    pub scheduled_at: Timestamp,
    pub status: Status,
    pub reason: Option<String>,
    pub instructions: Option<String>,
    pub summary: Option<String>,
    /// Kept as the stored JSON text; `to_map()` parses it.
    pub pipeline_config: JsonObjectText,
    pub metadata: JsonObjectText,
    pub failure_cause: Option<String>,
    #[serde(with = "rfc3339::option")]
    pub attempted_at: Option<Timestamp>,
    #[serde(with = "rfc3339::option")]
    pub dispatched_at: Option<Timestamp>,
    #[serde(with = "rfc3339::option")]
    pub cancelled_at: Option<Timestamp>,
    #[serde(with = "rfc3339")]
    pub created_at: Timestamp,
    #[serde(with = "rfc3339")]
    pub updated_at: Timestamp,
    // The extension keys of DESIGN.md, after the reference's 21. Absent
    // from a record of the reference, they read as a first attempt with no
    // zone or deadline of its own.
    /// The callee's IANA time zone; None: its agent's or organization's
    /// calling policy gives the zone.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Still `scheduled` at this instant, it is never dialed: it fails with
    /// cause `expired`.
    #[serde(default, with = "rfc3339::option")]
    pub expires_at: Option<Timestamp>,
    /// 1 for a first call, 2 for its first follow-up, …
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// The callback this attempt follows up (`retry`), or None.
    #[serde(default)]
    pub previous_callback_id: Option<String>,
}

fn first_attempt() -> u32 {
    1
}

/// The record's keys beyond the API reference's 21, in order.
pub const EXTENSION_KEYS: [&str; 4] = ["timezone", "expires_at", "attempt", "previous_callback_id"];

/// What a caller gives to create a callback; the store fills in the rest.
///
/// `idempotency_key`: creating again with the same key returns the callback
/// the first call created; the same key with a different payload is a CONFLICT.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCallback {
    pub to_number: String,
    #[serde(with = "rfc3339")]
    pub scheduled_at: Timestamp,
    #[serde(default)]
    pub source_session_id: Option<String>,
    #[serde(default)]
    pub agent_id: Option<String>,
    #[serde(default)]
    pub phone_number_id: Option<String>,
    #[serde(default)]
    pub from_number: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub instructions: Option<String>,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub pipeline_config: JsonObject,
    #[serde(default)]
    pub metadata: JsonObject,
    /// The callee's IANA time zone (`America/New_York`); None: the calling
    /// policy's.
    #[serde(default)]
    pub timezone: Option<String>,
    /// The deadline: a callback still scheduled then is never dialed.
    /// Must be later than scheduled_at.
    #[serde(default, with = "rfc3339::option")]
    pub expires_at: Option<Timestamp>,
    #[serde(default, skip_serializing)]
    pub idempotency_key: Option<String>,
}

impl NewCallback {
    /// The two required fields; set the others with struct update syntax.
    pub fn new(to_number: impl Into<String>, scheduled_at: Timestamp) -> Self {
        NewCallback {
            to_number: to_number.into(),
            scheduled_at,
            ..NewCallback::default()
        }
    }
}

/// The order of a list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Newest first (the API's default).
    #[default]
    CreatedDesc,
    /// Soonest scheduled first.
    ScheduledAsc,
}

impl Order {
    pub fn as_str(self) -> &'static str {
        match self {
            Order::CreatedDesc => "created_desc",
            Order::ScheduledAsc => "scheduled_asc",
        }
    }
}

impl FromStr for Order {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        [Order::CreatedDesc, Order::ScheduledAsc]
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| {
                Error::validation(
                    "order",
                    format!("must be created_desc or scheduled_asc; got {s:?}"),
                )
            })
    }
}

pub const DEFAULT_LIMIT: u32 = 25;
pub const MAX_LIMIT: u32 = 100;

/// A list request. Filters combine with AND. `scheduled_after` is inclusive,
/// `scheduled_before` exclusive. `cursor` is the `next_cursor` of the previous
/// page of the same query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub status: Option<Status>,
    pub source_session_id: Option<String>,
    pub agent_id: Option<String>,
    pub to_number: Option<String>,
    pub scheduled_after: Option<Timestamp>,
    pub scheduled_before: Option<Timestamp>,
    pub order: Order,
    pub limit: u32,
    pub cursor: Option<String>,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            status: None,
            source_session_id: None,
            agent_id: None,
            to_number: None,
            scheduled_after: None,
            scheduled_before: None,
            order: Order::default(),
            limit: DEFAULT_LIMIT,
            cursor: None,
        }
    }
}

/// One page of a list: `{"callbacks": [...], "next_cursor": "..." | null}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    pub callbacks: Vec<Callback>,
    pub next_cursor: Option<String>,
}

/// What an event of a callback's history records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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
    /// Still scheduled at its deadline: failed, never dialed.
    Expire,
    /// A follow-up attempt was created; `detail` names it.
    Retry,
}

impl EventAction {
    pub fn as_str(self) -> &'static str {
        match self {
            EventAction::Create => "create",
            EventAction::Cancel => Action::Cancel.as_str(),
            EventAction::Dispatch => Action::Dispatch.as_str(),
            EventAction::ClaimDue => Action::ClaimDue.as_str(),
            EventAction::CompleteDispatch => Action::CompleteDispatch.as_str(),
            EventAction::FailDispatch => Action::FailDispatch.as_str(),
            EventAction::Reschedule => Action::Reschedule.as_str(),
            EventAction::RecoverStale => Action::RecoverStale.as_str(),
            EventAction::PlaceCall => Action::PlaceCall.as_str(),
            EventAction::Expire => Action::Expire.as_str(),
            EventAction::Retry => Action::Retry.as_str(),
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        use EventAction::*;
        [
            Create,
            Cancel,
            Dispatch,
            ClaimDue,
            CompleteDispatch,
            FailDispatch,
            Reschedule,
            RecoverStale,
            PlaceCall,
            Expire,
            Retry,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

impl From<Action> for EventAction {
    fn from(action: Action) -> Self {
        match action {
            Action::Cancel => EventAction::Cancel,
            Action::Dispatch => EventAction::Dispatch,
            Action::ClaimDue => EventAction::ClaimDue,
            Action::CompleteDispatch => EventAction::CompleteDispatch,
            Action::FailDispatch => EventAction::FailDispatch,
            Action::Reschedule => EventAction::Reschedule,
            Action::RecoverStale => EventAction::RecoverStale,
            Action::PlaceCall => EventAction::PlaceCall,
            Action::Expire => EventAction::Expire,
            Action::Retry => EventAction::Retry,
        }
    }
}

/// One entry of a callback's history: its creation or one transition.
/// `detail` holds the cancel reason, the failure cause, the created session
/// or the previous scheduled_at of a reschedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallbackEvent {
    pub callback_id: String,
    pub action: EventAction,
    pub from: Option<Status>,
    pub to: Status,
    #[serde(with = "rfc3339")]
    pub at: Timestamp,
    pub detail: Option<String>,
}

/// An API key as listed: the token itself is never stored, only its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub organization_id: String,
    pub label: String,
    #[serde(with = "rfc3339")]
    pub created_at: Timestamp,
    #[serde(with = "rfc3339::option")]
    pub revoked_at: Option<Timestamp>,
}

/// A freshly created key with its token, which is shown this once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedApiKey {
    pub key: ApiKey,
    pub token: String,
}

/// What a dispatch run did: the callbacks it completed and those it failed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DispatchReport {
    pub dispatched: Vec<Callback>,
    pub failed: Vec<Callback>,
}
