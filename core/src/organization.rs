//! Operations on one organization's callbacks. Every read and write is
//! scoped to the organization: other organizations' callbacks are NOT_FOUND.

use sha2::{Digest, Sha256};

use crate::calling;
use crate::claim::{self, Claim};
use crate::cursor;
use crate::db::{Changes, ClaimGuard, Dao, NewEvent, Placement};
use crate::error::{Error, Result};
use crate::model::{Callback, CallbackEvent, ListQuery, NewCallback, Page, Status};
use crate::policy::CallOutcome;
use crate::store::Store;
use crate::time::{self, Timestamp};
use crate::transitions::{self, Action, Outcome};
use crate::validate::{self, ValidNewCallback};

mod calling_policy;

#[derive(Debug, Clone)]
pub struct Organization {
    store: Store,
    id: String,
}

/// A transition asked of one callback, with its arguments. `claim` is the
/// token of the claim the caller holds, when it gave one.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Request<'a> {
    Cancel {
        reason: Option<&'a str>,
    },
    Dispatch,
    Complete {
        created_session_id: &'a str,
        claim: Option<&'a str>,
    },
    Fail {
        failure_cause: &'a str,
        claim: Option<&'a str>,
        /// How the call ended, for the follow-up the policy may give it.
        outcome: CallOutcome,
    },
    Reschedule {
        scheduled_at: Timestamp,
    },
    PlaceCall {
        claim: &'a str,
    },
    /// Store-wide: due callbacks taken by a worker.
    ClaimDue,
    /// Store-wide: callbacks left dispatching, failed with this cause.
    RecoverStale {
        cause: &'a str,
    },
    /// Store-wide: callbacks still scheduled at their deadline.
    Expire,
}

impl Request<'_> {
    fn action(&self) -> Action {
        match self {
            Request::Cancel { .. } => Action::Cancel,
            Request::Dispatch => Action::Dispatch,
            Request::Complete { .. } => Action::CompleteDispatch,
            Request::Fail { .. } => Action::FailDispatch,
            Request::Reschedule { .. } => Action::Reschedule,
            Request::PlaceCall { .. } => Action::PlaceCall,
            Request::ClaimDue => Action::ClaimDue,
            Request::RecoverStale { .. } => Action::RecoverStale,
            Request::Expire => Action::Expire,
        }
    }

    /// What the guarded UPDATE requires of the callback's claim.
    fn guard(&self) -> ClaimGuard<'_> {
        match *self {
            Request::Complete { claim, .. } | Request::Fail { claim, .. } => ClaimGuard {
                token: claim,
                unspent: false,
            },
            Request::PlaceCall { claim } => ClaimGuard {
                token: Some(claim),
                unspent: true,
            },
            _ => ClaimGuard::default(),
        }
    }

    /// The columns this transition writes: the one place that says so, for
    /// the guarded UPDATE of one callback and the store-wide moves alike.
    pub(crate) fn changes(&self, now: Timestamp) -> Changes<'_> {
        match *self {
            Request::Cancel { .. } => Changes {
                cancelled_at: Some(now),
                ..Changes::default()
            },
            Request::Dispatch => Changes {
                attempted_at: Some(now),
                new_claim: transitions::makes_claim(Action::Dispatch),
                ..Changes::default()
            },
            Request::Complete {
                created_session_id, ..
            } => Changes {
                created_session_id: Some(created_session_id),
                dispatched_at: Some(now),
                ..Changes::default()
            },
            Request::Fail { failure_cause, .. } => Changes {
                failure_cause: Some(failure_cause),
                ..Changes::default()
            },
            Request::Reschedule { scheduled_at } => Changes {
                scheduled_at: Some(scheduled_at),
                ..Changes::default()
            },
            Request::PlaceCall { .. } => Changes {
                claim_spent_at: Some(now),
                ..Changes::default()
            },
            Request::ClaimDue => Changes {
                attempted_at: Some(now),
                new_claim: transitions::makes_claim(Action::ClaimDue),
                ..Changes::default()
            },
            Request::RecoverStale { cause } => Changes {
                failure_cause: Some(cause),
                ..Changes::default()
            },
            Request::Expire => Changes {
                failure_cause: Some(calling::EXPIRED),
                ..Changes::default()
            },
        }
    }

    /// What the history records besides the statuses.
    fn detail(&self, before: &Callback) -> Option<String> {
        match *self {
            Request::Cancel { reason } => reason.map(str::to_owned),
            Request::Dispatch | Request::PlaceCall { .. } | Request::ClaimDue => None,
            Request::RecoverStale { cause } => Some(cause.to_owned()),
            Request::Expire => Some(calling::EXPIRED.to_owned()),
            Request::Complete {
                created_session_id, ..
            } => Some(created_session_id.to_owned()),
            Request::Fail { failure_cause, .. } => Some(failure_cause.to_owned()),
            Request::Reschedule { .. } => Some(format!(
                "previously scheduled at {}",
                time::format(before.scheduled_at)
            )),
        }
    }
}

/// A callback after a transition, with its claim token (set once it has
/// entered `dispatching`).
pub(crate) struct Applied {
    pub callback: Callback,
    pub claim_token: Option<String>,
}

impl Applied {
    /// The claim a transition into `dispatching` handed out.
    pub(crate) fn into_claim(self) -> Result<Claim> {
        let token = self.claim_token.ok_or_else(|| {
            let id = &self.callback.id;
            Error::storage(
                format!("callback {id} entered dispatching without a claim token"),
                false,
            )
        })?;
        Ok(Claim::new(self.callback, token))
    }
}

/// Applies one transition by the table, in one write transaction.
/// `organization_id` None is for store-wide workers (the dispatch helper).
pub(crate) fn transition(
    store: &Store,
    organization_id: Option<&str>,
    id: &str,
    request: Request<'_>,
) -> Result<Applied> {
    validate::identifier("id", id)?;
    if let Some(token) = request.guard().token {
        validate::identifier("claim_token", token)?;
    }
    store.write(|dao| transition_in(store, dao, organization_id, id, request))
}

/// The body of `transition`, inside a write transaction opened by the
/// caller (batches run several in one). A transition it refuses, with any
/// error but a storage error, has written nothing: every refusal is decided
/// before the guarded UPDATE, or by that UPDATE matching no row, and what
/// follows the UPDATE (the event, a follow-up) fails only with storage
/// errors. So a batch may keep going after a refused item.
pub(crate) fn transition_in(
    store: &Store,
    dao: &dyn Dao,
    organization_id: Option<&str>,
    id: &str,
    request: Request<'_>,
) -> Result<Applied> {
    let action = request.action();
    let guard = request.guard();
    let now = dao.now();
    let current = dao
        .get_for_update(organization_id, id)?
        .ok_or_else(|| Error::callback_not_found(id))?
        .callback;
    let mut changes = request.changes(now);
    // A caller holding a claim learns why the claim is stale.
    let refused = |from: Status| -> Result<Error> {
        let Some(token) = guard.token else {
            return Ok(Error::InvalidTransition {
                id: id.to_owned(),
                action,
                from,
            });
        };
        let columns = dao.claim_columns(id)?;
        let reason =
            claim::stale_reason(from, columns.as_ref(), token, guard.unspent).ok_or_else(|| {
                Error::storage(
                    format!("the guarded {action} of callback {id} lost to nothing"),
                    false,
                )
            })?;
        Ok(claim::stale(id, action, reason))
    };
    match transitions::outcome(current.status, action) {
        Outcome::Move(to) => {
            // The calling policy's say, for the actions it governs.
            match request {
                Request::Dispatch => calling::check_dispatch(dao, &current, now)?,
                Request::Reschedule { scheduled_at } => {
                    changes.eligibility = Some(calling::rescheduled(dao, &current, scheduled_at)?);
                }
                _ => {}
            }
            let moved = dao.apply_transition(
                organization_id,
                id,
                (current.status, to),
                &changes,
                guard,
                now,
            )?;
            let Some((stored, claim_token)) = moved else {
                return Err(refused(current.status)?);
            };
            let seq = stored.seq;
            let detail = request.detail(&current);
            dao.insert_event(
                seq,
                &NewEvent {
                    action: action.into(),
                    from: Some(current.status),
                    to,
                    at: now,
                    detail: detail.as_deref(),
                },
            )?;
            if let Request::Fail { outcome, .. } = request {
                // A failed call may earn a follow-up; a refusal of the
                // policy leaves the failure as it is.
                // Past the UPDATE, only a storage error may fail the transition
                // (see above): a stored callback whose fields no longer validate
                // for its follow-up is damaged data, not a refusal.
                let _follow_up =
                    calling::follow_up(store, dao, &stored, outcome).map_err(|e| match e {
                        Error::Storage { .. } => e,
                        other => Error::storage(
                            format!("the follow-up of callback {id} cannot be made: {other}"),
                            false,
                        ),
                    })?;
            }
            Ok(Applied {
                callback: stored.callback,
                claim_token,
            })
        }
        Outcome::Unchanged => Ok(Applied {
            callback: current,
            claim_token: None,
        }),
        Outcome::Invalid | Outcome::NotSelected | Outcome::FollowUp => {
            Err(refused(current.status)?)
        }
    }
}

impl Organization {
    pub(crate) fn new(store: Store, id: String) -> Self {
        Organization { store, id }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Creates a `scheduled` callback. With an idempotency key, a retry of
    /// the same request returns the callback the first one created.
    pub fn create(&self, new: NewCallback) -> Result<Callback> {
        let valid = validate::new_callback(&new)?;
        let hash = request_hash(&valid);
        self.store
            .write(|dao| self.insert(&mut calling::Governing::new(dao), &valid, hash.as_deref()))
    }

    /// Creates several callbacks in one transaction: all of them or none.
    /// A validation error names the item, like `callbacks[3].to_number`.
    pub fn create_many(&self, batch: Vec<NewCallback>) -> Result<Vec<Callback>> {
        let valid = batch
            .iter()
            .enumerate()
            .map(|(i, new)| validate::new_callback(new).map_err(|e| e.within_item("callbacks", i)))
            .collect::<Result<Vec<_>>>()?;
        let hashes: Vec<Option<Vec<u8>>> = valid.iter().map(request_hash).collect();
        self.store.write(|dao| {
            // Each agent's policy is read once for the whole batch.
            let mut policies = calling::Governing::new(dao);
            valid
                .iter()
                .zip(&hashes)
                .enumerate()
                .map(|(i, (v, h))| {
                    self.insert(&mut policies, v, h.as_deref())
                        .map_err(|e| e.within_item("callbacks", i))
                })
                .collect()
        })
    }

    fn insert(
        &self,
        policies: &mut calling::Governing<'_>,
        valid: &ValidNewCallback<'_>,
        hash: Option<&[u8]>,
    ) -> Result<Callback> {
        let dao = policies.dao;
        if let Some(key) = valid.input.idempotency_key.as_deref() {
            if let Some((existing, stored_hash)) = dao.find_by_idempotency_key(&self.id, key)? {
                if stored_hash.as_deref() == hash {
                    return Ok(existing);
                }
                return Err(Error::Conflict {
                    message: format!(
                        "idempotency_key {key:?} was already used for callback {} with a different payload; \
                         use a new key for a new callback",
                        existing.id
                    ),
                });
            }
        }
        let now = dao.now();
        let placement = Placement {
            attempt: 1,
            previous_callback_id: None,
            eligibility: calling::first_eligibility(policies, &self.id, valid)?,
            detail: None,
        };
        let id = self.store.new_id("cb_", now);
        Ok(dao
            .insert_callback(&self.id, &id, valid, &placement, hash, now)?
            .callback)
    }

    pub fn get(&self, id: &str) -> Result<Callback> {
        validate::identifier("id", id)?;
        self.store
            .read(|dao| dao.get(Some(&self.id), id))?
            .map(|s| s.callback)
            .ok_or_else(|| Error::callback_not_found(id))
    }

    /// One page of callbacks matching `query`; follow `next_cursor` for more.
    /// Pages never skip or repeat a row, also while callbacks are created.
    pub fn list(&self, query: &ListQuery) -> Result<Page> {
        validate::list_query(query)?;
        let fingerprint = cursor::fingerprint(&self.id, query);
        let secret = self.store.cursor_secret();
        let after = query
            .cursor
            .as_deref()
            .map(|c| cursor::decode("cursor", cursor::OTHER_QUERY, &secret, fingerprint, c))
            .transpose()?;
        let limit = query.limit as usize;
        let mut rows = self
            .store
            .read(|dao| dao.list(&self.id, query, after, query.limit + 1))?;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|last| {
                // Newest-first pages by seq alone (see Dao::list).
                let sort_key = match query.order {
                    crate::Order::CreatedDesc => 0,
                    crate::Order::ScheduledAsc => time::to_micros(last.callback.scheduled_at),
                };
                let position = cursor::Position {
                    sort_key,
                    seq: last.seq,
                };
                cursor::encode(&secret, fingerprint, position)
            })
        } else {
            None
        };
        Ok(Page {
            callbacks: rows.into_iter().map(|s| s.callback).collect(),
            next_cursor,
        })
    }

    /// Cancels a scheduled callback; a cancelled one is returned unchanged.
    pub fn cancel(&self, id: &str, reason: Option<&str>) -> Result<Callback> {
        validate::free_text("reason", reason)?;
        self.apply(id, Request::Cancel { reason })
    }

    /// Dispatch now, whatever its scheduled_at: `scheduled` → `dispatching`.
    /// Returns the claim: place the call with `Store::place_call`, or place
    /// it yourself and complete or fail it with the claim's token.
    pub fn dispatch(&self, id: &str) -> Result<Claim> {
        transition(&self.store, Some(&self.id), id, Request::Dispatch)?.into_claim()
    }

    /// `dispatching` → `dispatched`. With `claim_token` (the token of the
    /// claim the caller holds), a claim that is no longer the callback's
    /// live claim is refused with INVALID_TRANSITION (stale claim).
    pub fn complete_dispatch(
        &self,
        id: &str,
        created_session_id: &str,
        claim_token: Option<&str>,
    ) -> Result<Callback> {
        validate::identifier("created_session_id", created_session_id)?;
        self.apply(
            id,
            Request::Complete {
                created_session_id,
                claim: claim_token,
            },
        )
    }

    /// `dispatching` → `failed`, with `claim_token` checked as in
    /// `complete_dispatch`.
    pub fn fail_dispatch(
        &self,
        id: &str,
        failure_cause: &str,
        claim_token: Option<&str>,
    ) -> Result<Callback> {
        validate::failure_cause(failure_cause)?;
        self.apply(
            id,
            Request::Fail {
                failure_cause,
                claim: claim_token,
                outcome: CallOutcome::Failed,
            },
        )
    }

    pub fn reschedule(&self, id: &str, scheduled_at: Timestamp) -> Result<Callback> {
        let scheduled_at = time::checked("scheduled_at", scheduled_at)?;
        self.apply(id, Request::Reschedule { scheduled_at })
    }

    fn apply(&self, id: &str, request: Request<'_>) -> Result<Callback> {
        Ok(transition(&self.store, Some(&self.id), id, request)?.callback)
    }

    /// The callback's creation and every transition since, oldest first.
    pub fn history(&self, id: &str) -> Result<Vec<CallbackEvent>> {
        validate::identifier("id", id)?;
        let events = self.store.read(|dao| dao.history(&self.id, id))?;
        if events.is_empty() {
            // Every callback has its creation event: none means no callback.
            return Err(Error::callback_not_found(id));
        }
        Ok(events)
    }

    /// How many of this organization's callbacks are in each status.
    pub fn count_by_status(&self) -> Result<Vec<(Status, u64)>> {
        self.store.read(|dao| dao.count_by_status(&self.id))
    }
}

/// SHA-256 of the request as stored (keys sorted), so that a retry is told
/// from a different payload even after the callback has changed since.
fn request_hash(valid: &ValidNewCallback<'_>) -> Option<Vec<u8>> {
    valid.input.idempotency_key.as_ref()?;
    let input = valid.input;
    let mut canonical = serde_json::json!({
        "to_number": input.to_number,
        "scheduled_at": time::to_micros(valid.scheduled_at),
        "source_session_id": input.source_session_id,
        "agent_id": input.agent_id,
        "phone_number_id": input.phone_number_id,
        "from_number": input.from_number,
        "reason": input.reason,
        "instructions": input.instructions,
        "summary": input.summary,
        "pipeline_config": input.pipeline_config,
        "metadata": input.metadata,
    });
    // Named only when set, so that a request hashed before these fields
    // existed still matches its retry.
    if let Some(zone) = &input.timezone {
        canonical["timezone"] = zone.clone().into();
    }
    if let Some(deadline) = valid.expires_at {
        canonical["expires_at"] = time::to_micros(deadline).into();
    }
    Some(Sha256::digest(sorted(&canonical).to_string().as_bytes()).to_vec())
}

/// The same JSON with every object's keys sorted (depth is bounded by validation).
fn sorted(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            serde_json::Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted(v)))
                    .collect(),
            )
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(sorted).collect())
        }
        other => other.clone(),
    }
}
