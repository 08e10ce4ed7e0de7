//! The input rules of DESIGN.md. Every function names the field and the rule
//! in its error, so a caller knows what to fix.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::model::{JsonObject, JsonObjectText, ListQuery, NewCallback, MAX_LIMIT};
use crate::time::{self, Timestamp};

pub const MAX_IDENTIFIER_BYTES: usize = 255;
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
pub const MAX_JSON_BYTES: usize = 64 * 1024;
/// Deeper JSON is refused: nothing a dialer needs is nested this far, and
/// every consumer (serde, Python, JavaScript) would recurse through it.
pub const MAX_JSON_DEPTH: usize = 32;

pub fn identifier(field: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.len() > MAX_IDENTIFIER_BYTES {
        return Err(Error::validation(
            field,
            format!(
                "must be 1 to {MAX_IDENTIFIER_BYTES} bytes long, got {}",
                value.len()
            ),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::validation(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

pub fn optional_identifier(field: &str, value: Option<&str>) -> Result<()> {
    value.map_or(Ok(()), |v| identifier(field, v))
}

/// E.164: `+`, then 2 to 15 digits, the first one 1 to 9.
pub fn e164(field: &str, value: &str) -> Result<()> {
    let digits = value.strip_prefix('+').unwrap_or("");
    let ok = (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if ok {
        Ok(())
    } else {
        Err(Error::validation(
            field,
            format!(
                "must be an E.164 number: '+' then 2 to 15 digits, the first 1-9 (like +12015551234); got {:?}",
                truncate_for_message(value)
            ),
        ))
    }
}

pub fn optional_e164(field: &str, value: Option<&str>) -> Result<()> {
    value.map_or(Ok(()), |v| e164(field, v))
}

pub fn free_text(field: &str, value: Option<&str>) -> Result<()> {
    let Some(value) = value else { return Ok(()) };
    if value.len() > MAX_TEXT_BYTES {
        return Err(Error::validation(
            field,
            format!(
                "must be at most {MAX_TEXT_BYTES} bytes, got {}",
                value.len()
            ),
        ));
    }
    if value.contains('\0') {
        return Err(Error::validation(field, "must not contain NUL characters"));
    }
    Ok(())
}

/// A failure cause: required, free text.
pub fn failure_cause(value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::validation("failure_cause", "must not be empty"));
    }
    free_text("failure_cause", Some(value))
}

/// Checks size and depth and returns the object's JSON text, as stored.
pub fn json_object(field: &str, value: &JsonObject) -> Result<String> {
    let mut stack: Vec<(&Value, usize)> = value.values().map(|v| (v, 2)).collect();
    // Levels are objects and arrays, the outer object being level 1;
    // scalars inside the deepest container do not add one.
    while let Some((v, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        if depth > MAX_JSON_DEPTH {
            return Err(Error::validation(
                field,
                format!("must not nest objects and arrays deeper than {MAX_JSON_DEPTH} levels"),
            ));
        }
        stack.extend(children.map(|c| (c, depth + 1)));
    }
    let text = serde_json::to_string(value)
        .map_err(|e| Error::validation(field, format!("must be serializable JSON ({e})")))?;
    if text.len() > MAX_JSON_BYTES {
        return Err(Error::validation(
            field,
            format!(
                "must be at most {MAX_JSON_BYTES} bytes as JSON, got {}",
                text.len()
            ),
        ));
    }
    Ok(text)
}

/// Parses a JSON object given as text (CLI flags, bindings): arrays,
/// scalars and null are refused.
pub fn parse_json_object(field: &str, text: &str) -> Result<JsonObject> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(Error::validation(
            field,
            format!("must be a JSON object, got {}", json_kind(&other)),
        )),
        Err(e) => Err(Error::validation(
            field,
            format!("must be a JSON object ({e})"),
        )),
    }
}

/// How a JSON value is named in error messages ("an array", "null", ...).
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub fn limit(value: u32) -> Result<()> {
    if (1..=MAX_LIMIT).contains(&value) {
        Ok(())
    } else {
        Err(Error::validation(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}, got {value}"),
        ))
    }
}

/// A NewCallback that passed every rule, with its JSON already serialized
/// (the text stored, and returned in the created record).
pub(crate) struct ValidNewCallback<'a> {
    pub input: &'a NewCallback,
    pub scheduled_at: Timestamp,
    /// The callback's own zone, when it names one.
    pub zone: Option<chrono_tz::Tz>,
    pub expires_at: Option<Timestamp>,
    pub pipeline_config: JsonObjectText,
    pub metadata: JsonObjectText,
}

pub(crate) fn new_callback(input: &NewCallback) -> Result<ValidNewCallback<'_>> {
    e164("to_number", &input.to_number)?;
    let scheduled_at = time::checked("scheduled_at", input.scheduled_at)?;
    optional_identifier("source_session_id", input.source_session_id.as_deref())?;
    optional_identifier("agent_id", input.agent_id.as_deref())?;
    optional_identifier("phone_number_id", input.phone_number_id.as_deref())?;
    optional_e164("from_number", input.from_number.as_deref())?;
    free_text("reason", input.reason.as_deref())?;
    free_text("instructions", input.instructions.as_deref())?;
    free_text("summary", input.summary.as_deref())?;
    let pipeline_config = JsonObjectText::from_map("pipeline_config", &input.pipeline_config)?;
    let metadata = JsonObjectText::from_map("metadata", &input.metadata)?;
    let zone = input
        .timezone
        .as_deref()
        .map(|name| crate::policy::zone("timezone", name))
        .transpose()?;
    let expires_at = input
        .expires_at
        .map(|t| time::checked("expires_at", t))
        .transpose()?;
    if let Some(deadline) = expires_at {
        deadline_after("expires_at", deadline, scheduled_at)?;
    }
    optional_identifier("idempotency_key", input.idempotency_key.as_deref())?;
    Ok(ValidNewCallback {
        input,
        scheduled_at,
        zone,
        expires_at,
        pipeline_config,
        metadata,
    })
}

/// A deadline must leave time to call: later than the scheduled time.
pub(crate) fn deadline_after(
    field: &str,
    deadline: Timestamp,
    scheduled_at: Timestamp,
) -> Result<()> {
    if deadline <= scheduled_at {
        return Err(Error::validation(
            field,
            format!(
                "must be later than scheduled_at ({}), got {}",
                time::format(scheduled_at),
                time::format(deadline)
            ),
        ));
    }
    Ok(())
}

pub(crate) fn list_query(query: &ListQuery) -> Result<()> {
    // Destructured without `..`: a new filter must get its rule here.
    let ListQuery {
        status: _,
        source_session_id,
        agent_id,
        to_number,
        scheduled_after,
        scheduled_before,
        order: _,
        limit: page_size,
        cursor: _,
    } = query;
    limit(*page_size)?;
    optional_identifier("source_session_id", source_session_id.as_deref())?;
    optional_identifier("agent_id", agent_id.as_deref())?;
    optional_e164("to_number", to_number.as_deref())?;
    let after = scheduled_after
        .map(|t| time::checked("scheduled_after", t))
        .transpose()?;
    let before = scheduled_before
        .map(|t| time::checked("scheduled_before", t))
        .transpose()?;
    if let (Some(after), Some(before)) = (after, before) {
        if after > before {
            return Err(Error::validation(
                "scheduled_after",
                "must not be later than scheduled_before",
            ));
        }
    }
    Ok(())
}

fn truncate_for_message(value: &str) -> &str {
    match value.char_indices().nth(40) {
        Some((i, _)) => &value[..i],
        None => value,
    }
}
