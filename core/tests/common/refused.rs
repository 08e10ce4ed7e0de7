//! Refusals of bad input: the fixture and the check shared by the
//! validation tests.

use std::fmt::Debug;

use callback_store::{
    Callback, Error, ErrorCode, JsonObject, ListQuery, NewCallback, Organization, Store,
};
use serde_json::{json, Value};

use super::{new_callback, row_count, store};

pub struct Fixture {
    pub store: Store,
    pub org: Organization,
    /// A scheduled callback due at +60 min, so counts start above zero.
    pub existing: Callback,
}

pub fn fixture() -> Fixture {
    let (store, _clock) = store();
    let org = store.organization("org_a").unwrap();
    let existing = org.create(new_callback(60)).unwrap();
    Fixture {
        store,
        org,
        existing,
    }
}

pub fn rows(store: &Store) -> [i64; 3] {
    ["callbacks", "callback_events", "api_keys"].map(|t| row_count(store, t))
}

/// `op` fails with VALIDATION_ERROR, its message starts with `field:`, and
/// no row of `callbacks`, `callback_events` or `api_keys` was written.
pub fn assert_refused<T: Debug>(
    store: &Store,
    field: &str,
    case: &str,
    op: impl FnOnce() -> Result<T, Error>,
) {
    let before = rows(store);
    let err = match op() {
        Ok(value) => panic!("{field} {case}: accepted: {value:?}"),
        Err(err) => err,
    };
    assert_eq!(
        err.code(),
        ErrorCode::ValidationError,
        "{field} {case}: {err}"
    );
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("{field}: ")),
        "{case}: message does not start with {field:?}: {message}"
    );
    assert!(
        matches!(&err, Error::Validation { field: f, .. } if f == field),
        "{case}: {err:?}"
    );
    assert_eq!(rows(store), before, "{field} {case}: rows written");
}

pub fn with(set: impl FnOnce(&mut NewCallback)) -> NewCallback {
    let mut new = new_callback(60);
    set(&mut new);
    new
}

pub fn query(set: impl FnOnce(&mut ListQuery)) -> ListQuery {
    let mut query = ListQuery::default();
    set(&mut query);
    query
}

pub fn object(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// An object `levels` containers deep, counting itself: the innermost
/// container is an empty object (or array), so no scalar adds a level.
pub fn nested(levels: usize, arrays: bool) -> JsonObject {
    let mut value = if arrays { json!([]) } else { json!({}) };
    for _ in 2..levels {
        value = if arrays {
            json!([value])
        } else {
            json!({ "a": value })
        };
    }
    object(json!({ "a": value }))
}
