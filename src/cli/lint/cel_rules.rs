//! The CRDs' `x-kubernetes-validations` CEL rules, evaluated offline with the
//! `cel` crate (the standard library and the strings extension, as the API
//! server has them).
//!
//! A rule that cannot be evaluated here, because it calls what this build
//! lacks (`duration()`: the crate's `chrono` feature is left out for its
//! time-zone database) or meets a value it cannot read, counts as passing:
//! lint only reports what it can show, and the API server still checks it.

use std::sync::Arc;

use serde_json::Value;

/// The environment rules are compiled in.
pub struct Rules {
    env: Arc<cel::Env>,
}

impl Rules {
    pub fn new() -> Rules {
        let mut env = cel::Env::stdlib();
        // Only fails on a conflicting declaration, which the stdlib has none of.
        let _ = env.add_extension(cel::extensions::strings);
        Rules { env: Arc::new(env) }
    }

    /// `Some(false)` when `rule` fails for `value` as `self`; `None` when it
    /// cannot be evaluated offline.
    pub fn holds(&self, rule: &str, value: &Value) -> Option<bool> {
        let program = self.env.compile(rule).ok()?;
        let value = cel::to_value(value).ok()?;
        // The crate is young: a panic in it must not end the lint.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut context = cel::Context::with_env(self.env.clone());
            context.add_variable_from_value("self", value);
            program.execute(&context)
        }))
        .ok()?;
        match outcome {
            Ok(cel::Value::Bool(holds)) => Some(holds),
            _ => None,
        }
    }
}

impl Default for Rules {
    fn default() -> Self {
        Rules::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_crd_rules_evaluate_as_the_api_server_does() {
        let rules = Rules::new();
        let one_of =
            "[has(self.setWeight), has(self.pause), has(self.analysis)].filter(x, x).size() == 1";
        let duration = serde_json::to_value(crate::crd::limits::duration_syntax())
            .ok()
            .and_then(|r| r.get("rule")?.as_str().map(String::from))
            .unwrap_or_default();
        // (rule, self, holds)
        let cases = [
            (one_of, json!({"setWeight": 10}), Some(true)),
            (one_of, json!({"setWeight": 10, "pause": {}}), Some(false)),
            (one_of, json!({}), Some(false)),
            ("self >= 0 && self <= 100", json!(101), Some(false)),
            (
                "size(self.metadata.name) <= 63",
                json!({"metadata": {"name": "web"}}),
                Some(true),
            ),
            (
                "has(self.repository) != has(self.repositoryRef)",
                json!({"path": "x"}),
                Some(false),
            ),
            (duration.as_str(), json!("1h30m"), Some(true)),
            (duration.as_str(), json!("1 minute"), Some(false)),
            // Needs `duration()`: not evaluated here.
            ("duration(self).getSeconds() <= 60", json!("2m"), None),
            ("this is not CEL (", json!(1), None),
        ];
        for (rule, value, expected) in cases {
            assert_eq!(rules.holds(rule, &value), expected, "{rule} on {value}");
        }
    }
}
