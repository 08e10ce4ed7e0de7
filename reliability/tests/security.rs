//! Security: API tokens are stored only as hashes, a revoked key is refused
//! at once (also by another store on the same file, as another process of
//! the server would be), and one organization can neither see nor touch
//! another's callbacks through any operation (holding the callback's claim
//! token included). Claim tokens are random, distinct, compared exactly,
//! and a refused claim never reveals the real token. The core has its own,
//! longer isolation suite; this one runs on a file, through two stores.

use std::path::Path;

use callback_store::{ErrorCode, ListQuery, NewCallback, Organization, Status, Store};
use chrono::{Duration, TimeZone, Utc};

fn t0() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The bytes of the database file and its WAL, as they are now.
fn file_bytes(db: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let path = format!("{}{suffix}", db.display());
        if let Ok(bytes) = std::fs::read(&path) {
            files.push((path, bytes));
        }
    }
    files
}

#[test]
fn api_tokens_appear_nowhere_in_the_database_file_or_its_wal() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keys.db");
    let store = Store::open(&db).unwrap();
    let mut tokens = Vec::new();
    for (org, label) in [("org_a", "ci"), ("org_a", "dialer"), ("org_b", "ops")] {
        let created = store.create_api_key(org, label).unwrap();
        assert!(store
            .authenticate(&format!("Bearer {}", created.token))
            .is_ok());
        tokens.push(created.token);
    }
    store
        .revoke_api_key(&store.list_api_keys("org_a").unwrap()[0].id)
        .unwrap();
    let check = |when: &str| {
        let files = file_bytes(&db);
        assert!(files.iter().any(|(p, _)| p.ends_with("-wal")) || when == "closed");
        for (path, bytes) in &files {
            for token in &tokens {
                // The whole token, and its random part without the prefix.
                let secret = token.trim_start_matches("cbs_");
                assert!(
                    !contains(bytes, token.as_bytes()),
                    "{when}: token in {path}"
                );
                assert!(
                    !contains(bytes, secret.as_bytes()),
                    "{when}: secret in {path}"
                );
            }
        }
    };
    check("open, before a checkpoint");
    drop(store);
    check("closed");
    // The check can fail: a token written as data is found.
    let store = Store::open(&db).unwrap();
    let org = store.organization("org_a").unwrap();
    org.create(NewCallback {
        reason: Some(tokens[0].clone()),
        ..NewCallback::new("+12015551234", t0())
    })
    .unwrap();
    let found = file_bytes(&db)
        .iter()
        .any(|(_, bytes)| contains(bytes, tokens[0].as_bytes()));
    assert!(found, "the scan does not find text that is in the file");
}

#[test]
fn a_revoked_key_is_refused_at_once_by_every_store_on_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("revoke.db");
    let admin = Store::open(&db).unwrap();
    let server = Store::open(&db).unwrap(); // another connection, like another process
    let kept = admin.create_api_key("org_a", "kept").unwrap();
    let revoked = admin.create_api_key("org_a", "revoked").unwrap();
    for token in [&kept.token, &revoked.token] {
        let org = server.authenticate(&format!("Bearer {token}")).unwrap();
        assert_eq!(org.id(), "org_a");
    }
    let key = admin.revoke_api_key(&revoked.key.id).unwrap();
    assert!(key.revoked_at.is_some());
    for store in [&admin, &server] {
        for form in [format!("Bearer {}", revoked.token), revoked.token.clone()] {
            let err = store.authenticate(&form).unwrap_err();
            assert_eq!(err.code(), ErrorCode::Unauthorized);
            assert_eq!(err.to_string(), "Unauthorized");
        }
        assert_eq!(store.authenticate(&kept.token).unwrap().id(), "org_a");
    }
    // Revoking again changes nothing, and the key stays revoked.
    assert_eq!(admin.revoke_api_key(&revoked.key.id).unwrap(), key);
    assert!(server.authenticate(&revoked.token).is_err());
}

/// Every operation of `intruder` on `victim_id` is NOT_FOUND, also with
/// the victim's claim `token` when it has one.
fn assert_invisible(intruder: &Organization, victim_id: &str, token: Option<&str>) {
    let mut answers = vec![
        ("get", intruder.get(victim_id).map(drop)),
        ("history", intruder.history(victim_id).map(drop)),
        (
            "cancel",
            intruder.cancel(victim_id, Some("not mine")).map(drop),
        ),
        ("dispatch", intruder.dispatch(victim_id).map(drop)),
        ("reschedule", intruder.reschedule(victim_id, t0()).map(drop)),
    ];
    for claim in [None, token] {
        answers.push((
            "complete_dispatch",
            intruder
                .complete_dispatch(victim_id, "sess_x", claim)
                .map(drop),
        ));
        answers.push((
            "fail_dispatch",
            intruder.fail_dispatch(victim_id, "cause", claim).map(drop),
        ));
    }
    for (op, answer) in answers {
        let err = answer.expect_err(op);
        assert_eq!(err.code(), ErrorCode::NotFound, "{op}: {err}");
    }
}

#[test]
fn one_organization_can_neither_see_nor_change_another_organizations_callbacks() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("isolation.db");
    let store_a = Store::open(&db).unwrap();
    let store_b = Store::open(&db).unwrap();
    let token_b = store_b.create_api_key("org_b", "b").unwrap().token;
    let a = store_a.organization("org_a").unwrap();
    let b = store_b.authenticate(&format!("Bearer {token_b}")).unwrap();
    assert_eq!(b.id(), "org_b");

    let same_key = |minutes| NewCallback {
        source_session_id: Some("sess_shared".into()),
        agent_id: Some("agent_shared".into()),
        idempotency_key: Some("shared-key".into()),
        ..NewCallback::new("+12015551234", t0() + Duration::minutes(minutes))
    };
    let mine = a.create(same_key(0)).unwrap();
    let dispatching = a.create(NewCallback::new("+12015550000", t0())).unwrap();
    let claim = a.dispatch(&dispatching.id).unwrap();
    // The same idempotency key in another organization is another callback.
    let theirs = b.create(same_key(5)).unwrap();
    assert_ne!(theirs.id, mine.id);
    assert_eq!(theirs.organization_id, "org_b");

    assert_invisible(&b, &mine.id, None);
    assert_invisible(&b, &dispatching.id, Some(claim.token()));
    assert_invisible(&a, &theirs.id, None);
    for (org, own, other) in [(&a, &mine.id, &theirs.id), (&b, &theirs.id, &mine.id)] {
        let filters = [
            ListQuery::default(),
            ListQuery {
                source_session_id: Some("sess_shared".into()),
                ..ListQuery::default()
            },
            ListQuery {
                agent_id: Some("agent_shared".into()),
                ..ListQuery::default()
            },
            ListQuery {
                to_number: Some("+12015551234".into()),
                ..ListQuery::default()
            },
            ListQuery {
                status: Some(Status::Scheduled),
                ..ListQuery::default()
            },
        ];
        for query in filters {
            let page = org.list(&query).unwrap();
            let ids: Vec<&str> = page.callbacks.iter().map(|c| c.id.as_str()).collect();
            assert!(ids.contains(&own.as_str()), "{} with {query:?}", org.id());
            assert!(
                !ids.contains(&other.as_str()),
                "{} with {query:?}",
                org.id()
            );
            assert!(
                page.callbacks.iter().all(|c| c.organization_id == org.id()),
                "{} with {query:?}",
                org.id()
            );
        }
    }
    let b_counts = b.count_by_status().unwrap();
    assert_eq!(b_counts.iter().map(|(_, n)| n).sum::<u64>(), 1);
    // A cursor of one organization is refused by the other.
    let page = a
        .list(&ListQuery {
            limit: 1,
            ..ListQuery::default()
        })
        .unwrap();
    let err = b
        .list(&ListQuery {
            cursor: page.next_cursor,
            limit: 1,
            ..ListQuery::default()
        })
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ValidationError);
    // Nothing the intruders tried left a trace.
    assert_eq!(a.get(&mine.id).unwrap(), mine);
    assert_eq!(a.history(&mine.id).unwrap().len(), 1);
    assert_eq!(a.get(&dispatching.id).unwrap().status, Status::Dispatching);
    assert_eq!(b.history(&theirs.id).unwrap().len(), 1);
    // Keys are per organization too.
    assert!(store_a.list_api_keys("org_a").unwrap().is_empty());
    assert_eq!(store_a.list_api_keys("org_b").unwrap().len(), 1);
}

#[test]
fn claim_tokens_are_random_and_exact_and_a_refused_claim_never_reveals_the_real_one() {
    let store = Store::open_in_memory().unwrap();
    let org = store.organization("org_a").unwrap();
    let batch = (0..200)
        .map(|i| NewCallback::new("+12015551234", t0() + Duration::seconds(i)))
        .collect();
    org.create_many(batch).unwrap();
    let claims = store.claim_due(t0() + Duration::hours(1), 200).unwrap();
    assert_eq!(claims.len(), 200);
    let mut seen = std::collections::HashSet::new();
    for claim in &claims {
        let token = claim.token();
        assert!(
            token.len() == 32
                && token
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            "{token:?} is not 32 lowercase hex digits"
        );
        assert!(
            seen.insert(token.to_owned()),
            "token {token} handed out twice"
        );
    }

    let claim = &claims[0];
    let (id, real) = (claim.id(), claim.token());
    let last = if real.ends_with('0') { "1" } else { "0" };
    let near_misses = [
        format!("{}{last}", &real[..31]),
        real.to_uppercase(),
        format!("{real}0"),
        real[..31].to_owned(),
        claims[1].token().to_owned(),
    ];
    for forged in &near_misses {
        let answers = [
            store.claim_by_token(id, forged).map(drop),
            org.complete_dispatch(id, "sess_x", Some(forged)).map(drop),
            org.fail_dispatch(id, "cause", Some(forged)).map(drop),
        ];
        for answer in answers {
            let err = answer.expect_err(forged);
            assert_eq!(err.code(), ErrorCode::InvalidTransition, "{forged}: {err}");
            for shown in [err.to_string(), format!("{err:?}")] {
                assert!(
                    !shown.contains(real),
                    "{forged}: the error shows the token: {shown}"
                );
            }
        }
    }
    // Refused, they changed nothing: the real claim is still live.
    assert_eq!(org.get(id).unwrap().status, Status::Dispatching);
    assert_eq!(org.history(id).unwrap().len(), 2);
    assert_eq!(store.claim_by_token(id, real).unwrap().token(), real);
}
