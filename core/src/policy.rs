//! The calling policy of DESIGN.md: when a callback may ring (windows in
//! the callee's local time), and whether an unanswered call earns another
//! attempt. A policy belongs to an organization, optionally overridden for
//! one agent. Users hold `CallingPolicy`, plain data shaped like its JSON;
//! the store checks it once (`Policy::compile`) and keeps the checked form.

use std::str::FromStr;

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::error::{Error, FieldPath, Result};

mod eligibility;

pub(crate) use eligibility::{next_eligible, Eligibility};

/// The most attempts a policy may allow: one call and 19 follow-ups.
pub const MAX_ATTEMPTS: u32 = 20;
/// The most windows one policy may list.
pub const MAX_WINDOWS: usize = 28;
/// The longest retry interval: a follow-up a year later is a new callback.
pub const MAX_RETRY_INTERVAL_SECONDS: i64 = 366 * 24 * 3600;

/// The version of the IANA time zone database compiled into this build,
/// like `2025b`: windows are computed with its rules.
pub fn tzdb_version() -> &'static str {
    chrono_tz::IANA_TZDB_VERSION
}

/// A day of the week, as a window names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    pub const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Weekday::Mon => "mon",
            Weekday::Tue => "tue",
            Weekday::Wed => "wed",
            Weekday::Thu => "thu",
            Weekday::Fri => "fri",
            Weekday::Sat => "sat",
            Weekday::Sun => "sun",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    pub(crate) fn of(day: chrono::Weekday) -> Weekday {
        Weekday::ALL[day.num_days_from_monday() as usize]
    }
}

impl FromStr for Weekday {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Weekday::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| {
                Error::validation(
                    "days",
                    format!("must be one of mon, tue, wed, thu, fri, sat, sun; got {s:?}"),
                )
            })
    }
}

/// How a call ended without reaching the person, as `retry` is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    NoAnswer,
    Busy,
    Voicemail,
    /// The call could not be placed (`fail_dispatch`, a dialer's error).
    Failed,
}

impl CallOutcome {
    pub const ALL: [CallOutcome; 4] = [
        CallOutcome::NoAnswer,
        CallOutcome::Busy,
        CallOutcome::Voicemail,
        CallOutcome::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::NoAnswer => "no_answer",
            CallOutcome::Busy => "busy",
            CallOutcome::Voicemail => "voicemail",
            CallOutcome::Failed => "failed",
        }
    }
}

impl std::fmt::Display for CallOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CallOutcome {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        CallOutcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| {
                Error::validation(
                    "outcome",
                    format!("must be one of no_answer, busy, voicemail, failed; got {s:?}"),
                )
            })
    }
}

/// Local hours on some days of the week: from `start` (included) to `end`
/// (excluded), `HH:MM` on a 24-hour clock, within one day (`end` may be
/// `24:00`, the next midnight).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallingWindow {
    pub days: Vec<Weekday>,
    pub start: String,
    pub end: String,
}

/// When an organization's (or one agent's) callbacks may ring, and how
/// many attempts an unanswered callback gets.
///
/// The default: time zone `UTC`, no windows (any time), one attempt (no
/// follow-ups); should `max_attempts` be raised, follow-ups come one hour
/// apart on `no_answer`, `busy` and `voicemail`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallingPolicy {
    /// IANA name (`America/New_York`): the zone of a callback that names none.
    pub timezone: String,
    /// When calls may be placed; empty means any time.
    pub windows: Vec<CallingWindow>,
    /// Attempts in all, the first call included: 1 to 20.
    pub max_attempts: u32,
    /// The wait before each follow-up, like `30m`, `2h`, `1d`; the last
    /// one repeats.
    pub retry_intervals: Vec<String>,
    /// The outcomes that earn a follow-up.
    pub retry_on: Vec<CallOutcome>,
}

impl Default for CallingPolicy {
    fn default() -> Self {
        CallingPolicy {
            timezone: "UTC".to_owned(),
            windows: Vec::new(),
            max_attempts: 1,
            retry_intervals: vec!["1h".to_owned()],
            retry_on: vec![
                CallOutcome::NoAnswer,
                CallOutcome::Busy,
                CallOutcome::Voicemail,
            ],
        }
    }
}

/// A window as the store computes with it: a set of weekdays and minutes
/// since local midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    days: u8,
    pub start: u32,
    pub end: u32,
}

impl Window {
    pub fn on(&self, day: Weekday) -> bool {
        self.days & day.bit() != 0
    }
}

/// A policy that passed every rule.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Policy {
    pub zone: Tz,
    pub windows: Vec<Window>,
    pub max_attempts: u32,
    pub retry_intervals: Vec<chrono::Duration>,
    pub retry_on: Vec<CallOutcome>,
}

impl Policy {
    /// Checks `policy`, naming the field of the first rule it breaks.
    pub fn compile(policy: &CallingPolicy) -> Result<Policy> {
        let zone = zone("timezone", &policy.timezone)?;
        if policy.windows.len() > MAX_WINDOWS {
            return Err(Error::validation(
                "windows",
                format!(
                    "must list at most {MAX_WINDOWS} windows, got {}",
                    policy.windows.len()
                ),
            ));
        }
        let windows = policy
            .windows
            .iter()
            .enumerate()
            .map(|(i, w)| window(w).map_err(|e| e.within_item("windows", i)))
            .collect::<Result<Vec<_>>>()?;
        if !(1..=MAX_ATTEMPTS).contains(&policy.max_attempts) {
            return Err(Error::validation(
                "max_attempts",
                format!(
                    "must be between 1 and {MAX_ATTEMPTS} (the first call included), got {}",
                    policy.max_attempts
                ),
            ));
        }
        if policy.retry_intervals.is_empty() || policy.retry_intervals.len() > MAX_ATTEMPTS as usize
        {
            return Err(Error::validation(
                "retry_intervals",
                format!(
                    "must list 1 to {MAX_ATTEMPTS} intervals (the last one repeats), got {}",
                    policy.retry_intervals.len()
                ),
            ));
        }
        let retry_intervals = policy
            .retry_intervals
            .iter()
            .enumerate()
            .map(|(i, text)| {
                interval(text)
                    .map_err(|rule| Error::validation(FieldPath::item("retry_intervals", i), rule))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut retry_on = policy.retry_on.clone();
        retry_on.sort_by_key(|o| *o as u8);
        retry_on.dedup();
        Ok(Policy {
            zone,
            windows,
            max_attempts: policy.max_attempts,
            retry_intervals,
            retry_on,
        })
    }

    /// The wait before attempt `next` (2 for the first follow-up).
    pub fn interval_before(&self, next: u32) -> chrono::Duration {
        let index = (next.saturating_sub(2) as usize).min(self.retry_intervals.len() - 1);
        self.retry_intervals[index]
    }
}

/// A time zone by its IANA name.
pub(crate) fn zone(field: &str, name: &str) -> Result<Tz> {
    name.parse::<Tz>().map_err(|_| {
        Error::validation(
            field,
            format!(
                "must be an IANA time zone name like America/New_York or Europe/London; got {:?}",
                name.chars().take(64).collect::<String>()
            ),
        )
    })
}

fn window(w: &CallingWindow) -> Result<Window> {
    if w.days.is_empty() {
        return Err(Error::validation(
            "days",
            "must name at least one day (mon … sun)",
        ));
    }
    let start = local_time("start", &w.start, false)?;
    let end = local_time("end", &w.end, true)?;
    if end <= start {
        return Err(Error::validation(
            "end",
            format!(
                "must be later than start ({} to {}): a window may not cross midnight; \
                 split it into one window before and one after",
                w.start, w.end
            ),
        ));
    }
    Ok(Window {
        days: w.days.iter().fold(0, |mask, d| mask | d.bit()),
        start,
        end,
    })
}

/// `HH:MM` as minutes since midnight; `24:00` only as an end.
fn local_time(field: &str, text: &str, is_end: bool) -> Result<u32> {
    let bad = || {
        Error::validation(
            field,
            format!(
                "must be a local time HH:MM from 00:00 to {} (24-hour clock); got {:?}",
                if is_end { "24:00" } else { "23:59" },
                text.chars().take(16).collect::<String>()
            ),
        )
    };
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 || !(h.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    let minutes = h * 60 + m;
    if m > 59 || minutes > 24 * 60 || (minutes == 24 * 60 && !is_end) {
        return Err(bad());
    }
    Ok(minutes)
}

/// `90s`, `30m`, `2h`, `1d`: a positive whole number and a unit.
fn interval(text: &str) -> std::result::Result<chrono::Duration, String> {
    let bad = || {
        format!(
            "must be a positive duration: a whole number and s, m, h or d, like 30m, 2h or 1d; got {:?}",
            text.chars().take(16).collect::<String>()
        )
    };
    let split = text.len().checked_sub(1).ok_or_else(bad)?;
    if !text.is_char_boundary(split) {
        return Err(bad());
    }
    let (number, unit) = text.split_at(split);
    let unit_seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: i64 = number.parse().map_err(|_| bad())?;
    let seconds = n.checked_mul(unit_seconds).ok_or_else(bad)?;
    if seconds == 0 {
        return Err(bad());
    }
    if seconds > MAX_RETRY_INTERVAL_SECONDS {
        return Err(format!("must be at most 366d; got {text:?}"));
    }
    Ok(chrono::Duration::seconds(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(f: impl FnOnce(&mut CallingPolicy)) -> CallingPolicy {
        let mut p = CallingPolicy {
            timezone: "America/New_York".into(),
            windows: vec![CallingWindow {
                days: vec![Weekday::Mon, Weekday::Fri],
                start: "08:00".into(),
                end: "21:00".into(),
            }],
            max_attempts: 3,
            retry_intervals: vec!["2h".into(), "1d".into()],
            retry_on: vec![CallOutcome::NoAnswer],
        };
        f(&mut p);
        p
    }

    fn field_of(p: CallingPolicy) -> String {
        match Policy::compile(&p).unwrap_err() {
            Error::Validation { field, .. } => field.to_string(),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn a_valid_policy_compiles_with_minutes_and_seconds() {
        let compiled = Policy::compile(&policy(|_| {})).unwrap();
        assert_eq!(compiled.windows[0].start, 480);
        assert_eq!(compiled.windows[0].end, 1260);
        assert!(compiled.windows[0].on(Weekday::Fri));
        assert!(!compiled.windows[0].on(Weekday::Tue));
        assert_eq!(compiled.interval_before(2), chrono::Duration::hours(2));
        assert_eq!(compiled.interval_before(3), chrono::Duration::days(1));
        assert_eq!(compiled.interval_before(9), chrono::Duration::days(1));
        assert!(Policy::compile(&CallingPolicy::default()).is_ok());
    }

    #[test]
    fn each_broken_rule_names_its_field() {
        let cases: Vec<(CallingPolicy, &str)> = vec![
            (policy(|p| p.timezone = "Mars/Olympus".into()), "timezone"),
            (
                policy(|p| p.windows[0].end = "08:00".into()),
                "windows[0].end",
            ),
            (
                policy(|p| p.windows[0].end = "07:00".into()),
                "windows[0].end",
            ),
            (
                policy(|p| p.windows[0].start = "24:00".into()),
                "windows[0].start",
            ),
            (
                policy(|p| p.windows[0].start = "8:00".into()),
                "windows[0].start",
            ),
            (
                policy(|p| p.windows[0].end = "21:60".into()),
                "windows[0].end",
            ),
            (policy(|p| p.windows[0].days.clear()), "windows[0].days"),
            (policy(|p| p.max_attempts = 0), "max_attempts"),
            (policy(|p| p.max_attempts = 21), "max_attempts"),
            (
                policy(|p| p.retry_intervals = vec!["0h".into()]),
                "retry_intervals[0]",
            ),
            (
                policy(|p| p.retry_intervals[1] = "-2h".into()),
                "retry_intervals[1]",
            ),
            (
                policy(|p| p.retry_intervals[1] = "2 hours".into()),
                "retry_intervals[1]",
            ),
            (
                policy(|p| p.retry_intervals[1] = "é".into()),
                "retry_intervals[1]",
            ),
            (policy(|p| p.retry_intervals.clear()), "retry_intervals"),
        ];
        for (p, field) in cases {
            assert_eq!(field_of(p.clone()), field, "{p:?}");
        }
        // 24:00 ends a window at the next midnight.
        assert!(Policy::compile(&policy(|p| p.windows[0].end = "24:00".into())).is_ok());
    }
}
