//! uniffi bindings of the callback store for Python, Kotlin and Swift.
//!
//! A thin layer over the `callback-store` crate: the same operations, with
//! records whose timestamps and JSON objects cross the FFI as text
//! (`types.rs`) and are parsed here, field by field, by the core's own
//! rules. No rule and no SQL lives here. Namespace `callback_store`.
//!
//! No panic crosses the FFI: every input is parsed into a `Result`, and the
//! core catches a panic of a dispatcher.

uniffi::setup_scaffolding!("callback_store");

mod batch;
mod error;
mod feed;
mod policy;
mod records;
mod store;
mod types;

pub use batch::{max_concurrency, Completion, CompletionOutcome, DispatchOptions, ItemError};
pub use error::{CallbackStoreError, DispatchError};
pub use feed::{
    default_changes, max_changes, max_wait, Change, ChangeObserver, ChangePage, ObserverError,
    Since, Watch,
};
pub use policy::{
    default_calling_policy, expired, tzdb_version, CallOutcome, CallingPolicy, CallingWindow,
    Weekday,
};
pub use records::{
    ApiKey, Callback, CallbackEvent, CreatedApiKey, DispatchReport, Durability, EventAction,
    ListQuery, NewCallback, Order, Page, Status, StatusCount, StoreOptions,
};
pub use store::{Claim, Dispatcher, ManualClock, Organization, Store};
pub use types::{JsonObject, Timestamp};

use callback_store as core;

/// The limit of a list when none is given (25).
#[uniffi::export]
pub fn default_limit() -> u32 {
    core::DEFAULT_LIMIT
}

/// The largest limit of a list (100).
#[uniffi::export]
pub fn max_limit() -> u32 {
    core::MAX_LIMIT
}

/// The most callbacks one `claim_due` may take.
#[uniffi::export]
pub fn max_claim() -> u32 {
    core::MAX_CLAIM
}

/// The failure_cause `recover_stale` records: `dispatch_interrupted`.
#[uniffi::export]
pub fn dispatch_interrupted() -> String {
    core::DISPATCH_INTERRUPTED.to_owned()
}

/// The earliest timestamp the store accepts (1970-01-01T00:00:00Z).
#[uniffi::export]
pub fn min_timestamp() -> Timestamp {
    core::min_timestamp().into()
}

/// The latest timestamp the store accepts (9999-12-31T23:59:59.999999Z).
#[uniffi::export]
pub fn max_timestamp() -> Timestamp {
    core::max_timestamp().into()
}
