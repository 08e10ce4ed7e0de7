//! An organization's calling policy, its agents' overrides, and follow-up
//! attempts.

use super::Organization;
use crate::calling;
use crate::db::PolicyScope;
use crate::error::{Error, Result};
use crate::model::Callback;
use crate::policy::{CallOutcome, CallingPolicy, Policy};
use crate::transitions::{self, Action, Outcome};
use crate::validate;

impl Organization {
    /// The organization's calling policy: the one set, or the default (UTC,
    /// any time, one attempt).
    pub fn calling_policy(&self) -> Result<CallingPolicy> {
        let (organization, _) = self.store.read(|dao| dao.policies(&self.id, None))?;
        calling::readable(organization)
    }

    /// Replaces the organization's calling policy, and recomputes when each
    /// of its scheduled callbacks (those of agents without an override) may
    /// next ring, in the same transaction.
    pub fn set_calling_policy(&self, policy: &CallingPolicy) -> Result<CallingPolicy> {
        Policy::compile(policy)?;
        self.store
            .write(|dao| calling::put(dao, &self.id, PolicyScope::Organization, Some(policy)))?;
        Ok(policy.clone())
    }

    /// The override of one agent, if it has one.
    pub fn agent_calling_policy(&self, agent_id: &str) -> Result<Option<CallingPolicy>> {
        validate::identifier("agent_id", agent_id)?;
        let (_, agent) = self
            .store
            .read(|dao| dao.policies(&self.id, Some(agent_id)))?;
        agent.map(|json| calling::readable(Some(json))).transpose()
    }

    /// Gives one agent's callbacks a policy of their own, replacing the
    /// organization's for them, and recomputes their scheduled callbacks.
    pub fn set_agent_calling_policy(
        &self,
        agent_id: &str,
        policy: &CallingPolicy,
    ) -> Result<CallingPolicy> {
        validate::identifier("agent_id", agent_id)?;
        Policy::compile(policy)?;
        self.store
            .write(|dao| calling::put(dao, &self.id, PolicyScope::Agent(agent_id), Some(policy)))?;
        Ok(policy.clone())
    }

    /// Removes an agent's override: the organization's policy governs its
    /// callbacks again. NOT_FOUND when the agent had none.
    pub fn clear_agent_calling_policy(&self, agent_id: &str) -> Result<()> {
        validate::identifier("agent_id", agent_id)?;
        let existed = self
            .store
            .write(|dao| calling::put(dao, &self.id, PolicyScope::Agent(agent_id), None))?;
        if existed {
            Ok(())
        } else {
            Err(Error::agent_policy_not_found(agent_id))
        }
    }

    /// Creates the next attempt of a dispatched or failed callback whose
    /// call ended in `outcome`, in one transaction, when its calling policy
    /// allows: attempt + 1, the same fields, scheduled after the policy's
    /// interval and moved into the next window, the same deadline. The
    /// callback itself stays as it is. Asked again, it returns the same
    /// follow-up. Refused (INVALID_TRANSITION, saying why) when the policy
    /// does not retry this outcome, the attempts are used up, or no window
    /// opens before the deadline.
    pub fn retry(&self, id: &str, outcome: CallOutcome) -> Result<Callback> {
        validate::identifier("id", id)?;
        self.store.write(|dao| {
            let current = dao
                .get_for_update(Some(&self.id), id)?
                .ok_or_else(|| Error::callback_not_found(id))?;
            let from = current.callback.status;
            if transitions::outcome(from, Action::Retry) != Outcome::FollowUp {
                return Err(Error::InvalidTransition {
                    id: id.to_owned(),
                    action: Action::Retry,
                    from,
                });
            }
            calling::follow_up(&self.store, dao, &current, outcome)?.map_err(|reason| {
                Error::PolicyRefused {
                    id: id.to_owned(),
                    action: Action::Retry,
                    reason,
                }
            })
        })
    }
}
