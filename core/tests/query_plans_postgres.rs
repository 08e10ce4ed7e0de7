//! On PostgreSQL, every statement the store runs finds callbacks and their
//! history through an index, never by reading the whole table: on 100,000
//! callbacks (and as many events) after ANALYZE, each statement the store
//! prepared during a workload that covers every operation, every list
//! filter combination, both orders, with and without a cursor, is
//! EXPLAINed as PostgreSQL plans it for any parameter values (its generic
//! plan, the one a prepared statement settles on).
//!
//! The statements are the store's own (`Store::postgres_statements`), not
//! copies, so they cannot drift from the code.
#![cfg(feature = "postgres")]

mod common;

use callback_store::{ListQuery, NewCallback, Order, Status, Store, StoreOptions};
use common::{at_minutes, new_callback, t0};
use std::sync::Arc;
use testkit::TestDb;

const ROWS: i64 = 100_000;

/// The one statement that reads every callback by design: `Store::stats`
/// counts every organization's callbacks by status (core/src/db/stats.rs).
/// The other stats statements are checked with the rest.
const COUNT_ALL_BY_STATUS: &str =
    "SELECT organization_id, status, COUNT(*) FROM callbacks GROUP BY organization_id, status";

/// A store on a fresh schema holding ROWS callbacks in 50 organizations
/// (most finished, as in a store that has run for a while) with one event
/// each, plus the rows the workload makes.
fn loaded_store() -> Store {
    let db = TestDb::postgres(&testkit::require_postgres());
    let clock = callback_store::ManualClock::new(t0());
    let store = Store::open_with(
        db.location(),
        StoreOptions {
            clock: Arc::new(clock),
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let t0_micros = t0().timestamp_micros();
    common::execute(
        &store,
        &format!(
            "INSERT INTO callbacks (id, organization_id, source_session_id, agent_id, to_number,
                 scheduled_at, status, attempted_at, created_at, updated_at)
             SELECT 'cb_bulk_' || g, 'org_' || (g % 50),
                 CASE WHEN g % 3 = 0 THEN 'sess_' || (g % 5000) END,
                 CASE WHEN g % 4 = 0 THEN 'agent_' || (g % 20) END,
                 '+1201555' || lpad((g % 10000)::text, 4, '0'),
                 {t0_micros} + (g::bigint - {ROWS}) * 60000000,
                 CASE WHEN g % 100 < 80 THEN 'dispatched' WHEN g % 100 < 90 THEN 'scheduled'
                      WHEN g % 100 < 95 THEN 'cancelled' WHEN g % 100 < 99 THEN 'failed'
                      ELSE 'dispatching' END,
                 {t0_micros} + (g::bigint - {ROWS}) * 60000000,
                 {t0_micros} + (g::bigint - {ROWS}) * 60000000,
                 {t0_micros} + (g::bigint - {ROWS}) * 60000000
             FROM generate_series(1, {ROWS}) AS g;
             INSERT INTO callback_events (callback_seq, action, to_status, at)
             SELECT seq, 'create', 'scheduled', created_at FROM callbacks;"
        ),
    );
    store
}

/// Runs every operation of the store, so that it prepares every statement
/// it has: each list filter combination in both orders, first pages and
/// pages after a cursor.
fn run_every_operation(store: &Store) {
    let org = store.organization("org_7").unwrap();
    let made = org
        .create(NewCallback {
            source_session_id: Some("sess_7".into()),
            agent_id: Some("agent_7".into()),
            idempotency_key: Some("key_7".into()),
            ..new_callback(5)
        })
        .unwrap();
    org.create_many((0..3).map(new_callback).collect()).unwrap();
    org.get(&made.id).unwrap();
    org.history(&made.id).unwrap();
    org.count_by_status().unwrap();
    org.stats(at_minutes(10)).unwrap();
    store.stats(at_minutes(10)).unwrap();
    org.reschedule(&made.id, at_minutes(1)).unwrap();
    let other = org.create(new_callback(2)).unwrap();
    org.cancel(&other.id, Some("no longer needed")).unwrap();
    let claim = org.dispatch(&made.id).unwrap();
    store.claim_by_token(claim.id(), claim.token()).unwrap();
    org.complete_dispatch(&made.id, "sess_done", Some(claim.token()))
        .unwrap();
    for claim in store.claim_due(at_minutes(10), 2).unwrap() {
        org.fail_dispatch(claim.id(), "no answer", Some(claim.token()))
            .ok();
    }
    store
        .recover_stale(at_minutes(10), std::time::Duration::from_secs(60))
        .unwrap();
    store.prune(t0() - chrono::Duration::days(3650)).unwrap();
    let key = store.create_api_key("org_7", "plans").unwrap();
    store.authenticate(&key.token).unwrap();
    store.list_api_keys("org_7").unwrap();
    store.revoke_api_key(&key.key.id).unwrap();
    for mask in 0..64u32 {
        for order in [Order::CreatedDesc, Order::ScheduledAsc] {
            let on = |bit: u32| mask & (1 << bit) != 0;
            let query = ListQuery {
                status: on(0).then_some(Status::Scheduled),
                source_session_id: on(1).then(|| "sess_7".to_owned()),
                agent_id: on(2).then(|| "agent_7".to_owned()),
                to_number: on(3).then(|| "+12015551234".to_owned()),
                scheduled_after: on(4).then(|| t0() - chrono::Duration::days(30)),
                scheduled_before: on(5).then(|| at_minutes(60)),
                order,
                limit: 1,
                cursor: None,
            };
            let first = org.list(&query).unwrap();
            // A cursor only comes with a full page: ask for one past the
            // rows this organization has, via a one-row page.
            if let Some(cursor) = first.next_cursor {
                org.list(&ListQuery {
                    cursor: Some(cursor),
                    ..query
                })
                .unwrap();
            }
        }
    }
}

/// The generic plan of `sql`, as lines of EXPLAIN text.
fn generic_plan(client: &mut postgres::Client, sql: &str) -> Vec<String> {
    client
        .batch_execute("DEALLOCATE ALL; SET plan_cache_mode = force_generic_plan")
        .unwrap();
    client
        .batch_execute(&format!("PREPARE checked AS {sql}"))
        .unwrap_or_else(|e| panic!("PREPARE failed: {e}\n{sql}"));
    let params: i32 = client
        .query_one(
            "SELECT cardinality(parameter_types) FROM pg_prepared_statements WHERE name = 'checked'",
            &[],
        )
        .unwrap()
        .get(0);
    let nulls = vec!["NULL"; params as usize].join(", ");
    let execute = if params == 0 {
        "EXPLAIN EXECUTE checked".to_owned()
    } else {
        format!("EXPLAIN EXECUTE checked({nulls})")
    };
    client
        .query(&execute, &[])
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

#[test]
fn every_statement_on_callbacks_uses_an_index_and_never_scans_the_table() {
    let store = loaded_store();
    run_every_operation(&store);
    let statements = store.postgres_statements();
    let on_callbacks: Vec<&String> = statements
        .iter()
        .filter(|sql| sql.contains("callbacks") && !sql.trim_start().starts_with("INSERT"))
        .filter(|sql| sql.as_str() != COUNT_ALL_BY_STATUS)
        .collect();
    // 64 filter combinations x 2 orders, plus pages after a cursor, plus
    // the other operations.
    assert!(on_callbacks.len() > 128, "{}", on_callbacks.len());
    let failures: Vec<String> = store
        .with_postgres(|client| {
            client
                .batch_execute("ANALYZE callbacks; ANALYZE callback_events")
                .unwrap();
            on_callbacks
                .iter()
                .filter_map(|sql| {
                    let plan = generic_plan(client, sql);
                    let scans_table = plan.iter().any(|l| {
                        l.contains("Seq Scan on callbacks")
                            || l.contains("Seq Scan on callback_events")
                    });
                    let uses_index = plan.iter().any(|l| l.contains("Index"));
                    if std::env::var_os("SHOW_PLANS").is_some() {
                        eprintln!("{sql}\n{}\n", plan.join("\n"));
                    }
                    (scans_table || !uses_index).then(|| format!("{sql}\n{}", plan.join("\n")))
                })
                .collect()
        })
        .unwrap()
        .unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} statements read callbacks without an index:\n\n{}",
        failures.len(),
        on_callbacks.len(),
        failures.join("\n\n")
    );
}

#[test]
fn the_plan_check_sees_a_table_scan() {
    // The check above must be able to fail: a filter no index covers.
    let store = loaded_store();
    let plan = store
        .with_postgres(|client| {
            client.batch_execute("ANALYZE callbacks").unwrap();
            generic_plan(client, "SELECT id FROM callbacks WHERE reason = $1")
        })
        .unwrap()
        .unwrap();
    assert!(
        plan.iter().any(|l| l.contains("Seq Scan on callbacks")),
        "{plan:#?}"
    );
}
