//! Simulated requests and the series an instrumented application would expose.
//!
//! Series (the generic naming the analysis templates expect):
//! `http_requests_total{namespace,app,pod_template_hash,code}`,
//! `http_request_duration_seconds_bucket{namespace,app,pod_template_hash,le}`
//! and the generator's own view `sluice_trafficgen_share{...}`, plus
//! `sluice_trafficgen_header_requests_total{...,header}` (requests that
//! carried a `--header`, by the header `name=value`) and `sluice_trafficgen_mirrored_requests_total` (mirrored copies,
//! also served and so counted in `http_requests_total`), by revision.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::fault::FaultProfile;
use crate::split::Shares;

/// How the healthy application behaves.
#[derive(Debug, Clone, Copy)]
pub struct Baseline {
    /// Probability that a request answers 500.
    pub error_ratio: f64,
    /// Median latency in seconds; latencies are log-normal around it.
    pub median_latency_seconds: f64,
    /// Log-normal sigma: 0.4 puts p99 at about 2.5 times the median.
    pub latency_sigma: f64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    namespace: String,
    app: String,
    pod_template_hash: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RevisionLabels {
    namespace: String,
    app: String,
    pod_template_hash: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HeaderLabels {
    namespace: String,
    app: String,
    pod_template_hash: String,
    /// `name=value` of the header the requests carried.
    header: String,
}

const LATENCY_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.5, 1.0, 2.5,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The generator's metrics for one Rollout.
pub struct Traffic {
    namespace: String,
    app: String,
    baseline: Baseline,
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RevisionLabels, Histogram, fn() -> Histogram>,
    shares: Family<RevisionLabels, Gauge<f64, AtomicU64>>,
    header_requests: Family<HeaderLabels, Counter>,
    mirrored_requests: Family<RevisionLabels, Counter>,
    rng: std::sync::Mutex<fastrand::Rng>,
}

impl Traffic {
    pub fn new(namespace: &str, app: &str, baseline: Baseline, seed: u64) -> Traffic {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let durations =
            Family::<RevisionLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        let shares = Family::<RevisionLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "http_requests",
            "Requests served, by revision and status code",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Request latency, by revision",
            durations.clone(),
        );
        registry.register(
            "sluice_trafficgen_share",
            "Fraction of traffic the generator currently sends to each revision",
            shares.clone(),
        );
        let header_requests = Family::<HeaderLabels, Counter>::default();
        registry.register(
            "sluice_trafficgen_header_requests",
            "Requests that carried a --header, by the header and the revision that served them",
            header_requests.clone(),
        );
        let mirrored_requests = Family::<RevisionLabels, Counter>::default();
        registry.register(
            "sluice_trafficgen_mirrored_requests",
            "Mirrored copies of requests, by the revision that received them",
            mirrored_requests.clone(),
        );
        Traffic {
            header_requests,
            mirrored_requests,
            namespace: namespace.into(),
            app: app.into(),
            baseline,
            registry,
            requests,
            durations,
            shares,
            rng: std::sync::Mutex::new(fastrand::Rng::with_seed(seed)),
        }
    }

    fn revision(&self, hash: &str) -> RevisionLabels {
        RevisionLabels {
            namespace: self.namespace.clone(),
            app: self.app.clone(),
            pod_template_hash: hash.into(),
        }
    }

    /// Publish the split the generator follows now.
    pub fn set_shares(&self, shares: &Shares) {
        self.shares.clear();
        for (hash, share) in shares {
            self.shares.get_or_create(&self.revision(hash)).set(*share);
        }
    }

    /// Serve `count` requests on revision `hash`, whose image chooses its faults.
    pub fn serve(&self, hash: &str, image: &str, count: u64) {
        let fault = FaultProfile::from_image(image);
        let error_ratio = (self.baseline.error_ratio + fault.extra_error_ratio).clamp(0.0, 1.0);
        let revision = self.revision(hash);
        let histogram = self.durations.get_or_create(&revision);
        let mut rng = match self.rng.lock() {
            Ok(rng) => rng,
            Err(poisoned) => poisoned.into_inner(),
        };
        let (mut ok, mut failed) = (0u64, 0u64);
        for _ in 0..count {
            if rng.f64() < error_ratio {
                failed += 1;
            } else {
                ok += 1;
            }
            let latency = self.baseline.median_latency_seconds
                * (self.baseline.latency_sigma * standard_normal(&mut rng)).exp()
                + fault.extra_latency_seconds;
            histogram.observe(latency);
        }
        for (code, n) in [("200", ok), ("500", failed)] {
            // Create both series up front so that rate() sees a zero, not a gap.
            let counter = self.requests.get_or_create(&RequestLabels {
                namespace: self.namespace.clone(),
                app: self.app.clone(),
                pod_template_hash: hash.into(),
                code: code.into(),
            });
            counter.inc_by(n);
        }
    }

    /// Count `count` requests served on `hash` that carried `header` (`name=value`).
    pub fn count_header(&self, hash: &str, header: &str, count: u64) {
        self.header_requests
            .get_or_create(&HeaderLabels {
                namespace: self.namespace.clone(),
                app: self.app.clone(),
                pod_template_hash: hash.into(),
                header: header.into(),
            })
            .inc_by(count);
    }

    /// Serve `count` mirrored copies on revision `hash` (the client never sees
    /// their answers; the revision's own series still count them).
    pub fn serve_mirrored(&self, hash: &str, image: &str, count: u64) {
        self.serve(hash, image, count);
        self.mirrored_requests
            .get_or_create(&self.revision(hash))
            .inc_by(count);
    }

    /// The OpenMetrics text Prometheus scrapes.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Box-Muller: one standard normal sample.
fn standard_normal(rng: &mut fastrand::Rng) -> f64 {
    let u1 = rng.f64().max(f64::MIN_POSITIVE);
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_value(text: &str, prefix: &str) -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    #[test]
    fn error_profile_from_the_image_shows_in_the_counters() {
        let traffic = Traffic::new(
            "demo",
            "web",
            Baseline {
                error_ratio: 0.0,
                median_latency_seconds: 0.04,
                latency_sigma: 0.3,
            },
            7,
        );
        traffic.serve("stable", "web:1.0.0", 10_000);
        traffic.serve("canary", "web:1.0.1-err20", 10_000);
        let text = traffic.encode().expect("encode");
        let stable_500 = sample_value(
            &text,
            r#"http_requests_total{namespace="demo",app="web",pod_template_hash="stable",code="500"}"#,
        );
        let canary_500 = sample_value(
            &text,
            r#"http_requests_total{namespace="demo",app="web",pod_template_hash="canary",code="500"}"#,
        );
        assert_eq!(stable_500, 0.0);
        assert!((1_700.0..2_300.0).contains(&canary_500), "{canary_500}");
    }

    #[test]
    fn slow_profile_moves_latency_buckets() {
        let traffic = Traffic::new(
            "demo",
            "web",
            Baseline {
                error_ratio: 0.0,
                median_latency_seconds: 0.02,
                latency_sigma: 0.2,
            },
            7,
        );
        traffic.serve("fast", "web:1", 1_000);
        traffic.serve("slow", "web:2-slow100", 1_000);
        let text = traffic.encode().expect("encode");
        let under_100ms = |hash: &str| {
            sample_value(
                &text,
                &format!(
                    r#"http_request_duration_seconds_bucket{{le="0.1",namespace="demo",app="web",pod_template_hash="{hash}"}}"#
                ),
            )
        };
        assert!(under_100ms("fast") > 990.0, "{text}");
        assert_eq!(under_100ms("slow"), 0.0, "{text}");
    }
}
