//! Scheduled callbacks for AI voice agents, over an SQLite file or (cargo
//! feature `postgres`) a PostgreSQL database.
//!
//! An agent finishes a call, its analysis decides "call this person back on
//! Tuesday at 10", and that callback must be stored, listed, cancelled and
//! dispatched exactly once. This crate is the rules and the storage; the
//! bindings, the command and the HTTP server are thin layers over it.
//!
//! A calling policy (`Organization::set_calling_policy`, module `policy`)
//! keeps calls inside windows in the callee's local time, drops callbacks
//! past their deadline, and makes follow-up attempts (`Organization::retry`).
//!
//! ```
//! use callback_store::{ListQuery, NewCallback, Status, Store};
//! use chrono::{TimeZone, Utc};
//!
//! # fn main() -> Result<(), callback_store::Error> {
//! let store = Store::open_in_memory()?; // or Store::open("callbacks.db")
//! let acme = store.organization("org_acme")?;
//!
//! let tuesday = Utc.with_ymd_and_hms(2030, 3, 5, 10, 0, 0).unwrap();
//! let callback = acme.create(NewCallback {
//!     source_session_id: Some("sess_123".into()),
//!     reason: Some("asked to be called back after the meeting".into()),
//!     ..NewCallback::new("+12015551234", tuesday)
//! })?;
//! assert_eq!(callback.status, Status::Scheduled);
//!
//! let page = acme.list(&ListQuery {
//!     source_session_id: Some("sess_123".into()),
//!     ..ListQuery::default()
//! })?;
//! assert_eq!(page.callbacks.len(), 1);
//!
//! // A worker takes what is due and places the calls.
//! let report = store.dispatch_due(
//!     &|cb: &callback_store::Callback| Ok::<_, String>(format!("sess_for_{}", cb.id)),
//!     tuesday,
//!     100,
//! )?;
//! assert_eq!(report.dispatched[0].status, Status::Dispatched);
//! assert_eq!(acme.history(&callback.id)?.len(), 4); // create, claim_due, place_call, complete_dispatch
//! # Ok(())
//! # }
//! ```

mod auth;
mod calling;
mod claim;
mod copy;
mod cursor;
mod db;
mod dispatch;
mod error;
mod feed;
pub mod input;
mod json;
mod model;
mod organization;
pub mod policy;
mod schema;
mod stats;
mod status;
mod store;
mod time;
pub mod transitions;
pub mod validate;

pub use calling::EXPIRED;
pub use claim::Claim;
pub use copy::CopyReport;
pub use dispatch::{CallResult, Completion, DispatchOptions, Dispatcher, MAX_CONCURRENCY};
pub use error::{Error, ErrorBody, ErrorCode, FieldPath, PathSegment, Result};
pub use feed::{Change, ChangePage, Since, DEFAULT_CHANGES, MAX_CHANGES, MAX_WAIT};
pub use model::{
    ApiKey, Callback, CallbackEvent, CreatedApiKey, DispatchReport, EventAction, JsonObject,
    JsonObjectText, ListQuery, NewCallback, Order, Page, Status, DEFAULT_LIMIT, EXTENSION_KEYS,
    MAX_LIMIT,
};
pub use organization::Organization;
pub use policy::{tzdb_version, CallOutcome, CallingPolicy, CallingWindow, Weekday};
pub use stats::OrganizationStats;
pub use store::{Caller, Durability, Store, StoreOptions, DISPATCH_INTERRUPTED, MAX_CLAIM};
pub use time::{
    format as format_timestamp, max_timestamp, min_timestamp, parse as parse_timestamp, rfc3339,
    Clock, ManualClock, SystemClock, Timestamp,
};
pub use transitions::{Action, Outcome};

/// The README's Rust blocks are compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
