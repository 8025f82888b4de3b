//! Pods of the revision in flight, read only while an update is in flight,
//! so that the plan can say why it makes no progress (see `engine::stuck`);
//! and the pods of a restart (`spec.restartAt`), with their eviction.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{EvictParams, ListParams};
use kube::{Api, Client, ResourceExt};

use super::Error;
use crate::crd::Rollout;
use crate::engine::hash::POD_TEMPLATE_HASH_LABEL;
use crate::engine::restart;

/// Pods of `rollout`'s canary revision as its status names it; none when nothing is in flight.
pub async fn in_flight(client: &Client, rollout: &Rollout) -> Result<Vec<Pod>, Error> {
    let Some(revision) = rollout
        .status
        .as_ref()
        .and_then(|s| s.canary_revision.clone())
    else {
        return Ok(Vec::new());
    };
    let mut labels: Vec<String> = rollout
        .spec
        .selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    labels.push(format!("{POD_TEMPLATE_HASH_LABEL}={revision}"));
    let namespace = rollout.namespace().unwrap_or_else(|| "default".into());
    let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    // A bounded page: the first few pods say enough about why.
    let params = ListParams::default().labels(&labels.join(",")).limit(50);
    Ok(api
        .list(&params)
        .await
        .map_err(|e| Error::Read("Pods", e))?
        .items)
}

/// Every pod of `rollout` (by its selector's labels), read only while a
/// `spec.restartAt` that has passed is not done; none otherwise.
pub async fn for_restart(
    client: &Client,
    rollout: &Rollout,
    now: jiff::Timestamp,
) -> Result<Vec<Pod>, Error> {
    let restart_at = rollout.spec.restart_at.as_ref().map(|t| t.0);
    let restarted_at = rollout
        .status
        .as_ref()
        .and_then(|s| s.restarted_at.as_ref())
        .map(|t| t.0);
    match restart::pending(restart_at, restarted_at) {
        Some(at) if at <= now => {}
        _ => return Ok(Vec::new()),
    }
    let labels: Vec<String> = rollout
        .spec
        .selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if labels.is_empty() {
        return Ok(Vec::new());
    }
    let namespace = rollout.namespace().unwrap_or_else(|| "default".into());
    let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    // Every pod, unpaged: a missed pod could be one that must not be evicted.
    let params = ListParams::default().labels(&labels.join(","));
    Ok(api
        .list(&params)
        .await
        .map_err(|e| Error::Read("Pods", e))?
        .items)
}

/// How an eviction for a restart went.
#[derive(Debug)]
pub enum Eviction {
    /// Accepted: the pod terminates and its ReplicaSet replaces it.
    Accepted,
    /// Refused with 429 (a PodDisruptionBudget allows no disruption now).
    Refused(String),
    /// The pod is gone already.
    Gone,
}

/// Evict `name` through the Eviction API (never a plain delete, never forced).
pub async fn evict(client: &Client, namespace: &str, name: &str) -> Result<Eviction, Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match api.evict(name, &EvictParams::default()).await {
        Ok(_) => Ok(Eviction::Accepted),
        Err(kube::Error::Api(status)) if status.code == 429 => {
            Ok(Eviction::Refused(status.message))
        }
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Eviction::Gone),
        Err(e) => Err(Error::Write("Pod eviction", name.to_string(), e)),
    }
}
