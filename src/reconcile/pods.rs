//! Pods of the revision in flight, read only while an update is in flight,
//! so that the plan can say why it makes no progress (see `engine::stuck`).

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use super::Error;
use crate::crd::Rollout;
use crate::engine::hash::POD_TEMPLATE_HASH_LABEL;

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
