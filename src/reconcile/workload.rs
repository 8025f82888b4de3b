//! Read the Deployment a Rollout adopts (`spec.workloadRef`).
//!
//! Only in the Rollout's own namespace (a `workloadRef` has no namespace
//! field, and none is ever added: one tenant cannot adopt another's
//! Deployment), and only a kind Sluice adopts: a wrong kind is reported by
//! `engine::workload::resolve` without any read.

use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, Client, ResourceExt};

use super::Error;
use crate::crd::Rollout;
use crate::engine::Lookup;
use crate::engine::workload::{WorkloadState, reference_problems};

/// The adopted Deployment; `None` without a usable `workloadRef`.
pub async fn observe(
    client: &Client,
    rollout: &Rollout,
) -> Result<Option<Lookup<WorkloadState>>, Error> {
    let Some(reference) = &rollout.spec.workload_ref else {
        return Ok(None);
    };
    if !reference_problems(reference).is_empty() {
        return Ok(None);
    }
    let namespace = rollout.namespace().unwrap_or_else(|| "default".into());
    let api: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let found = api
        .get_opt(&reference.name)
        .await
        .map_err(|e| Error::Read("Deployments", e))?;
    Ok(Some(match found {
        Some(deployment) => Lookup::Found(WorkloadState::from_deployment(&deployment)),
        None => Lookup::Missing,
    }))
}
