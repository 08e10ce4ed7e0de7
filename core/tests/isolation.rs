//! Organization isolation: an organization never sees, reads, lists or
//! changes another organization's callbacks (they are NOT_FOUND, exactly
//! like callbacks that do not exist), and an API key opens its own
//! organization only, until it is revoked.

mod common;

use std::collections::BTreeSet;

use callback_store::{
    Callback, Error, ErrorCode, ListQuery, NewCallback, Order, Organization, Status, Store,
};
use common::{at_minutes, row_count, store};

const SOURCE: &str = "sess_shared";
const AGENT: &str = "agent_shared";
const NUMBER: &str = "+12015551234";

/// The same callbacks, made the same way, in one organization: due at +10,
/// +20, … min, with one in each status.
fn populate(org: &Organization) -> Vec<Callback> {
    let made: Vec<Callback> = (1..=6)
        .map(|i| {
            org.create(NewCallback {
                source_session_id: Some(SOURCE.into()),
                agent_id: Some(AGENT.into()),
                ..NewCallback::new(NUMBER, at_minutes(10 * i))
            })
            .unwrap()
        })
        .collect();
    org.dispatch(&made[1].id).unwrap(); // dispatching
    org.dispatch(&made[2].id).unwrap();
    org.complete_dispatch(&made[2].id, "sess_done", None)
        .unwrap();
    org.cancel(&made[3].id, Some("asked")).unwrap();
    org.dispatch(&made[4].id).unwrap();
    org.fail_dispatch(&made[4].id, "busy", None).unwrap();
    made.iter().map(|cb| org.get(&cb.id).unwrap()).collect()
}

struct Fixture {
    store: Store,
    a: Organization,
    b: Organization,
    a_callbacks: Vec<Callback>,
    b_callbacks: Vec<Callback>,
}

fn fixture() -> Fixture {
    let (store, _clock) = store();
    let a = store.organization("org_a").unwrap();
    let b = store.organization("org_b").unwrap();
    let a_callbacks = populate(&a);
    let b_callbacks = populate(&b);
    Fixture {
        store,
        a,
        b,
        a_callbacks,
        b_callbacks,
    }
}

fn rows(store: &Store) -> [i64; 2] {
    ["callbacks", "callback_events"].map(|t| row_count(store, t))
}

/// `op` run by `intruder` on each of `owner`'s callbacks that it could
/// otherwise act on is NOT_FOUND, indistinguishable from a callback that
/// does not exist, and changes nothing.
fn assert_invisible(op: fn(&Organization, &str) -> Result<(), Error>, status: Status) {
    let f = fixture();
    let directions = [(&f.a, &f.b, &f.b_callbacks), (&f.b, &f.a, &f.a_callbacks)];
    for (intruder, owner, theirs) in directions {
        let target = theirs.iter().find(|cb| cb.status == status).unwrap();
        let history = owner.history(&target.id).unwrap();
        let before = rows(&f.store);

        let err = op(intruder, &target.id).unwrap_err();

        assert_eq!(err.code(), ErrorCode::NotFound, "{err}");
        let missing = "cb_00000000000000000000000000000000";
        let like_missing = op(intruder, missing).unwrap_err();
        assert_eq!(
            err.to_string().replace(&target.id, missing),
            like_missing.to_string(),
            "the error must not tell it exists"
        );
        assert_eq!(&owner.get(&target.id).unwrap(), target, "changed");
        assert_eq!(owner.history(&target.id).unwrap(), history);
        assert_eq!(rows(&f.store), before, "rows written");
    }
}

macro_rules! invisible {
    ($($name:ident: $status:ident, $op:expr;)*) => {$(
        #[test]
        fn $name() {
            assert_invisible($op, Status::$status);
        }
    )*};
}

invisible! {
    get_of_another_organizations_callback_is_not_found:
        Scheduled, |org, id| org.get(id).map(drop);
    history_of_another_organizations_callback_is_not_found:
        Dispatched, |org, id| org.history(id).map(drop);
    cancel_of_another_organizations_scheduled_callback_is_not_found_and_changes_nothing:
        Scheduled, |org, id| org.cancel(id, Some("not yours")).map(drop);
    cancel_of_another_organizations_cancelled_callback_is_not_found_not_a_no_op:
        Cancelled, |org, id| org.cancel(id, None).map(drop);
    dispatch_of_another_organizations_callback_is_not_found_and_changes_nothing:
        Scheduled, |org, id| org.dispatch(id).map(drop);
    complete_dispatch_of_another_organizations_callback_is_not_found_and_changes_nothing:
        Dispatching, |org, id| org.complete_dispatch(id, "sess_intruder", None).map(drop);
    fail_dispatch_of_another_organizations_callback_is_not_found_and_changes_nothing:
        Dispatching, |org, id| org.fail_dispatch(id, "intruder", None).map(drop);
    reschedule_of_another_organizations_callback_is_not_found_and_changes_nothing:
        Scheduled, |org, id| org.reschedule(id, at_minutes(999)).map(drop);
}

#[test]
fn not_found_for_another_organizations_callback_is_the_plain_callback_not_found_error() {
    let f = fixture();
    let theirs = &f.b_callbacks[0].id;
    assert_eq!(
        f.a.get(theirs).unwrap_err(),
        Error::NotFound {
            kind: "callback",
            id: theirs.clone()
        }
    );
}

// --- Lists --------------------------------------------------------------------

/// Every page of `query`, followed to the end; checks every row's owner.
fn all_pages(org: &Organization, query: &ListQuery) -> Vec<String> {
    let mut query = query.clone();
    let mut ids = Vec::new();
    loop {
        let page = org.list(&query).unwrap();
        for cb in &page.callbacks {
            assert_eq!(cb.organization_id, org.id(), "{query:?} shows {cb:?}");
            ids.push(cb.id.clone());
        }
        match page.next_cursor {
            Some(next) => query.cursor = Some(next),
            None => return ids,
        }
    }
}

fn every_filter() -> Vec<(String, ListQuery, usize)> {
    let q = |set: fn(&mut ListQuery)| {
        let mut query = ListQuery {
            limit: 2,
            ..ListQuery::default()
        };
        set(&mut query);
        query
    };
    let mut queries = vec![
        ("no filter".into(), q(|_| {}), 6),
        (
            "source_session_id".into(),
            q(|q| q.source_session_id = Some(SOURCE.into())),
            6,
        ),
        ("agent_id".into(), q(|q| q.agent_id = Some(AGENT.into())), 6),
        (
            "to_number".into(),
            q(|q| q.to_number = Some(NUMBER.into())),
            6,
        ),
        (
            "scheduled_after".into(),
            q(|q| q.scheduled_after = Some(at_minutes(30))),
            4,
        ),
        (
            "scheduled_before".into(),
            q(|q| q.scheduled_before = Some(at_minutes(30))),
            2,
        ),
        (
            "scheduled_asc".into(),
            q(|q| q.order = Order::ScheduledAsc),
            6,
        ),
        (
            "every filter at once".into(),
            q(|q| {
                q.status = Some(Status::Scheduled);
                q.source_session_id = Some(SOURCE.into());
                q.agent_id = Some(AGENT.into());
                q.to_number = Some(NUMBER.into());
                q.scheduled_after = Some(at_minutes(10));
                q.scheduled_before = Some(at_minutes(70));
                q.order = Order::ScheduledAsc;
            }),
            2,
        ),
    ];
    for status in Status::ALL {
        let expected = if status == Status::Scheduled { 2 } else { 1 };
        let mut query = q(|_| {});
        query.status = Some(status);
        queries.push((format!("status {status}"), query, expected));
    }
    queries
}

#[test]
fn list_with_every_filter_and_order_shows_only_the_organizations_own_callbacks() {
    let f = fixture();
    let own = |cbs: &[Callback]| cbs.iter().map(|c| c.id.clone()).collect::<BTreeSet<_>>();
    let (a_ids, b_ids) = (own(&f.a_callbacks), own(&f.b_callbacks));
    for (name, query, expected) in every_filter() {
        let seen_by_a: BTreeSet<String> = all_pages(&f.a, &query).into_iter().collect();
        let seen_by_b: BTreeSet<String> = all_pages(&f.b, &query).into_iter().collect();
        assert_eq!(seen_by_a.len(), expected, "{name}: org_a");
        assert_eq!(seen_by_b.len(), expected, "{name}: org_b");
        assert!(seen_by_a.is_subset(&a_ids), "{name}: org_a sees org_b's");
        assert!(seen_by_b.is_subset(&b_ids), "{name}: org_b sees org_a's");
    }
}

#[test]
fn a_list_cursor_of_one_organization_is_refused_by_another() {
    let f = fixture();
    let query = ListQuery {
        limit: 1,
        ..ListQuery::default()
    };
    let cursor = f.a.list(&query).unwrap().next_cursor.unwrap();
    let err =
        f.b.list(&ListQuery {
            cursor: Some(cursor),
            ..query
        })
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ValidationError, "{err}");
    assert!(err.to_string().starts_with("cursor: "), "{err}");
}

#[test]
fn an_organization_with_no_callbacks_lists_nothing_and_counts_nothing() {
    let f = fixture();
    let c = f.store.organization("org_c").unwrap();
    for (name, query, _) in every_filter() {
        assert!(all_pages(&c, &query).is_empty(), "{name}");
    }
    assert!(c.count_by_status().unwrap().iter().all(|(_, n)| *n == 0));
    let a_counts = f.a.count_by_status().unwrap();
    assert_eq!(
        a_counts.iter().map(|(_, n)| n).sum::<u64>(),
        6,
        "org_a's own"
    );
}

#[test]
fn the_same_idempotency_key_in_two_organizations_makes_two_callbacks_without_conflict() {
    let (store, _clock) = store();
    let a = store.organization("org_a").unwrap();
    let b = store.organization("org_b").unwrap();
    let keyed = |number: &str| NewCallback {
        idempotency_key: Some("retry-1".into()),
        ..NewCallback::new(number, at_minutes(60))
    };
    let in_a = a.create(keyed("+12015551234")).unwrap();
    let in_b = b.create(keyed("+442071838750")).unwrap();
    assert_ne!(in_a.id, in_b.id);
    assert_eq!(in_b.organization_id, "org_b");
    assert_eq!(in_b.to_number, "+442071838750", "not org_a's callback");
    assert_eq!(
        b.create(keyed("+442071838750")).unwrap(),
        in_b,
        "retry in b"
    );
    assert_eq!(a.get(&in_a.id).unwrap(), in_a);
    assert_eq!(row_count(&store, "callbacks"), 2);
}

// --- API keys -----------------------------------------------------------------

#[test]
fn an_api_key_of_org_a_authenticates_to_org_a_only() {
    let f = fixture();
    let key = f.store.create_api_key("org_a", "worker").unwrap();
    assert_eq!(key.key.organization_id, "org_a");
    for authorization in [
        format!("Bearer {}", key.token),
        format!("bearer {}", key.token),
        key.token.clone(),
    ] {
        let org = f.store.authenticate(&authorization).unwrap();
        assert_eq!(org.id(), "org_a", "{authorization}");
        let mine = &f.a_callbacks[0];
        assert_eq!(&org.get(&mine.id).unwrap(), mine);
        let theirs = &f.b_callbacks[0];
        assert_eq!(org.get(&theirs.id).unwrap_err().code(), ErrorCode::NotFound);
        let err = org.cancel(&theirs.id, None).unwrap_err();
        assert_eq!(err.code(), ErrorCode::NotFound);
        assert_eq!(&f.b.get(&theirs.id).unwrap(), theirs);
        let listed = all_pages(&org, &ListQuery::default());
        assert_eq!(listed.len(), 6);
    }
}

#[test]
fn each_organizations_key_opens_its_own_organization() {
    let f = fixture();
    let key_a = f.store.create_api_key("org_a", "a").unwrap();
    let key_b = f.store.create_api_key("org_b", "b").unwrap();
    assert_ne!(key_a.token, key_b.token);
    let via_b = f.store.authenticate(&key_b.token).unwrap();
    assert_eq!(via_b.id(), "org_b");
    let ids: BTreeSet<String> = all_pages(&via_b, &ListQuery::default())
        .into_iter()
        .collect();
    let b_ids: BTreeSet<String> = f.b_callbacks.iter().map(|c| c.id.clone()).collect();
    assert_eq!(ids, b_ids);
    let listed = f.store.list_api_keys("org_a").unwrap();
    assert_eq!(listed, vec![key_a.key.clone()], "org_a lists its keys only");
    assert_eq!(f.store.list_api_keys("org_b").unwrap(), vec![key_b.key]);
}

#[test]
fn a_revoked_key_is_unauthorized_at_once_and_other_keys_keep_working() {
    let f = fixture();
    let revoked = f.store.create_api_key("org_a", "old").unwrap();
    let kept = f.store.create_api_key("org_a", "new").unwrap();
    let other = f.store.create_api_key("org_b", "b").unwrap();
    assert!(f.store.authenticate(&revoked.token).is_ok());

    let key = f.store.revoke_api_key(&revoked.key.id).unwrap();
    assert!(key.revoked_at.is_some());

    for authorization in [format!("Bearer {}", revoked.token), revoked.token.clone()] {
        let err = f.store.authenticate(&authorization).unwrap_err();
        assert_eq!(err, Error::Unauthorized);
        assert_eq!(err.code(), ErrorCode::Unauthorized);
        assert_eq!(
            serde_json::to_string(&err.body()).unwrap(),
            r#"{"error":"Unauthorized","code":"UNAUTHORIZED"}"#
        );
    }
    assert_eq!(f.store.authenticate(&kept.token).unwrap().id(), "org_a");
    assert_eq!(f.store.authenticate(&other.token).unwrap().id(), "org_b");
    f.store.revoke_api_key(&revoked.key.id).unwrap();
    assert_eq!(
        f.store.authenticate(&revoked.token).unwrap_err(),
        Error::Unauthorized,
        "revoking again does not revive it"
    );
}

#[test]
fn missing_unknown_and_malformed_tokens_are_unauthorized() {
    let f = fixture();
    let key = f.store.create_api_key("org_a", "a").unwrap();
    let mut altered = key.token.clone();
    let last = altered.pop().unwrap();
    altered.push(if last == 'A' { 'B' } else { 'A' });
    let prefix = &key.token[..key.token.len() - 1];
    for authorization in [
        String::new(),
        "Bearer".into(),
        "Bearer ".into(),
        "Basic dXNlcjpwYXNz".into(),
        "Bearer cbs_unknown".into(),
        format!("Bearer {altered}"),
        prefix.into(),
        format!("Bearer {} extra", key.token),
        "org_a".into(),
        key.key.id.clone(),
    ] {
        let err = f.store.authenticate(&authorization).unwrap_err();
        assert_eq!(err, Error::Unauthorized, "{authorization:?}");
    }
}
