//! Sluice: progressive delivery for Kubernetes.
//!
//! The crate is a library with thin binaries: `crd` holds the API types,
//! `engine` the pure planning core, and the rest is I/O around it.
#![forbid(unsafe_code)]

pub mod alerts;
pub mod analysis;
pub mod cli;
pub mod controller;
pub mod crd;
pub mod egress;
pub mod engine;
pub mod metrics;
pub mod migrate;
pub mod reconcile;
pub mod revert;
pub mod server;
pub mod telemetry;

/// Install ring as the process-wide rustls provider (the one kube uses), once.
/// reqwest is built without a provider of its own, so every HTTP client needs it.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
