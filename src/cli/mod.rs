//! Command-line interface of the `sluice` binary.

pub mod analyze;
mod analyze_live;
pub mod docs;
mod examples;
pub mod format;
pub mod get;
pub mod kubeconfig;
pub mod lint;
pub mod list;
pub mod migrate;
pub mod output;
pub mod restart;
pub mod rollout;
pub mod set_image;
pub mod show;
pub mod tree;
pub mod undo;
mod undo_defaults;
pub mod undo_run;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::Path;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

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
#[command(name = "sluice", version = VERSION, about, long_about = None, after_help = examples::ROOT)]
pub struct Cli {
    /// Which cluster: --kubeconfig and --context, for every command.
    #[command(flatten)]
    pub kube: kubeconfig::KubeArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The name kubectl runs a plugin under: `kubectl sluice …` runs `kubectl-sluice …`.
pub const PLUGIN_NAME: &str = "kubectl-sluice";

/// Whether the program was started as the kubectl plugin (argv[0] is `kubectl-sluice`).
pub fn invoked_as_plugin(argv0: Option<&OsString>) -> bool {
    argv0
        .and_then(|a| Path::new(a).file_stem())
        .is_some_and(|stem| stem == PLUGIN_NAME)
}

impl Cli {
    /// The command tree, its usage shown as `kubectl sluice` when started as the plugin.
    pub fn command_for(plugin: bool) -> clap::Command {
        let cmd = Cli::command();
        if plugin {
            cmd.bin_name("kubectl sluice")
        } else {
            cmd
        }
    }

    /// Parse the process arguments (exits with usage on an error, as `Parser::parse`).
    pub fn parse_args() -> (Cli, bool) {
        let args: Vec<OsString> = std::env::args_os().collect();
        let plugin = invoked_as_plugin(args.first());
        let matches = Cli::command_for(plugin).get_matches_from(args);
        match Cli::from_arg_matches(&matches) {
            Ok(cli) => (cli, plugin),
            Err(err) => err.format(&mut Cli::command_for(plugin)).exit(),
        }
    }
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller (inside the cluster, or locally against your kubeconfig).
    #[command(after_help = examples::CONTROLLER)]
    Controller(ControllerArgs),
    /// Inspect and steer Rollouts.
    ///
    /// Exit status: 0 done, 1 an error (or `status --watch` ended Aborted or
    /// Degraded), 3 a control with nothing to act on (nothing to promote,
    /// abort or retry); nothing is changed then.
    #[command(after_help = examples::ROLLOUT)]
    Rollout(rollout::RolloutArgs),
    /// Evaluate an analysis template against Prometheus over a past window, for two revisions.
    ///
    /// Exit status: 0 Successful, 1 anything else (Failed, Inconclusive,
    /// Error, or a window too short to decide).
    #[command(after_help = examples::ANALYZE)]
    Analyze(analyze::AnalyzeArgs),
    /// Check Rollouts, AnalysisTemplates and ClusterAnalysisTemplates offline.
    ///
    /// Each YAML document (a file may hold many; `-` reads standard input) is
    /// checked against the schema and CEL rules of Sluice's CRDs, then by the validation the
    /// controller runs (steps, weights, durations, selectors, routing; metric
    /// conditions and `{{args.NAME}}` placeholders; the args a Rollout gives
    /// to templates linted with it). Objects of other API groups are skipped.
    /// The CRDs' CEL rules are evaluated too (except those calling
    /// `duration()`, left to the API server). Problems print as
    /// FILE:LINE:COLUMN: KIND NAME: MESSAGE. Exit status: 0 no problems, 1 problems.
    #[command(after_help = examples::LINT)]
    Lint(lint::LintArgs),
    /// Convert Argo Rollouts and Flagger manifests into Sluice manifests.
    ///
    /// Reads Rollout, AnalysisTemplate and ClusterAnalysisTemplate
    /// (argoproj.io) and Canary, MetricTemplate and AlertProvider
    /// (flagger.app) from the files (`-`: standard input), prints the Sluice
    /// manifests on standard output and, on standard error, every field that
    /// was not carried over or needs a person, with file, document and field
    /// path. Other documents pass through unchanged (a Service a Rollout
    /// names loses its selector: Sluice sets it). Comments at the head of each
    /// document are kept; comments inside a converted document are not.
    /// Field tables: docs/migrating.md.
    ///
    /// Exit status: 0 converted cleanly, 3 converted but something was
    /// dropped or needs attention (see standard error), 1 unreadable or
    /// unparsable input (nothing is printed then).
    #[command(after_help = examples::MIGRATE)]
    Migrate(migrate::MigrateArgs),
    /// Print the CustomResourceDefinitions (apply with `kubectl apply --server-side -f -`).
    #[command(after_help = examples::CRDS)]
    Crds,
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    #[command(after_help = examples::COMPLETION)]
    Completion(docs::CompletionArgs),
    /// Print the man page (roff), or write one page per command with --out-dir.
    #[command(after_help = examples::MAN)]
    Man(docs::ManArgs),
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
    /// Address ranges (CIDR or single address, comma-separated) that no
    /// metric provider (`web`, `prometheus`) may reach, whatever its URL or
    /// redirects resolve to. The default is the cloud metadata services; give
    /// the flag without a value to deny nothing.
    #[arg(
        long,
        env = "SLUICE_METRIC_DENY_CIDR",
        value_delimiter = ',',
        num_args = 0..,
        default_values_t = default_denied(),
        value_parser = parse_cidr
    )]
    pub metric_deny_cidr: Vec<ipnet::IpNet>,
    /// When given, metric providers (`web`, `prometheus`) may reach only
    /// these ranges (CIDR or single address, comma-separated), e.g. the
    /// cluster's Service range.
    #[arg(
        long,
        env = "SLUICE_METRIC_ALLOW_CIDR",
        value_delimiter = ',',
        value_parser = parse_cidr
    )]
    pub metric_allow_cidr: Vec<ipnet::IpNet>,
}

fn default_denied() -> Vec<ipnet::IpNet> {
    crate::egress::EgressPolicy::default().denied().to_vec()
}

/// A CIDR range, or one address as a range of one.
fn parse_cidr(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{text:?} is neither a CIDR range (10.0.0.0/8) nor an address"))
}

#[cfg(test)]
mod egress_flag_tests {
    use clap::Parser;

    use super::{Cli, Command};

    fn controller(args: &[&str]) -> Result<super::ControllerArgs, clap::Error> {
        let cli = Cli::try_parse_from(["sluice", "controller"].iter().chain(args))?;
        match cli.command {
            Command::Controller(args) => Ok(args),
            _ => unreachable!("parsed the controller subcommand"),
        }
    }

    #[test]
    fn the_metric_fence_defaults_to_the_metadata_services_and_can_be_set_or_emptied() {
        let default = controller(&[]).expect("default");
        assert!(
            default
                .metric_deny_cidr
                .iter()
                .any(|net| net.to_string() == "169.254.0.0/16")
        );
        assert!(default.metric_allow_cidr.is_empty());
        let set = controller(&[
            "--metric-deny-cidr=10.0.0.0/8,192.0.2.1",
            "--metric-allow-cidr",
            "10.96.0.0/12",
        ])
        .expect("set");
        let denied: Vec<String> = set.metric_deny_cidr.iter().map(|n| n.to_string()).collect();
        assert_eq!(denied, ["10.0.0.0/8", "192.0.2.1/32"]);
        assert_eq!(set.metric_allow_cidr.len(), 1);
        let none = controller(&["--metric-deny-cidr"]).expect("empty");
        assert!(none.metric_deny_cidr.is_empty());
        let bad = controller(&["--metric-allow-cidr=10.0.0.0/33"]).expect_err("bad");
        assert!(bad.to_string().contains("neither a CIDR range"), "{bad}");
    }
}
