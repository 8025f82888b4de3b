//! `-o json|yaml`: machine-readable output for `status`, `list` and `get`.
//!
//! `status` prints the live Rollout, `list` a kubectl-style `List` of live
//! Rollouts, and `get` the [`tree`](super::tree) summary, whose fields are
//! documented on its types.

use serde::Serialize;

/// Output formats besides the default text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Text for people (the default).
    Text,
    /// Pretty-printed JSON.
    Json,
    /// YAML.
    Yaml,
}

/// Why a value could not be printed as JSON or YAML.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot encode YAML: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
}

/// `value` as JSON or YAML text ending in a newline; `None` for `Format::Text`.
pub fn encode<T: Serialize>(value: &T, format: Format) -> Result<Option<String>, Error> {
    Ok(match format {
        Format::Text => None,
        Format::Json => Some(serde_json::to_string_pretty(value)? + "\n"),
        Format::Yaml => Some(serde_yaml_ng::to_string(value)?),
    })
}

/// A kubectl-style `List` around `items` (what `kubectl get -o json` prints for many objects).
pub fn list<T: Serialize>(items: &[T]) -> serde_json::Value {
    serde_json::json!({ "apiVersion": "v1", "kind": "List", "items": items })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_yaml_encode_the_same_value_and_text_encodes_nothing() {
        let value = list(&[serde_json::json!({"name": "web"})]);
        let json = encode(&value, Format::Json)
            .ok()
            .flatten()
            .unwrap_or_default();
        let yaml = encode(&value, Format::Yaml)
            .ok()
            .flatten()
            .unwrap_or_default();
        let from_json: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
        let from_yaml: serde_json::Value = serde_yaml_ng::from_str(&yaml).unwrap_or_default();
        assert_eq!(from_json, value);
        assert_eq!(from_yaml, value);
        assert!(json.ends_with('\n') && yaml.ends_with('\n'));
        assert!(matches!(encode(&value, Format::Text), Ok(None)));
    }
}
