//! One revert, end to end: fetch, find, revert (or fall back to an edit),
//! commit with trailers, push; on a branch that moved meanwhile, start over
//! on the new head. Never a force-push.
//!
//! Exactly once: the revert commit carries `Sluice-Reverts: <sha>`, and every
//! attempt first looks for such a commit on the branch. A controller killed
//! after committing but before pushing simply redoes the work (its local
//! commit never reached the remote); one killed after pushing finds its
//! trailer and reports the existing revert.

use std::path::{Path, PathBuf};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use super::edit::set_back;
use super::find::{Found, commit_that_set, revert_of, reverts_recorded, still_sets};
use super::pull_request::{PullRequestSettings, find_open, open};
use super::workspace::{clone_dir, lock, prepare};
use super::{Error, Identity, Target, git};

/// What to revert and why.
#[derive(Debug, Clone)]
pub struct RevertRequest {
    pub target: Target,
    /// `namespace/name` of the Rollout.
    pub rollout: String,
    pub canary_image: String,
    pub stable_image: String,
    /// One line: why the canary was aborted (the analysis summary and its numbers).
    pub reason: String,
    pub identity: Identity,
    /// Directory for local clones (one per repository and branch).
    pub workspace: PathBuf,
    /// Push attempts when the branch keeps moving.
    pub attempts: usize,
    /// Environment for fetch and push (credentials).
    pub git_env: Vec<(String, String)>,
    /// Open a pull request instead of pushing to the branch (protected branches).
    pub pull_request: Option<PullRequestSettings>,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum RevertOutcome {
    /// A revert commit was pushed.
    Reverted {
        reverted: String,
        revert: String,
        /// The revert conflicted; the image was set back by an edit instead.
        fallback: bool,
        /// Files the reverted commit changed outside the Rollout's path.
        bundled: Vec<String>,
        /// Web URL of the pull request, in pull-request mode.
        pull_request: Option<String>,
    },
    /// A commit that reverts it already exists (pushed before a restart, or
    /// waiting in its pull request).
    AlreadyReverted {
        reverted: String,
        revert: String,
        pull_request: Option<String>,
    },
    /// Nothing to do, and why.
    NotNeeded { reason: String },
}

fn message(request: &RevertRequest, found: &Found, fallback: bool, bundled: &[String]) -> String {
    let mut text = format!(
        "Revert \"{}\"\n\nSluice aborted the canary of Rollout {}: {}\n\nThis reverts commit {}, which set the image to {}; the stable image is {}.\n",
        found.subject,
        request.rollout,
        request.reason,
        found.sha,
        request.canary_image,
        request.stable_image
    );
    if !bundled.is_empty() {
        text.push_str(&format!(
            "The reverted commit also changed {}; they are reverted with it, as the one change that was reviewed.\n",
            bundled.join(", ")
        ));
    }
    if fallback {
        text.push_str(&format!(
            "Reverting the commit conflicted with later changes, so this commit only sets the image back to {} under {}.\n",
            request.stable_image, request.target.path
        ));
    }
    text.push_str(&format!(
        "\nSluice-Rollout: {}\nSluice-Reverts: {}\n",
        request.rollout, found.sha
    ));
    text
}

/// The fallback: edit every file under the path; false when nothing held the canary image.
async fn edit_back(dir: &Path, request: &RevertRequest) -> Result<bool, Error> {
    let files = git::run(dir, &["ls-files", "--", &request.target.path]).await?;
    let mut changed = false;
    for file in files.lines() {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::Workspace(file.into(), e))?;
        if let Some(new) = set_back(&text, &request.canary_image, &request.stable_image) {
            std::fs::write(&path, new).map_err(|e| Error::Workspace(file.into(), e))?;
            changed = true;
        }
    }
    Ok(changed)
}

/// Revert the commit that set the canary image on the request's branch.
pub async fn revert(request: &RevertRequest) -> Result<RevertOutcome, Error> {
    revert_with(request, |_, _| async {}).await
}

/// `revert`, calling `before_push(reverted, revert)` once the revert commit
/// exists and before it is pushed, so the caller can record both SHAs first.
pub async fn revert_with<F, Fut>(
    request: &RevertRequest,
    mut before_push: F,
) -> Result<RevertOutcome, Error>
where
    F: FnMut(String, String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (branch, path) = (&request.target.branch, &request.target.path);
    let dir = clone_dir(&request.workspace, &request.target.url, branch);
    // Held until the revert is pushed and verified: Rollouts of one repository share the clone.
    let _exclusive = lock(&dir).await?;
    let remote = format!("refs/remotes/origin/{branch}");
    prepare(&dir, &request.target.url).await?;
    // Short pauses: other reverts of this repository wait for the lock, so the only
    // race left is with people and CI, and a long pause only widens the next window.
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(2))
        .with_jitter()
        .with_max_times(request.attempts.max(1))
        .build();
    let mut attempts = 0;
    loop {
        attempts += 1;
        fetch(&dir, branch, &request.git_env).await?;
        let head = git::run(&dir, &["rev-parse", &remote]).await?;
        if git::run(&dir, &["cat-file", "-e", &format!("{remote}:{path}")])
            .await
            .is_err()
        {
            return Err(Error::PathNotFound {
                path: path.clone(),
                branch: branch.clone(),
            });
        }
        let Some(found) = commit_that_set(&dir, &remote, path, &request.canary_image).await? else {
            return Ok(RevertOutcome::NotNeeded {
                reason: format!(
                    "no commit on {branch} sets {} under {path}",
                    request.canary_image
                ),
            });
        };
        if let Some((revert, pull_request)) = existing_revert(&dir, request, &found.sha).await? {
            return Ok(RevertOutcome::AlreadyReverted {
                reverted: found.sha,
                revert,
                pull_request,
            });
        }
        let pr_branch = pull_request_branch(&found.sha);
        if !still_sets(&dir, &remote, path, &request.canary_image).await? {
            return Ok(RevertOutcome::NotNeeded {
                reason: format!(
                    "{branch} no longer sets {} under {path}",
                    request.canary_image
                ),
            });
        }
        git::run(
            &dir,
            &["checkout", "-q", "-f", "-B", "sluice-revert", &remote],
        )
        .await?;
        git::run(&dir, &["clean", "-q", "-fdx"]).await?;
        let fallback = match git::run(&dir, &["revert", "--no-commit", &found.sha]).await {
            Ok(_) => false,
            Err(_) => {
                let _ = git::run(&dir, &["revert", "--abort"]).await;
                git::run(
                    &dir,
                    &["checkout", "-q", "-f", "-B", "sluice-revert", &remote],
                )
                .await?;
                if !edit_back(&dir, request).await? {
                    return Err(Error::CannotRevert(format!(
                        "the revert of {} conflicts and no file under {path} holds {}",
                        found.sha, request.canary_image
                    )));
                }
                git::run(&dir, &["add", "-A", "--", path]).await?;
                true
            }
        };
        let prefix = path.trim_end_matches('/');
        let bundled: Vec<String> = found
            .files
            .iter()
            .filter(|f| !(f.as_str() == prefix || f.starts_with(&format!("{prefix}/"))))
            .cloned()
            .collect();
        let text = message(
            request,
            &found,
            fallback,
            if fallback { &[] } else { &bundled },
        );
        let name = format!("user.name={}", request.identity.name);
        let email = format!("user.email={}", request.identity.email);
        // The environment carries the commit-signing settings, if any.
        git::run_full(
            &dir,
            &["-c", &name, "-c", &email, "commit", "-q", "-F", "-"],
            Some(&text),
            &request.git_env,
        )
        .await?;
        let revert = git::run(&dir, &["rev-parse", "HEAD"]).await?;
        before_push(found.sha.clone(), revert.clone()).await;
        let push_to = match &request.pull_request {
            Some(_) => pr_branch.clone(),
            None => branch.clone(),
        };
        match git::run_with_env(
            &dir,
            &[
                "push",
                "-q",
                "origin",
                &format!("HEAD:refs/heads/{push_to}"),
            ],
            &request.git_env,
        )
        .await
        {
            Ok(_) => {
                // What status will record must be what Git holds: the pushed commit, on the
                // branch, carrying this Rollout's trailer for this bump.
                fetch(&dir, &push_to, &request.git_env).await?;
                verify_pushed(&dir, &push_to, &revert, &found.sha).await?;
                let pull_request = match &request.pull_request {
                    Some(settings) => {
                        Some(ensure_request(settings, &pr_branch, branch, &dir, &revert).await?)
                    }
                    None => None,
                };
                return Ok(RevertOutcome::Reverted {
                    reverted: found.sha,
                    revert,
                    fallback,
                    bundled: if fallback { Vec::new() } else { bundled },
                    pull_request,
                });
            }
            Err(error) => {
                // Decided on the branch, not on the message: retry only if it really moved;
                // a hook or a protected branch would reject forever.
                fetch(&dir, branch, &request.git_env).await?;
                let now = git::run(&dir, &["rev-parse", &remote]).await?;
                if now == head {
                    return Err(error);
                }
                match delays.next() {
                    Some(delay) => tokio::time::sleep(delay).await,
                    None => return Err(Error::BranchKeptMoving { attempts }),
                }
            }
        }
    }
}

/// The branch a pull-request-mode revert of `reverted` is pushed to.
fn pull_request_branch(reverted: &str) -> String {
    format!("sluice/revert-{}", &reverted[..reverted.len().min(12)])
}

/// A commit whose trailer says it reverts `reverted`: on the branch (fetched
/// already), or waiting in its own pull-request branch (and its open request).
async fn existing_revert(
    dir: &Path,
    request: &RevertRequest,
    reverted: &str,
) -> Result<Option<(String, Option<String>)>, Error> {
    let branch = &request.target.branch;
    let remote = format!("refs/remotes/origin/{branch}");
    if let Some(revert) = revert_of(dir, &remote, reverted).await? {
        return Ok(Some((revert, None)));
    }
    let Some(settings) = &request.pull_request else {
        return Ok(None);
    };
    let pr_branch = pull_request_branch(reverted);
    let listed = git::run_with_env(
        dir,
        &["ls-remote", "origin", &format!("refs/heads/{pr_branch}")],
        &request.git_env,
    )
    .await?;
    if listed.is_empty() {
        return Ok(None);
    }
    fetch(dir, &pr_branch, &request.git_env).await?;
    let pr_remote = format!("refs/remotes/origin/{pr_branch}");
    match revert_of(dir, &pr_remote, reverted).await? {
        Some(revert) => {
            let url = ensure_request(settings, &pr_branch, branch, dir, &revert).await?;
            Ok(Some((revert, Some(url))))
        }
        None => Ok(None),
    }
}

/// After a restart, settle a revert a killed controller was pushing: the
/// commit (and pull request) that reverts `reverted`, if it reached the
/// remote. Only the request's target, workspace, environment and
/// pull-request settings are used.
pub async fn find_pushed(
    request: &RevertRequest,
    reverted: &str,
) -> Result<Option<(String, Option<String>)>, Error> {
    let branch = &request.target.branch;
    let dir = clone_dir(&request.workspace, &request.target.url, branch);
    let _exclusive = lock(&dir).await?;
    prepare(&dir, &request.target.url).await?;
    fetch(&dir, branch, &request.git_env).await?;
    existing_revert(&dir, request, reverted).await
}

/// Fetch `branch` of origin into `refs/remotes/origin/<branch>`.
async fn fetch(dir: &Path, branch: &str, env: &[(String, String)]) -> Result<(), Error> {
    let refspec = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
    git::run_with_env(dir, &["fetch", "-q", "origin", &refspec], env).await?;
    Ok(())
}

/// Check that `revert` is on origin's `branch` and says it reverts `reverted`.
async fn verify_pushed(
    dir: &Path,
    branch: &str,
    revert: &str,
    reverted: &str,
) -> Result<(), Error> {
    let remote = format!("refs/remotes/origin/{branch}");
    let unverified = |why: String| Error::Unverified {
        revert: revert.to_string(),
        why,
    };
    if git::run(dir, &["merge-base", "--is-ancestor", revert, &remote])
        .await
        .is_err()
    {
        return Err(unverified(format!("it is not on {branch} after the push")));
    }
    let trailers = reverts_recorded(dir, revert).await?;
    if !trailers.iter().any(|t| t == reverted) {
        return Err(unverified(format!(
            "its Sluice-Reverts trailer names {trailers:?}, not {reverted}"
        )));
    }
    Ok(())
}

/// The open request for `head`, or a new one titled and described by the revert commit.
async fn ensure_request(
    settings: &PullRequestSettings,
    head: &str,
    base: &str,
    dir: &Path,
    revert: &str,
) -> Result<String, Error> {
    if let Some(url) = find_open(settings, head, base).await? {
        return Ok(url);
    }
    let title = git::run(dir, &["log", "-1", "--format=%s", revert]).await?;
    let body = git::run(dir, &["log", "-1", "--format=%b", revert]).await?;
    open(settings, head, base, &title, &body).await
}
