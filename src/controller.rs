//! The `sluice controller` process: leader election, watches, HTTP endpoints, shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Service;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, watcher};
use kube::{Api, Client};
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::crd::{AnalysisRun, Rollout};
use crate::engine::revisions::ROLLOUT_LABEL;
use crate::metrics::Metrics;
use crate::reconcile::{self, Context};
use crate::server::{self, Readiness, ServerState};

/// Settings of the controller process.
#[derive(Clone, Debug)]
pub struct Options {
    /// Address of `/metrics`, `/healthz`, `/readyz`.
    pub listen: SocketAddr,
    /// Only watch this namespace (all namespaces when `None`).
    pub namespace: Option<String>,
    /// Take part in leader election on a Lease (off: act at once).
    pub leader_election: bool,
    /// Namespace of the Lease.
    pub lease_namespace: String,
    /// Name of the Lease.
    pub lease_name: String,
    /// This replica's identity (pod name).
    pub identity: String,
    /// Rollouts reconciled at the same time.
    pub concurrency: u16,
    /// Directory for the clones Git reverts work in.
    pub git_workspace: std::path::PathBuf,
    /// Capacity of the alert queue (Rollouts).
    pub alert_queue: usize,
    /// Concurrent alert workers.
    pub alert_workers: usize,
    /// First back-off of a failed alert delivery.
    pub alert_backoff: Duration,
    /// Longest wait between two rounds of a pending alert.
    pub alert_retry_max_interval: Duration,
}

/// Errors that stop the controller process.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Leader election failed.
    #[error("leader election failed: {0}")]
    Lease(String),
    /// The HTTP endpoints could not be served.
    #[error("cannot serve HTTP on {0}: {1}")]
    Serve(SocketAddr, #[source] std::io::Error),
    /// Another replica took the lease; exit so this one restarts as a standby.
    #[error("lost the leader lease")]
    LostLease,
}

/// Run until SIGINT/SIGTERM with `client` (in a pod: its ServiceAccount);
/// `evictions` is the same identity without the client's retry of 429.
pub async fn run(options: Options, client: Client, evictions: Client) -> Result<(), Error> {
    let metrics = Arc::new(Metrics::default());
    let state = Arc::new(ServerState::new(metrics.clone()));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        info!("shutdown requested");
        let _ = stop_tx.send(true);
    });
    let server = tokio::spawn(server::serve(
        options.listen,
        state.clone(),
        stopped(stop_rx.clone()),
    ));

    let mut leader = None;
    if options.leader_election {
        let manager = LeaseManagerBuilder::new(client.clone(), &options.lease_name)
            .with_namespace(&options.lease_namespace)
            .with_identity(&options.identity)
            .with_duration(15)
            .with_grace(5)
            .build()
            .await
            .map_err(|e| Error::Lease(e.to_string()))?;
        let (mut is_leader, task) = manager.watch().await;
        state.set(Readiness::Standby);
        info!(lease = %options.lease_name, identity = %options.identity, "waiting for the leader lease");
        let mut stop = stop_rx.clone();
        while !*is_leader.borrow_and_update() {
            tokio::select! {
                changed = is_leader.changed() => if changed.is_err() { return Err(Error::Lease("lease task ended".into())) },
                _ = stop.changed() => { drop(is_leader); let _ = task.await; return finish(server).await; }
            }
        }
        info!("acquired the leader lease");
        leader = Some((is_leader, task));
    }

    let ctx = Arc::new(Context {
        io: Arc::new(reconcile::Io {
            client: client.clone(),
            evictions,
            metrics,
            events: reconcile::events::EventWriter::new(
                client.clone(),
                "sluice",
                &options.identity,
            ),
        }),
        git: Arc::new(reconcile::git_revert::GitReverter::new(
            options.git_workspace.clone(),
        )),
        alerts: Arc::new(reconcile::alerts::Alerter::new(
            options.alert_queue,
            options.alert_backoff,
            options.alert_retry_max_interval,
        )),
    });
    ctx.alerts.start(&ctx.io, options.alert_workers);
    let (rollouts, replica_sets, runs, services, deployments) = match &options.namespace {
        Some(ns) => (
            Api::<Rollout>::namespaced(client.clone(), ns),
            Api::<ReplicaSet>::namespaced(client.clone(), ns),
            Api::<AnalysisRun>::namespaced(client.clone(), ns),
            Api::<Service>::namespaced(client.clone(), ns),
            Api::<Deployment>::namespaced(client.clone(), ns),
        ),
        None => (
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client.clone()),
        ),
    };
    let owned = watcher::Config::default().labels(ROLLOUT_LABEL);
    let controller = Controller::new(rollouts, watcher::Config::default())
        .owns(replica_sets, owned.clone())
        .owns(runs, owned);
    // Any change to a Service a Rollout names (a GitOps apply resetting its
    // selector, a deletion, a re-creation) reconciles that Rollout at once.
    let rollout_index = controller.store();
    let adopting_index = controller.store();
    let controller = controller
        .watches(services, watcher::Config::default(), move |service| {
            rollouts_naming_service(&rollout_index, &service)
        })
        // A Deployment a Rollout adopts: a new template (`kubectl set image
        // deployment/...`, a GitOps sync) starts a canary, and its pods
        // coming and going drive the scale-down.
        .watches(deployments, watcher::Config::default(), move |deployment| {
            rollouts_adopting(&adopting_index, &deployment)
        })
        .with_config(
            kube::runtime::Config::default()
                .concurrency(options.concurrency)
                .debounce(Duration::from_millis(200)),
        );
    let store = controller.store();
    let ready_state = state.clone();
    tokio::spawn(async move {
        if store.wait_until_ready().await.is_ok() {
            info!("watches synced");
            ready_state.set(Readiness::Ready);
        }
    });

    let stop = stop_rx.clone();
    let lost_lease = async move {
        match leader {
            Some((mut is_leader, _task)) => loop {
                if is_leader.changed().await.is_err() || !*is_leader.borrow_and_update() {
                    return true;
                }
            },
            None => std::future::pending().await,
        }
    };
    let (lost_tx, mut lost_rx) = watch::channel(false);
    tokio::spawn(async move {
        if lost_lease.await {
            let _ = lost_tx.send(true);
        }
    });
    let shutdown_on = |mut stop: watch::Receiver<bool>, mut lost: watch::Receiver<bool>| async move {
        tokio::select! {
            _ = stop.changed() => {}
            _ = lost.changed() => {}
        }
    };
    let metrics = ctx.io.metrics.clone();
    let rollouts_done = controller
        .graceful_shutdown_on(shutdown_on(stop.clone(), lost_rx.clone()))
        .run(reconcile::reconcile, reconcile::error_policy, ctx.clone())
        .for_each(move |result| {
            match result {
                // A deleted Rollout is reconciled once more and not found:
                // its series go (without a finalizer it never shows a deletionTimestamp).
                Err(kube::runtime::controller::Error::ObjectNotFound(gone)) => {
                    metrics
                        .forget_rollout(gone.namespace.as_deref().unwrap_or_default(), &gone.name);
                }
                Err(err) => warn!(error = %err, "controller stream error"),
                Ok(_) => {}
            }
            async {}
        });
    // The analysis loop: measures what AnalysisRuns have due and writes their verdicts.
    let analysis_runs = match &options.namespace {
        Some(ns) => Api::<AnalysisRun>::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let analysis_done = Controller::new(analysis_runs, watcher::Config::default())
        .with_config(kube::runtime::Config::default().concurrency(options.concurrency))
        .graceful_shutdown_on(shutdown_on(stop.clone(), lost_rx.clone()))
        .run(
            reconcile::analysis::reconcile,
            reconcile::analysis::error_policy,
            ctx,
        )
        .for_each(|result| async move {
            if let Err(err) = result {
                warn!(error = %err, "analysis stream error");
            }
        });
    futures::future::join(rollouts_done, analysis_done).await;
    if *lost_rx.borrow_and_update() {
        return Err(Error::LostLease);
    }
    finish(server).await
}

/// The Rollouts in the Service's namespace that route through it.
fn rollouts_naming_service(
    rollouts: &Store<Rollout>,
    service: &Service,
) -> Vec<ObjectRef<Rollout>> {
    rollouts_in_namespace_of(rollouts, &service.metadata, |r, name| {
        names_service(r, name)
    })
}

/// The Rollouts in the Deployment's namespace whose `workloadRef` names it.
fn rollouts_adopting(
    rollouts: &Store<Rollout>,
    deployment: &Deployment,
) -> Vec<ObjectRef<Rollout>> {
    rollouts_in_namespace_of(rollouts, &deployment.metadata, |r, name| {
        r.spec.workload_ref.as_ref().is_some_and(|w| w.name == name)
    })
}

/// The Rollouts in the namespace of the object `meta` describes that
/// `refers(rollout, object name)` says refer to it.
fn rollouts_in_namespace_of(
    rollouts: &Store<Rollout>,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    refers: impl Fn(&Rollout, &str) -> bool,
) -> Vec<ObjectRef<Rollout>> {
    let (Some(namespace), Some(name)) = (&meta.namespace, &meta.name) else {
        return Vec::new();
    };
    rollouts
        .state()
        .iter()
        .filter(|r| r.metadata.namespace.as_ref() == Some(namespace))
        .filter(|r| refers(r, name))
        .map(|r| ObjectRef::from_obj(r.as_ref()))
        .collect()
}

fn names_service(rollout: &Rollout, service: &str) -> bool {
    let strategy = &rollout.spec.strategy;
    let canary = strategy.canary.iter().flat_map(|c| {
        [c.stable_service.as_deref(), c.canary_service.as_deref()]
            .into_iter()
            .chain([c.baseline.as_ref().and_then(|b| b.service.as_deref())])
    });
    let blue_green = strategy.blue_green.iter().flat_map(|b| {
        [
            Some(b.active_service.as_str()),
            b.preview_service.as_deref(),
        ]
    });
    canary.chain(blue_green).flatten().any(|s| s == service)
}

async fn finish(server: tokio::task::JoinHandle<std::io::Result<()>>) -> Result<(), Error> {
    match server.await {
        Ok(Ok(())) | Err(_) => Ok(()),
        Ok(Err(err)) => Err(Error::Serve(SocketAddr::from(([0, 0, 0, 0], 0)), err)),
    }
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
