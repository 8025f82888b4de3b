//! Which Rollout routes through a Service or an HTTPRoute, and what a Service
//! it routes through must select.
//!
//! Sluice marks every Service it points with the label `sluice.dev/rollout:
//! <name>` and every HTTPRoute whose weights it sets with the annotation
//! `sluice.dev/rollout: <namespace>/<name>`. A second Rollout naming an object
//! another live Rollout has marked is refused before it writes anything. The
//! admission policy in `deploy/` keys on the same label to keep everyone but
//! Sluice off a marked Service's selector, also while Sluice is down.

use std::collections::BTreeMap;

use super::hash::POD_TEMPLATE_HASH_LABEL;
use super::observed::{Lookup, Observed};
use super::spec::{Routing, Settings};
use crate::crd::Rollout;

/// Label on a Service naming the Rollout (same namespace) that routes through it.
pub const SERVICE_CLAIM_LABEL: &str = super::revisions::ROLLOUT_LABEL;
/// Annotation on an HTTPRoute naming the Rollout (`namespace/name`) that sets its weights.
pub const ROUTE_CLAIM_ANNOTATION: &str = "sluice.dev/rollout";

/// The Rollout's name, as the Service claim label carries it.
pub fn service_claim(rollout: &Rollout) -> String {
    rollout.metadata.name.clone().unwrap_or_default()
}

/// The Rollout's `namespace/name`, as the route claim annotation carries it.
pub fn route_claim(rollout: &Rollout) -> String {
    format!(
        "{}/{}",
        rollout.metadata.namespace.as_deref().unwrap_or("default"),
        service_claim(rollout)
    )
}

/// The whole selector of a Service that sends traffic to `revision` only:
/// the Rollout's own labels (so it stays within the application) plus the hash.
pub fn service_selector(rollout: &Rollout, revision: &str) -> BTreeMap<String, String> {
    let mut selector = rollout
        .spec
        .selector
        .match_labels
        .clone()
        .unwrap_or_default();
    selector.insert(POD_TEMPLATE_HASH_LABEL.into(), revision.into());
    selector
}

/// Services the spec routes through: stable (or active), canary (or preview), baseline.
pub fn referenced_services(settings: &Settings) -> Vec<String> {
    let baseline = settings.baseline().cloned().flatten();
    [
        settings.stable_service.clone(),
        settings.canary_service.clone(),
        baseline,
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Objects the spec names that another live Rollout already routes through.
pub fn conflicts(rollout: &Rollout, settings: &Settings, observed: &Observed) -> Vec<String> {
    let mut problems = Vec::new();
    let me = service_claim(rollout);
    for service in referenced_services(settings) {
        if let Some(Lookup::Found(state)) = observed.services.get(&service)
            && let Some(owner) = state.owner.as_ref().filter(|o| **o != me)
        {
            problems.push(format!(
                "Service {service:?} already routes traffic for Rollout {owner:?}; a Service can serve one Rollout only"
            ));
        }
    }
    if let Routing::GatewayApi {
        kind,
        namespace,
        name,
        ..
    } = &settings.routing
        && let Some(Lookup::Found(route)) = &observed.http_route
        && let Some(owner) = route.owner.as_ref().filter(|o| **o != route_claim(rollout))
    {
        let kind = kind.kind();
        problems.push(format!(
            "{kind} {namespace}/{name} already carries the weights of Rollout {owner:?}; a route can serve one Rollout only"
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::observed::ServiceState;
    use crate::engine::spec;
    use crate::engine::testkit::Sim;

    fn claimed(owner: &str) -> Lookup<ServiceState> {
        Lookup::Found(ServiceState {
            owner: Some(owner.into()),
            ..ServiceState::default()
        })
    }

    #[test]
    fn another_rollouts_service_or_route_is_a_conflict_and_our_own_is_not() {
        let mut sim = Sim::new(crate::engine::testkit::rollout(2, None, true));
        let settings = spec::settings(&sim.rollout).expect("valid");
        sim.observed
            .services
            .insert("web-stable".into(), claimed("web"));
        assert!(conflicts(&sim.rollout, &settings, &sim.observed).is_empty());
        sim.observed
            .services
            .insert("web-canary".into(), claimed("shop"));
        if let Some(Lookup::Found(route)) = sim.observed.http_route.as_mut() {
            route.owner = Some("demo/shop".into());
        }
        let problems = conflicts(&sim.rollout, &settings, &sim.observed);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("\"web-canary\"") && problems[0].contains("\"shop\""));
        assert!(problems[1].contains("HTTPRoute demo/web") && problems[1].contains("demo/shop"));
    }

    #[test]
    fn a_service_selects_the_rollouts_labels_and_one_revision() {
        let rollout = crate::engine::testkit::rollout(2, None, true);
        let selector = service_selector(&rollout, "abc");
        assert_eq!(selector.get("app").map(String::as_str), Some("web"));
        assert_eq!(
            selector.get(POD_TEMPLATE_HASH_LABEL).map(String::as_str),
            Some("abc")
        );
        assert_eq!(selector.len(), 2);
    }
}
