//! Where a Rollout's revert goes and with which credentials: `spec.git`
//! merged over the `GitRepository` or `ClusterGitRepository` it names, the
//! Secret read into `git`'s environment, and pull-request settings, built
//! into one `RevertRequest`.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};

use super::status_write::get_scoped;
use crate::crd::{
    ClusterGitRepository, ForgeProvider, GitAuthor, GitRepository, GitSource, PullRequestSpec,
    Rollout,
};
use crate::revert::credentials::{self, Credentials};
use crate::revert::pull_request::{Provider, PullRequestSettings};
use crate::revert::{Identity, RevertRequest, Target};

/// Push attempts of one revert when the branch keeps moving.
const PUSH_ATTEMPTS: usize = 10;

/// A revert request and the key files it needs (kept until the revert ends).
pub struct Prepared {
    pub request: RevertRequest,
    pub credentials: Option<Credentials>,
}

/// Build the request for `rollout` (images and reason may be empty when only
/// looking for an earlier revert on the branch).
pub async fn prepare_request(
    client: &kube::Client,
    rollout: &Rollout,
    workspace: &Path,
    images: (String, String),
    reason: String,
) -> Result<Prepared, String> {
    let git = rollout
        .spec
        .git
        .clone()
        .ok_or("the Rollout has no spec.git")?;
    let namespace = rollout.namespace().unwrap_or_default();
    let repository = resolve(client, &namespace, &git).await?;
    let mut token = None;
    let credentials = match &repository.secret {
        Some((secret_namespace, name)) => {
            let secrets: Api<Secret> = Api::namespaced(client.clone(), secret_namespace);
            let secret = secrets
                .get(name)
                .await
                .map_err(|e| format!("cannot read Secret {secret_namespace}/{name}: {e}"))?;
            let data: BTreeMap<String, Vec<u8>> = secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            token = data
                .get("token")
                .or_else(|| data.get("password"))
                .map(|v| String::from_utf8_lossy(v).trim().to_string());
            // A private directory per revert, removed when the revert ends.
            let keys = workspace.join("keys");
            Some(credentials::git_env(&data, &keys).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    let pull_request = match repository.pull_request {
        None => None,
        Some(spec) => Some(pull_request_settings(spec, token)?),
    };
    let (canary_image, stable_image) = images;
    let request = RevertRequest {
        target: Target {
            url: repository.url,
            branch: repository.branch,
            path: git.path.clone(),
        },
        rollout: format!("{namespace}/{}", rollout.name_any()),
        canary_image,
        stable_image,
        reason,
        identity: Identity {
            name: repository.author.name,
            email: repository.author.email,
        },
        workspace: workspace.to_path_buf(),
        attempts: PUSH_ATTEMPTS,
        git_env: credentials
            .as_ref()
            .map(|c| c.env.clone())
            .unwrap_or_default(),
        pull_request,
    };
    Ok(Prepared {
        request,
        credentials,
    })
}

fn pull_request_settings(
    spec: PullRequestSpec,
    token: Option<String>,
) -> Result<PullRequestSettings, String> {
    let provider = match spec.provider {
        ForgeProvider::GitHub => Provider::GitHub,
        ForgeProvider::GitLab => Provider::GitLab,
        ForgeProvider::Gitea => Provider::Gitea,
    };
    let api_url = match (&spec.api_url, provider) {
        (Some(url), _) => url.clone(),
        (None, Provider::GitHub) => "https://api.github.com".into(),
        (None, _) => return Err("pullRequest.apiUrl is required for GitLab and Gitea".into()),
    };
    Ok(PullRequestSettings {
        provider,
        api_url,
        repository: spec.repository,
        token: token.ok_or("pull-request mode needs a `token` (or `password`) in the Secret")?,
    })
}

/// A repository's settings after a shared resource (if any) was read.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub url: String,
    pub branch: String,
    /// (namespace, name) of the credentials Secret.
    pub secret: Option<(String, String)>,
    pub author: GitAuthor,
    pub pull_request: Option<PullRequestSpec>,
}

/// What a `GitRepository` or `ClusterGitRepository` provides.
#[derive(Debug, Clone, PartialEq)]
pub struct Shared {
    pub url: String,
    pub branch: Option<String>,
    pub secret: Option<(String, String)>,
    pub author: Option<GitAuthor>,
    pub pull_request: Option<PullRequestSpec>,
}

/// Merge a Rollout's `spec.git` over its repository resource; the Rollout's own fields win.
pub fn merge(git: &GitSource, namespace: &str, shared: Option<Shared>) -> Result<Resolved, String> {
    let Shared {
        url,
        branch,
        secret,
        author,
        pull_request,
    } = match shared {
        Some(shared) => shared,
        None => Shared {
            url: git
                .repository
                .clone()
                .ok_or("spec.git needs repository or repositoryRef")?,
            branch: None,
            secret: None,
            author: None,
            pull_request: None,
        },
    };
    Ok(Resolved {
        url,
        branch: git
            .branch
            .clone()
            .or(branch)
            .unwrap_or_else(|| "main".into()),
        secret: git
            .secret_name
            .clone()
            .map(|name| (namespace.to_string(), name))
            .or(secret),
        pull_request: git.pull_request.clone().or(pull_request),
        author: git.author.clone().or(author).unwrap_or(GitAuthor {
            name: "Sluice".into(),
            email: "sluice@localhost".into(),
        }),
    })
}

/// Read the repository resource `spec.git` names, if any, and merge.
async fn resolve(
    client: &kube::Client,
    namespace: &str,
    git: &GitSource,
) -> Result<Resolved, String> {
    let shared = match &git.repository_ref {
        None => None,
        Some(reference) if reference.cluster_scope => {
            let repo: ClusterGitRepository = get_scoped(client, None, &reference.name)
                .await
                .map_err(|e| format!("cannot read ClusterGitRepository {}: {e}", reference.name))?
                .ok_or_else(|| format!("ClusterGitRepository {} does not exist", reference.name))?;
            // Its credentials are the platform's: only listed namespaces may push with them.
            if !crate::crd::tenancy::namespace_allowed(&repo.spec.allowed_namespaces, namespace) {
                return Err(crate::crd::tenancy::not_allowed_message(
                    "ClusterGitRepository",
                    &reference.name,
                    namespace,
                ));
            }
            let secret = match (&repo.spec.secret_name, &repo.spec.secret_namespace) {
                (Some(name), Some(ns)) => Some((ns.clone(), name.clone())),
                (Some(_), None) => {
                    return Err(format!(
                        "ClusterGitRepository {} names a Secret without secretNamespace",
                        reference.name
                    ));
                }
                _ => None,
            };
            Some(Shared {
                url: repo.spec.url,
                branch: repo.spec.branch,
                secret,
                author: repo.spec.author,
                pull_request: repo.spec.pull_request,
            })
        }
        Some(reference) => {
            let repo: GitRepository = get_scoped(client, Some(namespace), &reference.name)
                .await
                .map_err(|e| {
                    format!(
                        "cannot read GitRepository {namespace}/{}: {e}",
                        reference.name
                    )
                })?
                .ok_or_else(|| {
                    format!(
                        "GitRepository {namespace}/{} does not exist",
                        reference.name
                    )
                })?;
            let secret = repo
                .spec
                .secret_name
                .map(|name| (namespace.to_string(), name));
            Some(Shared {
                url: repo.spec.url,
                branch: repo.spec.branch,
                secret,
                author: repo.spec.author,
                pull_request: repo.spec.pull_request,
            })
        }
    };
    merge(git, namespace, shared)
}

#[cfg(test)]
mod merge_tests {
    use super::*;

    #[test]
    fn the_rollouts_own_fields_win_over_the_shared_repository() {
        let git = GitSource {
            repository_ref: Some(crate::crd::GitRepositoryRef {
                name: "deploy".into(),
                cluster_scope: false,
            }),
            branch: Some("release".into()),
            path: "apps/web".into(),
            ..Default::default()
        };
        let shared = Some(Shared {
            url: "ssh://git@example.com/deploy.git".to_string(),
            branch: Some("main".to_string()),
            secret: Some(("shop".to_string(), "deploy-key".to_string())),
            author: None,
            pull_request: None,
        });
        let resolved = merge(&git, "shop", shared).expect("merge");
        assert_eq!(resolved.url, "ssh://git@example.com/deploy.git");
        assert_eq!(resolved.branch, "release");
        assert_eq!(resolved.secret, Some(("shop".into(), "deploy-key".into())));
        assert_eq!(resolved.author.name, "Sluice");
        let inline = GitSource::default();
        assert!(
            merge(&inline, "shop", None).is_err(),
            "neither repository nor repositoryRef"
        );
    }
}
