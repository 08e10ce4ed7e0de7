//! `Store::copy_into`: an SQLite file copied to PostgreSQL and back keeps
//! everything a user can observe (every callback in every status, its
//! history, idempotency, API keys, list pages and their cursors), the same
//! checksum on all three, and numbers new rows after the copied ones; a
//! target that is not empty is refused and left as it was.
//!
//! Needs PostgreSQL (`CALLBACK_STORE_TEST_POSTGRES`, see testkit) and the
//! core's `postgres` feature (on in `cargo test --workspace`; alone:
//! `cargo test -p callback-store --features postgres --test copy`).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use callback_store::{
    ApiKey, CallOutcome, Callback, CallbackEvent, CallingPolicy, CallingWindow, ErrorCode,
    ListQuery, NewCallback, Order, Page, Since, Status, Store, Weekday,
};
use common::{at_minutes, count, file_store, new_callback, t0};
use serde_json::json;
use testkit::{require_postgres, TestDb};

const ORGS: [&str; 3] = ["org_a", "org_b", "org_c"];

/// A store with history: callbacks in every status, reached through every
/// transition, in three organizations interleaved (so that seq is not
/// contiguous per organization), with idempotency keys, metadata, claims
/// spent and unspent, pruned callbacks (gaps in seq), more than one page
/// (1,000 rows) of callbacks and of events, and two API keys, one revoked.
struct Source {
    _db: TestDb,
    store: Store,
    /// The idempotent creation, to retry on a copy.
    idempotent: NewCallback,
    idempotent_id: String,
    live_token: String,
    revoked_token: String,
}

fn source() -> Source {
    let db = TestDb::sqlite();
    let clock = callback_store::ManualClock::new(t0());
    let store = file_store(db.location(), &clock);
    let [a, b, c] = ORGS.map(|org| store.organization(org).unwrap());
    // Pruned below: a gap in seq.
    let pruned = a.create(new_callback(5)).unwrap();
    a.cancel(&pruned.id, None).unwrap();
    clock.advance(chrono::Duration::seconds(1)).unwrap();
    let idempotent = NewCallback {
        source_session_id: Some("sess_1".into()),
        agent_id: Some("agent_x".into()),
        from_number: Some("+442071234567".into()),
        reason: Some("asked for Tuesday".into()),
        metadata: json!({"lead": 42, "tags": ["vip"], "ünïcode": "✓"})
            .as_object()
            .unwrap()
            .clone(),
        pipeline_config: json!({"voice": "alloy"}).as_object().unwrap().clone(),
        idempotency_key: Some("sess_1#0".into()),
        ..new_callback(30)
    };
    let idempotent_id = a.create(idempotent.clone()).unwrap().id;
    let mut ids = Vec::new();
    for i in 0..24 {
        let org = [&a, &b, &c][i % 3];
        let new = NewCallback {
            agent_id: Some(["agent_x", "agent_y"][i % 2].into()),
            idempotency_key: (i % 4 == 0).then(|| format!("key_{i}")),
            summary: Some(format!("callback {i}")),
            ..new_callback([0, 10, 10, 20][i % 4])
        };
        ids.push((org, org.create(new).unwrap().id));
        clock.advance(chrono::Duration::milliseconds(7)).unwrap();
    }
    // Every transition, in every organization.
    for (i, (org, id)) in ids.iter().enumerate() {
        match i % 8 {
            0 => drop(org.cancel(id, Some("the customer called in")).unwrap()),
            1 => {
                let claim = org.dispatch(id).unwrap();
                org.complete_dispatch(id, "sess_new", Some(claim.token()))
                    .unwrap();
            }
            2 => {
                let claim = org.dispatch(id).unwrap();
                org.fail_dispatch(id, "busy", Some(claim.token())).unwrap();
            }
            3 => drop(org.reschedule(id, at_minutes(600)).unwrap()),
            4 => drop(org.dispatch(id).unwrap()), // left dispatching, claim unspent
            _ => {}
        }
    }
    clock.advance(chrono::Duration::minutes(30)).unwrap();
    // The dispatches left above fail as interrupted; then claims, some
    // placed (spent), some left dispatching (unspent).
    store
        .recover_stale(at_minutes(30), Duration::from_secs(600))
        .unwrap();
    let dialed = |cb: &Callback| Ok::<_, String>(format!("sess_for_{}", cb.id));
    store.dispatch_due(&dialed, at_minutes(15), 3).unwrap();
    store.claim_due(at_minutes(15), 2).unwrap();
    let pruned_count = store
        .prune(t0() + chrono::Duration::milliseconds(500))
        .unwrap();
    assert_eq!(pruned_count, 1);
    assert!(a.get(&pruned.id).is_err());
    // More than a page of callbacks and of events.
    let batch = (0..1_100).map(|i| new_callback(i % 50)).collect();
    c.create_many(batch).unwrap();
    a.create(new_callback(40)).unwrap();
    // Calling policies (an organization's and an agent's), a callback with
    // its own zone and a deadline, and a follow-up: the copy moves them and
    // each callback's next eligible instant.
    let policy = CallingPolicy {
        timezone: "America/New_York".into(),
        windows: vec![CallingWindow {
            days: vec![Weekday::Mon, Weekday::Tue],
            start: "08:00".into(),
            end: "21:00".into(),
        }],
        max_attempts: 3,
        ..CallingPolicy::default()
    };
    b.set_calling_policy(&policy).unwrap();
    b.set_agent_calling_policy("agent_night", &CallingPolicy::default())
        .unwrap();
    b.create(NewCallback {
        timezone: Some("Asia/Kathmandu".into()),
        expires_at: Some(at_minutes(60 * 24 * 30)),
        ..new_callback(45)
    })
    .unwrap();
    let unanswered = b
        .create(NewCallback {
            agent_id: Some("agent_night".into()),
            ..new_callback(0)
        })
        .unwrap();
    let claim = b.dispatch(&unanswered.id).unwrap();
    b.fail_dispatch(&unanswered.id, "no answer", Some(claim.token()))
        .unwrap();
    b.set_agent_calling_policy(
        "agent_night",
        &CallingPolicy {
            max_attempts: 2,
            ..CallingPolicy::default()
        },
    )
    .unwrap();
    b.retry(&unanswered.id, CallOutcome::NoAnswer).unwrap();
    let live = store.create_api_key("org_a", "live").unwrap();
    let revoked = store.create_api_key("org_b", "revoked").unwrap();
    store.revoke_api_key(&revoked.key.id).unwrap();
    let statuses = ORGS.map(|org| store.organization(org).unwrap().count_by_status().unwrap());
    for status in Status::ALL {
        let n: u64 = statuses
            .iter()
            .flatten()
            .filter(|(s, _)| *s == status)
            .map(|(_, n)| n)
            .sum();
        assert!(n > 0, "the fixture has no {status} callback");
    }
    Source {
        _db: db,
        store,
        idempotent,
        idempotent_id,
        live_token: live.token,
        revoked_token: revoked.token,
    }
}

/// Everything a user of `store` can observe, read through the rules.
#[derive(Debug, PartialEq)]
struct View {
    /// Every page of every organization, in both orders (cursors included).
    pages: Vec<Page>,
    callbacks: Vec<Callback>,
    histories: Vec<Vec<CallbackEvent>>,
    keys: Vec<ApiKey>,
    counts: Vec<Vec<(Status, u64)>>,
    policies: Vec<(CallingPolicy, Option<CallingPolicy>)>,
}

fn walk(store: &Store, org: &str, order: Order, limit: u32) -> Vec<Page> {
    let org = store.organization(org).unwrap();
    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page = org
            .list(&ListQuery {
                order,
                limit,
                cursor,
                ..ListQuery::default()
            })
            .unwrap();
        cursor = page.next_cursor.clone();
        pages.push(page);
        if cursor.is_none() {
            return pages;
        }
    }
}

fn view(store: &Store) -> View {
    let mut view = View {
        pages: Vec::new(),
        callbacks: Vec::new(),
        histories: Vec::new(),
        keys: Vec::new(),
        counts: Vec::new(),
        policies: Vec::new(),
    };
    for name in ORGS {
        let org = store.organization(name).unwrap();
        for order in [Order::CreatedDesc, Order::ScheduledAsc] {
            view.pages.extend(walk(store, name, order, 100));
        }
        for callback in walk(store, name, Order::CreatedDesc, 100)
            .into_iter()
            .flat_map(|p| p.callbacks)
        {
            view.histories.push(org.history(&callback.id).unwrap());
            view.callbacks.push(org.get(&callback.id).unwrap());
        }
        view.keys.extend(store.list_api_keys(name).unwrap());
        view.counts.push(org.count_by_status().unwrap());
        view.policies.push((
            org.calling_policy().unwrap(),
            org.agent_calling_policy("agent_night").unwrap(),
        ));
    }
    view
}

/// The column names of a table, in order, read beside the rules.
fn columns(store: &Store, table: &str) -> Vec<String> {
    #[cfg(feature = "postgres")]
    if let Some(names) = store.with_postgres(|c| {
        c.query(
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            &[&table],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
    }) {
        return names.unwrap();
    }
    store.with_connection(|c| {
        let mut stmt = c.prepare("SELECT name FROM pragma_table_info(?1)").unwrap();
        let names = stmt.query_map([table], |r| r.get(0)).unwrap();
        names.collect::<rusqlite::Result<_>>().unwrap()
    })
}

/// The fixture's source, copied into a fresh PostgreSQL schema: the
/// source, the database and the store the copy went through.
fn copied_to_postgres() -> (Source, TestDb, Store) {
    let source = source();
    let pg_db = TestDb::postgres(&require_postgres());
    let pg = Store::open(pg_db.location()).unwrap();
    source.store.copy_into(&pg).unwrap();
    (source, pg_db, pg)
}

#[test]
fn a_round_trip_sqlite_to_postgres_to_sqlite_keeps_every_row_and_what_users_see() {
    let source = source();
    let expected = view(&source.store);
    let pg_db = TestDb::postgres(&require_postgres());
    let pg = Store::open(pg_db.location()).unwrap();
    let to_pg = source.store.copy_into(&pg).unwrap();
    assert_eq!(to_pg.callbacks as usize, expected.callbacks.len());
    assert_eq!(
        to_pg.events as usize,
        expected.histories.iter().map(Vec::len).sum::<usize>()
    );
    assert_eq!(to_pg.api_keys, 2);
    assert_eq!(to_pg.calling_policies, 2);
    assert!(to_pg.callbacks > 1_000 && to_pg.events > 1_000, "{to_pg:?}");
    // The copy's handle and a process opening the database afresh alike.
    assert_eq!(view(&pg), expected);
    let pg_reopened = Store::open(pg_db.location()).unwrap();
    assert_eq!(view(&pg_reopened), expected);

    let back_db = TestDb::sqlite();
    let back = Store::open(back_db.location()).unwrap();
    let to_sqlite = pg_reopened.copy_into(&back).unwrap();
    assert_eq!(to_sqlite, to_pg, "the same rows, the same checksum");
    assert_eq!(view(&back), expected);
    assert_eq!(view(&Store::open(back_db.location()).unwrap()), expected);
    // A third copy reads what the second wrote: the checksum is the rows'.
    let again = back.copy_into(&Store::open_in_memory().unwrap()).unwrap();
    assert_eq!(again, to_pg);
    // Each callback's next eligible instant came along: a worker a week
    // later claims the same callbacks from the copy as from the source.
    let ids = |store: &Store| -> Vec<String> {
        let claims = store.claim_due(at_minutes(60 * 24 * 7), 10_000).unwrap();
        claims.iter().map(|c| c.id().to_owned()).collect()
    };
    let from_source = ids(&source.store);
    assert!(!from_source.is_empty());
    assert_eq!(ids(&pg), from_source);
    assert_eq!(ids(&back), from_source);
}

#[test]
fn api_keys_and_idempotency_keys_work_on_the_copy() {
    let (source, pg_db, pg) = copied_to_postgres();
    for target in [&pg, &Store::open(pg_db.location()).unwrap()] {
        let org = target
            .authenticate(&format!("Bearer {}", source.live_token))
            .unwrap();
        assert_eq!(org.id(), "org_a");
        let err = target.authenticate(&source.revoked_token).unwrap_err();
        assert_eq!(err.code(), ErrorCode::Unauthorized);
        // A retried create returns the copied callback; another payload
        // under its key is a CONFLICT: the request hash came along.
        let retried = org.create(source.idempotent.clone()).unwrap();
        assert_eq!(retried.id, source.idempotent_id);
        assert_eq!(
            retried,
            source
                .store
                .organization("org_a")
                .unwrap()
                .get(&retried.id)
                .unwrap()
        );
        let other = NewCallback {
            reason: Some("another payload".into()),
            ..source.idempotent.clone()
        };
        assert_eq!(org.create(other).unwrap_err().code(), ErrorCode::Conflict);
    }
}

#[test]
fn new_callbacks_created_after_a_copy_are_numbered_after_the_copied_ones() {
    let (_source, _pg_db, pg) = copied_to_postgres();
    let back = Store::open_in_memory().unwrap();
    pg.copy_into(&back).unwrap();
    for target in [&pg, &back] {
        // org_a: no calling window stands in the way of "dispatch now".
        let org = target.organization("org_a").unwrap();
        let created = org.create(new_callback(1)).unwrap();
        org.dispatch(&created.id).unwrap(); // an event more
        assert_eq!(org.history(&created.id).unwrap().len(), 2);
        // Newest first is seq order: the new callback comes first.
        let first = org.list(&ListQuery::default()).unwrap().callbacks[0].clone();
        assert_eq!(first.id, created.id, "on {}", target.backend_name());
        let batch = org
            .create_many(vec![new_callback(2), new_callback(3)])
            .unwrap();
        assert_eq!(batch.len(), 2);
        let key = target.create_api_key("org_b", "after the copy").unwrap();
        assert_eq!(target.authenticate(&key.token).unwrap().id(), "org_b");
    }
}

#[test]
fn a_copied_callback_goes_on_with_its_history_in_order_on_either_backend() {
    // The history's links (each callback's last event, each event's
    // previous one) are copied as stored: a transition on the copy appends
    // after the copied events, and the history reads them all in order.
    let (source, _pg_db, pg) = copied_to_postgres();
    let back = Store::open_in_memory().unwrap();
    pg.copy_into(&back).unwrap();
    let org = source.store.organization("org_a").unwrap();
    let scheduled = ListQuery {
        status: Some(Status::Scheduled),
        ..ListQuery::default()
    };
    let copied = org.list(&scheduled).unwrap().callbacks[0].id.clone();
    let before = org.history(&copied).unwrap();
    assert!(!before.is_empty());
    for target in [&pg, &back] {
        let org = target.organization("org_a").unwrap();
        assert_eq!(org.history(&copied).unwrap(), before);
        org.cancel(&copied, Some("after the copy")).unwrap();
        let after = org.history(&copied).unwrap();
        assert_eq!(
            after[..before.len()],
            before[..],
            "on {}",
            target.backend_name()
        );
        assert_eq!(after.len(), before.len() + 1);
        assert_eq!(after.last().unwrap().to, Status::Cancelled);
    }
}

#[test]
fn a_cursor_from_the_source_continues_on_the_target() {
    let (source, pg_db, pg) = copied_to_postgres();
    let reopened = Store::open(pg_db.location()).unwrap();
    for order in [Order::CreatedDesc, Order::ScheduledAsc] {
        let pages = walk(&source.store, "org_c", order, 7);
        assert!(pages.len() > 3);
        for target in [&pg, &reopened] {
            let next = target
                .organization("org_c")
                .unwrap()
                .list(&ListQuery {
                    order,
                    limit: 7,
                    cursor: pages[2].next_cursor.clone(),
                    ..ListQuery::default()
                })
                .unwrap();
            assert_eq!(next, pages[3]);
        }
    }
}

#[test]
fn a_copy_is_a_new_change_feed_whole_from_its_start_and_refuses_the_sources_cursors() {
    let (source, _pg_db, pg) = copied_to_postgres();
    let read_all = |store: &Store| {
        let org = store.organization("org_c").unwrap();
        let mut since = Since::Start;
        let mut seen = Vec::new();
        loop {
            let page = org.changes(&since, 50, Duration::ZERO).unwrap();
            if page.changes.is_empty() {
                return (seen, page.next_cursor);
            }
            seen.extend(page.changes.into_iter().map(|c| c.event));
            since = Since::Cursor(page.next_cursor);
        }
    };
    let (from_source, source_cursor) = read_all(&source.store);
    let (from_copy, _) = read_all(&pg);
    assert!(!from_source.is_empty());
    assert_eq!(from_copy, from_source);
    // The copy's positions are its own: a source cursor would read at the
    // wrong place, so it is refused, saying why.
    let err = pg
        .organization("org_c")
        .unwrap()
        .changes(&Since::Cursor(source_cursor), 10, Duration::ZERO)
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ValidationError);
    assert!(
        err.to_string().contains("a copy starts a new feed"),
        "{err}"
    );
}

#[test]
fn a_target_that_is_not_empty_is_refused_and_left_unchanged() {
    let source = source();
    let pg_db = TestDb::postgres(&require_postgres());
    let pg = Store::open(pg_db.location()).unwrap();
    let mine = pg
        .organization("org_a")
        .unwrap()
        .create(new_callback(3))
        .unwrap();
    let before = view(&pg);
    let page = walk(&pg, "org_a", Order::CreatedDesc, 1);
    let err = source.store.copy_into(&pg).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ValidationError);
    let message = err.to_string();
    assert!(message.contains("1 callback, 1 event"), "{message}");
    assert!(message.contains("nothing was written"), "{message}");
    assert_eq!(view(&pg), before);
    assert_eq!(view(&Store::open(pg_db.location()).unwrap()), before);
    assert_eq!(count(&pg, "SELECT COUNT(*) FROM callbacks"), 1);
    assert_eq!(
        walk(&pg, "org_a", Order::CreatedDesc, 1),
        page,
        "same cursor secret"
    );
    assert_eq!(
        pg.organization("org_a").unwrap().get(&mine.id).unwrap(),
        mine
    );

    // An API key alone is enough to refuse, on SQLite too.
    let keyed = Store::open_in_memory().unwrap();
    keyed.create_api_key("org_a", "mine").unwrap();
    let err = source.store.copy_into(&keyed).unwrap_err();
    assert!(err.to_string().contains("holds 1 API key;"), "{err}");
    assert_eq!(count(&keyed, "SELECT COUNT(*) FROM callbacks"), 0);
    // A refused copy leaves PostgreSQL's numbering usable.
    pg.organization("org_a")
        .unwrap()
        .create(new_callback(4))
        .unwrap();
}

#[test]
fn both_backends_have_the_columns_a_copy_moves() {
    let pg_db = TestDb::postgres(&require_postgres());
    let pg = Store::open(pg_db.location()).unwrap();
    let sqlite = Store::open_in_memory().unwrap();
    let mut tables = BTreeMap::new();
    for table in [
        "callbacks",
        "callback_events",
        "api_keys",
        "calling_policies",
        "store_meta",
    ] {
        tables.insert(table, columns(&sqlite, table));
        assert!(!tables[table].is_empty(), "{table}");
        // PostgreSQL's own: the change feed's positions, given after commit
        // (migrations/postgres V6). A copy does not move them: the target
        // positions the copied events anew, in seq order, as a new feed.
        let mut pg_columns = columns(&pg, table);
        pg_columns.retain(|c| !(table == "callback_events" && c == "feed_position"));
        assert_eq!(pg_columns, tables[table], "the columns of {table}");
    }
}
