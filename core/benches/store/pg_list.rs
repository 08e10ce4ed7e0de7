//! P9: the first page of a list (default limit 25, newest first, one
//! organization) on PostgreSQL, on 1M and 10k callbacks, against the SQL
//! the store sends (core/src/db/postgres.rs `list`: 26 rows, to see the
//! next page) through the raw `postgres` crate.
//!
//! The data sets are the SQLite ones' (same rows, same organizations, a
//! third finished), loaded once with COPY into a schema of their own and
//! kept in the bench cluster between runs (`bench_list_<n>_v1`, marked
//! complete by a comment on the schema once loaded and analyzed).

use callback_store::{ListQuery, Store};
use postgres::Client;

use crate::data::BIG_ORG;
use crate::pg::{self, read_row};
use crate::stats::{latency, median_spread, Goal, Row};

const DONE: &str = "callback-store bench data set, loaded and analyzed";

/// The schema of the `n`-row list data set, loaded if missing.
fn data_set(base: &str, n: usize) -> String {
    let schema = format!("bench_list_{n}_v1");
    let mut admin = pg::connect(base);
    let comment: Option<String> = admin
        .query_opt(
            "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = $1",
            &[&schema],
        )
        .unwrap()
        .and_then(|r| r.get(0));
    if comment.as_deref() != Some(DONE) {
        eprintln!("bench: P9: loading {n} callbacks into PostgreSQL schema {schema} (COPY)");
        let started = std::time::Instant::now();
        pg::fresh_schema(base, &schema);
        // A third finished, as the SQLite data set (data::populated).
        pg::load(base, &schema, n, |seq| match seq % 6 {
            1 => "dispatched",
            2 => "cancelled",
            3 => "failed",
            _ => "scheduled",
        });
        admin
            .batch_execute(&format!("COMMENT ON SCHEMA {schema} IS '{DONE}'"))
            .unwrap();
        eprintln!(
            "bench: P9: loaded {n} in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    schema
}

fn list_sql() -> String {
    format!(
        "SELECT {} FROM callbacks WHERE organization_id = $1 ORDER BY seq DESC LIMIT $2",
        pg::COLUMNS
    )
}

/// The plan of the first page, one line.
fn plan(client: &mut Client) -> String {
    let rows = client
        .query(&format!("EXPLAIN {}", list_sql()), &[&BIG_ORG, &26i64])
        .unwrap();
    rows.iter()
        .map(|r| r.get::<_, String>(0).trim().to_owned())
        .collect::<Vec<_>>()
        .join(" / ")
}

/// A contender's p50 per round.
struct Contender {
    name: &'static str,
    p50s: Vec<f64>,
}

/// P9: `rounds` rounds, each measuring every contender (`reps` samples
/// each, p50), in a rotated order; medians of the rounds' p50s.
pub fn p9_list(big_n: usize, reps: usize, rounds: usize) -> Vec<Row> {
    let base = pg::base_url();
    let big = data_set(&base, big_n);
    let small = data_set(&base, 10_000);
    let big_store = pg::open_store(&base, &big);
    let small_store = pg::open_store(&base, &small);
    let mut big_client = pg::connect(&pg::schema_url(&base, &big));
    let mut small_client = pg::connect(&pg::schema_url(&base, &small));
    let sql = list_sql();
    let big_stmt = big_client.prepare(&sql).unwrap();
    let small_stmt = small_client.prepare(&sql).unwrap();
    let rows_n: i64 = big_client
        .query_one("SELECT COUNT(*) FROM callbacks", &[])
        .unwrap()
        .get(0);
    let big_plan = plan(&mut big_client);
    let small_plan = plan(&mut small_client);
    let query = ListQuery::default();
    let rows_asked = i64::from(query.limit) + 1;

    let list = |store: &Store| {
        let org = store.organization(BIG_ORG).unwrap();
        latency(reps, |_| {
            let page = org.list(&query).unwrap();
            assert_eq!(page.callbacks.len(), query.limit as usize);
            std::hint::black_box(page);
        })
        .p50_us
    };
    let raw = |client: &mut Client, stmt: &postgres::Statement, parse: bool| {
        latency(reps, |_| {
            let rows = client.query(stmt, &[&BIG_ORG, &rows_asked]).unwrap();
            assert_eq!(rows.len() as i64, rows_asked);
            for row in &rows {
                let cells = read_row(row);
                if parse {
                    std::hint::black_box(pg::parse_json_columns(&cells));
                }
                std::hint::black_box(cells);
            }
        })
        .p50_us
    };
    let mut c: Vec<Contender> = [
        "store 1M",
        "raw 1M",
        "store 10k",
        "raw 10k",
        "raw 1M, JSON parsed",
    ]
    .into_iter()
    .map(|name| Contender {
        name,
        p50s: Vec::new(),
    })
    .collect();
    for round in 0..rounds {
        for k in 0..c.len() {
            let i = (k + round) % c.len();
            let p50 = match i {
                0 => list(&big_store),
                1 => raw(&mut big_client, &big_stmt, false),
                2 => list(&small_store),
                3 => raw(&mut small_client, &small_stmt, false),
                _ => raw(&mut big_client, &big_stmt, true),
            };
            c[i].p50s.push(p50);
        }
    }
    let med = |i: usize| median_spread(&c[i].p50s).0;
    let show = |i: usize| {
        let (m, lo, hi) = median_spread(&c[i].p50s);
        format!("{} p50 {m:.0} us [{lo:.0}–{hi:.0}]", c[i].name)
    };
    let paired = |a: usize, b: usize| {
        let r: Vec<f64> = c[a]
            .p50s
            .iter()
            .zip(&c[b].p50s)
            .map(|(x, y)| x / y)
            .collect();
        median_spread(&r)
    };
    let ratio_spread = |a: usize, b: usize| {
        let (m, lo, hi) = paired(a, b);
        format!("ratio of each round: median {m:.2} [{lo:.2}–{hi:.2}]")
    };
    let head = "PostgreSQL list, first page (25, created_desc, one org)";
    vec![
        Row::new(
            "P9",
            &format!("{head}: {rows_n} rows vs raw SQL"),
            med(0),
            med(1),
            "us",
            Goal::AtMost,
            1.5,
        )
        .paired_ratio(paired(0, 1).0)
        .note(format!(
            "ratio = median of the {rounds} rounds' own ratios (p50 of {reps} lists each); {}; \
             {}; {}; {}; plan: {big_plan}",
            show(0),
            show(1),
            show(4),
            ratio_spread(0, 1)
        )),
        Row::new(
            "P9",
            &format!("{head}: {rows_n} vs 10k rows"),
            med(0),
            med(2),
            "us",
            Goal::AtMost,
            1.5,
        )
        .paired_ratio(paired(0, 2).0)
        .note(format!(
            "{}; {}; raw 1M vs 10k {:.2}; {}; plan on 10k: {small_plan}",
            show(2),
            show(3),
            med(1) / med(3),
            ratio_spread(0, 2)
        )),
        Row::new(
            "P9",
            &format!("{head}: 10k rows vs raw SQL"),
            med(2),
            med(3),
            "us",
            Goal::AtMost,
            1.5,
        )
        .paired_ratio(paired(2, 3).0)
        .note(ratio_spread(2, 3)),
    ]
}
