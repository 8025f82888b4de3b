//! Adopting an existing Deployment (`spec.workloadRef`), decided without I/O.
//!
//! Before planning, [`resolve`] gives the Rollout the Deployment's pod
//! template (and selector, when the Rollout names none), so the revision
//! hash, the ReplicaSets and a new canary on a template change work exactly
//! as with `spec.template`. After the plan has run, [`Planner::adopt_workload`]
//! decides the Deployment's replicas:
//!
//! - `never`: left alone.
//! - `progressively`: `replicas - available` of the stable revision, never
//!   more than the Deployment has (Sluice only scales it down). Pod for pod:
//!   a Deployment pod goes only once a Rollout pod is available in its place,
//!   so the two together keep `spec.replicas` available pods, which is at
//!   least what the Rollout promises (`replicas - maxUnavailable`).
//! - `onsuccess`: 0 once the Rollout is Healthy (all its pods available).
//!
//! While the Deployment still has pods, the stable Service keeps the
//! selector it had (the application's labels, which both the Deployment's
//! pods and the Rollout's pods carry) until the stable revision has all its
//! pods available; only then does Sluice point it at that revision. A
//! template change in that window waits (no canary pod may be reachable
//! through a Service selecting the application's labels only).

use std::borrow::Cow;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::observed::Lookup;
use super::plan::{PlannedEvent, Planner, Write};
use crate::crd::workload_ref::{
    DEPLOYMENT_API_VERSION, DEPLOYMENT_KIND, selector_is_empty, template_is_empty,
};
use crate::crd::{Rollout, RolloutPhase, ScaleDown, WorkloadRef};

pub use crate::crd::reasons::{ADOPTION_IN_PROGRESS, WORKLOAD_REF_INVALID};
/// Event reason of a scale-down of the adopted Deployment.
pub const DEPLOYMENT_SCALED_DOWN: &str = "DeploymentScaledDown";

/// The adopted Deployment as far as the engine cares.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkloadState {
    /// Deployment name.
    pub name: String,
    /// `spec.template`.
    pub template: PodTemplateSpec,
    /// `spec.selector`.
    pub selector: LabelSelector,
    /// `spec.replicas` (the API server defaults it to 1).
    pub replicas: i32,
    /// `status.availableReplicas`.
    pub available: i32,
}

impl WorkloadState {
    /// Read a Deployment.
    pub fn from_deployment(deployment: &Deployment) -> WorkloadState {
        let spec = deployment.spec.as_ref();
        WorkloadState {
            name: deployment.metadata.name.clone().unwrap_or_default(),
            template: spec.map(|s| s.template.clone()).unwrap_or_default(),
            selector: spec.map(|s| s.selector.clone()).unwrap_or_default(),
            replicas: spec.and_then(|s| s.replicas).unwrap_or(1).max(0),
            available: deployment
                .status
                .as_ref()
                .and_then(|s| s.available_replicas)
                .unwrap_or(0)
                .max(0),
        }
    }
}

/// What is wrong with a `workloadRef` on its own (before reading anything);
/// a kind Sluice does not adopt is never read at all.
pub fn reference_problems(reference: &WorkloadRef) -> Vec<String> {
    let mut problems = Vec::new();
    if reference.api_version != DEPLOYMENT_API_VERSION || reference.kind != DEPLOYMENT_KIND {
        problems.push(format!(
            "spec.workloadRef: {} {:?} cannot be adopted; Sluice adopts {DEPLOYMENT_API_VERSION} {DEPLOYMENT_KIND}s only",
            reference.kind, reference.api_version
        ));
    }
    if reference.name.is_empty() {
        problems.push("spec.workloadRef.name must not be empty".into());
    }
    problems
}

/// The Rollout as the engine plans it: with `workloadRef`, the Deployment's
/// template (and selector, if the Rollout sets none) filled in. `workload`
/// is what was read of the Deployment (`None`: nothing was read).
pub fn resolve<'a>(
    rollout: &'a Rollout,
    workload: Option<&Lookup<WorkloadState>>,
) -> Result<Cow<'a, Rollout>, Vec<String>> {
    let Some(reference) = &rollout.spec.workload_ref else {
        return Ok(Cow::Borrowed(rollout));
    };
    let mut problems = reference_problems(reference);
    if !template_is_empty(&rollout.spec.template) {
        problems.push("set exactly one of spec.template and spec.workloadRef".into());
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let namespace = rollout.metadata.namespace.as_deref().unwrap_or("default");
    let deployment = match workload {
        Some(Lookup::Found(deployment)) if deployment.name == reference.name => deployment,
        _ => {
            return Err(vec![format!(
                "spec.workloadRef: Deployment {:?} not found in namespace {namespace:?}; nothing is scaled until it exists",
                reference.name
            )]);
        }
    };
    let name = &reference.name;
    if template_is_empty(&deployment.template) {
        return Err(vec![format!(
            "spec.workloadRef: Deployment {name:?} has no pod template"
        )]);
    }
    let mut resolved = rollout.clone();
    resolved.spec.template = deployment.template.clone();
    if selector_is_empty(&resolved.spec.selector) {
        if deployment
            .selector
            .match_expressions
            .as_ref()
            .is_some_and(|e| !e.is_empty())
        {
            return Err(vec![format!(
                "spec.workloadRef: Deployment {name:?} selects its pods with matchExpressions, which Sluice does not support; set spec.selector.matchLabels on the Rollout"
            )]);
        }
        resolved.spec.selector = deployment.selector.clone();
    }
    Ok(Cow::Owned(resolved))
}

/// Replicas the adopted Deployment should have now, when that differs from
/// what it has; `None` leaves it as it is. `replicas` is the Rollout's,
/// `available` its stable revision's available pods, `healthy` whether this
/// plan finds the Rollout Healthy. Never more than the Deployment has.
pub fn deployment_target(
    scale_down: ScaleDown,
    replicas: i32,
    deployment: &WorkloadState,
    available: i32,
    healthy: bool,
) -> Option<i32> {
    let target = match scale_down {
        ScaleDown::Never => return None,
        // Pod for pod: what the Rollout does not yet serve stays.
        ScaleDown::Progressively => replicas.saturating_sub(available.max(0)).max(0),
        ScaleDown::OnSuccess if healthy => 0,
        ScaleDown::OnSuccess => return None,
    };
    (target < deployment.replicas).then_some(target)
}

impl Planner<'_> {
    /// The adopted Deployment, when there is one and it was found.
    fn workload(&self) -> Option<(&WorkloadRef, &WorkloadState)> {
        let reference = self.rollout.spec.workload_ref.as_ref()?;
        match &self.observed.workload {
            Some(Lookup::Found(state)) => Some((reference, state)),
            _ => None,
        }
    }

    /// True while the adopted Deployment still has pods and `service` still
    /// has its own selector (Sluice has not pointed it at a revision yet):
    /// the Service then keeps serving through both until the Rollout takes over.
    pub(super) fn adopting_through(&self, service: &str) -> bool {
        self.workload()
            .is_some_and(|(_, d)| d.replicas > 0 || d.available > 0)
            && matches!(self.observed.services.get(service), Some(Lookup::Found(_)))
            && self.service_selects(service).is_none()
    }

    /// True while the stable Service still serves the adopted Deployment's
    /// pods: a new revision waits (see the module header).
    pub(super) fn adoption_holds_updates(&self) -> bool {
        self.settings
            .stable_service
            .as_deref()
            .is_some_and(|s| self.adopting_through(s))
    }

    /// A new template while the adopted Deployment's pods still serve: keep
    /// the stable revision as it is and say what the update waits for.
    pub(super) fn hold_for_adoption(&mut self, stable: &str, desired: &str) {
        self.steady(stable);
        let deployment = self
            .workload()
            .map(|(r, _)| r.name.clone())
            .unwrap_or_default();
        let available = self.revisions.get(stable).map(|r| r.available).unwrap_or(0);
        let replicas = self.settings.replicas;
        let message = format!(
            "revision {desired} waits until the adoption of Deployment {deployment} is done: \
             its pods serve through the stable Service until stable revision {stable} has \
             all its pods available ({available}/{replicas})"
        );
        let held_already = self
            .old
            .conditions
            .iter()
            .any(|c| c.reason == ADOPTION_IN_PROGRESS)
            && self
                .old
                .message
                .as_deref()
                .is_some_and(|m| m.starts_with(&format!("revision {desired} waits")));
        if !held_already {
            self.event(false, ADOPTION_IN_PROGRESS, message.clone());
        }
        self.set_outcome(RolloutPhase::Progressing, ADOPTION_IN_PROGRESS, message);
    }

    /// The stable revision has all its pods available.
    pub(super) fn stable_complete(&self, stable: &str) -> bool {
        self.revisions
            .get(stable)
            .is_some_and(|r| r.available >= self.settings.replicas && !r.stale)
    }

    /// Scale the adopted Deployment down as `scaleDown` says (after the
    /// plan ran, as it depends on the outcome); returns the Event to add
    /// once the plan is finished (an Event here would hide the phase's).
    pub(super) fn adopt_workload(&mut self) -> Option<PlannedEvent> {
        let (reference, deployment) = self.workload()?;
        let scale_down = reference.scale_down();
        let deployment = deployment.clone();
        let available = self
            .status
            .stable_revision
            .as_ref()
            .and_then(|h| self.revisions.get(h))
            .map(|r| r.available)
            .unwrap_or(0);
        let healthy = self.outcome.phase == RolloutPhase::Healthy;
        let replicas = self.settings.replicas;
        let target = deployment_target(scale_down, replicas, &deployment, available, healthy)?;
        self.writes.push(Write::ScaleDeployment {
            name: deployment.name.clone(),
            replicas: target,
        });
        Some(PlannedEvent {
            warning: false,
            reason: DEPLOYMENT_SCALED_DOWN.into(),
            note: format!(
                "scaling Deployment {} from {} to {target} replicas (scaleDown: {}): the Rollout has {available}/{replicas} pods available",
                deployment.name,
                deployment.replicas,
                scale_down.as_str()
            ),
        })
    }
}
