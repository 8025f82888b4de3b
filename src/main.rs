//! The `sluice` binary: wires the CLI to the library.

use std::process::ExitCode;

use clap::Parser;
use sluice::cli::{Cli, Command};
use sluice::{controller, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command {
        Command::Controller(args) => {
            telemetry::init(args.log_format);
            let identity = args.identity.clone().unwrap_or_else(default_identity);
            let options = controller::Options {
                listen: args.listen,
                namespace: args.namespace,
                leader_election: !args.no_leader_election,
                lease_namespace: args.lease_namespace,
                lease_name: args.lease_name,
                identity,
                concurrency: args.concurrency,
                git_workspace: args
                    .git_workspace
                    .unwrap_or_else(|| std::env::temp_dir().join("sluice-git")),
                alert_queue: args.alert_queue,
                alert_workers: args.alert_workers,
                alert_backoff: args.alert_backoff,
                alert_retry_max_interval: args.alert_retry_max_interval,
            };
            controller::run(options).await.map_err(Into::into)
        }
        Command::Rollout(args) => match sluice::cli::rollout::run(args).await {
            // A control with nothing to act on is no failure, but a script should know.
            Err(nothing @ sluice::cli::rollout::Error::NothingTo(..)) => {
                eprintln!("sluice: {nothing}");
                return ExitCode::from(sluice::cli::rollout::NOTHING_TO_DO_EXIT);
            }
            other => other.map_err(Into::into),
        },
        Command::Analyze(args) => sluice::cli::analyze::run(args).await.map_err(Into::into),
        Command::Crds => print_crds(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sluice: {err}");
            ExitCode::FAILURE
        }
    }
}

fn print_crds() -> Result<(), Box<dyn std::error::Error>> {
    for (_, crd) in sluice::crd::all_crds() {
        println!("---\n{}", sluice::crd::render_crd(&crd)?);
    }
    Ok(())
}

fn default_identity() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| format!("sluice-{}", std::process::id()))
}
