//! Making Git agree with the cluster after an abort: find the commit that
//! brought the canary's image into the GitOps repository and revert it.
//!
//! Built on the `git` command line rather than a library: it pushes over
//! SSH and HTTPS with the credentials and known-hosts handling every
//! platform team already trusts, handles large histories well, and keeps the
//! controller binary free of a C library (libgit2) or a partial push
//! implementation.
//!
//! - `edit`: pure text edits for the fallback (plain manifests, kustomize
//!   `images:`, Helm values);
//! - `find`: which commit set the canary image, read from diffs;
//! - `git`: the command runner;
//! - `run`: the whole revert, exactly once, with push retries;
//! - `policy`: when to revert and what a result means for `status.gitRevert` (pure);
//! - `workspace`: the shared clone and the lock that serialises its users.

pub mod credentials;
pub mod edit;
pub mod find;
pub mod git;
pub mod policy;
pub mod pull_request;
pub mod run;
pub mod workspace;

pub use run::{RevertOutcome, RevertRequest, find_pushed, revert, revert_with};

/// Where a Rollout lives in Git.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Clone URL (`https://…`, `ssh://…`, `git@host:…`, or a local path in tests).
    pub url: String,
    /// Branch the GitOps engine syncs.
    pub branch: String,
    /// Directory (or file) of the Rollout's manifests inside the repository.
    pub path: String,
}

/// Author and committer of the revert.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub name: String,
    pub email: String,
}

/// Why a revert could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A git command failed (auth denied, repository not found, network down…).
    #[error("git {command} failed: {message}")]
    Git { command: String, message: String },
    /// The git binary could not be started.
    #[error("cannot run git: {0}")]
    Spawn(#[source] std::io::Error),
    /// The path does not exist on the branch.
    #[error("path {path:?} does not exist on branch {branch}")]
    PathNotFound { path: String, branch: String },
    /// Neither the revert nor the fallback could set the stable image.
    #[error("cannot set the image back: {0}")]
    CannotRevert(String),
    /// The branch kept moving faster than the revert could be pushed.
    #[error("push rejected {attempts} times because the branch kept moving")]
    BranchKeptMoving { attempts: usize },
    /// After the push, the branch does not hold a commit that says it reverts the bump.
    #[error("the pushed revert {revert} cannot be confirmed: {why}")]
    Unverified { revert: String, why: String },
    /// Local workspace problems.
    #[error("workspace {0}: {1}")]
    Workspace(String, #[source] std::io::Error),
}
