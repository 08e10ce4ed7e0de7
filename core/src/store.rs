//! The object users hold: one SQLite connection, the clock, and the
//! transaction closures every operation runs in.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::claim::{self, Claim};
use crate::db::Dao;
use crate::error::{Error, Result};
use crate::feed::CommitSignal;
use crate::model::Callback;
use crate::organization::{Organization, Request};
use crate::time::{self, Clock, SystemClock, Timestamp};
use crate::transitions::Action;
use crate::{schema, validate};

mod counters;
mod keys;
#[cfg(feature = "postgres")]
mod postgres;
mod sqlite;

pub(crate) use counters::follow_up_created;
pub use keys::Caller;

use sqlite::busy;

/// Whether `location` names a PostgreSQL database rather than a file.
fn is_postgres_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// The cause recorded on callbacks failed by `recover_stale`.
pub const DISPATCH_INTERRUPTED: &str = "dispatch_interrupted";

/// The most callbacks one `claim_due` call may take.
pub const MAX_CLAIM: u32 = 10_000;

/// The size of one store-wide batch (claim_due, expire_overdue).
fn bulk_limit(limit: u32) -> Result<()> {
    if (1..=MAX_CLAIM).contains(&limit) {
        Ok(())
    } else {
        Err(Error::validation(
            "limit",
            format!("must be between 1 and {MAX_CLAIM}, got {limit}"),
        ))
    }
}

/// The busy budget of a new SQLite store: its timeout, and a fresh count of
/// retries shared by its writer and its readers.
fn sqlite_budget(options: &StoreOptions) -> busy::Budget {
    busy::Budget {
        timeout: options.busy_timeout,
        retries: Arc::default(),
    }
}

/// How a commit reaches the disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=FULL`: a committed write survives a power cut.
    #[default]
    Full,
    /// `synchronous=NORMAL`: a committed write survives a crash of the
    /// process, but the last commits may be lost on a power cut. Faster.
    Normal,
}

impl Durability {
    /// The connection settings of this durability, as PRAGMA statements.
    ///
    /// The WAL is checkpointed into the database file every
    /// `wal_autocheckpoint` pages. At Normal, commits do not sync, so a longer
    /// WAL costs nothing at commit and saves work at each checkpoint (a sync,
    /// and one copy of each index page however many commits rewrote it):
    /// 8192 pages (32 MiB) instead of SQLite's 1000 drained 100 due callbacks
    /// ~25 % faster in the P4 benchmark. At Full, every commit syncs the WAL,
    /// and a WAL that grows past its previous size makes each of those syncs
    /// commit the file's new size too (~25 % slower one-by-one creates in
    /// P2), while a short WAL is reused in place: SQLite's default stays.
    /// `journal_size_limit` trims a WAL that a long reader let grow beyond
    /// that back to 64 MiB once it restarts. `temp_store = MEMORY` keeps
    /// statement journals in memory: a claim of 100 or a member of a group
    /// commit (a savepoint) journals the pages it changes, and past 64 KiB
    /// SQLite spills that journal to a temporary file (measured in issue
    /// 14: 1.06–1.09x on the drain).
    #[doc(hidden)] // public for the benchmark's raw baseline, which must match
    pub fn pragmas(self) -> &'static str {
        match self {
            Durability::Full => {
                "PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 1000; \
                 PRAGMA journal_size_limit = 67108864; PRAGMA temp_store = MEMORY;"
            }
            Durability::Normal => {
                "PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 8192; \
                 PRAGMA journal_size_limit = 67108864; PRAGMA temp_store = MEMORY;"
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// How long a writer waits for another writer (thread or process) before
    /// giving up with a busy STORAGE_ERROR. On PostgreSQL, the deadline of
    /// each operation: connecting, lock waits, and retries after
    /// serialization failures, deadlocks and lost connections.
    pub busy_timeout: Duration,
    /// SQLite only: PostgreSQL's durability is the server's
    /// (`synchronous_commit`).
    pub durability: Durability,
    /// Where "now" comes from: timestamps of creations and transitions.
    pub clock: Arc<dyn Clock>,
    /// PostgreSQL only: the most connections this store keeps open, so
    /// that up to this many of its threads work at once. SQLite's store
    /// has one connection, which its threads take in turn.
    pub max_connections: u32,
    /// SQLite only: writers of this store's threads that arrive while
    /// another one writes share its transaction and its one COMMIT, each
    /// answered only once that COMMIT is durable (see `store/sqlite.rs`).
    /// On by default; off, every write commits by itself. PostgreSQL's
    /// writers work in parallel on the pool, and the server groups their
    /// WAL flushes itself (`commit_delay`).
    pub group_commit: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            busy_timeout: Duration::from_secs(5),
            durability: Durability::Full,
            clock: Arc::new(SystemClock),
            max_connections: 10,
            group_commit: true,
        }
    }
}

/// What a store reads from `store_meta` when it opens.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
struct Secrets {
    cursor_secret: Vec<u8>,
    feed_epoch: Vec<u8>,
}

/// Where the callbacks are kept. The rules above the data access are the
/// same for both; each backend only runs SQL (see `db`).
#[derive(Debug)]
enum Backend {
    /// One connection: SQLite lets one writer at a time anyway, and the
    /// store's threads take turns on it, writers sharing commits.
    Sqlite(Box<sqlite::Sqlite>),
    /// A pool: the threads of one process work in parallel.
    #[cfg(feature = "postgres")]
    Postgres(postgres::Postgres),
}

/// A callback store over one SQLite file (or memory), or a PostgreSQL
/// database. Cheap to clone; Send + Sync; several processes (and machines,
/// on PostgreSQL) may open the same database.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    backend: Backend,
    clock: Arc<dyn Clock>,
    /// Replaced only by `copy_into`, with the source's.
    cursor_secret: RwLock<Arc<[u8]>>,
    /// The change feed's identity, never copied (migrations V6).
    feed_epoch: Vec<u8>,
    /// This open found no schema and made it.
    created: bool,
    /// Keeps ids made in the same millisecond in creation order.
    ids: Mutex<uuid::ContextV7>,
    /// Wakes the change feed's waiting readers after this process's commits.
    commits: CommitSignal,
    /// Follow-up attempts this handle's writes created and committed.
    follow_ups: AtomicU64,
}

impl Store {
    /// Opens (creating if needed) the store at `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(path, StoreOptions::default())
    }

    /// A private store in memory, gone when the last clone is dropped.
    pub fn open_in_memory() -> Result<Store> {
        Store::open_in_memory_with(StoreOptions::default())
    }

    pub fn open_in_memory_with(options: StoreOptions) -> Result<Store> {
        // A private database in memory has one connection: reads take
        // the writer's.
        Store::from_connection(Connection::open_in_memory()?, None, options)
    }

    /// Opens the store at `path`: an SQLite file, or with the cargo feature
    /// `postgres`, a PostgreSQL database named by a `postgres://` or
    /// `postgresql://` URL (in the schema its `search_path` names).
    pub fn open_with(path: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        if let Some(url) = path.as_ref().to_str().filter(|p| is_postgres_url(p)) {
            return Store::open_postgres(url, options);
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(path.as_ref(), flags).map_err(|e| {
            Error::storage_from(format!("cannot open {}: {e}", path.as_ref().display()), e)
        })?;
        // The readers open the file the writer opened, even if the process
        // changes its working directory later.
        let absolute = std::fs::canonicalize(path.as_ref()).unwrap_or(path.as_ref().to_owned());
        let readers = sqlite::Readers::new(&absolute, flags, sqlite_budget(&options));
        Store::from_connection(conn, Some(readers), options)
    }

    #[cfg(feature = "postgres")]
    fn open_postgres(url: &str, options: StoreOptions) -> Result<Store> {
        let (backend, secrets, created) =
            postgres::Postgres::open(url, options.busy_timeout, options.max_connections)?;
        Ok(Store {
            inner: Arc::new(Inner {
                backend: Backend::Postgres(backend),
                clock: options.clock,
                cursor_secret: RwLock::new(secrets.cursor_secret.into()),
                feed_epoch: secrets.feed_epoch,
                created,
                ids: Mutex::new(uuid::ContextV7::new()),
                commits: CommitSignal::default(),
                follow_ups: AtomicU64::new(0),
            }),
        })
    }

    #[cfg(not(feature = "postgres"))]
    fn open_postgres(_url: &str, _options: StoreOptions) -> Result<Store> {
        Err(Error::validation(
            "url",
            "this build of callback-store has no PostgreSQL backend: \
             build it with the cargo feature `postgres`",
        ))
    }

    fn from_connection(
        mut conn: Connection,
        readers: Option<sqlite::Readers>,
        options: StoreOptions,
    ) -> Result<Store> {
        // SQLite takes the timeout in milliseconds as a C int.
        if options.busy_timeout.as_millis() > i32::MAX as u128 {
            return Err(Error::validation(
                "busy_timeout",
                format!("must be at most {} ms", i32::MAX),
            ));
        }
        let budget = readers
            .as_ref()
            .map_or_else(|| sqlite_budget(&options), sqlite::Readers::budget);
        busy::wait_until(&budget);
        conn.busy_handler(Some(busy::retry_until_deadline))?;
        // Read-only checks first: a file we refuse is left as it was.
        let created = schema::inspect(&conn)? == 0;
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
        conn.execute_batch(options.durability.pragmas())?;
        conn.execute_batch("PRAGMA foreign_keys = ON;")?;
        conn.set_prepared_statement_cache_capacity(64);
        schema::migrate(&mut conn)?;
        let cursor_secret = schema::cursor_secret(&conn)?;
        let feed_epoch = schema::feed_epoch(&conn)?;
        Ok(Store {
            inner: Arc::new(Inner {
                backend: Backend::Sqlite(Box::new(sqlite::Sqlite::new(
                    conn,
                    readers,
                    options.group_commit,
                    budget,
                ))),
                clock: options.clock,
                cursor_secret: RwLock::new(cursor_secret.into()),
                feed_epoch,
                created,
                ids: Mutex::new(uuid::ContextV7::new()),
                commits: CommitSignal::default(),
                follow_ups: AtomicU64::new(0),
            }),
        })
    }

    /// A handle on one organization's callbacks.
    pub fn organization(&self, organization_id: &str) -> Result<Organization> {
        validate::identifier("organization_id", organization_id)?;
        Ok(Organization::new(self.clone(), organization_id.to_owned()))
    }

    /// The store's clock, truncated to the microseconds it stores.
    pub fn now(&self) -> Timestamp {
        time::truncate_to_micros(self.inner.clock.now())
    }

    /// Runs `f`, which reads with a single statement: one statement is one
    /// consistent snapshot by itself, so no transaction is opened around it.
    pub(crate) fn read<T>(&self, f: impl Fn(&dyn Dao) -> Result<T>) -> Result<T> {
        match &self.inner.backend {
            Backend::Sqlite(sqlite) => sqlite.read(self.now(), f),
            #[cfg(feature = "postgres")]
            Backend::Postgres(pg) => pg.read(&|| self.now(), f),
        }
    }

    /// Runs `f` in a write transaction, so that what `f` reads cannot change
    /// before it writes: SQLite takes the file's write lock at once (BEGIN
    /// IMMEDIATE), and threads writing at once share one transaction, each
    /// in its savepoint, answered after its one COMMIT (group commit, see
    /// `store/sqlite.rs`); PostgreSQL locks the rows `f` reads to change (READ
    /// COMMITTED, `get_for_update`, guarded UPDATEs) and runs `f` again
    /// from the start after a serialization failure, a deadlock or a lost
    /// connection, until the busy timeout. So `f` must only touch the
    /// database. An error rolls back everything `f` did.
    pub(crate) fn write<T>(&self, f: impl Fn(&dyn Dao) -> Result<T>) -> Result<T> {
        // Follow-ups are counted per try of `f` and kept only once the
        // write committed: a try that is rolled back (and run again, on
        // PostgreSQL) made none.
        let f = |dao: &dyn Dao| {
            counters::start_try();
            f(dao)
        };
        let out = match &self.inner.backend {
            Backend::Sqlite(sqlite) => sqlite.write(|| self.now(), f),
            #[cfg(feature = "postgres")]
            Backend::Postgres(pg) => pg.write(&|| self.now(), f),
        }?;
        let made = counters::follow_ups_of_try();
        if made > 0 {
            self.inner.follow_ups.fetch_add(made, Ordering::Relaxed);
        }
        self.inner.commits.committed();
        Ok(out)
    }

    /// How many times this handle's operations (and its clones') found the
    /// database busy and tried again: on SQLite each wait of the busy
    /// handler for another writer's lock, on PostgreSQL each retry after a
    /// serialization failure, a deadlock or a lost connection. For metrics;
    /// since the store was opened, in this process.
    #[doc(hidden)]
    pub fn busy_retries(&self) -> u64 {
        match &self.inner.backend {
            Backend::Sqlite(sqlite) => sqlite.busy_retries(),
            #[cfg(feature = "postgres")]
            Backend::Postgres(pg) => pg.busy_retries(),
        }
    }

    /// How many follow-up attempts this handle (and its clones) created,
    /// by `retry` or by a failed call whose policy retries its outcome.
    /// For metrics; since the store was opened, in this process.
    #[doc(hidden)]
    pub fn follow_ups_created(&self) -> u64 {
        self.inner.follow_ups.load(Ordering::Relaxed)
    }

    /// The change feed's wake-up after this process's commits.
    pub(crate) fn commits(&self) -> &CommitSignal {
        &self.inner.commits
    }

    pub(crate) fn cursor_secret(&self) -> Arc<[u8]> {
        let secret = self.inner.cursor_secret.read();
        Arc::clone(&secret.unwrap_or_else(|p| p.into_inner()))
    }

    /// The change feed's identity, bound into its cursors.
    pub(crate) fn feed_epoch(&self) -> &[u8] {
        &self.inner.feed_epoch
    }

    /// After `copy_into` wrote the source's cursor secret into this store.
    pub(crate) fn replace_cursor_secret(&self, secret: Vec<u8>) {
        let mut current = self
            .inner
            .cursor_secret
            .write()
            .unwrap_or_else(|p| p.into_inner());
        *current = secret.into();
    }

    /// Whether `other` is a handle on this very store (a clone).
    pub(crate) fn is_same_store(&self, other: &Store) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Runs `f` over one consistent snapshot of the whole store, for a read
    /// of many statements (`copy_into`): SQLite, a read transaction;
    /// PostgreSQL, a transaction made REPEATABLE READ READ ONLY before its
    /// first query, retried from the start on busy errors as `write` is.
    pub(crate) fn snapshot<T>(&self, f: impl Fn(&dyn Dao) -> Result<T>) -> Result<T> {
        match &self.inner.backend {
            Backend::Sqlite(sqlite) => {
                crate::db::copy::sqlite_snapshot(&mut sqlite.connection(), self.now(), f)
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(pg) => pg.write(&|| self.now(), |dao| {
                dao.begin_snapshot()?;
                f(dao)
            }),
        }
    }

    /// A new callback id: `cb_` and a UUIDv7 (time-ordered, 128 bits) in hex.
    pub(crate) fn new_id(&self, prefix: &str, now: Timestamp) -> String {
        let seconds = now.timestamp().max(0) as u64;
        let context = self.inner.ids.lock().unwrap_or_else(|p| p.into_inner());
        let ts = uuid::Timestamp::from_unix(&*context, seconds, now.timestamp_subsec_nanos());
        format!("{prefix}{}", uuid::Uuid::new_v7(ts).simple())
    }

    /// Runs `f` with the store's SQLite connection: for diagnostics and
    /// tests (EXPLAIN, row counts). Writing through it bypasses every rule.
    ///
    /// # Panics
    /// On a PostgreSQL store (see `with_postgres`).
    #[doc(hidden)]
    pub fn with_connection<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        match &self.inner.backend {
            Backend::Sqlite(sqlite) => f(&sqlite.connection()),
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => panic!("with_connection: this store is on PostgreSQL"),
        }
    }

    /// Runs `f` with a pooled PostgreSQL client: for diagnostics and tests.
    /// None on an SQLite store. Writing through it bypasses every rule.
    #[doc(hidden)]
    #[cfg(feature = "postgres")]
    pub fn with_postgres<T>(
        &self,
        f: impl FnOnce(&mut ::postgres::Client) -> T,
    ) -> Option<Result<T>> {
        match &self.inner.backend {
            Backend::Sqlite(_) => None,
            Backend::Postgres(pg) => Some(pg.with_client(f)),
        }
    }

    /// How many transactions this SQLite store has committed (None on
    /// PostgreSQL): with the writes made, how many share a commit.
    #[doc(hidden)]
    pub fn commit_count(&self) -> Option<u64> {
        match &self.inner.backend {
            Backend::Sqlite(sqlite) => Some(sqlite.commits()),
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => None,
        }
    }

    /// Every SQL statement this PostgreSQL store has run so far (empty on
    /// SQLite): the query-plan test EXPLAINs exactly these.
    #[doc(hidden)]
    pub fn postgres_statements(&self) -> Vec<String> {
        match &self.inner.backend {
            Backend::Sqlite(_) => Vec::new(),
            #[cfg(feature = "postgres")]
            Backend::Postgres(pg) => pg.statements_seen(),
        }
    }

    /// Whether this open found no callback-store schema (an empty file or
    /// PostgreSQL schema) and created it: a command's first run, which
    /// `serve` greets with an API key. Two processes opening a new
    /// database at once may both see it new.
    pub fn is_new(&self) -> bool {
        self.inner.created
    }

    /// Which backend holds the callbacks: "sqlite" or "postgres".
    pub fn backend_name(&self) -> &'static str {
        match &self.inner.backend {
            Backend::Sqlite(_) => "sqlite",
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Takes up to `limit` callbacks that may ring at `now` (due, inside
    /// their calling window in their time zone, before their deadline),
    /// soonest first, across all organizations, marks them `dispatching`
    /// and hands out a claim on each. Callbacks it meets past their
    /// deadline are failed with cause `expired` instead. Place each call with `place_call`, or
    /// place it yourself and complete or fail it with the claim's token.
    pub fn claim_due(&self, now: Timestamp, limit: u32) -> Result<Vec<Claim>> {
        let now = time::checked("now", now)?;
        bulk_limit(limit)?;
        let claimed = self.write(|dao| crate::calling::claim_due(dao, now, limit))?;
        claimed
            .into_iter()
            .map(|(stored, token)| {
                let token = token
                    .ok_or_else(|| Error::storage("a claim was made without a token", false))?;
                Ok(Claim::new(stored.callback, token))
            })
            .collect()
    }

    /// Fails, with cause `expired`, up to `limit` callbacks still
    /// `scheduled` at their deadline (`expires_at <= now`): they are never
    /// dialed. `claim_due` expires those it meets; this sweep (run by the
    /// server's and the `worker` command's loop) reaches the rest.
    pub fn expire_overdue(&self, now: Timestamp, limit: u32) -> Result<Vec<Callback>> {
        let now = time::checked("now", now)?;
        bulk_limit(limit)?;
        self.write(|dao| crate::calling::expire_overdue(dao, now, limit))
    }

    /// The claim on callback `id` whose token is `token`, for a claim handed
    /// from one process to another (a queue, a fleet of dialers): only a
    /// live claim comes back, one whose callback is still `dispatching`
    /// with this token and was not placed yet. Anything else is
    /// INVALID_TRANSITION (stale claim); the spend in `place_call` checks
    /// all of it again, so holding a claim never grants a second call.
    pub fn claim_by_token(&self, id: &str, token: &str) -> Result<Claim> {
        validate::identifier("id", id)?;
        validate::identifier("claim_token", token)?;
        let (stored, columns) = self
            .read(|dao| dao.get_with_claim(id))?
            .ok_or_else(|| Error::callback_not_found(id))?;
        let callback = stored.callback;
        match claim::stale_reason(callback.status, Some(&columns), token, true) {
            None => Ok(Claim::new(callback, token.to_owned())),
            Some(reason) => Err(claim::stale(id, Action::PlaceCall, reason)),
        }
    }

    /// Fails, with cause `dispatch_interrupted`, every callback that has
    /// been `dispatching` since before `now - older_than`: its process died
    /// between claim and completion. It is never retried: a missed callback
    /// is better than calling a person twice.
    pub fn recover_stale(&self, now: Timestamp, older_than: Duration) -> Result<Vec<Callback>> {
        let now = time::checked("now", now)?;
        let older_than = chrono::Duration::from_std(older_than)
            .map_err(|_| Error::validation("older_than", "is too large"))?;
        let horizon = now
            .checked_sub_signed(older_than)
            .ok_or_else(|| Error::validation("older_than", "reaches before the year 1"))?;
        let recover = Request::RecoverStale {
            cause: DISPATCH_INTERRUPTED,
        };
        let recovered = self.write(|dao| dao.recover_stale(now, horizon, &recover.changes(now)))?;
        Ok(recovered.into_iter().map(|s| s.callback).collect())
    }

    /// Deletes finished callbacks (dispatched, cancelled, failed) last
    /// updated before `before`, with their history. Returns how many.
    pub fn prune(&self, before: Timestamp) -> Result<u64> {
        let before = time::checked("before", before)?;
        Ok(self.write(|dao| dao.prune(before))? as u64)
    }
}
