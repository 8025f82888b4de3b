//! `AnalysisTemplate` and `ClusterAnalysisTemplate`: what to measure and how to judge it.
//!
//! A template declares arguments and metrics. Each metric names a provider
//! (the Prometheus HTTP API) and one kind of verdict: a threshold condition on
//! a single series, or a statistical comparison of the canary against the
//! baseline. The two kinds share one spec type; the cluster-scoped kind lets
//! a platform team publish templates that every namespace can use.

// kube's `printcolumn(...)` repeats keys like `type_` by design.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::api::core::v1::SecretKeySelector;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::DurationOrSeconds;
use super::job_provider::JobProvider;
use super::web_provider::WebProvider;

/// Metrics to evaluate against a canary, and the arguments they take.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "AnalysisTemplate",
    namespaced,
    shortname = "sat",
    category = "sluice",
    derive = "PartialEq",
    doc = "Metrics to evaluate against a canary, and the arguments they take"
)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisTemplateSpec {
    /// Arguments the queries use as `{{args.NAME}}`. `namespace`, `rollout`,
    /// `canary-hash`, `stable-hash` and `baseline-hash` are always provided.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub args: Vec<TemplateArg>,
    /// The metrics; the run fails if any non-dry-run metric fails.
    #[schemars(length(min = 1, max = 16))]
    pub metrics: Vec<Metric>,
}

/// A template every namespace can reference (`clusterScope: true` in a step).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "ClusterAnalysisTemplate",
    shortname = "scat",
    category = "sluice",
    derive = "PartialEq",
    doc = "An analysis template shared by every namespace"
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterAnalysisTemplateSpec {
    /// Arguments the queries use as `{{args.NAME}}` (see AnalysisTemplate).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub args: Vec<TemplateArg>,
    /// The metrics; the run fails if any non-dry-run metric fails.
    #[schemars(length(min = 1, max = 16))]
    pub metrics: Vec<Metric>,
}

impl From<ClusterAnalysisTemplateSpec> for AnalysisTemplateSpec {
    fn from(spec: ClusterAnalysisTemplateSpec) -> Self {
        AnalysisTemplateSpec {
            args: spec.args,
            metrics: spec.metrics,
        }
    }
}

/// A template argument: a default value, or a value read from a Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.value) && has(self.valueFrom))").message("an argument has either value or valueFrom"))]
pub struct TemplateArg {
    /// Name used as `{{args.NAME}}`.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Default value; the Rollout step's args override it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub value: Option<String>,
    /// Read the value from a Secret in the run's namespace (never shown in status or logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ArgValueFrom>,
}

/// Where an argument's value comes from.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ArgValueFrom {
    /// A key of a Secret.
    pub secret_key_ref: SecretKeySelector,
}

/// One metric of a template.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.provider.job) || has(self.compare) != (has(self.successCondition) || has(self.failureCondition))").message("a metric has either compare or successCondition/failureCondition"))]
#[x_kube(validation = Rule::new("!has(self.provider.job) || !(has(self.compare) || has(self.successCondition) || has(self.failureCondition))").message("a job metric is judged by the Job's outcome: it takes no compare, successCondition or failureCondition"))]
pub struct Metric {
    /// Name, unique within the template.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Time between measurements, e.g. `30s` or whole seconds such as `30`; at least 1s, at most 24h. Defaults to 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = super::limits::duration_syntax())]
    #[x_kube(validation = super::limits::duration_at_most(super::limits::MAX_ANALYSIS_WAIT, "interval"))]
    pub interval: Option<DurationOrSeconds>,
    /// Wait this long after the run starts before the first measurement (`1m`, or
    /// whole seconds such as `60`); at most 24h. Defaults to 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = super::limits::duration_syntax())]
    #[x_kube(validation = super::limits::duration_at_most(super::limits::MAX_ANALYSIS_WAIT, "initialDelay"))]
    pub initial_delay: Option<DurationOrSeconds>,
    /// Measurements to take. Defaults to 5. A comparison may decide earlier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 200").message("count must be between 1 and 200"))]
    pub count: Option<i32>,
    /// Failed measurements tolerated before the metric fails. Defaults to 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0").message("failureLimit must not be negative"))]
    pub failure_limit: Option<i32>,
    /// Inconclusive measurements tolerated before the metric is inconclusive. Defaults to 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0").message("inconclusiveLimit must not be negative"))]
    pub inconclusive_limit: Option<i32>,
    /// Measurements in a row that may fail to run (query error, timeout) before the metric is in Error. Defaults to 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0").message("consecutiveErrorLimit must not be negative"))]
    pub consecutive_error_limit: Option<i32>,
    /// Evaluate and report, but never fail the run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// What a measurement without data counts as. Never a pass. Defaults to Inconclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_data: Option<NoDataPolicy>,
    /// Where the numbers come from.
    pub provider: MetricProvider,
    /// Threshold verdict: the measurement passes when this holds, e.g. `result < 0.01`.
    /// `result` is the single number measured. Syntax: `result`, numbers, `< <= > >= == !=`,
    /// `&& || !` (or `and or not`), parentheses, `isNaN(result)`, `isInf(result)`; Argo Rollouts
    /// forms `result[0]`, `len(result)`, `all(result, {# < 1})`, `any(...)`, `none(...)`,
    /// `default(result, 0)`, `asInt(result)`, `asFloat(result)` mean the same on that number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub success_condition: Option<String>,
    /// Threshold verdict: the measurement fails when this holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub failure_condition: Option<String>,
    /// Comparison verdict: canary against baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<Comparison>,
}

/// What a measurement that returns no data counts as.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NoDataPolicy {
    /// Counts toward `inconclusiveLimit` (the default).
    #[default]
    Inconclusive,
    /// Counts toward `failureLimit`.
    Failed,
    /// Counts toward `consecutiveErrorLimit`.
    Error,
}

/// Metric providers; exactly one is set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.prometheus) ? 1 : 0) + (has(self.scrape) ? 1 : 0) + (has(self.web) ? 1 : 0) + (has(self.job) ? 1 : 0) == 1").message("set exactly one provider: prometheus, scrape, web or job"))]
pub struct MetricProvider {
    /// The Prometheus HTTP API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusProvider>,
    /// Read the pods' own `/metrics` endpoints (no Prometheus server needed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape: Option<ScrapeProvider>,
    /// Any HTTP endpoint that answers JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<WebProvider>,
    /// A Kubernetes Job (a smoke or load test): passes when it completes, fails when it fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobProvider>,
}

/// Direct scrape of the canary's and the baseline's Ready pods.
///
/// Selectors are a metric name with optional PromQL-style label matchers,
/// e.g. `http_requests_total{code=~"5.."}`; the matching samples of every pod
/// of a revision are added up. Thresholds use `query` (summed over the
/// canary's pods); Counts comparisons use the growth of `events` and
/// `exposure` counters between measurements. Samples comparisons need Prometheus.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScrapeProvider {
    /// Container port serving the metrics.
    #[x_kube(validation = Rule::new("self >= 1 && self <= 65535").message("port must be 1-65535"))]
    pub port: i32,
    /// Path of the metrics endpoint. Defaults to /metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub path: Option<String>,
    /// Threshold metrics: the series to add up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub query: Option<String>,
    /// Counts comparisons: the bad-events counter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub events: Option<String>,
    /// Counts comparisons: the exposure counter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub exposure: Option<String>,
    /// Per-pod request timeout (`5s`, or whole seconds such as `5`); at most 24h. Defaults to 5s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = super::limits::duration_syntax())]
    #[x_kube(validation = super::limits::duration_at_most(super::limits::MAX_ANALYSIS_WAIT, "timeout"))]
    pub timeout: Option<DurationOrSeconds>,
}

/// Queries against a Prometheus server.
///
/// Placeholders: `{{args.NAME}}`, `{{revision}}` (the canary's or the
/// baseline's pod-template hash, in comparisons), `{{interval}}` (the
/// metric's interval, e.g. `30s`). Values are escaped for a PromQL string
/// literal, so use them inside double quotes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusProvider {
    /// Base URL, e.g. `http://prometheus.monitoring:9090`.
    #[schemars(length(min = 1, max = 512))]
    pub address: String,
    /// Instant query. Thresholds: its single value is `result`. Samples
    /// comparisons: evaluated per revision at each measurement; its window
    /// should be `[{{interval}}]` so that values of successive intervals share no requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub query: Option<String>,
    /// Counts comparisons: bad events of `{{revision}}` in the last `{{interval}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub events: Option<String>,
    /// Counts comparisons: exposure (e.g. requests) of `{{revision}}` in the last `{{interval}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub exposure: Option<String>,
    /// Deprecated and ignored: a Samples comparison takes one value per
    /// interval (an instant query whose window is `{{interval}}`), so that no
    /// two values share requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub step: Option<String>,
    /// Request timeout (`10s`, or whole seconds such as `10`); at most 24h. Defaults to 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = super::limits::duration_syntax())]
    #[x_kube(validation = super::limits::duration_at_most(super::limits::MAX_ANALYSIS_WAIT, "timeout"))]
    pub timeout: Option<DurationOrSeconds>,
    /// Bearer token from a Secret key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_secret: Option<SecretKeySelector>,
    /// Basic auth with a username and a password from Secret keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// PEM CA bundle from a Secret key: the only roots trusted for an `https://` address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret: Option<SecretKeySelector>,
}

/// Basic-auth credentials, both from Secrets.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuth {
    /// The username.
    pub username_secret: SecretKeySelector,
    /// The password.
    pub password_secret: SecretKeySelector,
}

/// Compare canary against baseline.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    /// `Counts`: events against exposure (errors per request, or requests slower
    /// than a histogram bucket), from `events` and `exposure`. `Samples`: one
    /// value per interval of a series (a latency quantile), from `query`.
    pub kind: ComparisonKind,
    /// Which change is bad. Defaults to Increase.
    #[serde(default)]
    pub direction: BadDirection,
    /// Changes smaller than this are not regressions.
    #[serde(default)]
    pub tolerance: ComparisonTolerance,
    /// Confidence that a Failed or Successful verdict is right, e.g. 0.95. Defaults to 0.95.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// The least evidence before the canary can pass; less data is
    /// Inconclusive, never a pass. Defaults: 6 intervals, 5m, 2000 requests per arm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<ComparisonMinimum>,
}

/// Minimum exposure before a comparison may pass (and, for `intervals`, fail).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ComparisonMinimum {
    /// Intervals (measurements with data on both arms) before any verdict. Defaults to 6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 3 && self <= 200").message("minimum.intervals must be between 3 and 200"))]
    pub intervals: Option<i32>,
    /// Time observed (intervals × interval) before a pass, e.g. `5m` or whole seconds
    /// such as `300`. Defaults to 5m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = super::limits::duration_syntax())]
    pub duration: Option<DurationOrSeconds>,
    /// Counts comparisons: exposure (requests) of each arm before a pass. Defaults to 2000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0.0").message("minimum.requests must not be negative"))]
    pub requests: Option<f64>,
}

/// Kinds of comparison.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ComparisonKind {
    /// Events against exposure, e.g. HTTP 5xx per request.
    #[default]
    Counts,
    /// Values of a series over time, e.g. p99 latency.
    Samples,
}

/// Which change of the canary is bad.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BadDirection {
    /// Higher is worse (errors, latency).
    #[default]
    Increase,
    /// Lower is worse (success ratio, throughput).
    Decrease,
    /// Any change is bad.
    Either,
}

/// A practical margin: the canary is worse only beyond both.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ComparisonTolerance {
    /// Relative margin, e.g. 0.1 for +10%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relative: Option<f64>,
    /// Absolute margin in the metric's unit, e.g. 0.005 for +0.5 percentage points of error ratio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub absolute: Option<f64>,
}
