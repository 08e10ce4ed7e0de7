//! When a callback may ring: the earliest instant at or after a given one
//! that lies inside one of its windows, in its zone, before its deadline.
//!
//! A window on a local date is the interval of instants from its start to
//! its end on that date, each local time resolved by the rules of DESIGN.md:
//! a local time that does not exist that day (the hour skipped when clocks
//! go forward) means the first valid instant after it, which is the
//! instant the clocks jump; a local time that happens twice (the hour
//! repeated when clocks go back) means its first occurrence. Everything is
//! computed in whole instants (UTC), so 30- and 45-minute offsets need no
//! special case.

use chrono::{Datelike, Days, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use chrono_tz::Tz;

use super::{Weekday, Window};
use crate::time::Timestamp;

/// The next instant a callback may ring, and when the window it falls in
/// closes (None: no windows, it stays eligible).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Eligibility {
    pub at: Timestamp,
    pub window_ends_at: Option<Timestamp>,
}

/// How many local days ahead to look for an opening. A window on one day
/// of the week opens within 7 days, unless that day's window lies wholly
/// inside a skipped hour, and then a week later: 15 covers both.
const DAYS_AHEAD: u64 = 15;

/// The earliest instant at or after `from` inside one of `windows` (all of
/// time when there are none) in `zone`, and before `expires_at`; None when
/// there is no such instant before the deadline.
pub(crate) fn next_eligible(
    windows: &[Window],
    zone: Tz,
    from: Timestamp,
    expires_at: Option<Timestamp>,
) -> Option<Eligibility> {
    let before_deadline = |t: Timestamp| expires_at.is_none_or(|deadline| t < deadline);
    if windows.is_empty() {
        return before_deadline(from).then_some(Eligibility {
            at: from,
            window_ends_at: None,
        });
    }
    let today = from.with_timezone(&zone).date_naive();
    // Yesterday's windows too: one may still be open (a skipped or repeated
    // hour can move a local day's start across `from`).
    let first = today.checked_sub_days(Days::new(1)).unwrap_or(today);
    let mut intervals: Vec<(Timestamp, Timestamp)> = Vec::new();
    let mut best: Option<(Timestamp, Timestamp)> = None;
    for offset in 0..=DAYS_AHEAD + 1 {
        let Some(date) = first.checked_add_days(Days::new(offset)) else {
            break;
        };
        // Once an opening is found, one more day is read only to extend a
        // window that runs on past midnight into the next day's.
        if let Some((_, close)) = best {
            if day_start(zone, date) > close {
                break;
            }
        }
        for (open, close) in windows_on(windows, zone, date) {
            intervals.push((open, close));
            if close <= from {
                continue;
            }
            let at = open.max(from);
            if best.is_none_or(|(b, _)| at < b) {
                best = Some((at, close));
            }
        }
    }
    let (at, mut close) = best?;
    // Windows that touch or overlap run on as one: the window ends where the
    // last of them does (claim_due needs no second look before then).
    loop {
        let extended = intervals
            .iter()
            .filter(|(o, c)| *o <= close && *c > close)
            .map(|(_, c)| *c)
            .max();
        match extended {
            Some(later) => close = later,
            None => break,
        }
    }
    before_deadline(at).then_some(Eligibility {
        at,
        window_ends_at: Some(close),
    })
}

/// The windows open on local `date`, as instants, empty ones left out (a
/// window wholly inside a skipped hour).
pub(crate) fn windows_on(
    windows: &[Window],
    zone: Tz,
    date: NaiveDate,
) -> impl Iterator<Item = (Timestamp, Timestamp)> + '_ {
    let day = Weekday::of(date.weekday());
    windows
        .iter()
        .filter(move |w| w.on(day))
        .filter_map(move |w| {
            let open = resolve(zone, date, w.start);
            let close = resolve(zone, date, w.end);
            (open < close).then_some((open, close))
        })
}

fn day_start(zone: Tz, date: NaiveDate) -> Timestamp {
    resolve(zone, date, 0)
}

/// The instant of local time `minutes` after midnight on `date` in `zone`
/// (1440 is the next midnight), by DESIGN.md's rules for skipped and
/// repeated local times.
pub(crate) fn resolve(zone: Tz, date: NaiveDate, minutes: u32) -> Timestamp {
    let (date, minutes) = if minutes >= 24 * 60 {
        (date.succ_opt().unwrap_or(date), minutes - 24 * 60)
    } else {
        (date, minutes)
    };
    let time = NaiveTime::from_hms_opt(minutes / 60, minutes % 60, 0).unwrap_or(NaiveTime::MIN);
    let local = date.and_time(time);
    match zone.from_local_datetime(&local) {
        LocalResult::Single(t) => t.to_utc(),
        LocalResult::Ambiguous(first, second) => first.to_utc().min(second.to_utc()),
        LocalResult::None => first_instant_after(zone, local),
    }
}

/// The first instant whose local time in `zone` is later than `local`, a
/// local time that does not exist: the instant the clocks jumped over it.
/// Local time rises with the instant across a jump forward, so the jump
/// is found by bisection between two instants whose local times lie on
/// either side of `local` (offsets are within ±15 hours of UTC).
fn first_instant_after(zone: Tz, local: NaiveDateTime) -> Timestamp {
    let local_of = |t: Timestamp| t.with_timezone(&zone).naive_local();
    let naive_utc = local.and_utc();
    let mut below = naive_utc - chrono::Duration::hours(15);
    let mut above = naive_utc + chrono::Duration::hours(15);
    // Zone changes happen on whole seconds.
    while above - below > chrono::Duration::seconds(1) {
        let middle = below + (above - below) / 2;
        let middle = Timestamp::from_timestamp(middle.timestamp(), 0).unwrap_or(middle);
        if local_of(middle) > local {
            above = middle;
        } else {
            below = middle;
        }
    }
    above
}

#[cfg(test)]
mod properties;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{CallingPolicy, CallingWindow, Policy};
    use chrono::Utc;

    fn utc(text: &str) -> Timestamp {
        crate::time::parse("t", text).unwrap()
    }

    fn windows(days: &[Weekday], start: &str, end: &str) -> Vec<Window> {
        Policy::compile(&CallingPolicy {
            windows: vec![CallingWindow {
                days: days.to_vec(),
                start: start.into(),
                end: end.into(),
            }],
            ..CallingPolicy::default()
        })
        .unwrap()
        .windows
    }

    #[test]
    fn a_skipped_local_time_means_the_instant_the_clocks_jump() {
        // New York, 2030-03-10: 02:00 EST jumps to 03:00 EDT (07:00Z).
        let ny: Tz = "America/New_York".parse().unwrap();
        let date = NaiveDate::from_ymd_opt(2030, 3, 10).unwrap();
        assert_eq!(resolve(ny, date, 2 * 60 + 30), utc("2030-03-10T07:00:00Z"));
        assert_eq!(resolve(ny, date, 3 * 60), utc("2030-03-10T07:00:00Z"));
        assert_eq!(resolve(ny, date, 60 + 59), utc("2030-03-10T06:59:00Z"));
    }

    #[test]
    fn a_repeated_local_time_means_its_first_occurrence() {
        // New York, 2030-11-03: 02:00 EDT goes back to 01:00 EST.
        let ny: Tz = "America/New_York".parse().unwrap();
        let date = NaiveDate::from_ymd_opt(2030, 11, 3).unwrap();
        assert_eq!(resolve(ny, date, 90), utc("2030-11-03T05:30:00Z"));
    }

    #[test]
    fn inside_a_window_the_instant_itself_is_eligible_and_the_end_is_excluded() {
        let w = windows(&Weekday::ALL, "08:00", "21:00");
        let zone: Tz = "UTC".parse().unwrap();
        let just_before = utc("2030-01-07T20:59:59.999999Z");
        let e = next_eligible(&w, zone, just_before, None).unwrap();
        assert_eq!(e.at, just_before);
        assert_eq!(e.window_ends_at, Some(utc("2030-01-07T21:00:00Z")));
        let at_end = utc("2030-01-07T21:00:00Z");
        let e = next_eligible(&w, zone, at_end, None).unwrap();
        assert_eq!(e.at, utc("2030-01-08T08:00:00Z"));
        // The deadline cuts it off.
        assert_eq!(
            next_eligible(&w, zone, at_end, Some(utc("2030-01-08T08:00:00Z"))),
            None
        );
        let _ = Utc::now();
    }

    #[test]
    fn windows_that_touch_at_midnight_run_on_as_one() {
        let mut w = windows(&[Weekday::Mon], "20:00", "24:00");
        w.extend(windows(&[Weekday::Tue], "00:00", "06:00"));
        let zone: Tz = "UTC".parse().unwrap();
        // 2030-01-07 is a Monday.
        let e = next_eligible(&w, zone, utc("2030-01-07T22:00:00Z"), None).unwrap();
        assert_eq!(e.window_ends_at, Some(utc("2030-01-08T06:00:00Z")));
    }
}
