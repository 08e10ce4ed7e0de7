//! `JsonObjectText`: a callback's `metadata` or `pipeline_config` as the
//! JSON text the store keeps, carried from the database to an HTTP answer
//! (or a binding) without being parsed, and parsed only when a caller asks
//! for a map (docs/decisions.md, "Lazy JSON").

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::model::JsonObject;
use crate::validate;

/// A JSON object as the store's text: serde_json's compact serialization of
/// the object (no whitespace, keys in their order), which satisfies the
/// store's rules (an object, at most 64 KiB, at most 32 levels deep).
///
/// Built only through those rules ([`JsonObjectText::from_map`],
/// [`JsonObjectText::parse`], `TryFrom`, `Deserialize`), or by the store
/// from a column it wrote itself. Serializing it with serde_json writes the
/// text as it is, byte for byte: a record read from the database reaches an
/// HTTP answer without its JSON being parsed and written again.
///
/// Two values are equal when their texts are: the text is canonical (no
/// whitespace, one way to write each value), so equal texts are exactly
/// equal objects whose keys come in the same order, which is what the API
/// shows (key order is kept; an answer with another order is another
/// answer).
#[derive(Clone)]
pub struct JsonObjectText(Box<RawValue>);

impl JsonObjectText {
    /// `{}`, the value of a field not given.
    pub fn empty() -> Self {
        // `from_string` accepts any valid JSON, so "{}" always; its error
        // branch (a null) is never taken.
        JsonObjectText(RawValue::from_string("{}".to_owned()).unwrap_or_default())
    }

    /// The object, checked against the store's rules; `field` names it in
    /// the VALIDATION_ERROR.
    pub fn from_map(field: &str, map: &JsonObject) -> Result<Self> {
        let text = validate::json_object(field, map)?;
        // Text serde_json wrote from a map is valid JSON; `RawValue` has no
        // public constructor that skips its syntax check, which costs far
        // less than the rules that produced the text. Its error is reported
        // like validate's own serialization error, never hidden.
        RawValue::from_string(text)
            .map(JsonObjectText)
            .map_err(|e| Error::validation(field, format!("must be serializable JSON ({e})")))
    }

    /// JSON text that must be an object (arrays, scalars and null are
    /// refused), checked against the store's rules and rewritten in the
    /// store's compact form: `{"a": 1}` becomes `{"a":1}`, so that what the
    /// API answers does not depend on how the text was spaced.
    pub fn parse(field: &str, text: &str) -> Result<Self> {
        JsonObjectText::from_map(field, &validate::parse_json_object(field, text)?)
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The JSON text, without copying it.
    pub fn into_string(self) -> String {
        Box::<str>::from(self.0).into_string()
    }

    /// The object as a map (a parse on every call: keep the map if it is
    /// read more than once). Only a value read from a database column
    /// changed by hand can fail, as a STORAGE_ERROR.
    pub fn to_map(&self) -> Result<JsonObject> {
        serde_json::from_str(self.as_str()).map_err(|e| {
            Error::storage(
                format!("a stored JSON object cannot be read back ({e}): was the column changed outside the store?"),
                false,
            )
        })
    }

    /// A column the store wrote. It was checked on the way in, so it is not
    /// parsed into a map here; its syntax is still checked (a scan, no
    /// allocation beyond the text), and its first byte, so that a column
    /// damaged by hand is a STORAGE_ERROR when read rather than malformed
    /// JSON inside an HTTP answer. The error is the reason, for the
    /// backend's "cannot read column i" error.
    pub(crate) fn from_stored(text: String) -> std::result::Result<Self, String> {
        if !text.starts_with('{') {
            return Err(format!(
                "not a JSON object: {:?}",
                text.chars().take(40).collect::<String>()
            ));
        }
        RawValue::from_string(text)
            .map(JsonObjectText)
            .map_err(|e| format!("not valid JSON ({e})"))
    }
}

impl Default for JsonObjectText {
    fn default() -> Self {
        JsonObjectText::empty()
    }
}

impl PartialEq for JsonObjectText {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for JsonObjectText {}

impl std::hash::Hash for JsonObjectText {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

/// Compares with a map as the store would write it: `cb.metadata == map`
/// reads as it did when the field was a map.
impl PartialEq<JsonObject> for JsonObjectText {
    fn eq(&self, other: &JsonObject) -> bool {
        serde_json::to_string(other).is_ok_and(|text| text == self.as_str())
    }
}

impl fmt::Debug for JsonObjectText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("JsonObjectText")
            .field(&self.as_str())
            .finish()
    }
}

impl fmt::Display for JsonObjectText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for JsonObjectText {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

/// Errors name the value `json_object`: a conversion does not know which
/// field it fills; use `from_map` or `parse` to name it.
const UNNAMED: &str = "json_object";

impl TryFrom<JsonObject> for JsonObjectText {
    type Error = Error;
    fn try_from(map: JsonObject) -> Result<Self> {
        JsonObjectText::from_map(UNNAMED, &map)
    }
}

impl TryFrom<&JsonObject> for JsonObjectText {
    type Error = Error;
    fn try_from(map: &JsonObject) -> Result<Self> {
        JsonObjectText::from_map(UNNAMED, map)
    }
}

impl TryFrom<&str> for JsonObjectText {
    type Error = Error;
    fn try_from(text: &str) -> Result<Self> {
        JsonObjectText::parse(UNNAMED, text)
    }
}

impl TryFrom<serde_json::Value> for JsonObjectText {
    type Error = Error;
    fn try_from(value: serde_json::Value) -> Result<Self> {
        match value {
            serde_json::Value::Object(map) => JsonObjectText::from_map(UNNAMED, &map),
            other => Err(Error::validation(
                UNNAMED,
                format!("must be a JSON object, got {}", validate::json_kind(&other)),
            )),
        }
    }
}

/// With serde_json (the API's format, and `serde_json::to_value`), the text
/// as it is. Other serde formats receive serde_json's raw-value token
/// instead of an object: convert with `to_map` first for those.
impl Serialize for JsonObjectText {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// Read as a map and put through the store's rules: a record deserialized
/// from elsewhere holds only what the store would have written.
impl<'de> Deserialize<'de> for JsonObjectText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let map = JsonObject::deserialize(deserializer)?;
        JsonObjectText::from_map(UNNAMED, &map).map_err(serde::de::Error::custom)
    }
}
