//! For random policies, zones, callbacks and worker instants, claim_due
//! never claims a callback outside its window in its zone, before its
//! scheduled time, or at or after its deadline; and what it leaves behind
//! it does not skip: a callback open at an instant a worker comes, with
//! room in the batch, is claimed.
//!
//! Window membership is checked here from the contract, independently of
//! the store's code: a window on a local date runs from the first instant
//! whose local time reaches its start to the first instant whose local
//! time reaches its end (a skipped local time: the instant the clocks jump,
//! found by stepping back from after the jump; a repeated one: its first
//! occurrence).

mod common;

use std::collections::HashSet;

use callback_store::{CallingPolicy, CallingWindow, NewCallback, Timestamp, Weekday};
use chrono::{Datelike, Days, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use chrono_tz::Tz;
use proptest::prelude::*;

const ZONES: [&str; 6] = [
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "America/Santiago",
    "UTC",
];

/// The instant a local time means, by the contract.
fn resolve(zone: Tz, local: NaiveDateTime) -> Timestamp {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(t) => t.to_utc(),
        LocalResult::Ambiguous(a, b) => a.to_utc().min(b.to_utc()),
        LocalResult::None => {
            // Skipped: step back from an instant after the jump while the
            // instant before still shows a later local time.
            let local_of = |t: Timestamp| t.with_timezone(&zone).naive_local();
            let mut t = local.and_utc() - chrono::Duration::hours(15);
            while local_of(t) <= local {
                t += chrono::Duration::minutes(1);
            }
            while local_of(t - chrono::Duration::seconds(1)) > local {
                t -= chrono::Duration::seconds(1);
            }
            t
        }
    }
}

fn minutes_of(text: &str) -> u32 {
    let (h, m) = text.split_once(':').unwrap();
    h.parse::<u32>().unwrap() * 60 + m.parse::<u32>().unwrap()
}

fn local_at(date: NaiveDate, minutes: u32) -> NaiveDateTime {
    let (date, minutes) = if minutes == 1440 {
        (date.succ_opt().unwrap(), 0)
    } else {
        (date, minutes)
    };
    date.and_time(NaiveTime::from_hms_opt(minutes / 60, minutes % 60, 0).unwrap())
}

fn weekday(date: NaiveDate) -> Weekday {
    Weekday::ALL[date.weekday().num_days_from_monday() as usize]
}

/// Whether `t` lies in one of `windows` in `zone` (no windows: always).
fn inside(windows: &[CallingWindow], zone: Tz, t: Timestamp) -> bool {
    if windows.is_empty() {
        return true;
    }
    let today = t.with_timezone(&zone).date_naive();
    [today - Days::new(1), today].into_iter().any(|date| {
        windows
            .iter()
            .filter(|w| w.days.contains(&weekday(date)))
            .any(|w| {
                let open = resolve(zone, local_at(date, minutes_of(&w.start)));
                let close = resolve(zone, local_at(date, minutes_of(&w.end)));
                open <= t && t < close
            })
    })
}

fn window() -> impl Strategy<Value = CallingWindow> {
    (
        proptest::sample::subsequence(Weekday::ALL.to_vec(), 1..=7),
        0u32..1440,
        1u32..=240,
    )
        .prop_map(|(days, start, length)| {
            let end = (start + length).min(1440);
            CallingWindow {
                days,
                start: format!("{:02}:{:02}", start / 60, start % 60),
                end: format!("{:02}:{:02}", end / 60, end % 60),
            }
        })
}

fn policy() -> impl Strategy<Value = CallingPolicy> {
    (
        proptest::sample::select(ZONES.as_slice()),
        proptest::collection::vec(window(), 0..3),
    )
        .prop_map(|(zone, windows)| CallingPolicy {
            timezone: zone.to_owned(),
            windows,
            ..CallingPolicy::default()
        })
}

#[derive(Debug, Clone)]
struct Planned {
    minutes: i64,
    own_zone: Option<&'static str>,
    deadline_minutes: Option<i64>,
}

fn planned() -> impl Strategy<Value = Planned> {
    (
        0i64..40 * 1440,
        proptest::option::weighted(0.3, proptest::sample::select(ZONES.as_slice())),
        proptest::option::weighted(0.4, 1i64..8 * 1440),
    )
        .prop_map(|(minutes, own_zone, deadline_minutes)| Planned {
            minutes,
            own_zone,
            deadline_minutes,
        })
}

/// 2030-03-01: the runs cover the March and April changes of both
/// hemispheres.
fn start() -> Timestamp {
    callback_store::parse_timestamp("t", "2030-03-01T00:00:00Z").unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn claim_due_takes_only_callbacks_open_in_their_zone_and_before_their_deadline(
        first in policy(),
        second in policy(),
        change_after in 0usize..30,
        callbacks in proptest::collection::vec(planned(), 1..16),
        steps in proptest::collection::vec((1i64..4 * 1440, 0i64..60, 1u32..4), 1..30),
    ) {
        let (store, _) = common::store();
        let org = store.organization("org").unwrap();
        org.set_calling_policy(&first).unwrap();
        let mut created = Vec::new();
        for p in &callbacks {
            let scheduled_at = start() + chrono::Duration::minutes(p.minutes);
            let new = NewCallback {
                timezone: p.own_zone.map(str::to_owned),
                expires_at: p.deadline_minutes.map(|m| scheduled_at + chrono::Duration::minutes(m)),
                ..NewCallback::new("+12015551234", scheduled_at)
            };
            // A deadline with no window before it is refused at creation.
            if let Ok(cb) = org.create(new) {
                created.push(cb);
            }
        }
        let mut now = start();
        let mut policy = first.clone();
        let mut seen = HashSet::new();
        for (i, (minutes, seconds, limit)) in steps.into_iter().enumerate() {
            if i == change_after {
                org.set_calling_policy(&second).unwrap();
                policy = second.clone();
            }
            now += chrono::Duration::minutes(minutes) + chrono::Duration::seconds(seconds);
            let claims = store.claim_due(now, limit).unwrap();
            for claim in &claims {
                let cb = claim.callback();
                let zone: Tz = cb.timezone.as_deref().unwrap_or(&policy.timezone).parse().unwrap();
                prop_assert!(seen.insert(cb.id.clone()), "claimed twice: {}", cb.id);
                prop_assert!(now >= cb.scheduled_at, "claimed before it was due");
                prop_assert!(cb.expires_at.is_none_or(|d| now < d), "claimed at or after its deadline");
                prop_assert!(
                    inside(&policy.windows, zone, now),
                    "{} claimed at {now} ({} in {zone}) outside {:?}",
                    cb.id,
                    now.with_timezone(&zone),
                    policy.windows
                );
            }
            // With room left in the batch, nothing open was left behind.
            if claims.len() < limit as usize {
                for cb in &created {
                    let current = org.get(&cb.id).unwrap();
                    if current.status != callback_store::Status::Scheduled {
                        continue;
                    }
                    let zone: Tz = cb.timezone.as_deref().unwrap_or(&policy.timezone).parse().unwrap();
                    let open = now >= cb.scheduled_at
                        && cb.expires_at.is_none_or(|d| now < d)
                        && inside(&policy.windows, zone, now);
                    prop_assert!(!open, "{} was open at {now} and left scheduled", cb.id);
                }
            }
        }
    }
}
