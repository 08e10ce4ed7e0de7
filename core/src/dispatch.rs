//! Placing calls: the `Dispatcher` a dialer implements, and the helper that
//! runs claim → place_call → complete or fail.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::claim::Claim;
use crate::error::{ErrorCode, Result};
use crate::model::{Callback, DispatchReport, Status};
use crate::organization::{transition, Request};
use crate::policy::CallOutcome;
use crate::store::Store;
use crate::time::Timestamp;
use crate::validate::{self, MAX_TEXT_BYTES};

/// How a placed call ended, for dialers that can tell more than success
/// or failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallResult {
    /// The call went through: the session id of the new call.
    Placed(String),
    /// The call was placed and did not reach the person: the callback fails
    /// with this outcome as its cause, and gets a follow-up attempt when
    /// its calling policy retries this outcome.
    NotReached(CallOutcome),
    /// The call could not be placed: the message becomes the failure cause
    /// (a follow-up when the policy retries `failed`).
    Failed(String),
}

/// Places the phone call of a claimed callback.
pub trait Dispatcher {
    /// Returns the session id of the new call, or a message saying why the
    /// call could not be placed (it becomes the callback's failure_cause).
    fn place_call(&self, callback: &Callback) -> std::result::Result<String, String>;

    /// The same, telling a call nobody answered from one that failed. By
    /// default, `place_call`'s answer.
    fn place_call_for_result(&self, callback: &Callback) -> CallResult {
        match self.place_call(callback) {
            Ok(session) => CallResult::Placed(session),
            Err(message) => CallResult::Failed(message),
        }
    }
}

impl<F> Dispatcher for F
where
    F: Fn(&Callback) -> std::result::Result<String, String>,
{
    fn place_call(&self, callback: &Callback) -> std::result::Result<String, String> {
        self(callback)
    }
}

impl Store {
    /// Claims up to `limit` callbacks due at `now` and places each through
    /// `dispatcher`, completing or failing it. A callback is placed at most
    /// once: if this process dies midway, what it claimed and did not finish
    /// is left `dispatching`, for `recover_stale` to fail.
    pub fn dispatch_due(
        &self,
        dispatcher: &dyn Dispatcher,
        now: Timestamp,
        limit: u32,
    ) -> Result<DispatchReport> {
        let mut report = DispatchReport::default();
        for claim in self.claim_due(now, limit)? {
            let done = match self.place_call(dispatcher, &claim) {
                Ok(done) => done,
                // recover_stale failed this callback while its call was being
                // placed (a call longer than the stale horizon): it stays as
                // recovery left it, and the other claims still get placed.
                Err(e) if e.code() == ErrorCode::InvalidTransition => self
                    .read(|dao| dao.get(None, claim.id()))?
                    .map(|stored| stored.callback)
                    .ok_or(e)?,
                Err(e) => return Err(e),
            };
            match done.status {
                Status::Dispatched => report.dispatched.push(done),
                _ => report.failed.push(done),
            }
        }
        Ok(report)
    }

    /// Places the call of a claim (from `claim_due`, `Organization::dispatch`
    /// or `claim_by_token`) and records the outcome.
    ///
    /// The claim is spent first, in one guarded statement (the callback is
    /// `dispatching`, its token is this claim's, the claim is unspent), and
    /// the dialer runs only if that statement won: a claim already placed,
    /// a claim whose callback was recovered or finished since, or a forged
    /// token is refused with INVALID_TRANSITION and nobody is called. A
    /// process killed after the spend leaves the callback `dispatching`, for
    /// `recover_stale` to fail. An error, an unusable session id or a panic
    /// in the dispatcher ends in `failed`, never in a callback stuck
    /// `dispatching`.
    pub fn place_call(&self, dispatcher: &dyn Dispatcher, claim: &Claim) -> Result<Callback> {
        let token = claim.token();
        let spent = transition(self, None, claim.id(), Request::PlaceCall { claim: token })?;
        let callback = spent.callback;
        let placed = catch_unwind(AssertUnwindSafe(|| {
            dispatcher.place_call_for_result(&callback)
        }));
        let mut outcome = CallOutcome::Failed;
        let failure_cause = match placed {
            Ok(CallResult::Placed(session)) => {
                match validate::identifier("created_session_id", &session) {
                    Ok(()) => {
                        let request = Request::Complete {
                            created_session_id: &session,
                            claim: Some(token),
                        };
                        return Ok(transition(self, None, &callback.id, request)?.callback);
                    }
                    Err(e) => format!("the dispatcher returned an unusable session id: {e}"),
                }
            }
            Ok(CallResult::NotReached(how)) => {
                outcome = how;
                how.as_str().to_owned()
            }
            Ok(CallResult::Failed(message)) if message.is_empty() => {
                "the dispatcher failed without a message".to_owned()
            }
            Ok(CallResult::Failed(message)) => message,
            Err(panic) => format!("the dispatcher panicked: {}", panic_message(&*panic)),
        };
        let failure_cause = sanitize(&failure_cause);
        let request = Request::Fail {
            failure_cause: &failure_cause,
            claim: Some(token),
            outcome,
        };
        Ok(transition(self, None, &callback.id, request)?.callback)
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned())
}

/// A dialer's message made storable: no NUL, at most 64 KiB.
fn sanitize(message: &str) -> String {
    let mut text = message.replace('\0', "\u{FFFD}");
    if text.len() > MAX_TEXT_BYTES {
        let mut cut = MAX_TEXT_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}
