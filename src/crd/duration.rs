//! Durations in a spec: a string such as `30s`, `5m`, `1h30m`, or whole
//! seconds as an integer (`duration: 10`), the way Argo Rollouts manifests
//! write them.
//!
//! The CRD field is `x-kubernetes-int-or-string`, with CEL rules that check
//! each form at admission ([`super::limits`]). The type reads any integer and
//! any string and writes back what it read, so an object stored before the
//! rules existed still reaches the engine, which refuses a negative number or
//! an unreadable text with a message naming the field (an `InvalidSpec`
//! condition or a failed AnalysisRun, never a watch that stops).

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::limits::{describe, parse_duration};

/// Longest duration string: `1d12h30m15s250ms` is 16 characters.
const MAX_TEXT: usize = 32;

/// A duration as written in a spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DurationOrSeconds {
    /// An integer: whole seconds (negative only in objects that bypassed admission).
    Seconds(i64),
    /// A string such as `30s`, `5m`, `1h30m`, `2d`.
    Text(String),
}

impl DurationOrSeconds {
    /// The duration, if it is one and at most `max`; the error says why not
    /// (the caller adds the field's name).
    pub fn within(&self, max: Duration) -> Result<Duration, String> {
        match self {
            DurationOrSeconds::Seconds(seconds) => {
                let Ok(whole) = u64::try_from(*seconds) else {
                    return Err(format!("{seconds} must not be negative"));
                };
                let duration = Duration::from_secs(whole);
                if duration > max {
                    return Err(format!("{self} must be at most {}", describe(max)));
                }
                Ok(duration)
            }
            DurationOrSeconds::Text(text) => parse_duration(text, max),
        }
    }
}

impl fmt::Display for DurationOrSeconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationOrSeconds::Seconds(seconds) => write!(f, "{seconds} (seconds)"),
            DurationOrSeconds::Text(text) => write!(f, "{text:?}"),
        }
    }
}

impl From<&str> for DurationOrSeconds {
    fn from(text: &str) -> Self {
        DurationOrSeconds::Text(text.into())
    }
}

impl From<String> for DurationOrSeconds {
    fn from(text: String) -> Self {
        DurationOrSeconds::Text(text)
    }
}

impl From<i64> for DurationOrSeconds {
    fn from(seconds: i64) -> Self {
        DurationOrSeconds::Seconds(seconds)
    }
}

impl Serialize for DurationOrSeconds {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            DurationOrSeconds::Seconds(seconds) => serializer.serialize_i64(*seconds),
            DurationOrSeconds::Text(text) => serializer.serialize_str(text),
        }
    }
}

impl<'de> Deserialize<'de> for DurationOrSeconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;

        impl Visitor<'_> for DurationVisitor {
            type Value = DurationOrSeconds;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"30s\" or \"5m\", or whole seconds such as 30")
            }

            fn visit_i64<E: de::Error>(self, seconds: i64) -> Result<Self::Value, E> {
                Ok(DurationOrSeconds::Seconds(seconds))
            }

            fn visit_u64<E: de::Error>(self, seconds: u64) -> Result<Self::Value, E> {
                i64::try_from(seconds)
                    .map(DurationOrSeconds::Seconds)
                    .map_err(|_| E::custom(format!("{seconds} seconds is too long a duration")))
            }

            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
                Err(E::custom(format!(
                    "duration {value} is not whole seconds; write e.g. 30 or \"1500ms\""
                )))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(DurationOrSeconds::Text(text.into()))
            }
        }

        deserializer.deserialize_any(DurationVisitor)
    }
}

impl JsonSchema for DurationOrSeconds {
    fn schema_name() -> Cow<'static, str> {
        "DurationOrSeconds".into()
    }

    fn inline_schema() -> bool {
        true
    }

    /// `maxLength` bounds the string form, and so the cost the API server
    /// estimates for the CEL rules on it (without it, a rule on a list item
    /// exceeds the CRD's budget).
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "x-kubernetes-int-or-string": true, "maxLength": MAX_TEXT })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn read(json: &str) -> Result<DurationOrSeconds, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn integers_and_strings_both_read_and_round_trip_unchanged() {
        for (json, seconds) in [
            ("10", 10),
            ("0", 0),
            ("\"30s\"", 30),
            ("\"5m\"", 300),
            ("\"1h30m\"", 5400),
            ("\"1d\"", 86400),
        ] {
            let value = read(json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(
                value.within(DAY),
                Ok(Duration::from_secs(seconds)),
                "{json}"
            );
            let written = serde_json::to_string(&value).unwrap_or_default();
            assert_eq!(written, json, "written back as it was read");
        }
        let yaml: DurationOrSeconds = serde_yaml_ng::from_str("30").unwrap_or("x".into());
        assert_eq!(yaml, DurationOrSeconds::Seconds(30), "YAML `duration: 30`");
        let yaml: DurationOrSeconds = serde_yaml_ng::from_str("30s").unwrap_or(1.into());
        assert_eq!(yaml, DurationOrSeconds::Text("30s".into()));
    }

    #[test]
    fn negatives_garbage_and_excess_get_a_message_that_says_what_is_wrong() {
        let err = |json: &str| match read(json) {
            Ok(value) => value.within(DAY).expect_err(json),
            Err(e) => e,
        };
        assert_eq!(err("-5"), "-5 must not be negative");
        assert!(
            err("1.5").contains("duration 1.5 is not whole seconds"),
            "{}",
            err("1.5")
        );
        assert!(
            err("true").contains("a duration such as \"30s\""),
            "{}",
            err("true")
        );
        assert!(
            err("{}").contains("or whole seconds such as 30"),
            "{}",
            err("{}")
        );
        assert!(
            err("\"soon\"").starts_with("\"soon\": "),
            "{}",
            err("\"soon\"")
        );
        assert!(
            err("\"30\"").contains("or whole seconds as a number"),
            "{}",
            err("\"30\"")
        );
        assert_eq!(err("86401"), "86401 (seconds) must be at most 24h");
        assert_eq!(err("\"25h\""), "\"25h\" must be at most 24h");
        assert!(err("18446744073709551615").contains("too long a duration"));
    }

    #[test]
    fn the_schema_is_int_or_string() {
        let schema = schemars::schema_for!(DurationOrSeconds);
        assert_eq!(
            schema.get("x-kubernetes-int-or-string"),
            Some(&serde_json::Value::Bool(true))
        );
        assert_eq!(schema.get("maxLength"), Some(&serde_json::json!(32)));
    }
}
