//! ReplicaSets as revisions: indexing what exists and building what to apply.
//!
//! Each pod-template hash has one ReplicaSet named `<rollout>-<hash>`, owned
//! by the Rollout. The engine always applies the whole object it owns, so a
//! server-side apply with one field manager converges on exactly this shape.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::Resource;

use super::hash::POD_TEMPLATE_HASH_LABEL;
use crate::crd::Rollout;

/// Label naming the Rollout on every ReplicaSet it owns.
pub const ROLLOUT_LABEL: &str = "sluice.dev/rollout";
/// Annotation holding the revision number (1, 2, ...) of a ReplicaSet.
pub const REVISION_ANNOTATION: &str = "sluice.dev/revision";
/// Annotation holding when an old ReplicaSet is due to be scaled down.
pub const SCALE_DOWN_AT_ANNOTATION: &str = "sluice.dev/scale-down-at";

/// One revision as observed.
#[derive(Clone, Debug, PartialEq)]
pub struct Revision {
    /// ReplicaSet name.
    pub name: String,
    /// Pod-template hash.
    pub hash: String,
    /// Revision number, higher is newer.
    pub number: i64,
    /// `spec.replicas`.
    pub desired: i32,
    /// `status.replicas`: pods that exist.
    pub current: i32,
    /// `status.readyReplicas`.
    pub ready: i32,
    /// `status.availableReplicas`.
    pub available: i32,
    /// Scale-down deadline, if one was set.
    pub scale_down_at: Option<Timestamp>,
    /// The pod template (without the hash label).
    pub template: PodTemplateSpec,
    /// True while the ReplicaSet controller has not yet seen the latest spec.
    pub stale: bool,
}

impl Revision {
    /// Read a ReplicaSet; `None` if it carries no hash label.
    pub fn from_replica_set(rs: &ReplicaSet) -> Option<Revision> {
        let labels = rs.metadata.labels.as_ref()?;
        let hash = labels.get(POD_TEMPLATE_HASH_LABEL)?.clone();
        let annotations = rs.metadata.annotations.clone().unwrap_or_default();
        let spec = rs.spec.as_ref();
        let status = rs.status.as_ref();
        let mut template = spec.and_then(|s| s.template.clone()).unwrap_or_default();
        if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            labels.remove(POD_TEMPLATE_HASH_LABEL);
        }
        let observed_generation = status.and_then(|s| s.observed_generation).unwrap_or(0);
        Some(Revision {
            name: rs.metadata.name.clone().unwrap_or_default(),
            hash,
            number: annotations
                .get(REVISION_ANNOTATION)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            desired: spec.and_then(|s| s.replicas).unwrap_or(1),
            current: status.map(|s| s.replicas).unwrap_or(0),
            ready: status.and_then(|s| s.ready_replicas).unwrap_or(0),
            available: status.and_then(|s| s.available_replicas).unwrap_or(0),
            scale_down_at: annotations
                .get(SCALE_DOWN_AT_ANNOTATION)
                .and_then(|v| v.parse().ok()),
            template,
            stale: observed_generation < rs.metadata.generation.unwrap_or(0),
        })
    }
}

/// Revisions by hash.
pub fn index(replica_sets: &[ReplicaSet]) -> BTreeMap<String, Revision> {
    replica_sets
        .iter()
        .filter_map(Revision::from_replica_set)
        .map(|r| (r.hash.clone(), r))
        .collect()
}

/// Name of the ReplicaSet for `hash`.
pub fn replica_set_name(rollout: &Rollout, hash: &str) -> String {
    format!(
        "{}-{hash}",
        rollout.metadata.name.as_deref().unwrap_or("rollout")
    )
}

/// What one ReplicaSet should look like.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredReplicaSet {
    /// Pod-template hash.
    pub hash: String,
    /// Template (without the hash label).
    pub template: PodTemplateSpec,
    /// Pods wanted.
    pub replicas: i32,
    /// Revision number.
    pub number: i64,
    /// Scale-down deadline to record, if any.
    pub scale_down_at: Option<Timestamp>,
}

/// The full ReplicaSet object to server-side apply.
pub fn build(rollout: &Rollout, desired: &DesiredReplicaSet) -> ReplicaSet {
    let rollout_name = rollout.metadata.name.clone().unwrap_or_default();
    let mut match_labels = rollout
        .spec
        .selector
        .match_labels
        .clone()
        .unwrap_or_default();
    match_labels.insert(POD_TEMPLATE_HASH_LABEL.into(), desired.hash.clone());
    let mut template = desired.template.clone();
    let meta = template.metadata.get_or_insert_with(ObjectMeta::default);
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .insert(POD_TEMPLATE_HASH_LABEL.into(), desired.hash.clone());
    let mut labels = meta.labels.clone().unwrap_or_default();
    labels.insert(ROLLOUT_LABEL.into(), rollout_name);
    let mut annotations =
        BTreeMap::from([(REVISION_ANNOTATION.to_string(), desired.number.to_string())]);
    if let Some(at) = desired.scale_down_at {
        annotations.insert(SCALE_DOWN_AT_ANNOTATION.into(), at.to_string());
    }
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(replica_set_name(rollout, &desired.hash)),
            namespace: rollout.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: owner_reference(rollout).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(desired.replicas),
            selector: LabelSelector {
                match_labels: Some(match_labels),
                match_expressions: None,
            },
            template: Some(template),
            min_ready_seconds: None,
        }),
        status: None,
    }
}

/// Controller owner reference to the Rollout, so ReplicaSets are garbage-collected with it.
pub fn owner_reference(rollout: &Rollout) -> Option<OwnerReference> {
    rollout.controller_owner_ref(&())
}
