//! The OpenAPI description: `openapi.yaml` at the repository root, compiled
//! in, and served as JSON (converted once, on first use, by yaml_serde; the
//! key order of the YAML is kept).

use std::sync::LazyLock;

/// The committed description, as written.
pub const YAML: &str = include_str!("../../openapi.yaml");

static JSON: LazyLock<Result<String, String>> = LazyLock::new(|| {
    let value: serde_json::Value =
        yaml_serde::from_str(YAML).map_err(|e| format!("openapi.yaml does not parse: {e}"))?;
    serde_json::to_string(&value).map_err(|e| format!("openapi.yaml is not JSON-like: {e}"))
});

/// The description as JSON text (what `GET /openapi.json` answers).
pub fn json() -> Result<&'static str, String> {
    JSON.as_deref().map_err(Clone::clone)
}

/// The description as a JSON value.
pub fn value() -> Result<serde_json::Value, String> {
    serde_json::from_str(json()?).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_yaml_converts_to_openapi_3_1_json() {
        let spec = super::value().unwrap();
        assert_eq!(spec["openapi"].as_str().unwrap().get(..3), Some("3.1"));
        assert!(spec["paths"]["/v1/callbacks"]["get"].is_object());
    }
}
