//! The next eligible instant is the earliest one the policy allows: checked
//! against a brute-force scan, minute by minute, of the windows' intervals
//! over the 16 days that follow, for random windows, zones and instants.

use chrono::{Datelike, Days};
use chrono_tz::Tz;
use proptest::prelude::*;

use super::{next_eligible, windows_on};
use crate::policy::{CallingPolicy, CallingWindow, Policy, Weekday, Window};
use crate::time::Timestamp;

/// Zones with daylight saving both ways, half-hour and 45-minute offsets,
/// southern-hemisphere seasons, and none.
const ZONES: [&str; 8] = [
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "America/St_Johns",
    "Pacific/Chatham",
    "America/Santiago",
    "UTC",
];

fn windows() -> impl Strategy<Value = Vec<Window>> {
    let window = (1u8..128, 0u32..1440, 1u32..=1440).prop_map(|(days, a, b)| {
        let (start, end) = if a < b {
            (a, b)
        } else {
            (b.min(1439), a.max(b) + 1)
        };
        let end = end.clamp(start + 1, 1440);
        CallingWindow {
            days: Weekday::ALL
                .into_iter()
                .filter(|d| days & (1 << (*d as u8)) != 0)
                .collect(),
            start: format!("{:02}:{:02}", start / 60, start % 60),
            end: format!("{:02}:{:02}", end / 60, end % 60),
        }
    });
    proptest::collection::vec(window, 0..4).prop_map(|windows| {
        Policy::compile(&CallingPolicy {
            windows,
            ..CallingPolicy::default()
        })
        .expect("generated windows are valid")
        .windows
    })
}

/// An instant in 2029–2032 (around every DST change of those years), at
/// a random second and microsecond.
fn instant() -> impl Strategy<Value = Timestamp> {
    (1_861_920_000i64..1_988_150_400, 0u32..1_000_000)
        .prop_map(|(s, us)| Timestamp::from_timestamp(s, us * 1000).unwrap())
}

/// Every window interval of the local dates from the day before `from`'s
/// to 17 days after.
fn intervals(windows: &[Window], zone: Tz, from: Timestamp) -> Vec<(Timestamp, Timestamp)> {
    let first = from.with_timezone(&zone).date_naive() - Days::new(1);
    (0..18)
        .flat_map(|i| windows_on(windows, zone, first + Days::new(i)).collect::<Vec<_>>())
        .collect()
}

fn inside(intervals: &[(Timestamp, Timestamp)], t: Timestamp) -> bool {
    intervals
        .iter()
        .any(|(open, close)| *open <= t && t < *close)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn the_next_eligible_instant_is_the_earliest_by_a_minute_scan(
        windows in windows(),
        zone in proptest::sample::select(ZONES.as_slice()),
        from in instant(),
        deadline_minutes in proptest::option::of(1i64..30_000),
    ) {
        let zone: Tz = zone.parse().unwrap();
        let deadline = deadline_minutes.map(|m| from + chrono::Duration::minutes(m));
        let spans = intervals(&windows, zone, from);
        let allowed = |t: Timestamp| {
            (windows.is_empty() || inside(&spans, t)) && deadline.is_none_or(|d| t < d)
        };
        // The scan: `from`, then every whole minute after it, for 16 days.
        let first_minute = Timestamp::from_timestamp(from.timestamp() - from.timestamp() % 60 + 60, 0).unwrap();
        let scan = std::iter::once(from)
            .chain((0..16 * 1440).map(|m| first_minute + chrono::Duration::minutes(m)));
        let first_allowed_minute = scan.clone().find(|t| allowed(*t));
        match next_eligible(&windows, zone, from, deadline) {
            None => prop_assert_eq!(first_allowed_minute, None, "an instant was allowed"),
            Some(e) => {
                prop_assert!(e.at >= from);
                prop_assert!(allowed(e.at), "{} is not allowed", e.at);
                // Nothing earlier: no scanned minute before it, and (openings
                // fall on whole seconds) not the microsecond before it either.
                if let Some(m) = first_allowed_minute {
                    prop_assert!(m >= e.at, "{m} is allowed before {}", e.at);
                }
                if e.at > from {
                    prop_assert!(!allowed(e.at - chrono::Duration::microseconds(1)));
                }
                match e.window_ends_at {
                    None => prop_assert!(windows.is_empty()),
                    Some(end) => {
                        // Open from e.at up to its end, shut at its end.
                        prop_assert!(end > e.at);
                        prop_assert!(!inside(&spans, end));
                        let mut t = e.at;
                        while t < end {
                            prop_assert!(inside(&spans, t), "shut at {t} before {end}");
                            t += chrono::Duration::minutes(7);
                        }
                    }
                }
                let _ = e.at.with_timezone(&zone).weekday();
            }
        }
    }
}
