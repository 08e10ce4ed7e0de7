//! The calling policy's records and enums (DESIGN.md, "Calling policy"):
//! the core's, field for field, and the From conversions between the two.
//! No rule lives here: a policy is checked by the store when it is set.

use callback_store as core;

/// A day of the week, as a window names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl From<core::Weekday> for Weekday {
    fn from(d: core::Weekday) -> Self {
        match d {
            core::Weekday::Mon => Weekday::Mon,
            core::Weekday::Tue => Weekday::Tue,
            core::Weekday::Wed => Weekday::Wed,
            core::Weekday::Thu => Weekday::Thu,
            core::Weekday::Fri => Weekday::Fri,
            core::Weekday::Sat => Weekday::Sat,
            core::Weekday::Sun => Weekday::Sun,
        }
    }
}

impl From<Weekday> for core::Weekday {
    fn from(d: Weekday) -> Self {
        match d {
            Weekday::Mon => core::Weekday::Mon,
            Weekday::Tue => core::Weekday::Tue,
            Weekday::Wed => core::Weekday::Wed,
            Weekday::Thu => core::Weekday::Thu,
            Weekday::Fri => core::Weekday::Fri,
            Weekday::Sat => core::Weekday::Sat,
            Weekday::Sun => core::Weekday::Sun,
        }
    }
}

/// How a call ended without reaching the person, as `retry` is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum CallOutcome {
    NoAnswer,
    Busy,
    Voicemail,
    /// The call could not be placed (`fail_dispatch`, a dialer's error).
    Failed,
}

impl From<core::CallOutcome> for CallOutcome {
    fn from(o: core::CallOutcome) -> Self {
        match o {
            core::CallOutcome::NoAnswer => CallOutcome::NoAnswer,
            core::CallOutcome::Busy => CallOutcome::Busy,
            core::CallOutcome::Voicemail => CallOutcome::Voicemail,
            core::CallOutcome::Failed => CallOutcome::Failed,
        }
    }
}

impl From<CallOutcome> for core::CallOutcome {
    fn from(o: CallOutcome) -> Self {
        match o {
            CallOutcome::NoAnswer => core::CallOutcome::NoAnswer,
            CallOutcome::Busy => core::CallOutcome::Busy,
            CallOutcome::Voicemail => core::CallOutcome::Voicemail,
            CallOutcome::Failed => core::CallOutcome::Failed,
        }
    }
}

/// Local hours on some days of the week: from `start` (included) to `end`
/// (excluded), `HH:MM` on a 24-hour clock, within one day (`end` may be
/// `24:00`, the next midnight).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CallingWindow {
    pub days: Vec<Weekday>,
    pub start: String,
    pub end: String,
}

impl From<core::CallingWindow> for CallingWindow {
    fn from(w: core::CallingWindow) -> Self {
        CallingWindow {
            days: w.days.into_iter().map(Into::into).collect(),
            start: w.start,
            end: w.end,
        }
    }
}

impl From<CallingWindow> for core::CallingWindow {
    fn from(w: CallingWindow) -> Self {
        core::CallingWindow {
            days: w.days.into_iter().map(Into::into).collect(),
            start: w.start,
            end: w.end,
        }
    }
}

/// When an organization's (or one agent's) callbacks may ring, and how many
/// attempts an unanswered callback gets. Every field is required here (no
/// list default crosses the FFI): start from `default_calling_policy()`
/// (UTC, no windows = any time, 1 attempt, `["1h"]`, no_answer / busy /
/// voicemail) and change what differs.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CallingPolicy {
    /// IANA name (`America/New_York`): the zone of a callback that names none.
    pub timezone: String,
    /// When calls may be placed; empty means any time.
    pub windows: Vec<CallingWindow>,
    /// Attempts in all, the first call included: 1 to 20.
    pub max_attempts: u32,
    /// The wait before each follow-up, like `30m`, `2h`, `1d`; the last one
    /// repeats.
    pub retry_intervals: Vec<String>,
    /// The outcomes that earn a follow-up.
    pub retry_on: Vec<CallOutcome>,
}

impl From<core::CallingPolicy> for CallingPolicy {
    fn from(p: core::CallingPolicy) -> Self {
        CallingPolicy {
            timezone: p.timezone,
            windows: p.windows.into_iter().map(Into::into).collect(),
            max_attempts: p.max_attempts,
            retry_intervals: p.retry_intervals,
            retry_on: p.retry_on.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<CallingPolicy> for core::CallingPolicy {
    fn from(p: CallingPolicy) -> Self {
        core::CallingPolicy {
            timezone: p.timezone,
            windows: p.windows.into_iter().map(Into::into).collect(),
            max_attempts: p.max_attempts,
            retry_intervals: p.retry_intervals,
            retry_on: p.retry_on.into_iter().map(Into::into).collect(),
        }
    }
}

/// The policy of an organization that set none: UTC, any time, one attempt
/// (and, should max_attempts be raised, follow-ups an hour apart on
/// no_answer, busy and voicemail).
#[uniffi::export]
pub fn default_calling_policy() -> CallingPolicy {
    core::CallingPolicy::default().into()
}

/// The version of the IANA time zone database compiled into the library,
/// like `2025b`: calling windows are computed with its rules.
#[uniffi::export]
pub fn tzdb_version() -> String {
    core::tzdb_version().to_owned()
}

/// The failure_cause of a callback still scheduled at its `expires_at`:
/// `expired`.
#[uniffi::export]
pub fn expired() -> String {
    core::EXPIRED.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_survives_the_round_trip_through_the_ffi_records() {
        // Every enum value and every field crosses both ways unchanged: a
        // mapping that swapped two days or dropped a field would show here.
        let policy = core::CallingPolicy {
            timezone: "Asia/Kathmandu".into(),
            windows: vec![core::CallingWindow {
                days: core::Weekday::ALL.to_vec(),
                start: "08:00".into(),
                end: "24:00".into(),
            }],
            max_attempts: 3,
            retry_intervals: vec!["2h".into(), "1d".into()],
            retry_on: core::CallOutcome::ALL.to_vec(),
        };
        let ffi = CallingPolicy::from(policy.clone());
        assert_eq!(ffi.windows[0].days[6], Weekday::Sun);
        assert_eq!(ffi.retry_on[0], CallOutcome::NoAnswer);
        assert_eq!(core::CallingPolicy::from(ffi), policy);
    }

    #[test]
    fn the_default_policy_is_the_cores() {
        assert_eq!(
            core::CallingPolicy::from(default_calling_policy()),
            core::CallingPolicy::default()
        );
        assert!(!tzdb_version().is_empty());
        assert_eq!(expired(), "expired");
    }
}
