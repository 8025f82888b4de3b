//! Apply: carry out a plan's writes with server-side apply.
//!
//! The state machine's field manager (`sluice`) owns exactly the fields it
//! sets: whole ReplicaSets and AnalysisRuns it creates, the selector and
//! claim label of each Service it routes through, the `rules` and claim
//! annotation of a managed HTTPRoute or GRPCRoute, `spec.replicas` of an
//! adopted Deployment (`workloadRef`), and the Rollout's status except
//! `gitRevert` and `alerts` (written through `status_write` by their own
//! workers' managers).

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Service;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use super::Error;
use super::observe::route_resource;
use super::status_write::apply_status;
use crate::crd::{AnalysisRun, Rollout, RolloutStatus};
use crate::engine::Write;
use crate::engine::claims::{self, ROUTE_CLAIM_ANNOTATION, SERVICE_CLAIM_LABEL};
use crate::engine::revisions::{self, ROLLOUT_LABEL};

/// The field manager of the state machine's writes (objects and Rollout status).
pub use super::status_write::ENGINE_MANAGER as FIELD_MANAGER;
/// The field manager of the claim label alone on a Service (see `engine::claims`).
pub const CLAIM_FIELD_MANAGER: &str = "sluice-claim";

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Carry out one write.
pub async fn apply(client: &Client, rollout: &Rollout, write: &Write) -> Result<(), Error> {
    let namespace = rollout.namespace().unwrap_or_else(|| "default".into());
    match write {
        Write::ApplyReplicaSet(desired) => {
            let rs = revisions::build(rollout, desired);
            let name = rs.name_any();
            let api: Api<ReplicaSet> = Api::namespaced(client.clone(), &namespace);
            api.patch(&name, &apply_params(), &Patch::Apply(&rs))
                .await
                .map_err(|e| Error::Write("ReplicaSet", name, e))?;
        }
        Write::DeleteReplicaSet { name } => {
            let api: Api<ReplicaSet> = Api::namespaced(client.clone(), &namespace);
            let params = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                ..DeleteParams::default()
            };
            match api.delete(name, &params).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => return Err(Error::Write("ReplicaSet", name.clone(), e)),
            }
        }
        Write::ClaimService {
            service,
            resource_version,
        } => {
            let api: Api<Service> = Api::namespaced(client.clone(), &namespace);
            let mut metadata = json!({
                "name": service,
                "labels": { SERVICE_CLAIM_LABEL: claims::service_claim(rollout) },
            });
            if let Some(version) = resource_version {
                // Precondition: of two Rollouts claiming at once, one wins.
                metadata["resourceVersion"] = json!(version);
            }
            let patch = json!({ "apiVersion": "v1", "kind": "Service", "metadata": metadata });
            // Its own field manager, so that this apply leaves the selector alone.
            api.patch(
                service,
                &PatchParams::apply(CLAIM_FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
            .map_err(|e| Error::Write("Service", service.clone(), e))?;
        }
        Write::SelectRevision { service, revision } => {
            let api: Api<Service> = Api::namespaced(client.clone(), &namespace);
            let patch = json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": service,
                    "labels": { SERVICE_CLAIM_LABEL: claims::service_claim(rollout) },
                },
                "spec": { "selector": claims::service_selector(rollout, revision) },
            });
            api.patch(service, &apply_params(), &Patch::Apply(&patch))
                .await
                .map_err(|e| Error::Write("Service", service.clone(), e))?;
        }
        Write::SetRouteWeights {
            kind,
            namespace,
            name,
            resource_version,
            rules,
            ..
        } => {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), namespace, &route_resource(*kind));
            let mut metadata = json!({
                "name": name,
                "namespace": namespace,
                "annotations": { ROUTE_CLAIM_ANNOTATION: claims::route_claim(rollout) },
            });
            if let Some(version) = resource_version {
                // Precondition: fail instead of overwriting a route changed since it was read.
                metadata["resourceVersion"] = json!(version);
            }
            let patch = json!({
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": kind.kind(),
                "metadata": metadata,
                "spec": { "rules": rules },
            });
            api.patch(name, &apply_params(), &Patch::Apply(&patch))
                .await
                .map_err(|e| Error::Write(kind.kind(), name.clone(), e))?;
        }
        Write::CreateAnalysisRun { name, spec } => {
            let api: Api<AnalysisRun> = Api::namespaced(client.clone(), &namespace);
            let mut run = AnalysisRun::new(name, spec.clone());
            run.metadata.namespace = Some(namespace.clone());
            run.metadata.labels = Some([(ROLLOUT_LABEL.to_string(), rollout.name_any())].into());
            run.metadata.owner_references = rollout.controller_owner_ref(&()).map(|o| vec![o]);
            match api
                .create(
                    &PostParams {
                        field_manager: Some(FIELD_MANAGER.into()),
                        ..PostParams::default()
                    },
                    &run,
                )
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(e) => return Err(Error::Write("AnalysisRun", name.clone(), e)),
            }
        }
        Write::TerminateAnalysisRun { name } => {
            let api: Api<AnalysisRun> = Api::namespaced(client.clone(), &namespace);
            let patch = serde_json::json!({ "spec": { "terminate": true } });
            match api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => return Err(Error::Write("AnalysisRun", name.clone(), e)),
            }
        }
        Write::DeleteAnalysisRun { name } => {
            let api: Api<AnalysisRun> = Api::namespaced(client.clone(), &namespace);
            match api.delete(name, &Default::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => return Err(Error::Write("AnalysisRun", name.clone(), e)),
            }
        }
        Write::ScaleDeployment { name, replicas } => {
            // The scale subresource: only `spec.replicas` changes, and the
            // Rollout's namespace is the only one it can reach.
            let api: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
            let scale = json!({
                "apiVersion": "autoscaling/v1",
                "kind": "Scale",
                "metadata": { "name": name, "namespace": namespace },
                "spec": { "replicas": replicas },
            });
            api.patch_scale(name, &apply_params(), &Patch::Apply(&scale))
                .await
                .map_err(|e| Error::Write("Deployment", name.clone(), e))?;
        }
        // Evicted by the reconcile itself (`restart_pod`), with the client
        // that does not retry 429, so that each outcome becomes an Event.
        Write::EvictPod { .. } => {}
    }
    Ok(())
}

/// Persist the Rollout's status (the whole of it, owned by this field manager).
pub async fn write_status(
    client: &Client,
    rollout: &Rollout,
    status: &RolloutStatus,
) -> Result<(), Error> {
    let namespace = rollout.namespace().unwrap_or_else(|| "default".into());
    let name = rollout.name_any();
    // status.gitRevert and status.alerts belong to the revert and alert
    // tasks' field managers: leave them out.
    let mut status = status.clone();
    status.git_revert = None;
    status.alerts = Vec::new();
    let status = json!(status);
    apply_status::<Rollout>(client, Some(&namespace), &name, FIELD_MANAGER, status)
        .await
        .map_err(|e| Error::Write("Rollout status", name, e))?;
    Ok(())
}
