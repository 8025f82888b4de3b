//! The `web` metric provider's spec: an HTTP endpoint that answers JSON, and
//! JSON paths to the numbers in it (Argo Rollouts' `web` provider).

use k8s_openapi::api::core::v1::SecretKeySelector;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::DurationOrSeconds;

/// An HTTP GET or POST whose JSON answer holds the measurement.
///
/// Placeholders `{{args.NAME}}`, `{{revision}}` (comparisons ask once per
/// revision) and `{{interval}}` are filled in `url` (URL-encoded, except a
/// placeholder that begins it: the base URL) and `body` (escaped as JSON
/// string content).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebProvider {
    /// The endpoint, e.g. `http://metrics.example/api/v1/error-rate?app={{args.app}}`.
    #[schemars(length(min = 1, max = 2048))]
    pub url: String,
    /// GET (the default) or POST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<WebMethod>,
    /// Request headers; a value may come from a Secret (never shown in status or logs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub headers: Vec<WebHeader>,
    /// Request body of a POST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8192))]
    pub body: Option<String>,
    /// Thresholds and Samples comparisons: the JSONPath of the value, e.g.
    /// `$.data.errorRate` (Argo's `{$.data.errorRate}` also works). A number,
    /// a numeric string, or a boolean (true is 1); null or no match is no data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub json_path: Option<String>,
    /// Counts comparisons: the JSONPath of the bad events in the last `{{interval}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub events_json_path: Option<String>,
    /// Counts comparisons: the JSONPath of the exposure (e.g. requests) in the last `{{interval}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub exposure_json_path: Option<String>,
    /// Request timeout (`10s`, or whole seconds such as `10`); at most 24h. Defaults to 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = super::limits::duration_syntax())]
    #[x_kube(validation = super::limits::duration_at_most(super::limits::MAX_ANALYSIS_WAIT, "timeout"))]
    pub timeout: Option<DurationOrSeconds>,
}

/// HTTP methods of the web provider.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WebMethod {
    #[default]
    #[serde(rename = "GET")]
    Get,
    #[serde(rename = "POST")]
    Post,
}

/// One request header.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.value) != has(self.valueFrom)").message("a header has either value or valueFrom"))]
pub struct WebHeader {
    /// Header name, e.g. `Authorization`.
    #[schemars(length(min = 1, max = 128))]
    pub key: String,
    /// The value; may use `{{args.NAME}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub value: Option<String>,
    /// Read the value from a Secret in the run's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<WebHeaderSource>,
}

/// Where a header's value comes from.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebHeaderSource {
    /// A key of a Secret.
    pub secret_key_ref: SecretKeySelector,
}
