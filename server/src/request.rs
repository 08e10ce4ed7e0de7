//! Reading requests: query strings and JSON bodies, field by field, so that
//! every bad input is a VALIDATION_ERROR naming the field and the rule.
//! The fields of a callback and of a list are read by the core's reader
//! (`callback_store::input`), which the command's `import` uses too.

use axum::http::{header, HeaderMap};
use callback_store::input;
use callback_store::validate::json_kind;
use callback_store::{Error, ListQuery};
use serde_json::{Map, Value};

use crate::error::ApiError;

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

/// The ListQuery of a `GET /v1/callbacks` query string, read by the core's
/// reader from the parameters as strings.
pub fn list_query(raw: Option<&str>) -> Result<ListQuery, Error> {
    let pairs = query_pairs(raw, &input::LIST_QUERY_FIELDS)?;
    let map = pairs
        .into_iter()
        .map(|(name, value)| (name, Value::String(value)))
        .collect();
    input::list_query(map)
}

/// The read of the change feed of a `GET /v1/events` query string, read
/// by the core's reader from the parameters as strings.
pub fn changes_query(raw: Option<&str>) -> Result<input::ChangesQuery, Error> {
    let pairs = query_pairs(raw, &input::CHANGES_QUERY_FIELDS)?;
    let map = pairs
        .into_iter()
        .map(|(name, value)| (name, Value::String(value)))
        .collect();
    input::changes_query(map)
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
    fn json_bodies_must_be_objects() {
        assert!(rule(json_object("body", b"[1]").unwrap_err()).contains("got an array"));
        assert!(rule(json_object("body", b"{").unwrap_err()).contains("malformed JSON"));
    }
}
