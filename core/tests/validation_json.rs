//! The input rules of metadata and pipeline_config: JSON objects of at
//! most 64 KiB and 32 levels. A bad one is a VALIDATION_ERROR naming its
//! field, and writes nothing.

mod common;

use callback_store::{validate, ErrorCode, JsonObject, NewCallback};
use common::refused::{assert_refused, fixture, nested, object, with};
use serde_json::{json, Value};

const KIB_64: usize = 64 * 1024;

type JsonSetter = fn(&mut NewCallback, JsonObject);

const JSON_FIELDS: [(&str, JsonSetter); 2] = [
    ("metadata", |n, v| n.metadata = v),
    ("pipeline_config", |n, v| n.pipeline_config = v),
];

/// `{"k":"xx…"}` serialized to exactly `bytes` bytes.
fn json_of_size(bytes: usize) -> JsonObject {
    let value = object(json!({ "k": "x".repeat(bytes - r#"{"k":""}"#.len()) }));
    assert_eq!(serde_json::to_string(&value).unwrap().len(), bytes);
    value
}

#[test]
fn metadata_and_pipeline_config_are_at_most_64_kib_as_json() {
    let f = fixture();
    for (field, set) in JSON_FIELDS {
        assert_refused(&f.store, field, "64 KiB + 1 byte", || {
            f.org.create(with(|n| set(n, json_of_size(KIB_64 + 1))))
        });
        let exactly = json_of_size(KIB_64);
        let created = f.org.create(with(|n| set(n, exactly.clone()))).unwrap();
        let stored = serde_json::to_value(f.org.get(&created.id).unwrap()).unwrap();
        assert_eq!(
            stored[field],
            Value::Object(exactly),
            "{field}: 64 KiB accepted"
        );
    }
}

#[test]
fn metadata_and_pipeline_config_nest_at_most_32_levels() {
    let f = fixture();
    assert_eq!(validate::MAX_JSON_DEPTH, 32);
    for (field, set) in JSON_FIELDS {
        for arrays in [false, true] {
            let case = if arrays {
                "33 levels of arrays"
            } else {
                "33 levels"
            };
            assert_refused(&f.store, field, case, || {
                f.org.create(with(|n| set(n, nested(33, arrays))))
            });
            assert_refused(&f.store, field, "1000 levels", || {
                f.org.create(with(|n| set(n, nested(1000, arrays))))
            });
            let created = f.org.create(with(|n| set(n, nested(32, arrays))));
            assert!(created.is_ok(), "{field}: 32 levels refused: {created:?}");
        }
    }
}

#[test]
fn parse_json_object_refuses_arrays_scalars_null_and_malformed_text() {
    for text in [
        "[]", "[1, 2]", "1", "1.5", "\"text\"", "true", "null", "", "{", "{} {}", "{'a': 1}",
    ] {
        let err = validate::parse_json_object("metadata", text).unwrap_err();
        assert_eq!(err.code(), ErrorCode::ValidationError, "{text:?}");
        assert!(err.to_string().starts_with("metadata: "), "{text:?}: {err}");
    }
    let parsed = validate::parse_json_object("metadata", r#"{"b": [1], "a": null}"#).unwrap();
    assert_eq!(Value::Object(parsed), json!({"b": [1], "a": null}));
    assert!(validate::parse_json_object("metadata", "{}")
        .unwrap()
        .is_empty());
}
