//! The objects: Store, Organization, ManualClock, and the foreign Dispatcher.

use std::sync::Arc;
use std::time::Duration;

use callback_store as core;

use crate::batch::{Completion, CompletionOutcome, DispatchOptions, ItemError};
use crate::error::{DispatchError, Result};
use crate::feed::{self, ChangeObserver, ChangePage, Since, Watch};
use crate::policy::{CallOutcome, CallingPolicy};
use crate::records::{
    ApiKey, Callback, CallbackEvent, CreatedApiKey, DispatchReport, ListQuery, NewCallback, Page,
    StatusCount, StoreOptions,
};
use crate::types::Timestamp;

/// A callback store over one SQLite file (or memory), or a PostgreSQL
/// database in builds with the backend (the Python wheel; not the Kotlin and
/// Swift libraries). Safe to share between threads; several processes may
/// open the same file or database. The database is
/// closed when the store and every Organization taken from it are released
/// (Kotlin/Swift: `close()`/`use {}` or going out of scope).
#[derive(Debug, uniffi::Object)]
pub struct Store {
    inner: core::Store,
}

#[uniffi::export]
impl Store {
    /// Opens (creating if needed) the store at `path` and applies pending
    /// migrations. A file migrated by a newer version is a SCHEMA_ERROR.
    /// A `postgres://` or `postgresql://` URL opens that PostgreSQL database
    /// (in the schema its `search_path` names); a build without the backend
    /// refuses it with a VALIDATION_ERROR.
    #[uniffi::constructor(default(options = None))]
    pub fn open(path: String, options: Option<StoreOptions>) -> Result<Arc<Store>> {
        let options = StoreOptions::to_core(options)?;
        Ok(Arc::new(Store {
            inner: core::Store::open_with(path, options)?,
        }))
    }

    /// A private store in memory, gone when it is released.
    #[uniffi::constructor(default(options = None))]
    pub fn open_in_memory(options: Option<StoreOptions>) -> Result<Arc<Store>> {
        let options = StoreOptions::to_core(options)?;
        Ok(Arc::new(Store {
            inner: core::Store::open_in_memory_with(options)?,
        }))
    }

    /// A handle on one organization's callbacks.
    pub fn organization(&self, organization_id: String) -> Result<Arc<Organization>> {
        Ok(Arc::new(Organization {
            inner: self.inner.organization(&organization_id)?,
        }))
    }

    /// The organization of a token given as `Bearer <token>` or bare;
    /// missing, unknown and revoked tokens are UNAUTHORIZED.
    pub fn authenticate(&self, authorization: String) -> Result<Arc<Organization>> {
        Ok(Arc::new(Organization {
            inner: self.inner.authenticate(&authorization)?,
        }))
    }

    /// Creates an API key; its token is in the answer and nowhere else.
    pub fn create_api_key(&self, organization_id: String, label: String) -> Result<CreatedApiKey> {
        Ok(self.inner.create_api_key(&organization_id, &label)?.into())
    }

    pub fn list_api_keys(&self, organization_id: String) -> Result<Vec<ApiKey>> {
        Ok(map(self.inner.list_api_keys(&organization_id)?))
    }

    /// Revokes a key at once; revoking it again changes nothing.
    pub fn revoke_api_key(&self, key_id: String) -> Result<ApiKey> {
        Ok(self.inner.revoke_api_key(&key_id)?.into())
    }

    /// The store's clock, at the microseconds it stores.
    pub fn now(&self) -> Timestamp {
        self.inner.now().into()
    }

    /// Takes up to `limit` callbacks due at `now` (scheduled_at <= now),
    /// oldest first, across all organizations, marks them dispatching and
    /// hands out a claim on each: place it with `place_call`, or place the
    /// call yourself and complete or fail it with the claim's token.
    pub fn claim_due(&self, now: Timestamp, limit: u32) -> Result<Vec<Arc<Claim>>> {
        Ok(self
            .inner
            .claim_due(now.parse("now")?, limit)?
            .into_iter()
            .map(Claim::wrap)
            .collect())
    }

    /// The live claim on callback `id` whose token is `token`: for a claim
    /// passed to another process as id and token. A spent, stale or forged
    /// token is INVALID_TRANSITION.
    pub fn claim_by_token(&self, id: String, token: String) -> Result<Arc<Claim>> {
        Ok(Claim::wrap(self.inner.claim_by_token(&id, &token)?))
    }

    /// Fails, with cause `dispatch_interrupted`, every callback dispatching
    /// since before `now - older_than`.
    pub fn recover_stale(&self, now: Timestamp, older_than: Duration) -> Result<Vec<Callback>> {
        Ok(map(self
            .inner
            .recover_stale(now.parse("now")?, older_than)?))
    }

    /// The deadline sweep: fails, with cause `expired`, up to `limit`
    /// callbacks still scheduled at their `expires_at` (<= `now`), across
    /// all organizations; they are never dialed. `claim_due` expires the
    /// ones it meets too.
    pub fn expire_overdue(&self, now: Timestamp, limit: u32) -> Result<Vec<Callback>> {
        Ok(map(self.inner.expire_overdue(now.parse("now")?, limit)?))
    }

    /// Deletes finished callbacks last updated before `before`, with their
    /// history; returns how many.
    pub fn prune(&self, before: Timestamp) -> Result<u64> {
        Ok(self.inner.prune(before.parse("before")?)?)
    }

    /// Claims up to `limit` callbacks due at `now` and places each through
    /// `dispatcher`, completing or failing it. An exception in `place_call`
    /// fails the callback with the exception's message as failure_cause.
    pub fn dispatch_due(
        &self,
        dispatcher: Arc<dyn Dispatcher>,
        now: Timestamp,
        limit: u32,
    ) -> Result<DispatchReport> {
        let adapter = Foreign(dispatcher.as_ref());
        Ok(self
            .inner
            .dispatch_due(&adapter, now.parse("now")?, limit)?
            .into())
    }

    /// `dispatch_due`, placing up to `options.concurrency` calls at once,
    /// each on a thread of its own: the dispatcher is called from several
    /// threads at a time and must be safe to share between them. The report
    /// lists callbacks in claim order. A concurrency outside 1 to
    /// `max_concurrency()` is a VALIDATION_ERROR naming `concurrency`. After
    /// a storage error no further call is started, the calls under way
    /// finish, and the error is raised; the claims not placed stay
    /// dispatching, for `recover_stale`.
    pub fn dispatch_due_with(
        &self,
        dispatcher: Arc<dyn Dispatcher>,
        now: Timestamp,
        limit: u32,
        options: DispatchOptions,
    ) -> Result<DispatchReport> {
        // `dyn Dispatcher` is Send + Sync (the trait's bounds): the adapter
        // holding a reference to it may be shared by the core's threads.
        let adapter = Foreign(dispatcher.as_ref());
        Ok(self
            .inner
            .dispatch_due_with(&adapter, now.parse("now")?, limit, &options.into())?
            .into())
    }

    /// Completes several claimed calls in one transaction (one commit
    /// instead of one per call), for a dialer that places calls itself and
    /// reports them in batches. Each item is checked on its own, as
    /// `complete_dispatch` with the claim's token would check it: a stale
    /// claim or an unusable session id is refused in its outcome, and the
    /// others still complete. A storage error fails the whole batch and
    /// leaves every callback dispatching. Answers ids, not records: read the
    /// callback from its claim (`Claim.callback()`) or `Organization.get`.
    pub fn complete_many(&self, completions: Vec<Completion>) -> Result<Vec<CompletionOutcome>> {
        let batch: Vec<core::Completion<'_>> = completions
            .iter()
            .map(|c| core::Completion {
                claim: &c.claim.inner,
                created_session_id: &c.created_session_id,
            })
            .collect();
        let answers = self.inner.complete_many(&batch)?;
        Ok(completions
            .iter()
            .zip(answers)
            .map(|(c, answer)| CompletionOutcome {
                id: c.claim.inner.id().to_owned(),
                error: answer.err().map(ItemError::from),
            })
            .collect())
    }

    /// Every organization's changes after `since` (for operators), as
    /// `Organization.changes`: each change names its `organization_id`. Its
    /// cursors are the store-wide feed's; an organization's are refused.
    pub fn changes(&self, since: Since, limit: u32, wait: Duration) -> Result<ChangePage> {
        Ok(self.inner.changes(&since.into(), limit, wait)?.into())
    }

    /// Places the call of a claim (from `claim_due`, `Organization.dispatch`
    /// or `claim_by_token`) and records the outcome. The claim is spent
    /// before the dispatcher is called: a claim already placed, a stale
    /// claim or a forged token is INVALID_TRANSITION and nobody is called.
    pub fn place_call(
        &self,
        dispatcher: Arc<dyn Dispatcher>,
        claim: Arc<Claim>,
    ) -> Result<Callback> {
        let adapter = Foreign(dispatcher.as_ref());
        Ok(self.inner.place_call(&adapter, &claim.inner)?.into())
    }
}

/// One organization's callbacks; every read and write is scoped to it.
#[derive(Debug, uniffi::Object)]
pub struct Organization {
    inner: core::Organization,
}

#[uniffi::export]
impl Organization {
    pub fn id(&self) -> String {
        self.inner.id().to_owned()
    }

    /// Creates a scheduled callback.
    pub fn create(&self, callback: NewCallback) -> Result<Callback> {
        Ok(self.inner.create(callback.to_core()?)?.into())
    }

    /// Creates several callbacks in one transaction: all of them or none.
    pub fn create_many(&self, callbacks: Vec<NewCallback>) -> Result<Vec<Callback>> {
        Ok(map(self.inner.create_many(to_core_batch(&callbacks)?)?))
    }

    /// `create_many`, answering only the callbacks' ids, in the order
    /// given: for a scheduler that does not read the records back (each
    /// record lifted in Python or Kotlin costs more than storing it).
    pub fn create_many_returning_ids(&self, callbacks: Vec<NewCallback>) -> Result<Vec<String>> {
        let created = self.inner.create_many(to_core_batch(&callbacks)?)?;
        Ok(created.into_iter().map(|callback| callback.id).collect())
    }

    pub fn get(&self, id: String) -> Result<Callback> {
        Ok(self.inner.get(&id)?.into())
    }

    /// One page of callbacks; follow `next_cursor` for the next.
    #[uniffi::method(default(query = None))]
    pub fn list(&self, query: Option<ListQuery>) -> Result<Page> {
        let query = query.unwrap_or_default().to_core()?;
        Ok(self.inner.list(&query)?.into())
    }

    /// Cancels a scheduled callback; a cancelled one is returned unchanged.
    #[uniffi::method(default(reason = None))]
    pub fn cancel(&self, id: String, reason: Option<String>) -> Result<Callback> {
        Ok(self.inner.cancel(&id, reason.as_deref())?.into())
    }

    /// Dispatch now, whatever its scheduled_at: scheduled -> dispatching.
    /// Returns the claim: place it with `Store.place_call`, or place the
    /// call yourself and complete or fail it with the claim's token.
    pub fn dispatch(&self, id: String) -> Result<Arc<Claim>> {
        Ok(Claim::wrap(self.inner.dispatch(&id)?))
    }

    /// dispatching -> dispatched. With `claim_token`, a claim that is no
    /// longer the callback's live claim is INVALID_TRANSITION (stale claim).
    #[uniffi::method(default(claim_token = None))]
    pub fn complete_dispatch(
        &self,
        id: String,
        created_session_id: String,
        claim_token: Option<String>,
    ) -> Result<Callback> {
        Ok(self
            .inner
            .complete_dispatch(&id, &created_session_id, claim_token.as_deref())?
            .into())
    }

    /// dispatching -> failed, with `claim_token` checked as in
    /// `complete_dispatch`.
    #[uniffi::method(default(claim_token = None))]
    pub fn fail_dispatch(
        &self,
        id: String,
        failure_cause: String,
        claim_token: Option<String>,
    ) -> Result<Callback> {
        Ok(self
            .inner
            .fail_dispatch(&id, &failure_cause, claim_token.as_deref())?
            .into())
    }

    pub fn reschedule(&self, id: String, scheduled_at: Timestamp) -> Result<Callback> {
        let at = scheduled_at.parse("scheduled_at")?;
        Ok(self.inner.reschedule(&id, at)?.into())
    }

    /// The callback's creation and every transition since, oldest first.
    pub fn history(&self, id: String) -> Result<Vec<CallbackEvent>> {
        Ok(map(self.inner.history(&id)?))
    }

    /// The organization's calling policy: the one set, or the default (UTC,
    /// any time, one attempt).
    pub fn calling_policy(&self) -> Result<CallingPolicy> {
        Ok(self.inner.calling_policy()?.into())
    }

    /// Replaces the organization's calling policy (a bad one is a
    /// VALIDATION_ERROR naming the field, e.g. `windows[0].end`) and returns
    /// it; its scheduled callbacks follow the new windows at once.
    pub fn set_calling_policy(&self, policy: CallingPolicy) -> Result<CallingPolicy> {
        Ok(self.inner.set_calling_policy(&policy.into())?.into())
    }

    /// One agent's own policy, if it has one (None: the organization's
    /// governs its callbacks).
    pub fn agent_calling_policy(&self, agent_id: String) -> Result<Option<CallingPolicy>> {
        Ok(self.inner.agent_calling_policy(&agent_id)?.map(Into::into))
    }

    /// Gives one agent's callbacks a policy of their own, replacing the
    /// organization's for them.
    pub fn set_agent_calling_policy(
        &self,
        agent_id: String,
        policy: CallingPolicy,
    ) -> Result<CallingPolicy> {
        Ok(self
            .inner
            .set_agent_calling_policy(&agent_id, &policy.into())?
            .into())
    }

    /// Removes an agent's own policy; NOT_FOUND when it had none.
    pub fn clear_agent_calling_policy(&self, agent_id: String) -> Result<()> {
        Ok(self.inner.clear_agent_calling_policy(&agent_id)?)
    }

    /// The next attempt of a dispatched or failed callback whose call ended
    /// in `outcome`, created when its policy allows (attempt + 1,
    /// `previous_callback_id` = `id`); asked again, the same follow-up.
    /// INVALID_TRANSITION saying why when the policy does not retry this
    /// outcome, the attempts are used up, or no window opens before the
    /// deadline.
    pub fn retry(&self, id: String, outcome: CallOutcome) -> Result<Callback> {
        Ok(self.inner.retry(&id, outcome.into())?.into())
    }

    /// This organization's changes (the events of its callbacks' histories)
    /// after `since`, oldest first, at most `limit` (1 to `max_changes()`).
    /// With a `wait` (up to `max_wait()`, 60 s), a call that finds none
    /// waits for the first one to commit, or until `wait` is over (long
    /// polling); zero answers at once. Read on from `next_cursor`: no
    /// change is skipped or repeated. Out-of-range `limit` or `wait`, or a
    /// cursor of another organization, are VALIDATION_ERRORs naming it.
    pub fn changes(&self, since: Since, limit: u32, wait: Duration) -> Result<ChangePage> {
        Ok(self.inner.changes(&since.into(), limit, wait)?.into())
    }

    /// Follows this organization's changes after `since` on a thread of its
    /// own, handing them to `observer` in order, each once, until the
    /// returned `Watch` is cancelled (or released), the store fails
    /// (`observer.on_error`) or the observer raises. A bad `since` is
    /// raised here.
    pub fn watch(&self, since: Since, observer: Arc<dyn ChangeObserver>) -> Result<Arc<Watch>> {
        feed::watch(&self.inner, since, observer)
    }

    /// How many of this organization's callbacks are in each status.
    pub fn count_by_status(&self) -> Result<Vec<StatusCount>> {
        Ok(self
            .inner
            .count_by_status()?
            .into_iter()
            .map(|(status, count)| StatusCount {
                status: status.into(),
                count,
            })
            .collect())
    }
}

/// A claim on one dispatching callback: the right to place its call once.
/// Only the store hands claims out (`claim_due`, `Organization.dispatch`,
/// `claim_by_token`); there is no constructor. Pass `token` to
/// `complete_dispatch` / `fail_dispatch`, or to another process, which gets
/// the claim back with `Store.claim_by_token`.
#[derive(Debug, uniffi::Object)]
pub struct Claim {
    inner: core::Claim,
}

impl Claim {
    fn wrap(inner: core::Claim) -> Arc<Claim> {
        Arc::new(Claim { inner })
    }
}

#[uniffi::export]
impl Claim {
    /// The callback as it was when the claim was handed out.
    pub fn callback(&self) -> Callback {
        self.inner.callback().clone().into()
    }

    /// The claimed callback's id.
    pub fn id(&self) -> String {
        self.inner.id().to_owned()
    }

    /// The fencing token: 32 lowercase hex digits.
    pub fn token(&self) -> String {
        self.inner.token().to_owned()
    }
}

/// A clock that stands still until it is set or advanced. Give it to
/// `StoreOptions.clock`; the store then reads "now" from it.
#[derive(Debug, uniffi::Object)]
pub struct ManualClock {
    pub(crate) inner: core::ManualClock,
}

#[uniffi::export]
impl ManualClock {
    #[uniffi::constructor]
    pub fn new(now: Timestamp) -> Result<Arc<ManualClock>> {
        Ok(Arc::new(ManualClock {
            inner: core::ManualClock::new(now.parse("now")?),
        }))
    }

    pub fn now(&self) -> Timestamp {
        core::Clock::now(&self.inner).into()
    }

    pub fn set(&self, now: Timestamp) -> Result<()> {
        self.inner.set(now.parse("now")?);
        Ok(())
    }

    /// Moves the clock forward; past 9999-12-31 is a VALIDATION_ERROR (the
    /// core's rule, `ManualClock::advance`).
    pub fn advance(&self, by: Duration) -> Result<()> {
        let by = chrono::Duration::from_std(by)
            .map_err(|_| core::Error::validation("by", "is too large for a clock"))?;
        Ok(self.inner.advance(by)?)
    }
}

/// Places the phone call of a claimed callback; implemented in Python,
/// Kotlin or Swift. Return the new call's session id; raise (any
/// exception, or `DispatchError.Failed`) to fail the callback with that
/// message as failure_cause.
#[uniffi::export(with_foreign)]
pub trait Dispatcher: Send + Sync {
    fn place_call(&self, callback: Callback) -> std::result::Result<String, DispatchError>;
}

/// The core's Dispatcher over a foreign one.
struct Foreign<'a>(&'a dyn Dispatcher);

impl core::Dispatcher for Foreign<'_> {
    fn place_call(&self, callback: &core::Callback) -> std::result::Result<String, String> {
        self.0
            .place_call(callback.clone().into())
            .map_err(|e| e.to_string())
    }
}

/// The core's batch, a bad item a VALIDATION_ERROR naming it
/// (`callbacks[3].to_number`).
fn to_core_batch(callbacks: &[NewCallback]) -> core::Result<Vec<core::NewCallback>> {
    callbacks
        .iter()
        .enumerate()
        .map(|(i, new)| new.to_core().map_err(|e| e.within_item("callbacks", i)))
        .collect()
}

fn map<T, U: From<T>>(items: Vec<T>) -> Vec<U> {
    items.into_iter().map(Into::into).collect()
}
