//! The two custom types that cross the FFI as text: timestamps and JSON
//! objects.
//!
//! Both are carried as strings and parsed on the Rust side, field by field,
//! so that a bad value (a naive datetime, a list where an object belongs, a
//! year out of range) is refused by the core's own rules as a
//! VALIDATION_ERROR that names the field, instead of failing inside the FFI
//! machinery. Each language maps them to its own types in `uniffi.toml`
//! (Python `datetime`/`dict`, Kotlin `Instant`/`Map`, Swift `Date`/`String`).

use callback_store as core;

/// A foreign value that its language-side converter could not turn into
/// text starts with this character, followed by the reason (e.g. "a naive
/// datetime has no timezone"). No valid timestamp or JSON text starts so.
const REFUSED_BY_CONVERTER: char = '\0';

/// A point in time as RFC 3339 text: `2019-08-24T14:15:22Z`, fractional
/// seconds only when not zero. In Python a timezone-aware `datetime`, in
/// Kotlin a `java.time.Instant`, in Swift a `Date`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Timestamp(pub String);

uniffi::custom_type!(Timestamp, String, {
    lower: |t| t.0,
    try_lift: |text| Ok(Timestamp(text)),
});

/// A JSON object (`metadata`, `pipeline_config`) as JSON text. In Python a
/// `dict`, in Kotlin a `Map<String, Any?>`, in Swift the JSON `String`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonObject(pub String);

uniffi::custom_type!(JsonObject, String, {
    lower: |j| j.0,
    try_lift: |text| Ok(JsonObject(text)),
});

impl From<core::Timestamp> for Timestamp {
    fn from(t: core::Timestamp) -> Self {
        Timestamp(core::format_timestamp(t))
    }
}

/// The stored text, handed over as it is: neither parsed nor written again
/// on the Rust side (each language's converter parses it once).
impl From<core::JsonObjectText> for JsonObject {
    fn from(text: core::JsonObjectText) -> Self {
        JsonObject(text.into_string())
    }
}

fn refused(text: &str) -> Option<&str> {
    text.strip_prefix(REFUSED_BY_CONVERTER)
}

impl Timestamp {
    /// The core timestamp, or a VALIDATION_ERROR naming `field`.
    pub(crate) fn parse(&self, field: &str) -> core::Result<core::Timestamp> {
        if let Some(reason) = refused(&self.0) {
            return Err(core::Error::validation(field, reason));
        }
        core::parse_timestamp(field, &self.0)
    }
}

pub(crate) fn parse_opt(
    field: &str,
    t: &Option<Timestamp>,
) -> core::Result<Option<core::Timestamp>> {
    t.as_ref().map(|t| t.parse(field)).transpose()
}

impl JsonObject {
    /// The core object, or a VALIDATION_ERROR naming `field`.
    pub(crate) fn parse(&self, field: &str) -> core::Result<core::JsonObject> {
        if let Some(reason) = refused(&self.0) {
            return Err(core::Error::validation(field, reason));
        }
        core::validate::parse_json_object(field, &self.0)
    }
}

pub(crate) fn opt_ts(t: Option<core::Timestamp>) -> Option<Timestamp> {
    t.map(Timestamp::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(e: core::Error) -> &'static str {
        e.code().as_str()
    }

    #[test]
    fn timestamps_without_offset_or_refused_by_the_converter_are_validation_errors() {
        for bad in [
            "2030-01-01T00:00:00",
            "\0a naive datetime",
            "1969-12-31T23:59:59Z",
            "",
        ] {
            let err = Timestamp(bad.into()).parse("scheduled_at").unwrap_err();
            assert_eq!(code(err.clone()), "VALIDATION_ERROR", "{bad:?}");
            assert!(err.to_string().starts_with("scheduled_at:"), "{err}");
        }
        let ok = Timestamp("2030-01-01T02:00:00.5+02:00".into())
            .parse("x")
            .unwrap();
        assert_eq!(Timestamp::from(ok).0, "2030-01-01T00:00:00.500Z");
    }

    #[test]
    fn json_that_is_not_an_object_is_a_validation_error() {
        for bad in ["[]", "1", "null", "{", "\0got a set"] {
            let err = JsonObject(bad.into()).parse("metadata").unwrap_err();
            assert_eq!(code(err.clone()), "VALIDATION_ERROR", "{bad:?}");
            assert!(err.to_string().starts_with("metadata:"), "{err}");
        }
        let map = JsonObject(r#"{"b": 1, "a": [true]}"#.into())
            .parse("metadata")
            .unwrap();
        let stored = core::JsonObjectText::from_map("metadata", &map).unwrap();
        assert_eq!(JsonObject::from(stored).0, r#"{"b":1,"a":[true]}"#);
    }
}
