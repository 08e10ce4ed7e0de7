//! `stats`: the queue at a glance, as `GET /v1/stats` answers it: one
//! organization's counts of every status, due backlog and oldest due
//! callback, or with `--all` every organization's.

use callback_store::{Error, Store};
use serde_json::{json, Value};

use crate::Global;

/// The stats as the API's JSON: one organization's object, or with `all`
/// `{"organizations": [...]}`.
pub fn run(store: &Store, global: &Global, all: bool) -> Result<Value, Error> {
    let now = store.now();
    let value = if all {
        json!({"organizations": store.stats(now)?})
    } else {
        serde_json::to_value(crate::commands::organization(store, global)?.stats(now)?).map_err(
            |e| Error::storage(format!("the stats cannot be shown as JSON ({e})"), false),
        )?
    };
    Ok(value)
}

/// The columns of a stats table: the organization, each status, the backlog.
const COLUMNS: [&str; 8] = [
    "organization_id",
    "scheduled",
    "dispatching",
    "dispatched",
    "cancelled",
    "failed",
    "due",
    "oldest_due_at",
];

/// A stats answer (one organization's, or `organizations`) as rows for the
/// table: its counts side by side with the backlog. None for anything else.
pub fn rows(value: &Value) -> Option<(Vec<Value>, &'static [&'static str])> {
    let flat = |stats: &Value| {
        let mut row = stats["counts"].as_object().cloned().unwrap_or_default();
        for key in ["organization_id", "due", "oldest_due_at"] {
            row.insert(key.to_owned(), stats[key].clone());
        }
        Value::Object(row)
    };
    if let Some(organizations) = value.get("organizations").and_then(Value::as_array) {
        return Some((organizations.iter().map(flat).collect(), &COLUMNS));
    }
    (value.get("counts").is_some() && value.get("due").is_some())
        .then(|| (vec![flat(value)], &COLUMNS[..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stats_table_shows_each_status_and_the_backlog_in_one_row_per_organization() {
        let one = json!({"organization_id": "org_a", "counts": {"scheduled": 2, "dispatching": 0,
            "dispatched": 5, "cancelled": 1, "failed": 0}, "due": 1, "oldest_due_at": "2030-01-01T00:00:00Z"});
        let text = crate::output::table(&json!({"organizations": [one.clone()]}));
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("ORGANIZATION_ID  SCHEDULED  DISPATCHING"),
            "{text}"
        );
        assert!(lines[0].ends_with("DUE  OLDEST_DUE_AT"), "{text}");
        assert!(
            lines[1].starts_with("org_a            2          0"),
            "{text}"
        );
        assert!(lines[1].ends_with("1    2030-01-01T00:00:00Z"), "{text}");
        assert_eq!(crate::output::table(&one), text);
        assert!(rows(&json!({"imported": 2})).is_none());
    }
}
