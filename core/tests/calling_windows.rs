//! Calling windows (DESIGN.md "Calling policy"): claim_due takes a callback
//! only inside a window in its time zone, with skipped and repeated local
//! times resolved by the contract's rules, and a policy change moves the
//! callbacks it governs. Each instant below was worked out by hand from the
//! zone's rules (transition instants checked against Python's zoneinfo).

mod common;

use callback_store::{
    CallingPolicy, CallingWindow, ErrorCode, NewCallback, Organization, Status, Store, Timestamp,
    Weekday,
};
use common::store;
use Weekday::*;

fn utc(text: &str) -> Timestamp {
    callback_store::parse_timestamp("t", text).unwrap()
}

fn policy(zone: &str, windows: &[(&[Weekday], &str, &str)]) -> CallingPolicy {
    CallingPolicy {
        timezone: zone.to_owned(),
        windows: windows
            .iter()
            .map(|(days, start, end)| CallingWindow {
                days: days.to_vec(),
                start: (*start).to_owned(),
                end: (*end).to_owned(),
            })
            .collect(),
        ..CallingPolicy::default()
    }
}

fn org_with(store: &Store, policy: &CallingPolicy) -> Organization {
    let org = store.organization("org_windows").unwrap();
    org.set_calling_policy(policy).unwrap();
    org
}

fn create(org: &Organization, scheduled_at: &str) -> String {
    org.create(NewCallback::new("+12015551234", utc(scheduled_at)))
        .unwrap()
        .id
}

/// The ids claim_due takes at `now`.
fn claimed(store: &Store, now: &str) -> Vec<String> {
    store
        .claim_due(utc(now), 100)
        .unwrap()
        .into_iter()
        .map(|c| c.callback().id.clone())
        .collect()
}

const EVERY_DAY: &[Weekday] = &[Mon, Tue, Wed, Thu, Fri, Sat, Sun];

#[test]
fn a_window_is_half_open_in_the_callees_local_time() {
    let (store, _) = store();
    let org = org_with(
        &store,
        &policy("America/New_York", &[(EVERY_DAY, "08:00", "21:00")]),
    );
    // 2030-01-07 in New York is EST (UTC-5): 21:00 local is 02:00Z the next day.
    let last_instant = create(&org, "2030-01-08T01:59:59.999999Z");
    let closing = create(&org, "2030-01-08T02:00:00Z");
    assert_eq!(
        claimed(&store, "2030-01-08T01:59:59.999999Z"),
        vec![last_instant]
    );
    assert!(claimed(&store, "2030-01-08T02:00:00Z").is_empty());
    // 07:59:59 local the next morning: still closed.
    assert!(claimed(&store, "2030-01-08T12:59:59Z").is_empty());
    assert_eq!(claimed(&store, "2030-01-08T13:00:00Z"), vec![closing]);
}

#[test]
fn a_callbacks_own_time_zone_wins_over_its_policys() {
    let (store, _) = store();
    let org = org_with(
        &store,
        &policy("America/New_York", &[(EVERY_DAY, "08:00", "21:00")]),
    );
    let tokyo = org
        .create(NewCallback {
            timezone: Some("Asia/Tokyo".into()),
            ..NewCallback::new("+81312345678", utc("2030-01-06T12:00:00Z"))
        })
        .unwrap();
    assert_eq!(tokyo.timezone.as_deref(), Some("Asia/Tokyo"));
    // 2030-01-06T13:30Z is 08:30 in New York (open) but 22:30 in Tokyo.
    assert!(claimed(&store, "2030-01-06T13:30:00Z").is_empty());
    assert!(claimed(&store, "2030-01-06T22:59:59Z").is_empty()); // 07:59:59 Tokyo
    assert_eq!(claimed(&store, "2030-01-06T23:00:00Z"), vec![tokyo.id]); // 08:00 Tokyo
}

#[test]
fn new_york_spring_forward_opens_a_skipped_local_time_when_the_clocks_jump() {
    // 2030-03-10 02:00 EST jumps to 03:00 EDT at 07:00Z: a window opening at
    // 02:30 local (which does not exist that day) opens at 07:00Z.
    let (store, _) = store();
    let org = org_with(
        &store,
        &policy("America/New_York", &[(&[Sun], "02:30", "05:00")]),
    );
    let id = create(&org, "2030-03-10T05:00:00Z");
    assert!(claimed(&store, "2030-03-10T06:59:59Z").is_empty());
    assert_eq!(claimed(&store, "2030-03-10T07:00:00Z"), vec![id]);
}

#[test]
fn new_york_fall_back_opens_a_repeated_local_time_at_its_first_occurrence() {
    // 2030-11-03 02:00 EDT goes back to 01:00 EST at 06:00Z: 01:30 local
    // happens at 05:30Z (EDT) and again at 06:30Z (EST). The window
    // 01:30–01:45 is the first occurrence: 05:30Z to 05:45Z.
    let (store, _) = store();
    let org = org_with(
        &store,
        &policy("America/New_York", &[(&[Sun], "01:30", "01:45")]),
    );
    let first = create(&org, "2030-11-03T05:00:00Z");
    assert!(claimed(&store, "2030-11-03T05:29:59Z").is_empty());
    assert_eq!(claimed(&store, "2030-11-03T05:30:00Z"), vec![first]);
    // Due after the first 01:45: the second 01:30–01:45 (06:30Z–06:45Z) is
    // not a window; the next one is a week later, 01:30 EST = 06:30Z.
    let second = create(&org, "2030-11-03T05:50:00Z");
    assert!(claimed(&store, "2030-11-03T06:35:00Z").is_empty());
    assert!(claimed(&store, "2030-11-10T06:29:59Z").is_empty());
    assert_eq!(claimed(&store, "2030-11-10T06:30:00Z"), vec![second]);
}

#[test]
fn london_both_changes_of_the_year() {
    let (store, _) = store();
    // 2030-03-31 01:00 GMT jumps to 02:00 BST at 01:00Z: a window from
    // 01:15 (skipped) opens at 01:00Z and closes at 02:30 BST = 01:30Z.
    let org = org_with(
        &store,
        &policy("Europe/London", &[(&[Sun], "01:15", "02:30")]),
    );
    let spring = create(&org, "2030-03-31T00:00:00Z");
    assert!(claimed(&store, "2030-03-31T00:59:59Z").is_empty());
    assert_eq!(claimed(&store, "2030-03-31T01:00:00Z"), vec![spring]);
    // 2030-10-27 02:00 BST goes back to 01:00 GMT at 01:00Z: 01:15 first
    // happens at 00:15Z (BST).
    let autumn = create(&org, "2030-10-27T00:00:00Z");
    assert!(claimed(&store, "2030-10-27T00:14:59Z").is_empty());
    assert_eq!(claimed(&store, "2030-10-27T00:15:00Z"), vec![autumn]);
}

#[test]
fn lord_howe_half_hour_daylight_saving_both_ways() {
    let (store, _) = store();
    // 2030-10-06 02:00 (+10:30) jumps to 02:30 (+11:00) at 15:30Z on the
    // 5th: a window from 02:10 (skipped) opens at 15:30Z.
    let org = org_with(
        &store,
        &policy(
            "Australia/Lord_Howe",
            &[(&[Sun], "02:10", "03:00"), (&[Sun], "01:45", "01:50")],
        ),
    );
    let spring = create(&org, "2030-10-05T14:00:00Z");
    // 01:45–01:50 local that Sunday is 15:15Z–15:20Z (+10:30): the earlier window.
    assert_eq!(
        claimed(&store, "2030-10-05T15:15:00Z"),
        vec![spring.clone()]
    );
    let later = create(&org, "2030-10-05T15:20:00Z");
    assert!(claimed(&store, "2030-10-05T15:29:59Z").is_empty());
    assert_eq!(claimed(&store, "2030-10-05T15:30:00Z"), vec![later]);
    // 2030-04-07 02:00 (+11:00) goes back to 01:30 (+10:30) at 15:00Z on the
    // 6th: 01:45 local first happens at 14:45Z.
    let autumn = create(&org, "2030-04-06T14:00:00Z");
    assert!(claimed(&store, "2030-04-06T14:44:59Z").is_empty());
    assert_eq!(claimed(&store, "2030-04-06T14:45:00Z"), vec![autumn]);
}

#[test]
fn kathmandu_windows_follow_its_quarter_hour_offset() {
    // +05:45 all year: 09:00 local is 03:15Z, 17:00 local is 11:15Z.
    let (store, _) = store();
    let org = org_with(
        &store,
        &policy("Asia/Kathmandu", &[(EVERY_DAY, "09:00", "17:00")]),
    );
    let morning = create(&org, "2030-01-07T00:00:00Z");
    assert!(claimed(&store, "2030-01-07T03:14:59Z").is_empty());
    assert_eq!(claimed(&store, "2030-01-07T03:15:00Z"), vec![morning]);
    let at_close = create(&org, "2030-01-07T11:15:00Z");
    assert!(claimed(&store, "2030-01-07T11:15:00Z").is_empty());
    assert_eq!(claimed(&store, "2030-01-08T03:15:00Z"), vec![at_close]);
}

#[test]
fn a_sundays_only_window_waits_for_sunday_and_no_windows_means_any_time() {
    let (store, _) = store();
    let org = org_with(&store, &policy("UTC", &[(&[Sun], "10:00", "12:00")]));
    // 2030-01-07 is a Monday; the next Sunday is 2030-01-13.
    let id = create(&org, "2030-01-07T10:30:00Z");
    for weekday_noon in 7..=12 {
        let at = format!("2030-01-{weekday_noon:02}T11:00:00Z");
        assert!(claimed(&store, &at).is_empty(), "{at}");
    }
    assert_eq!(claimed(&store, "2030-01-13T10:00:00Z"), vec![id]);
    org.set_calling_policy(&policy("UTC", &[])).unwrap();
    let any_time = create(&org, "2030-01-08T03:00:00Z");
    assert_eq!(claimed(&store, "2030-01-08T03:00:00Z"), vec![any_time]);
}

#[test]
fn a_worker_that_comes_after_the_window_closed_claims_at_the_next_opening() {
    let (store, _) = store();
    let org = org_with(&store, &policy("UTC", &[(EVERY_DAY, "08:00", "09:00")]));
    let id = create(&org, "2030-01-07T08:30:00Z");
    // The worker was down from 08:00 to 10:00: at 10:00 the window is shut.
    assert!(claimed(&store, "2030-01-07T10:00:00Z").is_empty());
    assert!(claimed(&store, "2030-01-08T07:59:59Z").is_empty());
    assert_eq!(claimed(&store, "2030-01-08T08:00:00Z"), vec![id]);
}

#[test]
fn a_policy_change_moves_thousands_of_scheduled_callbacks_at_once() {
    let (store, _) = store();
    let org = store.organization("org_bulk").unwrap();
    let batch: Vec<NewCallback> = (0..3000)
        .map(|i| NewCallback {
            agent_id: Some(
                if i % 3 == 0 {
                    "agent_own"
                } else {
                    "agent_shared"
                }
                .into(),
            ),
            ..NewCallback::new("+12015551234", utc("2030-01-07T03:00:00Z"))
        })
        .collect();
    org.create_many(batch).unwrap();
    // agent_own keeps any time; the organization moves to 09:00–17:00 UTC.
    org.set_agent_calling_policy("agent_own", &policy("UTC", &[]))
        .unwrap();
    org.set_calling_policy(&policy("UTC", &[(EVERY_DAY, "09:00", "17:00")]))
        .unwrap();
    let early = store
        .claim_due(utc("2030-01-07T04:00:00Z"), 10_000)
        .unwrap();
    assert_eq!(
        early.len(),
        1000,
        "only agent_own's callbacks ring before 09:00"
    );
    assert!(early
        .iter()
        .all(|c| c.callback().agent_id.as_deref() == Some("agent_own")));
    // Clearing the override puts agent_own under the organization's policy.
    org.clear_agent_calling_policy("agent_own").unwrap();
    let err = org.clear_agent_calling_policy("agent_own").unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
    let at_nine = store
        .claim_due(utc("2030-01-07T09:00:00Z"), 10_000)
        .unwrap();
    assert_eq!(at_nine.len(), 2000);
}

#[test]
fn dispatch_outside_the_window_is_refused_naming_the_next_opening() {
    let (store, clock) = store();
    let org = org_with(
        &store,
        &policy("America/New_York", &[(EVERY_DAY, "08:00", "21:00")]),
    );
    let id = create(&org, "2030-01-07T00:00:00Z");
    // 2030-01-07T03:00Z is 22:00 EST on the 6th.
    clock.set(utc("2030-01-07T03:00:00Z"));
    let err = org.dispatch(&id).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidTransition);
    let message = err.to_string();
    assert!(message.contains("2030-01-07T13:00:00Z"), "{message}");
    assert!(message.contains("08:00 local"), "{message}");
    assert_eq!(org.get(&id).unwrap().status, Status::Scheduled);
    clock.set(utc("2030-01-07T13:00:00Z"));
    assert_eq!(
        org.dispatch(&id).unwrap().callback().status,
        Status::Dispatching
    );
}

#[test]
fn a_reschedule_moves_the_callback_into_its_window() {
    let (store, _) = store();
    let org = org_with(&store, &policy("UTC", &[(EVERY_DAY, "08:00", "09:00")]));
    let id = create(&org, "2030-01-07T08:30:00Z");
    // Moved to 09:30, it rings at the next 08:00, not at 08:30 today.
    org.reschedule(&id, utc("2030-01-07T09:30:00Z")).unwrap();
    assert!(claimed(&store, "2030-01-07T08:45:00Z").is_empty());
    assert_eq!(claimed(&store, "2030-01-08T08:00:00Z"), vec![id]);
}

#[test]
fn bad_policies_are_refused_naming_the_field_and_change_nothing() {
    let (store, _) = store();
    let good = policy("Europe/London", &[(EVERY_DAY, "08:00", "21:00")]);
    let org = org_with(&store, &good);
    let cases: Vec<(CallingPolicy, &str)> = vec![
        (policy("Europe/Atlantis", &[]), "timezone"),
        (
            policy("UTC", &[(EVERY_DAY, "21:00", "08:00")]),
            "windows[0].end",
        ),
        (
            policy("UTC", &[(EVERY_DAY, "09:00", "09:00")]),
            "windows[0].end",
        ),
        (
            policy("UTC", &[(EVERY_DAY, "22:00", "24:01")]),
            "windows[0].end",
        ),
        (policy("UTC", &[(&[], "08:00", "09:00")]), "windows[0].days"),
        (
            CallingPolicy {
                max_attempts: 0,
                ..good.clone()
            },
            "max_attempts",
        ),
        (
            CallingPolicy {
                max_attempts: 21,
                ..good.clone()
            },
            "max_attempts",
        ),
        (
            CallingPolicy {
                retry_intervals: vec!["2h".into(), "0m".into()],
                ..good.clone()
            },
            "retry_intervals[1]",
        ),
        (
            CallingPolicy {
                retry_intervals: vec!["-2h".into()],
                ..good.clone()
            },
            "retry_intervals[0]",
        ),
    ];
    for (bad, field) in cases {
        let err = org.set_calling_policy(&bad).unwrap_err();
        assert_eq!(err.code(), ErrorCode::ValidationError, "{bad:?}");
        assert!(err.to_string().starts_with(&format!("{field}:")), "{err}");
        let err = org.set_agent_calling_policy("agent", &bad).unwrap_err();
        assert!(err.to_string().starts_with(&format!("{field}:")), "{err}");
    }
    assert_eq!(org.calling_policy().unwrap(), good);
    assert_eq!(org.agent_calling_policy("agent").unwrap(), None);
}

#[test]
fn bad_zones_and_deadlines_on_create_are_refused_and_write_nothing() {
    let (store, _) = store();
    let org = store.organization("org").unwrap();
    let at = utc("2030-01-07T10:00:00Z");
    let cases = [
        (
            NewCallback {
                timezone: Some("Not/AZone".into()),
                ..NewCallback::new("+12015551234", at)
            },
            "timezone",
        ),
        (
            NewCallback {
                expires_at: Some(at),
                ..NewCallback::new("+12015551234", at)
            },
            "expires_at",
        ),
        (
            NewCallback {
                expires_at: Some(at - chrono::Duration::minutes(1)),
                ..NewCallback::new("+12015551234", at)
            },
            "expires_at",
        ),
    ];
    for (bad, field) in cases {
        let err = org.create(bad).unwrap_err();
        assert_eq!(err.code(), ErrorCode::ValidationError);
        assert!(err.to_string().starts_with(&format!("{field}:")), "{err}");
    }
    // A deadline before any window opens: it could only ever expire.
    org.set_calling_policy(&policy("UTC", &[(EVERY_DAY, "12:00", "13:00")]))
        .unwrap();
    let err = org
        .create(NewCallback {
            expires_at: Some(utc("2030-01-07T11:00:00Z")),
            ..NewCallback::new("+12015551234", at)
        })
        .unwrap_err();
    assert!(err.to_string().starts_with("expires_at:"), "{err}");
    assert_eq!(common::row_count(&store, "callbacks"), 0);
}
