//! Data access for `Store::copy_into`: every row of every table, as stored,
//! read in key order in pages and inserted as it is (explicit `seq` values
//! included), so that a copy between backends loses nothing and a
//! checksum over both sides compares like with like.
//!
//! Rows are copied as raw column values, never through the records the
//! rules read (a `Callback` parses its JSON and times): the JSON text,
//! the request hashes, the claim tokens and the insertion order arrive
//! byte for byte. The SQL is assembled from the fixed table lists below
//! only; every value is bound.

use rusqlite::{Connection, TransactionBehavior};

use super::{Dao, SqliteDao};
use crate::error::{Error, Result};
use crate::time::Timestamp;

/// One column value, as both backends store it: timestamps and `seq` are
/// integers (microseconds), JSON is text, hashes are bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

/// What a column holds (NULL aside), so that both backends read and bind
/// it as the same type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Int,
    Text,
    Blob,
}

/// A table copied whole: its columns in a fixed order, and the unique
/// column its rows are read in order of (`seq`, insertion order, where
/// there is one).
pub(crate) struct Table {
    pub name: &'static str,
    pub columns: &'static [(&'static str, Kind)],
    /// The position in `columns` of the column rows are ordered and paged by.
    pub key: usize,
    /// The rows a copy moves, as an SQL condition: all but SQLite's tail
    /// marker (`db/chain.rs`), which belongs to the source's feed.
    pub rows: &'static str,
}

impl Table {
    pub fn column_list(&self) -> String {
        let names: Vec<&str> = self.columns.iter().map(|(name, _)| *name).collect();
        names.join(", ")
    }

    pub fn key_name(&self) -> &'static str {
        self.columns[self.key].0
    }
}

/// A row: one value per column of its table, in the table's order.
pub(crate) type Row = Vec<Value>;

use Kind::{Blob, Int, Text};

/// Every column of every table a copy moves, parents before children (an
/// event refers to its callback's seq). The history's chain (a callback's
/// `last_event_seq`, an event's `previous_event_seq`) is copied as stored:
/// the seqs stay, so the links stay true on the other side. A column a migration adds must be
/// added here: `copy_tables_name_every_column_of_the_schema` (unit test,
/// SQLite) and core/tests/copy.rs (PostgreSQL) fail until it is.
pub(crate) const TABLES: [Table; 4] = [
    Table {
        name: "callbacks",
        columns: &[
            ("seq", Int),
            ("id", Text),
            ("organization_id", Text),
            ("source_session_id", Text),
            ("created_session_id", Text),
            ("agent_id", Text),
            ("phone_number_id", Text),
            ("to_number", Text),
            ("from_number", Text),
            ("scheduled_at", Int),
            ("status", Text),
            ("reason", Text),
            ("instructions", Text),
            ("summary", Text),
            ("pipeline_config", Text),
            ("metadata", Text),
            ("failure_cause", Text),
            ("attempted_at", Int),
            ("dispatched_at", Int),
            ("cancelled_at", Int),
            ("created_at", Int),
            ("updated_at", Int),
            ("idempotency_key", Text),
            ("request_hash", Blob),
            ("claim_token", Text),
            ("claim_spent_at", Int),
            ("timezone", Text),
            ("expires_at", Int),
            ("attempt", Int),
            ("previous_callback_id", Text),
            ("eligible_at", Int),
            ("window_ends_at", Int),
            ("last_event_seq", Int),
        ],
        key: 0,
        rows: "TRUE",
    },
    Table {
        name: "callback_events",
        columns: &[
            ("seq", Int),
            ("callback_seq", Int),
            ("action", Text),
            ("from_status", Text),
            ("to_status", Text),
            ("at", Int),
            ("detail", Text),
            ("previous_event_seq", Int),
        ],
        key: 0,
        rows: "callback_seq <> 0",
    },
    Table {
        name: "api_keys",
        columns: &[
            ("id", Text),
            ("organization_id", Text),
            ("label", Text),
            ("token_hash", Blob),
            ("created_at", Int),
            ("revoked_at", Int),
        ],
        key: 0,
        rows: "TRUE",
    },
    Table {
        name: "calling_policies",
        columns: &[
            ("id", Int),
            ("organization_id", Text),
            ("agent_id", Text),
            ("policy", Text),
            ("updated_at", Int),
        ],
        key: 0,
        rows: "TRUE",
    },
];

/// The data access of a copy: whole tables, in key order, as stored.
pub(crate) trait CopyRows {
    /// Makes the transaction just opened a consistent snapshot of the
    /// whole store, for reading a copy's source. SQLite's read
    /// transaction is one already, so only PostgreSQL's copy calls it.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    fn begin_snapshot(&self) -> Result<()> {
        Ok(())
    }
    /// Up to `limit` rows of `table` whose key comes after `after` (from
    /// the first row when None), in key order: byte order for text keys on
    /// both backends, whatever the database's collation.
    fn copy_page(&self, table: &Table, after: Option<&Value>, limit: usize) -> Result<Vec<Row>>;
    /// Inserts `rows` as they are, keys included.
    fn copy_insert(&self, table: &Table, rows: &[Row]) -> Result<()>;
    /// How many rows `table` holds.
    fn copy_count(&self, table: &Table) -> Result<u64>;
    /// Keeps other writers out of a copy's target until its transaction
    /// ends. SQLite's write transaction holds the file's lock already.
    fn copy_lock(&self) -> Result<()> {
        Ok(())
    }
    /// The secret that signs list cursors (store_meta).
    fn cursor_secret(&self) -> Result<Vec<u8>>;
    fn set_cursor_secret(&self, secret: &[u8]) -> Result<()>;
    /// Once rows went in with explicit `seq` values: new rows must be
    /// numbered after them. SQLite numbers a new row after the largest
    /// rowid by itself; PostgreSQL moves its identity sequences.
    fn copy_finish(&self) -> Result<()> {
        Ok(())
    }
}

/// Runs `f` over one consistent snapshot of an SQLite store: a read
/// transaction (WAL: writers go on, unseen, while it lasts).
pub(crate) fn sqlite_snapshot<T>(
    conn: &mut Connection,
    now: Timestamp,
    f: impl Fn(&dyn Dao) -> Result<T>,
) -> Result<T> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
    let out = f(&SqliteDao::new(&tx, now))?;
    tx.commit()?;
    Ok(out)
}

/// The value of a column of `kind` at position `i` of an SQLite row.
fn sqlite_value(row: &rusqlite::Row<'_>, i: usize, kind: Kind) -> rusqlite::Result<Value> {
    Ok(match kind {
        Int => row
            .get::<_, Option<i64>>(i)?
            .map_or(Value::Null, Value::Int),
        Text => row
            .get::<_, Option<String>>(i)?
            .map_or(Value::Null, Value::Text),
        Blob => row
            .get::<_, Option<Vec<u8>>>(i)?
            .map_or(Value::Null, Value::Blob),
    })
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(v) => ValueRef::Integer(*v),
            Value::Text(v) => ValueRef::Text(v.as_bytes()),
            Value::Blob(v) => ValueRef::Blob(v),
        }))
    }
}

impl CopyRows for SqliteDao<'_> {
    /// SQLite compares text as bytes (BINARY), so `ORDER BY` is byte order.
    fn copy_page(&self, table: &Table, after: Option<&Value>, limit: usize) -> Result<Vec<Row>> {
        let key = table.key_name();
        let filter = if after.is_some() {
            format!("WHERE {} AND {key} > ?2", table.rows)
        } else {
            format!("WHERE {}", table.rows)
        };
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {} FROM {} {filter} ORDER BY {key} LIMIT ?1",
            table.column_list(),
            table.name
        ))?;
        let limit = limit as i64;
        let read = |row: &rusqlite::Row<'_>| {
            table
                .columns
                .iter()
                .enumerate()
                .map(|(i, (_, kind))| sqlite_value(row, i, *kind))
                .collect::<rusqlite::Result<Row>>()
        };
        let rows = match after {
            Some(after) => stmt.query_map(rusqlite::params![limit, after], read)?,
            None => stmt.query_map([limit], read)?,
        };
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// One prepared INSERT run per row: inside one transaction SQLite
    /// writes as fast this way as with many rows a statement.
    fn copy_insert(&self, table: &Table, rows: &[Row]) -> Result<()> {
        let placeholders = vec!["?"; table.columns.len()].join(", ");
        let mut stmt = self.conn.prepare_cached(&format!(
            "INSERT INTO {} ({}) VALUES ({placeholders})",
            table.name,
            table.column_list()
        ))?;
        for row in rows {
            stmt.execute(rusqlite::params_from_iter(row))?;
        }
        Ok(())
    }

    fn copy_count(&self, table: &Table) -> Result<u64> {
        let sql = format!("SELECT COUNT(*) FROM {} WHERE {}", table.name, table.rows);
        let count: i64 = self.conn.query_row(&sql, [], |row| row.get(0))?;
        Ok(count as u64)
    }

    fn cursor_secret(&self) -> Result<Vec<u8>> {
        crate::schema::cursor_secret(self.conn)
    }

    fn set_cursor_secret(&self, secret: &[u8]) -> Result<()> {
        let changed = self.conn.execute(
            "UPDATE store_meta SET value = ?1 WHERE key = 'cursor_secret'",
            [secret],
        )?;
        if changed != 1 {
            return Err(Error::schema(
                "the store has lost its cursor secret (store_meta)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    #[test]
    fn copy_tables_name_every_column_of_the_schema() {
        let store = Store::open_in_memory().unwrap();
        for table in &TABLES {
            let schema: Vec<(String, String)> = store.with_connection(|conn| {
                let mut stmt = conn
                    .prepare(&format!(
                        "SELECT name, type FROM pragma_table_info('{}')",
                        table.name
                    ))
                    .unwrap();
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
                rows.collect::<rusqlite::Result<_>>().unwrap()
            });
            let expected: Vec<(String, String)> = table
                .columns
                .iter()
                .map(|(name, kind)| {
                    let declared = match kind {
                        Int => "INTEGER",
                        Text => "TEXT",
                        Blob => "BLOB",
                    };
                    (name.to_string(), declared.to_string())
                })
                .collect();
            assert_eq!(schema, expected, "the columns of {}", table.name);
        }
    }
}
