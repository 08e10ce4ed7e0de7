//! Recognising a callback-store file and bringing it to the current schema.
//!
//! Opening never writes to a file it refuses: the checks below only read,
//! and journal mode and migrations come after them.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};

use crate::error::{Error, Result};

mod embedded {
    refinery::embed_migrations!("../migrations/sqlite");
}

const HISTORY_TABLE: &str = "refinery_schema_history";

/// The migrations this build knows, as (version, name).
pub(crate) fn known_migrations() -> Vec<(i32, String)> {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| (m.version(), m.name().to_owned()))
        .collect()
}

pub(crate) fn latest_version() -> i32 {
    known_migrations()
        .iter()
        .map(|(v, _)| *v)
        .max()
        .unwrap_or(0)
}

/// The schema version of the file: 0 for an empty database.
pub(crate) fn inspect(conn: &Connection) -> Result<i32> {
    let tables: Vec<String> = (|| {
        let mut stmt = conn.prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
        )?;
        let names = stmt.query_map([], |row| row.get(0))?;
        names.collect::<rusqlite::Result<Vec<String>>>()
    })()
    .map_err(|e| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => {
            Error::schema("the file is not a callback store: it is not an SQLite database")
        }
        _ => Error::from(e),
    })?;
    if tables.is_empty() {
        return Ok(0);
    }
    if !tables.iter().any(|t| t == HISTORY_TABLE) {
        return Err(Error::schema(format!(
            "the file is not a callback store: it holds other tables ({}) and no callback-store schema history",
            tables.join(", ")
        )));
    }
    let applied: Vec<(i32, String)> = {
        let mut stmt = conn.prepare(&format!(
            "SELECT version, name FROM {HISTORY_TABLE} ORDER BY version"
        ))?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    check_history(&applied, &known_migrations(), "file")
}

/// The schema version a database's history says it has, refusing one
/// migrated by a newer callback-store or holding a migration this project
/// never had. `what` names the database to its user ("file", "database").
pub(crate) fn check_history(
    applied: &[(i32, String)],
    known: &[(i32, String)],
    what: &str,
) -> Result<i32> {
    let latest = known.iter().map(|(v, _)| *v).max().unwrap_or(0);
    let mut version = 0;
    for (v, name) in applied {
        let v = *v;
        if v > latest {
            return Err(Error::schema(format!(
                "the {what} was migrated by a newer version of callback-store (schema version {v}, \
                 this build knows up to {latest}); open it with that version or newer"
            )));
        }
        if !known.iter().any(|(kv, kn)| *kv == v && kn == name) {
            return Err(Error::schema(format!(
                "the {what} is not a callback store: its schema history has migration {v} '{name}', \
                 which callback-store never had"
            )));
        }
        version = version.max(v);
    }
    Ok(version)
}

/// Brings the file to the latest schema. Several processes may open a new
/// file at once: the loser of that race finds the work done and goes on.
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    let latest = latest_version();
    let mut attempt = 0;
    loop {
        if inspect(conn)? == latest {
            return Ok(());
        }
        // Grouped: every pending migration and its history row in one
        // transaction. Ungrouped, refinery commits a migration and its
        // history row separately, and a process killed between the two
        // leaves a file that can never be migrated again (the crash suite
        // found this). refinery reads its history with unwrap(); a damaged
        // history table must not take the caller down with it.
        let runner = embedded::migrations::runner().set_grouped(true);
        let outcome = catch_unwind(AssertUnwindSafe(|| runner.run(conn)));
        let failure = match outcome {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "the schema history table is damaged".to_owned(),
        };
        attempt += 1;
        if attempt >= 5 {
            if inspect(conn)? == latest {
                return Ok(());
            }
            return Err(Error::storage(
                format!("applying schema migrations failed: {failure}"),
                false,
            ));
        }
        std::thread::sleep(Duration::from_millis(20 * attempt));
    }
}

/// Migrates only up to `version`, for tests of step-by-step upgrades.
#[cfg(test)]
pub(crate) fn migrate_to(conn: &mut Connection, version: i32) {
    embedded::migrations::runner()
        .set_target(refinery::Target::Version(version))
        .run(conn)
        .unwrap();
}

pub(crate) fn cursor_secret(conn: &Connection) -> Result<Vec<u8>> {
    meta(conn, "cursor_secret")
}

/// The change feed's identity (migrations V6), bound into its cursors.
pub(crate) fn feed_epoch(conn: &Connection) -> Result<Vec<u8>> {
    meta(conn, "feed_epoch")
}

fn meta(conn: &Connection, key: &str) -> Result<Vec<u8>> {
    conn.query_row(
        "SELECT value FROM store_meta WHERE key = ?1",
        [key],
        |row| row.get(0),
    )
    .optional()?
    .ok_or_else(|| Error::schema(format!("the store has lost its {key} (store_meta)")))
}

#[cfg(test)]
mod migration_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewCallback, Store};

    fn schema_of(conn: &Connection) -> Vec<(String, String, Option<String>)> {
        let mut stmt = conn
            .prepare("SELECT type, name, sql FROM sqlite_schema ORDER BY type, name")
            .unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap();
        rows.map(Result::unwrap).collect()
    }

    #[test]
    fn a_database_migrated_step_by_step_has_the_schema_of_a_fresh_one() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.db");
        {
            let mut conn = Connection::open(&old).unwrap();
            migrate_to(&mut conn, 1);
            assert_eq!(inspect(&conn).unwrap(), 1);
            conn.execute(
                "INSERT INTO callbacks (id, organization_id, to_number, scheduled_at, status, created_at, updated_at)
                 VALUES ('cb_old', 'org', '+12015551234', 0, 'scheduled', 0, 0)",
                [],
            )
            .unwrap();
        }
        let upgraded = Store::open(&old).unwrap();
        let fresh = Store::open(dir.path().join("fresh.db")).unwrap();
        assert_eq!(
            upgraded.with_connection(schema_of),
            fresh.with_connection(schema_of)
        );
        let org = upgraded.organization("org").unwrap();
        assert_eq!(org.get("cb_old").unwrap().to_number, "+12015551234");
        assert!(
            latest_version() >= 2,
            "the test needs at least two migrations"
        );
    }

    #[test]
    fn every_migration_file_is_embedded_in_order() {
        let versions: Vec<i32> = known_migrations().iter().map(|(v, _)| *v).collect();
        let expected: Vec<i32> = (1..=versions.len() as i32).collect();
        assert_eq!(versions, expected);
        let on_disk =
            std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations/sqlite"))
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .ends_with(".sql")
                })
                .count();
        assert_eq!(on_disk, versions.len());
    }

    #[test]
    fn a_file_migrated_by_a_newer_version_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("newer.db");
        {
            let store = Store::open(&path).unwrap();
            let org = store.organization("org").unwrap();
            org.create(NewCallback::new("+12015551234", chrono::Utc::now()))
                .unwrap();
            store.with_connection(|c| {
                c.execute(
                    "INSERT INTO refinery_schema_history (version, name, applied_on, checksum)
                     VALUES (999, 'future', '2030-01-01T00:00:00Z', '1')",
                    [],
                )
                .unwrap();
            });
        }
        let before = std::fs::read(&path).unwrap();
        let err = Store::open(&path).unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::SchemaError);
        assert!(err.to_string().contains("newer version"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn a_file_that_is_not_a_callback_store_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.txt");
        std::fs::write(
            &text,
            b"this is not a database, just some text long enough to have a header of sorts........",
        )
        .unwrap();
        let other = dir.path().join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch(
                "CREATE TABLE contacts (name TEXT); INSERT INTO contacts VALUES ('ada');",
            )
            .unwrap();
        for path in [text, other] {
            let before = std::fs::read(&path).unwrap();
            let err = Store::open(&path).unwrap_err();
            assert_eq!(err.code(), crate::ErrorCode::SchemaError, "{err}");
            assert!(err.to_string().contains("not a callback store"), "{err}");
            assert_eq!(std::fs::read(&path).unwrap(), before, "{}", path.display());
        }
    }

    #[test]
    fn migrations_and_their_history_commit_together_or_not_at_all() {
        // V2 cannot apply (its table is already there), after V1 could: a
        // store that committed V1 on its own would be left with tables and
        // no history of them, which no later open can repair.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("half.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TABLE refinery_schema_history (version INT4 PRIMARY KEY, name VARCHAR(255),
                     applied_on VARCHAR(255), checksum VARCHAR(255));
                 CREATE TABLE api_keys (id TEXT);",
            )
            .unwrap();
        let err = Store::open(&path).unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::StorageError, "{err}");
        let conn = Connection::open(&path).unwrap();
        let callbacks: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_schema WHERE name = 'callbacks'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(callbacks, 0, "V1 was committed without V2");
        assert_eq!(inspect(&conn).unwrap(), 0);
    }
}
