//! Filling a template's placeholders: `{{args.NAME}}`, `{{revision}}`, `{{interval}}`.
//!
//! Every value is escaped as the content of a PromQL double-quoted string, so
//! a label value such as `x"} or vector(1) or {a="` stays one string and
//! cannot change the query. Unknown placeholders are an error, not an empty
//! string: a typo must not silently widen a label matcher.

use std::collections::BTreeMap;

/// Errors of rendering a query.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderError {
    #[error("query uses {{{{args.{0}}}}}, which is neither declared nor built in")]
    UnknownArg(String),
    #[error(
        "query uses {{{{{0}}}}}, which does not exist here (use args.NAME, revision or interval)"
    )]
    UnknownPlaceholder(String),
    #[error("query has an unterminated `{{{{`")]
    Unterminated,
    #[error("condition uses {{{{args.{0}}}}} = {1:?}, which is not a number")]
    NotANumber(String, String),
}

/// Escape a value for the inside of a PromQL double-quoted string.
pub fn escape_promql_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// The values placeholders may take.
#[derive(Debug, Clone, Default)]
pub struct Bindings {
    pub args: BTreeMap<String, String>,
    /// Pod-template hash the query is about (comparisons query each revision).
    pub revision: Option<String>,
    /// The metric's interval in PromQL duration syntax, e.g. `30s`.
    pub interval: String,
}

/// Replace every `{{name}}` of `text` by what `value` says for the trimmed name.
fn substitute(
    text: &str,
    mut value: impl FnMut(&str) -> Result<String, RenderError>,
) -> Result<String, RenderError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or(RenderError::Unterminated)?;
        out.push_str(&value(after[..end].trim())?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Replace every placeholder of `query`.
pub fn render(query: &str, bindings: &Bindings) -> Result<String, RenderError> {
    render_escaped(query, bindings, escape_promql_string)
}

/// Replace every placeholder of `text`, passing each argument and revision
/// through `escape` (for PromQL strings, URLs or JSON strings).
pub fn render_escaped(
    text: &str,
    bindings: &Bindings,
    escape: impl Fn(&str) -> String,
) -> Result<String, RenderError> {
    substitute(text, |name| {
        if let Some(arg) = name.strip_prefix("args.") {
            bindings
                .args
                .get(arg)
                .map(|v| escape(v))
                .ok_or_else(|| RenderError::UnknownArg(arg.into()))
        } else if name == "revision" {
            bindings
                .revision
                .as_deref()
                .map(&escape)
                .ok_or_else(|| RenderError::UnknownPlaceholder(name.into()))
        } else if name == "interval" {
            Ok(bindings.interval.clone())
        } else {
            Err(RenderError::UnknownPlaceholder(name.into()))
        }
    })
}

/// The NAMEs of the `{{args.NAME}}` placeholders of `text`.
pub fn args_named(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        if let Some(name) = after[..end].trim().strip_prefix("args.") {
            out.push(name.trim());
        }
        rest = &after[end + 2..];
    }
    out
}

/// Fill the `{{args.NAME}}` placeholders of a success or failure condition.
/// Only numbers are accepted, so an argument can set a threshold but never
/// add logic to the condition.
pub fn render_condition(
    condition: &str,
    args: &BTreeMap<String, String>,
) -> Result<String, RenderError> {
    substitute(condition, |name| {
        let Some(arg) = name.strip_prefix("args.") else {
            return Err(RenderError::UnknownPlaceholder(name.into()));
        };
        let value = args
            .get(arg)
            .ok_or_else(|| RenderError::UnknownArg(arg.into()))?;
        match value.trim().parse::<f64>() {
            Ok(number) if number.is_finite() => Ok(number.to_string()),
            _ => Err(RenderError::NotANumber(arg.into(), value.clone())),
        }
    })
}

/// A condition with every placeholder replaced by `0`, to check its syntax
/// before the arguments are known. The `0` is padded to the placeholder's
/// width, so an error's column still points into the user's text.
pub fn condition_shape(condition: &str) -> String {
    let mut out = String::with_capacity(condition.len());
    let mut rest = condition;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        match rest[start + 2..].find("}}") {
            Some(end) => {
                let placeholder = &rest[start..start + 2 + end + 2];
                out.push('0');
                out.extend(std::iter::repeat_n(' ', placeholder.chars().count() - 1));
                rest = &rest[start + 2 + end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// A duration in PromQL syntax (`90s`, `5m`): whole seconds, at least one.
pub fn promql_duration(duration: std::time::Duration) -> String {
    format!("{}s", duration.as_secs().max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bindings() -> Bindings {
        Bindings {
            args: BTreeMap::from([
                ("namespace".to_string(), "shop".to_string()),
                (
                    "evil".to_string(),
                    r#"x"} or vector(1) or {a="\"#.to_string(),
                ),
            ]),
            revision: Some("abc123".into()),
            interval: "30s".into(),
        }
    }

    #[test]
    fn placeholders_are_filled() {
        let q = r#"sum(increase(http_requests_total{namespace="{{args.namespace}}",pod_template_hash="{{ revision }}"}[{{interval}}]))"#;
        assert_eq!(
            render(q, &bindings()).expect("renders"),
            r#"sum(increase(http_requests_total{namespace="shop",pod_template_hash="abc123"}[30s]))"#
        );
    }

    #[test]
    fn a_hostile_label_value_stays_inside_its_string() {
        let q = r#"up{job="{{args.evil}}"}"#;
        let out = render(q, &bindings()).expect("renders");
        assert_eq!(out, r#"up{job="x\"} or vector(1) or {a=\"\\"}"#);
    }

    #[test]
    fn condition_arguments_set_numbers_and_nothing_else() {
        // Issue #11: error-rate-threshold.yaml's max-error-ratio was ignored.
        let mut args = bindings().args;
        args.insert("max".into(), "0.02".into());
        assert_eq!(
            render_condition("result < {{args.max}}", &args),
            Ok("result < 0.02".into())
        );
        args.insert("max".into(), "0.02 || result > -1".into());
        assert!(matches!(
            render_condition("result < {{args.max}}", &args),
            Err(RenderError::NotANumber(..))
        ));
        let shape = condition_shape("result < {{args.max}} && foo");
        assert_eq!(shape, format!("result < 0{} && foo", " ".repeat(11)));
        let err = crate::analysis::condition::Condition::parse(&shape).expect_err("foo");
        assert_eq!(err.column, 26, "the column of `foo` in the user's text");
    }

    #[test]
    fn typos_are_errors_not_empty_strings() {
        assert_eq!(
            render("{{args.namespce}}", &bindings()),
            Err(RenderError::UnknownArg("namespce".into()))
        );
        assert!(matches!(
            render("{{canary}}", &bindings()),
            Err(RenderError::UnknownPlaceholder(_))
        ));
        assert_eq!(
            render("{{args.namespace", &bindings()),
            Err(RenderError::Unterminated)
        );
    }
}
