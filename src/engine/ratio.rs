//! Replica-ratio weights: without a router, a weight is a share of pods.
//!
//! Rounding favours stable: it keeps `replicas - floor(replicas * w / 100)`
//! pods, never fewer than its share, and the canary's `ceil(...)` pods come on
//! top within maxSurge. A weight the replica count cannot come near is refused.

use super::spec::Step;

/// Without a router, a weight is a share of pods: refuse a weight the replica
/// count cannot come near (the canary would take more than twice its share),
/// and one whose extra canary pod does not fit in maxSurge.
pub fn check_weights(steps: &[Step], replicas: i32, max_surge: i32, problems: &mut Vec<String>) {
    if replicas <= 0 {
        return;
    }
    for (index, step) in steps.iter().enumerate() {
        let Step::SetWeight(weight) = step else {
            continue;
        };
        let weight = *weight;
        if weight <= 0 || weight >= 100 {
            continue;
        }
        let (canary, stable) = pods(replicas, weight);
        let share = canary_share(replicas, weight);
        if share > 2 * weight {
            let enough = (1..=10_000)
                .find(|r| canary_share(*r, weight) <= 2 * weight)
                .unwrap_or(100);
            problems.push(format!(
                "steps[{index}].setWeight {weight} cannot be honoured with {replicas} replicas and no traffic router: \
                 the smallest canary ({canary} pod beside {stable} stable) takes {share}% of traffic; \
                 use at least {enough} replicas, a lower step count, or trafficRouting"
            ));
            continue;
        }
        let surge = i64::from(canary) + i64::from(stable) - i64::from(replicas);
        if surge > i64::from(max_surge) {
            problems.push(format!(
                "steps[{index}].setWeight {weight} with {replicas} replicas needs {surge} canary pod(s) above replicas \
                 (stable keeps {stable} pods), but maxSurge is {max_surge}"
            ));
        }
    }
}

/// Canary and stable pods at `weight` without a router.
pub fn pods(replicas: i32, weight: i32) -> (i32, i32) {
    (
        super::canary_replicas(replicas, weight),
        super::stable_replicas(replicas, weight),
    )
}

/// The canary's share of traffic in percent (rounded) at `weight` without a router.
pub fn canary_share(replicas: i32, weight: i32) -> i32 {
    let (canary, stable) = pods(replicas, weight);
    // i64: replicas come from the user and may be as large as i32 allows.
    let (canary, total) = (i64::from(canary), i64::from(canary) + i64::from(stable));
    if total <= 0 {
        return 0;
    }
    i32::try_from((canary * 100 + total / 2) / total).unwrap_or(100)
}
