//! What a conversion could not carry over, and the field-by-field bookkeeping
//! that guarantees nothing vanishes silently: every source object is read
//! through [`Fields`], which hands out the fields a converter understands and
//! reports whatever is left.

use serde_json::{Map, Value};

/// How much a finding matters to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Informational: nothing of the source's behaviour is lost (status,
    /// server-set metadata, a field rewritten on purpose).
    Note,
    /// Carried over, but a person must check or finish it (a condition Sluice
    /// may not accept, a Secret key to rename, a missing Deployment).
    Attention,
    /// Not carried over: the output behaves differently without it.
    Dropped,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Note => "note",
            Severity::Attention => "needs attention",
            Severity::Dropped => "not carried over",
        }
    }
}

/// One field (or document) and what happened to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Field path in the source document, e.g. `spec.strategy.canary.antiAffinity`.
    pub path: String,
    pub severity: Severity,
    pub reason: String,
}

/// Findings of one document.
#[derive(Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn add(&mut self, path: &str, severity: Severity, reason: impl Into<String>) {
        self.findings.push(Finding {
            path: path.to_string(),
            severity,
            reason: reason.into(),
        });
    }
    pub fn dropped(&mut self, path: &str, reason: impl Into<String>) {
        self.add(path, Severity::Dropped, reason);
    }
    pub fn attention(&mut self, path: &str, reason: impl Into<String>) {
        self.add(path, Severity::Attention, reason);
    }
    pub fn note(&mut self, path: &str, reason: impl Into<String>) {
        self.add(path, Severity::Note, reason);
    }
}

/// A JSON object read field by field. `take` hands a field out; `finish`
/// reports every field nobody took, with the reason from `known` when the
/// field is a documented one Sluice has no equivalent for.
pub struct Fields {
    map: Map<String, Value>,
    path: String,
}

impl Fields {
    /// Read `value` (an object) at `path`. A non-object is reported and read as empty.
    pub fn new(value: Value, path: &str, report: &mut Report) -> Fields {
        let map = match value {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => {
                report.dropped(path, format!("expected an object, found {other}"));
                Map::new()
            }
        };
        Fields {
            map,
            path: path.to_string(),
        }
    }

    /// The path of a child field, for reports.
    pub fn at(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key).filter(|v| !v.is_null())
    }

    /// A child object, read field by field (empty when absent).
    pub fn object(&mut self, key: &str, report: &mut Report) -> Fields {
        let path = self.at(key);
        Fields::new(self.take(key).unwrap_or(Value::Null), &path, report)
    }

    pub fn string(&mut self, key: &str, report: &mut Report) -> Option<String> {
        match self.take(key)? {
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            other => {
                report.dropped(&self.at(key), format!("expected a string, found {other}"));
                None
            }
        }
    }

    pub fn int(&mut self, key: &str, report: &mut Report) -> Option<i64> {
        let value = self.take(key)?;
        match value.as_i64() {
            Some(n) => Some(n),
            None => {
                report.dropped(
                    &self.at(key),
                    format!("{value} is not a whole number (Sluice has no templated integers)"),
                );
                None
            }
        }
    }

    pub fn list(&mut self, key: &str, report: &mut Report) -> Vec<Value> {
        match self.take(key) {
            None => Vec::new(),
            Some(Value::Array(items)) => items,
            Some(other) => {
                report.dropped(&self.at(key), format!("expected a list, found {other}"));
                Vec::new()
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Report every field not taken: with its documented reason, or as unknown.
    pub fn finish(self, report: &mut Report, known: &[(&str, &str)]) {
        for (key, _) in self.map.into_iter().filter(|(_, v)| !v.is_null()) {
            let path = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            match known.iter().find(|(name, _)| *name == key) {
                Some((_, reason)) => report.dropped(&path, *reason),
                None => report.dropped(
                    &path,
                    "unknown field: not in the documented format, and Sluice has no equivalent",
                ),
            }
        }
    }
}

/// A duration as Sluice writes it (`30s`, `5m`, `1h30m`): integers are
/// seconds (Argo's `pause.duration: 10`), Go-style strings in
/// `ms`/`s`/`m`/`h` pass as they are. Anything else is reported and kept.
pub fn duration(value: Value, path: &str, report: &mut Report) -> Option<String> {
    let text = match value {
        Value::Number(n) if n.as_u64().is_some() => return Some(format!("{n}s")),
        Value::String(s) => s.trim().to_string(),
        other => {
            report.dropped(path, format!("{other} is not a duration"));
            return None;
        }
    };
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
        return Some(format!("{text}s"));
    }
    if is_sluice_duration(&text) {
        return Some(text);
    }
    report.attention(
        path,
        format!(
            "duration {text:?} is not in Sluice's syntax (digits with ms, s, m, h or d, e.g. 30s, 1h30m); kept as it is, fix it before applying"
        ),
    );
    Some(text)
}

/// `^([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+$`, the pattern the CRDs enforce.
pub fn is_sluice_duration(text: &str) -> bool {
    let mut rest = text;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        if let Some(after) = rest.strip_prefix('.') {
            let frac = after
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after.len());
            if frac == 0 {
                return false;
            }
            rest = &after[frac..];
        }
        let unit = ["ms", "s", "m", "h", "d"]
            .into_iter()
            .find(|u| rest.starts_with(u));
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return false,
        }
    }
    true
}

/// Report a success or failure condition that uses more than Sluice's
/// condition language reads once it accepts Argo's forms: `result`,
/// `result[N]`, `len(result)`, `isNaN(...)`, numbers, comparisons, `&&`
/// `||` `!` and `and` `or` `not`, parentheses, `{{args.NAME}}`.
pub fn check_condition(text: &str, path: &str, report: &mut Report) {
    let mut unsupported: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("{{") {
            match rest.find("}}") {
                Some(end) if rest[2..end].trim().starts_with("args.") => {
                    rest = &rest[end + 2..];
                    continue;
                }
                _ => {
                    unsupported.push("a placeholder other than {{args.NAME}}".into());
                    break;
                }
            }
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let word = &rest[..end];
            if !["result", "len", "isNaN", "and", "or", "not"].contains(&word) {
                unsupported.push(format!("`{word}`"));
            }
            rest = &rest[end..];
            continue;
        }
        if !(c.is_ascii_digit() || c.is_whitespace() || "<>=!&|()[].-+".contains(c)) {
            unsupported.push(format!("`{c}`"));
        }
        rest = &rest[c.len_utf8()..];
    }
    unsupported.dedup();
    if !unsupported.is_empty() {
        report.attention(
            path,
            format!(
                "condition {text:?} uses {}, which Sluice's condition language does not have (it reads result, result[N], len(result), isNaN, numbers, comparisons, and/or/not); kept as it is, rewrite it",
                unsupported.join(", ")
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_become_sluice_syntax_or_are_reported() {
        let mut report = Report::default();
        assert_eq!(duration(json!(10), "p", &mut report), Some("10s".into()));
        assert_eq!(duration(json!("45"), "p", &mut report), Some("45s".into()));
        assert_eq!(
            duration(json!("1h30m"), "p", &mut report),
            Some("1h30m".into())
        );
        assert_eq!(
            duration(json!("1.5h"), "p", &mut report),
            Some("1.5h".into())
        );
        assert!(report.findings.is_empty(), "{:?}", report.findings);
        assert_eq!(
            duration(json!("300us"), "p", &mut report),
            Some("300us".into())
        );
        assert_eq!(report.findings.len(), 1);
        assert_eq!(report.findings[0].severity, Severity::Attention);
        assert!(!is_sluice_duration("m"));
        assert!(!is_sluice_duration("1."));
        assert!(!is_sluice_duration(""));
    }

    #[test]
    fn conditions_beyond_the_language_are_flagged_and_argo_forms_are_not() {
        for ok in [
            "result[0] < 0.05",
            "len(result) == 0 or isNaN(result[0])",
            "not (result > {{args.max}})",
            "result >= 0.95 && result <= 1",
        ] {
            let mut report = Report::default();
            check_condition(ok, "c", &mut report);
            assert!(report.findings.is_empty(), "{ok}: {:?}", report.findings);
        }
        for bad in [
            "all(result, {# < 0.5})",
            "result.status == 'ok'",
            "asInt(result) > 1",
            "result[0] in [1, 2]",
        ] {
            let mut report = Report::default();
            check_condition(bad, "c", &mut report);
            assert_eq!(report.findings.len(), 1, "{bad}");
            assert_eq!(report.findings[0].severity, Severity::Attention);
        }
    }

    #[test]
    fn fields_left_over_are_reported_with_their_reason() {
        let mut report = Report::default();
        let mut fields = Fields::new(json!({"a": 1, "b": 2, "c": null}), "spec", &mut report);
        assert_eq!(fields.take("a"), Some(json!(1)));
        fields.finish(&mut report, &[("b", "no such thing in Sluice")]);
        assert_eq!(
            report.findings,
            vec![Finding {
                path: "spec.b".into(),
                severity: Severity::Dropped,
                reason: "no such thing in Sluice".into()
            }]
        );
    }
}
