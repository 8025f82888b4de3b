//! Running the Git revert of an aborted canary beside the reconcile loop.
//!
//! The decision is pure (`wanted`): which abort needs a revert, whether an
//! operator's abort asked for one, and when a failed attempt may run again.
//! The work runs in a spawned task, so the traffic revert never waits for
//! Git; its record lives in `status.gitRevert`, written under its own field
//! manager (`sluice-git`) so the reconcile's status writes never erase it.
//! A task killed at any point is simply run again: the revert itself is
//! idempotent (it finds its own `Sluice-Reverts:` trailer on the branch).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::Context;
use crate::crd::{
    ClusterGitRepository, ForgeProvider, GitAuthor, GitRepository, GitRevertStatus, GitSource,
    PullRequestSpec, Rollout, RolloutStatus,
};
use crate::engine::Observed;
use crate::engine::revisions::index;
use crate::revert::pull_request::{Provider, PullRequestSettings};
use crate::revert::{Identity, RevertOutcome, RevertRequest, Target, credentials, revert_with};

/// Annotation an operator's abort carries to ask for (`true`) or refuse (`false`) a revert.
pub const ABORT_REVERT_ANNOTATION: &str = "sluice.dev/abort-revert";
const FIELD_MANAGER: &str = "sluice-git";
const FINAL_STATES: [&str; 4] = ["Reverted", "AlreadyReverted", "NotNeeded", "Skipped"];

/// What the loop should do about Git for this Rollout now.
#[derive(Debug, Clone, PartialEq)]
pub enum Wanted {
    /// Nothing (no abort, no Git source, already done, or backing off).
    Nothing,
    /// Record that this abort does not revert, and why.
    Skip { canary: String, why: &'static str },
    /// Run the revert for this aborted canary.
    Revert { canary: String, attempts: i32 },
    /// Come back after this long (a failed attempt is backing off).
    Later(Duration),
}

/// Back-off between failed attempts: 30 s, 1 min, 2 min … at most 10 min.
pub fn backoff(attempts: i32) -> Duration {
    let exponent = u32::try_from(attempts.clamp(1, 6) - 1).unwrap_or(0);
    Duration::from_secs(30 * 2u64.pow(exponent)).min(Duration::from_secs(600))
}

/// Decide from the Rollout and its current status.
pub fn wanted(rollout: &Rollout, status: &RolloutStatus, now: Timestamp) -> Wanted {
    let (Some(git), Some(abort)) = (&rollout.spec.git, &status.abort) else {
        return Wanted::Nothing;
    };
    let canary = abort.revision.clone();
    // A known-bad revision that came back to Git and was refused is reverted
    // anew: the record of its earlier abort (older than the refusal) does not
    // count. Only for refusals: a reconcile on a stale cache may plan any
    // other abort again with a later time, and must not revert twice.
    let refused = abort.reason == crate::engine::KNOWN_BAD;
    let record = status.git_revert.as_ref().filter(|r| {
        r.canary_revision == canary
            && (!refused || r.last_attempt.as_ref().is_none_or(|t| t.0 >= abort.at.0))
    });
    if let Some(record) = record {
        if FINAL_STATES.contains(&record.state.as_str()) {
            return Wanted::Nothing;
        }
        if record.state == "Failed"
            && let Some(last) = &record.last_attempt
        {
            let next = last.0 + backoff(record.attempts);
            if next > now {
                let wait = (next - now)
                    .total(jiff::Unit::Second)
                    .unwrap_or(30.0)
                    .max(1.0);
                return Wanted::Later(Duration::from_secs_f64(wait));
            }
        }
    }
    if abort.keep_git {
        return Wanted::Skip {
            canary,
            why: if abort.cannot_tell {
                "the analysis could not tell whether the canary is bad: Git is left as it is"
            } else {
                "the abort is no verdict on the image: Git is left as it is"
            },
        };
    }
    if abort.reason == "AbortedByUser" {
        let asked = rollout
            .annotations()
            .get(ABORT_REVERT_ANNOTATION)
            .map(|v| v == "true");
        if !asked.unwrap_or(git.revert_on_manual_abort.unwrap_or(false)) {
            return Wanted::Skip {
                canary,
                why: "aborted by an operator without --revert: Git is left as it is",
            };
        }
    }
    Wanted::Revert {
        canary,
        attempts: record.map(|r| r.attempts).unwrap_or(0),
    }
}

/// The image that differs between two revisions' templates (canary, stable).
pub fn images(observed: &Observed, canary: &str, stable: &str) -> Option<(String, String)> {
    let revisions = index(&observed.replica_sets);
    let containers = |hash: &str| {
        revisions
            .get(hash)
            .and_then(|r| r.template.spec.clone())
            .map(|s| s.containers)
            .unwrap_or_default()
    };
    let (canary, stable) = (containers(canary), containers(stable));
    canary.iter().find_map(|c| {
        let before = stable.iter().find(|s| s.name == c.name)?;
        match (&c.image, &before.image) {
            (Some(new), Some(old)) if new != old => Some((new.clone(), old.clone())),
            _ => None,
        }
    })
}

/// Runs reverts, at most one at a time per Rollout.
pub struct GitReverter {
    workspace: PathBuf,
    in_flight: Mutex<HashSet<String>>,
}

impl GitReverter {
    pub fn new(workspace: PathBuf) -> GitReverter {
        GitReverter {
            workspace,
            in_flight: Mutex::new(HashSet::new()),
        }
    }

    /// Start what `wanted` asks for; returns when to look again, if a retry is pending.
    pub fn consider(
        self: &Arc<Self>,
        ctx: &Arc<Context>,
        rollout: &Rollout,
        observed: &Observed,
        status: &RolloutStatus,
    ) -> Option<Duration> {
        let key = format!(
            "{}/{}",
            rollout.namespace().unwrap_or_default(),
            rollout.name_any()
        );
        match wanted(rollout, status, Timestamp::now()) {
            Wanted::Nothing => None,
            Wanted::Later(wait) => Some(wait),
            Wanted::Skip { canary, why } => {
                let record = GitRevertStatus {
                    state: "Skipped".into(),
                    canary_revision: canary,
                    message: Some(why.into()),
                    // Dated, so that a later abort of the same revision is told apart.
                    last_attempt: Some(Time(Timestamp::now())),
                    ..Default::default()
                };
                let (ctx, rollout) = (ctx.clone(), rollout.clone());
                tokio::spawn(async move { record_state(&ctx, &rollout, &record).await });
                None
            }
            Wanted::Revert { canary, attempts } => {
                {
                    let Ok(mut running) = self.in_flight.lock() else {
                        return None;
                    };
                    if !running.insert(key.clone()) {
                        return None;
                    }
                }
                let stable = status.stable_revision.clone().unwrap_or_default();
                let found = images(observed, &canary, &stable);
                // The status just planned: the Rollout object may predate the abort.
                let reason = status
                    .abort
                    .as_ref()
                    .map(|a| format!("{} ({})", a.message, a.reason))
                    .unwrap_or_else(|| "aborted".into());
                let (this, ctx, rollout) = (self.clone(), ctx.clone(), rollout.clone());
                tokio::spawn(async move {
                    this.run(&ctx, &rollout, canary, attempts + 1, found, reason)
                        .await;
                    if let Ok(mut running) = this.in_flight.lock() {
                        running.remove(&key);
                    }
                });
                None
            }
        }
    }

    async fn run(
        &self,
        ctx: &Context,
        rollout: &Rollout,
        canary: String,
        attempts: i32,
        images: Option<(String, String)>,
        reason: String,
    ) {
        let Some(git) = rollout.spec.git.clone() else {
            return;
        };
        let namespace = rollout.namespace().unwrap_or_default();
        let key = format!("{namespace}/{}", rollout.name_any());
        let mut record = GitRevertStatus {
            state: "Reverting".into(),
            canary_revision: canary.clone(),
            attempts,
            message: Some("reverting the image commit in Git".into()),
            ..Default::default()
        };
        record_state(ctx, rollout, &record).await;
        let result = async {
            let Some((canary_image, stable_image)) = images else {
                return Err(
                    "cannot tell which image the canary changed (its ReplicaSets are gone)"
                        .to_string(),
                );
            };
            let repository = resolve(&ctx.client, &namespace, &git).await?;
            let mut token = None;
            let env = match &repository.secret {
                Some((secret_namespace, name)) => {
                    let secrets: Api<Secret> =
                        Api::namespaced(ctx.client.clone(), secret_namespace);
                    let secret = secrets.get(name).await.map_err(|e| {
                        format!("cannot read Secret {secret_namespace}/{name}: {e}")
                    })?;
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
                    let keys = self
                        .workspace
                        .join("keys")
                        .join(format!("{namespace}-{}", rollout.name_any()));
                    credentials::git_env(&data, &keys).map_err(|e| e.to_string())?
                }
                None => Vec::new(),
            };
            let author = repository.author;
            let pull_request = match repository.pull_request {
                None => None,
                Some(spec) => {
                    let provider = match spec.provider {
                        ForgeProvider::GitHub => Provider::GitHub,
                        ForgeProvider::GitLab => Provider::GitLab,
                        ForgeProvider::Gitea => Provider::Gitea,
                    };
                    let api_url = match (&spec.api_url, provider) {
                        (Some(url), _) => url.clone(),
                        (None, Provider::GitHub) => "https://api.github.com".into(),
                        (None, _) => {
                            return Err(
                                "pullRequest.apiUrl is required for GitLab and Gitea".to_string()
                            );
                        }
                    };
                    Some(PullRequestSettings {
                        provider,
                        api_url,
                        repository: spec.repository,
                        token: token.clone().ok_or(
                            "pull-request mode needs a `token` (or `password`) in the Secret",
                        )?,
                    })
                }
            };
            let request = RevertRequest {
                target: Target {
                    url: repository.url,
                    branch: repository.branch,
                    path: git.path.clone(),
                },
                rollout: key.clone(),
                canary_image,
                stable_image,
                reason,
                identity: Identity {
                    name: author.name,
                    email: author.email,
                },
                workspace: self.workspace.clone(),
                attempts: 5,
                git_env: env,
                pull_request,
            };
            // Both SHAs are in status before the push; the trailer in Git makes a rerun safe.
            let pushing = record.clone();
            revert_with(&request, |reverted, revert| {
                let mut state = pushing.clone();
                state.state = "Pushing".into();
                state.message = Some(format!("pushing {revert}, which reverts {reverted}"));
                state.reverted_commit = Some(reverted);
                state.revert_commit = Some(revert);
                async move { record_state(ctx, rollout, &state).await }
            })
            .await
            .map_err(|e| e.to_string())
        }
        .await;
        record.last_attempt = Some(Time(Timestamp::now()));
        let (warning, reason, note) = match result {
            Ok(RevertOutcome::Reverted {
                reverted,
                revert,
                fallback,
                bundled,
                pull_request,
            }) => {
                let mut note = format!("reverted commit {reverted} with {revert}");
                if fallback {
                    note.push_str(" (the revert conflicted; the image was set back by an edit)");
                }
                if !bundled.is_empty() {
                    note.push_str(&format!(
                        "; the reverted commit also changed {}",
                        bundled.join(", ")
                    ));
                }
                if let Some(url) = &pull_request {
                    note.push_str(&format!("; waiting to be merged in {url}"));
                }
                record.state = "Reverted".into();
                record.pull_request = pull_request;
                record.reverted_commit = Some(reverted);
                record.revert_commit = Some(revert);
                (false, "GitReverted", note)
            }
            Ok(RevertOutcome::AlreadyReverted {
                reverted,
                revert,
                pull_request,
            }) => {
                record.pull_request = pull_request;
                record.state = "AlreadyReverted".into();
                record.reverted_commit = Some(reverted.clone());
                record.revert_commit = Some(revert.clone());
                (
                    false,
                    "GitReverted",
                    format!("commit {reverted} was already reverted by {revert}"),
                )
            }
            Ok(RevertOutcome::NotNeeded { reason }) => {
                record.state = "NotNeeded".into();
                (false, "GitRevertNotNeeded", reason)
            }
            Err(error) => {
                record.state = "Failed".into();
                let retry = humantime::format_duration(backoff(attempts));
                (
                    true,
                    "GitRevertFailed",
                    format!("{error}; traffic stays on stable; retrying in {retry}"),
                )
            }
        };
        record.message = Some(note.clone());
        if warning {
            warn!(rollout = %key, "{note}");
        } else {
            info!(rollout = %key, "{note}");
        }
        record_state(ctx, rollout, &record).await;
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(note),
            action: "GitRevert".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &rollout.object_ref(&())).await {
            warn!(rollout = %key, error = %e, "cannot publish Event");
        }
    }
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
            let api: Api<ClusterGitRepository> = Api::all(client.clone());
            let repo = api
                .get(&reference.name)
                .await
                .map_err(|e| format!("cannot read ClusterGitRepository {}: {e}", reference.name))?;
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
            let api: Api<GitRepository> = Api::namespaced(client.clone(), namespace);
            let repo = api.get(&reference.name).await.map_err(|e| {
                format!(
                    "cannot read GitRepository {namespace}/{}: {e}",
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

/// Write `status.gitRevert` under the revert task's own field manager.
async fn record_state(ctx: &Context, rollout: &Rollout, record: &GitRevertStatus) {
    let api: Api<Rollout> =
        Api::namespaced(ctx.client.clone(), &rollout.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": { "name": rollout.name_any() },
        "status": { "gitRevert": record },
    });
    if let Err(e) = api
        .patch_status(
            &rollout.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
    {
        warn!(rollout = %rollout.name_any(), error = %e, "cannot record the Git revert state");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::AbortStatus;
    use crate::engine::testkit::rollout as test_rollout;

    fn aborted(reason: &str) -> (Rollout, RolloutStatus) {
        let mut r = test_rollout(4, None, true);
        r.spec.git = Some(GitSource {
            repository: Some("https://git.example.com/apps.git".into()),
            path: "apps/web".into(),
            ..Default::default()
        });
        let status = RolloutStatus {
            abort: Some(AbortStatus {
                revision: "canaryhash".into(),
                reason: reason.into(),
                message: "m".into(),
                at: Time(Timestamp::UNIX_EPOCH),
                step_index: 1,
                weight: 10,
                cannot_tell: false,
                keep_git: false,
            }),
            ..Default::default()
        };
        (r, status)
    }

    #[test]
    fn analysis_aborts_revert_and_manual_ones_only_when_asked() {
        let now = Timestamp::UNIX_EPOCH;
        let (r, s) = aborted("AnalysisFailed");
        assert_eq!(
            wanted(&r, &s, now),
            Wanted::Revert {
                canary: "canaryhash".into(),
                attempts: 0
            }
        );
        let (mut r, s) = aborted("AbortedByUser");
        assert_eq!(
            wanted(&r, &s, now),
            Wanted::Skip {
                canary: "canaryhash".into(),
                why: "aborted by an operator without --revert: Git is left as it is",
            }
        );
        r.metadata.annotations =
            Some([(ABORT_REVERT_ANNOTATION.to_string(), "true".to_string())].into());
        assert!(matches!(wanted(&r, &s, now), Wanted::Revert { .. }));
        let (mut r, s) = aborted("AbortedByUser");
        if let Some(git) = r.spec.git.as_mut() {
            git.revert_on_manual_abort = Some(true);
        }
        r.metadata.annotations =
            Some([(ABORT_REVERT_ANNOTATION.to_string(), "false".to_string())].into());
        assert_eq!(
            wanted(&r, &s, now),
            Wanted::Skip {
                canary: "canaryhash".into(),
                why: "aborted by an operator without --revert: Git is left as it is",
            },
            "--no-revert wins"
        );
    }

    #[test]
    fn a_refused_known_bad_revision_is_reverted_anew_and_nothing_else_twice() {
        let now = Timestamp::UNIX_EPOCH;
        let earlier = GitRevertStatus {
            state: "Reverted".into(),
            canary_revision: "canaryhash".into(),
            revert_commit: Some("abc".into()),
            last_attempt: Some(Time(now)),
            attempts: 1,
            ..Default::default()
        };
        let later = Time(now + Duration::from_secs(60));
        // The same abort planned again (a stale cache) a bit later: no second revert.
        let (r, mut s) = aborted("AnalysisFailed");
        s.git_revert = Some(earlier.clone());
        if let Some(abort) = s.abort.as_mut() {
            abort.at = later.clone();
        }
        assert_eq!(wanted(&r, &s, now), Wanted::Nothing);
        // The revision came back to Git and was refused: its new commit is reverted.
        let (r, mut s) = aborted(crate::engine::KNOWN_BAD);
        s.git_revert = Some(earlier);
        if let Some(abort) = s.abort.as_mut() {
            abort.at = later;
        }
        assert!(matches!(wanted(&r, &s, now), Wanted::Revert { .. }));
        // "We cannot tell" and the progress deadline leave Git alone.
        let (r, mut s) = aborted("AnalysisError");
        if let Some(abort) = s.abort.as_mut() {
            abort.keep_git = true;
            abort.cannot_tell = true;
        }
        assert!(
            matches!(wanted(&r, &s, now), Wanted::Skip { why, .. } if why.contains("could not tell"))
        );
    }

    #[test]
    fn a_rollout_that_recovers_is_not_reverted() {
        let now = Timestamp::UNIX_EPOCH;
        // Never aborted: nothing to do in Git.
        let (r, mut s) = aborted("AnalysisFailed");
        let healthy = RolloutStatus {
            abort: None,
            ..s.clone()
        };
        assert_eq!(wanted(&r, &healthy, now), Wanted::Nothing);
        // Aborted, then retried (the abort is cleared) before the revert ran: Git stays.
        s.abort = None;
        assert_eq!(wanted(&r, &s, now), Wanted::Nothing);
        // No spec.git: aborts never touch Git.
        let (mut r, s) = aborted("AnalysisFailed");
        r.spec.git = None;
        assert_eq!(wanted(&r, &s, now), Wanted::Nothing);
    }

    #[test]
    fn done_is_done_and_failures_back_off() {
        let now = Timestamp::UNIX_EPOCH + Duration::from_secs(100);
        let (r, mut s) = aborted("AnalysisFailed");
        s.git_revert = Some(GitRevertStatus {
            state: "Reverted".into(),
            canary_revision: "canaryhash".into(),
            ..Default::default()
        });
        assert_eq!(wanted(&r, &s, now), Wanted::Nothing);
        s.git_revert = Some(GitRevertStatus {
            state: "Failed".into(),
            canary_revision: "canaryhash".into(),
            attempts: 2,
            last_attempt: Some(Time(Timestamp::UNIX_EPOCH + Duration::from_secs(90))),
            ..Default::default()
        });
        assert!(
            matches!(wanted(&r, &s, now), Wanted::Later(d) if d.as_secs() == 50),
            "{:?}",
            wanted(&r, &s, now)
        );
        let later = now + Duration::from_secs(60);
        assert_eq!(
            wanted(&r, &s, later),
            Wanted::Revert {
                canary: "canaryhash".into(),
                attempts: 2
            }
        );
        // A record about an older canary does not count for this one.
        s.git_revert = Some(GitRevertStatus {
            state: "Reverted".into(),
            canary_revision: "older".into(),
            ..Default::default()
        });
        assert!(matches!(wanted(&r, &s, now), Wanted::Revert { .. }));
    }
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
