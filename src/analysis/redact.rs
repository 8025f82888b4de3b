//! Keep Secret-sourced values (analysis arguments `valueFrom.secretKeyRef`,
//! Prometheus bearer tokens and basic-auth credentials) out of what Sluice
//! stores and logs.
//!
//! A provider may echo them back: Prometheus repeats the query in a parse
//! error, a proxy the URL with its query string. So every text bound for
//! AnalysisRun status, Events or logs goes through a [`Redactor`] that knows
//! the run's secret values and replaces them, also in the forms they take on
//! the way (JSON-escaped, percent- or form-encoded), and also when a
//! provider's message was cut off in the middle of one.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

/// What a secret value is replaced with.
pub const REDACTED: &str = "<redacted>";
/// Shortest start of a secret that is still redacted where a text ends in it
/// (a message cut off mid-secret); shorter tails are ordinary text.
const MIN_CUT_TAIL: usize = 4;

/// Replaces the secret values of one AnalysisRun in texts.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Every form of every secret value, longest first (so a secret that
    /// contains another is replaced whole).
    forms: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("forms", &self.forms.len())
            .finish()
    }
}

impl Redactor {
    /// A redactor for `values` (empty values are ignored).
    pub fn new<I, S>(values: I) -> Redactor
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut forms = Vec::new();
        for value in values {
            let value = value.as_ref();
            if value.is_empty() {
                continue;
            }
            forms.push(value.to_string());
            // As it appears inside a JSON string (quotes and backslashes escaped).
            if let Ok(quoted) = serde_json::to_string(value)
                && let Some(inner) = quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"'))
            {
                forms.push(inner.to_string());
            }
            // As it appears in a URL (percent-encoded, and form-encoded with `+`).
            let percent = utf8_percent_encode(value, NON_ALPHANUMERIC).to_string();
            forms.push(percent.replace("%20", "+"));
            forms.push(percent);
            let trimmed = value.trim();
            if !trimmed.is_empty() {
                forms.push(trimmed.to_string());
            }
        }
        forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        forms.dedup();
        Redactor { forms }
    }

    /// Whether there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.forms.is_empty()
    }

    /// `text` with every secret value replaced by [`REDACTED`].
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for form in &self.forms {
            if out.contains(form.as_str()) {
                out = out.replace(form.as_str(), REDACTED);
            }
        }
        self.cut_tail(out)
    }

    /// A text that ends in the start of a secret (a provider cut its message
    /// there) loses that tail too.
    fn cut_tail(&self, mut text: String) -> String {
        for form in &self.forms {
            let longest = form.len().saturating_sub(1).min(text.len());
            for len in (MIN_CUT_TAIL..=longest).rev() {
                let Some(prefix) = form.get(..len) else {
                    continue;
                };
                if text.ends_with(prefix) {
                    text.truncate(text.len() - len);
                    text.push_str(REDACTED);
                    return text;
                }
            }
        }
        text
    }

    /// Every string in `value` (keys are Sluice's own and left alone) redacted.
    pub fn json(&self, value: &mut Value) {
        if self.is_empty() {
            return;
        }
        match value {
            Value::String(text) => *text = self.text(text),
            Value::Array(items) => items.iter_mut().for_each(|v| self.json(v)),
            Value::Object(map) => map.values_mut().for_each(|v| self.json(v)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_secret_echoed_by_a_provider_is_replaced_in_every_form() {
        let redactor = Redactor::new(["s3cr3t \"tok\"/x"]);
        let raw = r#"parse error in "sum(rate(http{token="s3cr3t "tok"/x"}[1m]))""#;
        assert_eq!(
            redactor.text(raw),
            r#"parse error in "sum(rate(http{token="<redacted>"}[1m]))""#
        );
        let escaped = r#"{"error":"bad token=\"s3cr3t \"tok\"/x\""}"#;
        assert!(
            !redactor.text(escaped).contains("s3cr3t"),
            "{}",
            redactor.text(escaped)
        );
        let url = "GET /api/v1/query?query=up%7Btoken%3D%22s3cr3t%20%22tok%22%2Fx%22%7D failed";
        assert!(
            !redactor.text(url).contains("s3cr3t"),
            "{}",
            redactor.text(url)
        );
        let form = "query=up%7Btoken%3D%22s3cr3t+%22tok%22%2Fx%22%7D";
        assert!(
            !redactor.text(form).contains("s3cr3t"),
            "{}",
            redactor.text(form)
        );
    }

    #[test]
    fn a_message_cut_off_inside_a_secret_loses_the_partial_secret() {
        let redactor = Redactor::new(["hunter2-very-long-token"]);
        assert_eq!(
            redactor.text("Prometheus answered HTTP 502: bad query token=hunter2-ver"),
            "Prometheus answered HTTP 502: bad query token=<redacted>"
        );
        // Three characters that happen to start a secret are ordinary text.
        assert_eq!(redactor.text("error: hun"), "error: hun");
    }

    #[test]
    fn nested_json_strings_are_redacted_and_numbers_kept() {
        let redactor = Redactor::new(["topsecret", ""]);
        let mut status = json!({
            "message": "metric errors: Prometheus rejected the query (bad_data): topsecret",
            "metrics": [{"measurements": [{"message": "x topsecret y", "value": 3.5}]}]
        });
        redactor.json(&mut status);
        let text = status.to_string();
        assert!(!text.contains("topsecret"), "{text}");
        assert_eq!(status["metrics"][0]["measurements"][0]["value"], 3.5);
        assert_eq!(
            status["metrics"][0]["measurements"][0]["message"],
            "x <redacted> y"
        );
    }

    #[test]
    fn a_secret_that_contains_another_is_replaced_whole() {
        let redactor = Redactor::new(["abcd", "abcdefgh"]);
        assert_eq!(redactor.text("k=abcdefgh;"), "k=<redacted>;");
        assert!(Redactor::new(Vec::<String>::new()).is_empty());
    }
}
