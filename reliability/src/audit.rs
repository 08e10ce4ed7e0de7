//! The audit of a store file: is the file sound, does every callback's
//! history follow the transition table of `callback_store::transitions`,
//! and was every claim spent at most once, every dial on a spent claim?
//!
//! It reads the tables directly, in one snapshot, so that thousands of
//! callbacks are checked in milliseconds after every kill: through the
//! store's SQLite connection or a pooled PostgreSQL client ([`read`] and
//! [`check_integrity`] pick the store's backend).

use std::collections::{BTreeMap, HashMap};

use callback_store::transitions::{self, Action, Outcome};
use callback_store::{Status, Store};
use serde_json::Value;

mod postgres;
mod sqlite;

pub use self::postgres::{integrity_postgres, snapshot_postgres};
pub use self::sqlite::{integrity, snapshot};

/// One callback as the audit sees it.
#[derive(Debug, Clone)]
pub struct CallbackRow {
    pub seq: i64,
    pub id: String,
    pub organization_id: String,
    pub status: Status,
    pub failure_cause: Option<String>,
    pub metadata: serde_json::Map<String, Value>,
    /// The token of its claim, once it entered `dispatching`.
    pub claim_token: Option<String>,
    /// Whether that claim was spent (claim_spent_at is set).
    pub claim_spent: bool,
    /// Its deadline and when it was claimed, in microseconds.
    pub expires_at: Option<i64>,
    pub attempted_at: Option<i64>,
}

/// One event of a history, as stored.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub action: String,
    pub from: Option<String>,
    pub to: String,
    pub detail: Option<String>,
}

/// Every callback and its events, read in one transaction.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub callbacks: Vec<CallbackRow>,
    /// Events per callback seq, oldest first.
    pub events: BTreeMap<i64, Vec<EventRow>>,
}

pub fn status(text: &str) -> Option<Status> {
    serde_json::from_value(Value::String(text.to_owned())).ok()
}

/// An event's action as the transition table names it (`None` for `create`
/// and for names the table does not know).
pub fn action(text: &str) -> Option<Action> {
    serde_json::from_value(Value::String(text.to_owned())).ok()
}

/// One callback row from its columns, as both backends give them.
#[allow(clippy::too_many_arguments)]
fn callback_row(
    seq: i64,
    id: String,
    organization_id: String,
    status_text: &str,
    failure_cause: Option<String>,
    metadata: &str,
    claim_token: Option<String>,
    claim_spent: bool,
) -> CallbackRow {
    CallbackRow {
        seq,
        id,
        organization_id,
        status: status(status_text)
            .unwrap_or_else(|| panic!("callback with unknown status {status_text:?} in the store")),
        failure_cause,
        metadata: serde_json::from_str(metadata).unwrap_or_default(),
        claim_token,
        claim_spent,
        expires_at: None,
        attempted_at: None,
    }
}

/// The same columns on both backends, in `callback_row`'s order.
const CALLBACKS_SQL: &str =
    "SELECT seq, id, organization_id, status, failure_cause, metadata, claim_token,
        claim_spent_at IS NOT NULL, expires_at, attempted_at
 FROM callbacks ORDER BY seq";
const EVENTS_SQL: &str =
    "SELECT callback_seq, action, from_status, to_status, detail FROM callback_events ORDER BY seq";

/// The store's snapshot, on either backend.
pub fn read(store: &Store) -> Result<Snapshot, String> {
    match store.with_postgres(snapshot_postgres) {
        None => store.with_connection(snapshot).map_err(|e| e.to_string()),
        Some(result) => result
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string()),
    }
}

/// The integrity checks of the store's backend: `integrity` on an SQLite
/// file, `integrity_postgres` on PostgreSQL.
pub fn check_integrity(store: &Store) -> Result<(), String> {
    match store.with_postgres(integrity_postgres) {
        None => store.with_connection(integrity),
        Some(result) => result.map_err(|e| e.to_string())?,
    }
}

impl Snapshot {
    pub fn by_id(&self) -> HashMap<&str, &CallbackRow> {
        self.callbacks.iter().map(|c| (c.id.as_str(), c)).collect()
    }

    pub fn history(&self, callback: &CallbackRow) -> &[EventRow] {
        self.events.get(&callback.seq).map_or(&[], Vec::as_slice)
    }

    /// How many events of each callback have an action `counted` accepts.
    fn events_per_callback(&self, counted: impl Fn(Action) -> bool) -> HashMap<&str, usize> {
        self.callbacks
            .iter()
            .map(|c| {
                let n = self
                    .history(c)
                    .iter()
                    .filter(|e| action(&e.action).is_some_and(&counted))
                    .count();
                (c.id.as_str(), n)
            })
            .collect()
    }

    /// How many times each callback was taken for dispatch (claim_due or
    /// dispatch events): at most once is the promise.
    pub fn claims(&self) -> HashMap<&str, usize> {
        self.events_per_callback(|a| matches!(a, Action::ClaimDue | Action::Dispatch))
    }

    /// How many times each callback's claim was spent (`place_call`
    /// events): at most once per claim is the promise.
    pub fn spends(&self) -> HashMap<&str, usize> {
        self.events_per_callback(|a| a == Action::PlaceCall)
    }

    /// Every way the claims break their promise: a claim spent twice, a
    /// spend with no claim before it, a spent flag (claim_spent_at) the
    /// history does not explain, a claimed callback without a token.
    pub fn claim_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for cb in &self.callbacks {
            // Spends of the current claim; None before the first claim.
            let mut spends: Option<usize> = None;
            for e in self.history(cb) {
                match action(&e.action) {
                    Some(a) if transitions::makes_claim(a) => spends = Some(0),
                    Some(Action::PlaceCall) => match spends.as_mut() {
                        None => problems.push(format!("{}: a spend with no claim", cb.id)),
                        Some(n) => {
                            *n += 1;
                            if *n == 2 {
                                problems.push(format!("{}: one claim spent twice", cb.id));
                            }
                        }
                    },
                    _ => {}
                }
            }
            let spent = spends.is_some_and(|n| n > 0);
            if cb.claim_spent != spent {
                problems.push(format!(
                    "{}: claim_spent_at says spent={} but the history says {spent}",
                    cb.id, cb.claim_spent
                ));
            }
            if spends.is_some() != cb.claim_token.is_some() {
                problems.push(format!(
                    "{}: claimed={} but claim_token is {:?}",
                    cb.id,
                    spends.is_some(),
                    cb.claim_token
                ));
            }
        }
        problems
    }

    /// Checks a dial log (`dials`: how many times each callback id was
    /// dialed) against the file: no callback dialed twice, and every dial
    /// on a claim that was spent, exactly once, before it.
    pub fn dial_problems(&self, dials: &HashMap<String, usize>) -> Vec<String> {
        let by_id = self.by_id();
        let spends = self.spends();
        let mut problems = Vec::new();
        for (id, n) in dials {
            if *n > 1 {
                problems.push(format!("{id} was dialed {n} times"));
            }
            match by_id.get(id.as_str()) {
                None => problems.push(format!("{id} was dialed but is not in the file")),
                Some(cb) if !cb.claim_spent || spends.get(id.as_str()) != Some(&1) => {
                    problems.push(format!(
                        "{id} was dialed but its claim was spent {:?} times (claim_spent_at set: {})",
                        spends.get(id.as_str()),
                        cb.claim_spent
                    ));
                }
                Some(_) => {}
            }
        }
        problems
    }

    /// Checks the deadlines (DESIGN "Calling policy"): no callback was
    /// claimed at or after its expires_at, and one that expired was never
    /// claimed nor dialed, and its history ends with the expire.
    pub fn deadline_problems(&self, dials: &HashMap<String, usize>) -> Vec<String> {
        let mut problems = Vec::new();
        for cb in &self.callbacks {
            if let (Some(deadline), Some(claimed)) = (cb.expires_at, cb.attempted_at) {
                if claimed >= deadline {
                    problems.push(format!(
                        "{} was claimed at {claimed}, at or after its deadline {deadline}",
                        cb.id
                    ));
                }
            }
            if cb.failure_cause.as_deref() != Some(callback_store::EXPIRED) {
                continue;
            }
            if cb.claim_token.is_some() || dials.contains_key(&cb.id) {
                problems.push(format!("{} expired after it was claimed or dialed", cb.id));
            }
            let last = self.events.get(&cb.seq).and_then(|e| e.last());
            if !last.is_some_and(|e| e.action == "expire" && e.from.as_deref() == Some("scheduled"))
            {
                problems.push(format!(
                    "{} expired without an expire event from scheduled",
                    cb.id
                ));
            }
        }
        problems
    }

    /// Callbacks whose claim was spent but that were never dialed: only a
    /// process killed between the spend and the dial leaves one.
    pub fn spent_undialed(&self, dials: &HashMap<String, usize>) -> Vec<&CallbackRow> {
        self.callbacks
            .iter()
            .filter(|c| c.claim_spent && !dials.contains_key(&c.id))
            .collect()
    }

    pub fn count(&self, status: Status) -> usize {
        self.callbacks.iter().filter(|c| c.status == status).count()
    }

    /// Every way a history breaks the transition table: a first event that
    /// is not `create` none → scheduled, an event whose `from` is not the
    /// previous `to`, an action the table does not know or does not allow
    /// from there, a last `to` that is not the callback's status, a callback
    /// completed twice, events of no callback.
    pub fn history_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for cb in &self.callbacks {
            let events = self.history(cb);
            let Some((first, rest)) = events.split_first() else {
                problems.push(format!("{}: no history at all", cb.id));
                continue;
            };
            if first.action != "create" || first.from.is_some() || first.to != "scheduled" {
                problems.push(format!(
                    "{}: first event is {} {:?} -> {}, not create None -> scheduled",
                    cb.id, first.action, first.from, first.to
                ));
            }
            let mut current = first.to.clone();
            let mut completions = 0;
            for e in rest {
                let path = format!("{} {:?} -> {}", e.action, e.from, e.to);
                if e.from.as_deref() != Some(current.as_str()) {
                    problems.push(format!(
                        "{}: {path} does not start where {current} ended",
                        cb.id
                    ));
                }
                let (Some(act), Some(from), Some(to)) =
                    (action(&e.action), status(&current), status(&e.to))
                else {
                    problems.push(format!(
                        "{}: {path} has names the table does not know",
                        cb.id
                    ));
                    current.clone_from(&e.to);
                    continue;
                };
                // A retry keeps the status and names the follow-up it made.
                let allowed = match transitions::outcome(from, act) {
                    Outcome::Move(moved) => moved == to,
                    Outcome::FollowUp => from == to,
                    _ => false,
                };
                if !allowed {
                    problems.push(format!(
                        "{}: {path} is not allowed: the table says {:?}",
                        cb.id,
                        transitions::outcome(from, act)
                    ));
                }
                if act == Action::CompleteDispatch {
                    completions += 1;
                }
                current.clone_from(&e.to);
            }
            if completions > 1 {
                problems.push(format!("{}: completed {completions} times", cb.id));
            }
            if current != cb.status.as_str() {
                problems.push(format!(
                    "{}: history ends in {current} but the callback is {}",
                    cb.id, cb.status
                ));
            }
        }
        let seqs: std::collections::HashSet<i64> = self.callbacks.iter().map(|c| c.seq).collect();
        for seq in self.events.keys().filter(|s| !seqs.contains(s)) {
            problems.push(format!(
                "events of callback seq {seq}, which does not exist"
            ));
        }
        problems
    }

    /// Batches (metadata `batch` and `batch_size`) that are not whole:
    /// `create_many` is all or nothing.
    pub fn partial_batches(&self) -> Vec<String> {
        let mut found: HashMap<&str, (u64, u64)> = HashMap::new();
        for cb in &self.callbacks {
            let (Some(batch), Some(size)) = (
                cb.metadata.get("batch").and_then(Value::as_str),
                cb.metadata.get("batch_size").and_then(Value::as_u64),
            ) else {
                continue;
            };
            let entry = found.entry(batch).or_insert((size, 0));
            entry.1 += 1;
        }
        let mut partial: Vec<String> = found
            .into_iter()
            .filter(|(_, (size, n))| size != n)
            .map(|(batch, (size, n))| format!("batch {batch}: {n} of {size} callbacks"))
            .collect();
        partial.sort();
        partial
    }

    /// Callbacks per batch id.
    pub fn batch_sizes(&self) -> HashMap<String, u64> {
        let mut sizes = HashMap::new();
        for cb in &self.callbacks {
            if let Some(batch) = cb.metadata.get("batch").and_then(Value::as_str) {
                *sizes.entry(batch.to_owned()).or_insert(0) += 1;
            }
        }
        sizes
    }
}

/// Fails with the first problems found, and how many there were.
pub fn assert_none(what: &str, problems: &[String]) {
    if !problems.is_empty() {
        let shown: Vec<&str> = problems.iter().take(20).map(String::as_str).collect();
        panic!("{} {what}:\n  {}", problems.len(), shown.join("\n  "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callback_store::{Callback, NewCallback, Store};

    /// A store with one batch of three callbacks: one dispatched (its claim
    /// spent by place_call), one cancelled, one scheduled.
    fn store() -> (Store, Vec<String>) {
        let store = Store::open_in_memory().unwrap();
        let org = store.organization("org").unwrap();
        let batch = (0..3)
            .map(|i| {
                let mut metadata = serde_json::Map::new();
                metadata.insert("batch".into(), "b1".into());
                metadata.insert("batch_size".into(), 3.into());
                metadata.insert("item".into(), i.into());
                NewCallback {
                    metadata,
                    ..NewCallback::new("+12015551234", chrono::Utc::now())
                }
            })
            .collect();
        let ids: Vec<String> = org
            .create_many(batch)
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        let claim = org.dispatch(&ids[0]).unwrap();
        let answer = |_: &Callback| Ok::<_, String>("sess_1".to_owned());
        store.place_call(&answer, &claim).unwrap();
        org.cancel(&ids[1], None).unwrap();
        (store, ids)
    }

    fn problems(store: &Store) -> (Vec<String>, Vec<String>) {
        let snap = read(store).unwrap();
        (snap.history_problems(), snap.partial_batches())
    }

    fn sql(store: &Store, sql: &str) {
        store.with_connection(|c| c.execute_batch(sql)).unwrap();
    }

    #[test]
    fn a_sound_store_has_no_problems_and_counts_one_claim_per_dispatch() {
        let (store, ids) = store();
        assert_eq!(problems(&store), (vec![], vec![]));
        check_integrity(&store).unwrap();
        let snap = read(&store).unwrap();
        assert_eq!(snap.claims()[ids[0].as_str()], 1);
        assert_eq!(snap.claims()[ids[2].as_str()], 0);
    }

    #[test]
    fn a_dispatched_callback_moved_back_to_scheduled_is_an_invalid_path() {
        let (store, ids) = store();
        sql(
            &store,
            &format!(
                "UPDATE callbacks SET status = 'scheduled' WHERE id = '{0}';
                 INSERT INTO callback_events (callback_seq, action, from_status, to_status, at)
                 SELECT seq, 'reschedule', 'dispatched', 'scheduled', 0 FROM callbacks WHERE id = '{0}'",
                ids[0]
            ),
        );
        let (history, _) = problems(&store);
        assert_eq!(history.len(), 1, "{history:?}");
        assert!(history[0].contains("not allowed"), "{history:?}");
    }

    #[test]
    fn a_status_changed_without_an_event_or_completed_twice_is_caught() {
        let (store, ids) = store();
        sql(
            &store,
            &format!(
                "UPDATE callbacks SET status = 'failed' WHERE id = '{}'",
                ids[2]
            ),
        );
        sql(
            &store,
            &format!(
                "INSERT INTO callback_events (callback_seq, action, from_status, to_status, at)
                 SELECT seq, 'complete_dispatch', 'dispatched', 'dispatched', 0 FROM callbacks WHERE id = '{}'",
                ids[0]
            ),
        );
        let (history, _) = problems(&store);
        assert!(
            history
                .iter()
                .any(|p| p.contains("history ends in scheduled")),
            "{history:?}"
        );
        assert!(
            history.iter().any(|p| p.contains("completed 2 times")),
            "{history:?}"
        );
    }

    fn dials(entries: &[(&str, usize)]) -> HashMap<String, usize> {
        entries.iter().map(|(id, n)| (id.to_string(), *n)).collect()
    }

    #[test]
    fn a_sound_store_has_one_spend_per_dial_and_no_claim_problem() {
        let (store, ids) = store();
        let snap = read(&store).unwrap();
        assert_eq!(snap.claim_problems(), Vec::<String>::new());
        assert_eq!(snap.spends()[ids[0].as_str()], 1);
        assert!(snap.dial_problems(&dials(&[(&ids[0], 1)])).is_empty());
        // Without its dial, the spent callback is the one spent undialed.
        let undialed: Vec<&str> = snap
            .spent_undialed(&dials(&[]))
            .iter()
            .map(|c| c.id.as_str())
            .collect();
        assert_eq!(undialed, vec![ids[0].as_str()]);
    }

    #[test]
    fn a_claim_spent_twice_a_spend_without_claim_or_a_lost_spent_flag_is_caught() {
        let (store, ids) = store();
        let spend = |id: &str| {
            format!(
                "INSERT INTO callback_events (callback_seq, action, from_status, to_status, at)
                 SELECT seq, 'place_call', 'dispatching', 'dispatching', 0 FROM callbacks WHERE id = '{id}'"
            )
        };
        sql(&store, &spend(&ids[0]));
        sql(&store, &spend(&ids[2]));
        let snap = read(&store).unwrap();
        let problems = snap.claim_problems();
        assert!(
            problems.iter().any(|p| p.contains("one claim spent twice")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with(&format!("{}: a spend with no claim", ids[2]))),
            "{problems:?}"
        );
        let (store, ids) = self::store();
        sql(
            &store,
            &format!(
                "UPDATE callbacks SET claim_spent_at = NULL WHERE id = '{}'",
                ids[0]
            ),
        );
        let snap = read(&store).unwrap();
        let problems = snap.claim_problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("claim_spent_at says spent=false"));
    }

    #[test]
    fn a_dial_twice_a_dial_without_spend_or_of_no_callback_is_caught() {
        let (store, ids) = store();
        let snap = read(&store).unwrap();
        let mut problems =
            snap.dial_problems(&dials(&[(&ids[0], 2), (&ids[2], 1), ("cb_nowhere", 1)]));
        problems.sort();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("dialed 2 times")));
        assert!(problems
            .iter()
            .any(|p| p.starts_with(&format!("{} was dialed but its claim was spent", ids[2]))));
        assert!(problems
            .iter()
            .any(|p| p.contains("cb_nowhere was dialed but is not in the file")));
    }

    #[test]
    fn a_batch_missing_a_callback_is_partial() {
        let (store, ids) = store();
        // The row and its history, as if the batch never had it (events
        // are not deleted with their callback since V5: no foreign key).
        sql(
            &store,
            &format!(
                "DELETE FROM callback_events WHERE callback_seq = \
                 (SELECT seq FROM callbacks WHERE id = '{0}');
                 DELETE FROM callbacks WHERE id = '{0}'",
                ids[1]
            ),
        );
        let (history, partial) = problems(&store);
        assert!(history.is_empty(), "{history:?}");
        assert_eq!(partial, vec!["batch b1: 2 of 3 callbacks".to_owned()]);
    }

    #[test]
    fn a_work_log_line_cut_short_is_ignored() {
        let dir = std::env::temp_dir().join(format!("worklog-{}", std::process::id()));
        std::fs::write(&dir, "dialed cb_1 r0\ncommitted b1 3\ndialed cb_").unwrap();
        let lines = crate::read_log(&dir);
        std::fs::remove_file(&dir).ok();
        assert_eq!(
            lines,
            vec![vec!["dialed", "cb_1", "r0"], vec!["committed", "b1", "3"]]
        );
    }
}
