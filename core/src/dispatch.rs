//! Placing calls: the `Dispatcher` a dialer implements, and the helper that
//! runs claim → place_call → complete or fail.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::claim::Claim;
use crate::error::{Error, ErrorCode, Result};
use crate::model::{Callback, DispatchReport, Status};
use crate::organization::{transition, transition_in, Request};
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

/// How `Store::dispatch_due_with` places the calls it claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DispatchOptions {
    /// How many calls are placed at once (1 to `MAX_CONCURRENCY`), each on
    /// a thread of its own. Their spends and completions share commits
    /// (group commit, on SQLite).
    pub concurrency: u32,
}

impl Default for DispatchOptions {
    fn default() -> Self {
        DispatchOptions { concurrency: 1 }
    }
}

/// The most calls `dispatch_due_with` places at once.
pub const MAX_CONCURRENCY: u32 = 256;

/// One claimed call that went through, for `Store::complete_many`.
#[derive(Debug, Clone, Copy)]
pub struct Completion<'a> {
    pub claim: &'a Claim,
    /// The session id of the call that was placed.
    pub created_session_id: &'a str,
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
        let claims = self.claim_due(now, limit)?;
        let mut done = Vec::with_capacity(claims.len());
        for claim in &claims {
            done.push(self.place_claimed(dispatcher, claim)?);
        }
        Ok(report(done))
    }

    /// `dispatch_due`, placing up to `options.concurrency` calls at once
    /// (a dialer whose calls take seconds keeps that many lines busy). The
    /// report lists callbacks in claim order. After an error (a storage
    /// error: nothing is placed twice), no further call is started, the
    /// calls under way finish, and the error is returned; the claims not
    /// placed stay `dispatching` for `recover_stale`.
    pub fn dispatch_due_with(
        &self,
        dispatcher: &(dyn Dispatcher + Sync),
        now: Timestamp,
        limit: u32,
        options: &DispatchOptions,
    ) -> Result<DispatchReport> {
        if !(1..=MAX_CONCURRENCY).contains(&options.concurrency) {
            return Err(Error::validation(
                "concurrency",
                format!(
                    "must be between 1 and {MAX_CONCURRENCY}, got {}",
                    options.concurrency
                ),
            ));
        }
        let claims = self.claim_due(now, limit)?;
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let workers = (options.concurrency as usize).min(claims.len());
        let placed: Vec<Vec<(usize, Result<Callback>)>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    s.spawn(|| {
                        let mut mine = Vec::new();
                        while !stop.load(Ordering::SeqCst) {
                            let i = next.fetch_add(1, Ordering::SeqCst);
                            let Some(claim) = claims.get(i) else { break };
                            let done = self.place_claimed(dispatcher, claim);
                            if done.is_err() {
                                stop.store(true, Ordering::SeqCst);
                            }
                            mine.push((i, done));
                        }
                        mine
                    })
                })
                .collect();
            // place_claimed catches the dialer's panics: a worker's own
            // panic is a bug of the store, passed on to the caller.
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        let mut placed: Vec<_> = placed.into_iter().flatten().collect();
        placed.sort_by_key(|(i, _)| *i);
        let done = placed
            .into_iter()
            .map(|(_, done)| done)
            .collect::<Result<Vec<_>>>()?;
        Ok(report(done))
    }

    /// Places one claimed call for `dispatch_due`: a claim that recovery
    /// failed meanwhile is reported as recovery left it.
    fn place_claimed(&self, dispatcher: &dyn Dispatcher, claim: &Claim) -> Result<Callback> {
        match self.place_call(dispatcher, claim) {
            // recover_stale failed this callback while its call was being
            // placed (a call longer than the stale horizon): it stays as
            // recovery left it, and the other claims still get placed.
            Err(e) if e.code() == ErrorCode::InvalidTransition => self
                .read(|dao| dao.get(None, claim.id()))?
                .map(|stored| stored.callback)
                .ok_or(e),
            other => other,
        }
    }

    /// Completes several claimed calls in one write transaction, for a
    /// dialer that places calls itself and reports them in batches: one
    /// commit instead of one per call. Each item is checked and refused on
    /// its own, as `complete_dispatch` with the claim's token would (a stale
    /// claim, an unusable session id): its answer is its error, and the
    /// others still complete. A storage error fails the whole batch, which
    /// leaves every callback `dispatching`.
    pub fn complete_many(&self, completions: &[Completion<'_>]) -> Result<Vec<Result<Callback>>> {
        let checked: Vec<Result<()>> = completions
            .iter()
            .enumerate()
            .map(|(i, c)| {
                validate::identifier("created_session_id", c.created_session_id)
                    .map_err(|e| e.within_item("completions", i))
            })
            .collect();
        self.write(|dao| {
            let mut answers = Vec::with_capacity(completions.len());
            for (completion, checked) in completions.iter().zip(&checked) {
                if let Err(e) = checked {
                    answers.push(Err(e.clone()));
                    continue;
                }
                let claim = completion.claim;
                let request = Request::Complete {
                    created_session_id: completion.created_session_id,
                    claim: Some(claim.token()),
                };
                match transition_in(self, dao, None, claim.id(), request) {
                    Ok(applied) => answers.push(Ok(applied.callback)),
                    Err(e @ Error::Storage { .. }) => return Err(e),
                    Err(refused) => answers.push(Err(refused)),
                }
            }
            Ok(answers)
        })
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

fn report(done: Vec<Callback>) -> DispatchReport {
    let mut report = DispatchReport::default();
    for callback in done {
        match callback.status {
            Status::Dispatched => report.dispatched.push(callback),
            _ => report.failed.push(callback),
        }
    }
    report
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
