//! The `web` provider's I/O: one HTTP request per measurement (one per
//! revision in a comparison), and JSONPath into the JSON answer.
//!
//! Placeholders in the URL are percent-encoded (but for one that begins it:
//! the base URL) and in the body escaped as JSON string content, so an
//! argument cannot change the request's shape.
//! Header values from Secrets arrive through [`super::prometheus::Credentials`]
//! and, like every Secret value, are redacted from messages by the caller.
//! Every request, redirect and resolved address passes the process's
//! [`crate::egress`] policy, and at most [`MAX_BODY`] bytes of an answer are read.

use std::sync::Arc;
use std::time::Duration;

use jsonpath_rust::JsonPath;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use super::template::{Bindings, RenderError, render_escaped};
use crate::crd::{WebMethod, WebProvider};
use crate::egress::{self, EgressPolicy};

/// Longest answer read: a measurement is a number, not a data dump.
const MAX_BODY: usize = 1 << 20;

/// What URL placeholders leave as they are: RFC 3986's unreserved characters.
const URL_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Errors of a web measurement.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WebError {
    #[error("web provider: {0}")]
    Invalid(String),
    #[error("web provider: request failed: {0}")]
    Request(String),
    #[error("web provider: {0}")]
    Refused(#[from] egress::EgressError),
    #[error("web provider: HTTP {0}: {1}")]
    Status(u16, String),
    #[error("web provider: the answer is not JSON: {0}")]
    NotJson(String),
    #[error("web provider: JSONPath {0:?}: {1}")]
    Path(String, String),
}

/// A configured web endpoint.
#[derive(Clone, Debug)]
pub struct Web {
    http: reqwest::Client,
    url: String,
    method: WebMethod,
    headers: HeaderMap,
    body: Option<String>,
    egress: Arc<EgressPolicy>,
    /// Whether requests go through an HTTP proxy from the environment, which
    /// resolves names itself: they are then checked here before sending.
    proxied: bool,
}

impl Web {
    /// `headers` are the provider's headers with their values resolved
    /// (arguments filled in, Secrets read).
    pub fn new(
        provider: &WebProvider,
        headers: Vec<(String, String)>,
        timeout: Duration,
    ) -> Result<Web, WebError> {
        Web::with_egress(provider, headers, timeout, egress::current())
    }

    /// As [`Web::new`] under `egress` instead of the process's policy.
    pub fn with_egress(
        provider: &WebProvider,
        headers: Vec<(String, String)>,
        timeout: Duration,
        egress: Arc<EgressPolicy>,
    ) -> Result<Web, WebError> {
        let mut map = HeaderMap::new();
        for (key, value) in headers {
            let name = HeaderName::from_bytes(key.as_bytes())
                .map_err(|_| WebError::Invalid(format!("header name {key:?} is not valid")))?;
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                WebError::Invalid(format!(
                    "header {key}: the value is not a valid header value"
                ))
            })?;
            value.set_sensitive(true);
            map.insert(name, value);
        }
        crate::install_crypto_provider();
        let http = egress::guarded(reqwest::Client::builder().timeout(timeout), &egress)
            .build()
            .map_err(|e| WebError::Invalid(e.to_string()))?;
        let proxied = ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"]
            .iter()
            .any(|name| proxy_set(name));
        Ok(Web {
            http,
            url: provider.url.clone(),
            method: provider.method.unwrap_or_default(),
            headers: map,
            body: provider.body.clone(),
            egress,
            proxied,
        })
    }

    /// The URL with `bindings` filled in. A placeholder that begins the URL
    /// is its base (`{{args.metrics-url}}?app=...`) and is inserted as
    /// written; every other value is percent-encoded.
    fn render_url(&self, bindings: &Bindings) -> Result<String, RenderError> {
        let encode = |v: &str| utf8_percent_encode(v, URL_VALUE).to_string();
        let base_end = self
            .url
            .starts_with("{{")
            .then(|| self.url.find("}}").map(|end| end + 2))
            .flatten()
            .unwrap_or(0);
        let (base, rest) = self.url.split_at(base_end);
        Ok(render_escaped(base, bindings, str::to_string)?
            + &render_escaped(rest, bindings, encode)?)
    }

    /// Send the request with `bindings` filled in and read its JSON answer.
    pub async fn fetch(&self, bindings: &Bindings) -> Result<Value, WebError> {
        let url = self
            .render_url(bindings)
            .map_err(|e| WebError::Invalid(format!("url: {e}")))?;
        let parsed = reqwest::Url::parse(&url)
            .map_err(|e| WebError::Invalid(format!("url {url:?}: {e}")))?;
        if self.proxied {
            self.egress.check_resolved(&parsed).await?;
        } else {
            self.egress.check_literal(&parsed)?;
        }
        let request = match self.method {
            WebMethod::Get => self.http.get(&url),
            WebMethod::Post => {
                let body = match &self.body {
                    Some(body) => render_escaped(body, bindings, json_string_content)
                        .map_err(|e| WebError::Invalid(format!("body: {e}")))?,
                    None => String::new(),
                };
                self.http.post(&url).body(body)
            }
        };
        let mut response = request
            .headers(self.headers.clone())
            .send()
            .await
            .map_err(|e| request_error(&e))?;
        let status = response.status();
        let bytes = egress::read_at_most(&mut response, MAX_BODY)
            .await
            .map_err(|e| request_error(&e))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
            return Err(WebError::Status(status.as_u16(), text));
        }
        if bytes.len() > MAX_BODY {
            return Err(WebError::NotJson(format!(
                "more than the {MAX_BODY} bytes read"
            )));
        }
        serde_json::from_slice(&bytes).map_err(|e| WebError::NotJson(e.to_string()))
    }
}

/// The number at `path` in `json`: `None` when nothing matches or the value
/// is null (no data); an error when several values match or the value is
/// not a number, a numeric string or a boolean (true counts as 1).
pub fn number_at(json: &Value, path: &str) -> Result<Option<f64>, WebError> {
    let fail = |m: String| WebError::Path(path.into(), m);
    // Argo Rollouts writes kubectl's form, `{$.data.ok}`.
    let trimmed = path.trim();
    let query = trimmed
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(trimmed);
    let matches = json.query(query).map_err(|e| fail(e.to_string()))?;
    let value = match matches.as_slice() {
        [] => return Ok(None),
        [one] => *one,
        many => {
            return Err(fail(format!(
                "matched {} values; select exactly one",
                many.len()
            )));
        }
    };
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_f64()
            .map(Some)
            .ok_or_else(|| fail(format!("{n} is not a number Sluice can read"))),
        Value::Bool(b) => Ok(Some(if *b { 1.0 } else { 0.0 })),
        Value::String(text) => text
            .trim()
            .parse::<f64>()
            .map(Some)
            .map_err(|_| fail(format!("{text:?} is not a number"))),
        Value::Array(_) => Err(fail("is a list; select one element, e.g. with [0]".into())),
        Value::Object(_) => Err(fail("is an object; select a field of it".into())),
    }
}

/// `value` escaped as the inside of a JSON string.
fn json_string_content(value: &str) -> String {
    let quoted = Value::String(value.into()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

/// The error and its causes on one line.
/// A refused destination keeps its own message; anything else is a failed request.
fn request_error(error: &reqwest::Error) -> WebError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(refused) = current.downcast_ref::<egress::EgressError>() {
            return WebError::Refused(refused.clone());
        }
        source = current.source();
    }
    WebError::Request(error_chain(error))
}

/// Whether the proxy variable `name` (or its lower-case spelling) is set.
fn proxy_set(name: &str) -> bool {
    [name.to_string(), name.to_lowercase()]
        .iter()
        .any(|n| std::env::var_os(n).is_some_and(|v| !v.is_empty()))
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
#[path = "web_tests.rs"]
mod tests;
