//! The calling policy's rules over the store: which policy governs a
//! callback, when it may ring (kept on each scheduled callback as its next
//! eligible instant), what claim_due takes, what expires, and the follow-up
//! attempts. The data access stays in `db`; the time zone arithmetic in
//! `policy`.

use std::collections::HashMap;

use chrono_tz::Tz;

use crate::db::{Candidate, Dao, NewEvent, Placement, PolicyScope, Stored};
use crate::error::{Error, Result};
use crate::model::{Callback, NewCallback};
use crate::organization::Request;
use crate::policy::{self, next_eligible, CallOutcome, CallingPolicy, Eligibility, Policy};
use crate::store::Store;
use crate::time::{self, Timestamp};
use crate::transitions::{self, Action};
use crate::validate;

/// The cause recorded on callbacks that reached their deadline unplaced.
pub const EXPIRED: &str = "expired";

/// A stored policy, checked again as it is read: a row written by hand or
/// by a damaged file is a storage error, not a panic.
fn stored(json: &str) -> Result<Policy> {
    let policy: CallingPolicy = serde_json::from_str(json).map_err(|e| {
        Error::storage(format!("a stored calling policy is unreadable: {e}"), false)
    })?;
    Policy::compile(&policy)
        .map_err(|e| Error::storage(format!("a stored calling policy is invalid: {e}"), false))
}

/// The policy as users read it: the stored one, or the default.
pub(crate) fn readable(json: Option<String>) -> Result<CallingPolicy> {
    match json {
        Some(json) => serde_json::from_str(&json).map_err(|e| {
            Error::storage(format!("a stored calling policy is unreadable: {e}"), false)
        }),
        None => Ok(CallingPolicy::default()),
    }
}

/// The policy that governs a callback of `organization_id` with `agent_id`:
/// the agent's override, else the organization's, else the default.
pub(crate) fn governing(
    dao: &dyn Dao,
    organization_id: &str,
    agent_id: Option<&str>,
) -> Result<Policy> {
    let (organization, agent) = dao.policies(organization_id, agent_id)?;
    match agent.or(organization) {
        Some(json) => stored(&json),
        None => Policy::compile(&CallingPolicy::default()),
    }
}

/// A callback's zone: its own, else its policy's.
fn zone_of(policy: &Policy, timezone: Option<&str>) -> Result<Tz> {
    match timezone {
        Some(name) => policy::zone("timezone", name),
        None => Ok(policy.zone),
    }
}

/// When a callback with nowhere to ring before its deadline is met again:
/// at the deadline, by claim_due or the sweep, which expire it.
fn at_deadline(expires_at: Option<Timestamp>, fallback: Timestamp) -> Eligibility {
    let at = expires_at.unwrap_or(fallback);
    Eligibility {
        at,
        window_ends_at: Some(at),
    }
}

/// Policies read once per (organization, agent) within one operation
/// (a batch of creations, a claim).
pub(crate) struct Governing<'d> {
    pub dao: &'d dyn Dao,
    read: HashMap<(String, Option<String>), Policy>,
}

impl<'d> Governing<'d> {
    pub fn new(dao: &'d dyn Dao) -> Self {
        Governing {
            dao,
            read: HashMap::new(),
        }
    }

    pub fn of(&mut self, organization_id: &str, agent_id: Option<&str>) -> Result<&Policy> {
        let key = (organization_id.to_owned(), agent_id.map(str::to_owned));
        if !self.read.contains_key(&key) {
            let policy = governing(self.dao, organization_id, agent_id)?;
            self.read.insert(key.clone(), policy);
        }
        Ok(&self.read[&key])
    }
}

/// When a new callback may first ring. One that could never ring before
/// its deadline is refused: it would only ever expire.
///
/// Eligibility is computed from scheduled_at, not from now, here and on
/// reschedule and policy change: callbacks whose windows are open are then
/// claimed in the order of their scheduled times (oldest first, as with no
/// policy at all), and one whose opening has passed unclaimed is moved to
/// its next opening by claim_due when it meets it.
pub(crate) fn first_eligibility(
    policies: &mut Governing<'_>,
    organization_id: &str,
    valid: &validate::ValidNewCallback<'_>,
) -> Result<Eligibility> {
    let policy = policies.of(organization_id, valid.input.agent_id.as_deref())?;
    let zone = valid.zone.unwrap_or(policy.zone);
    next_eligible(&policy.windows, zone, valid.scheduled_at, valid.expires_at).ok_or_else(|| {
        Error::validation(
            "expires_at",
            format!(
                "no calling window opens between scheduled_at and expires_at in {}; \
                 move the deadline later or the schedule earlier",
                zone.name()
            ),
        )
    })
}

/// "Dispatch now" is refused past the deadline and outside the window, with
/// the next opening named.
pub(crate) fn check_dispatch(dao: &dyn Dao, current: &Callback, now: Timestamp) -> Result<()> {
    let refuse = |reason: String| Error::PolicyRefused {
        id: current.id.clone(),
        action: Action::Dispatch,
        reason,
    };
    if let Some(deadline) = current.expires_at.filter(|d| *d <= now) {
        return Err(refuse(format!(
            "its deadline (expires_at {}) has passed; it will not be dialed",
            time::format(deadline)
        )));
    }
    let policy = governing(dao, &current.organization_id, current.agent_id.as_deref())?;
    let zone = zone_of(&policy, current.timezone.as_deref())?;
    match next_eligible(&policy.windows, zone, now, current.expires_at) {
        Some(e) if e.at <= now => Ok(()),
        Some(e) => Err(refuse(format!(
            "it is outside its calling window in {}; the next opening is {} ({} local time)",
            zone.name(),
            time::format(e.at),
            e.at.with_timezone(&zone).format("%a %Y-%m-%d %H:%M")
        ))),
        None => Err(refuse(format!(
            "no calling window in {} opens before its deadline (expires_at {})",
            zone.name(),
            current.expires_at.map(time::format).unwrap_or_default()
        ))),
    }
}

/// When a callback moved to `scheduled_at` may first ring.
pub(crate) fn rescheduled(
    dao: &dyn Dao,
    current: &Callback,
    scheduled_at: Timestamp,
) -> Result<Eligibility> {
    if let Some(deadline) = current.expires_at {
        validate::deadline_after("expires_at", deadline, scheduled_at).map_err(|_| {
            Error::validation(
                "scheduled_at",
                format!(
                    "must be earlier than the callback's expires_at ({}), got {}",
                    time::format(deadline),
                    time::format(scheduled_at)
                ),
            )
        })?;
    }
    let policy = governing(dao, &current.organization_id, current.agent_id.as_deref())?;
    let zone = zone_of(&policy, current.timezone.as_deref())?;
    next_eligible(&policy.windows, zone, scheduled_at, current.expires_at).ok_or_else(|| {
        Error::validation(
            "scheduled_at",
            format!(
                "no calling window in {} opens between it and the callback's expires_at",
                zone.name()
            ),
        )
    })
}

/// Stores a new policy for `scope` (None: removes an agent's override) and
/// recomputes when each scheduled callback it governs may next ring.
/// Returns whether a policy was there before.
pub(crate) fn put(
    dao: &dyn Dao,
    organization_id: &str,
    scope: PolicyScope<'_>,
    policy: Option<&CallingPolicy>,
) -> Result<bool> {
    let json = policy
        .map(|p| serde_json::to_string(p).map_err(|e| Error::validation("policy", e.to_string())))
        .transpose()?;
    let existed = dao.put_policy(organization_id, scope, json.as_deref(), dao.now())?;
    let agent = match scope {
        PolicyScope::Agent(agent) => Some(agent),
        PolicyScope::Organization => None,
    };
    let governing = governing(dao, organization_id, agent)?;
    for candidate in dao.scheduled_under(organization_id, scope)? {
        let zone = zone_of(&governing, candidate.timezone.as_deref())?;
        let from = candidate.scheduled_at;
        let eligibility = next_eligible(&governing.windows, zone, from, candidate.expires_at)
            .unwrap_or_else(|| at_deadline(candidate.expires_at, from));
        dao.set_eligibility(candidate.seq, eligibility)?;
    }
    Ok(existed)
}

/// Takes up to `limit` callbacks that may ring at `now`, across all
/// organizations. Candidates come from the index of next eligible instants;
/// of those, the ones past their deadline expire, the ones inside their
/// window are claimed, and the ones whose window closed before a worker
/// came get their next opening (so they leave the front of the index).
pub(crate) fn claim_due(
    dao: &dyn Dao,
    now: Timestamp,
    limit: u32,
) -> Result<Vec<(Stored, Option<String>)>> {
    let mut claimed = Vec::new();
    let mut policies = Governing::new(dao);
    loop {
        let wanted = limit - claimed.len() as u32;
        let candidates = dao.due_candidates(now, wanted)?;
        let fetched = candidates.len() as u32;
        let mut ready = Vec::new();
        let mut expired = Vec::new();
        for candidate in candidates {
            match placement_now(&mut policies, &candidate, now)? {
                Now::Expired => expired.push(candidate.seq),
                Now::Ready => ready.push(candidate.seq),
                Now::Later(eligibility) => dao.set_eligibility(candidate.seq, eligibility)?,
            }
        }
        expire(dao, &expired, now)?;
        let claim = Request::ClaimDue.changes(now);
        claimed.extend(dao.move_picked(Action::ClaimDue, &ready, now, &claim)?);
        if fetched < wanted || claimed.len() as u32 >= limit {
            break;
        }
    }
    claimed.sort_by_key(|(s, _)| (s.callback.scheduled_at, s.seq));
    Ok(claimed)
}

/// Whether `claim_due(now)` would claim the due candidate `c` (rather
/// than expire it, or move it to a later opening): the stats' backlog.
pub(crate) fn ready_at(
    policies: &mut Governing<'_>,
    c: &Candidate,
    now: Timestamp,
) -> Result<bool> {
    Ok(matches!(placement_now(policies, c, now)?, Now::Ready))
}

/// What a due candidate is at `now`.
enum Now {
    Expired,
    Ready,
    Later(Eligibility),
}

fn placement_now(policies: &mut Governing<'_>, c: &Candidate, now: Timestamp) -> Result<Now> {
    if c.expires_at.is_some_and(|deadline| deadline <= now) {
        return Ok(Now::Expired);
    }
    if c.window_ends_at.is_none_or(|end| now < end) {
        return Ok(Now::Ready);
    }
    let policy = policies.of(&c.organization_id, c.agent_id.as_deref())?;
    let zone = zone_of(policy, c.timezone.as_deref())?;
    Ok(
        match next_eligible(&policy.windows, zone, now, c.expires_at) {
            Some(e) if e.at <= now => Now::Ready,
            Some(e) => Now::Later(e),
            None => Now::Later(at_deadline(c.expires_at, now)),
        },
    )
}

/// Fails the scheduled callbacks `seqs` with cause `expired`.
fn expire(dao: &dyn Dao, seqs: &[i64], now: Timestamp) -> Result<Vec<Callback>> {
    let changes = Request::Expire.changes(now);
    Ok(dao
        .move_picked(Action::Expire, seqs, now, &changes)?
        .into_iter()
        .map(|(s, _)| s.callback)
        .collect())
}

/// The deadline sweep: up to `limit` callbacks still scheduled at their
/// deadline, failed with cause `expired`.
pub(crate) fn expire_overdue(dao: &dyn Dao, now: Timestamp, limit: u32) -> Result<Vec<Callback>> {
    let seqs = dao.overdue(now, limit)?;
    expire(dao, &seqs, now)
}

/// Creates the next attempt of `original` (dispatched or failed) after a
/// call that ended in `outcome`, in the caller's transaction, when its
/// policy allows; else the reason it does not. The follow-up made before
/// for this attempt, if any, is returned instead of a second one.
pub(crate) fn follow_up(
    store: &Store,
    dao: &dyn Dao,
    original: &Stored,
    outcome: CallOutcome,
) -> Result<std::result::Result<Callback, String>> {
    let previous = &original.callback;
    if let Some(existing) = dao.follow_up_of(&previous.id)? {
        return Ok(Ok(existing.callback));
    }
    debug_assert!(transitions::follows_up_from(Action::Retry).any(|s| s == previous.status));
    let now = dao.now();
    let policy = governing(dao, &previous.organization_id, previous.agent_id.as_deref())?;
    if !policy.retry_on.contains(&outcome) {
        let listed: Vec<&str> = policy.retry_on.iter().map(|o| o.as_str()).collect();
        return Ok(Err(format!(
            "its calling policy does not retry outcome {outcome} (retry_on: [{}])",
            listed.join(", ")
        )));
    }
    let next = previous.attempt + 1;
    if next > policy.max_attempts {
        return Ok(Err(format!(
            "attempt {} was the last its calling policy allows (max_attempts {})",
            previous.attempt, policy.max_attempts
        )));
    }
    let zone = zone_of(&policy, previous.timezone.as_deref())?;
    let Some(from) = now
        .checked_add_signed(policy.interval_before(next))
        .filter(|t| *t <= time::max_timestamp())
    else {
        return Ok(Err(
            "the next attempt would fall after the year 9999".to_owned()
        ));
    };
    let Some(eligibility) = next_eligible(&policy.windows, zone, from, previous.expires_at) else {
        let deadline = previous.expires_at.map(time::format).unwrap_or_default();
        return Ok(Err(if previous.expires_at.is_some_and(|d| from >= d) {
            format!(
                "attempt {next} would be due at {} (after the policy's interval), past its deadline (expires_at {deadline})",
                time::format(from)
            )
        } else {
            format!(
                "no calling window in {} opens between {} and its deadline (expires_at {deadline})",
                zone.name(),
                time::format(from)
            )
        }));
    };
    let input = NewCallback {
        to_number: previous.to_number.clone(),
        scheduled_at: eligibility.at,
        source_session_id: previous.source_session_id.clone(),
        agent_id: previous.agent_id.clone(),
        phone_number_id: previous.phone_number_id.clone(),
        from_number: previous.from_number.clone(),
        reason: previous.reason.clone(),
        instructions: previous.instructions.clone(),
        summary: previous.summary.clone(),
        // A follow-up takes its maps through the rules again, as any new
        // callback does: a retry is rare, one parse costs nothing here.
        pipeline_config: previous.pipeline_config.to_map()?,
        metadata: previous.metadata.to_map()?,
        timezone: previous.timezone.clone(),
        expires_at: previous.expires_at,
        idempotency_key: None,
    };
    let valid = validate::new_callback(&input)?;
    let id = store.new_id("cb_", now);
    let created_detail = format!("attempt {next}, following {} after {outcome}", previous.id);
    let placement = Placement {
        attempt: next,
        previous_callback_id: Some(&previous.id),
        eligibility,
        detail: Some(&created_detail),
    };
    let created = dao.insert_callback(
        &previous.organization_id,
        &id,
        &valid,
        &placement,
        None,
        now,
    )?;
    let detail = format!("{outcome}: attempt {next} is {id}");
    crate::store::follow_up_created();
    dao.insert_event(
        original.seq,
        &NewEvent {
            action: Action::Retry.into(),
            from: Some(previous.status),
            to: previous.status,
            at: now,
            detail: Some(&detail),
        },
    )?;
    Ok(Ok(created.callback))
}
