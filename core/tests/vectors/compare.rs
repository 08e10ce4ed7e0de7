//! Expansion of saved names in a vector's values, and the comparison of
//! what a step expected with what the store answered.

use std::collections::HashMap;

use serde_json::Value;

use super::VectorResult;

pub(crate) fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name != "any"
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `{"$repeat": s, "times": n}`, `{"$concat": [...]}` and `"$name"`.
pub(crate) fn expand(value: &Value, saved: &HashMap<String, String>) -> VectorResult<Value> {
    Ok(match value {
        Value::String(s) => match s.strip_prefix('$') {
            Some(name) if is_name(name) => Value::String(
                saved
                    .get(name)
                    .ok_or_else(|| format!("${name} was not saved"))?
                    .clone(),
            ),
            _ => value.clone(),
        },
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| expand(v, saved))
                .collect::<VectorResult<_>>()?,
        ),
        Value::Object(map) if map.len() == 2 && map.contains_key("$repeat") => {
            let s = map["$repeat"].as_str().ok_or("$repeat takes a string")?;
            let times = map.get("times").and_then(Value::as_u64).ok_or("no times")?;
            Value::String(s.repeat(times as usize))
        }
        Value::Object(map) if map.len() == 1 && map.contains_key("$concat") => {
            let mut out = String::new();
            for item in map["$concat"].as_array().ok_or("$concat takes an array")? {
                out.push_str(
                    expand(item, saved)?
                        .as_str()
                        .ok_or("$concat of a non-string")?,
                );
            }
            Value::String(out)
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), expand(v, saved)?)))
                .collect::<VectorResult<_>>()?,
        ),
        _ => value.clone(),
    })
}

/// `{"error": "CODE"}` or `{"error": "CODE", "field": "FIELD"}`: the
/// expectation of a failure (and of the field its message names).
pub(crate) fn expected_error(expect: &Value) -> Option<(&str, Option<&str>)> {
    let map = expect.as_object()?;
    let code = map.get("error")?.as_str()?;
    match (map.len(), map.get("field")) {
        (1, None) => Some((code, None)),
        (2, Some(Value::String(field))) => Some((code, Some(field))),
        _ => None,
    }
}

/// The first place where `actual` differs from `expected`, by README rules.
pub(crate) fn difference(expected: &Value, actual: &Value, path: &str) -> Option<String> {
    let differs = || {
        Some(format!(
            "at {path}: expected {}, got {}",
            short(expected),
            short(actual)
        ))
    };
    match (expected, actual) {
        (Value::String(s), actual) if s == "$any" => actual.is_null().then(differs).flatten(),
        (Value::Object(e), Value::Object(a)) => {
            if let Some(k) = e.keys().find(|k| !a.contains_key(*k)) {
                return Some(format!("at {path}: missing key {k:?}"));
            }
            if let Some(k) = a.keys().find(|k| !e.contains_key(*k)) {
                return Some(format!("at {path}: unexpected key {k:?}"));
            }
            e.iter()
                .find_map(|(k, v)| difference(v, &a[k], &format!("{path}.{k}")))
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => e
            .iter()
            .zip(a)
            .enumerate()
            .find_map(|(i, (e, a))| difference(e, a, &format!("{path}[{i}]"))),
        (Value::Array(e), Value::Array(a)) => Some(format!(
            "at {path}: expected {} items, got {}",
            e.len(),
            a.len()
        )),
        (Value::Number(e), Value::Number(a)) if e.as_f64() == a.as_f64() => None,
        _ if expected == actual => None,
        _ => differs(),
    }
}

pub(crate) fn at_path<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    if path.is_empty() {
        return Some(value);
    }
    path.split('.').try_fold(value, |v, seg| match v {
        Value::Array(items) => items.get(seg.parse::<usize>().ok()?),
        Value::Object(map) => map.get(seg),
        _ => None,
    })
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}… ({} bytes)", &text[..i], text.len()),
        None => text,
    }
}

/// Pretty JSON with long strings cut, for failure messages.
pub(crate) fn show(value: &Value) -> String {
    fn cut(v: &Value) -> Value {
        match v {
            Value::String(s) if s.len() > 120 => {
                let end = s.char_indices().nth(60).map_or(s.len(), |(i, _)| i);
                Value::String(format!("{}… ({} bytes)", &s[..end], s.len()))
            }
            Value::Array(items) => Value::Array(items.iter().map(cut).collect()),
            Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), cut(v))).collect()),
            other => other.clone(),
        }
    }
    let text = serde_json::to_string_pretty(&cut(value)).unwrap();
    text.lines().map(|l| format!("    {l}\n")).collect()
}
