//! Every input rule of DESIGN.md and core/src/validate.rs: a bad input is a
//! VALIDATION_ERROR whose message starts with the field it names, and it
//! writes nothing (the row counts of `callbacks` and `callback_events` stay).

mod common;

use callback_store::{
    max_timestamp, min_timestamp, Claim, ErrorCode, ListQuery, NewCallback, Order, Status,
    MAX_CLAIM,
};
use chrono::{Duration, TimeZone, Utc};
use common::refused::{assert_refused, fixture, nested, query, rows, with};
use common::{at_minutes, new_callback};
use serde_json::json;

const KIB_64: usize = 64 * 1024;

/// Invalid E.164 numbers, each with what is wrong with it.
const BAD_NUMBERS: [(&str, &str); 11] = [
    ("missing +", "12015551234"),
    ("one digit", "+1"),
    ("16 digits", "+1234567890123456"),
    ("leading 0", "+02015551234"),
    ("letters", "+1201555ABCD"),
    ("spaces", "+1 201 555 1234"),
    ("dashes", "+1-201-555-1234"),
    ("empty", ""),
    ("plus only", "+"),
    ("non-ASCII digits", "+١٢٠١٥٥٥١٢٣٤"),
    ("trailing newline", "+12015551234\n"),
];

/// Invalid identifiers: empty, over 255 bytes, control characters.
fn bad_identifiers() -> Vec<(&'static str, String)> {
    vec![
        ("empty", String::new()),
        ("256 bytes", "a".repeat(256)),
        ("256 bytes in 128 chars", "é".repeat(128)),
        ("newline", "sess\n1".into()),
        ("tab", "sess\t1".into()),
        ("NUL", "sess\u{0}1".into()),
        ("DEL", "sess\u{7f}".into()),
        ("C1 control", "sess\u{85}".into()),
    ]
}

// --- Phone numbers ------------------------------------------------------------

#[test]
fn to_number_must_be_e164_plus_then_2_to_15_digits_the_first_1_to_9() {
    let f = fixture();
    for (case, bad) in BAD_NUMBERS {
        assert_refused(&f.store, "to_number", case, || {
            f.org.create(with(|n| n.to_number = bad.into()))
        });
    }
}

#[test]
fn from_number_when_present_must_be_e164() {
    let f = fixture();
    for (case, bad) in BAD_NUMBERS {
        assert_refused(&f.store, "from_number", case, || {
            f.org.create(with(|n| n.from_number = Some(bad.into())))
        });
    }
}

#[test]
fn e164_numbers_of_2_and_of_15_digits_are_accepted() {
    let f = fixture();
    for good in ["+12", "+123456789012345", "+442071838750"] {
        let created = f
            .org
            .create(with(|n| {
                n.to_number = good.into();
                n.from_number = Some(good.into());
            }))
            .unwrap();
        assert_eq!(created.to_number, good);
        assert_eq!(created.from_number.as_deref(), Some(good));
    }
}

#[test]
fn the_to_number_filter_of_list_must_be_e164() {
    let f = fixture();
    for (case, bad) in BAD_NUMBERS {
        let query = query(|q| q.to_number = Some(bad.into()));
        assert_refused(&f.store, "to_number", case, || f.org.list(&query));
    }
}

// --- Identifiers --------------------------------------------------------------

type Setter = fn(&mut NewCallback, String);

const IDENTIFIER_FIELDS: [(&str, Setter); 4] = [
    ("source_session_id", |n, v| n.source_session_id = Some(v)),
    ("agent_id", |n, v| n.agent_id = Some(v)),
    ("phone_number_id", |n, v| n.phone_number_id = Some(v)),
    ("idempotency_key", |n, v| n.idempotency_key = Some(v)),
];

#[test]
fn identifiers_of_a_new_callback_must_be_1_to_255_bytes_without_control_characters() {
    let f = fixture();
    for (field, set) in IDENTIFIER_FIELDS {
        for (case, bad) in bad_identifiers() {
            assert_refused(&f.store, field, case, || {
                f.org.create(with(|n| set(n, bad)))
            });
        }
    }
}

#[test]
fn identifiers_of_exactly_255_bytes_are_accepted() {
    let f = fixture();
    let multibyte = format!("{}a", "é".repeat(127));
    for (field, set) in IDENTIFIER_FIELDS {
        for good in ["a".repeat(255), multibyte.clone()] {
            assert_eq!(good.len(), 255);
            let created = f.org.create(with(|n| set(n, good.clone()))).unwrap();
            let stored = serde_json::to_value(f.org.get(&created.id).unwrap()).unwrap();
            if field != "idempotency_key" {
                assert_eq!(stored[field], json!(good), "{field}");
            }
        }
    }
}

#[test]
fn organization_id_must_be_a_valid_identifier() {
    let f = fixture();
    for (case, bad) in bad_identifiers() {
        assert_refused(&f.store, "organization_id", case, || {
            f.store.organization(&bad)
        });
        assert_refused(&f.store, "organization_id", case, || {
            f.store.create_api_key(&bad, "label")
        });
        assert_refused(&f.store, "organization_id", case, || {
            f.store.list_api_keys(&bad)
        });
        assert_refused(&f.store, "label", case, || {
            f.store.create_api_key("org_a", &bad)
        });
    }
    assert!(f.store.organization(&"o".repeat(255)).is_ok());
}

#[test]
fn callback_ids_must_be_valid_identifiers_in_every_operation() {
    let f = fixture();
    let (org, later) = (&f.org, at_minutes(90));
    for (case, bad) in bad_identifiers() {
        let id = bad.as_str();
        assert_refused(&f.store, "id", case, || org.get(id));
        assert_refused(&f.store, "id", case, || org.cancel(id, Some("why")));
        assert_refused(&f.store, "id", case, || {
            org.dispatch(id).map(Claim::into_callback)
        });
        assert_refused(&f.store, "id", case, || {
            org.complete_dispatch(id, "s", None)
        });
        assert_refused(&f.store, "id", case, || {
            org.fail_dispatch(id, "cause", None)
        });
        assert_refused(&f.store, "id", case, || org.reschedule(id, later));
        assert_refused(&f.store, "id", case, || org.history(id));
    }
    assert_eq!(f.org.get(&f.existing.id).unwrap(), f.existing);
}

#[test]
fn created_session_id_of_complete_dispatch_must_be_a_valid_identifier() {
    let f = fixture();
    let dispatching = f.org.dispatch(&f.existing.id).unwrap().into_callback();
    let history = f.org.history(&dispatching.id).unwrap();
    for (case, bad) in bad_identifiers() {
        assert_refused(&f.store, "created_session_id", case, || {
            f.org.complete_dispatch(&dispatching.id, &bad, None)
        });
    }
    assert_eq!(
        f.org.get(&dispatching.id).unwrap(),
        dispatching,
        "still dispatching"
    );
    assert_eq!(f.org.history(&dispatching.id).unwrap(), history);
}

#[test]
fn the_id_filters_of_list_must_be_valid_identifiers() {
    let f = fixture();
    for (case, bad) in bad_identifiers() {
        let by_source = query(|q| q.source_session_id = Some(bad.clone()));
        assert_refused(&f.store, "source_session_id", case, || {
            f.org.list(&by_source)
        });
        let by_agent = query(|q| q.agent_id = Some(bad));
        assert_refused(&f.store, "agent_id", case, || f.org.list(&by_agent));
    }
}

// --- Free text ----------------------------------------------------------------

fn bad_texts() -> Vec<(&'static str, String)> {
    vec![
        ("64 KiB + 1 byte", "a".repeat(KIB_64 + 1)),
        ("over 64 KiB in fewer chars", "é".repeat(KIB_64 / 2 + 1)),
        ("NUL", "before\u{0}after".into()),
    ]
}

#[test]
fn reason_instructions_and_summary_are_at_most_64_kib_and_without_nul() {
    let f = fixture();
    let fields: [(&str, Setter); 3] = [
        ("reason", |n, v| n.reason = Some(v)),
        ("instructions", |n, v| n.instructions = Some(v)),
        ("summary", |n, v| n.summary = Some(v)),
    ];
    for (field, set) in fields {
        for (case, bad) in bad_texts() {
            assert_refused(&f.store, field, case, || {
                f.org.create(with(|n| set(n, bad)))
            });
        }
        let exactly = "a".repeat(KIB_64);
        let created = f.org.create(with(|n| set(n, exactly.clone()))).unwrap();
        let stored = serde_json::to_value(f.org.get(&created.id).unwrap()).unwrap();
        assert_eq!(stored[field], json!(exactly), "{field}: 64 KiB accepted");
    }
}

#[test]
fn a_cancel_reason_is_at_most_64_kib_and_without_nul() {
    let f = fixture();
    for (case, bad) in bad_texts() {
        assert_refused(&f.store, "reason", case, || {
            f.org.cancel(&f.existing.id, Some(&bad))
        });
    }
    assert_eq!(f.org.get(&f.existing.id).unwrap().status, Status::Scheduled);
}

#[test]
fn a_failure_cause_must_be_non_empty_at_most_64_kib_and_without_nul() {
    let f = fixture();
    let dispatching = f.org.dispatch(&f.existing.id).unwrap().into_callback();
    let mut bad = bad_texts();
    bad.push(("empty", String::new()));
    for (case, cause) in bad {
        assert_refused(&f.store, "failure_cause", case, || {
            f.org.fail_dispatch(&dispatching.id, &cause, None)
        });
    }
    assert_eq!(
        f.org.get(&dispatching.id).unwrap(),
        dispatching,
        "still dispatching"
    );
}

// --- Timestamps ---------------------------------------------------------------

fn out_of_range_times() -> Vec<(&'static str, chrono::DateTime<Utc>)> {
    vec![
        (
            "1 µs before 1970",
            min_timestamp() - Duration::microseconds(1),
        ),
        (
            "1 µs after 9999",
            max_timestamp() + Duration::microseconds(1),
        ),
        ("year 1", Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap()),
        (
            "year 10000",
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
        ),
    ]
}

#[test]
fn scheduled_at_must_be_between_1970_and_9999() {
    let f = fixture();
    for (case, t) in out_of_range_times() {
        assert_refused(&f.store, "scheduled_at", case, || {
            f.org.create(with(|n| n.scheduled_at = t))
        });
    }
    for edge in [min_timestamp(), max_timestamp()] {
        let created = f.org.create(with(|n| n.scheduled_at = edge)).unwrap();
        assert_eq!(f.org.get(&created.id).unwrap().scheduled_at, edge);
    }
}

#[test]
fn reschedule_to_a_time_outside_1970_to_9999_is_refused_and_changes_nothing() {
    let f = fixture();
    for (case, t) in out_of_range_times() {
        assert_refused(&f.store, "scheduled_at", case, || {
            f.org.reschedule(&f.existing.id, t)
        });
    }
    assert_eq!(f.org.get(&f.existing.id).unwrap(), f.existing);
    let moved = f.org.reschedule(&f.existing.id, max_timestamp()).unwrap();
    assert_eq!(moved.scheduled_at, max_timestamp());
}

#[test]
fn list_time_filters_must_be_in_range_and_scheduled_after_not_later_than_scheduled_before() {
    let f = fixture();
    let between = |after, before| {
        query(|q| (q.scheduled_after, q.scheduled_before) = (Some(after), Some(before)))
    };
    let later_than_before = between(at_minutes(61), at_minutes(60));
    assert_refused(&f.store, "scheduled_after", "after > before", || {
        f.org.list(&later_than_before)
    });
    for (case, t) in out_of_range_times() {
        let after = query(|q| q.scheduled_after = Some(t));
        assert_refused(&f.store, "scheduled_after", case, || f.org.list(&after));
        let before = query(|q| q.scheduled_before = Some(t));
        assert_refused(&f.store, "scheduled_before", case, || f.org.list(&before));
    }
    let equal = f
        .org
        .list(&between(at_minutes(60), at_minutes(60)))
        .unwrap();
    assert!(equal.callbacks.is_empty(), "an empty range is valid");
}

// --- Limits, statuses, orders -------------------------------------------------

#[test]
fn list_limit_must_be_1_to_100_and_is_never_clamped() {
    let f = fixture();
    f.org
        .create_many((0..100).map(new_callback).collect())
        .unwrap();
    for bad in [0, 101, 1000, u32::MAX] {
        let query = query(|q| q.limit = bad);
        assert_refused(&f.store, "limit", &format!("limit {bad}"), || {
            f.org.list(&query)
        });
    }
    for good in [1, 25, 100] {
        let query = query(|q| q.limit = good);
        let page = f.org.list(&query).unwrap();
        assert_eq!(page.callbacks.len(), good as usize);
        assert!(page.next_cursor.is_some(), "101 callbacks: a next page");
    }
    assert_eq!(ListQuery::default().limit, 25);
}

#[test]
fn an_unknown_status_or_order_string_is_a_validation_error_naming_it() {
    for bad in [
        "bogus",
        "",
        "Scheduled",
        "SCHEDULED",
        " scheduled",
        "canceled",
    ] {
        let err = bad.parse::<Status>().unwrap_err();
        assert_eq!(err.code(), ErrorCode::ValidationError);
        assert!(err.to_string().starts_with("status: "), "{err}");
        let err = bad.parse::<Order>().unwrap_err();
        assert!(err.to_string().starts_with("order: "), "{err}");
    }
    for status in Status::ALL {
        assert_eq!(status.as_str().parse::<Status>().unwrap(), status);
    }
}

#[test]
fn claim_due_limit_must_be_1_to_max_claim_and_now_in_range() {
    let f = fixture();
    let due = at_minutes(60);
    for bad in [0, MAX_CLAIM + 1, u32::MAX] {
        assert_refused(&f.store, "limit", &format!("limit {bad}"), || {
            f.store.claim_due(due, bad)
        });
    }
    for (case, t) in out_of_range_times() {
        assert_refused(&f.store, "now", case, || f.store.claim_due(t, 1));
    }
    assert_eq!(
        f.org.get(&f.existing.id).unwrap(),
        f.existing,
        "not claimed"
    );
    assert_eq!(f.store.claim_due(due, MAX_CLAIM).unwrap().len(), 1);
}

// --- Batches and injection ----------------------------------------------------

#[test]
fn create_many_with_an_invalid_item_writes_nothing_and_names_the_item_and_field() {
    let f = fixture();
    let mut batch: Vec<NewCallback> = (0..6).map(new_callback).collect();
    batch[3].to_number = "12015551234".into();
    assert_refused(&f.store, "callbacks[3].to_number", "item 3", || {
        f.org.create_many(batch)
    });
    let mut batch: Vec<NewCallback> = (0..3).map(new_callback).collect();
    batch[0].metadata = nested(40, false);
    assert_refused(&f.store, "callbacks[0].metadata", "item 0", || {
        f.org.create_many(batch)
    });
    let page = f.org.list(&ListQuery::default()).unwrap();
    assert_eq!(page.callbacks, vec![f.existing.clone()], "nothing written");
}

#[test]
fn sql_injection_text_in_list_filters_matches_nothing_and_changes_nothing() {
    let f = fixture();
    f.org
        .create(with(|n| {
            n.source_session_id = Some("sess_1".into());
            n.agent_id = Some("agent_1".into());
        }))
        .unwrap();
    let before = rows(&f.store);
    let attacks = [
        "x' OR '1'='1",
        "x' OR 1=1 --",
        "'; DROP TABLE callbacks; --",
        "\" OR \"\"=\"",
        "%",
        "_",
        "sess_1' --",
    ];
    for attack in attacks {
        let queries = [
            query(|q| q.source_session_id = Some(attack.into())),
            query(|q| q.agent_id = Some(attack.into())),
        ];
        for filtered in queries {
            let page = f.org.list(&filtered).unwrap();
            assert!(page.callbacks.is_empty(), "{attack:?} matched {page:?}");
        }
        let by_number = query(|q| q.to_number = Some(attack.into()));
        assert_refused(&f.store, "to_number", attack, || f.org.list(&by_number));
        let by_cursor = query(|q| q.cursor = Some(attack.into()));
        assert_refused(&f.store, "cursor", attack, || f.org.list(&by_cursor));
        let other = f.store.organization(attack).unwrap().list(&query(|_| {}));
        assert!(other.unwrap().callbacks.is_empty(), "{attack:?} as an org");
        assert_eq!(f.org.get(attack).unwrap_err().code(), ErrorCode::NotFound);
    }
    assert_eq!(rows(&f.store), before, "nothing written or dropped");
    assert_eq!(
        f.org.list(&ListQuery::default()).unwrap().callbacks.len(),
        2
    );
}
