//! The alert targets a Rollout subscribes to, as the alert workers see them:
//! read an `AlertTarget` or `ClusterAlertTarget` (checking that the Rollout's
//! namespace may use a cluster-scoped one), turn its settings into a
//! delivery [`Policy`], and keep its `Ready` condition current.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::json;
use tracing::debug;

use super::Io;
use super::status_write::{apply_status, get_scoped};
use crate::alerts::alertmanager::resend_interval;
use crate::alerts::state::target_status;
use crate::alerts::{Policy, TargetKey};
use crate::crd::tenancy::{namespace_allowed, not_allowed_message};
use crate::crd::{AlertTarget, AlertTargetStatus, AlertTargetType, ClusterAlertTarget};

/// Field manager of everything the alert workers write.
pub use super::status_write::ALERTS_MANAGER as FIELD_MANAGER;

/// A target as read from the cluster, without its secrets.
#[derive(Debug, Clone)]
pub struct TargetSettings {
    pub kind: AlertTargetType,
    /// (namespace, name) of the Secret with the URL or routing key.
    pub secret: (String, String),
    pub endpoint: Option<String>,
    pub policy: Policy,
    /// Alertmanager: extra labels on every alert.
    pub labels: BTreeMap<String, String>,
    /// Alertmanager: how often a firing alert is sent again.
    pub resend_interval: Duration,
    pub status: AlertTargetStatus,
    /// Why the Rollout's namespace may not use this (cluster-scoped) target.
    pub refusal: Option<String>,
}

/// Delivery settings of a target: its own where given, `defaults` otherwise.
fn policy(
    defaults: &Policy,
    timeout: Option<&str>,
    attempts: Option<i32>,
    retry_for: Option<&str>,
) -> Policy {
    let duration = |text: Option<&str>, default: Duration| {
        text.and_then(|t| humantime::parse_duration(t).ok())
            .unwrap_or(default)
    };
    Policy {
        timeout: duration(timeout, defaults.timeout),
        max_attempts: attempts
            .and_then(|a| u32::try_from(a).ok())
            .unwrap_or(defaults.max_attempts),
        retry_for: duration(retry_for, defaults.retry_for),
        ..*defaults
    }
}

/// Why an alert cannot be sent to its target (yet).
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The target object does not exist.
    #[error("{target} does not exist: alerts for it wait until it does")]
    Missing { target: String },
    /// The target object could not be read.
    #[error("cannot read {target}: {source}")]
    Unreadable {
        target: String,
        #[source]
        source: kube::Error,
    },
    /// The target's Secret could not be read.
    #[error("cannot read Secret {namespace}/{name} of {target}: {source}")]
    SecretUnreadable {
        namespace: String,
        name: String,
        target: String,
        #[source]
        source: kube::Error,
    },
    /// The target's Secret lacks a key its type needs.
    #[error("Secret {namespace}/{name} of {target} has no `{key}` key")]
    SecretKeyMissing {
        namespace: String,
        name: String,
        target: String,
        key: &'static str,
    },
    /// A value in the target's Secret is unusable (the value is never repeated).
    #[error("Secret {namespace}/{name} of {target}: {problem}")]
    SecretValueInvalid {
        namespace: String,
        name: String,
        target: String,
        #[source]
        problem: crate::alerts::alertmanager::ConfigError,
    },
    /// The target's spec cannot be used as it is.
    #[error("{target}: {problem}")]
    SpecInvalid {
        target: String,
        #[source]
        problem: crate::alerts::alertmanager::ConfigError,
    },
    /// A ClusterAlertTarget that does not list the Rollout's namespace.
    #[error("{0}")]
    Refused(String),
}

/// Read `target` for a Rollout of `namespace`.
pub async fn read_target(
    io: &Io,
    target: &TargetKey,
    namespace: &str,
    defaults: &Policy,
) -> Result<TargetSettings, TargetError> {
    match &target.namespace {
        Some(ns) => {
            let found: AlertTarget = get_scoped(&io.client, Some(ns), &target.name)
                .await
                .map_err(|e| unreadable(target, e))?
                .ok_or_else(|| missing(target))?;
            let spec = &found.spec;
            Ok(TargetSettings {
                kind: spec.type_,
                secret: (ns.clone(), spec.secret_name.clone()),
                endpoint: spec.endpoint.clone(),
                policy: policy(
                    defaults,
                    spec.timeout.as_deref(),
                    spec.max_attempts,
                    spec.retry_for.as_deref(),
                ),
                labels: spec.labels.clone(),
                resend_interval: resend_interval(parse(spec.resend_interval.as_deref())),
                status: found.status.unwrap_or_default(),
                refusal: None,
            })
        }
        None => {
            let found: ClusterAlertTarget = get_scoped(&io.client, None, &target.name)
                .await
                .map_err(|e| unreadable(target, e))?
                .ok_or_else(|| missing(target))?;
            let spec = &found.spec;
            // The paging key is the platform's: only listed namespaces may use it.
            let refusal = (!namespace_allowed(&spec.allowed_namespaces, namespace))
                .then(|| not_allowed_message("ClusterAlertTarget", &target.name, namespace));
            Ok(TargetSettings {
                kind: spec.type_,
                secret: (spec.secret_namespace.clone(), spec.secret_name.clone()),
                endpoint: spec.endpoint.clone(),
                policy: policy(
                    defaults,
                    spec.timeout.as_deref(),
                    spec.max_attempts,
                    spec.retry_for.as_deref(),
                ),
                labels: spec.labels.clone(),
                resend_interval: resend_interval(parse(spec.resend_interval.as_deref())),
                status: found.status.unwrap_or_default(),
                refusal,
            })
        }
    }
}

fn parse(duration: Option<&str>) -> Option<Duration> {
    duration.and_then(|t| humantime::parse_duration(t).ok())
}

fn unreadable(target: &TargetKey, source: kube::Error) -> TargetError {
    TargetError::Unreadable {
        target: target.label(),
        source,
    }
}

fn missing(target: &TargetKey) -> TargetError {
    TargetError::Missing {
        target: target.label(),
    }
}

/// Keep the target's `Ready` condition and failure count current.
pub async fn record_target(
    io: &Io,
    target: &TargetKey,
    settings: &mut TargetSettings,
    ok: bool,
    reason: &str,
    note: &str,
) {
    let status = target_status(&settings.status, ok, reason, note, Timestamp::now());
    let body = json!(status);
    let namespace = target.namespace.as_deref();
    let (kind, result) = match namespace {
        Some(_) => (
            "AlertTarget",
            apply_status::<AlertTarget>(&io.client, namespace, &target.name, FIELD_MANAGER, body)
                .await,
        ),
        None => (
            "ClusterAlertTarget",
            apply_status::<ClusterAlertTarget>(&io.client, None, &target.name, FIELD_MANAGER, body)
                .await,
        ),
    };
    if let Err(e) = result {
        debug!(target = %target.label(), error = %e, "cannot update {kind} status");
    }
    settings.status = status;
}
