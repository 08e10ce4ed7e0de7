//! The change feed: `changes` (one page, long polling) on `Organization` and
//! `Store` (`store.rs`), its records, and `Organization.watch`, which follows
//! the feed on a thread of its own and hands each page to a foreign
//! `ChangeObserver`.
//!
//! `watch` re-implements no rule of the feed: its thread calls the core's
//! `Organization::changes` with the `next_cursor` of the page before, which
//! is what makes every change arrive once and in order (core/src/feed.rs).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::Duration;

use callback_store as core;

use crate::error::{foreign_message, CallbackStoreError, Result};
use crate::records::CallbackEvent;

/// The longest one long poll of a watch waits. The core's wait cannot be
/// interrupted, so this bounds how long `Watch.cancel()` waits for the
/// watch's thread. It costs nearly nothing: a waiting reader looks at the
/// log every 200 ms anyway (writers of other processes cannot wake it), and
/// writers of this process still wake it at once.
const WATCH_POLL: Duration = Duration::from_millis(250);

/// Where a reader of the feed starts.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum Since {
    /// The oldest event still kept (prune deletes finished callbacks'
    /// history).
    Start,
    /// After the newest event: only what commits from now on.
    Now,
    /// After the change whose `cursor` (or page's `next_cursor`) this is.
    /// A cursor of another organization (or of a list) is a
    /// VALIDATION_ERROR naming `since`.
    Cursor { cursor: String },
}

impl From<Since> for core::Since {
    fn from(s: Since) -> Self {
        match s {
            Since::Start => core::Since::Start,
            Since::Now => core::Since::Now,
            Since::Cursor { cursor } => core::Since::Cursor(cursor),
        }
    }
}

/// One change: an event of a callback's history (the `CallbackEvent` record
/// `history` answers), with its organization and the cursor that reads on
/// after it. (The HTTP API's JSON puts the event's keys beside `cursor`.)
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Change {
    /// Pass as `Since.Cursor` to read the changes after this one.
    pub cursor: String,
    pub organization_id: String,
    pub event: CallbackEvent,
}

impl From<core::Change> for Change {
    fn from(c: core::Change) -> Self {
        Change {
            cursor: c.cursor,
            organization_id: c.organization_id,
            event: c.event.into(),
        }
    }
}

/// One call's changes, oldest first, and where to read on.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ChangePage {
    pub changes: Vec<Change>,
    /// Pass as `Since.Cursor` to read on: after the last change, or past
    /// the positions this call looked at when it found none of the reader's.
    pub next_cursor: String,
}

impl From<core::ChangePage> for ChangePage {
    fn from(p: core::ChangePage) -> Self {
        ChangePage {
            changes: p.changes.into_iter().map(Into::into).collect(),
            next_cursor: p.next_cursor,
        }
    }
}

/// The most changes one `changes` call returns (1000).
#[uniffi::export]
pub fn max_changes() -> u32 {
    core::MAX_CHANGES
}

/// The page size of the HTTP feed and the command (100); the Python
/// layer's default `limit`.
#[uniffi::export]
pub fn default_changes() -> u32 {
    core::DEFAULT_CHANGES
}

/// The longest `changes` may wait for a change (60 s).
#[uniffi::export]
pub fn max_wait() -> Duration {
    core::MAX_WAIT
}

/// What a foreign `ChangeObserver` raises to stop its watch; any other
/// exception does the same.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum ObserverError {
    #[error("{reason}")]
    Stop { reason: String },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for ObserverError {
    fn from(err: uniffi::UnexpectedUniFFICallbackError) -> Self {
        ObserverError::Stop {
            reason: foreign_message(&err.reason),
        }
    }
}

/// Receives the changes of `Organization.watch`; implemented in Python,
/// Kotlin or Swift. Both methods are called on the watch's own thread, one
/// call at a time. Raising (any exception) in `on_changes` stops the watch:
/// nothing more is delivered, and `on_error` is not called.
#[uniffi::export(with_foreign)]
pub trait ChangeObserver: Send + Sync {
    /// The next changes, oldest first, never empty; each change is handed
    /// over once. The watch reads on once this returns.
    fn on_changes(&self, changes: Vec<Change>) -> std::result::Result<(), ObserverError>;

    /// The store failed (a STORAGE_ERROR: the database is unreachable, ...):
    /// the watch has stopped, and this is the last call. Watch again from
    /// the cursor of the last change handled to resume without a gap.
    fn on_error(&self, error: CallbackStoreError) -> std::result::Result<(), ObserverError>;
}

/// A running `Organization.watch`: its thread follows the feed until
/// `cancel()`, a store error (`on_error`) or an observer's exception. Also
/// cancelled when released (Kotlin `close()`/`use {}`, Swift and Python:
/// the last reference dropped), without waiting for the thread.
#[derive(Debug, uniffi::Object)]
pub struct Watch {
    cancelled: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
    thread_id: ThreadId,
}

#[uniffi::export]
impl Watch {
    /// Stops the watch. When it returns, the observer is not called again
    /// (it waits, at most about a quarter of a second plus an `on_changes`
    /// under way, for the watch's thread to end). Called from the
    /// observer's own methods, it stops the watch once they return.
    /// Calling it again changes nothing.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        if thread::current().id() == self.thread_id {
            return; // from the observer: joining itself would never end
        }
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            // The thread catches its own panics (`follow`): nothing to report.
            let _ = handle.join();
        }
    }

    /// Whether the watch's thread still runs: false once cancelled, after a
    /// store error, or after the observer raised.
    pub fn is_running(&self) -> bool {
        self.thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|h| !h.is_finished())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // Not joined: a release may happen on any thread (a finalizer, the
        // watch's own), and the thread ends by itself at its next poll
        // without calling the observer again.
        self.cancelled.store(true, Ordering::SeqCst);
    }
}

/// Starts a watch of `org`'s changes after `since`. The first page is read
/// here, before returning: `Since.Now` means now (not when the thread gets
/// to run) and a bad cursor is raised to the caller, not to `on_error`.
pub(crate) fn watch(
    org: &core::Organization,
    since: Since,
    observer: Arc<dyn ChangeObserver>,
) -> Result<Arc<Watch>> {
    let first = org.changes(&since.into(), core::MAX_CHANGES, Duration::ZERO)?;
    let cancelled = Arc::new(AtomicBool::new(false));
    let org = org.clone();
    let flag = Arc::clone(&cancelled);
    let handle = thread::Builder::new()
        .name("callback-store-watch".into())
        .spawn(move || {
            // No panic may end the thread silently with a poisoned state,
            // nor reach a foreign runtime: it ends the watch.
            let _ = catch_unwind(AssertUnwindSafe(|| follow(&org, first, &*observer, &flag)));
        })
        .map_err(|e| {
            core::Error::storage(format!("cannot start the watch's thread: {e}"), false)
        })?;
    Ok(Arc::new(Watch {
        cancelled,
        thread_id: handle.thread().id(),
        thread: Mutex::new(Some(handle)),
    }))
}

/// The watch's thread: delivers `page`, then long-polls from its
/// `next_cursor`, until cancelled, a store error or the observer raised.
fn follow(
    org: &core::Organization,
    mut page: core::ChangePage,
    observer: &dyn ChangeObserver,
    cancelled: &AtomicBool,
) {
    loop {
        if cancelled.load(Ordering::SeqCst) {
            return;
        }
        if !page.changes.is_empty() {
            let changes = page.changes.into_iter().map(Into::into).collect();
            if observer.on_changes(changes).is_err() {
                return;
            }
        }
        let since = core::Since::Cursor(page.next_cursor);
        page = match org.changes(&since, core::MAX_CHANGES, WATCH_POLL) {
            Ok(next) => next,
            Err(err) => {
                if !cancelled.load(Ordering::SeqCst) {
                    let _ = observer.on_error(err.into());
                }
                return;
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Instant;

    use super::*;

    /// Sends what it is given to the test's thread.
    struct Sender(Mutex<mpsc::Sender<Vec<Change>>>);

    impl ChangeObserver for Sender {
        fn on_changes(&self, changes: Vec<Change>) -> std::result::Result<(), ObserverError> {
            let _ = self.0.lock().unwrap().send(changes);
            Ok(())
        }

        fn on_error(&self, _: CallbackStoreError) -> std::result::Result<(), ObserverError> {
            Ok(())
        }
    }

    fn org() -> core::Organization {
        core::Store::open_in_memory()
            .unwrap()
            .organization("org_a")
            .unwrap()
    }

    fn create(org: &core::Organization) -> String {
        let at = core::parse_timestamp("scheduled_at", "2030-01-01T09:00:00Z").unwrap();
        let new = core::NewCallback {
            to_number: "+12015551234".into(),
            scheduled_at: at,
            ..Default::default()
        };
        org.create(new).unwrap().id
    }

    fn watching(org: &core::Organization) -> (Arc<Watch>, mpsc::Receiver<Vec<Change>>) {
        let (tx, rx) = mpsc::channel();
        let observer = Arc::new(Sender(Mutex::new(tx)));
        (watch(org, Since::Now, observer).unwrap(), rx)
    }

    #[test]
    fn a_watch_hands_over_each_change_once_in_order_and_nothing_after_cancel() {
        let org = org();
        let (watch, rx) = watching(&org);
        let ids: Vec<String> = (0..3).map(|_| create(&org)).collect();
        let mut seen = Vec::new();
        while seen.len() < 3 {
            seen.extend(rx.recv_timeout(Duration::from_secs(10)).unwrap());
        }
        let got: Vec<&str> = seen.iter().map(|c| c.event.callback_id.as_str()).collect();
        assert_eq!(got, ids);
        watch.cancel();
        assert!(!watch.is_running());
        create(&org);
        assert!(
            rx.recv_timeout(WATCH_POLL * 2).is_err(),
            "called after cancel"
        );
    }

    #[test]
    fn cancel_returns_promptly_while_the_watch_waits_in_a_long_poll() {
        let org = org();
        let (watch, _rx) = watching(&org);
        thread::sleep(Duration::from_millis(50)); // in its long poll by now
        let started = Instant::now();
        watch.cancel();
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert!(!watch.is_running());
    }

    #[test]
    fn a_cursor_of_another_organization_is_refused_by_watch_itself() {
        let org = org();
        create(&org);
        let other = org.store().organization("org_b").unwrap();
        let cursor = other
            .changes(&core::Since::Start, 10, Duration::ZERO)
            .unwrap()
            .next_cursor;
        let (tx, _rx) = mpsc::channel();
        let err = watch(
            &org,
            Since::Cursor { cursor },
            Arc::new(Sender(Mutex::new(tx))),
        )
        .unwrap_err();
        assert_eq!(err.code(), "VALIDATION_ERROR");
    }
}
