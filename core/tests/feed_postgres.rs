//! The change feed where writers commit out of the order of their seqs
//! (PostgreSQL): a reader must never move past an event that commits late.
#![cfg(feature = "postgres")]

mod common;

use std::time::Duration;

use callback_store::{ManualClock, Since};
use common::{file_store, new_callback, t0};
use testkit::TestDb;

#[test]
fn an_event_that_commits_after_a_later_seq_is_read_after_it_not_skipped() {
    let db = TestDb::postgres(&testkit::require_postgres());
    let store = file_store(db.location(), &ManualClock::new(t0()));
    let org = store.organization("org_a").unwrap();
    let early = org.create(new_callback(1)).unwrap();
    let (_, start) = {
        let page = org.changes(&Since::Start, 100, Duration::ZERO).unwrap();
        (page.changes, page.next_cursor)
    };

    // A transaction takes the next seq and stays open, as a writer slowed
    // down between its INSERT and its COMMIT.
    let mut slow = postgres::Client::connect(&db.location(), postgres::NoTls).unwrap();
    let mut late = slow.transaction().unwrap();
    let late_seq: i64 = late
        .query_one(
            "INSERT INTO callback_events (callback_seq, action, from_status, to_status, at, detail)
             SELECT seq, 'reschedule', status, status, created_at, 'late' FROM callbacks WHERE id = $1
             RETURNING seq",
            &[&early.id],
        )
        .unwrap()
        .get(0);

    // Meanwhile a later seq commits, and a reader reads past it.
    let later = org.create(new_callback(2)).unwrap();
    let page = org
        .changes(&Since::Cursor(start), 100, Duration::ZERO)
        .unwrap();
    let seen: Vec<&str> = page
        .changes
        .iter()
        .map(|c| c.event.callback_id.as_str())
        .collect();
    assert_eq!(seen, [later.id.as_str()]);
    let later_seq: i64 = store
        .with_postgres(|c| {
            c.query_one(
                "SELECT MAX(e.seq) FROM callback_events e JOIN callbacks c ON c.seq = e.callback_seq
                 WHERE c.id = $1",
                &[&later.id],
            )
            .unwrap()
            .get(0)
        })
        .unwrap()
        .unwrap();
    assert!(late_seq < later_seq, "the late event took the earlier seq");

    // The slow writer commits: the reader's next page has its event.
    late.commit().unwrap();
    let next = org
        .changes(&Since::Cursor(page.next_cursor), 100, Duration::ZERO)
        .unwrap();
    let seen: Vec<(&str, Option<&str>)> = next
        .changes
        .iter()
        .map(|c| (c.event.callback_id.as_str(), c.event.detail.as_deref()))
        .collect();
    assert_eq!(seen, [(early.id.as_str(), Some("late"))]);
}
