//! The `Rollout` custom resource: the spec a user commits to Git.
//!
//! Field docs become the CRD's schema descriptions; CEL rules enforce at
//! admission what the API server can check on its own.

// kube's `printcolumn(...)` repeats keys like `type_` by design.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::DurationOrSeconds;
use super::route_steps::{ManagedRoute, SetHeaderRoute, SetMirrorRoute};
use super::status::RolloutStatus;
pub use super::workload_ref::{ScaleDown, WorkloadRef, selector_is_empty, template_is_empty};

/// Pattern accepted for durations such as `30s`, `5m`, `1h30m`, `250ms`.
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+$";

/// A Rollout moves a new pod template into production in stages, judging
/// the canary on metrics before every increase of its traffic share.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "Rollout",
    namespaced,
    status = "RolloutStatus",
    shortname = "sro",
    category = "sluice",
    derive = "PartialEq",
    doc = "Progressive delivery of a pod template: staged traffic shifting judged on metrics",
    // The name is the value of the label on every ReplicaSet and AnalysisRun it owns.
    validation = Rule::new("size(self.metadata.name) <= 63").message("a Rollout's name must be at most 63 characters: it is used as a label value"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Step", type_ = "string", json_path = ".status.stepLabel"),
    printcolumn(
        name = "Weight",
        type_ = "integer",
        json_path = ".status.currentWeight"
    ),
    printcolumn(
        name = "Stable",
        type_ = "string",
        json_path = ".status.stableRevision",
        priority = 1
    ),
    printcolumn(
        name = "Canary",
        type_ = "string",
        json_path = ".status.canaryRevision",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.template) != has(self.workloadRef)").message("set exactly one of spec.template and spec.workloadRef"))]
#[x_kube(validation = Rule::new("has(self.selector) || has(self.workloadRef)").message("spec.selector is required unless spec.workloadRef is set"))]
pub struct RolloutSpec {
    /// Desired number of pods of the stable version. Defaults to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0").message("replicas must not be negative"))]
    #[x_kube(validation = Rule::new("self <= 1000000").message("replicas must be at most 1000000"))]
    pub replicas: Option<i32>,

    /// Label selector for the Rollout's pods; must match the template's labels.
    /// Required with `template`; with `workloadRef` it defaults to the
    /// Deployment's selector.
    #[serde(default, skip_serializing_if = "selector_is_empty")]
    pub selector: LabelSelector,

    /// Pod template of the version to run. Changing it starts a new rollout.
    /// Set either this or `workloadRef`, not both.
    #[serde(default, skip_serializing_if = "template_is_empty")]
    pub template: PodTemplateSpec,

    /// Take the pod template (and the selector, if none is set) from an
    /// existing Deployment in the same namespace instead of `template`, and
    /// scale that Deployment down as the Rollout takes over (`scaleDown`).
    /// A change of the Deployment's template starts a new rollout, as a change
    /// of `template` would. Argo Rollouts' field, with the same spelling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_ref: Option<WorkloadRef>,

    /// Old ReplicaSets kept (scaled to zero) for history and quick rollback. Defaults to 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0").message("revisionHistoryLimit must not be negative"))]
    pub revision_history_limit: Option<i32>,

    /// Seconds a rollout may go without progress before it is reported Degraded. Defaults to 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0").message("progressDeadlineSeconds must be positive"))]
    #[x_kube(validation = Rule::new("self <= 2592000").message("progressDeadlineSeconds must be at most 2592000 (30 days)"))]
    pub progress_deadline_seconds: Option<i32>,

    /// Abort the update when `progressDeadlineSeconds` passes without progress,
    /// instead of only reporting `Degraded`: traffic goes back to the stable
    /// version, the stuck pods of the new one are removed at once, and the
    /// `aborted` alert fires. Git is left as it is (a stuck update is no
    /// verdict on the image). Defaults to false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub abort_on_progress_deadline: bool,

    /// What happens when an analysis cannot tell whether the new version is
    /// bad (verdict `Error`: monitoring down or a broken query; or
    /// `Inconclusive`). `Hold` (the default) keeps traffic where it is and
    /// waits for an operator; `RollbackTraffic` puts traffic back on the
    /// stable version. Neither reverts Git: only a `Failed` verdict does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_cannot_tell: Option<CannotTellAction>,

    /// How the new version is brought in. Exactly one strategy must be set.
    pub strategy: RolloutStrategy,

    /// Where this Rollout lives in Git: on an abort, Sluice reverts the commit
    /// that brought the canary's image, so Git and the cluster agree again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitSource>,

    /// Who hears about this Rollout's events (aborts by default), and links
    /// to put in every alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<AlertsSpec>,

    /// Restart the pods (RFC 3339 time, as Argo Rollouts' `restartAt`): once
    /// this time has passed, every pod of the stable and canary (or preview)
    /// ReplicaSets created before it is evicted, one at a time (up to
    /// `maxUnavailable`) and only while its ReplicaSet has its pods Ready,
    /// without a new revision. Set by `sluice rollout restart`;
    /// `status.restartedAt` says when it is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_at: Option<Time>,
}

/// What to do when an analysis cannot tell whether the new version is bad.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CannotTellAction {
    /// Keep traffic at its current share and wait (phase `Paused`): `promote`
    /// goes on without the verdict, `retry` measures again, `abort` rolls back.
    #[default]
    Hold,
    /// Put traffic back on the stable version (phase `Aborted`) without
    /// touching Git; `retry` starts the update again.
    RollbackTraffic,
}

/// Alert subscriptions of a Rollout.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AlertsSpec {
    /// Targets and the events each one hears about.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub subscriptions: Vec<AlertSubscription>,
    /// Links added to every alert, e.g. a dashboard. `{namespace}`, `{rollout}`,
    /// `{canaryRevision}`, `{stableRevision}`, `{event}` and `{timestampMs}` are
    /// replaced (URL-encoded) when the alert is sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub links: Vec<AlertLink>,
}

/// One target and the events it hears about.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AlertSubscription {
    /// Name of an `AlertTarget` in the Rollout's namespace (or of a
    /// `ClusterAlertTarget` with `clusterScope: true`).
    #[schemars(length(min = 1, max = 253))]
    pub target: String,
    /// Look the name up among ClusterAlertTargets.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cluster_scope: bool,
    /// Events sent to the target. Defaults to `[aborted]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8))]
    pub events: Option<Vec<AlertEvent>>,
    /// Severity per event, overriding the defaults (aborted and
    /// revertFailed: critical; analysisError, paused and inconclusive:
    /// warning; the rest: info).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severities: Option<AlertSeverities>,
}

/// A severity per event name.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AlertSeverities {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted: Option<AlertSeverity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverted: Option<AlertSeverity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert_failed: Option<AlertSeverity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inconclusive: Option<AlertSeverity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<AlertSeverity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted: Option<AlertSeverity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_completed: Option<AlertSeverity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_error: Option<AlertSeverity>,
}

impl AlertSeverities {
    /// The severity set for `event`, if any.
    pub fn get(&self, event: AlertEvent) -> Option<AlertSeverity> {
        match event {
            AlertEvent::Aborted => self.aborted,
            AlertEvent::Reverted => self.reverted,
            AlertEvent::RevertFailed => self.revert_failed,
            AlertEvent::Inconclusive => self.inconclusive,
            AlertEvent::Paused => self.paused,
            AlertEvent::Promoted => self.promoted,
            AlertEvent::StepCompleted => self.step_completed,
            AlertEvent::AnalysisError => self.analysis_error,
        }
    }
}

/// A rollout event alerts can be sent for.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "camelCase")]
pub enum AlertEvent {
    /// The canary was aborted (by analysis, deadline or an operator); traffic is back on stable.
    Aborted,
    /// The image commit was reverted in Git (or a revert pull request was opened).
    Reverted,
    /// The Git revert failed (it is retried; the alert is sent once per abort).
    RevertFailed,
    /// An analysis was inconclusive and the rollout waits for a human.
    Inconclusive,
    /// The rollout waits for a human (a pause step or `sluice rollout pause`).
    Paused,
    /// The new version was promoted to stable.
    Promoted,
    /// A canary step completed.
    StepCompleted,
    /// An analysis could not measure (a broken query, an unreachable Prometheus):
    /// the rollout holds or rolls traffic back per `analysisCannotTell`, Git is left alone.
    AnalysisError,
}

impl AlertEvent {
    /// The name used in specs, messages and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertEvent::Aborted => "aborted",
            AlertEvent::Reverted => "reverted",
            AlertEvent::RevertFailed => "revertFailed",
            AlertEvent::Inconclusive => "inconclusive",
            AlertEvent::Paused => "paused",
            AlertEvent::Promoted => "promoted",
            AlertEvent::StepCompleted => "stepCompleted",
            AlertEvent::AnalysisError => "analysisError",
        }
    }

    /// Severity when the subscription does not say.
    pub fn default_severity(self) -> AlertSeverity {
        match self {
            AlertEvent::Aborted | AlertEvent::RevertFailed => AlertSeverity::Critical,
            // "We cannot tell" pages as a warning: a monitoring outage is no bad canary.
            AlertEvent::AnalysisError | AlertEvent::Inconclusive | AlertEvent::Paused => {
                AlertSeverity::Warning
            }
            _ => AlertSeverity::Info,
        }
    }
}

/// Severity of an alert (PagerDuty's four levels).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum AlertSeverity {
    Critical,
    Error,
    Warning,
    Info,
}

impl AlertSeverity {
    /// The lowercase name PagerDuty and the webhook schema use.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertSeverity::Critical => "critical",
            AlertSeverity::Error => "error",
            AlertSeverity::Warning => "warning",
            AlertSeverity::Info => "info",
        }
    }
}

/// A link put into alerts.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AlertLink {
    /// Text of the link, e.g. `Dashboard`.
    #[schemars(length(min = 1, max = 64))]
    pub title: String,
    /// URL template, e.g. `https://grafana.example.com/d/web?var-rollout={rollout}`.
    #[schemars(length(min = 1, max = 2048))]
    pub url: String,
}

/// The GitOps repository that holds a Rollout: inline, or a shared
/// `GitRepository` / `ClusterGitRepository` (whose settings the inline
/// fields here override).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.repository) != has(self.repositoryRef)").message("set exactly one of repository and repositoryRef"))]
pub struct GitSource {
    /// Clone URL: `https://…`, `ssh://…` or `git@host:org/repo.git`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub repository: Option<String>,
    /// A shared repository resource instead of the inline URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_ref: Option<GitRepositoryRef>,
    /// Branch the GitOps engine syncs. Defaults to the repository resource's, then main.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub branch: Option<String>,
    /// Directory (or file) of this Rollout's manifests in the repository.
    #[schemars(length(min = 1, max = 1024))]
    pub path: String,
    /// Secret in the Rollout's namespace with credentials: `ssh-privatekey` and
    /// `known_hosts` for SSH, or `username` and `password` (a token) for HTTPS;
    /// optionally `commit-signing-key`, an OpenSSH private key that signs the revert commits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub secret_name: Option<String>,
    /// Author and committer of revert commits. Defaults to `Sluice <sluice@localhost>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<GitAuthor>,
    /// Open a pull request instead of pushing to the branch (for protected
    /// branches). The API token is the Secret's `token` key (or `password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<PullRequestSpec>,
    /// Revert when an operator aborts by hand (`sluice rollout abort --revert`
    /// overrides it each time). Aborts by analysis always revert. Defaults to false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert_on_manual_abort: Option<bool>,
}

/// Reference to a `GitRepository` (or a `ClusterGitRepository`).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GitRepositoryRef {
    /// Name of the resource.
    pub name: String,
    /// Look the name up among ClusterGitRepositories.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cluster_scope: bool,
}

/// Where to open revert pull requests.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PullRequestSpec {
    /// `GitHub`, `GitLab` or `Gitea`.
    pub provider: ForgeProvider,
    /// API base URL. Defaults to `https://api.github.com` for GitHub; required otherwise
    /// (e.g. `https://gitlab.example.com/api/v4`, `https://gitea.example.com/api/v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// `owner/name` (GitHub, Gitea) or the project path (GitLab).
    pub repository: String,
}

/// Forges Sluice opens pull requests on.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ForgeProvider {
    #[default]
    GitHub,
    GitLab,
    Gitea,
}

/// A Git identity.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GitAuthor {
    pub name: String,
    pub email: String,
}

/// The delivery strategy; exactly one member is set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.canary), has(self.blueGreen)].filter(x, x).size() == 1").message("exactly one strategy must be set: canary or blueGreen"))]
pub struct RolloutStrategy {
    /// Shift traffic to the new version in steps, judging it at each one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStrategy>,
    /// Run the new version at full size beside the old one, test it behind a
    /// preview Service, then switch all traffic at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenStrategy>,
}

/// Blue-green strategy: preview, optional analysis, one atomic switch, and
/// the old version kept warm for an instant switch back.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.previewService) || self.previewService != self.activeService").message("activeService and previewService must differ"))]
#[x_kube(validation = Rule::new("!has(self.trafficRouting) || has(self.previewService)").message("trafficRouting needs a previewService"))]
pub struct BlueGreenStrategy {
    /// Service that receives production traffic; Sluice sets its whole selector
    /// (the Rollout's labels plus the active version's pod-template hash), so
    /// leave `selector` out of it in Git. One Rollout per Service.
    #[schemars(length(min = 1, max = 253))]
    pub active_service: String,
    /// Service that reaches the new version before promotion; Sluice sets its
    /// whole selector, as for the active Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub preview_service: Option<String>,
    /// Pods of the new version before promotion (scaled to `replicas` for the
    /// switch). Defaults to `replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1").message("previewReplicaCount must be at least 1"))]
    #[x_kube(validation = Rule::new("self <= 1000000").message("previewReplicaCount must be at most 1000000"))]
    pub preview_replica_count: Option<i32>,
    /// Switch without waiting for `sluice rollout promote`. Defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promotion_enabled: Option<bool>,
    /// With auto-promotion, wait this long after the preview is ready (and its
    /// analysis passed) before switching. Defaults to 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0").message("autoPromotionSeconds must not be negative"))]
    #[x_kube(validation = Rule::new("self <= 2592000").message("autoPromotionSeconds must be at most 2592000 (30 days)"))]
    pub auto_promotion_seconds: Option<i32>,
    /// Seconds the old version keeps its pods after the switch (an instant
    /// switch back while post-promotion analysis runs, and after). Defaults to 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0").message("scaleDownDelaySeconds must not be negative"))]
    #[x_kube(validation = Rule::new("self <= 2592000").message("scaleDownDelaySeconds must be at most 2592000 (30 days)"))]
    pub scale_down_delay_seconds: Option<i32>,
    /// Seconds an aborted new version keeps its pods. Defaults to 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0").message("abortScaleDownDelaySeconds must not be negative"))]
    #[x_kube(validation = Rule::new("self <= 2592000").message("abortScaleDownDelaySeconds must be at most 2592000 (30 days)"))]
    pub abort_scale_down_delay_seconds: Option<i32>,
    /// Analysis of the preview before the switch; failing it aborts without ever switching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_promotion_analysis: Option<PromotionAnalysis>,
    /// Analysis after the switch while the old version is still warm; failing
    /// it switches back at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_promotion_analysis: Option<PromotionAnalysis>,
    /// Route through a Gateway API HTTPRoute whose backendRefs are the active
    /// and preview Services: the switch is a weight flip on the route, then
    /// the active Service's selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_routing: Option<TrafficRouting>,
}

/// An analysis run at a blue-green promotion point.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PromotionAnalysis {
    /// Templates whose metrics make up the analysis.
    #[x_kube(validation = Rule::new("self.size() > 0").message("analysis needs at least one template"))]
    #[schemars(length(max = 16))]
    pub templates: Vec<AnalysisTemplateRef>,
    /// Values for the templates' arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub args: Vec<AnalysisArg>,
}

/// Canary strategy: a list of steps run in order, then full promotion.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.trafficRouting) || (has(self.stableService) && has(self.canaryService))").message("trafficRouting needs both stableService and canaryService"))]
#[x_kube(validation = Rule::new("!has(self.stableService) || !has(self.canaryService) || self.stableService != self.canaryService").message("stableService and canaryService must differ"))]
pub struct CanaryStrategy {
    /// Steps of the rollout. When omitted: 10% → 25% → 50% → 100% with a one-minute pause between weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // maxItems (not only a CEL size check) bounds the API server's CEL cost estimate.
    #[schemars(length(max = 64))]
    pub steps: Option<Vec<CanaryStep>>,

    /// Service whose whole selector Sluice sets (the Rollout's labels plus the
    /// stable pod-template hash); leave `selector` out of it in Git. One Rollout per Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub stable_service: Option<String>,

    /// Service whose whole selector Sluice sets to the canary pods; leave
    /// `selector` out of it in Git. One Rollout per Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub canary_service: Option<String>,

    /// Traffic router that splits requests by weight. Without one, the canary's
    /// share is approximated by the ratio of canary to stable replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_routing: Option<TrafficRouting>,

    /// Extra pods allowed above `replicas` while scaling (number or percent). Defaults to 25%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,

    /// Pods that may be unavailable below `replicas` while scaling (number or percent). Defaults to 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,

    /// A dedicated baseline: a fresh ReplicaSet of the stable template at the
    /// canary's size, started with the canary, so analysis compares revisions
    /// of the same age under the same load (Kayenta's design). Without it the
    /// stable pods are the baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineSpec>,

    /// Background analysis: one AnalysisRun for the whole canary, from `startingStep`
    /// on. Failed or Error aborts at once; Inconclusive pauses (promote restarts it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<BackgroundAnalysis>,

    /// Seconds an old stable ReplicaSet keeps its pods after promotion, for instant rollback. Defaults to 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0").message("scaleDownDelaySeconds must not be negative"))]
    #[x_kube(validation = Rule::new("self <= 2592000").message("scaleDownDelaySeconds must be at most 2592000 (30 days)"))]
    pub scale_down_delay_seconds: Option<i32>,

    /// Seconds an aborted canary keeps its pods (without traffic) before scale-down. Defaults to 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0").message("abortScaleDownDelaySeconds must not be negative"))]
    #[x_kube(validation = Rule::new("self <= 2592000").message("abortScaleDownDelaySeconds must be at most 2592000 (30 days)"))]
    pub abort_scale_down_delay_seconds: Option<i32>,
}

/// One canary step; exactly one of its members is set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.setWeight), has(self.pause), has(self.analysis), has(self.setHeaderRoute), has(self.setMirrorRoute)].filter(x, x).size() == 1").message("each step sets exactly one of setWeight, pause, analysis, setHeaderRoute, setMirrorRoute"))]
pub struct CanaryStep {
    /// Send this percentage of traffic (0-100) to the canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 100").message("setWeight must be between 0 and 100"))]
    pub set_weight: Option<i32>,

    /// Wait: for a duration, or until promoted when no duration is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<PauseStep>,

    /// Run an analysis and wait for its verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisStep>,

    /// Gateway API only: send requests whose headers match to the canary,
    /// whatever its weight, through an extra route rule that Sluice owns
    /// (`sluice-canary-header`, or `sluice-route-<name>` for a `name` listed
    /// in `trafficRouting.managedRoutes`). No `match` removes the rule; it is
    /// also removed when the rollout completes or aborts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_header_route: Option<SetHeaderRoute>,

    /// Gateway API only: mirror a share of the managed rules' requests to the
    /// canary (a `RequestMirror` filter; the responses of the copies are
    /// dropped). `{}` (no `percentage`) removes the filter. With a `name` and
    /// `match`, only the matching requests are mirrored, through a rule
    /// `sluice-route-<name>`; a `name` without `match` removes that rule.
    /// Everything is also removed when the rollout completes or aborts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_mirror_route: Option<SetMirrorRoute>,
}

/// A pause step. `{}` waits for `sluice rollout promote`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PauseStep {
    /// How long to wait, e.g. `30s`, `5m`, `1h30m`, `2d`, or whole seconds such as `30`;
    /// at most 720h (30 days). Omit to wait until promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = super::limits::duration_syntax())]
    #[x_kube(validation = super::limits::duration_at_most(super::limits::MAX_PAUSE, "pause.duration"))]
    pub duration: Option<DurationOrSeconds>,
}

/// An analysis step: the rollout waits on the verdict of an `AnalysisRun`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisStep {
    /// Templates whose metrics make up the analysis.
    #[x_kube(validation = Rule::new("self.size() > 0").message("analysis needs at least one template"))]
    #[schemars(length(max = 16))]
    pub templates: Vec<AnalysisTemplateRef>,

    /// Values for the templates' arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub args: Vec<AnalysisArg>,
}

/// The dedicated baseline.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BaselineSpec {
    /// Service Sluice points at the baseline pods; required with trafficRouting,
    /// where the HTTPRoute's managed rules need a backendRef to it. The baseline
    /// gets the canary's weight (at most what is left), taken from stable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub service: Option<String>,
}

/// Analysis that runs beside the steps for the whole canary.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackgroundAnalysis {
    /// Templates whose metrics make up the analysis.
    #[x_kube(validation = Rule::new("self.size() > 0").message("analysis needs at least one template"))]
    #[schemars(length(max = 16))]
    pub templates: Vec<AnalysisTemplateRef>,
    /// Values for the templates' arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub args: Vec<AnalysisArg>,
    /// Index of the step from which the analysis runs (0 = from the start). Defaults to 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0").message("startingStep must not be negative"))]
    pub starting_step: Option<i32>,
}

/// Reference to an `AnalysisTemplate` (or a `ClusterAnalysisTemplate`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisTemplateRef {
    /// Name of the template.
    pub template_name: String,
    /// Look the name up among ClusterAnalysisTemplates instead of the namespace's templates.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cluster_scope: bool,
}

/// A named argument passed to analysis templates.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisArg {
    /// Argument name, as declared by the template.
    pub name: String,
    /// Literal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Traffic routers Sluice can drive.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.gatewayAPI)].filter(x, x).size() == 1").message("exactly one traffic router must be set (supported: gatewayAPI)"))]
pub struct TrafficRouting {
    /// Gateway API: Sluice sets the weights of the stable and canary backendRefs of an HTTPRoute or a GRPCRoute.
    #[serde(
        default,
        rename = "gatewayAPI",
        skip_serializing_if = "Option::is_none"
    )]
    pub gateway_api: Option<GatewayApiRouting>,

    /// Names of the header and mirror routes the steps may set, in order of
    /// precedence (first wins between equally specific rules), as in Argo
    /// Rollouts. A step naming a route not listed here is an invalid spec.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub managed_routes: Vec<ManagedRoute>,
}

/// Gateway API routing through an `HTTPRoute` or a `GRPCRoute`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.httpRoute) && self.httpRoute != '') != (has(self.grpcRoute) && self.grpcRoute != '')").message("set exactly one of httpRoute and grpcRoute"))]
pub struct GatewayApiRouting {
    /// Name of the HTTPRoute whose backendRefs carry the stable and canary Services.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 253))]
    pub http_route: String,
    /// Name of the GRPCRoute whose backendRefs carry the stable and canary
    /// Services (instead of `httpRoute`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub grpc_route: Option<String>,
    /// Namespace of the route. Defaults to the Rollout's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Indexes of the rules to manage. Defaults to every rule that references the stable Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "rule_indexes_schema")]
    pub rule_indexes: Option<Vec<u32>>,
}

/// `ruleIndexes` as the API server understands it: schemars would say
/// `format: uint32`, a format Kubernetes does not know and warns about.
fn rule_indexes_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "maxItems": 64,
        "items": {"type": "integer", "format": "int32", "minimum": 0}
    })
}
