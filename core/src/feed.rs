//! The change feed: the history's events in commit order, for readers that
//! follow the queue (a dashboard, `callback-store watch`, a mobile list)
//! instead of querying it.
//!
//! Every event has a position in one store-wide log. A reader asks for the
//! events after a cursor (a signed position) and gets them in position
//! order with the cursor to ask from next. The rule that makes this exact:
//! **a position is readable only once every smaller position that will ever
//! exist is readable too**, so a reader that moves its cursor past a
//! position can never miss an event committed later.
//! - SQLite: the position is the event's `seq`. Writers take turns on the
//!   file's write lock and a new row's rowid is the largest one plus one, so
//!   seqs are taken in commit order. When prune deletes the log's newest
//!   event, a marker row keeps its seq taken (`db/chain.rs`), so that no
//!   seq is handed out twice.
//! - PostgreSQL: writers commit in parallel and their `seq`s (a sequence)
//!   commit out of order: seq 11 may be visible while seq 10's transaction
//!   is still open. Events are therefore positioned after they commit, by
//!   the feed's readers (`db/postgres/feed.rs`): one reader at a time, in a
//!   transaction that holds the row lock of `feed_state`, numbers the
//!   committed events that have no position yet, in seq order, after the
//!   last position. A transaction that commits late is simply positioned by
//!   a later reader, after everything already read.
//!
//! A reader of one organization reads the same log and skips the others'
//! events; to bound that work, one call looks at no more than `SCAN`
//! positions and its cursor moves past what it looked at, so an empty page
//! can still carry a new cursor.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cursor::{self, Position};
use crate::error::{Error, Result};
use crate::model::CallbackEvent;
use crate::organization::Organization;
use crate::store::Store;

/// The most changes one call returns.
pub const MAX_CHANGES: u32 = 1000;
/// The longest one call may wait for a change.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// The page size when a reader names none (HTTP, the command).
pub const DEFAULT_CHANGES: u32 = 100;
/// The most log positions one call looks at (see the module comment).
const SCAN: i64 = 10_000;
/// The rule a cursor of another feed breaks.
const OTHER_FEED: &str = "was issued by another organization's feed, or by another store's \
     (a copy starts a new feed): pass a cursor this reader was given, or since=start or now";
/// How often a waiting reader looks again when no writer of its own process
/// woke it: writers in other processes (or machines) cannot.
const POLL: Duration = Duration::from_millis(200);

/// One change: an event of a callback's history, with the cursor that
/// reads on after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Pass as `since` to read the changes after this one.
    pub cursor: String,
    pub organization_id: String,
    #[serde(flatten)]
    pub event: CallbackEvent,
}

/// One call's changes, oldest first, and where to read on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangePage {
    pub changes: Vec<Change>,
    /// Pass as `since` to read on: after the last change, or past the
    /// positions this call looked at when it found none of the reader's.
    pub next_cursor: String,
}

/// Where a reader of the feed starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Since {
    /// The oldest event still kept (prune deletes finished callbacks'
    /// history).
    Start,
    /// After the newest event: only what commits from now on.
    Now,
    /// After the change whose `cursor` (or page's `next_cursor`) this is.
    Cursor(String),
}

/// Whose events a reader sees: one organization's, or (operator) all.
#[derive(Clone, Copy)]
pub(crate) enum Scope<'a> {
    Organization(&'a str),
    Everyone,
}

/// An event as the log holds it: its position, its organization.
pub(crate) struct LoggedEvent {
    pub position: i64,
    pub organization_id: String,
    pub event: CallbackEvent,
}

impl Organization {
    /// This organization's changes after `since`, oldest first, at most
    /// `limit` (1 to 1000). With a `wait` (up to 60 s), a call that finds
    /// none waits for the first one to commit, or until `wait` is over
    /// (long polling); `Duration::ZERO` answers at once.
    pub fn changes(&self, since: &Since, limit: u32, wait: Duration) -> Result<ChangePage> {
        changes(
            self.store(),
            Scope::Organization(self.id()),
            since,
            limit,
            wait,
        )
    }
}

impl Store {
    /// Every organization's changes after `since` (for operators: see
    /// `Caller::Operator`), as `Organization::changes`.
    pub fn changes(&self, since: &Since, limit: u32, wait: Duration) -> Result<ChangePage> {
        changes(self, Scope::Everyone, since, limit, wait)
    }
}

/// A page size of the feed: 1 to `MAX_CHANGES`.
pub(crate) fn checked_limit(limit: u64) -> Result<u32> {
    u32::try_from(limit)
        .ok()
        .filter(|l| (1..=MAX_CHANGES).contains(l))
        .ok_or_else(|| {
            Error::validation(
                "limit",
                format!("must be between 1 and {MAX_CHANGES}, got {limit}"),
            )
        })
}

/// A long poll's wait: at most `MAX_WAIT`.
pub(crate) fn checked_wait(wait: Duration) -> Result<Duration> {
    if wait > MAX_WAIT {
        return Err(Error::validation(
            "wait",
            format!(
                "must be at most {} seconds, got {:.3}",
                MAX_WAIT.as_secs(),
                wait.as_secs_f64()
            ),
        ));
    }
    Ok(wait)
}

impl From<&str> for Since {
    /// `start`, `now`, or a cursor (no cursor spells either word).
    fn from(text: &str) -> Self {
        match text {
            "start" => Since::Start,
            "now" => Since::Now,
            cursor => Since::Cursor(cursor.to_owned()),
        }
    }
}

fn changes(
    store: &Store,
    scope: Scope<'_>,
    since: &Since,
    limit: u32,
    wait: Duration,
) -> Result<ChangePage> {
    checked_limit(u64::from(limit))?;
    checked_wait(wait)?;
    let secret = store.cursor_secret();
    let fingerprint = fingerprint(store.feed_epoch(), scope);
    let mut after = match since {
        Since::Start => 0,
        Since::Now => head(store)?,
        Since::Cursor(text) => cursor::decode("since", OTHER_FEED, &secret, fingerprint, text)?.seq,
    };
    let deadline = Instant::now() + wait;
    loop {
        let seen = store.commits().generation();
        let (events, next) = page(store, scope, after, limit)?;
        let now = Instant::now();
        if !events.is_empty() || now >= deadline {
            let encode = |position| {
                cursor::encode(
                    &secret,
                    fingerprint,
                    Position {
                        sort_key: 0,
                        seq: position,
                    },
                )
            };
            return Ok(ChangePage {
                changes: events
                    .into_iter()
                    .map(|e| Change {
                        cursor: encode(e.position),
                        organization_id: e.organization_id,
                        event: e.event,
                    })
                    .collect(),
                next_cursor: encode(next),
            });
        }
        after = next;
        store.commits().wait_after(seen, (deadline - now).min(POLL));
    }
}

/// Settles the log (PostgreSQL positions what committed since the last
/// reader), then reads one page: the events after `after` up to `limit`,
/// looking at no more than `SCAN` positions, and the position to read on
/// from.
fn page(
    store: &Store,
    scope: Scope<'_>,
    after: i64,
    limit: u32,
) -> Result<(Vec<LoggedEvent>, i64)> {
    if store.read(|dao| dao.feed_needs_positions())? {
        store.write(|dao| dao.position_feed())?;
    }
    store.read(|dao| {
        // Every position up to the head is readable (module comment), so a
        // page that stops at it, read after it, misses nothing.
        let head = dao.feed_head()?;
        let through = head.min(after.saturating_add(SCAN)).max(after);
        let organization_id = match scope {
            Scope::Organization(id) => Some(id),
            Scope::Everyone => None,
        };
        let events = dao.feed_page(organization_id, after, through, limit)?;
        let next = if events.len() == limit as usize {
            events.last().map_or(through, |e| e.position)
        } else {
            through
        };
        Ok((events, next))
    })
}

/// The newest position: where `Since::Now` starts.
fn head(store: &Store) -> Result<i64> {
    if store.read(|dao| dao.feed_needs_positions())? {
        store.write(|dao| dao.position_feed())?;
    }
    store.read(|dao| dao.feed_head())
}

/// What a feed cursor is bound to: this store's feed (its epoch: a copy
/// is a new feed) and the reader's scope, so that an organization's cursor
/// cannot be replayed by another, nor a list cursor passed as a feed's.
fn fingerprint(epoch: &[u8], scope: Scope<'_>) -> [u8; 8] {
    use sha2::{Digest, Sha256};
    let organization = match scope {
        Scope::Organization(id) => Some(id),
        Scope::Everyone => None,
    };
    let canonical = serde_json::json!(["feed", epoch, organization]);
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// Wakes the feed's waiting readers when a writer of this process commits.
/// Writers pay one atomic increment and load when nobody waits.
#[derive(Debug, Default)]
pub(crate) struct CommitSignal {
    generation: AtomicU64,
    waiters: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

impl CommitSignal {
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// After every commit of this process.
    pub fn committed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _held = self.lock.lock().unwrap_or_else(|p| p.into_inner());
            self.wake.notify_all();
        }
    }

    /// Waits until a commit after generation `seen`, or `timeout`.
    pub fn wait_after(&self, seen: u64, timeout: Duration) {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let held = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        // Checked under the lock a committer takes to notify: a commit
        // between the check and the wait cannot be missed.
        if self.generation() == seen {
            let _ = self.wake.wait_timeout(held, timeout);
        }
        self.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}
