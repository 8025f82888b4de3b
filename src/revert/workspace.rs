//! The local clone a revert works in, and the lock that makes it exclusive.
//!
//! Every Rollout of one repository and branch shares one clone (a fetch of a
//! large history is done once, not per Rollout), so two reverts must never
//! run in it at the same time: they would read each other's `HEAD`, commit
//! each other's staged files and trip over `index.lock`. The lock is held
//! for the whole revert, from fetch to the verified push:
//! - within the process, an async mutex per clone directory queues reverts
//!   without blocking the runtime;
//! - across processes (an old and a new controller during a failover that
//!   share a workspace volume), an exclusive `flock` on a file beside the
//!   clone; the kernel drops it when its holder dies, so a crash never
//!   leaves the clone locked.
//!
//! With both held, any `*.lock` file inside `.git` belongs to a `git` that
//! was killed with its controller; it is removed before work starts, or
//! every later revert of that repository would fail on it.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::OwnedMutexGuard;

use super::{Error, git};

/// How often a revert waiting for another process's lock looks again.
const LOCK_POLL: Duration = Duration::from_millis(200);

/// The clone directory of a repository URL and branch under `workspace`.
pub fn clone_dir(workspace: &Path, url: &str, branch: &str) -> PathBuf {
    let digest = Sha256::digest(format!("{url}#{branch}"));
    let name: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    workspace.join(name)
}

/// Exclusive use of one clone directory, until dropped.
#[derive(Debug)]
pub struct CloneLock {
    // Field order is drop order: the file lock goes before the in-process turn.
    _file: File,
    _turn: OwnedMutexGuard<()>,
}

fn turns() -> &'static Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>> {
    static TURNS: OnceLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    TURNS.get_or_init(Default::default)
}

/// Wait for exclusive use of `dir` (in this process and across processes),
/// then clear lock files a killed `git` left behind.
pub async fn lock(dir: &Path) -> Result<CloneLock, Error> {
    let workspace_error = |e| Error::Workspace(dir.display().to_string(), e);
    let turn = {
        let mut turns = turns()
            .lock()
            .map_err(|_| workspace_error(std::io::Error::other("lock table poisoned")))?;
        turns.entry(dir.to_path_buf()).or_default().clone()
    };
    let turn = turn.lock_owned().await;
    let parent = dir.parent().unwrap_or(dir);
    std::fs::create_dir_all(parent).map_err(workspace_error)?;
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.with_extension("lock"))
        .map_err(workspace_error)?;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) => tokio::time::sleep(LOCK_POLL).await,
            Err(std::fs::TryLockError::Error(e)) => return Err(workspace_error(e)),
        }
    }
    remove_stale_git_locks(&dir.join(".git")).map_err(workspace_error)?;
    Ok(CloneLock {
        _file: file,
        _turn: turn,
    })
}

/// Remove `*.lock` files under `.git` (index, config, HEAD, refs, packed-refs).
fn remove_stale_git_locks(git_dir: &Path) -> std::io::Result<()> {
    let mut pending = vec![git_dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            let kind = entry.file_type()?;
            // The object store is large and never holds ref or index locks.
            if kind.is_dir() && entry.file_name() != "objects" {
                pending.push(path);
            } else if kind.is_file() && path.extension().is_some_and(|e| e == "lock") {
                tracing::warn!(file = %path.display(), "removing a lock file left by a killed git");
                std::fs::remove_file(&path)?;
            }
        }
    }
    Ok(())
}

/// Make `dir` a repository whose `origin` is `url` (under the lock).
pub async fn prepare(dir: &Path, url: &str) -> Result<(), Error> {
    if !dir.join(".git").join("HEAD").exists() {
        // A clone killed while it was being created: start it again.
        if dir.exists() {
            std::fs::remove_dir_all(dir)
                .map_err(|e| Error::Workspace(dir.display().to_string(), e))?;
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::Workspace(dir.display().to_string(), e))?;
        git::run(dir, &["init", "-q"]).await?;
    }
    let remotes = git::run(dir, &["remote"]).await?;
    if remotes.lines().any(|r| r == "origin") {
        git::run(dir, &["remote", "set-url", "origin", url]).await?;
    } else {
        git::run(dir, &["remote", "add", "origin", url]).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lock_files_of_a_killed_git_are_cleared_and_the_lock_is_exclusive() {
        let root = std::env::temp_dir().join(format!("sluice-lock-{}", std::process::id()));
        let dir = clone_dir(&root, "https://git.example.com/apps.git", "main");
        std::fs::create_dir_all(dir.join(".git/refs/heads")).expect("dirs");
        std::fs::write(dir.join(".git/index.lock"), "").expect("stale index lock");
        std::fs::write(dir.join(".git/refs/heads/main.lock"), "").expect("stale ref lock");
        let held = lock(&dir).await.expect("lock");
        assert!(!dir.join(".git/index.lock").exists());
        assert!(!dir.join(".git/refs/heads/main.lock").exists());
        let second = tokio::time::timeout(Duration::from_millis(300), lock(&dir)).await;
        assert!(second.is_err(), "a second revert waits for the first");
        drop(held);
        let again = tokio::time::timeout(Duration::from_secs(10), lock(&dir)).await;
        assert!(
            matches!(again, Ok(Ok(_))),
            "free again once the first is done"
        );
        let _ = std::fs::remove_dir_all(root);
    }
}
