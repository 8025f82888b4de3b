//! The `sluice` binary: wires the CLI to the library.

use std::process::ExitCode;

use sluice::cli::{Cli, Command, PLUGIN_NAME, docs, output};
use sluice::{controller, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let (cli, plugin) = Cli::parse_args();
    let kube = cli.kube;
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command {
        Command::Controller(args) => {
            telemetry::init(args.log_format);
            sluice::egress::install(sluice::egress::EgressPolicy::new(
                args.metric_deny_cidr.clone(),
                args.metric_allow_cidr.clone(),
            ));
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
            // In a pod without flags: the in-cluster ServiceAccount.
            match (kube.client().await, kube.client_without_retry().await) {
                (Ok(client), Ok(evictions)) => controller::run(options, client, evictions)
                    .await
                    .map_err(Into::into),
                (Err(err), _) | (_, Err(err)) => Err(err.into()),
            }
        }
        Command::Rollout(args) => match sluice::cli::rollout::run(args, &kube).await {
            // A control with nothing to act on is no failure, but a script should know.
            Err(nothing @ sluice::cli::rollout::Error::NothingTo(..)) => {
                eprintln!("sluice: {nothing}");
                return ExitCode::from(sluice::cli::rollout::NOTHING_TO_DO_EXIT);
            }
            other => other.map_err(Into::into),
        },
        Command::Analyze(args) => sluice::cli::analyze::run(args, &kube)
            .await
            .map_err(Into::into),
        Command::Lint(args) => sluice::cli::lint::run(&args).map_err(Into::into),
        Command::Migrate(args) => match sluice::cli::migrate::run(&args) {
            Ok(outcome) if outcome.needs_attention() => {
                return ExitCode::from(sluice::cli::migrate::ATTENTION_EXIT);
            }
            Ok(_) => Ok(()),
            Err(err) => Err(err.into()),
        },
        Command::Crds => print_crds(),
        Command::Completion(args) => {
            let name = if plugin { PLUGIN_NAME } else { "sluice" };
            docs::completion(args.shell, Cli::command_for(plugin), name).map_err(Into::into)
        }
        Command::Man(args) => {
            docs::man(Cli::command_for(false), args.out_dir.as_deref()).map_err(Into::into)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`sluice crds | head -1`): nothing more to say.
        Err(err) if output::is_broken_pipe(err.as_ref()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sluice: {err}");
            ExitCode::FAILURE
        }
    }
}

fn print_crds() -> Result<(), Box<dyn std::error::Error>> {
    for (_, crd) in sluice::crd::all_crds() {
        sluice::outln!("---\n{}", sluice::crd::render_crd(&crd)?)?;
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
