//! `sluice-testcluster`: a real Kubernetes control plane on 127.0.0.1 for
//! Sluice's end-to-end tests and demo.
//!
//! `run` starts etcd, kube-apiserver, kube-controller-manager,
//! kube-scheduler, KWOK (fake nodes) and optionally Prometheus from the
//! binaries that `tests/cluster/build.sh` built, prints
//! `SLUICE_CLUSTER_READY <cluster.json>` and stays in the foreground until
//! SIGTERM/SIGINT or, with `--lifeline-stdin`, until its stdin closes. Then it
//! tears every process group down. `stop` ends a running one.
#![forbid(unsafe_code)]

mod pki;
mod procs;
mod stack;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser)]
#[command(about = "Run a real Kubernetes control plane on 127.0.0.1 for tests")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the stack and supervise it in the foreground.
    Run {
        /// Directory holding etcd, kube-apiserver, ... (`tests/cluster/build.sh` prints its parent).
        #[arg(long)]
        bin_dir: PathBuf,
        /// Directory for certificates, kubeconfig, logs and data (created).
        #[arg(long)]
        data_dir: PathBuf,
        /// Number of KWOK nodes.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Also run Prometheus (scrape interval 1 s, file-based targets).
        #[arg(long)]
        prometheus: bool,
        /// Tear down when stdin reaches end of file.
        #[arg(long)]
        lifeline_stdin: bool,
        /// Keep the data directory after teardown.
        #[arg(long)]
        keep_data: bool,
    },
    /// Stop a stack started with `run`.
    Stop {
        /// The data directory it was started with.
        #[arg(long)]
        data_dir: PathBuf,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run {
            bin_dir,
            data_dir,
            nodes,
            prometheus,
            lifeline_stdin,
            keep_data,
        } => {
            let data_dir = absolute(data_dir);
            let options = stack::Options {
                bin_dir: absolute(bin_dir),
                data_dir: data_dir.clone(),
                nodes,
                prometheus,
            };
            run(options, lifeline_stdin, keep_data).await
        }
        Command::Stop { data_dir } => stop(&data_dir).await,
    }
}

fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

async fn run(options: stack::Options, lifeline: bool, keep_data: bool) -> ExitCode {
    let mut procs = procs::Procs::default();
    let mut scratch = Vec::new();
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        eprintln!("[testcluster] cannot install signal handlers");
        return ExitCode::FAILURE;
    };
    let started = tokio::select! {
        result = stack::start(&options, &mut procs, &mut scratch) => result,
        _ = term.recv() => Err("interrupted".into()),
        _ = int.recv() => Err("interrupted".into()),
    };
    let mut code = ExitCode::SUCCESS;
    match started {
        Ok(info) => {
            let path = options.data_dir.join("cluster.json");
            let written = serde_json::to_vec_pretty(&info)
                .map_err(std::io::Error::other)
                .and_then(|bytes| std::fs::write(&path, bytes));
            if let Err(err) = written {
                eprintln!("[testcluster] cannot write {}: {err}", path.display());
                code = ExitCode::FAILURE;
            } else {
                println!("SLUICE_CLUSTER_READY {}", path.display());
                let mut stdin = tokio::io::stdin();
                let mut buffer = [0u8; 256];
                let mut check = tokio::time::interval(Duration::from_secs(2));
                loop {
                    tokio::select! {
                        _ = term.recv() => break,
                        _ = int.recv() => break,
                        read = stdin.read(&mut buffer), if lifeline => {
                            if matches!(read, Ok(0) | Err(_)) { break; }
                        }
                        _ = check.tick() => {
                            if let Some(dead) = procs.exited() {
                                eprintln!("[testcluster] {dead} exited; see {}", options.data_dir.join("logs").join(format!("{dead}.log")).display());
                                code = ExitCode::FAILURE;
                                break;
                            }
                        }
                    }
                }
            }
        }
        Err(err) => {
            eprintln!("[testcluster] start failed: {err}");
            print_log_tails(&options.data_dir.join("logs"));
            code = ExitCode::FAILURE;
        }
    }
    eprintln!("[testcluster] tearing down");
    procs.shutdown(Duration::from_secs(5)).await;
    for dir in scratch {
        let _ = std::fs::remove_dir_all(dir);
    }
    if !keep_data {
        let _ = std::fs::remove_dir_all(&options.data_dir);
    }
    code
}

fn print_log_tails(logs: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(logs) else {
        return;
    };
    for entry in entries.flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(15)..];
        eprintln!(
            "---- {} (last {} lines)\n{}",
            entry.path().display(),
            tail.len(),
            tail.join("\n")
        );
    }
}

async fn stop(data_dir: &std::path::Path) -> ExitCode {
    let path = data_dir.join("cluster.json");
    let pid = std::fs::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|info| info.get("pid").and_then(serde_json::Value::as_i64))
        .and_then(|pid| i32::try_from(pid).ok());
    let Some(pid) = pid else {
        eprintln!(
            "[testcluster] no running cluster recorded in {}",
            path.display()
        );
        return ExitCode::FAILURE;
    };
    if kill(Pid::from_raw(pid), Signal::SIGTERM).is_err() {
        eprintln!("[testcluster] process {pid} is not running");
        return ExitCode::SUCCESS;
    }
    let started = Instant::now();
    while std::path::Path::new(&format!("/proc/{pid}")).exists()
        && started.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("[testcluster] stopped");
    ExitCode::SUCCESS
}
