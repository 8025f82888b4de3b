//! `sluice-trafficgen`: simulated users and application metrics for one Rollout.
//!
//! Every `--refresh` it reads from the API server how traffic divides between
//! revisions (the HTTPRoute weights and the Ready pods behind each Service, or
//! without a router the Ready pods themselves), then sends `--rps` simulated
//! requests a second along that split. Each revision's image tag picks its
//! faults (`errN`: +N% HTTP 500, `slowN`: +N ms). With `--header` (one or
//! more) and `--header-share`, that share of requests carries each header
//! and follows the route rule matching it; a rule's `RequestMirror`
//! filters add copies on the mirror's revision. Prometheus scrapes the
//! resulting series from `/metrics`; `/split` shows the split as JSON.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use clap::Parser;
use sluice_testbed::cluster_view::{View, look};
use sluice_testbed::route_match::RequestHeader;
use sluice_testbed::split::{Allocator, Shares};
use sluice_testbed::traffic::{Baseline, Traffic};

#[derive(Parser, Debug)]
#[command(name = "sluice-trafficgen", about, long_about = None)]
struct Args {
    /// Namespace of the Rollout.
    #[arg(long, short = 'n')]
    namespace: String,
    /// Name of the Rollout whose traffic to simulate (also the `app` label).
    #[arg(long)]
    rollout: String,
    /// Requests per second across all revisions.
    #[arg(long, default_value_t = 50.0)]
    rps: f64,
    /// Baseline probability of an HTTP 500.
    #[arg(long, default_value_t = 0.005)]
    error_ratio: f64,
    /// Baseline median latency.
    #[arg(long, default_value = "40ms", value_parser = humantime::parse_duration)]
    median_latency: Duration,
    /// Spread of the log-normal latency (0.35 puts p99 near 2.3 × the median).
    #[arg(long, default_value_t = 0.35)]
    latency_sigma: f64,
    /// How often to re-read the split from the API server.
    #[arg(long, default_value = "250ms", value_parser = humantime::parse_duration)]
    refresh: Duration,
    /// Address for /metrics and /split (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Register with Prometheus by writing a file_sd target file into this directory.
    #[arg(long)]
    prometheus_targets_dir: Option<PathBuf>,
    /// Seed for the simulated outcomes (fixed seeds make runs repeatable).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also send smoke-test requests to the Ready pods behind this Service
    /// (e.g. a blue-green preview Service), as a team's smoke tests would.
    #[arg(long)]
    smoke_service: Option<String>,
    /// Smoke-test requests per second.
    #[arg(long, default_value_t = 20.0)]
    smoke_rps: f64,
    /// A header some users carry, `name=value` (e.g. `x-canary=internal`):
    /// their requests follow the route rule that matches it. Repeat for
    /// several groups of users, each carrying one header.
    #[arg(long, value_parser = RequestHeader::parse)]
    header: Vec<RequestHeader>,
    /// Fraction (0-1) of the users' requests that carry each `--header`.
    #[arg(long, default_value_t = 0.0)]
    header_share: f64,
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
    let traffic = Arc::new(Traffic::new(
        &args.namespace,
        &args.rollout,
        Baseline {
            error_ratio: args.error_ratio,
            median_latency_seconds: args.median_latency.as_secs_f64(),
            latency_sigma: args.latency_sigma,
        },
        args.seed,
    ));
    let view = Arc::new(RwLock::new(View::default()));

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    let target_file = args.prometheus_targets_dir.as_ref().map(|dir| {
        dir.join(format!(
            "trafficgen-{}-{}.json",
            args.namespace, args.rollout
        ))
    });
    if let Some(file) = &target_file {
        register_target(file, address, &args.namespace, &args.rollout)?;
    }
    println!("SLUICE_TRAFFICGEN_LISTENING {address}");

    let app = {
        let (traffic, view) = (traffic.clone(), view.clone());
        Router::new()
            .route(
                "/metrics",
                get(move || {
                    let traffic = traffic.clone();
                    async move {
                        match traffic.encode() {
                            Ok(text) => (
                                [(
                                    header::CONTENT_TYPE,
                                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                                )],
                                text,
                            )
                                .into_response(),
                            Err(_) => axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                        }
                    }
                }),
            )
            .route(
                "/split",
                get(move || {
                    let view = view.clone();
                    async move {
                        let view = view.read().map(|v| v.clone()).unwrap_or_default();
                        axum::Json(serde_json::json!({
                            "source": view.source,
                            "shares": view.shares,
                            "images": view.images,
                        }))
                    }
                }),
            )
    };
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let refresher = {
        let (view, traffic) = (view.clone(), traffic.clone());
        let (client, namespace, rollout, every, smoke, header) = (
            client.clone(),
            args.namespace.clone(),
            args.rollout.clone(),
            args.refresh,
            args.smoke_service.clone(),
            args.header.clone(),
        );
        tokio::spawn(async move {
            let mut last_logged = String::new();
            loop {
                match look(&client, &namespace, &rollout, smoke.as_deref(), &header).await {
                    Ok(next) => {
                        let summary = format!(
                            "{} {:?} headers {:?} mirrored {:?}",
                            next.source, next.shares, next.headers, next.mirrored
                        );
                        if summary != last_logged {
                            tracing::info!(source = %next.source, shares = ?next.shares,
                                headers = ?next.headers, mirrored = ?next.mirrored, "traffic split");
                            last_logged = summary;
                        }
                        traffic.set_shares(&next.shares);
                        if let Ok(mut current) = view.write() {
                            *current = next;
                        }
                    }
                    // Keep sending along the last known split; the cluster may be restarting.
                    Err(error) => tracing::warn!("reading the split failed: {error:#}"),
                }
                tokio::time::sleep(every).await;
            }
        })
    };

    let generator = {
        let (view, traffic, rps, smoke_rps) =
            (view.clone(), traffic.clone(), args.rps, args.smoke_rps);
        let headers: Vec<String> = args
            .header
            .iter()
            .map(|h| format!("{}={}", h.name, h.value))
            .collect();
        // Each header's users take this share; together at most all users.
        let header_share = match headers.len() {
            0 => 0.0,
            n => args.header_share.clamp(0.0, 1.0 / n as f64),
        };
        tokio::spawn(async move {
            let tick = Duration::from_millis(100);
            let mut allocator = Allocator::default();
            let mut smoke_allocator = Allocator::default();
            let mut header_allocators: Vec<Allocator> =
                headers.iter().map(|_| Allocator::default()).collect();
            let mut mirror_allocator = Allocator::default();
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let current = view.read().map(|v| v.clone()).unwrap_or_default();
                let requests = rps * tick.as_secs_f64();
                let with_header = requests * header_share;
                let plain = requests - with_header * headers.len() as f64;
                let users = allocator.allocate(&current.shares, plain);
                let smoke =
                    smoke_allocator.allocate(&current.smoke, smoke_rps * tick.as_secs_f64());
                let image = |hash: &str| current.images.get(hash).cloned().unwrap_or_default();
                for (hash, count) in users.into_iter().chain(smoke) {
                    traffic.serve(&hash, &image(&hash), count);
                }
                // Copies: a fraction of each class of requests, wherever its rule mirrors.
                let mut copies = Shares::new();
                let mut classes = vec![(&current.mirrored, plain)];
                for ((routing, allocator), name) in current
                    .headers
                    .iter()
                    .zip(header_allocators.iter_mut())
                    .zip(&headers)
                {
                    for (hash, count) in allocator.allocate(&routing.shares, with_header) {
                        traffic.serve(&hash, &image(&hash), count);
                        traffic.count_header(&hash, name, count);
                    }
                    classes.push((&routing.mirrored, with_header));
                }
                for (mirrored, count) in classes {
                    for (hash, fraction) in mirrored {
                        *copies.entry(hash.clone()).or_default() += fraction * count;
                    }
                }
                for (hash, count) in mirror_allocator.allocate(&copies, 1.0) {
                    traffic.serve_mirrored(&hash, &image(&hash), count);
                }
            }
        })
    };

    shutdown_signal().await;
    refresher.abort();
    generator.abort();
    server.abort();
    if let Some(file) = &target_file {
        let _ = std::fs::remove_file(file);
    }
    Ok(())
}

/// Write the file_sd entry atomically so Prometheus never reads half a file.
fn register_target(
    file: &std::path::Path,
    address: SocketAddr,
    namespace: &str,
    rollout: &str,
) -> Result<()> {
    let body = serde_json::json!([{
        "targets": [address.to_string()],
        "labels": {"job": "sluice-trafficgen", "rollout": format!("{namespace}/{rollout}")},
    }]);
    let tmp = file.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&body)?)
        .with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, file).with_context(|| format!("rename to {}", file.display()))?;
    Ok(())
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
