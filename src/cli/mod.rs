//! Command-line interface of the `sluice` binary.

pub mod analyze;
pub mod rollout;
pub mod show;

use std::net::SocketAddr;

use clap::{Parser, Subcommand};

use crate::telemetry::LogFormat;

/// `sluice --version`: the crate version (from Cargo.toml, the one place it
/// is set) and the Git commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("SLUICE_GIT_COMMIT"),
    ")"
);

/// Sluice: progressive delivery for Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "sluice", version = VERSION, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller (inside the cluster, or locally against your kubeconfig).
    Controller(ControllerArgs),
    /// Inspect and steer Rollouts.
    ///
    /// Exit status: 0 done, 1 an error (or `status --watch` ended Aborted or
    /// Degraded), 3 a control with nothing to act on (nothing to promote,
    /// abort or retry); nothing is changed then.
    Rollout(rollout::RolloutArgs),
    /// Evaluate an analysis template against Prometheus over a past window, for two revisions.
    ///
    /// Exit status: 0 Successful, 1 anything else (Failed, Inconclusive,
    /// Error, or a window too short to decide).
    Analyze(analyze::AnalyzeArgs),
    /// Print the CustomResourceDefinitions (apply with `kubectl apply --server-side -f -`).
    Crds,
}

/// Flags of `sluice controller`.
#[derive(Debug, clap::Args)]
pub struct ControllerArgs {
    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, env = "SLUICE_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "SLUICE_NAMESPACE")]
    pub namespace: Option<String>,
    /// Do not take part in leader election (run exactly one replica then).
    #[arg(long, env = "SLUICE_NO_LEADER_ELECTION")]
    pub no_leader_election: bool,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "sluice-system")]
    pub lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "sluice-controller")]
    pub lease_name: String,
    /// Identity of this replica in the Lease (default: pod name or hostname).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Rollouts reconciled concurrently.
    #[arg(long, default_value_t = 8)]
    pub concurrency: u16,
    /// Log format.
    #[arg(long, env = "SLUICE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Directory for the Git clones that reverts work in (default: a `sluice-git` temp directory).
    /// One clone per repository and branch, used by one revert at a time (also across
    /// processes sharing the directory); per-revert key files go to private `keys/` subdirectories.
    #[arg(long, env = "SLUICE_GIT_WORKSPACE")]
    pub git_workspace: Option<std::path::PathBuf>,
    /// Rollouts the alert queue holds; beyond it a Rollout waits for its next reconcile.
    #[arg(long, default_value_t = 1024)]
    pub alert_queue: usize,
    /// Alert deliveries running at the same time (one Rollout each).
    #[arg(long, default_value_t = 4)]
    pub alert_workers: usize,
    /// First back-off of a failed alert delivery; it doubles up to 30s, with jitter.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub alert_backoff: std::time::Duration,
    /// Longest wait between two rounds of delivery of an alert that is still
    /// pending (receiver down, Secret missing); the wait doubles up to it.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub alert_retry_max_interval: std::time::Duration,
}
