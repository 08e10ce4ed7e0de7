//! The queue at a glance, for dashboards and metrics: how many callbacks an
//! organization has in each status, how many are due (those `claim_due`
//! would take at that instant), and since when the longest-waiting of them
//! could have been claimed. Read-only; the SQL is in `db/stats.rs`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::calling::{self, Governing};
use crate::db::Dao;
use crate::error::Result;
use crate::model::Status;
use crate::organization::Organization;
use crate::store::Store;
use crate::time::{self, rfc3339, Timestamp};

/// One organization's callbacks at one instant. As JSON (`GET /v1/stats`,
/// `callback-store stats`): `{"organization_id": …, "counts": {"scheduled":
/// N, … every status …}, "due": N, "oldest_due_at": "<RFC 3339>" | null}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrganizationStats {
    pub organization_id: String,
    /// Every status, zero included, in `Status::ALL` order.
    pub counts: BTreeMap<Status, u64>,
    /// Callbacks `claim_due(now)` would take: scheduled, their next
    /// eligible instant come, inside a calling window, before their
    /// deadline. Those past their deadline are not due: claim_due fails
    /// them as `expired`.
    pub due: u64,
    /// The instant the longest-waiting due callback became eligible (its
    /// scheduled time, or its window's opening when that came later):
    /// `now - oldest_due_at` is how far behind the workers are. None when
    /// nothing is due.
    #[serde(with = "rfc3339::option")]
    pub oldest_due_at: Option<Timestamp>,
}

impl OrganizationStats {
    fn empty(organization_id: &str) -> Self {
        OrganizationStats {
            organization_id: organization_id.to_owned(),
            counts: Status::ALL.into_iter().map(|s| (s, 0)).collect(),
            due: 0,
            oldest_due_at: None,
        }
    }

    /// How long the oldest due callback has waited at `now`; zero when
    /// nothing is due.
    pub fn oldest_due_age(&self, now: Timestamp) -> std::time::Duration {
        self.oldest_due_at
            .and_then(|at| (now - at).to_std().ok())
            .unwrap_or_default()
    }

    /// Counts one more due callback, eligible since `eligible_at`.
    fn add_due(&mut self, count: u64, eligible_at: Timestamp) {
        self.due += count;
        self.oldest_due_at = Some(
            self.oldest_due_at
                .map_or(eligible_at, |o| o.min(eligible_at)),
        );
    }
}

/// The stats of `organization_id` (every organization that has callbacks
/// when None), by organization id.
///
/// Each number comes from its own statement: a callback that changes
/// status between two of them may be counted in `counts` as it was and in
/// `due` as it is. Reading all of them in one snapshot would hold a
/// transaction open (on SQLite, the writers' connection) for a full count.
fn read(
    dao: &dyn Dao,
    organization_id: Option<&str>,
    now: Timestamp,
) -> Result<Vec<OrganizationStats>> {
    let mut stats: BTreeMap<String, OrganizationStats> = BTreeMap::new();
    fn entry<'s>(
        stats: &'s mut BTreeMap<String, OrganizationStats>,
        org: &str,
    ) -> &'s mut OrganizationStats {
        stats
            .entry(org.to_owned())
            .or_insert_with(|| OrganizationStats::empty(org))
    }
    match organization_id {
        Some(org) => {
            let counts = dao.count_by_status(org)?;
            entry(&mut stats, org).counts.extend(counts);
        }
        None => {
            for (org, status, count) in dao.count_all_by_status()? {
                entry(&mut stats, &org).counts.insert(status, count);
            }
        }
    }
    for (org, count, oldest) in dao.due_in_window(organization_id, now)? {
        entry(&mut stats, &org).add_due(count, oldest);
    }
    // Those whose window closed before a worker met them: claim_due would
    // move them to their next opening unless another window is open now,
    // as its own rule (`calling::ready_at`) decides.
    let mut policies = Governing::new(dao);
    for (candidate, eligible_at) in dao.due_window_closed(organization_id, now)? {
        if calling::ready_at(&mut policies, &candidate, now)? {
            entry(&mut stats, &candidate.organization_id).add_due(1, eligible_at);
        }
    }
    Ok(stats.into_values().collect())
}

impl Organization {
    /// This organization's callbacks at `now`: counts by status, the due
    /// backlog, and its oldest due callback's eligible instant.
    pub fn stats(&self, now: Timestamp) -> Result<OrganizationStats> {
        let now = time::checked("now", now)?;
        let mut stats = self.store().read(|dao| read(dao, Some(self.id()), now))?;
        Ok(stats
            .pop()
            .unwrap_or_else(|| OrganizationStats::empty(self.id())))
    }
}

impl Store {
    /// `Organization::stats` of every organization that has callbacks, by
    /// organization id: for operators, who see across organizations.
    pub fn stats(&self, now: Timestamp) -> Result<Vec<OrganizationStats>> {
        let now = time::checked("now", now)?;
        self.read(|dao| read(dao, None, now))
    }
}
