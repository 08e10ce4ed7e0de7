//! Reading a `NewCallback` and a `ListQuery` from JSON: the one reader every
//! door that takes JSON uses (the HTTP server's bodies and query strings,
//! the command's `import`, the test runners), so that a field is read, and
//! named in its error, the same way everywhere. Only the shape is checked
//! here (unknown fields, JSON kinds, timestamps, the limit's number); the
//! rules of the values stay in `validate`, applied by the store.

use serde_json::Value;

use std::time::Duration;

use crate::error::{Error, FieldPath, Result};
use crate::feed::{self, Since, DEFAULT_CHANGES};
use crate::model::{JsonObject, ListQuery, NewCallback, Order, Status, DEFAULT_LIMIT, MAX_LIMIT};
use crate::policy::{CallOutcome, CallingPolicy, CallingWindow, Weekday};
use crate::time::{self, Timestamp};
use crate::validate::{self, json_kind};

/// The fields of a callback creation, in the API's order.
pub const NEW_CALLBACK_FIELDS: [&str; 14] = [
    "to_number",
    "scheduled_at",
    "source_session_id",
    "agent_id",
    "phone_number_id",
    "from_number",
    "reason",
    "instructions",
    "summary",
    "pipeline_config",
    "metadata",
    "timezone",
    "expires_at",
    "idempotency_key",
];

/// The fields of a calling policy, in the API's order.
pub const CALLING_POLICY_FIELDS: [&str; 5] = [
    "timezone",
    "windows",
    "max_attempts",
    "retry_intervals",
    "retry_on",
];

/// The fields of one calling window.
pub const CALLING_WINDOW_FIELDS: [&str; 3] = ["days", "start", "end"];

/// The parameters of a list.
pub const LIST_QUERY_FIELDS: [&str; 9] = [
    "status",
    "source_session_id",
    "agent_id",
    "to_number",
    "scheduled_after",
    "scheduled_before",
    "order",
    "limit",
    "cursor",
];

/// The parameters of a read of the change feed.
pub const CHANGES_QUERY_FIELDS: [&str; 3] = ["since", "limit", "wait"];

/// A read of the change feed: `Organization::changes`' arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangesQuery {
    pub since: Since,
    pub limit: u32,
    pub wait: Duration,
}

/// Reads the fields of one JSON object, refusing fields it does not know.
pub struct Fields {
    map: JsonObject,
}

impl Fields {
    /// `whole` names the object in the error about unknown fields (`body`,
    /// `query`).
    pub fn new(map: JsonObject, allowed: &[&str], whole: &str) -> Result<Fields> {
        let unknown: Vec<&str> = map
            .keys()
            .map(String::as_str)
            .filter(|k| !allowed.contains(k))
            .collect();
        if !unknown.is_empty() {
            return Err(Error::validation(
                whole,
                format!(
                    "unknown field{} {}; allowed: {}",
                    if unknown.len() == 1 { "" } else { "s" },
                    unknown.join(", "),
                    allowed.join(", ")
                ),
            ));
        }
        Ok(Fields { map })
    }

    /// A string or null (absent is null).
    pub fn optional_string(&mut self, field: &str) -> Result<Option<String>> {
        match self.map.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(Error::validation(
                field,
                format!("must be a string or null, got {}", json_kind(&other)),
            )),
        }
    }

    pub fn string(&mut self, field: &str) -> Result<String> {
        self.optional_string(field)?
            .ok_or_else(|| Error::validation(field, "is required"))
    }

    pub fn optional_timestamp(&mut self, field: &str) -> Result<Option<Timestamp>> {
        self.optional_string(field)?
            .map(|text| time::parse(field, &text))
            .transpose()
    }

    pub fn timestamp(&mut self, field: &str) -> Result<Timestamp> {
        let text = self.string(field)?;
        time::parse(field, &text)
    }

    /// A JSON object; absent is `{}`, null and other kinds are refused.
    pub fn object(&mut self, field: &str) -> Result<JsonObject> {
        match self.map.remove(field) {
            None => Ok(JsonObject::new()),
            Some(Value::Object(map)) => Ok(map),
            Some(other) => Err(Error::validation(
                field,
                format!("must be a JSON object, got {}", json_kind(&other)),
            )),
        }
    }

    /// A JSON list, or None when absent or null.
    pub fn optional_list(&mut self, field: &str) -> Result<Option<Vec<Value>>> {
        match self.map.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(other) => Err(Error::validation(
                field,
                format!("must be a list, got {}", json_kind(&other)),
            )),
        }
    }

    /// A whole number from 0 to 2^32 - 1, or None when absent or null; the
    /// rules of its range stay with the value's owner.
    pub fn optional_count(&mut self, field: &str) -> Result<Option<u32>> {
        match self.map.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| {
                    Error::validation(field, format!("must be a whole number, got {n}"))
                }),
            Some(other) => Err(Error::validation(
                field,
                format!("must be a whole number, got {}", json_kind(&other)),
            )),
        }
    }

    /// A whole number, or its decimal text (a query string's value); None
    /// when absent or null. The rules of its range stay with its owner.
    pub fn optional_whole(&mut self, field: &str) -> Result<Option<u64>> {
        let bad =
            |got: String| Error::validation(field, format!("must be a whole number, got {got}"));
        match self.map.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| bad(n.to_string())),
            Some(Value::String(text)) => {
                text.parse().map(Some).map_err(|_| bad(format!("{text:?}")))
            }
            Some(other) => Err(bad(json_kind(&other).to_owned())),
        }
    }

    /// A list's limit: an integer, or its decimal text (a query string's
    /// value), from 1 to 100; absent is the default. Never clamped.
    pub fn limit(&mut self, field: &str) -> Result<u32> {
        let bad = |got: String| {
            Error::validation(
                field,
                format!("must be an integer between 1 and {MAX_LIMIT}, got {got}"),
            )
        };
        let limit = match self.map.remove(field) {
            None | Some(Value::Null) => return Ok(DEFAULT_LIMIT),
            Some(Value::Number(n)) => n.as_u64().ok_or_else(|| bad(n.to_string()))?,
            Some(Value::String(text)) => text.parse().map_err(|_| bad(format!("{text:?}")))?,
            Some(other) => return Err(bad(json_kind(&other).to_owned())),
        };
        let limit = u32::try_from(limit).map_err(|_| bad(limit.to_string()))?;
        validate::limit(limit)?;
        Ok(limit)
    }
}

/// A read of the change feed from its parameters (as JSON, or all as
/// strings, as a query string gives them): `since` is `start` (the
/// default), `now` or a cursor; `limit` (default 100) and `wait` (whole
/// seconds, default 0) are whole numbers, their ranges the feed's.
pub fn changes_query(map: JsonObject) -> Result<ChangesQuery> {
    let mut f = Fields::new(map, &CHANGES_QUERY_FIELDS, "query")?;
    let since = f.optional_string("since")?;
    let limit = f.optional_whole("limit")?;
    let wait = f.optional_whole("wait")?;
    Ok(ChangesQuery {
        since: since.as_deref().map_or(Since::Start, Since::from),
        limit: limit.map_or(Ok(DEFAULT_CHANGES), feed::checked_limit)?,
        wait: feed::checked_wait(Duration::from_secs(wait.unwrap_or(0)))?,
    })
}

/// A NewCallback from a JSON object: the body of `POST /v1/callbacks`, a
/// line of `import`.
pub fn new_callback(map: JsonObject) -> Result<NewCallback> {
    let mut f = Fields::new(map, &NEW_CALLBACK_FIELDS, "body")?;
    Ok(NewCallback {
        to_number: f.string("to_number")?,
        scheduled_at: f.timestamp("scheduled_at")?,
        source_session_id: f.optional_string("source_session_id")?,
        agent_id: f.optional_string("agent_id")?,
        phone_number_id: f.optional_string("phone_number_id")?,
        from_number: f.optional_string("from_number")?,
        reason: f.optional_string("reason")?,
        instructions: f.optional_string("instructions")?,
        summary: f.optional_string("summary")?,
        pipeline_config: f.object("pipeline_config")?,
        metadata: f.object("metadata")?,
        timezone: f.optional_string("timezone")?,
        expires_at: f.optional_timestamp("expires_at")?,
        idempotency_key: f.optional_string("idempotency_key")?,
    })
}

/// A CallingPolicy from a JSON object: the body of `PUT /v1/calling-policy`,
/// the command's `policy set`. Absent fields take their defaults.
pub fn calling_policy(map: JsonObject) -> Result<CallingPolicy> {
    let mut f = Fields::new(map, &CALLING_POLICY_FIELDS, "body")?;
    let defaults = CallingPolicy::default();
    Ok(CallingPolicy {
        timezone: f.optional_string("timezone")?.unwrap_or(defaults.timezone),
        windows: f
            .optional_list("windows")?
            .map(|items| {
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| calling_window(item).map_err(|e| e.within_item("windows", i)))
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?
            .unwrap_or(defaults.windows),
        max_attempts: f
            .optional_count("max_attempts")?
            .unwrap_or(defaults.max_attempts),
        retry_intervals: f
            .optional_list("retry_intervals")?
            .map(|items| strings("retry_intervals", items))
            .transpose()?
            .unwrap_or(defaults.retry_intervals),
        retry_on: f
            .optional_list("retry_on")?
            .map(|items| {
                strings("retry_on", items)?
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        s.parse::<CallOutcome>()
                            .map_err(|e| renamed(e, FieldPath::item("retry_on", i)))
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?
            .unwrap_or(defaults.retry_on),
    })
}

fn calling_window(item: Value) -> Result<CallingWindow> {
    let Value::Object(map) = item else {
        return Err(Error::validation(
            "window",
            format!("must be a JSON object, got {}", json_kind(&item)),
        ));
    };
    let mut f = Fields::new(map, &CALLING_WINDOW_FIELDS, "window")?;
    let days = f
        .optional_list("days")?
        .ok_or_else(|| Error::validation("days", "is required"))?;
    let days = strings("days", days)?
        .iter()
        .enumerate()
        .map(|(i, d)| {
            d.parse::<Weekday>()
                .map_err(|e| renamed(e, FieldPath::item("days", i)))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(CallingWindow {
        days,
        start: f.string("start")?,
        end: f.string("end")?,
    })
}

/// The strings of a JSON list, each named by its place in errors.
fn strings(field: &str, items: Vec<Value>) -> Result<Vec<String>> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) => Ok(s),
            other => Err(Error::validation(
                FieldPath::item(field, i),
                format!("must be a string, got {}", json_kind(&other)),
            )),
        })
        .collect()
}

/// The same rule under another field's name.
fn renamed(err: Error, field: FieldPath) -> Error {
    match err {
        Error::Validation { rule, .. } => Error::validation(field, rule),
        other => other,
    }
}

/// The outcome of a call, as `retry` takes it: `{"outcome": "no_answer"}`.
pub fn call_outcome(map: JsonObject) -> Result<CallOutcome> {
    let mut f = Fields::new(map, &["outcome"], "body")?;
    f.string("outcome")?.parse()
}

/// A ListQuery from a JSON object of its parameters (values as JSON, or all
/// as strings, as a query string gives them). Absent parameters take their
/// defaults.
pub fn list_query(map: JsonObject) -> Result<ListQuery> {
    let mut f = Fields::new(map, &LIST_QUERY_FIELDS, "query")?;
    // A literal without `..`: a new filter of ListQuery must be read here too.
    Ok(ListQuery {
        status: f
            .optional_string("status")?
            .map(|s| s.parse::<Status>())
            .transpose()?,
        source_session_id: f.optional_string("source_session_id")?,
        agent_id: f.optional_string("agent_id")?,
        to_number: f.optional_string("to_number")?,
        scheduled_after: f.optional_timestamp("scheduled_after")?,
        scheduled_before: f.optional_timestamp("scheduled_before")?,
        order: f
            .optional_string("order")?
            .map(|s| s.parse::<Order>())
            .transpose()?
            .unwrap_or_default(),
        limit: f.limit("limit")?,
        cursor: f.optional_string("cursor")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> JsonObject {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    fn field_of(err: Error) -> String {
        match err {
            Error::Validation { field, .. } => field.to_string(),
            other => panic!("not a validation error: {other}"),
        }
    }

    #[test]
    fn new_callback_fields_are_read_one_by_one_and_named_in_errors() {
        let ok = new_callback(object(json!({
            "to_number": "+12015551234",
            "scheduled_at": "2030-01-01T10:00:00+02:00",
            "metadata": {"a": 1},
            "reason": null,
        })))
        .unwrap();
        assert_eq!(ok.scheduled_at.to_rfc3339(), "2030-01-01T08:00:00+00:00");
        assert_eq!(ok.reason, None);
        let cases = [
            (json!({"scheduled_at": "2030-01-01T00:00:00Z"}), "to_number"),
            (
                json!({"to_number": 1, "scheduled_at": "2030-01-01T00:00:00Z"}),
                "to_number",
            ),
            (
                json!({"to_number": "+12015551234", "scheduled_at": "soon"}),
                "scheduled_at",
            ),
            (
                json!({"to_number": "+12015551234", "scheduled_at": "2030-01-01T00:00:00Z", "metadata": []}),
                "metadata",
            ),
            (
                json!({"to_number": "+12015551234", "scheduled_at": "2030-01-01T00:00:00Z", "extra": 1}),
                "body",
            ),
        ];
        for (input, field) in cases {
            let err = new_callback(object(input.clone())).unwrap_err();
            assert_eq!(field_of(err), field, "{input}");
        }
    }

    #[test]
    fn a_list_limit_is_an_integer_or_its_text_from_1_to_100_never_clamped() {
        for (value, expected) in [(json!(7), 7), (json!("100"), 100), (json!(null), 25)] {
            let query = list_query(object(json!({ "limit": value }))).unwrap();
            assert_eq!(query.limit, expected);
        }
        for bad in [
            json!(0),
            json!(101),
            json!("ten"),
            json!(-1),
            json!(2.5),
            json!(true),
        ] {
            let err = list_query(object(json!({ "limit": bad.clone() }))).unwrap_err();
            assert_eq!(field_of(err), "limit", "{bad}");
        }
    }

    #[test]
    fn list_parameters_are_typed_and_unknown_ones_named() {
        let query = list_query(object(json!({
            "status": "failed",
            "order": "scheduled_asc",
            "scheduled_after": "2030-01-01T00:00:00Z",
        })))
        .unwrap();
        assert_eq!(query.status, Some(Status::Failed));
        assert_eq!(query.order, Order::ScheduledAsc);
        assert!(query.scheduled_after.is_some());
        let err = list_query(object(json!({"colour": "red"}))).unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
        assert_eq!(field_of(err), "query");
        let err = list_query(object(json!({"status": "pending"}))).unwrap_err();
        assert_eq!(field_of(err), "status");
    }
}
