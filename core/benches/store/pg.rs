//! PostgreSQL for P8 and P9: the cluster (BENCH_PG_URL, which
//! scripts/bench.sh starts for the run), a fresh schema per data set, the
//! data sets loaded with COPY FROM STDIN, and the baseline's row reading.
//!
//! The data are the SQLite data sets' (`data::callback`, same seed, same
//! organizations), written straight into the store's own tables: the
//! schema is made by `Store::open` (the store's migrations), the rows by
//! COPY, then VACUUM ANALYZE. No `create` history rows are written: no
//! workload here reads them.

use std::io::Write;

use callback_store::{Durability, Store, StoreOptions};
use postgres::types::Type;
use postgres::{Client, NoTls, Row};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::data::{self, t0};

/// The base URL of the cluster (a database; schemas are made in it).
pub fn base_url() -> String {
    std::env::var("BENCH_PG_URL").unwrap_or_else(|_| {
        eprintln!(
            "bench: P8 and P9 need a PostgreSQL cluster: set BENCH_PG_URL \
             (scripts/bench.sh starts one with scripts/pg.sh)"
        );
        std::process::exit(2)
    })
}

/// The URL of `schema` in the cluster of `base`.
pub fn schema_url(base: &str, schema: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-csearch_path%3D{schema}")
}

pub fn connect(url: &str) -> Client {
    let mut client = Client::connect(url, NoTls)
        .unwrap_or_else(|e| panic!("bench: cannot connect to PostgreSQL at {url}: {e}"));
    // The store's own session settings (core/src/store/postgres.rs), so
    // that only the SQL work differs.
    client
        .batch_execute(
            "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED;
             SET lock_timeout = 5000;
             SET TIME ZONE 'UTC';",
        )
        .unwrap();
    client
}

pub fn options(max_connections: u32) -> StoreOptions {
    StoreOptions {
        max_connections,
        ..data::options(Durability::Normal)
    }
}

pub fn open_store(base: &str, schema: &str) -> Store {
    Store::open_with(schema_url(base, schema), options(10)).expect("open the PostgreSQL store")
}

/// Drops and creates `schema`, and lets the store make its tables there.
pub fn fresh_schema(base: &str, schema: &str) {
    let mut admin = connect(base);
    admin
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};"
        ))
        .unwrap();
    drop(open_store(base, schema));
}

pub fn drop_schema(base: &str, schema: &str) {
    connect(base)
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .unwrap();
}

/// A field of COPY's text format.
fn field(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        None => out.extend_from_slice(b"\\N"),
        Some(v) => {
            for b in v.bytes() {
                match b {
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    _ => out.push(b),
                }
            }
        }
    }
}

/// Loads callbacks `0..n` of the data set into the (empty) `callbacks` of
/// `schema`, in the order of their `seq` (1..=n), with COPY FROM STDIN;
/// `status(seq)` gives each row's status. Then VACUUM ANALYZE.
pub fn load(base: &str, schema: &str, n: usize, status: impl Fn(usize) -> &'static str) {
    let mut client = connect(&schema_url(base, schema));
    let created = t0().timestamp_micros().to_string();
    let mut writer = client
        .copy_in(
            "COPY callbacks (id, organization_id, source_session_id, agent_id, phone_number_id,
                 to_number, from_number, scheduled_at, status, reason, instructions, summary,
                 pipeline_config, metadata, created_at, updated_at, eligible_at) FROM STDIN",
        )
        .unwrap();
    let mut rng = StdRng::seed_from_u64(data::SEED);
    let mut buf = Vec::with_capacity(1 << 20);
    for i in 0..n {
        let c = data::callback(&mut rng, i);
        let id = format!("cb_{i:032}");
        let org = data::batch_org(i / 1000);
        let scheduled = c.scheduled_at.timestamp_micros().to_string();
        let pipeline = serde_json::to_string(&c.pipeline_config).unwrap();
        let metadata = serde_json::to_string(&c.metadata).unwrap();
        // eligible_at: when a callback with no calling policy may ring, its
        // scheduled time (what the store writes on create).
        let fields: [Option<&str>; 17] = [
            Some(&id),
            Some(&org),
            c.source_session_id.as_deref(),
            c.agent_id.as_deref(),
            c.phone_number_id.as_deref(),
            Some(&c.to_number),
            c.from_number.as_deref(),
            Some(&scheduled),
            Some(status(i + 1)),
            c.reason.as_deref(),
            c.instructions.as_deref(),
            c.summary.as_deref(),
            Some(&pipeline),
            Some(&metadata),
            Some(&created),
            Some(&created),
            Some(&scheduled),
        ];
        for (k, value) in fields.iter().enumerate() {
            if k > 0 {
                buf.push(b'\t');
            }
            field(&mut buf, *value);
        }
        buf.push(b'\n');
        if buf.len() >= 1 << 20 {
            writer.write_all(&buf).unwrap();
            buf.clear();
        }
    }
    writer.write_all(&buf).unwrap();
    let copied = writer.finish().unwrap();
    assert_eq!(copied as usize, n, "COPY loaded every row");
    client.batch_execute("VACUUM ANALYZE callbacks").unwrap();
}

/// One column of a row as the baseline reads it (kept only to be read:
/// the workloads hand it to black_box).
#[derive(Debug)]
#[allow(dead_code)]
pub enum Cell {
    Int(Option<i64>),
    Text(Option<String>),
}

/// Every column of a row, read as an application reading records would.
pub fn read_row(row: &Row) -> Vec<Cell> {
    (0..row.len())
        .map(|i| {
            if *row.columns()[i].type_() == Type::INT8 {
                Cell::Int(row.get(i))
            } else {
                Cell::Text(row.get(i))
            }
        })
        .collect()
}

/// The columns the store reads and returns for a callback (CALLBACK_COLUMNS
/// in core/src/db.rs).
pub const COLUMNS: &str = crate::raw::COLUMNS;

/// metadata and pipeline_config of a row of `COLUMNS`, parsed into the maps
/// the store returns.
pub fn parse_json_columns(row: &[Cell]) -> Vec<serde_json::Map<String, serde_json::Value>> {
    [14, 15]
        .iter()
        .map(|&i| match &row[i] {
            Cell::Text(Some(text)) => serde_json::from_str(text).unwrap(),
            other => panic!("column {i} is not JSON text: {other:?}"),
        })
        .collect()
}
