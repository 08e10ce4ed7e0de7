//! `JsonObjectText`: metadata and pipeline_config kept as the stored JSON
//! text (docs/decisions.md, "Lazy JSON"). What an answer carries must be
//! byte for byte what it carried when records held maps; the text is built
//! only through the store's rules; a column damaged by hand is a
//! STORAGE_ERROR, never malformed JSON in an answer.

mod common;

use callback_store::{
    Callback, ErrorCode, JsonObject, JsonObjectText, ListQuery, NewCallback, Order,
};
use common::{execute, new_callback, store};
use serde_json::{json, Value};

fn object(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// Objects whose text could come out differently if it were written by
/// anything but serde_json's compact serializer of the map: key order,
/// escapes, non-ASCII text, the edges of integers and floats, nesting.
fn tricky_objects() -> Vec<JsonObject> {
    vec![
        JsonObject::new(),
        object(json!({"zeta": 1, "alpha": 2, "Mid": 3, "": 4})),
        object(json!({
            "quote\"back\\slash": "tab\tnew\nline\u{1}\u{1f}",
            "html": "</script><!-- & -->",
            "separators": "\u{2028}\u{2029}",
            "unicode": "é 東京 🎉",
        })),
        object(json!({
            "ints": [0, -1, i64::MIN, u64::MAX],
            "floats": [0.1, -0.0, 1e20, 1.5e-7, 123456.789, f64::MAX, f64::MIN_POSITIVE],
            "whole_float": 2.0,
        })),
        object(json!({"a": {"b": [{"c": [null, true, false, {}, []]}]}})),
    ]
}

/// What an answer was before the record kept text: the record with its
/// JSON parsed into maps, written by serde_json.
fn as_maps(callback: &Callback) -> String {
    let value: Value = serde_json::to_value(callback).unwrap();
    serde_json::to_string(&value).unwrap()
}

#[test]
fn stored_json_is_answered_byte_for_byte_as_the_map_serialized() {
    let (store, _) = store();
    let org = store.organization("org").unwrap();
    for metadata in tricky_objects() {
        let pipeline_config =
            object(json!({"voice": "alloy", "copy": Value::Object(metadata.clone())}));
        let created = org
            .create(NewCallback {
                metadata: metadata.clone(),
                pipeline_config: pipeline_config.clone(),
                ..new_callback(5)
            })
            .unwrap();
        let read = org.get(&created.id).unwrap();
        let listed = org.list(&ListQuery::default()).unwrap().callbacks.remove(0);
        assert_eq!(listed.id, created.id);
        let expected = serde_json::to_string(&metadata).unwrap();
        for (how, cb) in [("created", &created), ("read", &read), ("listed", &listed)] {
            assert_eq!(cb.metadata.as_str(), expected, "{how}");
            assert_eq!(
                cb.pipeline_config.as_str(),
                serde_json::to_string(&pipeline_config).unwrap(),
                "{how}"
            );
            assert_eq!(serde_json::to_string(cb).unwrap(), as_maps(cb), "{how}");
            assert_eq!(cb.metadata.to_map().unwrap(), metadata, "{how}");
        }
        assert_eq!(read, created);
        assert_eq!(listed, created);
    }
}

#[test]
fn text_given_with_spaces_or_escapes_is_stored_in_the_compact_form() {
    let spaced =
        JsonObjectText::parse("metadata", "{ \"b\" : 1 ,\n \"a\" : [ \"\\u00e9\" ] }").unwrap();
    assert_eq!(spaced.as_str(), r#"{"b":1,"a":["é"]}"#);
    let from_map =
        JsonObjectText::from_map("metadata", &object(json!({"b": 1, "a": ["é"]}))).unwrap();
    assert_eq!(spaced, from_map);
    // A key given twice keeps its last value, as the map does.
    let twice = JsonObjectText::try_from(r#"{"k":1,"k":2}"#).unwrap();
    assert_eq!(twice.as_str(), r#"{"k":2}"#);
    assert_eq!(JsonObjectText::default().as_str(), "{}");
    assert_eq!(
        JsonObjectText::empty(),
        JsonObjectText::try_from(JsonObject::new()).unwrap()
    );
}

#[test]
fn json_object_text_is_built_only_through_the_store_rules() {
    let deep = (0..40).fold(json!(1), |inner, _| json!([inner]));
    let big = json!({ "k": "x".repeat(64 * 1024) });
    for (text, rule) in [
        ("[]".to_owned(), "must be a JSON object, got an array"),
        ("null".to_owned(), "must be a JSON object, got null"),
        ("{".to_owned(), "must be a JSON object ("),
        (json!({ "deep": deep }).to_string(), "deeper than 32 levels"),
        (big.to_string(), "must be at most 65536 bytes"),
    ] {
        let err = JsonObjectText::parse("metadata", &text).unwrap_err();
        assert_eq!(err.code(), ErrorCode::ValidationError, "{text:.40}");
        assert!(err.to_string().starts_with("metadata: "), "{err}");
        assert!(err.to_string().contains(rule), "{err}");
        assert!(JsonObjectText::try_from(text.as_str()).is_err());
        // The same rules when a record is deserialized (serde names the
        // wrong kinds in its own words).
        let err = serde_json::from_str::<JsonObjectText>(&text).unwrap_err();
        if !rule.starts_with("must be a JSON object") {
            assert!(err.to_string().contains(rule), "{err}");
        }
    }
    let err = JsonObjectText::try_from(json!([1])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "json_object: must be a JSON object, got an array"
    );
    let ok: JsonObjectText = serde_json::from_str(r#" {"a" : 1} "#).unwrap();
    assert_eq!(ok.as_str(), r#"{"a":1}"#);
}

#[test]
fn equal_means_the_same_canonical_text_and_key_order_counts() {
    let ab = JsonObjectText::try_from(r#"{"a":1,"b":2}"#).unwrap();
    let ba = JsonObjectText::try_from(r#"{"b":2,"a":1}"#).unwrap();
    // The API keeps key order: these two answer different bytes.
    assert_ne!(ab, ba);
    assert_eq!(ab, JsonObjectText::try_from(" {\"a\":1, \"b\":2}").unwrap());
    assert_eq!(ab, object(json!({"a": 1, "b": 2})));
    assert_ne!(ab, object(json!({"a": 1, "b": 3})));
    assert_eq!(format!("{ab}"), r#"{"a":1,"b":2}"#);
    assert_eq!(format!("{ab:?}"), r#"JsonObjectText("{\"a\":1,\"b\":2}")"#);
}

#[test]
fn a_callback_record_deserializes_through_the_rules_and_serializes_back_unchanged() {
    let (store, _) = store();
    let org = store.organization("org").unwrap();
    let created = org
        .create(NewCallback {
            metadata: object(json!({"z": [1, 2.5, "é"], "a": null})),
            ..new_callback(5)
        })
        .unwrap();
    let text = serde_json::to_string(&created).unwrap();
    let back: Callback = serde_json::from_str(&text).unwrap();
    assert_eq!(back, created);
    assert_eq!(serde_json::to_string(&back).unwrap(), text);
    // A record whose metadata breaks the rules does not deserialize.
    let mut value: Value = serde_json::from_str(&text).unwrap();
    value["metadata"] = json!([1]);
    assert!(serde_json::from_value::<Callback>(value).is_err());
}

#[test]
fn a_json_column_damaged_by_hand_is_a_storage_error_when_read() {
    for damage in ["[1]", "not json", r#"{"a":"#, r#"{"a":1}trailing"#, ""] {
        let (store, _) = store();
        let org = store.organization("org").unwrap();
        let created = org.create(new_callback(5)).unwrap();
        let sql_text = damage.replace('\'', "''");
        execute(
            &store,
            &format!("UPDATE callbacks SET metadata = '{sql_text}'"),
        );
        let err = org.get(&created.id).unwrap_err();
        assert_eq!(err.code(), ErrorCode::StorageError, "{damage:?}: {err}");
        let err = org.list(&ListQuery::default()).unwrap_err();
        assert_eq!(err.code(), ErrorCode::StorageError, "{damage:?}: {err}");
        let err = org
            .list(&ListQuery {
                order: Order::ScheduledAsc,
                ..ListQuery::default()
            })
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::StorageError, "{damage:?}: {err}");
    }
}

#[test]
fn a_stored_object_that_scans_but_cannot_become_a_map_is_a_storage_error_when_parsed() {
    // Valid JSON syntax, so reading the row (a syntax scan) passes and an
    // answer carrying it is still well-formed JSON; only the map refuses a
    // number beyond f64.
    let (store, _) = store();
    let org = store.organization("org").unwrap();
    let created = org.create(new_callback(5)).unwrap();
    execute(&store, r#"UPDATE callbacks SET metadata = '{"n":1e400}'"#);
    let read = org.get(&created.id).unwrap();
    assert_eq!(read.metadata.as_str(), r#"{"n":1e400}"#);
    let err = read.metadata.to_map().unwrap_err();
    assert_eq!(err.code(), ErrorCode::StorageError);
    assert!(
        err.to_string().contains("changed outside the store"),
        "{err}"
    );
}
