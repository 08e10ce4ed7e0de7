//! Reading requests: query strings and JSON bodies, field by field, so that
//! every bad input is a VALIDATION_ERROR naming the field and the rule.
//! The same readers serve the command's `import` (one JSON object a line).

use axum::http::{header, HeaderMap};
use callback_store::validate::json_kind;
use callback_store::{
    parse_timestamp, Error, JsonObject, ListQuery, NewCallback, Order, Status, Timestamp,
    DEFAULT_LIMIT, MAX_LIMIT,
};
use serde_json::{Map, Value};

use crate::error::ApiError;

/// The query parameters of `GET /v1/callbacks`.
pub const LIST_PARAMETERS: [&str; 9] = [
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

/// The fields of a callback creation (`POST /v1/callbacks`, `import`).
pub const NEW_CALLBACK_FIELDS: [&str; 12] = [
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
    "idempotency_key",
];

/// Splits a query string into (name, value) pairs, refusing names outside
/// `allowed` (all of them named in the error) and names given twice.
pub fn query_pairs(raw: Option<&str>, allowed: &[&str]) -> Result<Vec<(String, String)>, Error> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut unknown: Vec<&str> = pairs
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !allowed.contains(k))
        .collect();
    unknown.dedup();
    if !unknown.is_empty() {
        let allowed = if allowed.is_empty() {
            "this route takes none".to_owned()
        } else {
            format!("allowed: {}", allowed.join(", "))
        };
        return Err(Error::validation(
            "query",
            format!(
                "unknown parameter{} {}; {allowed}",
                if unknown.len() == 1 { "" } else { "s" },
                unknown.join(", ")
            ),
        ));
    }
    for (i, (name, _)) in pairs.iter().enumerate() {
        if pairs[..i].iter().any(|(k, _)| k == name) {
            return Err(Error::validation(name, "must be given at most once"));
        }
    }
    Ok(pairs)
}

/// `limit`: an integer 1..=100 (never clamped).
pub fn parse_limit(text: &str) -> Result<u32, Error> {
    let bad = || {
        Error::validation(
            "limit",
            format!("must be an integer between 1 and {MAX_LIMIT}, got {text:?}"),
        )
    };
    let limit: u32 = text.parse().map_err(|_| bad())?;
    callback_store::validate::limit(limit)?;
    Ok(limit)
}

/// The ListQuery of a `GET /v1/callbacks` query string.
pub fn list_query(raw: Option<&str>) -> Result<ListQuery, Error> {
    let mut query = ListQuery {
        limit: DEFAULT_LIMIT,
        ..ListQuery::default()
    };
    for (name, value) in query_pairs(raw, &LIST_PARAMETERS)? {
        match name.as_str() {
            "status" => query.status = Some(value.parse::<Status>()?),
            "source_session_id" => query.source_session_id = Some(value),
            "agent_id" => query.agent_id = Some(value),
            "to_number" => query.to_number = Some(value),
            "scheduled_after" => query.scheduled_after = Some(parse_timestamp(&name, &value)?),
            "scheduled_before" => query.scheduled_before = Some(parse_timestamp(&name, &value)?),
            "order" => query.order = value.parse::<Order>()?,
            "limit" => query.limit = parse_limit(&value)?,
            "cursor" => query.cursor = Some(value),
            _ => unreachable!("query_pairs keeps only allowed names"),
        }
    }
    Ok(query)
}

/// Checks the Content-Type of a request that has a body: JSON only.
pub fn require_json_content_type(headers: &HeaderMap) -> Result<(), Error> {
    let value = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or(""));
    let essence = value
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    if essence == "application/json" {
        Ok(())
    } else {
        Err(Error::validation(
            "Content-Type",
            format!(
                "must be application/json, got {}",
                value.map_or("none".to_owned(), |v| format!("{v:?}"))
            ),
        ))
    }
}

/// A JSON object from bytes: malformed JSON and non-objects are refused.
pub fn json_object(field: &str, bytes: &[u8]) -> Result<Map<String, Value>, Error> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(Error::validation(
            field,
            format!("must be a JSON object, got {}", json_kind(&other)),
        )),
        Err(e) => Err(Error::validation(field, format!("malformed JSON ({e})"))),
    }
}

/// The JSON object body of a request, after its Content-Type is checked.
/// With `optional`, an empty body reads as `{}`.
pub fn json_body(
    headers: &HeaderMap,
    bytes: &[u8],
    optional: bool,
) -> Result<Map<String, Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        if optional {
            return Ok(Map::new());
        }
        return Err(ApiError::validation("body", "a JSON object is required"));
    }
    require_json_content_type(headers)?;
    Ok(json_object("body", bytes)?)
}

/// Reads the fields of one JSON object, refusing fields it does not know.
pub struct Fields<'a> {
    prefix: &'a str,
    map: Map<String, Value>,
}

impl<'a> Fields<'a> {
    /// `prefix` goes before field names in errors (`line 3: to_number`), or "".
    pub fn new(prefix: &'a str, map: Map<String, Value>, allowed: &[&str]) -> Result<Self, Error> {
        let unknown: Vec<&str> = map
            .keys()
            .map(String::as_str)
            .filter(|k| !allowed.contains(k))
            .collect();
        if !unknown.is_empty() {
            return Err(Error::validation(
                format!("{prefix}body"),
                format!(
                    "unknown field{} {}; allowed: {}",
                    if unknown.len() == 1 { "" } else { "s" },
                    unknown.join(", "),
                    allowed.join(", ")
                ),
            ));
        }
        Ok(Fields { prefix, map })
    }

    fn name(&self, field: &str) -> String {
        format!("{}{field}", self.prefix)
    }

    /// A string or null (absent is null).
    pub fn optional_string(&mut self, field: &str) -> Result<Option<String>, Error> {
        match self.map.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(Error::validation(
                self.name(field),
                format!("must be a string or null, got {}", json_kind(&other)),
            )),
        }
    }

    pub fn string(&mut self, field: &str) -> Result<String, Error> {
        self.optional_string(field)?
            .ok_or_else(|| Error::validation(self.name(field), "is required"))
    }

    pub fn timestamp(&mut self, field: &str) -> Result<Timestamp, Error> {
        let text = self.string(field)?;
        parse_timestamp(&self.name(field), &text)
    }

    /// A JSON object; absent is `{}`, null and other kinds are refused.
    pub fn object(&mut self, field: &str) -> Result<JsonObject, Error> {
        match self.map.remove(field) {
            None => Ok(JsonObject::new()),
            Some(Value::Object(map)) => Ok(map),
            Some(other) => Err(Error::validation(
                self.name(field),
                format!("must be a JSON object, got {}", json_kind(&other)),
            )),
        }
    }
}

/// A NewCallback from a JSON object: the body of `POST /v1/callbacks` or a
/// line of `import`. `prefix` names where it came from in errors.
pub fn new_callback(prefix: &str, map: Map<String, Value>) -> Result<NewCallback, Error> {
    let mut f = Fields::new(prefix, map, &NEW_CALLBACK_FIELDS)?;
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
        idempotency_key: f.optional_string("idempotency_key")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(err: Error) -> String {
        err.to_string()
    }

    #[test]
    fn unknown_query_parameters_are_all_named() {
        let err = list_query(Some("status=scheduled&foo=1&bar=2")).unwrap_err();
        let msg = rule(err);
        assert!(
            msg.starts_with("query: unknown parameters foo, bar;"),
            "{msg}"
        );
    }

    #[test]
    fn repeated_query_parameters_are_refused() {
        let msg = rule(list_query(Some("limit=1&limit=2")).unwrap_err());
        assert_eq!(msg, "limit: must be given at most once");
    }

    #[test]
    fn limit_is_an_integer_from_1_to_100_and_defaults_to_25() {
        assert_eq!(list_query(None).unwrap().limit, 25);
        assert_eq!(list_query(Some("limit=1")).unwrap().limit, 1);
        assert_eq!(list_query(Some("limit=100")).unwrap().limit, 100);
        for bad in ["0", "101", "abc", "-1", "", "1.5", "99999999999"] {
            let err = list_query(Some(&format!("limit={bad}"))).unwrap_err();
            assert!(err.to_string().starts_with("limit: "), "{bad}: {err}");
        }
    }

    #[test]
    fn percent_encoded_values_are_decoded() {
        let q = list_query(Some(
            "to_number=%2B12015551234&scheduled_after=2019-08-24T14%3A15%3A22Z",
        ))
        .unwrap();
        assert_eq!(q.to_number.as_deref(), Some("+12015551234"));
        assert!(q.scheduled_after.is_some());
    }

    #[test]
    fn new_callback_fields_are_checked_one_by_one() {
        let parse = |v: Value| new_callback("", v.as_object().unwrap().clone());
        let ok = parse(serde_json::json!({
            "to_number": "+12015551234", "scheduled_at": "2030-01-01T00:00:00Z",
            "agent_id": null, "metadata": {"b": 1, "a": 2}
        }))
        .unwrap();
        assert_eq!(ok.metadata.keys().collect::<Vec<_>>(), ["b", "a"]);
        let cases = [
            (
                serde_json::json!({"scheduled_at": "2030-01-01T00:00:00Z"}),
                "to_number: is required",
            ),
            (
                serde_json::json!({"to_number": 1, "scheduled_at": "x"}),
                "to_number: must be a string or null, got a number",
            ),
            (
                serde_json::json!({"to_number": "+1201", "scheduled_at": "2030-01-01T00:00:00", }),
                "scheduled_at: must be an RFC 3339",
            ),
            (
                serde_json::json!({"to_number": "+1201", "scheduled_at": "2030-01-01T00:00:00Z", "metadata": null}),
                "metadata: must be a JSON object, got null",
            ),
            (
                serde_json::json!({"to_number": "+1201", "scheduled_at": "2030-01-01T00:00:00Z", "colour": "red"}),
                "body: unknown field colour;",
            ),
        ];
        for (input, expected) in cases {
            let msg = rule(parse(input).unwrap_err());
            assert!(msg.starts_with(expected), "{msg} / {expected}");
        }
    }

    #[test]
    fn json_bodies_must_be_objects() {
        assert!(rule(json_object("body", b"[1]").unwrap_err()).contains("got an array"));
        assert!(rule(json_object("body", b"{").unwrap_err()).contains("malformed JSON"));
    }
}
