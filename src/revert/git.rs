//! Running `git` with no prompts, in a given directory, with typed errors.
//!
//! Decisions are taken on exit codes and porcelain output, never on the
//! wording of a message; messages are still produced in the `C` locale.

use std::path::Path;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use super::Error;

/// Run `git args…` in `dir`; stdout on success.
pub async fn run(dir: &Path, args: &[&str]) -> Result<String, Error> {
    run_full(dir, args, None, &[]).await
}

/// Run `git args…` in `dir`, feeding `input` on stdin.
pub async fn run_with_input(
    dir: &Path,
    args: &[&str],
    input: Option<&str>,
) -> Result<String, Error> {
    run_full(dir, args, input, &[]).await
}

/// Run `git args…` with extra environment (the credentials of fetch and push).
pub async fn run_with_env(
    dir: &Path,
    args: &[&str],
    env: &[(String, String)],
) -> Result<String, Error> {
    run_full(dir, args, None, env).await
}

/// Run `git args…` with `input` on stdin and extra environment.
pub async fn run_full(
    dir: &Path,
    args: &[&str],
    input: Option<&str>,
    env: &[(String, String)],
) -> Result<String, Error> {
    let mut command = tokio::process::Command::new("git");
    command
        .arg("-C")
        .arg(dir)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        // Untranslated messages, whatever the pod's or the Secret's locale: they end
        // up in status and Events, and one language keeps them searchable.
        .env("LC_ALL", "C")
        .env_remove("LANGUAGE")
        // Never wait for a password on a terminal that is not there.
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "true")
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(Error::Spawn)?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .await
            .map_err(Error::Spawn)?;
    }
    let out = child.wait_with_output().await.map_err(Error::Spawn)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
    } else {
        Err(Error::Git {
            command: args.first().copied().unwrap_or_default().to_string(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}
