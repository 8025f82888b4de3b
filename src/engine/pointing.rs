//! Where the plan points traffic: the Services' selectors, the HTTPRoute's
//! weights, the claims on both, and what to do when a referenced object is
//! missing or another Rollout's.

use super::claims;
use super::observed::{Lookup, Observed};
use super::plan::{Planner, Write};
use super::route;
use super::route_extras;
use super::spec::{Routing, Settings, Strategy};
use crate::crd::Rollout;

/// The write that takes the canary (and baseline) share of the route to 0,
/// when a route this Rollout may write still gives them any.
pub(super) fn canary_off_route(
    rollout: &Rollout,
    settings: &Settings,
    observed: &Observed,
) -> Option<Write> {
    let Routing::GatewayApi {
        kind,
        namespace,
        name,
        rule_indexes,
    } = &settings.routing
    else {
        return None;
    };
    let Some(Lookup::Found(state)) = &observed.http_route else {
        return None;
    };
    let stable = settings.stable_service.as_deref()?;
    let canary = settings.canary_service.as_deref()?;
    let baseline = settings.baseline().and_then(|b| b.as_deref());
    let rules =
        route::managed_rules(state, rule_indexes.as_deref(), stable, canary, baseline).ok()?;
    let zero = route::rules_with_weight(state, &rules, stable, canary, baseline, 0);
    // No header route or mirror either: both reach the canary.
    let zero = match &settings.strategy {
        Strategy::Canary(_) => {
            route_extras::rules_with_extras(state, &zero, &rules, canary, &Default::default())
        }
        Strategy::BlueGreen(_) => zero,
    };
    let ours = state
        .owner
        .as_deref()
        .is_none_or(|o| o == claims::route_claim(rollout));
    (ours && zero != state.rules).then(|| Write::SetRouteWeights {
        kind: *kind,
        namespace: namespace.clone(),
        name: name.clone(),
        resource_version: state.resource_version.clone(),
        rules: zero,
        canary_weight: 0,
    })
}

/// Problems with objects the spec names (Services, HTTPRoute).
pub(super) fn check_references(
    settings: &Settings,
    observed: &Observed,
) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    for service in claims::referenced_services(settings) {
        if !matches!(observed.services.get(&service), Some(Lookup::Found(_))) {
            problems.push(format!("Service {service:?} not found"));
        }
    }
    if let Routing::GatewayApi {
        kind,
        namespace,
        name,
        rule_indexes,
    } = &settings.routing
    {
        match &observed.http_route {
            _ if observed.http_route_refused.is_some() => {
                problems.extend(observed.http_route_refused.clone());
            }
            Some(Lookup::Found(state)) => {
                let stable = settings.stable_service.as_deref().unwrap_or_default();
                let canary = settings.canary_service.as_deref().unwrap_or_default();
                let baseline = settings.baseline().and_then(|b| b.as_deref());
                if let Err(problem) =
                    route::managed_rules(state, rule_indexes.as_deref(), stable, canary, baseline)
                {
                    problems.push(format!("{} {namespace}/{name}: {problem}", kind.kind()));
                }
            }
            _ => problems.push(format!("{} {namespace}/{name} not found", kind.kind())),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

impl<'a> Planner<'a> {
    /// Point the stable and canary Services (those configured) at the given revisions.
    pub(super) fn point_services(&mut self, stable: &str, canary: &str) {
        let targets = [
            (self.settings.stable_service.clone(), stable),
            (self.settings.canary_service.clone(), canary),
        ];
        for (service, revision) in targets {
            let Some(service) = service else { continue };
            if self.service_selects(&service) != Some(revision) {
                self.writes.push(Write::SelectRevision {
                    service,
                    revision: revision.into(),
                });
            }
        }
    }

    /// The revision a Service selects now, as observed; `None` unless it is
    /// this Rollout's and selects exactly one revision of it (anything else,
    /// e.g. a selector a GitOps apply put back, is rewritten).
    pub(super) fn service_selects(&self, service: &str) -> Option<&str> {
        let Some(Lookup::Found(state)) = self.observed.services.get(service) else {
            return None;
        };
        let revision = state.selector.get(super::hash::POD_TEMPLATE_HASH_LABEL)?;
        let ours = state.owner.as_deref() == Some(claims::service_claim(self.rollout).as_str());
        (ours && state.selector == claims::service_selector(self.rollout, revision))
            .then_some(revision.as_str())
    }

    /// Mark the Services and the route this Rollout routes through as its own:
    /// claims go first, so a lost race stops the plan before any other write.
    pub(super) fn claim_references(&mut self) {
        let me = claims::service_claim(self.rollout);
        let mut claims_first = Vec::new();
        for service in claims::referenced_services(&self.settings) {
            if let Some(Lookup::Found(state)) = self.observed.services.get(&service)
                && state.owner.as_deref() != Some(me.as_str())
            {
                claims_first.push(Write::ClaimService {
                    service,
                    resource_version: state.resource_version.clone(),
                });
            }
        }
        let route_unclaimed = matches!(&self.observed.http_route,
            Some(Lookup::Found(r)) if r.owner.as_deref() != Some(claims::route_claim(self.rollout).as_str()));
        let route_written = self
            .writes
            .iter()
            .any(|w| matches!(w, Write::SetRouteWeights { .. }));
        if (route_unclaimed || !self.route_extras_in_place())
            && !route_written
            && let Some(weight) = self.route_weight()
        {
            // Every route write carries the claim and the extras wanted now
            // (none unless a step sets them); the weights stay as they are.
            self.force_route_weight(weight);
        }
        claims_first.append(&mut self.writes);
        self.writes = claims_first;
    }

    /// Observed canary share on the HTTPRoute, when routing through one.
    pub(super) fn route_weight(&self) -> Option<i32> {
        let (state, rules, stable, canary, baseline) = self.route_parts()?;
        Some(route::canary_weight(
            state, &rules, stable, canary, baseline,
        ))
    }

    /// Write the route's canary share if it differs from what is observed.
    pub(super) fn set_route_weight(&mut self, percent: i32) {
        let Some((state, rules, stable, canary, baseline)) = self.route_parts() else {
            return;
        };
        if route::canary_weight(state, &rules, stable, canary, baseline) == percent
            && self.route_extras_in_place()
        {
            return;
        }
        self.force_route_weight(percent);
    }

    /// Whether the route shows the header route and mirror wanted now
    /// (true without a route to write).
    pub(super) fn route_extras_in_place(&self) -> bool {
        self.route_shows(&self.route_extras)
    }

    /// Whether the observed route carries exactly `extras` (true without a route).
    pub(super) fn route_shows(&self, extras: &route_extras::RouteExtras) -> bool {
        // Blue-green has no such steps, and a mirror of the user's own to the
        // preview Service is not Sluice's to remove.
        if matches!(self.settings.strategy, Strategy::BlueGreen(_)) {
            return true;
        }
        self.route_parts()
            .is_none_or(|(state, rules, _, canary, _)| {
                route_extras::extras_in_place(state, &rules, canary, extras)
            })
    }

    /// Write the route's canary share even if it is already in place.
    pub(super) fn force_route_weight(&mut self, percent: i32) {
        let Routing::GatewayApi {
            kind,
            namespace,
            name,
            ..
        } = self.settings.routing.clone()
        else {
            return;
        };
        let Some((state, rules, stable, canary, baseline)) = self.route_parts() else {
            return;
        };
        let weighted = route::rules_with_weight(state, &rules, stable, canary, baseline, percent);
        let write = Write::SetRouteWeights {
            kind,
            namespace,
            name,
            resource_version: state.resource_version.clone(),
            rules: match &self.settings.strategy {
                Strategy::Canary(_) => route_extras::rules_with_extras(
                    state,
                    &weighted,
                    &rules,
                    canary,
                    &self.route_extras,
                ),
                Strategy::BlueGreen(_) => weighted,
            },
            canary_weight: percent,
        };
        self.writes.push(write);
    }

    /// Lower the canary share to at most `percent`; never raises it.
    pub(super) fn route_weight_down_to(&mut self, percent: i32) {
        if self.route_weight().is_some_and(|w| w > percent) {
            self.set_route_weight(percent);
        }
    }

    #[allow(clippy::type_complexity)]
    pub(super) fn route_parts(
        &self,
    ) -> Option<(
        &'a super::observed::RouteState,
        Vec<usize>,
        &str,
        &str,
        Option<&str>,
    )> {
        let Routing::GatewayApi { rule_indexes, .. } = &self.settings.routing else {
            return None;
        };
        let Some(Lookup::Found(state)) = self.observed.http_route.as_ref() else {
            return None;
        };
        let stable = self.settings.stable_service.as_deref()?;
        let canary = self.settings.canary_service.as_deref()?;
        let baseline = self.settings.baseline().and_then(|b| b.as_deref());
        let rules =
            route::managed_rules(state, rule_indexes.as_deref(), stable, canary, baseline).ok()?;
        Some((state, rules, stable, canary, baseline))
    }
}
