//! Keyset pagination: following `next_cursor` until it is null returns every
//! matching callback exactly once, in order, for every filter, order and page
//! size, also while callbacks are created between pages; cursors are bound
//! to their query and cannot be forged.

mod common;

use std::cmp::Reverse;
use std::collections::HashSet;

use callback_store::{
    Callback, Claim, ErrorCode, ListQuery, ManualClock, NewCallback, Order, Organization, Status,
    Store, Timestamp,
};
use common::{at_minutes, store};

const ORDERS: [Order; 2] = [Order::CreatedDesc, Order::ScheduledAsc];
const PAGE_SIZES: [u32; 4] = [1, 7, 25, 100];
const UK: &str = "+442071234567";
const US: &str = "+12015551234";

/// A callback with its creation index: its insertion order, which is what
/// breaks ties of equal timestamps.
#[derive(Debug, Clone)]
struct Known {
    index: usize,
    callback: Callback,
}

/// The i-th callback of the fixture: few distinct values, so that many
/// callbacks share a scheduled_at, a session, an agent and a number.
fn attributes(i: usize) -> NewCallback {
    NewCallback {
        source_session_id: [None, Some("sess_a"), Some("sess_b")][(i / 7) % 3].map(str::to_owned),
        agent_id: [Some("agent_x"), Some("agent_y"), None, Some("agent_x")][(i / 2) % 4]
            .map(str::to_owned),
        ..NewCallback::new(
            if (i / 3) % 2 == 0 { US } else { UK },
            at_minutes([0, 30, 60, 90, 120][(i * 7) % 5]),
        )
    }
}

/// 230 callbacks in `org_a`, and 22 look-alikes in `org_b` interleaved so
/// that seq is not contiguous. The clock stands still for 50 creations at a
/// time and a create_many batch shares one instant, so created_at ties span
/// many pages; some callbacks are then cancelled, dispatched, completed or
/// failed.
fn fixture() -> (Store, ManualClock, Organization, Vec<Known>) {
    let (store, clock) = store();
    let org = store.organization("org_a").unwrap();
    let other = store.organization("org_b").unwrap();
    let mut ids = Vec::new();
    let mut i = 0;
    while i < 230 {
        if i % 50 == 0 && i > 0 {
            clock.advance(chrono::Duration::seconds(1)).unwrap();
        }
        if (100..160).contains(&i) {
            let batch = (i..i + 20).map(attributes).collect();
            ids.extend(org.create_many(batch).unwrap().into_iter().map(|c| c.id));
            i += 20;
        } else {
            ids.push(org.create(attributes(i)).unwrap().id);
            i += 1;
        }
        if i % 8 == 0 {
            other.create(attributes(i)).unwrap();
        }
    }
    clock.advance(chrono::Duration::minutes(5)).unwrap();
    for (i, id) in ids.iter().enumerate() {
        let moved = match i % 6 {
            1 => org.cancel(id, Some("no longer needed")),
            2 => org.dispatch(id).map(Claim::into_callback),
            3 => org
                .dispatch(id)
                .and_then(|c| org.complete_dispatch(c.id(), "s", Some(c.token()))),
            4 => org
                .dispatch(id)
                .and_then(|c| org.fail_dispatch(c.id(), "busy", Some(c.token()))),
            _ => continue,
        };
        moved.unwrap();
    }
    let known = ids
        .iter()
        .enumerate()
        .map(|(index, id)| Known {
            index,
            callback: org.get(id).unwrap(),
        })
        .collect();
    (store, clock, org, known)
}

/// Whether the callback passes the query's filters, computed here.
fn matches(query: &ListQuery, c: &Callback) -> bool {
    query.status.is_none_or(|s| c.status == s)
        && (query.source_session_id.as_ref())
            .is_none_or(|s| c.source_session_id.as_ref() == Some(s))
        && (query.agent_id.as_ref()).is_none_or(|a| c.agent_id.as_ref() == Some(a))
        && (query.to_number.as_ref()).is_none_or(|t| &c.to_number == t)
        && query.scheduled_after.is_none_or(|t| c.scheduled_at >= t)
        && query.scheduled_before.is_none_or(|t| c.scheduled_at < t)
}

/// What walking the query must return: the matches, sorted here.
fn expected(known: &[Known], query: &ListQuery) -> Vec<Callback> {
    let mut matching: Vec<&Known> = known
        .iter()
        .filter(|k| matches(query, &k.callback))
        .collect();
    match query.order {
        Order::CreatedDesc => {
            matching.sort_by_key(|k| (Reverse(k.callback.created_at), Reverse(k.index)))
        }
        Order::ScheduledAsc => matching.sort_by_key(|k| (k.callback.scheduled_at, k.index)),
    }
    matching.into_iter().map(|k| k.callback.clone()).collect()
}

/// Follows next_cursor until it is null, running `between` after each page
/// that has a next one, and checks every page: at most `limit` rows, a page
/// with a cursor is full, a cursor never leads to an empty page.
fn walk_with(
    org: &Organization,
    query: &ListQuery,
    mut between: impl FnMut(&[Callback]),
) -> Vec<Callback> {
    let mut query = query.clone();
    let mut out = Vec::new();
    for _ in 0..1_000 {
        let page = org
            .list(&query)
            .unwrap_or_else(|e| panic!("{query:?}: {e}"));
        assert!(page.callbacks.len() <= query.limit as usize, "{query:?}");
        if query.cursor.is_some() {
            assert!(
                !page.callbacks.is_empty(),
                "a cursor led to an empty page: {query:?}"
            );
        }
        let full = page.callbacks.len() == query.limit as usize;
        out.extend(page.callbacks);
        match page.next_cursor {
            Some(cursor) => {
                assert!(full, "a page with a next_cursor must be full: {query:?}");
                query.cursor = Some(cursor);
                between(&out);
            }
            None => return out,
        }
    }
    panic!("more than 1000 pages: {query:?}");
}

fn walk(org: &Organization, query: &ListQuery) -> Vec<Callback> {
    walk_with(org, query, |_| {})
}

fn ids(callbacks: &[Callback]) -> Vec<&str> {
    callbacks.iter().map(|c| c.id.as_str()).collect()
}

fn assert_no_repeats(callbacks: &[Callback]) {
    let unique: HashSet<&str> = ids(callbacks).into_iter().collect();
    assert_eq!(
        unique.len(),
        callbacks.len(),
        "a callback was returned twice"
    );
}

/// Builders, so that a query fits on one line.
trait Build: Sized {
    fn with(self, f: impl FnOnce(&mut ListQuery)) -> ListQuery;
    fn order(self, order: Order) -> ListQuery {
        self.with(|q| q.order = order)
    }
    fn limit(self, limit: u32) -> ListQuery {
        self.with(|q| q.limit = limit)
    }
    fn cursor(self, cursor: Option<String>) -> ListQuery {
        self.with(|q| q.cursor = cursor)
    }
}

impl Build for ListQuery {
    fn with(mut self, f: impl FnOnce(&mut ListQuery)) -> ListQuery {
        f(&mut self);
        self
    }
}

/// A query by status, session, agent, number and window (minutes after t0).
fn query(
    status: Option<Status>,
    (source, agent, to): (Option<&str>, Option<&str>, Option<&str>),
    (after, before): (Option<i64>, Option<i64>),
) -> ListQuery {
    ListQuery {
        status,
        source_session_id: source.map(str::to_owned),
        agent_id: agent.map(str::to_owned),
        to_number: to.map(str::to_owned),
        scheduled_after: after.map(at_minutes),
        scheduled_before: before.map(at_minutes),
        ..ListQuery::default()
    }
}

const ANY: (Option<&str>, Option<&str>, Option<&str>) = (None, None, None);
const ANYTIME: (Option<i64>, Option<i64>) = (None, None);

fn by_session() -> ListQuery {
    query(None, (Some("sess_a"), None, None), ANYTIME)
}

fn by_agent() -> ListQuery {
    query(None, (None, Some("agent_x"), None), ANYTIME)
}

fn scheduled_in_window() -> ListQuery {
    query(Some(Status::Scheduled), ANY, (Some(0), Some(61)))
}

fn filters() -> Vec<ListQuery> {
    use Status::*;
    let mut all = vec![ListQuery::default(), by_session(), by_agent()];
    all.extend(Status::ALL.map(|s| query(Some(s), ANY, ANYTIME)));
    all.extend([
        query(None, (None, None, Some(UK)), ANYTIME),
        query(None, ANY, (Some(30), None)),
        query(None, ANY, (None, Some(90))),
        query(None, ANY, (Some(30), Some(90))),
        query(Some(Scheduled), (Some("sess_b"), None, None), ANYTIME),
        query(None, (None, Some("agent_x"), Some(US)), (Some(60), None)),
        scheduled_in_window(),
        query(None, (Some("sess_a"), Some("agent_y"), Some(UK)), ANYTIME),
        query(
            Some(Cancelled),
            (Some("sess_b"), Some("agent_x"), None),
            (None, Some(90)),
        ),
    ]);
    all
}

#[test]
fn the_fixture_has_ties_on_created_at_and_scheduled_at_longer_than_the_pages() {
    let (_store, _clock, _org, known) = fixture();
    let longest_tie = |key: fn(&Callback) -> Timestamp| {
        let mut keys: Vec<Timestamp> = known.iter().map(|k| key(&k.callback)).collect();
        keys.sort();
        keys.chunk_by(|a, b| a == b).map(<[_]>::len).max().unwrap()
    };
    assert!(longest_tie(|c| c.created_at) >= 50);
    assert!(longest_tie(|c| c.scheduled_at) >= 40);
    for status in Status::ALL {
        assert!(
            known.iter().any(|k| k.callback.status == status),
            "{status}"
        );
    }
}

#[test]
fn walking_all_pages_returns_every_match_once_in_order_for_every_filter_order_and_page_size() {
    let (_store, _clock, org, known) = fixture();
    for filter in filters() {
        for order in ORDERS {
            let base = filter.clone().order(order);
            let want = expected(&known, &base);
            assert!(
                !want.is_empty(),
                "the filter must match something: {base:?}"
            );
            for limit in PAGE_SIZES {
                let query = base.clone().limit(limit);
                let got = walk(&org, &query);
                assert_eq!(ids(&got), ids(&want), "{query:?}");
                assert_eq!(got, want, "records of {query:?}");
            }
        }
    }
}

#[test]
fn another_organizations_callbacks_never_appear_in_any_page() {
    let (store, _clock, org, known) = fixture();
    let other = store.organization("org_b").unwrap();
    for order in ORDERS {
        let theirs = walk(&other, &ListQuery::default().limit(7).order(order));
        assert_eq!(theirs.len(), 22);
        assert!(theirs.iter().all(|c| c.organization_id == "org_b"));
        let ours = walk(&org, &ListQuery::default().limit(7).order(order));
        assert_eq!(ours.len(), known.len());
        assert!(ours.iter().all(|c| c.organization_id == "org_a"));
    }
}

#[test]
fn a_filter_matching_nothing_gives_one_empty_page_without_cursor() {
    let (_store, _clock, org, _known) = fixture();
    for order in ORDERS {
        let nobody = query(None, (Some("sess_nobody"), None, None), ANYTIME);
        let query = nobody.order(order).limit(1);
        let page = org.list(&query).unwrap();
        assert!(page.callbacks.is_empty());
        assert_eq!(page.next_cursor, None);
    }
}

#[test]
fn an_exactly_full_last_page_has_no_cursor_to_an_empty_page() {
    let (store, _clock) = store();
    let org = store.organization("org_full").unwrap();
    let batch = (0..50).map(|i| common::new_callback(i % 2)).collect();
    org.create_many(batch).unwrap();
    for order in ORDERS {
        for (limit, pages) in [(25, 2), (50, 1), (10, 5), (1, 50), (100, 1)] {
            let mut query = ListQuery::default().order(order).limit(limit);
            let mut seen = Vec::new();
            for page_number in 1..=pages {
                let page = org.list(&query).unwrap();
                assert_eq!(page.callbacks.len(), 50.min(limit as usize), "{query:?}");
                seen.extend(page.callbacks);
                if page_number == pages {
                    assert_eq!(page.next_cursor, None, "last page of {query:?}");
                } else {
                    query.cursor = Some(page.next_cursor.expect("a next page"));
                }
            }
            assert_eq!(seen.len(), 50);
            assert_no_repeats(&seen);
        }
    }
    let lone = store.organization("org_lone").unwrap();
    lone.create(common::new_callback(0)).unwrap();
    let page = lone.list(&ListQuery::default().limit(1)).unwrap();
    assert_eq!((page.callbacks.len(), page.next_cursor), (1, None));
}

/// A new callback that passes `filter`, due at `scheduled_at`.
fn matching_new(filter: &ListQuery, scheduled_at: Timestamp) -> NewCallback {
    NewCallback {
        source_session_id: filter.source_session_id.clone(),
        agent_id: filter.agent_id.clone(),
        ..NewCallback::new(filter.to_number.as_deref().unwrap_or(US), scheduled_at)
    }
}

#[test]
fn callbacks_created_between_pages_newest_first_never_skip_or_repeat_existing_ones() {
    let scheduled = query(Some(Status::Scheduled), ANY, ANYTIME);
    for filter in [ListQuery::default(), by_session(), scheduled] {
        // The clock standing on the newest created_at (ties), or moving on.
        for clock_moves in [false, true] {
            let (_store, clock, org, known) = fixture();
            let newest = known.iter().map(|k| k.callback.created_at).max().unwrap();
            clock.set(newest);
            let query = filter.clone().limit(7).order(Order::CreatedDesc);
            let want = expected(&known, &query);
            let mut created = HashSet::new();
            let got = walk_with(&org, &query, |_| {
                if clock_moves {
                    clock.advance(chrono::Duration::milliseconds(1)).unwrap();
                }
                for minutes in [-30, 0, 30] {
                    let new = matching_new(&filter, at_minutes(60 + minutes));
                    created.insert(org.create(new).unwrap().id);
                }
            });
            assert!(created.len() >= 30, "{filter:?}");
            // Newer than every row walked so far, so they come before the cursor.
            assert_eq!(
                ids(&got),
                ids(&want),
                "{filter:?}, clock moves: {clock_moves}"
            );
            assert!(got.iter().all(|c| !created.contains(&c.id)));
        }
    }
}

#[test]
fn callbacks_created_between_pages_soonest_first_appear_once_exactly_when_after_the_cursor() {
    for filter in [ListQuery::default(), by_agent(), scheduled_in_window()] {
        let (_store, _clock, org, known) = fixture();
        let query = filter.clone().limit(7).order(Order::ScheduledAsc);
        // Everything that exists, and what the walk must return of it.
        let mut all = known.clone();
        let mut eligible = known.clone();
        let (mut after_cursor, mut before_cursor) = (0, 0);
        let got = walk_with(&org, &query, |so_far| {
            let last = so_far.last().unwrap();
            let last_index = all.iter().find(|k| k.callback.id == last.id).unwrap().index;
            // Before, at (a tie: later by seq) and after the cursor's time.
            for minutes in [-30, 0, 30] {
                let scheduled_at = last.scheduled_at + chrono::Duration::minutes(minutes);
                let created = org.create(matching_new(&filter, scheduled_at)).unwrap();
                let new = Known {
                    index: all.len(),
                    callback: created,
                };
                all.push(new.clone());
                if !matches(&query, &new.callback) {
                    continue;
                }
                if (scheduled_at, new.index) > (last.scheduled_at, last_index) {
                    after_cursor += 1;
                    eligible.push(new);
                } else {
                    before_cursor += 1;
                }
            }
        });
        assert!(after_cursor > 0 && before_cursor > 0, "{filter:?}");
        let want = expected(&eligible, &query);
        assert_eq!(ids(&got), ids(&want), "{filter:?}");
        assert_no_repeats(&got);
    }
}

#[test]
fn deleting_the_cursors_row_between_pages_neither_skips_nor_repeats_the_rest() {
    for order in ORDERS {
        let (store, clock) = store();
        let org = store.organization("org_a").unwrap();
        let batch = (0..20).map(|i| common::new_callback(i % 2)).collect();
        org.create_many(batch).unwrap();
        let query = ListQuery::default().limit(5).order(order);
        let everything = walk(&org, &query.clone().limit(100));
        let first = org.list(&query).unwrap();
        // The row the cursor points at, and the one that would come next.
        let gone = [&everything[4].id, &everything[5].id];
        for id in gone {
            org.cancel(id, None).unwrap();
        }
        clock.advance(chrono::Duration::days(1)).unwrap();
        assert_eq!(store.prune(store.now()).unwrap(), 2);
        let rest = walk(&org, &query.clone().cursor(first.next_cursor));
        let mut got = first.callbacks;
        got.extend(rest);
        let want: Vec<&str> = ids(&everything)
            .into_iter()
            .filter(|id| *id != everything[5].id)
            .collect();
        assert_eq!(ids(&got), want, "{order:?}");
    }
}

#[test]
fn changing_only_the_limit_between_pages_is_allowed_and_keeps_the_walk_exact() {
    let (_store, _clock, org, known) = fixture();
    for filter in [ListQuery::default(), by_agent()] {
        for order in ORDERS {
            let mut query = filter.clone().order(order);
            let want = expected(&known, &query);
            let mut limits = [1, 7, 25, 100, 3].into_iter().cycle();
            let mut got = Vec::new();
            loop {
                query.limit = limits.next().unwrap();
                let page = org
                    .list(&query)
                    .unwrap_or_else(|e| panic!("{query:?}: {e}"));
                got.extend(page.callbacks);
                match page.next_cursor {
                    Some(cursor) => query.cursor = Some(cursor),
                    None => break,
                }
            }
            assert_eq!(ids(&got), ids(&want), "{filter:?} {order:?}");
        }
    }
}

fn assert_cursor_refused(org: &Organization, query: &ListQuery, what: &str) {
    match org.list(query) {
        Ok(page) => panic!("{what}: accepted, gave {} callbacks", page.callbacks.len()),
        Err(err) => {
            assert_eq!(err.code(), ErrorCode::ValidationError, "{what}: {err}");
            assert!(err.to_string().starts_with("cursor"), "{what}: {err}");
        }
    }
}

#[test]
fn a_cursor_used_with_other_filters_another_order_or_organization_is_a_validation_error() {
    let (store, _clock, org, _known) = fixture();
    let base = query(
        Some(Status::Scheduled),
        (Some("sess_a"), None, None),
        ANYTIME,
    )
    .limit(5);
    let cursor = org.list(&base).unwrap().next_cursor.expect("a second page");
    let with = |q: ListQuery| q.limit(5).cursor(Some(cursor.clone()));
    assert!(org.list(&with(base.clone())).is_ok(), "its own query");
    let others = [
        ("no filters", ListQuery::default()),
        ("status dropped", base.clone().with(|q| q.status = None)),
        (
            "other status",
            base.clone().with(|q| q.status = Some(Status::Cancelled)),
        ),
        (
            "session dropped",
            base.clone().with(|q| q.source_session_id = None),
        ),
        (
            "other session",
            base.clone()
                .with(|q| q.source_session_id = Some("sess_b".into())),
        ),
        (
            "agent added",
            base.clone().with(|q| q.agent_id = Some("agent_x".into())),
        ),
        (
            "number added",
            base.clone().with(|q| q.to_number = Some(US.into())),
        ),
        (
            "after added",
            base.clone()
                .with(|q| q.scheduled_after = Some(at_minutes(0))),
        ),
        (
            "before added",
            base.clone()
                .with(|q| q.scheduled_before = Some(at_minutes(999))),
        ),
        ("other order", base.clone().order(Order::ScheduledAsc)),
    ];
    for (what, query) in others {
        assert_cursor_refused(&org, &with(query), what);
    }
    let other_org = store.organization("org_b").unwrap();
    assert_cursor_refused(&other_org, &with(base.clone()), "other organization");

    // The same organization and query in another store: another secret.
    let (elsewhere, _clock) = common::store();
    let twin = elsewhere.organization("org_a").unwrap();
    twin.create_many((0..10).map(attributes).collect()).unwrap();
    assert_cursor_refused(&twin, &with(base), "another store");

    // And the other way round: a scheduled_asc cursor in a created_desc list.
    let asc = ListQuery::default().order(Order::ScheduledAsc).limit(3);
    let asc_cursor = org.list(&asc).unwrap().next_cursor;
    let desc = ListQuery::default().limit(3).cursor(asc_cursor);
    assert_cursor_refused(&org, &desc, "scheduled_asc cursor, created_desc list");
}

#[test]
fn a_tampered_truncated_random_or_empty_cursor_is_a_validation_error() {
    let (_store, _clock, org, _known) = fixture();
    for order in ORDERS {
        let query = ListQuery::default().order(order).limit(7);
        let cursor = org.list(&query).unwrap().next_cursor.unwrap();
        let chars: Vec<char> = cursor.chars().collect();
        let mut bad: Vec<String> = Vec::new();
        for i in 0..chars.len() {
            for replacement in ['A', 'z', '0', '-', '_'] {
                if chars[i] != replacement {
                    let mut changed = chars.clone();
                    changed[i] = replacement;
                    bad.push(changed.into_iter().collect());
                }
            }
        }
        let n = cursor.len();
        bad.extend([
            cursor[..n - 1].to_owned(),
            cursor[..n / 2].to_owned(),
            cursor[1..].to_owned(),
            format!("{cursor}A"),
            format!("{cursor}="),
            format!(" {cursor}"),
            cursor.to_uppercase(),
            cursor.chars().rev().collect(),
        ]);
        let junk = ["", " ", "null", "hello", "0", "%%%%", "é", "A"];
        bad.extend(junk.map(str::to_owned));
        bad.push("A".repeat(n));
        bad.push("A".repeat(100_000));
        for text in bad {
            assert_ne!(text, cursor);
            let tampered = query.clone().cursor(Some(text.clone()));
            assert_cursor_refused(&org, &tampered, &format!("{text:?}"));
        }
        assert!(org.list(&query.cursor(Some(cursor))).is_ok());
    }
}
