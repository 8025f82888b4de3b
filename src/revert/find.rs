//! Which commit brought the canary's image into the repository.

use std::path::Path;

use super::edit::{holds_image, sets_image};
use super::{Error, git};

/// The commit to revert.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub sha: String,
    pub subject: String,
    /// Every file the commit changed (the revert takes them all).
    pub files: Vec<String>,
}

/// True when a unified diff adds a line that sets the canary image.
pub fn diff_sets_image(diff: &str, canary: &str) -> bool {
    diff.lines()
        .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
        .any(|l| sets_image(&l[1..], canary))
}

/// The newest commit of `rev` (at most the last 500 touching `path`) that set `canary`.
pub async fn commit_that_set(
    dir: &Path,
    rev: &str,
    path: &str,
    canary: &str,
) -> Result<Option<Found>, Error> {
    let log = git::run(dir, &["log", "--format=%H", "-n", "500", rev, "--", path]).await?;
    for sha in log.lines() {
        let diff = git::run(dir, &["show", "--format=", "--unified=0", sha, "--", path]).await?;
        // The commit that introduced the image, not a later one that touched its line.
        let parent = format!("{sha}^");
        let parent_had_it = git::run(dir, &["rev-parse", "--verify", "-q", &parent])
            .await
            .is_ok()
            && still_sets(dir, &parent, path, canary)
                .await
                .unwrap_or(false);
        if diff_sets_image(&diff, canary) && !parent_had_it {
            let subject = git::run(dir, &["log", "-1", "--format=%s", sha]).await?;
            let files = git::run(dir, &["show", "--name-only", "--format=", sha]).await?;
            return Ok(Some(Found {
                sha: sha.to_string(),
                subject,
                files: files.lines().map(str::to_string).collect(),
            }));
        }
    }
    Ok(None)
}

/// Whether the files under `path` at `rev` still set the canary image.
pub async fn still_sets(dir: &Path, rev: &str, path: &str, canary: &str) -> Result<bool, Error> {
    let files = git::run(dir, &["ls-tree", "-r", "--name-only", rev, "--", path]).await?;
    for file in files.lines() {
        let text = git::run(dir, &["show", &format!("{rev}:{file}")]).await?;
        if holds_image(&text, canary) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A commit on `rev` whose trailer says it reverts `sha`, if one exists.
pub async fn revert_of(dir: &Path, rev: &str, sha: &str) -> Result<Option<String>, Error> {
    let out = git::run(
        dir,
        &[
            "log",
            "--format=%H",
            "-n",
            "1",
            &format!("--grep=^Sluice-Reverts: {sha}$"),
            rev,
        ],
    )
    .await?;
    Ok(out.lines().next().map(str::to_string))
}

/// The shas a commit's `Sluice-Reverts:` trailers name.
pub async fn reverts_recorded(dir: &Path, commit: &str) -> Result<Vec<String>, Error> {
    let out = git::run(
        dir,
        &[
            "log",
            "-1",
            "--format=%(trailers:key=Sluice-Reverts,valueonly,separator=%x0A)",
            commit,
        ],
    )
    .await?;
    Ok(out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_added_lines_count() {
        let diff = "--- a/app/rollout.yaml\n+++ b/app/rollout.yaml\n@@ -1 +1 @@\n-      image: web:1.0.1\n+      image: web:1.0.2\n";
        assert!(diff_sets_image(diff, "web:1.0.2"));
        assert!(
            !diff_sets_image(diff, "web:1.0.1"),
            "a removed line is not a bump"
        );
    }
}
