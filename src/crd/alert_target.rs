//! `AlertTarget` and `ClusterAlertTarget`: where Sluice sends alerts about
//! rollout events (Slack, Microsoft Teams, PagerDuty, a signed webhook,
//! Prometheus Alertmanager).
//!
//! The URL or routing key lives in a Secret, never in the resource, so that
//! the resource can be read by everyone who reads Rollouts.

// kube's `printcolumn(...)` repeats keys like `type_` by design.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::rollout::DURATION_PATTERN;

/// The kinds of receiver Sluice formats alerts for.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AlertTargetType {
    /// Slack incoming webhook (Block Kit message). Secret key `url`.
    #[default]
    Slack,
    /// Microsoft Teams workflow webhook (Adaptive Card). Secret key `url`.
    Teams,
    /// PagerDuty Events API v2 (trigger, then resolve on recovery). Secret key `routingKey`.
    PagerDuty,
    /// Generic JSON webhook (schema `sluice.dev/alert/v1`), signed with
    /// HMAC-SHA256 when the Secret has `signingKey`. Secret key `url`.
    Webhook,
    /// Prometheus Alertmanager API v2 (`POST <url>/api/v2/alerts`): a firing
    /// alert re-sent while the incident lasts, resolved on recovery. Secret
    /// key `url`, optionally `username` and `password`, or `bearerToken`.
    Alertmanager,
}

impl AlertTargetType {
    /// The name used in metrics and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertTargetType::Slack => "Slack",
            AlertTargetType::Teams => "Teams",
            AlertTargetType::PagerDuty => "PagerDuty",
            AlertTargetType::Webhook => "Webhook",
            AlertTargetType::Alertmanager => "Alertmanager",
        }
    }
}

/// Where alerts go, for the Rollouts of one namespace.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "AlertTarget",
    namespaced,
    status = "AlertTargetStatus",
    shortname = "alerttarget",
    category = "sluice",
    derive = "PartialEq",
    doc = "A receiver of rollout alerts for the Rollouts of one namespace",
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Failures",
        type_ = "integer",
        json_path = ".status.consecutiveFailures"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AlertTargetSpec {
    /// `Slack`, `Teams`, `PagerDuty`, `Webhook` or `Alertmanager`.
    #[serde(rename = "type")]
    pub type_: AlertTargetType,
    /// Secret in the target's namespace holding `url` (Slack, Teams, Webhook,
    /// Alertmanager) or `routingKey` (PagerDuty), and optionally `signingKey`
    /// (Webhook) or `username`/`password` or `bearerToken` (Alertmanager).
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
    /// PagerDuty events endpoint. Defaults to `https://events.pagerduty.com/v2/enqueue`
    /// (use `https://events.eu.pagerduty.com/v2/enqueue` for EU accounts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub endpoint: Option<String>,
    /// Time one HTTP attempt may take, e.g. `10s`. Defaults to 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub timeout: Option<String>,
    /// Attempts per round of delivery (5xx, 429 and network errors are retried
    /// with exponential back-off and jitter; other 4xx are not). After a round
    /// fails the alert stays pending and a new round starts later, until
    /// `retryFor` is over. Defaults to 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 20").message("maxAttempts must be between 1 and 20"))]
    pub max_attempts: Option<i32>,
    /// Alertmanager: labels added to every alert (e.g. `team`, `cluster`),
    /// for routing and inhibition. Names match `[a-zA-Z_][a-zA-Z0-9_]*` (the
    /// target reports others as invalid) and cannot replace the labels Sluice
    /// sets (`alertname`, `namespace`, `rollout`, `revision`, `severity`, `step`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32))]
    pub labels: BTreeMap<String, String>,
    /// Alertmanager: how often a firing alert is sent again while the
    /// incident lasts, e.g. `1m` (the default). Each send says the alert
    /// ends four intervals later, so Alertmanager resolves it by itself only
    /// when Sluice stops sending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub resend_interval: Option<String>,
    /// How long an alert that cannot be delivered (receiver down, Secret
    /// missing or incomplete) stays pending and is retried with capped
    /// back-off before it is given up, e.g. `6h`. Defaults to 6h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub retry_for: Option<String>,
}

/// Where alerts go, for Rollouts of every namespace.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "ClusterAlertTarget",
    status = "AlertTargetStatus",
    shortname = "calerttarget",
    category = "sluice",
    derive = "PartialEq",
    doc = "A receiver of rollout alerts shared by Rollouts of every namespace",
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Failures",
        type_ = "integer",
        json_path = ".status.consecutiveFailures"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterAlertTargetSpec {
    /// `Slack`, `Teams`, `PagerDuty`, `Webhook` or `Alertmanager`.
    #[serde(rename = "type")]
    pub type_: AlertTargetType,
    /// Secret holding `url` or `routingKey` (and optionally `signingKey`, or
    /// `username`/`password` or `bearerToken` for Alertmanager).
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
    /// Namespace of the Secret (the controller's namespace by convention).
    #[schemars(length(min = 1, max = 63))]
    pub secret_namespace: String,
    /// PagerDuty events endpoint. Defaults to `https://events.pagerduty.com/v2/enqueue`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub endpoint: Option<String>,
    /// Time one HTTP attempt may take. Defaults to 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub timeout: Option<String>,
    /// Attempts per round of delivery; see `AlertTarget`. Defaults to 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 20").message("maxAttempts must be between 1 and 20"))]
    pub max_attempts: Option<i32>,
    /// Alertmanager: labels added to every alert (e.g. `team`, `cluster`),
    /// for routing and inhibition. Names match `[a-zA-Z_][a-zA-Z0-9_]*` (the
    /// target reports others as invalid) and cannot replace the labels Sluice
    /// sets (`alertname`, `namespace`, `rollout`, `revision`, `severity`, `step`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32))]
    pub labels: BTreeMap<String, String>,
    /// Alertmanager: how often a firing alert is sent again while the
    /// incident lasts, e.g. `1m` (the default). Each send says the alert
    /// ends four intervals later, so Alertmanager resolves it by itself only
    /// when Sluice stops sending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub resend_interval: Option<String>,
    /// How long an alert that cannot be delivered (receiver down, Secret
    /// missing or incomplete) stays pending and is retried with capped
    /// back-off before it is given up, e.g. `6h`. Defaults to 6h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub retry_for: Option<String>,
    /// Namespaces whose Rollouts may send alerts through this target; `*`
    /// admits every namespace. Empty (the default) denies all: a shared
    /// paging key is not every tenant's to use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_namespaces: Vec<String>,
}

/// How deliveries to a target went; written by the controller (field manager `sluice-alerts`).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AlertTargetStatus {
    /// `Ready`: True while deliveries succeed; False while alerts wait for a
    /// retry (reason `DeliveryPending`), after one is given up
    /// (`DeliveryFailing`), when the Secret is unusable (`SecretInvalid`) or
    /// the spec is (`SpecInvalid`, e.g. a bad Alertmanager label name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Failed deliveries in a row since the last success: alerts rejected or
    /// given up, and failed rounds of alerts still pending.
    #[serde(default)]
    pub consecutive_failures: i32,
    /// When an alert was last delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivered: Option<Time>,
    /// When an alert was last given up, and why (no secrets in here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failed: Option<Time>,
    /// The last error, without URLs or keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}
