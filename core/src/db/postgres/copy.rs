//! The data access of `Store::copy_into` over PostgreSQL (see db/copy.rs):
//! whole tables in pages, read from a REPEATABLE READ snapshot and
//! inserted with many rows a statement.

use super::{Params, PgDao, Session};
use crate::db::copy::{CopyRows, Kind, Row, Table, Value, TABLES};
use crate::error::{Error, Result};

/// A value bound as its column's type, NULL included (a NULL is typed too).
fn typed(value: &Value, kind: Kind) -> Result<Box<dyn postgres::types::ToSql + Sync + '_>> {
    Ok(match (value, kind) {
        (Value::Null, Kind::Int) => Box::new(None::<i64>),
        (Value::Null, Kind::Text) => Box::new(None::<&str>),
        (Value::Null, Kind::Blob) => Box::new(None::<&[u8]>),
        (Value::Int(v), Kind::Int) => Box::new(*v),
        (Value::Text(v), Kind::Text) => Box::new(v.as_str()),
        (Value::Blob(v), Kind::Blob) => Box::new(v.as_slice()),
        (value, kind) => {
            return Err(Error::storage(
                format!("copy: a {kind:?} column was given {value:?}"),
                false,
            ))
        }
    })
}

/// The value of a column of `kind` at position `i`.
fn read_value(row: &postgres::Row, i: usize, kind: Kind) -> Result<Value> {
    Ok(match kind {
        Kind::Int => row
            .try_get::<_, Option<i64>>(i)?
            .map_or(Value::Null, Value::Int),
        Kind::Text => row
            .try_get::<_, Option<String>>(i)?
            .map_or(Value::Null, Value::Text),
        Kind::Blob => row
            .try_get::<_, Option<Vec<u8>>>(i)?
            .map_or(Value::Null, Value::Blob),
    })
}

/// How the key compares: text in byte order (COLLATE "C"), as SQLite's
/// BINARY does, whatever the database's default collation.
fn key_expression(table: &Table) -> String {
    let (name, kind) = table.columns[table.key];
    match kind {
        Kind::Text => format!("{name} COLLATE \"C\""),
        Kind::Int | Kind::Blob => name.to_owned(),
    }
}

impl CopyRows for PgDao<'_> {
    /// Turns the transaction just begun into a REPEATABLE READ, READ ONLY
    /// one (allowed before its first query), so that every page of every
    /// table is read as of the same instant while writers go on; then
    /// checks that it took.
    fn begin_snapshot(&self) -> Result<()> {
        self.execute(
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
            &[],
        )?;
        let row = self.query_opt(
            "SELECT current_setting('transaction_isolation'),
                    current_setting('transaction_read_only')",
            &[],
        )?;
        let settings: Option<(String, String)> = row
            .map(|r| Ok::<_, postgres::Error>((r.try_get(0)?, r.try_get(1)?)))
            .transpose()?;
        match settings.as_ref().map(|(i, r)| (i.as_str(), r.as_str())) {
            Some(("repeatable read", "on")) => Ok(()),
            other => Err(Error::storage(
                format!("copy: the source's snapshot is not REPEATABLE READ, READ ONLY: {other:?}"),
                false,
            )),
        }
    }

    fn copy_page(&self, table: &Table, after: Option<&Value>, limit: usize) -> Result<Vec<Row>> {
        let key = key_expression(table);
        let limit = limit as i64;
        let after = after
            .map(|v| typed(v, table.columns[table.key].1))
            .transpose()?;
        let mut params = Params::default();
        let mut sql = format!(
            "SELECT {} FROM {} WHERE {}",
            table.column_list(),
            table.name,
            table.rows
        );
        if let Some(after) = &after {
            sql.push_str(&format!(" AND {key} > {}", params.bind(after.as_ref())));
        }
        sql.push_str(&format!(" ORDER BY {key} LIMIT {}", params.bind(&limit)));
        self.query_map(&sql, params.values(), |row| {
            table
                .columns
                .iter()
                .enumerate()
                .map(|(i, (_, kind))| read_value(row, i, *kind))
                .collect()
        })
    }

    /// All of `rows` in one INSERT (`VALUES (…), (…), …`): one round trip
    /// a page. A page of 1,000 callbacks binds 26,000 values, under
    /// PostgreSQL's 65,535.
    fn copy_insert(&self, table: &Table, rows: &[Row]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let values: Vec<Box<dyn postgres::types::ToSql + Sync + '_>> = rows
            .iter()
            .flat_map(|row| {
                row.iter()
                    .zip(table.columns)
                    .map(|(v, (_, k))| typed(v, *k))
            })
            .collect::<Result<_>>()?;
        let mut params = Params::default();
        let tuples: Vec<String> = values
            .chunks(table.columns.len())
            .map(|row| {
                let binds: Vec<String> = row.iter().map(|v| params.bind(v.as_ref())).collect();
                format!("({})", binds.join(", "))
            })
            .collect();
        let sql = format!(
            "INSERT INTO {} ({}) VALUES {}",
            table.name,
            table.column_list(),
            tuples.join(", ")
        );
        // Unnamed, not kept: each batch size is its own statement, too
        // large and too rare to keep prepared on the pooled connection.
        match &mut *self.session.borrow_mut() {
            Session::Transaction(tx) => tx.execute(sql.as_str(), params.values())?,
            Session::Client(client) => client.execute(sql.as_str(), params.values())?,
        };
        Ok(())
    }

    fn copy_count(&self, table: &Table) -> Result<u64> {
        let row = self.query(
            &format!("SELECT COUNT(*) FROM {} WHERE {}", table.name, table.rows),
            &[],
        )?;
        let count: i64 = row
            .first()
            .ok_or_else(|| Error::storage("PostgreSQL: COUNT(*) returned no row", false))?
            .try_get(0)?;
        Ok(count as u64)
    }

    /// EXCLUSIVE: readers go on, every other writer waits for the copy
    /// (a lock wait past the deadline is a busy error, retried).
    fn copy_lock(&self) -> Result<()> {
        let names: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
        self.execute(
            &format!(
                "LOCK TABLE {}, store_meta IN EXCLUSIVE MODE",
                names.join(", ")
            ),
            &[],
        )?;
        Ok(())
    }

    fn cursor_secret(&self) -> Result<Vec<u8>> {
        let row = self.query_opt(
            "SELECT value FROM store_meta WHERE key = 'cursor_secret'",
            &[],
        )?;
        row.map(|r| r.try_get(0))
            .transpose()?
            .ok_or_else(|| Error::schema("the store has lost its cursor secret (store_meta)"))
    }

    fn set_cursor_secret(&self, secret: &[u8]) -> Result<()> {
        let changed = self.execute(
            "UPDATE store_meta SET value = $1 WHERE key = 'cursor_secret'",
            &[&secret],
        )?;
        if changed != 1 {
            return Err(Error::schema(
                "the store has lost its cursor secret (store_meta)",
            ));
        }
        Ok(())
    }

    /// Moves each identity past the largest key copied, so the next
    /// insert takes the next number instead of colliding with a copied
    /// row. `setval` is not rolled back with the transaction: a copy that
    /// fails leaves the sequence moved, which only skips numbers.
    fn copy_finish(&self) -> Result<()> {
        // Every integer key is an identity (seq, a policy's id).
        for table in TABLES
            .iter()
            .filter(|t| t.columns[t.key].1 == super::super::copy::Kind::Int)
        {
            self.query(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{0}', '{1}'),
                         COALESCE((SELECT MAX({1}) FROM {0}), 0) + 1, false)",
                    table.name,
                    table.key_name()
                ),
                &[],
            )?;
        }
        Ok(())
    }
}
