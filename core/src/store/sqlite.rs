//! The SQLite backend: one connection, taken in turn by the store's
//! threads, and group commit.
//!
//! Why group commit: SQLite lets one writer at a time, and what a small
//! transition costs is mostly its COMMIT — the pages it touched appended to
//! the WAL (an index leaf shared by the next transition is written again by
//! it), and at `Durability::Full` an fsync. When several threads of one
//! process write at once (the server's requests, a dialer placing calls in
//! parallel, Python threads), they queue for the connection anyway. So the
//! thread holding the connection does not commit while others wait for it:
//! it leaves its transaction open and the next thread runs its own work in
//! the same transaction, inside a savepoint, and so on; the last of the
//! group (nobody waiting, or the group full) commits once, and only then is
//! every member answered. Nothing is answered before it is durable.
//!
//! Each member still gets exactly its own answer:
//! - A member whose work fails (a refused transition, bad input found in
//!   the transaction) is rolled back to its savepoint, so its writes vanish
//!   and the other members' stay. Its error is returned once the group has
//!   committed, because what it saw included earlier members' writes.
//! - A storage error (in a member's work, or in the COMMIT) rolls the whole
//!   transaction back and fails every member with it: a claim a completion
//!   was meant to finish stays `dispatching`, for `recover_stale`, and is
//!   never dialed again.
//! - Reads never see a group's uncommitted writes. A store on a file reads
//!   through connections of its own (`Readers`): in WAL mode they see the
//!   last commit and run beside the writer, so the server's reads (every
//!   request authenticates) neither wait for writes nor cut a group short.
//!   A store in memory has one connection: a read (and `snapshot`,
//!   `with_connection`) that finds a group open commits it first.
//!
//! Members run one after the other, in the order they took the connection,
//! each seeing what the ones before wrote: the committed outcome is that of
//! those transactions run one by one, so every rule proven for one writer
//! (guards, fencing, one follow-up per attempt) holds for a group.

use std::collections::VecDeque;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use crate::db::{Dao, SqliteDao};
use crate::error::{Error, Result};
use crate::time::Timestamp;

/// The most members one group commit takes, so that the first member's
/// wait for its answer stays bounded when writers never stop coming.
const MAX_GROUP: usize = 64;

/// How many times the last member of a group yields its core to writers
/// that are on their way before it commits without them.
const LINGER_YIELDS: usize = 4;

/// How many group outcomes are remembered for members still to read
/// theirs: a member reads its outcome as soon as it is woken, long before
/// this many more groups can finish.
const OUTCOMES_KEPT: usize = 1024;

/// Waiting for another writer. SQLite's own busy timeout sleeps up to
/// 100 ms between tries and is not fair: under contention a sleeping writer
/// keeps missing the lock while awake ones take turns, until it gives up.
/// This handler tries again every millisecond or so, with jitter, until the
/// operation's deadline. The handler is a plain function, so the deadline
/// lives in a thread-local set when an operation takes the connection (a
/// connection is used by one thread at a time, behind the store's mutex).
pub(super) mod busy {
    use std::cell::{Cell, RefCell};
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// How long an operation of one store may wait, and where that store
    /// counts the tries it waited for (`Store::busy_retries`).
    #[derive(Debug, Clone)]
    pub(in crate::store) struct Budget {
        pub timeout: Duration,
        pub retries: Arc<AtomicU64>,
    }

    thread_local! {
        static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
        /// The counter of the store whose operation this thread runs. Kept
        /// from one operation to the next: replaced only when the thread
        /// moves to another store, so that the common case costs a pointer
        /// comparison, and a retry one atomic add.
        static RETRIES: RefCell<Option<Arc<AtomicU64>>> = const { RefCell::new(None) };
    }

    pub(in crate::store) fn wait_until(budget: &Budget) {
        DEADLINE.with(|d| d.set(Instant::now().checked_add(budget.timeout)));
        RETRIES.with(|r| {
            if let Ok(mut current) = r.try_borrow_mut() {
                if !current
                    .as_ref()
                    .is_some_and(|c| Arc::ptr_eq(c, &budget.retries))
                {
                    *current = Some(Arc::clone(&budget.retries));
                }
            }
        });
    }

    pub(in crate::store) fn retry_until_deadline(attempt: i32) -> bool {
        let Some(deadline) = DEADLINE.with(Cell::get) else {
            return false;
        };
        if Instant::now() >= deadline {
            return false;
        }
        RETRIES.with(|r| {
            if let Some(counter) = r.try_borrow().ok().as_deref().and_then(Option::as_ref) {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
        // 0.5 to 2 ms, different for each waiter and each attempt.
        let jitter = RandomState::new().hash_one(attempt) % 1500;
        std::thread::sleep(Duration::from_micros(500 + jitter));
        true
    }
}

/// The most idle read connections a store keeps: more threads than this
/// reading at once open more, closed once they are done.
const IDLE_READERS: usize = 8;

/// The read connections of a store on a file, opened when first needed.
#[derive(Debug)]
pub(super) struct Readers {
    path: PathBuf,
    flags: OpenFlags,
    busy: busy::Budget,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub(super) fn new(path: &Path, flags: OpenFlags, busy: busy::Budget) -> Readers {
        Readers {
            path: path.to_owned(),
            flags,
            busy,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The busy budget the store's writer shares with these readers.
    pub(super) fn budget(&self) -> busy::Budget {
        self.busy.clone()
    }

    fn take(&self) -> Result<Connection> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.open()?,
        };
        busy::wait_until(&self.busy);
        Ok(conn)
    }

    fn open(&self) -> Result<Connection> {
        let mut conn = Connection::open_with_flags(&self.path, self.flags).map_err(|e| {
            Error::storage_from(format!("cannot open {}: {e}", self.path.display()), e)
        })?;
        conn.busy_handler(Some(busy::retry_until_deadline))?;
        // A reader never writes, whatever a bug might ask of it.
        conn.execute_batch("PRAGMA query_only = ON; PRAGMA temp_store = MEMORY;")?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
    }
}

#[derive(Debug)]
pub(super) struct Sqlite {
    conn: Mutex<Shared>,
    readers: Option<Readers>,
    /// Threads about to take the connection: while there are some, a
    /// member leaves the transaction open for them instead of committing.
    waiting: AtomicUsize,
    /// Threads inside `write`, wherever they are in it.
    active: AtomicUsize,
    outcomes: Mutex<Outcomes>,
    finished: Condvar,
    group_commit: bool,
    busy: busy::Budget,
    /// COMMITs that succeeded: with the members they answered, how well
    /// writers share commits (tests, benchmarks).
    commits: AtomicU64,
}

/// The connection and the group whose transaction is open on it, if any.
#[derive(Debug)]
struct Shared {
    connection: Connection,
    open: Option<Group>,
    /// Numbers the groups, so that a member can find its outcome.
    next_group: u64,
}

#[derive(Debug, Clone, Copy)]
struct Group {
    number: u64,
    members: usize,
}

/// What became of the groups that finished: groups finish in the order of
/// their numbers (one transaction at a time), so one number says which
/// finished; the few that failed keep their error.
#[derive(Debug, Default)]
struct Outcomes {
    last_finished: u64,
    failed: VecDeque<(u64, Error)>,
}

/// How a member's work ended, before the group's outcome is known.
enum Work<T> {
    Done(T),
    Refused(Error),
    Panicked(Box<dyn std::any::Any + Send>),
}

impl Sqlite {
    pub(super) fn new(
        connection: Connection,
        readers: Option<Readers>,
        group_commit: bool,
        busy: busy::Budget,
    ) -> Self {
        Sqlite {
            readers,
            conn: Mutex::new(Shared {
                connection,
                open: None,
                next_group: 1,
            }),
            waiting: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            outcomes: Mutex::new(Outcomes::default()),
            finished: Condvar::new(),
            group_commit,
            busy,
            commits: AtomicU64::new(0),
        }
    }

    /// How many COMMITs this store's connection has made.
    pub(super) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// How many times this store's operations waited for a busy database
    /// and tried again.
    pub(super) fn busy_retries(&self) -> u64 {
        self.busy.retries.load(Ordering::Relaxed)
    }

    /// The connection, taken for one operation, with no group open on it.
    pub(super) fn connection(&self) -> ConnectionGuard<'_> {
        let mut shared = self.take();
        self.settle(&mut shared);
        ConnectionGuard(shared)
    }

    /// Runs `f` with the connection, outside any transaction: one statement
    /// is one consistent snapshot by itself.
    pub(super) fn read<T>(&self, now: Timestamp, f: impl Fn(&dyn Dao) -> Result<T>) -> Result<T> {
        let Some(readers) = &self.readers else {
            let conn = self.connection();
            return f(&SqliteDao::new(&conn, now));
        };
        let conn = readers.take()?;
        let out = f(&SqliteDao::new(&conn, now));
        // A panic in `f` drops the connection, which closes it.
        readers.give_back(conn);
        out
    }

    /// Runs `f` in a write transaction, alone or as one member of a group
    /// (see the module's comment).
    pub(super) fn write<T>(
        &self,
        now: impl Fn() -> Timestamp,
        f: impl Fn(&dyn Dao) -> Result<T>,
    ) -> Result<T> {
        self.active.fetch_add(1, Ordering::SeqCst);
        let _active = Leaving(&self.active);
        let mut shared = self.take();
        let (group, first) = match shared.open {
            Some(group) => (group, false),
            None => {
                shared.connection.execute_batch("BEGIN IMMEDIATE")?;
                let group = Group {
                    number: shared.next_group,
                    members: 0,
                };
                shared.next_group += 1;
                shared.open = Some(group);
                (group, true)
            }
        };
        // The first member needs no savepoint: if it fails, nobody else is
        // in the transaction, which is rolled back whole.
        if !first {
            if let Err(e) = shared.connection.execute_batch("SAVEPOINT member") {
                return Err(self.fail_group(&mut shared, group, e.into()));
            }
        }
        let work = catch_unwind(AssertUnwindSafe(|| {
            f(&SqliteDao::new(&shared.connection, now()))
        }));
        let work = match work {
            Ok(Ok(value)) => {
                if !first {
                    if let Err(e) = shared.connection.execute_batch("RELEASE member") {
                        return Err(self.fail_group(&mut shared, group, e.into()));
                    }
                }
                Work::Done(value)
            }
            Ok(Err(e)) if is_storage(&e) => return Err(self.fail_group(&mut shared, group, e)),
            Ok(Err(e)) => Work::Refused(e),
            Err(panic) => Work::Panicked(panic),
        };
        if !matches!(work, Work::Done(_)) {
            if first {
                // Alone in the transaction: nothing to keep, no group to
                // answer. A rollback that fails leaves SQLite to roll back.
                let _ = shared.connection.execute_batch("ROLLBACK");
                shared.open = None;
                return match work {
                    Work::Refused(e) => Err(e),
                    Work::Panicked(panic) => resume_unwind(panic),
                    Work::Done(_) => unreachable!("matched above"),
                };
            }
            let undone = shared
                .connection
                .execute_batch("ROLLBACK TO member; RELEASE member");
            if let Err(e) = undone {
                return Err(self.fail_group(&mut shared, group, e.into()));
            }
        }
        let members = group.members + 1;
        shared.open = Some(Group { members, ..group });
        let outcome = if self.group_commit && members < MAX_GROUP && self.someone_comes(members) {
            // Someone is about to take the connection: it joins the group,
            // or (a reader) commits it.
            drop(shared);
            self.outcome_of(group.number)
        } else {
            self.commit(&mut shared, group);
            drop(shared);
            self.outcome_of(group.number)
        };
        match (work, outcome) {
            (Work::Panicked(panic), _) => resume_unwind(panic),
            (_, Err(e)) => Err(e),
            (Work::Done(value), Ok(())) => Ok(value),
            (Work::Refused(e), Ok(())) => Err(e),
        }
    }

    /// Whether another writer is about to take the connection, so that a
    /// group of `members` should stay open for it. A thread already queued
    /// for the connection comes for sure. Writers inside `write` but not
    /// yet queued (woken by the last commit, between two of their writes)
    /// most likely come within microseconds; on a busy machine they wait
    /// for a core, and committing without them would leave every group
    /// with one member. So while there are such writers the last member
    /// yields its core a few times before it gives up on them, as
    /// PostgreSQL's `commit_delay` waits when `commit_siblings` others are
    /// active.
    fn someone_comes(&self, members: usize) -> bool {
        for _ in 0..LINGER_YIELDS {
            if self.waiting.load(Ordering::SeqCst) > 0 {
                return true;
            }
            // Members of this group wait for its outcome: they do not come.
            if self.active.load(Ordering::SeqCst) <= members {
                return false;
            }
            std::thread::yield_now();
        }
        self.waiting.load(Ordering::SeqCst) > 0
    }

    /// Takes the connection, counted as waiting meanwhile.
    fn take(&self) -> MutexGuard<'_, Shared> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        // A panic inside a closure was caught, and its writes rolled back:
        // the connection itself is sound.
        let shared = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        // The busy timeout counts from here, for the whole operation.
        busy::wait_until(&self.busy);
        shared
    }

    /// Commits the group open on the connection, if any.
    fn settle(&self, shared: &mut Shared) {
        if let Some(group) = shared.open {
            self.commit(shared, group);
        }
    }

    fn commit(&self, shared: &mut Shared, group: Group) {
        match shared.connection.execute_batch("COMMIT") {
            Ok(()) => {
                shared.open = None;
                self.commits.fetch_add(1, Ordering::Relaxed);
                self.finish(group.number, None);
            }
            Err(e) => {
                self.fail_group(shared, group, e.into());
            }
        }
    }

    /// Rolls the whole group back and fails each member with `error`.
    fn fail_group(&self, shared: &mut Shared, group: Group, error: Error) -> Error {
        // SQLite may have rolled back already (an I/O error, a full disk):
        // then ROLLBACK fails, harmlessly.
        let _ = shared.connection.execute_batch("ROLLBACK");
        shared.open = None;
        self.finish(group.number, Some(error.clone()));
        error
    }

    fn finish(&self, number: u64, failure: Option<Error>) {
        let mut outcomes = self.outcomes.lock().unwrap_or_else(|p| p.into_inner());
        outcomes.last_finished = number;
        if let Some(error) = failure {
            outcomes.failed.push_back((number, error));
            if outcomes.failed.len() > OUTCOMES_KEPT {
                outcomes.failed.pop_front();
            }
        }
        self.finished.notify_all();
    }

    /// Waits until group `number` has committed or failed.
    fn outcome_of(&self, number: u64) -> Result<()> {
        let mut outcomes = self.outcomes.lock().unwrap_or_else(|p| p.into_inner());
        while outcomes.last_finished < number {
            outcomes = self
                .finished
                .wait(outcomes)
                .unwrap_or_else(|p| p.into_inner());
        }
        match outcomes.failed.iter().find(|(n, _)| *n == number) {
            Some((_, error)) => Err(error.clone()),
            None => Ok(()),
        }
    }
}

/// Counts a writer out of `active` however `write` ends (a panic too).
struct Leaving<'a>(&'a AtomicUsize);

impl Drop for Leaving<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Errors that mean the transaction itself is in doubt, as opposed to a
/// rule refusing one member's work.
fn is_storage(error: &Error) -> bool {
    matches!(error, Error::Storage { .. })
}

/// The connection, held for one operation with no group open on it.
pub(super) struct ConnectionGuard<'a>(MutexGuard<'a, Shared>);

impl std::ops::Deref for ConnectionGuard<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.0.connection
    }
}

impl std::ops::DerefMut for ConnectionGuard<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.0.connection
    }
}

#[cfg(test)]
mod tests;
