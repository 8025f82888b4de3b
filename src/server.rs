//! HTTP endpoints of the controller: `/metrics`, `/healthz`, `/readyz`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;

/// Readiness of the controller process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Readiness {
    /// Starting up, watches not synced.
    Starting = 0,
    /// Another replica holds the lease; this one waits.
    Standby = 1,
    /// Leading with synced watches.
    Ready = 2,
}

/// State shared with the HTTP handlers.
pub struct ServerState {
    /// Metrics to render.
    pub metrics: Arc<Metrics>,
    readiness: AtomicU8,
}

impl ServerState {
    /// New state, starting up.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        ServerState {
            metrics,
            readiness: AtomicU8::new(Readiness::Starting as u8),
        }
    }

    /// Change readiness.
    pub fn set(&self, readiness: Readiness) {
        self.readiness.store(readiness as u8, Ordering::SeqCst);
    }

    fn get(&self) -> Readiness {
        match self.readiness.load(Ordering::SeqCst) {
            2 => Readiness::Ready,
            1 => Readiness::Standby,
            _ => Readiness::Starting,
        }
    }
}

/// The router, separate from binding so tests can drive it.
pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Serve until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    state: Arc<ServerState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics, /healthz, /readyz");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics(State(state): State<Arc<ServerState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

async fn readyz(State(state): State<Arc<ServerState>>) -> impl IntoResponse {
    match state.get() {
        Readiness::Ready => (StatusCode::OK, "ready"),
        // A standby replica is healthy and ready to take over; it is not failing.
        Readiness::Standby => (StatusCode::OK, "standby"),
        Readiness::Starting => (StatusCode::SERVICE_UNAVAILABLE, "watches not synced"),
    }
}
