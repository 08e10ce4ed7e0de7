//! The change feed (core/src/feed.rs): every event of the history once, in
//! commit order, per organization or store-wide, from any saved cursor.

mod common;

use std::collections::HashMap;
use std::thread;
use std::time::{Duration, Instant};

use callback_store::{Change, ErrorCode, Since, Store};
use common::{file_store, new_callback, shared_db, store};

/// Every change after `since`, page by page, until a page comes back empty.
fn drain(
    read: impl Fn(&Since) -> callback_store::Result<callback_store::ChangePage>,
    since: Since,
) -> (Vec<Change>, String) {
    let mut since = since;
    let mut seen = Vec::new();
    loop {
        let page = read(&since).unwrap();
        let done = page.changes.is_empty();
        seen.extend(page.changes);
        since = Since::Cursor(page.next_cursor.clone());
        if done {
            return (seen, page.next_cursor);
        }
    }
}

fn summary(changes: &[Change]) -> Vec<(String, &'static str)> {
    changes
        .iter()
        .map(|c| (c.event.callback_id.clone(), c.event.action.as_str()))
        .collect()
}

#[test]
fn a_reader_from_the_start_sees_every_event_of_the_history_once_in_order() {
    let (store, _clock) = store();
    let org = store.organization("org_a").unwrap();
    let a = org.create(new_callback(10)).unwrap();
    let b = org.create(new_callback(20)).unwrap();
    org.cancel(&a.id, Some("asked")).unwrap();
    org.reschedule(&b.id, common::at_minutes(30)).unwrap();
    let (seen, _) = drain(|s| org.changes(s, 2, Duration::ZERO), Since::Start);
    assert_eq!(
        summary(&seen),
        vec![
            (a.id.clone(), "create"),
            (b.id.clone(), "create"),
            (a.id.clone(), "cancel"),
            (b.id.clone(), "reschedule"),
        ]
    );
    // The same events as each callback's history, field for field.
    for id in [&a.id, &b.id] {
        let history = org.history(id).unwrap();
        let fed: Vec<_> = seen
            .iter()
            .filter(|c| &c.event.callback_id == id)
            .map(|c| c.event.clone())
            .collect();
        assert_eq!(fed, history);
    }
    assert!(seen.iter().all(|c| c.organization_id == "org_a"));
}

#[test]
fn a_reader_resuming_from_any_saved_cursor_reads_exactly_what_followed_it() {
    let (store, _clock) = store();
    let org = store.organization("org_a").unwrap();
    for i in 0..7 {
        org.create(new_callback(i)).unwrap();
    }
    let (all, _) = drain(|s| org.changes(s, 100, Duration::ZERO), Since::Start);
    assert_eq!(all.len(), 7);
    for (i, change) in all.iter().enumerate() {
        // A new handle, as after a restart: only the cursor carries over.
        let again = Store::clone(&store).organization("org_a").unwrap();
        let (rest, _) = drain(
            |s| again.changes(s, 3, Duration::ZERO),
            Since::Cursor(change.cursor.clone()),
        );
        assert_eq!(rest, all[i + 1..].to_vec());
    }
}

#[test]
fn an_organizations_feed_never_shows_another_organizations_changes() {
    let (store, _clock) = store();
    let a = store.organization("org_a").unwrap();
    let b = store.organization("org_b").unwrap();
    let mine = a.create(new_callback(1)).unwrap();
    let theirs = b.create(new_callback(1)).unwrap();
    b.cancel(&theirs.id, None).unwrap();
    a.cancel(&mine.id, None).unwrap();
    let (seen, _) = drain(|s| a.changes(s, 10, Duration::ZERO), Since::Start);
    assert_eq!(
        summary(&seen),
        vec![(mine.id.clone(), "create"), (mine.id.clone(), "cancel")]
    );
    // The operator's feed has both, in commit order.
    let (every, _) = drain(|s| store.changes(s, 10, Duration::ZERO), Since::Start);
    let orgs: Vec<&str> = every.iter().map(|c| c.organization_id.as_str()).collect();
    assert_eq!(orgs, ["org_a", "org_b", "org_b", "org_a"]);
}

#[test]
fn a_cursor_is_refused_by_another_organization_the_operator_feed_and_lists() {
    let (store, _clock) = store();
    let a = store.organization("org_a").unwrap();
    let b = store.organization("org_b").unwrap();
    a.create(new_callback(1)).unwrap();
    let cursor = a
        .changes(&Since::Start, 10, Duration::ZERO)
        .unwrap()
        .next_cursor;
    let replayed = [
        b.changes(&Since::Cursor(cursor.clone()), 10, Duration::ZERO),
        store.changes(&Since::Cursor(cursor.clone()), 10, Duration::ZERO),
        a.changes(&Since::Cursor("not-a-cursor".into()), 10, Duration::ZERO),
    ];
    for refused in replayed {
        let err = refused.unwrap_err();
        assert_eq!(err.code(), ErrorCode::ValidationError);
        assert!(err.to_string().contains("since"), "{err}");
    }
    let list_cursor = a
        .list(&callback_store::ListQuery {
            limit: 1,
            ..Default::default()
        })
        .unwrap();
    if let Some(next) = list_cursor.next_cursor {
        let err = a
            .changes(&Since::Cursor(next), 10, Duration::ZERO)
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::ValidationError);
    }
}

#[test]
fn limit_and_wait_outside_their_ranges_are_refused() {
    let (store, _clock) = store();
    let org = store.organization("org_a").unwrap();
    for (limit, wait, field) in [
        (0, Duration::ZERO, "limit"),
        (callback_store::MAX_CHANGES + 1, Duration::ZERO, "limit"),
        (
            10,
            callback_store::MAX_WAIT + Duration::from_millis(1),
            "wait",
        ),
    ] {
        let err = org.changes(&Since::Start, limit, wait).unwrap_err();
        assert_eq!(err.code(), ErrorCode::ValidationError);
        assert!(err.to_string().contains(field), "{err}");
    }
}

#[test]
fn since_now_reads_only_what_commits_afterwards() {
    let (store, _clock) = store();
    let org = store.organization("org_a").unwrap();
    org.create(new_callback(1)).unwrap();
    let now = org.changes(&Since::Now, 10, Duration::ZERO).unwrap();
    assert!(now.changes.is_empty());
    let later = org.create(new_callback(2)).unwrap();
    let page = org
        .changes(&Since::Cursor(now.next_cursor), 10, Duration::ZERO)
        .unwrap();
    assert_eq!(summary(&page.changes), vec![(later.id, "create")]);
}

#[test]
fn a_quiet_organizations_cursor_moves_past_a_busy_ones_events_a_bounded_scan_at_a_time() {
    let (store, _clock) = store();
    let quiet = store.organization("org_quiet").unwrap();
    let busy = store.organization("org_busy").unwrap();
    for _ in 0..3 {
        busy.create_many((0..5_000).map(new_callback).collect())
            .unwrap();
    }
    let last = quiet.create(new_callback(1)).unwrap();
    // 15,001 events: the first calls find none of the quiet organization's
    // within their scan, answer empty pages at once, and move on.
    let mut since = Since::Start;
    let mut calls = 0;
    let found = loop {
        calls += 1;
        let page = quiet.changes(&since, 10, Duration::ZERO).unwrap();
        if let Some(change) = page.changes.first() {
            break change.clone();
        }
        since = Since::Cursor(page.next_cursor);
        assert!(calls < 10, "the cursor does not move");
    };
    assert_eq!(found.event.callback_id, last.id);
    assert!(
        calls >= 2,
        "one call scanned more than its bound ({calls} calls)"
    );
}

#[test]
fn a_waiting_reader_is_answered_by_the_first_commit_not_the_deadline() {
    let (store, _clock) = store();
    let org = store.organization("org_a").unwrap();
    let since = Since::Cursor(
        org.changes(&Since::Now, 1, Duration::ZERO)
            .unwrap()
            .next_cursor,
    );
    let writer = {
        let org = org.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(300));
            org.create(new_callback(1)).unwrap()
        })
    };
    let started = Instant::now();
    let page = org.changes(&since, 10, Duration::from_secs(30)).unwrap();
    let made = writer.join().unwrap();
    assert_eq!(summary(&page.changes), vec![(made.id, "create")]);
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "it waited for the deadline"
    );
    // And with nothing to read, the wait ends at its deadline, empty.
    let started = Instant::now();
    let page = org
        .changes(
            &Since::Cursor(page.next_cursor),
            10,
            Duration::from_millis(400),
        )
        .unwrap();
    assert!(page.changes.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(400));
}

#[test]
fn a_reader_in_another_process_handle_sees_writes_of_another_handle() {
    // Two stores on one database, as two processes hold it: the reader's
    // wait is not woken by the writer's commits, and polls.
    let (db, clock) = shared_db();
    let writer = file_store(db.location(), &clock);
    let reader = file_store(db.location(), &clock);
    let org_w = writer.organization("org_a").unwrap();
    let org_r = reader.organization("org_a").unwrap();
    let since = Since::Cursor(
        org_r
            .changes(&Since::Now, 1, Duration::ZERO)
            .unwrap()
            .next_cursor,
    );
    let made = thread::spawn(move || {
        thread::sleep(Duration::from_millis(300));
        org_w.create(new_callback(1)).unwrap()
    });
    let page = org_r.changes(&since, 10, Duration::from_secs(20)).unwrap();
    assert_eq!(
        summary(&page.changes),
        vec![(made.join().unwrap().id, "create")]
    );
}

#[test]
fn prune_never_hands_a_position_out_twice() {
    let (store, clock) = store();
    let org = store.organization("org_a").unwrap();
    let a = org.create(new_callback(1)).unwrap();
    let b = org.create(new_callback(1)).unwrap();
    org.cancel(&a.id, None).unwrap();
    org.cancel(&b.id, None).unwrap();
    let (before, cursor) = drain(|s| org.changes(s, 10, Duration::ZERO), Since::Start);
    assert_eq!(before.len(), 4);
    clock.set(common::at_minutes(60 * 24));
    store.prune(common::at_minutes(60 * 24 * 2)).unwrap();
    // The new event comes after everything read before the prune.
    let c = org.create(new_callback(1)).unwrap();
    let page = org
        .changes(&Since::Cursor(cursor), 10, Duration::ZERO)
        .unwrap();
    assert_eq!(summary(&page.changes), vec![(c.id.clone(), "create")]);
    // The marker that kept the seq is in no history and no feed, and the
    // next prune takes it away: only c's creation is left.
    let (everything, _) = drain(|s| store.changes(s, 10, Duration::ZERO), Since::Start);
    assert_eq!(summary(&everything), vec![(c.id.clone(), "create")]);
    let marker = usize::from(store.backend_name() == "sqlite");
    assert_eq!(
        common::row_count(&store, "callback_events"),
        1 + marker as i64
    );
    store.prune(common::at_minutes(60 * 24 * 2)).unwrap();
    assert_eq!(common::row_count(&store, "callback_events"), 1);
    assert_eq!(org.history(&c.id).unwrap().len(), 1);
}

#[test]
fn both_readers_of_one_log_see_the_same_positions() {
    let (db, clock) = shared_db();
    let one = file_store(db.location(), &clock);
    let two = file_store(db.location(), &clock);
    let org = one.organization("org_a").unwrap();
    let mut made = HashMap::new();
    for i in 0..20 {
        let cb = org.create(new_callback(i)).unwrap();
        made.insert(cb.id.clone(), i);
        // Readers interleave with the writer, each positioning in turn.
        if i % 3 == 0 {
            two.changes(&Since::Start, 5, Duration::ZERO).unwrap();
        }
    }
    let (a, _) = drain(|s| one.changes(s, 7, Duration::ZERO), Since::Start);
    let (b, _) = drain(|s| two.changes(s, 3, Duration::ZERO), Since::Start);
    assert_eq!(a.len(), 20);
    assert_eq!(summary(&a), summary(&b));
}

// ---- Copied from core/src/db/feed.rs and core/src/db/chain.rs ----

const FEED_HEAD: &str = "SELECT COALESCE(MAX(seq), 0) FROM callback_events";
const FEED_PAGE: &str = "FROM callback_events e CROSS JOIN callbacks c ON c.seq = e.callback_seq
             WHERE e.seq > ?1 AND e.seq <= ?2 AND (?3 IS NULL OR c.organization_id = ?3)
             ORDER BY e.seq LIMIT ?4";
const TAIL_MARKER_DELETE: &str = "DELETE FROM callback_events WHERE callback_seq = {TAIL_MARKER}
                 AND seq = (SELECT value FROM store_meta WHERE key = 'feed_tail_marker')
                 AND seq < (SELECT MAX(seq) FROM callback_events)";

#[test]
fn a_feed_page_reads_the_log_by_rowid_range_and_each_callback_by_rowid() {
    // The log is read from the cursor on, never from its start, whatever
    // the reader's organization: a page costs its rows, not the log's.
    use common::plans::{assert_searches, normalized, plan, plans_store};
    let source = normalized(concat!(
        include_str!("../src/db/feed.rs"),
        include_str!("../src/db/chain.rs")
    ));
    for copy in [FEED_HEAD, FEED_PAGE, TAIL_MARKER_DELETE] {
        assert!(
            source.contains(&normalized(copy)),
            "db/feed.rs or db/chain.rs no longer contain this statement; update the copy and check its plan:\n{copy}"
        );
    }
    let store = plans_store();
    let page = format!("SELECT e.seq, c.id {FEED_PAGE}");
    let lines = plan(&store, &page);
    assert_searches("feed page", &page, &lines, &[]);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("SEARCH e USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("SEARCH c USING INTEGER PRIMARY KEY (rowid=?)")),
        "{lines:?}"
    );
    // Prune finds an earlier marker by its seq, not by a scan of the log.
    let marker = TAIL_MARKER_DELETE.replace("{TAIL_MARKER}", "0");
    let lines = plan(&store, &marker);
    assert_searches("stale tail marker", &marker, &lines, &[]);
    let head = plan(&store, FEED_HEAD);
    assert!(head.iter().all(|l| !l.starts_with("SCAN")), "{head:?}");
}
