//! The calling policy's data access in PostgreSQL: the same statements as
//! SQLite's (`db/policies.rs`), plus the policy lock. Writers on PostgreSQL
//! overlap, so a transaction that computes eligibility from a policy holds
//! the organization's policy lock in shared mode (a transaction-scoped
//! advisory lock), and a policy change holds it exclusively: no callback is
//! created or rescheduled with a policy that a concurrent change replaced.

use super::PgDao;
use crate::db::policies::{by_scope, scope_filter, PolicyRows, PolicyScope};
use crate::db::{Candidate, Stored, CALLBACK_COLUMNS, CANDIDATE_COLUMNS};
use crate::error::Result;
use crate::policy::Eligibility;
use crate::time::{to_micros, Timestamp};

/// The advisory lock key of an organization's policies: a 64-bit hash of
/// its id (a collision only makes two organizations wait for each other).
const POLICY_LOCK_KEY: &str = "hashtextextended('callback-store policy ' || $1, 0)";

impl PolicyRows for PgDao<'_> {
    fn policies(
        &self,
        organization_id: &str,
        agent_id: Option<&str>,
    ) -> Result<(Option<String>, Option<String>)> {
        // A statement of its own: READ COMMITTED takes each statement's
        // snapshot when it starts, so the read below sees a change that
        // committed while this one waited for the lock.
        self.query(
            &format!("SELECT pg_advisory_xact_lock_shared({POLICY_LOCK_KEY})::text"),
            &[&organization_id],
        )?;
        let agent = agent_id.unwrap_or("");
        let rows = self.query_map(
            "SELECT agent_id, policy FROM calling_policies
             WHERE organization_id = $1 AND agent_id IN ('', $2)",
            &[&organization_id, &agent],
            |row| Ok((row.try_get(0)?, row.try_get(1)?)),
        )?;
        Ok(by_scope(rows))
    }

    fn put_policy(
        &self,
        organization_id: &str,
        scope: PolicyScope<'_>,
        policy: Option<&str>,
        now: Timestamp,
    ) -> Result<bool> {
        self.query(
            &format!("SELECT pg_advisory_xact_lock({POLICY_LOCK_KEY})::text"),
            &[&organization_id],
        )?;
        let agent = scope.agent_key();
        let existed = self.execute(
            "DELETE FROM calling_policies WHERE organization_id = $1 AND agent_id = $2",
            &[&organization_id, &agent],
        )? > 0;
        if let Some(policy) = policy {
            self.execute(
                "INSERT INTO calling_policies (organization_id, agent_id, policy, updated_at)
                 VALUES ($1, $2, $3, $4)",
                &[&organization_id, &agent, &policy, &to_micros(now)],
            )?;
        }
        Ok(existed)
    }

    fn scheduled_under(
        &self,
        organization_id: &str,
        scope: PolicyScope<'_>,
    ) -> Result<Vec<Candidate>> {
        let agent = scope.agent_key();
        self.query_map(
            &format!(
                "SELECT {CANDIDATE_COLUMNS} FROM callbacks
                 WHERE organization_id = $1 AND status = 'scheduled' AND {}
                 FOR UPDATE",
                scope_filter(scope, '$')
            ),
            &[&organization_id, &agent],
            Candidate::from_row,
        )
    }

    fn set_eligibility(&self, seq: i64, eligibility: Eligibility) -> Result<()> {
        self.execute(
            "UPDATE callbacks SET eligible_at = $1, window_ends_at = $2
             WHERE seq = $3 AND status = 'scheduled'",
            &[
                &to_micros(eligibility.at),
                &eligibility.window_ends_at.map(to_micros),
                &seq,
            ],
        )?;
        Ok(())
    }

    fn follow_up_of(&self, previous_callback_id: &str) -> Result<Option<Stored>> {
        let row = self.query_opt(
            &format!("SELECT {CALLBACK_COLUMNS} FROM callbacks WHERE previous_callback_id = $1"),
            &[&previous_callback_id],
        )?;
        row.as_ref().map(Stored::from_row).transpose()
    }
}
