//! What the engine sees of the cluster, gathered before planning.
//!
//! Plain data, so `plan` can be tested with fixtures and no API server.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;

use crate::crd::AnalysisRun;

/// A looked-up object: found, absent, or not readable right now.
#[derive(Clone, Debug, PartialEq)]
pub enum Lookup<T> {
    /// The object exists.
    Found(T),
    /// The API server says it does not exist.
    Missing,
}

/// A Service as far as the engine cares: its selector and who routes through it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceState {
    /// `spec.selector`.
    pub selector: BTreeMap<String, String>,
    /// The Rollout (same namespace) whose claim label the Service carries,
    /// when that Rollout still exists; a claim of a deleted Rollout is `None`.
    pub owner: Option<String>,
    /// `metadata.resourceVersion`, the precondition of a claim.
    pub resource_version: Option<String>,
}

/// An HTTPRoute (or GRPCRoute) as far as the engine cares.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteState {
    /// HTTPRoute or GRPCRoute.
    pub kind: super::spec::RouteKind,
    /// `metadata.resourceVersion`, sent back as a precondition on writes.
    pub resource_version: Option<String>,
    /// `spec.rules`, kept as JSON so unknown fields survive a write.
    pub rules: serde_json::Value,
    /// Namespace of the route: a backendRef without `namespace` points here.
    pub namespace: String,
    /// Namespace of the Rollout's Services: only backendRefs that point
    /// there are the Rollout's (a same-named Service elsewhere is not).
    pub service_namespace: String,
    /// The Rollout (`namespace/name`) whose claim annotation the route
    /// carries, when that Rollout still exists.
    pub owner: Option<String>,
}

/// The cluster state that belongs to one Rollout.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// ReplicaSets labelled with the Rollout's name and owned by it.
    pub replica_sets: Vec<ReplicaSet>,
    /// The stable and canary Services named in the spec, by name.
    pub services: BTreeMap<String, Lookup<ServiceState>>,
    /// The HTTPRoute named in the spec, when Gateway API routing is used.
    pub http_route: Option<Lookup<RouteState>>,
    /// Why the HTTPRoute may not be used, when it is in another namespace
    /// and no ReferenceGrant there allows it (it is then not read at all).
    pub http_route_refused: Option<String>,
    /// AnalysisRuns owned by the Rollout.
    pub analysis_runs: Vec<AnalysisRun>,
    /// Pods of the revision being rolled out (read only while one is in
    /// flight), to say why it makes no progress.
    pub pods: Vec<Pod>,
    /// Every pod of the Rollout (by its selector), read only while a
    /// `spec.restartAt` that has passed is not done yet.
    pub restart_pods: Vec<Pod>,
    /// The Deployment `spec.workloadRef` names (same namespace only), when
    /// the Rollout adopts one; `None` without a `workloadRef`.
    pub workload: Option<Lookup<super::workload::WorkloadState>>,
}
