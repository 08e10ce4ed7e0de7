//! The database a suite runs against. One source of tests proves the rules
//! on both backends: `CALLBACK_STORE_TEST_BACKEND=postgres` runs them on
//! PostgreSQL, each test in a fresh schema of its own; unset (or `sqlite`),
//! on SQLite, each test in a fresh file. `CALLBACK_STORE_TEST_POSTGRES` is
//! the server's URL (scripts/test.sh starts a throwaway cluster and sets
//! it); tests that exist only for PostgreSQL fail without it, never skip.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// The variable naming the PostgreSQL server of a test run.
pub const POSTGRES_ENV: &str = "CALLBACK_STORE_TEST_POSTGRES";
/// The variable choosing the backend of the suites that run on both.
pub const BACKEND_ENV: &str = "CALLBACK_STORE_TEST_BACKEND";

/// The PostgreSQL server of this run, if the run runs on PostgreSQL.
pub fn postgres_server() -> Option<String> {
    match std::env::var(BACKEND_ENV).as_deref() {
        Ok("postgres") => Some(require_postgres()),
        Ok("sqlite") | Ok("") | Err(_) => None,
        Ok(other) => panic!("{BACKEND_ENV}={other}: expected sqlite or postgres"),
    }
}

/// The PostgreSQL server's URL, for the tests that exist only for it.
pub fn require_postgres() -> String {
    std::env::var(POSTGRES_ENV)
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| {
            panic!(
                "{POSTGRES_ENV} is not set: this test needs a PostgreSQL server. \
                 Start the throwaway one with `scripts/pg.sh start` and set \
                 {POSTGRES_ENV} to the URL it prints (scripts/test.sh does both)"
            )
        })
}

/// A fresh, empty database: an SQLite file in a temporary folder, or a new
/// schema on the PostgreSQL server of the run.
pub enum TestDb {
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres {
        url: String,
    },
}

impl TestDb {
    /// A database on this run's backend.
    pub fn new() -> TestDb {
        match postgres_server() {
            Some(server) => TestDb::postgres(&server),
            None => TestDb::sqlite(),
        }
    }

    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("callbacks.db");
        TestDb::Sqlite { _dir: dir, path }
    }

    /// A new schema on `server`, and the URL whose search_path selects it.
    pub fn postgres(server: &str) -> TestDb {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let schema = format!(
            "t_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut client = postgres::Client::connect(server, postgres::NoTls)
            .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL at {server}: {e}"));
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .expect("create a test schema");
        let glue = if server.contains('?') { '&' } else { '?' };
        TestDb::Postgres {
            url: format!("{server}{glue}options=-csearch_path%3D{schema}"),
        }
    }

    /// What `Store::open` and `--db` take: the file's path or the URL.
    pub fn location(&self) -> String {
        match self {
            TestDb::Sqlite { path, .. } => path.display().to_string(),
            TestDb::Postgres { url } => url.clone(),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, TestDb::Postgres { .. })
    }
}

impl Default for TestDb {
    fn default() -> Self {
        TestDb::new()
    }
}
