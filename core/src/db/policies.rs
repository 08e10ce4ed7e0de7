//! Data access for the calling policy: the policies themselves, the
//! scheduled callbacks a policy change recomputes, each callback's next
//! eligible instant, and the follow-up an attempt already has.

use rusqlite::OptionalExtension;

use super::{Candidate, SqliteDao, Stored, CALLBACK_COLUMNS, CANDIDATE_COLUMNS};
use crate::error::Result;
use crate::policy::Eligibility;
use crate::time::{to_micros, Timestamp};

/// Whose policy: the organization's, or one agent's override. The agent
/// column holds '' for the organization's (agent ids are never empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PolicyScope<'a> {
    Organization,
    Agent(&'a str),
}

impl PolicyScope<'_> {
    pub fn agent_key(&self) -> &str {
        match self {
            PolicyScope::Organization => "",
            PolicyScope::Agent(agent) => agent,
        }
    }
}

pub(crate) trait PolicyRows {
    /// The organization's policy and, given an agent, that agent's
    /// override, as stored JSON. PostgreSQL first takes the organization's
    /// policy lock in shared mode, so that a policy change cannot commit
    /// between this read and the end of the transaction that computes with
    /// it (SQLite's writers are serialized already).
    fn policies(
        &self,
        organization_id: &str,
        agent_id: Option<&str>,
    ) -> Result<(Option<String>, Option<String>)>;
    /// Writes (Some) or deletes (None) one policy. PostgreSQL takes the
    /// organization's policy lock exclusively first. Returns whether a
    /// policy was there before.
    fn put_policy(
        &self,
        organization_id: &str,
        scope: PolicyScope<'_>,
        policy: Option<&str>,
        now: Timestamp,
    ) -> Result<bool>;
    /// The scheduled callbacks the policy of `scope` governs: an agent's,
    /// or the organization's callbacks whose agent has no override.
    fn scheduled_under(
        &self,
        organization_id: &str,
        scope: PolicyScope<'_>,
    ) -> Result<Vec<Candidate>>;
    /// Stores when a scheduled callback may next ring.
    fn set_eligibility(&self, seq: i64, eligibility: Eligibility) -> Result<()>;
    /// The follow-up already created for callback `previous_callback_id`.
    fn follow_up_of(&self, previous_callback_id: &str) -> Result<Option<Stored>>;
}

impl PolicyRows for SqliteDao<'_> {
    fn policies(
        &self,
        organization_id: &str,
        agent_id: Option<&str>,
    ) -> Result<(Option<String>, Option<String>)> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT agent_id, policy FROM calling_policies
             WHERE organization_id = ?1 AND agent_id IN ('', ?2)",
        )?;
        let rows = stmt.query_map(rusqlite::params![organization_id, agent_id], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })?;
        Ok(by_scope(rows.collect::<rusqlite::Result<Vec<_>>>()?))
    }

    fn put_policy(
        &self,
        organization_id: &str,
        scope: PolicyScope<'_>,
        policy: Option<&str>,
        now: Timestamp,
    ) -> Result<bool> {
        let agent = scope.agent_key();
        let existed = self
            .conn
            .prepare_cached(
                "DELETE FROM calling_policies WHERE organization_id = ?1 AND agent_id = ?2",
            )?
            .execute([organization_id, agent])?
            > 0;
        if let Some(policy) = policy {
            self.conn
                .prepare_cached(
                    "INSERT INTO calling_policies (organization_id, agent_id, policy, updated_at)
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(rusqlite::params![
                    organization_id,
                    agent,
                    policy,
                    to_micros(now)
                ])?;
        }
        Ok(existed)
    }

    fn scheduled_under(
        &self,
        organization_id: &str,
        scope: PolicyScope<'_>,
    ) -> Result<Vec<Candidate>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {CANDIDATE_COLUMNS} FROM callbacks
             WHERE organization_id = ?1 AND status = 'scheduled' AND {}",
            scope_filter(scope, '?')
        ))?;
        let rows = stmt.query_map(
            rusqlite::params![organization_id, scope.agent_key()],
            |row| Candidate::from_row(row),
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn set_eligibility(&self, seq: i64, eligibility: Eligibility) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE callbacks SET eligible_at = ?1, window_ends_at = ?2
                 WHERE seq = ?3 AND status = 'scheduled'",
            )?
            .execute(rusqlite::params![
                to_micros(eligibility.at),
                eligibility.window_ends_at.map(to_micros),
                seq
            ])?;
        Ok(())
    }

    fn follow_up_of(&self, previous_callback_id: &str) -> Result<Option<Stored>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {CALLBACK_COLUMNS} FROM callbacks WHERE previous_callback_id = ?1"
        ))?;
        Ok(stmt
            .query_row([previous_callback_id], |row| Stored::from_row(row))
            .optional()?)
    }
}

/// The (agent key, policy) rows of `PolicyRows::policies`, as (the
/// organization's, the agent's).
pub(crate) fn by_scope(rows: Vec<(String, String)>) -> (Option<String>, Option<String>) {
    let mut found = (None, None);
    for (agent, policy) in rows {
        if agent.is_empty() {
            found.0 = Some(policy);
        } else {
            found.1 = Some(policy);
        }
    }
    found
}

/// Which scheduled callbacks a policy governs, as SQL over the parameters
/// (organization, agent key) numbered 1 and 2, each written `{mark}1`,
/// `{mark}2` (SQLite `?`, PostgreSQL `$`): an agent's own, or those of
/// agents without an override.
pub(crate) fn scope_filter(scope: PolicyScope<'_>, mark: char) -> String {
    match scope {
        PolicyScope::Agent(_) => format!("agent_id = {mark}2"),
        PolicyScope::Organization => format!(
            "(agent_id IS NULL OR agent_id NOT IN (
                 SELECT p.agent_id FROM calling_policies p
                 WHERE p.organization_id = {mark}1 AND p.agent_id <> {mark}2))"
        ),
    }
}
