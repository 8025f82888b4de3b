//! `GitRepository` and `ClusterGitRepository`: one place for a GitOps
//! repository's URL, branch, credentials and revert author, shared by every
//! Rollout that lives in it.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::rollout::{GitAuthor, PullRequestSpec};

/// A GitOps repository Rollouts can reference from `spec.git.repositoryRef`.
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "GitRepository",
    namespaced,
    shortname = "sgitrepo",
    category = "sluice",
    derive = "PartialEq",
    doc = "A GitOps repository shared by the Rollouts of a namespace"
)]
#[serde(rename_all = "camelCase")]
pub struct GitRepositorySpec {
    /// Clone URL: `https://…`, `ssh://…` or `git@host:org/repo.git`.
    #[schemars(length(min = 1, max = 1024))]
    pub url: String,
    /// Branch the GitOps engine syncs. Defaults to main.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Secret with credentials (`ssh-privatekey` + `known_hosts`, or `username` + `password`),
    /// in the resource's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// Author and committer of revert commits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<GitAuthor>,
    /// Open pull requests instead of pushing (protected branches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<PullRequestSpec>,
}

/// A GitOps repository every namespace's Rollouts can reference.
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "ClusterGitRepository",
    shortname = "scgitrepo",
    category = "sluice",
    derive = "PartialEq",
    doc = "A GitOps repository shared by Rollouts of every namespace"
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterGitRepositorySpec {
    /// Clone URL.
    #[schemars(length(min = 1, max = 1024))]
    pub url: String,
    /// Branch the GitOps engine syncs. Defaults to main.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Secret with credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// Namespace of the Secret (the controller's namespace by convention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_namespace: Option<String>,
    /// Author and committer of revert commits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<GitAuthor>,
    /// Open pull requests instead of pushing (protected branches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<PullRequestSpec>,
    /// Namespaces whose Rollouts may revert through this repository (with its
    /// credentials); `*` admits every namespace. Empty (the default) denies all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_namespaces: Vec<String>,
}
