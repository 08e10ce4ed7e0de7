//! Timestamps: RFC 3339 in UTC with `Z`, stored as integer microseconds, and
//! the clock the store reads (settable in tests and from every binding).

use std::sync::{Arc, Mutex};

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

use crate::error::{Error, Result};

/// A point in time, in UTC, at microsecond precision once stored.
pub type Timestamp = DateTime<Utc>;

/// The earliest timestamp the store accepts: 1970-01-01T00:00:00Z.
pub fn min_timestamp() -> Timestamp {
    DateTime::UNIX_EPOCH
}

/// The latest timestamp the store accepts: 9999-12-31T23:59:59.999999Z
/// (RFC 3339 has four-digit years).
pub fn max_timestamp() -> Timestamp {
    Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap()
        + chrono::Duration::microseconds(999_999)
}

/// Drops what is below a microsecond, as storing does.
pub fn truncate_to_micros(t: Timestamp) -> Timestamp {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// Checks the range and truncates to microseconds.
pub(crate) fn checked(field: &str, t: Timestamp) -> Result<Timestamp> {
    if t < min_timestamp() || t > max_timestamp() {
        return Err(Error::validation(
            field,
            format!(
                "must be between {} and {}, got {}",
                format(min_timestamp()),
                format(max_timestamp()),
                format(t)
            ),
        ));
    }
    Ok(truncate_to_micros(t))
}

/// `2019-08-24T14:15:22Z`, with fractional seconds only when they are not zero.
pub fn format(t: Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Parses RFC 3339 with any offset (normalised to UTC), checks the range and
/// truncates to microseconds. A value without an offset is refused: a local
/// time would mean a different instant on every machine.
pub fn parse(field: &str, text: &str) -> Result<Timestamp> {
    let parsed = DateTime::parse_from_rfc3339(text).map_err(|e| {
        Error::validation(
            field,
            format!(
                "must be an RFC 3339 timestamp with an offset, like 2019-08-24T14:15:22Z ({e})"
            ),
        )
    })?;
    checked(field, parsed.with_timezone(&Utc))
}

pub(crate) fn to_micros(t: Timestamp) -> i64 {
    t.timestamp_micros()
}

/// Serde helpers for the JSON shape of timestamps.
pub mod rfc3339 {
    use super::*;

    #[test]
    fn a_manual_clock_moved_out_of_range_is_a_validation_error_and_stays_put() {
        let clock = ManualClock::new(max_timestamp() - chrono::Duration::seconds(1));
        clock.advance(chrono::Duration::seconds(1)).unwrap();
        assert_eq!(clock.now(), max_timestamp());
        let err = clock.advance(chrono::Duration::seconds(1)).unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::ValidationError);
        assert!(err.to_string().starts_with("by: "), "{err}");
        assert_eq!(clock.now(), max_timestamp());
        let early = ManualClock::new(min_timestamp());
        assert!(early.advance(chrono::Duration::microseconds(-1)).is_err());
        assert!(early.advance(chrono::Duration::MAX).is_err());
        assert_eq!(early.now(), min_timestamp());
    }
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&format(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Timestamp, D::Error> {
        let text = String::deserialize(d)?;
        parse("timestamp", &text).map_err(serde::de::Error::custom)
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(
            t: &Option<Timestamp>,
            s: S,
        ) -> std::result::Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_str(&format(*t)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> std::result::Result<Option<Timestamp>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|text| parse("timestamp", &text).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}

/// Where the store reads "now" from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Timestamp;
}

/// The machine's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Utc::now()
    }
}

/// A clock that stands still until it is set or advanced; clones share the time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<Timestamp>>,
}

impl ManualClock {
    pub fn new(now: Timestamp) -> Self {
        ManualClock {
            now: Arc::new(Mutex::new(now)),
        }
    }

    pub fn set(&self, now: Timestamp) {
        *self.lock() = now;
    }

    /// Moves the clock by `by` (back, when negative). A clock moved past the
    /// range the store accepts (1970 to 9999) is a VALIDATION_ERROR of `by`,
    /// and the clock stays where it was.
    pub fn advance(&self, by: chrono::Duration) -> Result<()> {
        let mut now = self.lock();
        let moved = now
            .checked_add_signed(by)
            .filter(|t| (min_timestamp()..=max_timestamp()).contains(t))
            .ok_or_else(|| {
                Error::validation(
                    "by",
                    format!(
                        "must keep the clock between {} and {}",
                        format(min_timestamp()),
                        format(max_timestamp())
                    ),
                )
            })?;
        *now = moved;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Timestamp> {
        // A poisoned lock still holds a valid timestamp.
        self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_seconds_have_no_fraction_and_micros_round_trip() {
        let t = Utc.with_ymd_and_hms(2019, 8, 24, 14, 15, 22).unwrap();
        assert_eq!(format(t), "2019-08-24T14:15:22Z");
        let t = t + chrono::Duration::microseconds(123_456);
        assert_eq!(format(t), "2019-08-24T14:15:22.123456Z");
        assert_eq!(parse("x", &format(t)).unwrap(), t);
        assert_eq!(Timestamp::from_timestamp_micros(to_micros(t)).unwrap(), t);
    }

    #[test]
    fn offsets_are_normalised_to_utc_and_nanoseconds_truncated() {
        let t = parse("x", "2019-08-24T16:15:22.123456789+02:00").unwrap();
        assert_eq!(format(t), "2019-08-24T14:15:22.123456Z");
    }

    #[test]
    fn timestamps_without_offset_or_out_of_range_are_validation_errors() {
        for bad in [
            "2019-08-24T14:15:22",
            "yesterday",
            "",
            "1969-12-31T23:59:59Z",
        ] {
            let err = parse("scheduled_at", bad).unwrap_err();
            assert_eq!(err.code(), crate::ErrorCode::ValidationError, "{bad}");
            assert!(err.to_string().starts_with("scheduled_at:"), "{err}");
        }
    }
}
