//! The PostgreSQL backend of a `Store`: a pool of connections, the schema
//! migrations, and the retries that make a busy or restarting server a
//! wait (then a busy STORAGE_ERROR, HTTP 503) instead of a failure.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postgres::{Client, Config, NoTls};

use crate::db::postgres::{PgConnection, PgDao};
use crate::db::Dao;
use crate::error::{Error, Result};
use crate::schema;
use crate::time::Timestamp;

mod embedded {
    refinery::embed_migrations!("../migrations/postgres");
}

/// Makes the pool's connections, each set up the same way.
#[derive(Debug)]
struct Manager {
    config: Config,
    lock_timeout: Duration,
    seen: Arc<Mutex<BTreeSet<String>>>,
}

/// A connection that could not be made, saying why in full (the pool
/// reports it when no connection comes within the deadline).
#[derive(Debug)]
struct ConnectError(postgres::Error);

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::error::describe_postgres(&self.0))
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = PgConnection;
    type Error = ConnectError;

    fn connect(&self) -> std::result::Result<PgConnection, ConnectError> {
        let mut client = self.config.connect(NoTls).map_err(ConnectError)?;
        setup(&mut client, self.lock_timeout).map_err(ConnectError)?;
        Ok(PgConnection {
            client,
            statements: HashMap::new(),
            seen: Arc::clone(&self.seen),
        })
    }

    fn is_valid(&self, conn: &mut PgConnection) -> std::result::Result<(), ConnectError> {
        conn.client
            .simple_query("")
            .map(|_| ())
            .map_err(ConnectError)
    }

    fn has_broken(&self, conn: &mut PgConnection) -> bool {
        conn.client.is_closed()
    }
}

/// Pins what a server's defaults must not change: READ COMMITTED for every
/// transaction (a server defaulting to SERIALIZABLE would turn contended
/// claims into serialization failures), and a bound on lock waits, so that
/// a row held by a stuck session is a retry rather than a hang.
fn setup(client: &mut Client, lock_timeout: Duration) -> std::result::Result<(), postgres::Error> {
    client.batch_execute(&format!(
        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED;
         SET lock_timeout = {};
         SET TIME ZONE 'UTC';",
        lock_timeout.as_millis().clamp(1, i32::MAX as u128)
    ))
}

/// A pool of connections to one database, and the deadline of each
/// operation.
pub(super) struct Postgres {
    /// Always Some until the store is dropped (see `Drop`).
    pool: Option<r2d2::Pool<Manager>>,
    deadline: Duration,
    seen: Arc<Mutex<BTreeSet<String>>>,
    /// Operations tried again after a busy error (`Store::busy_retries`).
    retries: AtomicU64,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("max_connections", &self.pool().max_size())
            .field("deadline", &self.deadline)
            .finish()
    }
}

impl Postgres {
    /// Connects, checks and migrates the schema, and returns the backend with
    /// the store's cursor secret and whether the schema was empty. `deadline` bounds each operation, the
    /// connection included.
    pub(super) fn open(
        url: &str,
        deadline: Duration,
        max_connections: u32,
    ) -> Result<(Postgres, super::Secrets, bool)> {
        let mut config: Config = url.parse().map_err(|e| {
            Error::validation("url", format!("is not a PostgreSQL connection URL: {e}"))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(deadline);
        }
        if max_connections == 0 {
            return Err(Error::validation("max_connections", "must be at least 1"));
        }
        let seen = Arc::new(Mutex::new(BTreeSet::new()));
        let manager = Manager {
            config,
            lock_timeout: deadline,
            seen: Arc::clone(&seen),
        };
        // Connections are made when first needed and checked only by use:
        // a broken one fails its statement, is dropped by the pool
        // (has_broken), and the operation is tried again on another.
        let pool = r2d2::Pool::builder()
            .max_size(max_connections)
            .min_idle(Some(0))
            .connection_timeout(deadline)
            .test_on_check_out(false)
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(manager);
        // From here a failure drops the pool through `Drop` (safe anywhere).
        let backend = Postgres {
            pool: Some(pool),
            deadline,
            seen,
            retries: AtomicU64::new(0),
        };
        // The first connection comes through the pool too: the pool makes
        // it on a thread of its own and this waits at most the deadline, so
        // a server that accepts the socket and never answers (the client's
        // connect_timeout only covers the socket) cannot hang the open.
        let mut conn = backend.pool().get_timeout(deadline).map_err(|e| {
            Error::storage(
                format!(
                    "cannot connect to PostgreSQL within {:.1} s (the busy timeout): {e}",
                    deadline.as_secs_f64()
                ),
                true,
            )
        })?;
        let client = &mut conn.client;
        let created = inspect(client)? == 0;
        migrate(client)?;
        let mut meta = |key: &str| -> Result<Vec<u8>> {
            client
                .query_opt("SELECT value FROM store_meta WHERE key = $1", &[&key])?
                .map(|row| row.try_get(0))
                .transpose()?
                .ok_or_else(|| Error::schema(format!("the store has lost its {key} (store_meta)")))
        };
        let secrets = super::Secrets {
            cursor_secret: meta("cursor_secret")?,
            feed_epoch: meta("feed_epoch")?,
        };
        drop(conn);
        Ok((backend, secrets, created))
    }

    /// A read of one statement, tried again on a busy error (a lost
    /// connection, a server restarting) until the deadline.
    pub(super) fn read<T>(
        &self,
        now: &dyn Fn() -> Timestamp,
        f: impl Fn(&dyn Dao) -> Result<T>,
    ) -> Result<T> {
        self.with_retries(|conn| f(&PgDao::reading(conn, now())))
    }

    /// A write transaction, tried again from the start on a busy error until
    /// the deadline: a serialization failure, a deadlock, a lock wait past
    /// the deadline, a lost connection, or a lost race for an idempotency
    /// key all roll the transaction back first, so a retry is a fresh start.
    /// The one error not retried is a connection lost during COMMIT: the
    /// server may have committed, and only a read can tell.
    pub(super) fn write<T>(
        &self,
        now: &dyn Fn() -> Timestamp,
        f: impl Fn(&dyn Dao) -> Result<T>,
    ) -> Result<T> {
        self.with_retries(|conn| {
            let dao = PgDao::writing(conn, now)?;
            let out = f(&dao)?;
            dao.commit().map_err(|e| {
                if crate::error::connection_lost(&e) {
                    return Error::storage_from(
                        format!(
                            "the connection to PostgreSQL was lost during COMMIT: the write may or \
                             may not have been applied; read the callback back before trying again ({e})"
                        ),
                        e,
                    );
                }
                Error::from(e)
            })?;
            Ok(out)
        })
    }

    fn with_retries<T>(&self, mut op: impl FnMut(&mut PgConnection) -> Result<T>) -> Result<T> {
        let started = Instant::now();
        let deadline = started + self.deadline;
        let mut tries = 0u32;
        loop {
            tries += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            let outcome = match self
                .pool()
                .get_timeout(remaining.max(Duration::from_millis(1)))
            {
                Ok(mut conn) => op(&mut conn),
                Err(e) => Err(Error::storage(
                    format!("no connection to PostgreSQL could be made: {e}"),
                    true,
                )),
            };
            let err = match outcome {
                Err(err) if err.is_busy() => err,
                other => return other,
            };
            // 1 ms doubling to 250 ms: a lost race retries at once, an
            // outage does not hammer the server.
            let pause = Duration::from_millis(1 << tries.min(8)).min(Duration::from_millis(250));
            if Instant::now() + pause >= deadline {
                return Err(Error::storage(
                    format!(
                        "gave up after {tries} tries in {:.1} s (the store's busy timeout): {err}",
                        started.elapsed().as_secs_f64()
                    ),
                    true,
                ));
            }
            self.retries.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(pause);
        }
    }

    /// How many times an operation was tried again after a busy error.
    pub(super) fn busy_retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    fn pool(&self) -> &r2d2::Pool<Manager> {
        self.pool
            .as_ref()
            .expect("the pool lives as long as the store")
    }

    /// Every statement this store has prepared so far.
    pub(super) fn statements_seen(&self) -> Vec<String> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.iter().cloned().collect()
    }

    /// Runs `f` with a pooled connection's client: for diagnostics and tests
    /// (EXPLAIN, row counts). Writing through it bypasses every rule.
    pub(super) fn with_client<T>(&self, f: impl FnOnce(&mut Client) -> T) -> Result<T> {
        let mut conn = self.pool().get_timeout(self.deadline).map_err(|e| {
            Error::storage(
                format!("no connection to PostgreSQL could be made: {e}"),
                true,
            )
        })?;
        Ok(f(&mut conn.client))
    }
}

/// Each connection of the `postgres` crate owns a small tokio runtime, and
/// tokio refuses (panics) to drop a runtime on a thread that runs async
/// tasks, which is where a server's last handle on its store may well go.
/// The pool, with its connections, is dropped on a plain thread of its own,
/// so that dropping a store is safe anywhere.
impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            let dropper = std::thread::Builder::new()
                .name("callback-store-pool-drop".into())
                .spawn(move || drop(pool));
            if let Ok(dropper) = dropper {
                let _ = dropper.join();
            }
        }
    }
}

/// The migrations this build knows for PostgreSQL, as (version, name).
fn known_migrations() -> Vec<(i32, String)> {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| (m.version(), m.name().to_owned()))
        .collect()
}

/// Our tables, to tell a database someone else uses from ours.
const OUR_TABLES: [&str; 4] = ["callbacks", "callback_events", "api_keys", "store_meta"];

/// The schema version of the database (0 for one without our tables),
/// refusing one we did not make or that a newer version migrated.
fn inspect(client: &mut Client) -> Result<i32> {
    let schema: Option<String> = client
        .query_one("SELECT current_schema()", &[])?
        .try_get(0)?;
    let Some(schema) = schema else {
        return Err(Error::schema(
            "the connection's search_path names no existing schema: create the schema first \
             (CREATE SCHEMA …) or fix search_path in the URL's options",
        ));
    };
    let tables: Vec<String> = client
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
            &[&schema],
        )?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
    if !tables.iter().any(|t| t == "refinery_schema_history") {
        let ours: Vec<&str> = OUR_TABLES
            .into_iter()
            .filter(|t| tables.iter().any(|have| have == t))
            .collect();
        if !ours.is_empty() {
            return Err(Error::schema(format!(
                "schema {schema:?} is not a callback store: it holds tables named {} and no \
                 callback-store schema history; give callback-store a schema of its own \
                 (options=-csearch_path=… in the URL)",
                ours.join(", ")
            )));
        }
        return Ok(0);
    }
    let applied: Vec<(i32, String)> = client
        .query(
            "SELECT version, name FROM refinery_schema_history ORDER BY version",
            &[],
        )?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<std::result::Result<_, postgres::Error>>()?;
    schema::check_history(&applied, &known_migrations(), "database")
}

/// Brings the database to the latest schema. Several processes may open it
/// at once: a session-level advisory lock lets one migrate while the others
/// wait, then find the work done. All pending migrations and their history
/// rows commit in one transaction (PostgreSQL's DDL is transactional).
fn migrate(client: &mut Client) -> Result<()> {
    // Any constant of our own; "callback-store" in ASCII, truncated.
    const LOCK: i64 = 0x6361_6c6c_6261_636b;
    let latest = known_migrations()
        .iter()
        .map(|(v, _)| *v)
        .max()
        .unwrap_or(0);
    if inspect(client)? == latest {
        return Ok(());
    }
    client.execute("SELECT pg_advisory_lock($1)", &[&LOCK])?;
    let outcome = (|| {
        if inspect(client)? == latest {
            return Ok(());
        }
        embedded::migrations::runner()
            .set_grouped(true)
            .run(client)
            .map(|_| ())
            .map_err(|e| Error::storage(format!("applying schema migrations failed: {e}"), false))
    })();
    client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK])?;
    outcome
}
