//! `sluice-gitops-sync`: apply the manifests at the head of a Git branch
//! whenever the head moves, as Argo CD's auto-sync does.
//!
//! Prints `SLUICE_GITOPS_SYNCED <commit>` on stdout after each successful
//! sync. A failed sync (bad YAML, unknown kind, API error) is logged and
//! retried at the next poll; the last good commit stays applied. When the
//! API server refuses some objects (e.g. an admission policy), the others are
//! applied anyway, `SLUICE_GITOPS_REFUSED <commit> <errors>` is printed, and
//! the commit is not tried again until the branch moves, as Argo CD's
//! automated sync does without `retry`.

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
            Ok(Some(Synced { commit, refused })) if refused.is_empty() => {
                println!("SLUICE_GITOPS_SYNCED {commit}");
                synced = Some(commit);
                last_error.clear();
            }
            // As Argo CD's automated sync: a commit whose objects the API server
            // refused is not re-attempted until the branch moves.
            Ok(Some(Synced { commit, refused })) => {
                let text = refused.join(" | ");
                println!("SLUICE_GITOPS_REFUSED {commit} {text}");
                tracing::error!(commit = %commit, "sync failed, objects refused: {text}");
                synced = Some(commit);
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

/// A commit applied: every object the API server accepted, and why it refused the others.
struct Synced {
    commit: String,
    refused: Vec<String>,
}

/// Sync when the branch head differs from `synced`; returns the commit applied.
async fn sync_once(
    args: &Args,
    applier: &mut Applier,
    synced: Option<&str>,
) -> Result<Option<Synced>> {
    let Some(head) = remote_head(&args.repo, &args.branch)? else {
        return Ok(None);
    };
    if synced == Some(head.as_str()) {
        return Ok(None);
    }
    let commit = fetch_and_checkout(&args.repo, &args.branch, &args.work_dir)?;
    let docs = render(&args.work_dir.join(&args.path))?;
    let mut applied = Vec::with_capacity(docs.len());
    let mut refused = Vec::new();
    // As Argo CD does: every object is applied; one refused object (e.g. by an
    // admission policy) fails the sync without holding back the others.
    for doc in &docs {
        match applier.apply(doc).await {
            Ok(object) => applied.push(object),
            Err(error) => refused.push(format!("{error:#}")),
        }
    }
    tracing::info!(commit = %commit, objects = ?applied, "applied");
    Ok(Some(Synced { commit, refused }))
}
