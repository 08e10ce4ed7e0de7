//! What the command prints: the API's JSON (pretty on a terminal, one line
//! otherwise, so it pipes into jq), or with `--format table` an aligned table
//! for people.

use std::io::{IsTerminal, Write};

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The API's JSON.
    Json,
    /// An aligned table for people.
    Table,
}

/// Cells longer than this are cut in tables.
const MAX_CELL_CHARS: usize = 48;

pub fn print(format: Format, value: &Value) -> std::io::Result<()> {
    let text = match format {
        Format::Json if std::io::stdout().is_terminal() => {
            serde_json::to_string_pretty(value).expect("a Value serializes")
        }
        Format::Json => serde_json::to_string(value).expect("a Value serializes"),
        Format::Table => table(value),
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()
}

/// The table of a value, by its shape: a list of callbacks, of claims, of
/// events, of keys, or one record (a claim: its callback and token) shown as
/// `key  value` lines.
pub fn table(value: &Value) -> String {
    let rows = |key: &str| value.get(key).and_then(Value::as_array);
    let mut text = if let Some((stats, keys)) = crate::stats::rows(value) {
        columns(&stats, keys)
    } else if let Some(claims) = rows("claims") {
        let flat: Vec<Value> = claims.iter().map(claim_row).collect();
        columns(
            &flat,
            &[
                "id",
                "token",
                "status",
                "scheduled_at",
                "to_number",
                "agent_id",
            ],
        )
    } else if let Some(callbacks) = rows("callbacks") {
        columns(
            callbacks,
            &[
                "id",
                "status",
                "scheduled_at",
                "to_number",
                "source_session_id",
                "agent_id",
                "reason",
            ],
        )
    } else if let Some(events) = rows("events") {
        columns(events, &["at", "action", "from", "to", "detail"])
    } else if let Some(keys) = rows("keys") {
        columns(
            keys,
            &["id", "organization_id", "label", "created_at", "revoked_at"],
        )
    } else if value.get("token").is_some() && value.get("callback").is_some() {
        return record(&claim_row(value));
    } else {
        return record(value);
    };
    if let Some(Value::String(cursor)) = value.get("next_cursor") {
        text.push_str(&format!("\nnext cursor: {cursor}"));
    }
    text
}

/// A claim {"callback": {...}, "token": "..."} as one row: the callback's
/// fields, then its token.
fn claim_row(claim: &Value) -> Value {
    let mut row = claim
        .get("callback")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    row.insert(
        "token".to_owned(),
        claim.get("token").cloned().unwrap_or(Value::Null),
    );
    Value::Object(row)
}

fn cell(value: Option<&Value>) -> String {
    let text = match value {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() > MAX_CELL_CHARS {
        let cut: String = flat.chars().take(MAX_CELL_CHARS - 1).collect();
        format!("{cut}…")
    } else {
        flat
    }
}

fn columns(items: &[Value], keys: &[&str]) -> String {
    let header: Vec<String> = keys.iter().map(|k| k.to_ascii_uppercase()).collect();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| keys.iter().map(|k| cell(item.get(k))).collect())
        .collect();
    let widths: Vec<usize> = (0..keys.len())
        .map(|i| {
            std::iter::once(&header[i])
                .chain(rows.iter().map(|r| &r[i]))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    std::iter::once(&header)
        .chain(rows.iter())
        .map(|row| line(row, &widths))
        .collect::<Vec<_>>()
        .join("\n")
}

fn line(row: &[String], widths: &[usize]) -> String {
    let mut out = String::new();
    for (i, (c, w)) in row.iter().zip(widths).enumerate() {
        if i + 1 == row.len() {
            out.push_str(c);
        } else {
            out.push_str(c);
            out.push_str(&" ".repeat(w - c.chars().count() + 2));
        }
    }
    out
}

/// One object as aligned `key  value` lines (nested objects as JSON); a
/// calling policy's windows one a line, in the `--window` shorthand.
fn record(value: &Value) -> String {
    let Some(map) = value.as_object() else {
        return cell(Some(value));
    };
    let is_policy = map.contains_key("max_attempts") && map.contains_key("retry_on");
    let width = map.keys().map(|k| k.chars().count()).max().unwrap_or(0);
    map.iter()
        .map(|(k, v)| {
            let shown = match v {
                Value::Array(windows) if is_policy && k == "windows" => {
                    if windows.is_empty() {
                        "any time".to_owned()
                    } else {
                        let indent = format!("\n{:width$}  ", "");
                        windows
                            .iter()
                            .map(crate::policy::window_text)
                            .collect::<Vec<_>>()
                            .join(&indent)
                    }
                }
                Value::Array(items) if items.len() > 10 => format!("({} items)", items.len()),
                Value::Array(items) if items.iter().all(Value::is_string) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" "),
                Value::Object(inner) if inner.values().all(|x| !x.is_object()) => v.to_string(),
                _ => cell(Some(v)),
            };
            format!("{k:width$}  {shown}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn list_tables_align_columns_and_show_the_cursor() {
        let page = json!({"callbacks": [
            {"id": "cb_1", "status": "scheduled", "scheduled_at": "2030-01-01T00:00:00Z", "to_number": "+12015551234", "source_session_id": null, "agent_id": "a", "reason": "x\ny"},
            {"id": "cb_22", "status": "cancelled", "scheduled_at": "2030-01-02T00:00:00Z", "to_number": "+1", "source_session_id": "s", "agent_id": null, "reason": null}
        ], "next_cursor": "abc"});
        let text = table(&page);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("ID     STATUS     SCHEDULED_AT"),
            "{text}"
        );
        assert!(lines[1].starts_with("cb_1   scheduled  "), "{text}");
        assert!(lines[1].ends_with("x y"), "{text}");
        assert_eq!(lines[3], "next cursor: abc");
    }

    #[test]
    fn claims_show_their_token_next_to_their_callback() {
        let claim = json!({"callback": {"id": "cb_1", "status": "dispatching"}, "token": "ab12"});
        let text = table(&json!({"claims": [claim.clone()]}));
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("ID    TOKEN  STATUS"), "{text}");
        assert!(lines[1].starts_with("cb_1  ab12   dispatching"), "{text}");
        assert_eq!(
            table(&claim),
            "id      cb_1\nstatus  dispatching\ntoken   ab12"
        );
    }

    #[test]
    fn records_are_key_value_lines() {
        let text = table(&json!({"imported": 2, "ids": ["cb_1", "cb_2"]}));
        assert_eq!(text, "imported  2\nids       cb_1 cb_2");
    }

    #[test]
    fn a_policys_windows_are_shown_one_a_line_in_the_flags_shorthand() {
        let policy = json!({
            "timezone": "America/New_York",
            "windows": [
                {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "21:00"},
                {"days": ["sat"], "start": "10:00", "end": "14:00"}
            ],
            "max_attempts": 3,
            "retry_intervals": ["2h", "1d"],
            "retry_on": ["no_answer", "busy"]
        });
        assert_eq!(
            table(&policy),
            "timezone         America/New_York\n\
             windows          mon-fri 08:00-21:00\n\
             \x20                sat 10:00-14:00\n\
             max_attempts     3\n\
             retry_intervals  2h 1d\n\
             retry_on         no_answer busy"
        );
        let any_time = json!({"timezone": "UTC", "windows": [], "max_attempts": 1, "retry_intervals": ["1h"], "retry_on": []});
        assert!(table(&any_time).contains("windows          any time\n"));
    }
}
