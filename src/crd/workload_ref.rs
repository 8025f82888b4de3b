//! `spec.workloadRef`: a Rollout that adopts an existing Deployment instead
//! of carrying a pod template (Argo Rollouts' field and spelling).

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API version of the only kind Sluice adopts.
pub const DEPLOYMENT_API_VERSION: &str = "apps/v1";
/// The only kind Sluice adopts.
pub const DEPLOYMENT_KIND: &str = "Deployment";

/// A Deployment in the Rollout's namespace whose pod template the Rollout runs.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRef {
    /// `apps/v1`.
    pub api_version: String,
    /// `Deployment`.
    pub kind: String,
    /// Name of the Deployment, in the Rollout's namespace (never another one).
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// When the Deployment is scaled down (see `ScaleDown`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<ScaleDown>,
}

impl WorkloadRef {
    /// `scaleDown` with its default.
    pub fn scale_down(&self) -> ScaleDown {
        self.scale_down.unwrap_or_default()
    }
}

/// What happens to the Deployment as the Rollout takes over: `never` (the
/// default) leaves it alone; `progressively` scales it down as the Rollout's
/// pods become available, pod for pod, so that the two together never have
/// fewer available pods than `spec.replicas`; `onsuccess` scales it to 0 once
/// the Rollout is Healthy.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ScaleDown {
    /// Leave the Deployment as it is (scale it down or delete it yourself).
    #[default]
    #[serde(rename = "never")]
    Never,
    /// Scale the Deployment down as the Rollout's pods become available.
    #[serde(rename = "progressively")]
    Progressively,
    /// Scale the Deployment to 0 once the Rollout is Healthy.
    #[serde(rename = "onsuccess")]
    OnSuccess,
}

impl ScaleDown {
    /// The spelling in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            ScaleDown::Never => "never",
            ScaleDown::Progressively => "progressively",
            ScaleDown::OnSuccess => "onsuccess",
        }
    }
}

/// No template given (`spec.template` absent): the Rollout uses `workloadRef`.
pub fn template_is_empty(template: &PodTemplateSpec) -> bool {
    template.metadata.is_none() && template.spec.is_none()
}

/// No selector given (`spec.selector` absent).
pub fn selector_is_empty(selector: &LabelSelector) -> bool {
    selector.match_labels.is_none() && selector.match_expressions.is_none()
}
