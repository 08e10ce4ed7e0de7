//! Times and durations as people type them: `2030-03-05T10:00:00Z`, `now`,
//! `+2d`, `-30m`; durations `10m`, `30d`, `1h30m`, `250ms`. Bad input is a
//! VALIDATION_ERROR naming the flag.

use std::time::Duration;

use callback_store::{parse_timestamp, Error, Timestamp};

/// A duration: one or more `<number><unit>`, units ms, s, m, h, d, w.
pub fn duration(field: &str, text: &str) -> Result<Duration, Error> {
    let bad = || {
        Error::validation(
            field,
            format!(
                "must be a duration like 30s, 10m, 1h30m or 30d (units ms, s, m, h, d, w); got {text:?}"
            ),
        )
    };
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let millis_per_unit: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        let millis = number.checked_mul(millis_per_unit).ok_or_else(bad)?;
        total = total
            .checked_add(Duration::from_millis(millis))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

/// A point in time: RFC 3339 with an offset, `now`, or `+DURATION` /
/// `-DURATION` from now.
pub fn time(field: &str, text: &str, now: Timestamp) -> Result<Timestamp, Error> {
    let text = text.trim();
    if text == "now" {
        return Ok(now);
    }
    let relative = |sign: i32, rest: &str| -> Result<Timestamp, Error> {
        let d = duration(field, rest)?;
        let d = chrono::Duration::from_std(d)
            .map_err(|_| Error::validation(field, "is too far from now"))?;
        let t = if sign > 0 {
            now.checked_add_signed(d)
        } else {
            now.checked_sub_signed(d)
        };
        let t = t.ok_or_else(|| Error::validation(field, "is too far from now"))?;
        // The store's range check, with the same message as any timestamp.
        parse_timestamp(field, &callback_store::format_timestamp(t))
    };
    if let Some(rest) = text.strip_prefix('+') {
        return relative(1, rest);
    }
    if let Some(rest) = text.strip_prefix('-') {
        return relative(-1, rest);
    }
    parse_timestamp(field, text).map_err(|_| {
        Error::validation(
            field,
            format!(
                "must be an RFC 3339 time with an offset (2030-03-05T10:00:00Z), now, +DURATION or -DURATION; got {text:?}"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn durations_add_their_parts() {
        assert_eq!(duration("x", "10m").unwrap(), Duration::from_secs(600));
        assert_eq!(duration("x", "1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            duration("x", "30d").unwrap(),
            Duration::from_secs(30 * 86400)
        );
        assert_eq!(duration("x", "250ms").unwrap(), Duration::from_millis(250));
        for bad in ["", "10", "m", "10 m", "1y", "-5m", "99999999999999999999s"] {
            let err = duration("older_than", bad).unwrap_err();
            assert!(err.to_string().starts_with("older_than: "), "{bad}");
        }
    }

    #[test]
    fn times_are_absolute_now_or_relative() {
        let now = chrono::Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(time("at", "now", now).unwrap(), now);
        assert_eq!(
            time("at", "+2d", now).unwrap(),
            now + chrono::Duration::days(2)
        );
        assert_eq!(
            time("at", "-30m", now).unwrap(),
            now - chrono::Duration::minutes(30)
        );
        assert_eq!(
            time("at", "2030-03-05T11:00:00+01:00", now).unwrap(),
            chrono::Utc.with_ymd_and_hms(2030, 3, 5, 10, 0, 0).unwrap()
        );
        assert!(time("at", "tomorrow", now).is_err());
        assert!(time("at", "2030-03-05T10:00:00", now).is_err());
    }
}
