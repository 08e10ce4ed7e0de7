//! The records of the batched calls: `Store.complete_many` (several
//! completions, one transaction) and `Store.dispatch_due_with` (calls placed
//! on several threads).
//!
//! A batch answers with ids and error codes, not records: a drain that
//! completes what it claimed has already read each callback from its claim,
//! and lifting a second full record per callback in Python or Kotlin costs
//! more than the store's own work on it (bench/README.md, "Per call").

use std::sync::Arc;

use callback_store as core;

use crate::store::Claim;

/// One claimed call that went through, for `Store.complete_many`: the claim
/// (from `claim_due`, `Organization.dispatch` or `claim_by_token`) and the
/// session id of the call that was placed.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Completion {
    pub claim: Arc<Claim>,
    pub created_session_id: String,
}

/// What became of one item of `Store.complete_many`, in the order given:
/// `error` is None when the callback is now dispatched, else why this item
/// was refused (the others were not).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CompletionOutcome {
    /// The claimed callback's id.
    pub id: String,
    pub error: Option<ItemError>,
}

/// Why one item of a batch was refused: the code and the message the same
/// call alone would have raised (`INVALID_TRANSITION` for a stale claim,
/// `VALIDATION_ERROR` naming `completions[i].created_session_id`, ...).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ItemError {
    /// The stable code, e.g. `INVALID_TRANSITION`.
    pub code: String,
    /// The human message.
    pub reason: String,
}

impl From<core::Error> for ItemError {
    fn from(err: core::Error) -> Self {
        ItemError {
            code: err.code().as_str().to_owned(),
            reason: err.to_string(),
        }
    }
}

/// How `Store.dispatch_due_with` places the calls it claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct DispatchOptions {
    /// How many calls are placed at once (1 to `max_concurrency()`), each on
    /// a thread of its own, so that a dialer whose calls take seconds keeps
    /// that many lines busy. The dispatcher is called from those threads.
    #[uniffi(default = 1)]
    pub concurrency: u32,
}

impl From<DispatchOptions> for core::DispatchOptions {
    fn from(options: DispatchOptions) -> Self {
        core::DispatchOptions {
            concurrency: options.concurrency,
        }
    }
}

/// The most calls `Store.dispatch_due_with` places at once (256).
#[uniffi::export]
pub fn max_concurrency() -> u32 {
    core::MAX_CONCURRENCY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_error_carries_the_code_and_message_of_the_core_error() {
        let err = core::Error::validation("created_session_id", "must not be empty")
            .within_item("completions", 2);
        let message = err.to_string();
        let item = ItemError::from(err);
        assert_eq!(item.code, "VALIDATION_ERROR");
        assert_eq!(item.reason, message);
        assert!(
            item.reason.starts_with("completions[2].created_session_id"),
            "{}",
            item.reason
        );
    }
}
