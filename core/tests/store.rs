//! The record's JSON, idempotency, API keys, the dispatch helper, recovery,
//! pruning and opening options.

mod common;

use std::sync::Arc;
use std::time::Duration;

use callback_store::{
    Callback, Durability, ErrorCode, EventAction, JsonObject, JsonObjectText, NewCallback, Status,
    Store, StoreOptions,
};
use chrono::{TimeZone, Utc};
use common::{at_minutes, new_callback, row_count, store, t0};
use serde_json::json;

fn object(value: serde_json::Value) -> JsonObject {
    match value {
        serde_json::Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

#[test]
fn a_fully_populated_callback_serializes_exactly_like_the_api_reference_example() {
    let example = include_str!("fixtures/api_callback_example.json");
    let t = Utc.with_ymd_and_hms(2019, 8, 24, 14, 15, 22).unwrap();
    let s = || Some("string".to_owned());
    let callback = Callback {
        id: "string".into(),
        organization_id: "string".into(),
        source_session_id: s(),
        created_session_id: s(),
        agent_id: s(),
        phone_number_id: s(),
        to_number: "+12015551234".into(),
        from_number: s(),
        scheduled_at: t,
        status: Status::Scheduled,
        reason: s(),
        instructions: s(),
        summary: s(),
        pipeline_config: JsonObjectText::empty(),
        metadata: JsonObjectText::empty(),
        failure_cause: s(),
        attempted_at: Some(t),
        dispatched_at: Some(t),
        cancelled_at: Some(t),
        created_at: t,
        updated_at: t,
        timezone: None,
        expires_at: None,
        attempt: 1,
        previous_callback_id: None,
    };
    let ours: serde_json::Value = serde_json::to_value(&callback).unwrap();
    let theirs: serde_json::Value = serde_json::from_str(example).unwrap();
    let our_keys: Vec<&String> = ours.as_object().unwrap().keys().collect();
    let their_keys: Vec<&String> = theirs.as_object().unwrap().keys().collect();
    // The reference's 21 keys first, in its order, then DESIGN's extension keys.
    assert_eq!(
        &our_keys[..21],
        their_keys.as_slice(),
        "keys and their order"
    );
    assert_eq!(&our_keys[21..], callback_store::EXTENSION_KEYS.as_slice());
    for key in their_keys {
        assert_eq!(ours[key], theirs[key], "value of {key}");
    }
    assert_eq!(
        serde_json::to_string_pretty(&callback).unwrap(),
        example.trim_end().trim_end_matches('}').trim_end().to_owned()
            + ",\n  \"timezone\": null,\n  \"expires_at\": null,\n  \"attempt\": 1,\n  \"previous_callback_id\": null\n}"
    );
    // A record of the reference reads as a first attempt.
    let parsed: Callback = serde_json::from_str(example).unwrap();
    assert_eq!(parsed, callback);
}

#[test]
fn a_new_callback_has_the_21_keys_then_the_4_extension_keys_with_nulls_and_empty_objects() {
    let (store, _) = store();
    let created = store
        .organization("org")
        .unwrap()
        .create(new_callback(60))
        .unwrap();
    let json = serde_json::to_value(&created).unwrap();
    let map = json.as_object().unwrap();
    assert_eq!(map.len(), 25);
    assert_eq!(map["attempt"], 1);
    assert_eq!(map["timezone"], serde_json::Value::Null);
    assert_eq!(map["expires_at"], serde_json::Value::Null);
    assert_eq!(map["previous_callback_id"], serde_json::Value::Null);
    assert!(created.id.starts_with("cb_"));
    assert_eq!(created.id.len(), 3 + 32);
    assert_eq!(map["created_session_id"], serde_json::Value::Null);
    assert_eq!(map["metadata"], json!({}));
    assert_eq!(map["pipeline_config"], json!({}));
    assert_eq!(map["status"], "scheduled");
    assert_eq!(map["scheduled_at"], "2030-01-01T01:00:00Z");
    assert_eq!(map["created_at"], "2030-01-01T00:00:00Z");
}

#[test]
fn timestamps_round_trip_at_microsecond_precision_and_drop_nanoseconds() {
    let (store, _) = store();
    let org = store.organization("org").unwrap();
    let precise = t0() + chrono::Duration::nanoseconds(123_456_789);
    let created = org
        .create(NewCallback::new("+12015551234", precise))
        .unwrap();
    let read = org.get(&created.id).unwrap();
    assert_eq!(
        read.scheduled_at,
        t0() + chrono::Duration::microseconds(123_456)
    );
    assert_eq!(
        serde_json::to_value(&read).unwrap()["scheduled_at"],
        "2030-01-01T00:00:00.123456Z"
    );
}

#[test]
fn metadata_and_pipeline_config_keep_their_content_and_key_order() {
    let (store, _) = store();
    let org = store.organization("org").unwrap();
    let metadata = object(json!({"zeta": 1, "alpha": {"nested": [1, "two", null]}, "mid": true}));
    let created = org
        .create(NewCallback {
            metadata: metadata.clone(),
            pipeline_config: object(json!({"voice": "alloy", "temperature": 0.4})),
            ..new_callback(5)
        })
        .unwrap();
    let read = org.get(&created.id).unwrap();
    assert_eq!(read.metadata, metadata);
    let map = read.metadata.to_map().unwrap();
    let keys: Vec<&String> = map.keys().collect();
    assert_eq!(keys, ["zeta", "alpha", "mid"]);
    assert_eq!(read.pipeline_config.to_map().unwrap()["voice"], "alloy");
    // The text kept is serde_json's compact form of the map: the bytes an
    // answer carries, the same whether the record was just created or read.
    let text = r#"{"zeta":1,"alpha":{"nested":[1,"two",null]},"mid":true}"#;
    assert_eq!(read.metadata.as_str(), text);
    assert_eq!(created.metadata.as_str(), text);
    assert_eq!(serde_json::to_string(&metadata).unwrap(), text);
}

#[test]
fn the_same_idempotency_key_and_payload_returns_the_first_callback_and_writes_one_row() {
    let (store, clock) = store();
    let org = store.organization("org").unwrap();
    let request = NewCallback {
        idempotency_key: Some("analysis-42".into()),
        metadata: object(json!({"a": 1, "b": 2})),
        ..new_callback(30)
    };
    let first = org.create(request.clone()).unwrap();
    clock.advance(chrono::Duration::minutes(1)).unwrap();
    // Even after the callback changed, a retry of the same request is no conflict.
    org.reschedule(&first.id, at_minutes(90)).unwrap();
    let reordered = NewCallback {
        metadata: object(json!({"b": 2, "a": 1})),
        ..request
    };
    let again = org.create(reordered).unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(row_count(&store, "callbacks"), 1);
    assert_eq!(
        org.history(&first.id).unwrap().len(),
        2,
        "create, reschedule"
    );
}

#[test]
fn the_same_idempotency_key_with_another_payload_is_a_conflict_and_writes_nothing() {
    let (store, _) = store();
    let org = store.organization("org").unwrap();
    let request = NewCallback {
        idempotency_key: Some("k".into()),
        ..new_callback(30)
    };
    let first = org.create(request.clone()).unwrap();
    let err = org
        .create(NewCallback {
            reason: Some("different".into()),
            ..request.clone()
        })
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Conflict);
    assert!(err.to_string().contains(&first.id), "{err}");
    assert_eq!(row_count(&store, "callbacks"), 1);
    assert_eq!(row_count(&store, "callback_events"), 1);

    // Keys are per organization.
    let other = store
        .organization("other")
        .unwrap()
        .create(request)
        .unwrap();
    assert_ne!(other.id, first.id);
}

#[test]
fn create_many_is_all_or_nothing_when_an_item_conflicts() {
    let (store, _) = store();
    let org = store.organization("org").unwrap();
    org.create(NewCallback {
        idempotency_key: Some("taken".into()),
        ..new_callback(1)
    })
    .unwrap();
    let batch = vec![
        new_callback(2),
        new_callback(3),
        NewCallback {
            idempotency_key: Some("taken".into()),
            ..new_callback(4)
        },
    ];
    let err = org.create_many(batch).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Conflict);
    assert_eq!(row_count(&store, "callbacks"), 1);
    assert_eq!(row_count(&store, "callback_events"), 1);

    let created = org
        .create_many((0..50).map(new_callback).collect())
        .unwrap();
    assert_eq!(created.len(), 50);
    assert_eq!(row_count(&store, "callbacks"), 51);
}

#[test]
fn an_api_token_is_shown_once_stored_only_as_a_hash_and_revocable_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let store = Store::open(&path).unwrap();
    let created = store.create_api_key("org_acme", "dialer").unwrap();
    assert_eq!(created.key.organization_id, "org_acme");

    for header in [
        format!("Bearer {}", created.token),
        format!("bearer {}", created.token),
        created.token.clone(),
    ] {
        assert_eq!(store.authenticate(&header).unwrap().id(), "org_acme");
    }
    for bad in ["", "Bearer ", "Bearer nope", "Basic abc"] {
        assert_eq!(
            store.authenticate(bad).unwrap_err().code(),
            ErrorCode::Unauthorized
        );
    }
    let listed = store.list_api_keys("org_acme").unwrap();
    assert_eq!(listed, vec![created.key.clone()]);

    store.with_connection(|c| c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap());
    let bytes = std::fs::read(&path).unwrap();
    let needle = created.token.as_bytes();
    assert!(
        !bytes.windows(needle.len()).any(|w| w == needle),
        "the token's text is in the database file"
    );

    let revoked = store.revoke_api_key(&created.key.id).unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(
        store
            .authenticate(&format!("Bearer {}", created.token))
            .unwrap_err()
            .code(),
        ErrorCode::Unauthorized
    );
    assert_eq!(
        store.revoke_api_key("key_unknown").unwrap_err().code(),
        ErrorCode::NotFound
    );
}

#[test]
fn dispatch_due_completes_successes_and_fails_errors_panics_and_bad_session_ids() {
    let (store, _) = store();
    let org = store.organization("org").unwrap();
    let reasons = ["ok", "refused", "panic", "empty"];
    let mut ids = Vec::new();
    for (i, reason) in reasons.iter().enumerate() {
        let cb = org
            .create(NewCallback {
                reason: Some((*reason).into()),
                ..new_callback(i as i64)
            })
            .unwrap();
        ids.push(cb.id);
    }
    let later = org.create(new_callback(600)).unwrap();

    let dialer = |cb: &Callback| -> Result<String, String> {
        match cb.reason.as_deref() {
            Some("ok") => Ok("sess_new".into()),
            Some("refused") => Err("carrier refused the call".into()),
            Some("panic") => panic!("dialer bug"),
            _ => Ok(String::new()),
        }
    };
    let report = store.dispatch_due(&dialer, at_minutes(10), 100).unwrap();
    assert_eq!(report.dispatched.len(), 1);
    assert_eq!(report.failed.len(), 3);

    let ok = org.get(&ids[0]).unwrap();
    assert_eq!(ok.status, Status::Dispatched);
    assert_eq!(ok.created_session_id.as_deref(), Some("sess_new"));
    assert!(ok.dispatched_at.is_some() && ok.attempted_at.is_some());

    let refused = org.get(&ids[1]).unwrap();
    assert_eq!(refused.status, Status::Failed);
    assert_eq!(
        refused.failure_cause.as_deref(),
        Some("carrier refused the call")
    );
    let panicked = org.get(&ids[2]).unwrap();
    assert_eq!(panicked.status, Status::Failed);
    assert!(panicked.failure_cause.unwrap().contains("dialer bug"));
    let empty = org.get(&ids[3]).unwrap();
    assert_eq!(empty.status, Status::Failed);
    assert!(empty.failure_cause.unwrap().contains("session id"));

    assert_eq!(org.get(&later.id).unwrap().status, Status::Scheduled);
    let history = org.history(&ids[0]).unwrap();
    let actions: Vec<EventAction> = history.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        [
            EventAction::Create,
            EventAction::ClaimDue,
            EventAction::PlaceCall,
            EventAction::CompleteDispatch
        ]
    );
}

#[test]
fn place_call_completes_a_callback_dispatched_by_hand() {
    let (store, _) = store();
    let org = store.organization("org").unwrap();
    let cb = org.create(new_callback(600)).unwrap();
    let claimed = org.dispatch(&cb.id).unwrap();
    assert_eq!(claimed.callback().status, Status::Dispatching);
    let done = store
        .place_call(&|_: &Callback| Ok::<_, String>("sess_9".into()), &claimed)
        .unwrap();
    assert_eq!(done.status, Status::Dispatched);
    assert_eq!(done.created_session_id.as_deref(), Some("sess_9"));
}

#[test]
fn recover_stale_fails_only_dispatches_older_than_the_horizon() {
    let (store, clock) = store();
    let org = store.organization("org").unwrap();
    let old = org.create(new_callback(0)).unwrap();
    org.dispatch(&old.id).unwrap();
    clock.advance(chrono::Duration::minutes(30)).unwrap();
    let recent = org.create(new_callback(0)).unwrap();
    org.dispatch(&recent.id).unwrap();

    let recovered = store
        .recover_stale(at_minutes(35), Duration::from_secs(10 * 60))
        .unwrap();
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].id, old.id);
    assert_eq!(recovered[0].status, Status::Failed);
    assert_eq!(
        recovered[0].failure_cause.as_deref(),
        Some(callback_store::DISPATCH_INTERRUPTED)
    );
    assert_eq!(org.get(&recent.id).unwrap().status, Status::Dispatching);
}

#[test]
fn prune_deletes_only_finished_callbacks_older_than_the_cutoff_with_their_history() {
    let (store, clock) = store();
    let org = store.organization("org").unwrap();
    let cancelled = org.create(new_callback(0)).unwrap();
    org.cancel(&cancelled.id, Some("customer said no")).unwrap();
    let failed = org.create(new_callback(0)).unwrap();
    org.dispatch(&failed.id).unwrap();
    org.fail_dispatch(&failed.id, "no answer", None).unwrap();
    let scheduled = org.create(new_callback(0)).unwrap();
    let dispatching = org.create(new_callback(0)).unwrap();
    org.dispatch(&dispatching.id).unwrap();
    clock.advance(chrono::Duration::days(2)).unwrap();
    let recent = org.create(new_callback(0)).unwrap();
    org.cancel(&recent.id, None).unwrap();

    let pruned = store.prune(t0() + chrono::Duration::days(1)).unwrap();
    assert_eq!(pruned, 2);
    for gone in [&cancelled.id, &failed.id] {
        assert_eq!(org.get(gone).unwrap_err().code(), ErrorCode::NotFound);
        assert_eq!(org.history(gone).unwrap_err().code(), ErrorCode::NotFound);
    }
    for kept in [&scheduled.id, &dispatching.id, &recent.id] {
        org.get(kept).unwrap();
    }
    let events_left: i64 = row_count(&store, "callback_events");
    assert_eq!(
        events_left,
        1 + 2 + 2,
        "scheduled, dispatching and recent keep theirs"
    );
}

#[test]
fn a_reopened_file_keeps_its_callbacks_with_either_durability_and_its_settings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cb.db");
    for durability in [Durability::Full, Durability::Normal] {
        let options = StoreOptions {
            durability,
            busy_timeout: Duration::from_millis(500),
            ..StoreOptions::default()
        };
        let id = {
            let store = Store::open_with(&path, options.clone()).unwrap();
            let sync: i64 = store
                .with_connection(|c| c.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap());
            assert_eq!(sync, if durability == Durability::Full { 2 } else { 1 });
            // Normal checkpoints less often (no sync at commit); Full keeps a
            // short WAL that is reused in place.
            let checkpoint_pages: i64 = store.with_connection(|c| {
                c.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
                    .unwrap()
            });
            let expected = if durability == Durability::Full {
                1000
            } else {
                8192
            };
            assert_eq!(checkpoint_pages, expected);
            let wal_limit: i64 = store.with_connection(|c| {
                c.query_row("PRAGMA journal_size_limit", [], |r| r.get(0))
                    .unwrap()
            });
            assert_eq!(wal_limit, 64 << 20);
            let mode: String = store.with_connection(|c| {
                c.query_row("PRAGMA journal_mode", [], |r| r.get(0))
                    .unwrap()
            });
            assert_eq!(mode, "wal");
            let org = store.organization("org").unwrap();
            org.create(NewCallback::new("+4915112345678", Utc::now()))
                .unwrap()
                .id
        };
        let store = Store::open_with(&path, options).unwrap();
        assert_eq!(
            store
                .organization("org")
                .unwrap()
                .get(&id)
                .unwrap()
                .to_number,
            "+4915112345678"
        );
    }
}

#[test]
fn store_and_organization_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Store>();
    assert_send_sync::<callback_store::Organization>();
    let (store, _) = store();
    let store = Arc::new(store);
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let store = store.clone();
            std::thread::spawn(move || {
                let org = store.organization(&format!("org{i}")).unwrap();
                for m in 0..25 {
                    org.create(new_callback(m)).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(row_count(&store, "callbacks"), 100);
}

#[test]
fn count_by_status_reports_every_status() {
    let (store, _) = store();
    let org = store.organization("org").unwrap();
    let a = org.create(new_callback(0)).unwrap();
    org.create(new_callback(0)).unwrap();
    org.cancel(&a.id, None).unwrap();
    let counts = org.count_by_status().unwrap();
    assert_eq!(counts.len(), 5);
    assert!(counts.contains(&(Status::Scheduled, 1)));
    assert!(counts.contains(&(Status::Cancelled, 1)));
    assert!(counts.contains(&(Status::Failed, 0)));
}

#[test]
fn a_busy_timeout_sqlite_cannot_take_is_a_validation_error() {
    let err = Store::open_in_memory_with(StoreOptions {
        busy_timeout: Duration::from_secs(u64::MAX / 4),
        ..StoreOptions::default()
    })
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ValidationError);
    assert!(err.to_string().starts_with("busy_timeout:"), "{err}");
}
