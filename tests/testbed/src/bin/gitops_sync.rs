//! `sluice-gitops-sync`: apply the manifests at the head of a Git branch
//! whenever the head moves, as Argo CD's auto-sync does.
//!
//! Prints `SLUICE_GITOPS_SYNCED <commit>` on stdout after each successful
//! sync. A failed sync (bad YAML, unknown kind, API error) is logged and
//! retried at the next poll; the last good commit stays applied.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use sluice_testbed::gitops::{Applier, fetch_and_checkout, remote_head, render};

#[derive(Parser, Debug)]
#[command(name = "sluice-gitops-sync", about, long_about = None)]
struct Args {
    /// Repository URL or path (a local bare repository in the tests and demo).
    #[arg(long)]
    repo: String,
    /// Branch to follow.
    #[arg(long, default_value = "main")]
    branch: String,
    /// Directory inside the repository holding the manifests (or a kustomization.yaml).
    #[arg(long, default_value = ".")]
    path: PathBuf,
    /// Namespace for objects that do not name one.
    #[arg(long, short = 'n')]
    namespace: String,
    /// Work tree for checkouts.
    #[arg(long)]
    work_dir: PathBuf,
    /// How often to look at the branch head.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    interval: Duration,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let client = kube::Client::try_default()
        .await
        .context("connect to the API server (KUBECONFIG)")?;
    let mut applier = Applier::new(client, &args.namespace);
    let mut synced: Option<String> = None;
    let mut last_error = String::new();
    loop {
        match sync_once(&args, &mut applier, synced.as_deref()).await {
            Ok(Some(commit)) => {
                println!("SLUICE_GITOPS_SYNCED {commit}");
                synced = Some(commit);
                last_error.clear();
            }
            Ok(None) => {}
            Err(error) => {
                let text = format!("{error:#}");
                if text != last_error {
                    tracing::error!("sync failed, retrying every {:?}: {text}", args.interval);
                    last_error = text;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(args.interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// Sync when the branch head differs from `synced`; returns the commit applied.
async fn sync_once(
    args: &Args,
    applier: &mut Applier,
    synced: Option<&str>,
) -> Result<Option<String>> {
    let Some(head) = remote_head(&args.repo, &args.branch)? else {
        return Ok(None);
    };
    if synced == Some(head.as_str()) {
        return Ok(None);
    }
    let commit = fetch_and_checkout(&args.repo, &args.branch, &args.work_dir)?;
    let docs = render(&args.work_dir.join(&args.path))?;
    let mut applied = Vec::with_capacity(docs.len());
    for doc in &docs {
        applied.push(applier.apply(doc).await?);
    }
    tracing::info!(commit = %commit, objects = ?applied, "synced");
    Ok(Some(commit))
}
