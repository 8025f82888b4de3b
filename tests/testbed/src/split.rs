//! How live traffic divides between revisions, and turning shares into request counts.
//!
//! A backend (a Service with a weight, or all of a Rollout's pods with weight 1)
//! spreads its share evenly over its Ready pods, as kube-proxy does; the shares
//! are then summed per pod-template hash.

use std::collections::BTreeMap;

/// One backend: its weight and the pod-template hash of each of its Ready pods.
#[derive(Debug, Clone, PartialEq)]
pub struct Backend {
    pub weight: f64,
    pub ready_pod_hashes: Vec<String>,
}

/// Fraction of requests per pod-template hash; the values sum to 1 (or the map is empty).
pub type Shares = BTreeMap<String, f64>;

/// Shares per hash. Backends without Ready pods or with weight 0 get no traffic;
/// the rest is renormalised, as a gateway skips backends with no endpoints.
pub fn shares(backends: &[Backend]) -> Shares {
    let mut out = Shares::new();
    let live: Vec<&Backend> = backends
        .iter()
        .filter(|b| b.weight > 0.0 && !b.ready_pod_hashes.is_empty())
        .collect();
    let total: f64 = live.iter().map(|b| b.weight).sum();
    if total <= 0.0 {
        return out;
    }
    for backend in live {
        let per_pod = backend.weight / total / backend.ready_pod_hashes.len() as f64;
        for hash in &backend.ready_pod_hashes {
            *out.entry(hash.clone()).or_default() += per_pod;
        }
    }
    out
}

/// Hands out whole requests per hash so that, over time, counts follow the shares
/// exactly (a fractional remainder carries to the next tick instead of being lost).
#[derive(Debug, Default)]
pub struct Allocator {
    carry: BTreeMap<String, f64>,
}

impl Allocator {
    pub fn allocate(&mut self, shares: &Shares, requests: f64) -> Vec<(String, u64)> {
        self.carry.retain(|hash, _| shares.contains_key(hash));
        let mut out = Vec::with_capacity(shares.len());
        for (hash, share) in shares {
            let owed = self.carry.entry(hash.clone()).or_default();
            *owed += share * requests;
            let whole = owed.floor();
            *owed -= whole;
            out.push((hash.clone(), whole as u64));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(weight: f64, pods: &[&str]) -> Backend {
        Backend {
            weight,
            ready_pod_hashes: pods.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn route_weights_decide_not_pod_counts() {
        let s = shares(&[backend(90.0, &["a", "a", "a", "a"]), backend(10.0, &["b"])]);
        assert!((s["a"] - 0.9).abs() < 1e-9);
        assert!((s["b"] - 0.1).abs() < 1e-9);
    }

    #[test]
    fn without_a_router_pods_share_evenly() {
        let s = shares(&[backend(1.0, &["a", "a", "a", "b"])]);
        assert!((s["a"] - 0.75).abs() < 1e-9);
        assert!((s["b"] - 0.25).abs() < 1e-9);
    }

    #[test]
    fn backends_without_ready_pods_get_nothing() {
        let s = shares(&[backend(50.0, &["a"]), backend(50.0, &[])]);
        assert_eq!(s.len(), 1);
        assert!((s["a"] - 1.0).abs() < 1e-9);
        assert!(shares(&[backend(0.0, &["a"])]).is_empty());
    }

    #[test]
    fn allocation_keeps_fractions_across_ticks() {
        let s = shares(&[backend(90.0, &["a"]), backend(10.0, &["b"])]);
        let mut allocator = Allocator::default();
        let mut b_total = 0;
        for _ in 0..100 {
            // 5 requests a tick: b is owed half a request each time.
            for (hash, n) in allocator.allocate(&s, 5.0) {
                if hash == "b" {
                    b_total += n;
                }
            }
        }
        assert_eq!(b_total, 50);
    }
}
