//! Races between threads and between connections on one file (as separate
//! processes would have): every transition has exactly one winner, the
//! losers get INVALID_TRANSITION naming the status they found, history
//! agrees with the winner, and no busy error surfaces within the timeout.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Barrier};
use std::thread;

use callback_store::{
    Action, Callback, Claim, Error, ErrorCode, EventAction, ListQuery, ManualClock, Status, Store,
};
use common::{at_minutes, callbacks, file_store, new_callback, row_count, shared_db, t0};

const THREADS: usize = 8;
const CALLBACKS: usize = 50;
const ROUNDS: usize = 5;
const ORG: &str = "org_race";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Cancel,
    Dispatch,
    Claim,
}

/// Threads 0, 3, 6 cancel; 1, 4, 7 dispatch; 2, 5 claim due callbacks.
fn role(thread: usize) -> Role {
    [Role::Cancel, Role::Dispatch, Role::Claim][thread % 3]
}

/// What one thread did: per callback id, the answer to its cancel or
/// dispatch; or, for a claimer, every callback it claimed.
enum Did {
    Asked(HashMap<String, Result<Callback, Error>>),
    Claimed(Vec<Callback>),
}

fn cancel_reason(thread: usize) -> String {
    format!("cancelled by thread {thread}")
}

/// One round: CALLBACKS due callbacks, then THREADS threads (thread t on
/// `stores[t]`) race for all of them, starting together.
fn race_round(stores: &[Store], round: usize) {
    assert_eq!(stores.len(), THREADS);
    let org = stores[0].organization(ORG).unwrap();
    let batch = (0..CALLBACKS as i64).map(|i| new_callback(-i)).collect();
    let ids: Vec<String> = org
        .create_many(batch)
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = stores[t].clone();
            let barrier = Arc::clone(&barrier);
            let mut order = ids.clone();
            // Each thread walks the callbacks from another starting point,
            // half of them backwards, so that they collide all the time.
            order.rotate_left((t * 13 + round * 7) % CALLBACKS);
            if t % 2 == 1 {
                order.reverse();
            }
            thread::spawn(move || {
                let org = store.organization(ORG).unwrap();
                barrier.wait();
                match role(t) {
                    Role::Cancel => Did::Asked(
                        order
                            .into_iter()
                            .map(|id| {
                                let answer = org.cancel(&id, Some(&cancel_reason(t)));
                                (id, answer)
                            })
                            .collect(),
                    ),
                    Role::Dispatch => Did::Asked(
                        order
                            .into_iter()
                            .map(|id| {
                                let answer = org.dispatch(&id).map(Claim::into_callback);
                                (id, answer)
                            })
                            .collect(),
                    ),
                    Role::Claim => {
                        let mut claimed = Vec::new();
                        loop {
                            let got = store
                                .claim_due(at_minutes(1), 3)
                                .unwrap_or_else(|e| panic!("claim_due in thread {t}: {e}"));
                            if got.is_empty() {
                                break Did::Claimed(claimed);
                            }
                            claimed.extend(callbacks(got));
                        }
                    }
                }
            })
        })
        .collect();
    let did: Vec<Did> = handles
        .into_iter()
        .map(|h| h.join().expect("a racing thread panicked"))
        .collect();
    check_round(&stores[0], &ids, &did);
}

fn check_round(store: &Store, ids: &[String], did: &[Did]) {
    let org = store.organization(ORG).unwrap();
    let round: HashSet<&String> = ids.iter().collect();
    for (t, d) in did.iter().enumerate() {
        if let Did::Claimed(claimed) = d {
            assert!(
                claimed.iter().all(|c| round.contains(&c.id)),
                "thread {t} claimed a stranger"
            );
        }
    }
    for id in ids {
        let last = org.get(id).unwrap();
        let history = org.history(id).unwrap();
        let left: Vec<_> = history
            .iter()
            .filter(|e| e.from == Some(Status::Scheduled))
            .collect();
        assert_eq!(left.len(), 1, "{id} left scheduled once: {history:?}");
        assert_eq!(
            history.len(),
            2,
            "{id}: creation and one transition: {history:?}"
        );
        let event = left[0];
        assert_eq!(event.to, last.status, "{id}: history and final state agree");
        let mut winners = Vec::new();
        for (t, d) in did.iter().enumerate() {
            match d {
                Did::Claimed(claimed) => {
                    let mine: Vec<&Callback> = claimed.iter().filter(|c| &c.id == id).collect();
                    assert!(mine.len() <= 1, "{id} claimed twice by thread {t}");
                    if let Some(c) = mine.first() {
                        assert_eq!(*c, &last, "{id}: the claimer holds the final state");
                        winners.push((t, EventAction::ClaimDue));
                    }
                }
                Did::Asked(answers) => match &answers[id] {
                    // Cancelling a cancelled callback returns it unchanged
                    // (DESIGN.md): only the cancel whose reason the history
                    // records won.
                    Ok(c) if role(t) == Role::Cancel => {
                        assert_eq!(c, &last, "{id}: thread {t} got the final state");
                        if event.detail.as_deref() == Some(cancel_reason(t).as_str()) {
                            winners.push((t, EventAction::Cancel));
                        }
                    }
                    Ok(c) => {
                        assert_eq!(c, &last, "{id}: the dispatcher holds the final state");
                        winners.push((t, EventAction::Dispatch));
                    }
                    Err(Error::InvalidTransition { from, .. }) => {
                        assert_eq!(*from, last.status, "{id}: thread {t} names what it found");
                    }
                    Err(e) => panic!("{id}: thread {t} got {:?}: {e}", e.code()),
                },
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "{id}: exactly one winner, got {winners:?}"
        );
        let (_, action) = winners[0];
        assert_eq!(event.action, action, "{id}: the history names the winner");
        let expected_status = match action {
            EventAction::Cancel => Status::Cancelled,
            _ => Status::Dispatching,
        };
        assert_eq!(last.status, expected_status, "{id}");
        // When a cancel won, every other cancel got the callback unchanged;
        // otherwise every cancel lost.
        for (t, d) in did.iter().enumerate() {
            if let (Role::Cancel, Did::Asked(answers)) = (role(t), d) {
                assert_eq!(
                    answers[id].is_ok(),
                    action == EventAction::Cancel,
                    "{id} thread {t}"
                );
            }
        }
    }
}

#[test]
fn racing_cancel_dispatch_and_claim_due_from_eight_connections_has_one_winner_per_callback() {
    let (db, clock) = shared_db();
    let path = db.location();
    let stores: Vec<Store> = (0..THREADS).map(|_| file_store(&path, &clock)).collect();
    for round in 0..ROUNDS {
        race_round(&stores, round);
    }
    assert_eq!(
        row_count(&stores[0], "callbacks"),
        (ROUNDS * CALLBACKS) as i64
    );
    assert_eq!(
        row_count(&stores[0], "callback_events"),
        (2 * ROUNDS * CALLBACKS) as i64
    );
}

#[test]
fn racing_cancel_dispatch_and_claim_due_on_one_shared_store_has_one_winner_per_callback() {
    let (db, clock) = shared_db();
    let path = db.location();
    let shared = file_store(&path, &clock);
    let stores: Vec<Store> = (0..THREADS).map(|_| shared.clone()).collect();
    for round in 0..ROUNDS {
        race_round(&stores, round);
    }
    assert_eq!(
        row_count(&shared, "callback_events"),
        (2 * ROUNDS * CALLBACKS) as i64
    );
}

#[test]
fn two_stores_on_one_file_each_see_the_others_writes_at_once() {
    let (db, clock) = shared_db();
    let path = db.location();
    let a = file_store(&path, &clock).organization(ORG).unwrap();
    let b = file_store(&path, &clock).organization(ORG).unwrap();

    let created = a.create(new_callback(10)).unwrap();
    assert_eq!(b.get(&created.id).unwrap(), created);
    let listed = b.list(&ListQuery::default()).unwrap().callbacks;
    assert_eq!(listed, vec![created.clone()]);

    let cancelled = b.cancel(&created.id, Some("from b")).unwrap();
    assert_eq!(a.get(&created.id).unwrap(), cancelled);
    assert_eq!(a.history(&created.id).unwrap().len(), 2);
    let err = a.dispatch(&created.id).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidTransition);

    let second = b.create(new_callback(-1)).unwrap();
    let claimed = a.store().claim_due(t0(), 10).unwrap();
    assert_eq!(
        claimed.iter().map(|c| c.id()).collect::<Vec<_>>(),
        vec![&second.id]
    );
    assert_eq!(b.get(&second.id).unwrap().status, Status::Dispatching);
}

#[test]
fn concurrent_create_many_from_two_stores_on_one_file_loses_nothing() {
    const BATCHES: usize = 15;
    const PER_BATCH: usize = 20;
    let (db, clock) = shared_db();
    let path = db.location();
    let stores = [0, 1].map(|_| file_store(&path, &clock));
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(s, store)| {
            let org = store.organization(ORG).unwrap();
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                (0..BATCHES)
                    .map(|b| {
                        let batch = (0..PER_BATCH)
                            .map(|i| callback_store::NewCallback {
                                source_session_id: Some(format!("store_{s}_batch_{b}")),
                                ..new_callback(i as i64)
                            })
                            .collect();
                        org.create_many(batch)
                            .unwrap_or_else(|e| panic!("store {s} batch {b}: {e}"))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let created: Vec<Callback> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("a writer panicked"))
        .flatten()
        .collect();
    let total = 2 * BATCHES * PER_BATCH;
    assert_eq!(created.len(), total);
    let unique: HashSet<&str> = created.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(unique.len(), total, "ids are unique");
    for store in &stores {
        assert_eq!(row_count(store, "callbacks"), total as i64);
        assert_eq!(row_count(store, "callback_events"), total as i64);
        let org = store.organization(ORG).unwrap();
        let mut listed = HashSet::new();
        let mut query = ListQuery {
            limit: 100,
            ..ListQuery::default()
        };
        loop {
            let page = org.list(&query).unwrap();
            listed.extend(page.callbacks.into_iter().map(|c| c.id));
            match page.next_cursor {
                Some(cursor) => query.cursor = Some(cursor),
                None => break,
            }
        }
        assert_eq!(listed.len(), total);
        assert!(unique.iter().all(|id| listed.contains(*id)));
        // Every batch is there whole.
        for s in 0..2 {
            for b in 0..BATCHES {
                let query = ListQuery {
                    source_session_id: Some(format!("store_{s}_batch_{b}")),
                    ..ListQuery::default()
                };
                assert_eq!(org.list(&query).unwrap().callbacks.len(), PER_BATCH);
            }
        }
    }
}

#[test]
fn claim_due_from_four_connections_claims_every_due_callback_exactly_once() {
    const WORKERS: usize = 4;
    let (db, clock) = shared_db();
    let path = db.location();
    let stores: Vec<Store> = (0..WORKERS).map(|_| file_store(&path, &clock)).collect();
    let now = at_minutes(0);
    let mut due = HashSet::new();
    let mut not_due = HashSet::new();
    for org_id in ["org_1", "org_2", "org_3"] {
        let org = stores[0].organization(org_id).unwrap();
        // 100 due (many at the same instant) and 10 due a minute from now.
        let batch = (0..110)
            .map(|i| new_callback(if i < 100 { -(i % 9) } else { 1 }))
            .collect();
        for (i, c) in org.create_many(batch).unwrap().into_iter().enumerate() {
            if i < 100 {
                due.insert(c.id);
            } else {
                not_due.insert(c.id);
            }
        }
    }
    let barrier = Arc::new(Barrier::new(WORKERS));
    let handles: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(w, store)| {
            let store = store.clone();
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                let mut claimed = Vec::new();
                loop {
                    let got = store
                        .claim_due(now, 7)
                        .unwrap_or_else(|e| panic!("worker {w}: {:?}: {e}", e.code()));
                    if got.is_empty() {
                        return claimed;
                    }
                    assert!(got.len() <= 7);
                    let keys: Vec<_> = got.iter().map(|c| c.callback().scheduled_at).collect();
                    assert!(
                        keys.windows(2).all(|k| k[0] <= k[1]),
                        "worker {w}: a claim is oldest first"
                    );
                    claimed.extend(got);
                }
            })
        })
        .collect();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (w, h) in handles.into_iter().enumerate() {
        for c in h.join().expect("a worker panicked") {
            assert_eq!(c.callback().status, Status::Dispatching);
            assert_eq!(c.callback().attempted_at, Some(now));
            if let Some(other) = seen.insert(c.id().to_owned(), w) {
                panic!("{} claimed by workers {other} and {w}", c.id());
            }
        }
    }
    let claimed: HashSet<String> = seen.into_keys().collect();
    assert_eq!(claimed.len(), due.len(), "every due callback claimed");
    assert_eq!(claimed, due, "the claimed are the due ones");
    assert!(claimed.is_disjoint(&not_due));
    assert!(
        stores[1].claim_due(now, 10).unwrap().is_empty(),
        "nothing left"
    );
    let events_by_action = |action: &str| -> i64 {
        // The action is a constant of this test, not input.
        common::count(
            &stores[2],
            &format!("SELECT COUNT(*) FROM callback_events WHERE action = '{action}'"),
        )
    };
    assert_eq!(events_by_action("claim_due"), due.len() as i64);
    for org_id in ["org_1", "org_2", "org_3"] {
        let org = stores[3].organization(org_id).unwrap();
        let query = ListQuery {
            status: Some(Status::Scheduled),
            ..ListQuery::default()
        };
        let left: HashSet<String> = org
            .list(&query)
            .unwrap()
            .callbacks
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(left.len(), 10, "{org_id}: the not yet due stay scheduled");
        assert!(left.is_subset(&not_due));
    }
}

#[test]
fn of_two_stores_racing_on_one_file_exactly_one_transition_wins_and_the_loser_names_what_it_found()
{
    let (db, _) = shared_db();
    let path = db.location();
    let clock = ManualClock::new(t0());
    let first = file_store(&path, &clock).organization("org_a").unwrap();
    let second = file_store(&path, &clock).organization("org_a").unwrap();
    for round in 0..20 {
        let id = first.create(new_callback(round)).unwrap().id;
        let barrier = Barrier::new(2);
        let (dispatched, cancelled) = thread::scope(|s| {
            let dispatcher = s.spawn(|| {
                barrier.wait();
                first.dispatch(&id).map(Claim::into_callback)
            });
            let canceller = s.spawn(|| {
                barrier.wait();
                second.cancel(&id, None)
            });
            (dispatcher.join().unwrap(), canceller.join().unwrap())
        });
        let (winner, lost, action) = match (dispatched, cancelled) {
            (Ok(won), Err(lost)) => (won, lost, Action::Cancel),
            (Err(lost), Ok(won)) => (won, lost, Action::Dispatch),
            other => panic!("round {round}: not exactly one winner: {other:?}"),
        };
        let (id, from) = (id.clone(), winner.status);
        assert_eq!(
            lost,
            Error::InvalidTransition {
                id: id.clone(),
                action,
                from
            }
        );
        let history = first.history(&id).unwrap();
        assert_eq!(history.len(), 2, "round {round}: one transition recorded");
        assert_eq!(history[1].to, winner.status);
    }
}

#[test]
fn creates_racing_with_one_idempotency_key_from_eight_connections_make_one_callback() {
    // On PostgreSQL both look-ups can miss before either insert commits;
    // the loser's insert meets the unique index, and its retry finds the
    // winner's callback. On SQLite the write lock orders them.
    let (db, clock) = shared_db();
    let path = db.location();
    let orgs: Vec<_> = (0..THREADS)
        .map(|_| file_store(&path, &clock).organization(ORG).unwrap())
        .collect();
    for round in 0..10 {
        let key = format!("key_{round}");
        let barrier = Barrier::new(THREADS);
        let made: Vec<Callback> = thread::scope(|s| {
            let handles: Vec<_> = orgs
                .iter()
                .map(|org| {
                    let (barrier, key) = (&barrier, &key);
                    s.spawn(move || {
                        barrier.wait();
                        org.create(callback_store::NewCallback {
                            idempotency_key: Some(key.clone()),
                            ..new_callback(round)
                        })
                        .unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let ids: HashSet<&str> = made.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids.len(), 1, "round {round}: {ids:?}");
    }
    assert_eq!(row_count(orgs[0].store(), "callbacks"), 10);
}
