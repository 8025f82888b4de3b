//! The `job` metric provider's spec: a Kubernetes Job run from a template (a
//! smoke or load test), judged by whether it completes or fails (Argo
//! Rollouts' `job` provider, spelled the same so templates carry over).

use std::collections::BTreeMap;

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::duration::DurationOrSeconds;

/// A Job created for each measurement in the run's namespace; the measurement
/// passes when the Job completes and fails when the Job fails.
///
/// `{{args.NAME}}` and `{{revision}}` (the canary's pod-template hash) are
/// filled in every string of `metadata` and `spec`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobProvider {
    /// Labels and annotations of the Job (Sluice adds its own labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JobMetadata>,
    /// A batch/v1 JobSpec, e.g. `{backoffLimit: 0, template: {spec: {containers: [...], restartPolicy: Never}}}`.
    /// Checked by the controller and `sluice lint` (the full schema would
    /// make the CRD larger than the API server's annotations allow).
    #[schemars(schema_with = "job_spec_schema")]
    pub spec: serde_json::Value,
    /// How long a Job may run before the measurement is an Error and the Job
    /// is deleted (`10m`, or whole seconds such as `600`); at most 24h.
    /// Defaults to 10m. The Job's own `activeDeadlineSeconds` fails it instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = super::limits::duration_syntax())]
    #[x_kube(validation = super::limits::duration_at_most(super::limits::MAX_ANALYSIS_WAIT, "timeout"))]
    pub timeout: Option<DurationOrSeconds>,
}

/// The Job's labels and annotations.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobMetadata {
    /// Labels of the Job.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations of the Job.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Any object: a JobSpec as the API server knows it, checked by the controller.
fn job_spec_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}
