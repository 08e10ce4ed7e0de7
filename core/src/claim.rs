//! Claims: the right to place one callback's call, handed out by the store.
//!
//! Why a claim is a type of its own, and not a `Callback` with a status:
//! a callback record is data anyone can hold, copy, build or keep after it
//! went stale, and a dialer that took any record would call whoever it
//! names (twice, if given it twice). A claim can only come from the store
//! (`claim_due`, `Organization::dispatch`, `Store::claim_by_token`), carries
//! a random 128-bit token stored with the callback when it entered
//! `dispatching`, and `Store::place_call` spends it in one guarded statement
//! before the dialer runs. A second spend, a claim whose callback was
//! recovered or finished, and a token that is not the stored one all lose
//! that statement, so the dialer is never called for them.

use serde::Serialize;

use crate::error::Error;
use crate::model::{Callback, Status};
use crate::transitions::Action;

/// A live claim on one `dispatching` callback: the callback as claimed and
/// its fencing token. There is no public constructor, so a caller cannot
/// turn a record into a claim:
///
/// ```compile_fail
/// fn forge(callback: callback_store::Callback) -> callback_store::Claim {
///     callback_store::Claim { callback, token: "0".repeat(32) } // private fields
/// }
/// ```
///
/// nor read one back from JSON (`Claim` serializes, it does not deserialize):
///
/// ```compile_fail
/// let claim: callback_store::Claim = serde_json::from_str("{}").unwrap();
/// ```
///
/// To hand a claim to another process, send its id and token; that process
/// gets the claim back with `Store::claim_by_token`, which checks the token.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Claim {
    callback: Callback,
    token: String,
}

impl Claim {
    pub(crate) fn new(callback: Callback, token: String) -> Claim {
        Claim { callback, token }
    }

    /// The callback as it was when the claim was handed out.
    pub fn callback(&self) -> &Callback {
        &self.callback
    }

    /// The claimed callback's id.
    pub fn id(&self) -> &str {
        &self.callback.id
    }

    /// The fencing token: 32 lowercase hex digits. Pass it to
    /// `complete_dispatch` / `fail_dispatch` so that a stale claim cannot
    /// finish a callback another claim owns, or to another process, which
    /// gets the claim back with `Store::claim_by_token`.
    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn into_callback(self) -> Callback {
        self.callback
    }
}

/// The claim columns of a stored callback: its token (None before its first
/// claim) and whether that claim was spent.
pub(crate) struct ClaimColumns {
    pub token: Option<String>,
    pub spent: bool,
}

/// Why a claim with `token` cannot act on a callback in `status` with
/// these claim columns, or None when it can. `to_place` asks for a claim
/// that can still place its call (unspent); completing or failing accepts
/// a spent one.
pub(crate) fn stale_reason(
    status: Status,
    stored: Option<&ClaimColumns>,
    token: &str,
    to_place: bool,
) -> Option<String> {
    if status != Status::Dispatching {
        return Some(format!(
            "the callback is {status} now (a claim only acts on a dispatching callback)"
        ));
    }
    match stored {
        Some(c) if c.token.as_deref() == Some(token) => (c.spent && to_place).then(|| {
            "this claim was already spent on a call (a claim places at most one call)".to_owned()
        }),
        _ => Some(
            "the token is not the callback's claim (a forged token, or a claim older than \
             the current one)"
                .to_owned(),
        ),
    }
}

/// The error of a claim that `stale_reason` refused.
pub(crate) fn stale(id: &str, action: Action, reason: String) -> Error {
    Error::StaleClaim {
        id: id.to_owned(),
        action,
        reason,
    }
}
