//! Checking a document against the openAPIV3Schema of Sluice's generated
//! CRDs, offline: types, required and unknown fields (the API server
//! rejects unknown fields under kubectl's default strict validation),
//! enums, lengths, item counts, bounds and patterns.
//!
//! and the `x-kubernetes-validations` CEL rules ([`super::cel_rules`]).

use serde_json::Value;

use super::cel_rules::Rules;
use super::locate::{FieldPath, Seg};

/// A schema violation at a path.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub path: FieldPath,
    pub message: String,
}

/// Check `value` against `schema`.
pub fn check(value: &Value, schema: &Value) -> Vec<Violation> {
    let mut out = Vec::new();
    walk(
        value,
        schema,
        &FieldPath::default(),
        &Rules::new(),
        &mut out,
    );
    out
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn walk(value: &Value, schema: &Value, path: &FieldPath, rules: &Rules, out: &mut Vec<Violation>) {
    let mut fail = |message: String| {
        out.push(Violation {
            path: path.clone(),
            message,
        })
    };
    // kubectl and the API server drop nulls of optional fields.
    if value.is_null() {
        return;
    }
    let actual = type_name(value);
    // An int-or-string field has no `type`, but its rules and bounds still apply.
    if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        if !matches!(value, Value::String(_)) && actual != "integer" {
            fail(format!("must be an integer or a string, not {actual}"));
            return;
        }
    } else if let Some(wanted) = schema.get("type").and_then(Value::as_str) {
        let fits = wanted == actual || (wanted == "number" && actual == "integer");
        if !fits {
            fail(format!(
                "must be {} {wanted}, not {actual}",
                article(wanted)
            ));
            return;
        }
    }
    for rule in schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(text) = rule.get("rule").and_then(Value::as_str) else {
            continue;
        };
        if rules.holds(text, value) == Some(false) {
            let message = rule.get("message").and_then(Value::as_str);
            let shown = match (value, message) {
                (Value::String(_) | Value::Number(_) | Value::Bool(_), Some(m)) => {
                    format!("{value}: {m}")
                }
                (_, Some(m)) => m.to_string(),
                (_, None) => format!("fails the rule {text}"),
            };
            fail(shown);
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let names: Vec<String> = allowed.iter().map(|v| v.to_string()).collect();
        fail(format!("{value} is not one of {}", names.join(", ")));
    }
    match value {
        Value::Object(object) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let open =
                schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for name in required.iter().filter_map(Value::as_str) {
                    if object.get(name).is_none_or(Value::is_null) {
                        fail(format!("missing required field {name:?}"));
                    }
                }
            }
            for (key, child) in object {
                let child_path = path.key(key);
                match (properties.and_then(|p| p.get(key)), additional) {
                    (Some(sub), _) => walk(child, sub, &child_path, rules, out),
                    (None, Some(sub)) if sub.is_object() => {
                        walk(child, sub, &child_path, rules, out)
                    }
                    (None, _) if open || (properties.is_none() && additional.is_none()) => {}
                    (None, _) => out.push(Violation {
                        path: child_path,
                        message: format!("unknown field {key:?}"),
                    }),
                }
            }
        }
        Value::Array(items) => {
            bound(schema, "maxItems", items.len(), "items", &mut fail, true);
            bound(schema, "minItems", items.len(), "items", &mut fail, false);
            if let Some(sub) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    walk(item, sub, &path.join(&[Seg::Index(i)]), rules, out);
                }
            }
        }
        Value::String(text) => {
            let length = text.chars().count();
            bound(schema, "maxLength", length, "characters", &mut fail, true);
            bound(schema, "minLength", length, "characters", &mut fail, false);
            if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
                && regex::Regex::new(pattern).is_ok_and(|re| !re.is_match(text))
            {
                fail(format!("{text:?} does not match the pattern {pattern}"));
            }
        }
        Value::Number(n) => {
            let n = n.as_f64().unwrap_or(0.0);
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                && n < min
            {
                fail(format!("{n} is below the minimum {min}"));
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                && n > max
            {
                fail(format!("{n} is above the maximum {max}"));
            }
        }
        _ => {}
    }
}

fn article(type_name: &str) -> &'static str {
    if type_name.starts_with(['a', 'i', 'o']) {
        "an"
    } else {
        "a"
    }
}

fn bound(
    schema: &Value,
    keyword: &str,
    actual: usize,
    unit: &str,
    fail: &mut impl FnMut(String),
    is_max: bool,
) {
    let Some(limit) = schema.get(keyword).and_then(Value::as_u64) else {
        return;
    };
    let actual = actual as u64;
    if is_max && actual > limit {
        fail(format!("has {actual} {unit}, at most {limit} allowed"));
    } else if !is_max && actual < limit {
        fail(format!("has {actual} {unit}, at least {limit} needed"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn violations_name_the_path_and_what_is_wrong() {
        let schema = json!({"type": "object", "required": ["spec"], "properties": {
            "spec": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string", "maxLength": 3, "pattern": "^[a-z]+$"},
                "replicas": {"type": "integer", "minimum": 0},
                "surge": {"x-kubernetes-int-or-string": true},
                "kind": {"type": "string", "enum": ["A", "B"]},
                "steps": {"type": "array", "maxItems": 1, "items": {"type": "object", "properties": {"w": {"type": "integer"}}}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            }}
        }});
        let value = json!({"spec": {
            "name": "Webby", "replicas": -1, "surge": "25%", "kind": "C",
            "steps": [{"w": "x"}, {"w": 2, "extra": 1}],
            "labels": {"a": 1}, "free": {"any": {"thing": 1}}, "typo": true
        }});
        let found: Vec<(String, String)> = check(&value, &schema)
            .into_iter()
            .map(|v| (v.path.to_string(), v.message))
            .collect();
        let expected = [
            ("spec.free", None),
            ("spec.kind", Some("\"C\" is not one of \"A\", \"B\"")),
            ("spec.labels.a", Some("must be a string, not integer")),
            ("spec.name", Some("has 5 characters, at most 3 allowed")),
            (
                "spec.name",
                Some("\"Webby\" does not match the pattern ^[a-z]+$"),
            ),
            ("spec.replicas", Some("-1 is below the minimum 0")),
            ("spec.steps", Some("has 2 items, at most 1 allowed")),
            ("spec.steps[0].w", Some("must be an integer, not string")),
            ("spec.steps[1].extra", Some("unknown field \"extra\"")),
            ("spec.typo", Some("unknown field \"typo\"")),
        ];
        for (path, message) in expected {
            let hit = found
                .iter()
                .any(|(p, m)| p == path && message.is_none_or(|want| m == want));
            assert_eq!(hit, message.is_some(), "{path} {message:?} in {found:#?}");
        }
        assert_eq!(found.len(), 9, "{found:#?}");
        let duration = json!({"type": "string", "x-kubernetes-validations": [
            {"rule": "self != '' && self.matches('^[0-9]+s$')", "message": "duration must look like 30s, 5m or 1h30m"}
        ]});
        assert!(check(&json!("90s"), &duration).is_empty());
        let long = check(&json!("1 minute"), &duration);
        assert_eq!(
            long[0].message,
            "\"1 minute\": duration must look like 30s, 5m or 1h30m"
        );
        // Integer-or-string durations: their rules apply to both forms.
        let seconds_or_text = json!({"x-kubernetes-int-or-string": true, "x-kubernetes-validations": [
            {"rule": "type(self) == int ? self >= 0 : self.matches('^[0-9]+s$')", "message": "bad duration"}
        ]});
        assert!(check(&json!(30), &seconds_or_text).is_empty());
        assert!(check(&json!("30s"), &seconds_or_text).is_empty());
        assert_eq!(
            check(&json!(-5), &seconds_or_text)[0].message,
            "-5: bad duration"
        );
        assert_eq!(
            check(&json!("1 minute"), &seconds_or_text)[0].message,
            "\"1 minute\": bad duration"
        );
        assert_eq!(
            check(&json!(1.5), &seconds_or_text)[0].message,
            "must be an integer or a string, not number"
        );
        let missing = check(&json!({"spec": {}}), &schema);
        assert_eq!(missing[0].message, "missing required field \"name\"");
        assert_eq!(
            check(&json!({}), &schema)[0].message,
            "missing required field \"spec\""
        );
    }
}
