//! Reading a Rollout spec into the engine's terms, with validation.
//!
//! Everything the API server cannot check at admission (selector against
//! template labels, weight order, duration syntax, scaling bounds) is checked
//! here and reported as an `InvalidSpec` condition, never a panic.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::named_routes::{self, RequestMatch, RouteName};
use crate::crd::limits::{self, MAX_PAUSE, MAX_REPLICAS, MAX_SECONDS};
use crate::crd::workload_ref::template_is_empty;
use crate::crd::{AnalysisStep, BlueGreenStrategy, CanaryStrategy, PromotionAnalysis, Rollout};

/// Default replicas when `spec.replicas` is omitted.
pub const DEFAULT_REPLICAS: i32 = 1;
/// Default `revisionHistoryLimit`.
pub const DEFAULT_REVISION_HISTORY_LIMIT: i32 = 10;
/// Default `progressDeadlineSeconds`.
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 600;
/// Default delay before an old stable ReplicaSet is scaled down.
pub const DEFAULT_SCALE_DOWN_DELAY_SECONDS: i32 = 30;
/// Default pause between weights in the default steps.
pub const DEFAULT_STEP_PAUSE: Duration = Duration::from_secs(60);

/// One canary step, validated.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Send this share of traffic (percent) to the canary.
    SetWeight(i32),
    /// Wait for the duration, or for a promote when `None`.
    Pause(Option<Duration>),
    /// Wait for the verdict of an analysis run.
    Analysis(AnalysisStep),
    /// Route requests with these headers to the canary; empty removes the
    /// route (the named one, or the unnamed one when `route` is `None`).
    SetHeaderRoute {
        route: Option<RouteName>,
        conditions: Vec<HeaderCondition>,
    },
    /// Mirror this percentage of requests to the canary; `None` removes the
    /// unnamed mirror. A named route mirrors only `matches` (100% unless
    /// given) and is removed when `matches` is empty.
    SetMirrorRoute {
        route: Option<RouteName>,
        matches: Vec<RequestMatch>,
        percent: Option<i32>,
    },
}

/// One validated header condition of a header route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderCondition {
    /// Header name, lowercase (Gateway API compares names without case).
    pub name: String,
    /// The value, exact or a regular expression.
    pub value: String,
    /// `value` is a regular expression.
    pub regex: bool,
}

impl Step {
    /// Short text for status and the CLI: `setWeight 25`, `pause 30s`, `pause (until promoted)`, `analysis error-rate`.
    pub fn describe(&self) -> String {
        match self {
            Step::SetWeight(weight) => format!("setWeight {weight}"),
            Step::Pause(Some(duration)) => {
                format!("pause {}", humantime::format_duration(*duration))
            }
            Step::Pause(None) => "pause (until promoted)".into(),
            Step::Analysis(analysis) => {
                let names: Vec<&str> = analysis
                    .templates
                    .iter()
                    .map(|t| t.template_name.as_str())
                    .collect();
                format!("analysis {}", names.join(","))
            }
            Step::SetHeaderRoute { route, conditions } => {
                let name = route_label(route);
                if conditions.is_empty() {
                    return format!("setHeaderRoute{name} (remove)");
                }
                format!("setHeaderRoute{name} {}", describe_headers(conditions))
            }
            Step::SetMirrorRoute {
                route: route @ Some(_),
                matches,
                percent,
            } => {
                let name = route_label(route);
                if matches.is_empty() {
                    return format!("setMirrorRoute{name} (remove)");
                }
                let what: Vec<String> = matches.iter().map(describe_match).collect();
                let percent = percent.unwrap_or(100);
                format!("setMirrorRoute{name} {percent}% of {}", what.join(" | "))
            }
            Step::SetMirrorRoute {
                percent: Some(percent),
                ..
            } => format!("setMirrorRoute {percent}%"),
            Step::SetMirrorRoute { percent: None, .. } => "setMirrorRoute (remove)".into(),
        }
    }
}

/// ` name` of a named route step, or nothing.
fn route_label(route: &Option<RouteName>) -> String {
    route
        .as_ref()
        .map(|r| format!(" {}", r.name))
        .unwrap_or_default()
}

fn describe_headers(conditions: &[HeaderCondition]) -> String {
    let text: Vec<String> = conditions
        .iter()
        .map(|c| match c.regex {
            true => format!("{}~{}", c.name, c.value),
            false => format!("{}={}", c.name, c.value),
        })
        .collect();
    text.join(",")
}

fn describe_match(one: &RequestMatch) -> String {
    let mut parts = Vec::new();
    parts.extend(one.method.clone());
    if let Some((kind, value)) = &one.path {
        parts.push(match kind.as_str() {
            "PathPrefix" => format!("{value}*"),
            "RegularExpression" => format!("~{value}"),
            _ => value.clone(),
        });
    }
    if !one.headers.is_empty() {
        parts.push(describe_headers(&one.headers));
    }
    parts.join(" ")
}

/// How traffic is split between stable and canary.
#[derive(Clone, Debug, PartialEq)]
pub enum Routing {
    /// Pod counts approximate the weight.
    ReplicaRatio,
    /// Exact weights on the backendRefs of a Gateway API HTTPRoute or GRPCRoute.
    GatewayApi {
        /// HTTPRoute or GRPCRoute.
        kind: RouteKind,
        /// Namespace of the HTTPRoute.
        namespace: String,
        /// Name of the HTTPRoute.
        name: String,
        /// Rules to manage; `None` means every rule that references the stable Service.
        rule_indexes: Option<Vec<u32>>,
    },
}

impl Routing {
    /// Name shown in `status.trafficRouting`.
    pub fn label(&self) -> String {
        match self {
            Routing::ReplicaRatio => "ReplicaRatio".into(),
            Routing::GatewayApi {
                kind,
                namespace,
                name,
                ..
            } => format!("GatewayAPI {} {namespace}/{name}", kind.kind()),
        }
    }
}

/// The kind of Gateway API route that carries the weights. Both have the
/// same `rules[].backendRefs`, `matches[].headers` and `RequestMirror` shapes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RouteKind {
    /// `HTTPRoute`.
    #[default]
    Http,
    /// `GRPCRoute`.
    Grpc,
}

impl RouteKind {
    /// The Kubernetes kind.
    pub fn kind(self) -> &'static str {
        match self {
            RouteKind::Http => "HTTPRoute",
            RouteKind::Grpc => "GRPCRoute",
        }
    }

    /// The resource's plural.
    pub fn plural(self) -> &'static str {
        match self {
            RouteKind::Http => "httproutes",
            RouteKind::Grpc => "grpcroutes",
        }
    }
}

/// Which strategy brings new versions in, with what only it uses.
#[derive(Clone, Debug, PartialEq)]
pub enum Strategy {
    /// Steps of weights, pauses and analysis.
    Canary(CanarySettings),
    /// Preview, switch, keep the old version warm.
    BlueGreen(BlueGreenSettings),
}

/// Canary settings, defaults applied.
#[derive(Clone, Debug, PartialEq)]
pub struct CanarySettings {
    /// Steps, defaults applied.
    pub steps: Vec<Step>,
    /// Background analysis, if configured.
    pub background_analysis: Option<crate::crd::BackgroundAnalysis>,
    /// Dedicated baseline, if configured: `Some(service)` (the service only with a router).
    pub baseline: Option<Option<String>>,
}

impl Strategy {
    /// Name recorded in `status.strategy`.
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Canary(_) => "Canary",
            Strategy::BlueGreen(_) => "BlueGreen",
        }
    }
}

/// Blue-green settings, defaults applied. The active Service is
/// `Settings::stable_service` and the preview Service `canary_service`, so
/// Service pointing and route weights work as for a canary.
#[derive(Clone, Debug, PartialEq)]
pub struct BlueGreenSettings {
    /// Pods of the new version before the switch.
    pub preview_replicas: i32,
    /// Switch without an operator's promote.
    pub auto_promotion: bool,
    /// Wait after the preview is ready before an automatic switch.
    pub auto_promotion_delay: Duration,
    /// Analysis of the preview before the switch.
    pub pre_promotion: Option<PromotionAnalysis>,
    /// Analysis after the switch.
    pub post_promotion: Option<PromotionAnalysis>,
}

/// The parts of a Rollout spec the engine works with, defaults applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Desired pods at full size.
    pub replicas: i32,
    /// The Service of the version users get: a canary's `stableService`, a
    /// blue-green update's `activeService`.
    pub stable_service: Option<String>,
    /// The Service of the new version: a canary's `canaryService`, a
    /// blue-green update's `previewService`.
    pub canary_service: Option<String>,
    /// How traffic is split.
    pub routing: Routing,
    /// Extra pods allowed above `replicas`.
    pub max_surge: i32,
    /// Pods that may be missing below `replicas`.
    pub max_unavailable: i32,
    /// Old ReplicaSets kept at zero.
    pub revision_history_limit: usize,
    /// Time without progress before the rollout is Degraded.
    pub progress_deadline: Duration,
    /// Delay before the old stable is scaled down after a promotion.
    pub scale_down_delay: Duration,
    /// Delay before an aborted canary is scaled down.
    pub abort_scale_down_delay: Duration,
    /// Canary or blue-green, with what only that strategy uses.
    pub strategy: Strategy,
}

impl Settings {
    /// The canary's steps (none for blue-green).
    pub fn steps(&self) -> &[Step] {
        match &self.strategy {
            Strategy::Canary(canary) => &canary.steps,
            Strategy::BlueGreen(_) => &[],
        }
    }

    /// The canary's background analysis, if any.
    pub fn background_analysis(&self) -> Option<&crate::crd::BackgroundAnalysis> {
        match &self.strategy {
            Strategy::Canary(canary) => canary.background_analysis.as_ref(),
            Strategy::BlueGreen(_) => None,
        }
    }

    /// The canary's dedicated baseline, if any: `Some(service)`.
    pub fn baseline(&self) -> Option<&Option<String>> {
        match &self.strategy {
            Strategy::Canary(canary) => canary.baseline.as_ref(),
            Strategy::BlueGreen(_) => None,
        }
    }
}

/// Hash label value of the dedicated baseline started beside a canary of `stable`.
pub fn baseline_hash(stable: &str) -> String {
    format!("{stable}-baseline")
}

/// The default steps: 10% → 25% → 50% → 100% with a pause between weights.
pub fn default_steps() -> Vec<Step> {
    vec![
        Step::SetWeight(10),
        Step::Pause(Some(DEFAULT_STEP_PAUSE)),
        Step::SetWeight(25),
        Step::Pause(Some(DEFAULT_STEP_PAUSE)),
        Step::SetWeight(50),
        Step::Pause(Some(DEFAULT_STEP_PAUSE)),
        Step::SetWeight(100),
    ]
}

/// Validate a Rollout and read its settings; every problem found is listed.
pub fn settings(rollout: &Rollout) -> Result<Settings, Vec<String>> {
    let mut problems = Vec::new();
    let spec = &rollout.spec;
    let replicas = spec.replicas.unwrap_or(DEFAULT_REPLICAS);
    if replicas < 0 {
        problems.push(format!("spec.replicas is {replicas}, must not be negative"));
    }
    if let Err(problem) = limits::at_most(replicas, MAX_REPLICAS, "spec.replicas") {
        problems.push(problem);
    }
    match &spec.workload_ref {
        Some(reference) => {
            problems.extend(super::workload::reference_problems(reference));
            // Unresolved (offline, in `sluice lint`) the template and maybe
            // the selector are the Deployment's: checked once resolved.
            if !template_is_empty(&spec.template) {
                check_selector(rollout, &mut problems);
            }
        }
        None if template_is_empty(&spec.template) => {
            problems.push("spec.template is required unless spec.workloadRef is set".into());
        }
        None => check_selector(rollout, &mut problems),
    }
    let name = rollout.metadata.name.as_deref().unwrap_or_default();
    if name.len() > limits::MAX_NAME {
        problems.push(format!(
            "name {name:?} is longer than {} characters, too long for a label value",
            limits::MAX_NAME
        ));
    }
    let canary = match (&spec.strategy.canary, &spec.strategy.blue_green) {
        (Some(canary), None) => canary,
        (None, Some(blue_green)) => return blue_green_settings(rollout, blue_green, problems),
        _ => {
            problems.push("spec.strategy must set exactly one of canary and blueGreen".into());
            return Err(problems);
        }
    };
    let managed_routes = named_routes::managed_names(canary, &mut problems);
    let steps = canary_steps(canary, &managed_routes, &mut problems);
    let routing = routing(rollout, canary, &mut problems);
    match &routing {
        Routing::ReplicaRatio => super::route_extras::check_needs_router(&steps, &mut problems),
        Routing::GatewayApi { kind, .. } => {
            named_routes::check_route_kind(&steps, *kind, &mut problems)
        }
    }
    let max_surge = scaled_int(
        canary.max_surge.as_ref(),
        replicas,
        true,
        "maxSurge",
        &mut problems,
    )
    .unwrap_or(0);
    let max_unavailable = scaled_int(
        canary.max_unavailable.as_ref(),
        replicas,
        false,
        "maxUnavailable",
        &mut problems,
    )
    .unwrap_or(0);
    let max_surge = match canary.max_surge {
        None => (replicas.saturating_add(3) / 4).max(1),
        Some(_) => max_surge,
    };
    if max_surge == 0 && max_unavailable == 0 && replicas > 0 {
        problems.push("maxSurge and maxUnavailable cannot both be 0".into());
    }
    if routing == Routing::ReplicaRatio {
        super::ratio::check_weights(&steps, replicas, max_surge, &mut problems);
    }
    let timing = timing(
        rollout,
        canary.scale_down_delay_seconds,
        canary.abort_scale_down_delay_seconds,
        &mut problems,
    );
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Settings {
        replicas,
        stable_service: canary.stable_service.clone(),
        canary_service: canary.canary_service.clone(),
        routing,
        max_surge,
        max_unavailable,
        revision_history_limit: timing.history,
        progress_deadline: timing.deadline,
        scale_down_delay: timing.scale_down,
        abort_scale_down_delay: timing.abort_scale_down,
        strategy: Strategy::Canary(CanarySettings {
            steps,
            background_analysis: canary.analysis.clone(),
            baseline: canary.baseline.as_ref().map(|b| b.service.clone()),
        }),
    })
}

/// A field that must not be negative, with its default.
fn non_negative(value: Option<i32>, default: i32, field: &str, problems: &mut Vec<String>) -> u64 {
    let value = value.unwrap_or(default);
    if value < 0 {
        problems.push(format!("{field} is {value}, must not be negative"));
    }
    u64::try_from(value).unwrap_or(0)
}

/// A `*Seconds` field: not negative and at most `MAX_SECONDS`.
fn seconds(value: Option<i32>, default: i32, field: &str, problems: &mut Vec<String>) -> Duration {
    let checked = non_negative(value, default, field, problems);
    if let Err(problem) = limits::at_most(value.unwrap_or(default), MAX_SECONDS, field) {
        problems.push(problem);
    }
    Duration::from_secs(checked)
}

fn blue_green_settings(
    rollout: &Rollout,
    blue_green: &BlueGreenStrategy,
    mut problems: Vec<String>,
) -> Result<Settings, Vec<String>> {
    let spec = &rollout.spec;
    let replicas = spec.replicas.unwrap_or(DEFAULT_REPLICAS);
    if blue_green.active_service.is_empty() {
        problems.push("blueGreen.activeService must not be empty".into());
    }
    if blue_green.preview_service.as_deref() == Some(blue_green.active_service.as_str()) {
        problems.push("blueGreen.activeService and previewService must differ".into());
    }
    let preview_replicas = blue_green.preview_replica_count.unwrap_or(replicas);
    if preview_replicas < 1 && replicas > 0 {
        problems.push(format!(
            "blueGreen.previewReplicaCount is {preview_replicas}, must be at least 1"
        ));
    }
    if let Err(problem) = limits::at_most(
        preview_replicas,
        MAX_REPLICAS,
        "blueGreen.previewReplicaCount",
    ) {
        problems.push(problem);
    }
    let routing = match blue_green
        .traffic_routing
        .as_ref()
        .and_then(|t| t.gateway_api.as_ref())
    {
        None => {
            if blue_green.traffic_routing.is_some() {
                problems.push("blueGreen.trafficRouting must set gatewayAPI".into());
            }
            Routing::ReplicaRatio
        }
        Some(gateway) => {
            if blue_green.preview_service.is_none() {
                problems.push("blueGreen.trafficRouting needs a previewService".into());
            }
            gateway_routing(rollout, gateway, &mut problems)
        }
    };
    for (field, analysis) in [
        ("prePromotionAnalysis", &blue_green.pre_promotion_analysis),
        ("postPromotionAnalysis", &blue_green.post_promotion_analysis),
    ] {
        if analysis.as_ref().is_some_and(|a| a.templates.is_empty()) {
            problems.push(format!("blueGreen.{field} needs at least one template"));
        }
    }
    let timing = timing(
        rollout,
        blue_green.scale_down_delay_seconds,
        blue_green.abort_scale_down_delay_seconds,
        &mut problems,
    );
    let auto_delay = seconds(
        blue_green.auto_promotion_seconds,
        0,
        "autoPromotionSeconds",
        &mut problems,
    );
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Settings {
        replicas,
        stable_service: Some(blue_green.active_service.clone()),
        canary_service: blue_green.preview_service.clone(),
        routing,
        max_surge: 0,
        max_unavailable: 0,
        revision_history_limit: timing.history,
        progress_deadline: timing.deadline,
        scale_down_delay: timing.scale_down,
        abort_scale_down_delay: timing.abort_scale_down,
        strategy: Strategy::BlueGreen(BlueGreenSettings {
            preview_replicas: preview_replicas.min(replicas).max(0),
            auto_promotion: blue_green.auto_promotion_enabled.unwrap_or(true),
            auto_promotion_delay: auto_delay,
            pre_promotion: blue_green.pre_promotion_analysis.clone(),
            post_promotion: blue_green.post_promotion_analysis.clone(),
        }),
    })
}

fn check_selector(rollout: &Rollout, problems: &mut Vec<String>) {
    let selector = rollout
        .spec
        .selector
        .match_labels
        .clone()
        .unwrap_or_default();
    if selector.is_empty() {
        problems.push("spec.selector.matchLabels must not be empty".into());
    }
    if rollout
        .spec
        .selector
        .match_expressions
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        problems.push("spec.selector.matchExpressions is not supported; use matchLabels".into());
    }
    let labels = rollout
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    for (key, value) in &selector {
        if labels.get(key) != Some(value) {
            problems.push(format!(
                "spec.selector {key}={value} does not match the template labels"
            ));
        }
    }
}

fn canary_steps(
    canary: &CanaryStrategy,
    managed_routes: &[String],
    problems: &mut Vec<String>,
) -> Vec<Step> {
    let Some(raw) = canary.steps.as_ref() else {
        return default_steps();
    };
    let mut steps = Vec::with_capacity(raw.len());
    let mut last_weight = 0;
    for (index, step) in raw.iter().enumerate() {
        let set = [
            step.set_weight.is_some(),
            step.pause.is_some(),
            step.analysis.is_some(),
            step.set_header_route.is_some(),
            step.set_mirror_route.is_some(),
        ];
        if set.iter().filter(|x| **x).count() != 1 {
            problems.push(format!(
                "steps[{index}] must set exactly one of setWeight, pause, analysis, setHeaderRoute, setMirrorRoute"
            ));
            continue;
        }
        if let Some(route) = &step.set_header_route {
            let field = format!("steps[{index}].setHeaderRoute");
            steps.push(Step::SetHeaderRoute {
                route: named_routes::resolve(
                    &field,
                    route.name.as_deref(),
                    managed_routes,
                    problems,
                ),
                conditions: super::route_extras::header_conditions(index, route, problems),
            });
            continue;
        }
        if let Some(mirror) = &step.set_mirror_route {
            if let Some(percent) = mirror.percentage.filter(|p| !(1..=100).contains(p)) {
                problems.push(format!(
                    "steps[{index}].setMirrorRoute.percentage is {percent}, must be between 1 and 100"
                ));
            }
            let field = format!("steps[{index}].setMirrorRoute");
            steps.push(Step::SetMirrorRoute {
                route: named_routes::resolve(
                    &field,
                    mirror.name.as_deref(),
                    managed_routes,
                    problems,
                ),
                matches: named_routes::mirror_matches(index, mirror, problems),
                percent: mirror.percentage,
            });
            continue;
        }
        if let Some(weight) = step.set_weight {
            if !(0..=100).contains(&weight) {
                problems.push(format!(
                    "steps[{index}].setWeight is {weight}, must be between 0 and 100"
                ));
            } else if weight < last_weight {
                problems.push(format!(
                    "steps[{index}].setWeight {weight} is lower than the earlier {last_weight}; weights must not decrease"
                ));
            }
            last_weight = last_weight.max(weight);
            steps.push(Step::SetWeight(weight));
        } else if let Some(pause) = &step.pause {
            match pause
                .duration
                .as_ref()
                .map(|duration| duration.within(MAX_PAUSE))
                .transpose()
            {
                Ok(duration) => steps.push(Step::Pause(duration)),
                Err(err) => problems.push(format!(
                    "steps[{index}].pause.duration {err} (pause: {{}} waits until promoted)"
                )),
            }
        } else if let Some(analysis) = &step.analysis {
            if analysis.templates.is_empty() {
                problems.push(format!(
                    "steps[{index}].analysis needs at least one template"
                ));
            }
            steps.push(Step::Analysis(analysis.clone()));
        }
    }
    steps
}

fn routing(rollout: &Rollout, canary: &CanaryStrategy, problems: &mut Vec<String>) -> Routing {
    let Some(gateway) = canary
        .traffic_routing
        .as_ref()
        .and_then(|t| t.gateway_api.as_ref())
    else {
        if canary.traffic_routing.is_some() {
            problems.push("trafficRouting must set gatewayAPI".into());
        }
        return Routing::ReplicaRatio;
    };
    if canary.stable_service.is_none() || canary.canary_service.is_none() {
        problems.push("trafficRouting needs both stableService and canaryService".into());
    }
    if canary.stable_service.is_some() && canary.stable_service == canary.canary_service {
        problems.push("stableService and canaryService must differ".into());
    }
    if let Some(baseline) = &canary.baseline {
        match &baseline.service {
            None => problems.push("baseline.service is required with trafficRouting".into()),
            Some(service)
                if Some(service) == canary.stable_service.as_ref()
                    || Some(service) == canary.canary_service.as_ref() =>
            {
                problems.push(
                    "baseline.service must differ from stableService and canaryService".into(),
                )
            }
            Some(_) => {}
        }
    }
    gateway_routing(rollout, gateway, problems)
}

/// The HTTPRoute a strategy's `trafficRouting.gatewayAPI` names (in the
/// Rollout's namespace unless another is given).
fn gateway_routing(
    rollout: &Rollout,
    gateway: &crate::crd::GatewayApiRouting,
    problems: &mut Vec<String>,
) -> Routing {
    let grpc = gateway.grpc_route.clone().filter(|n| !n.is_empty());
    let (kind, name) = match (gateway.http_route.is_empty(), grpc) {
        (true, Some(name)) => (RouteKind::Grpc, name),
        (false, None) => (RouteKind::Http, gateway.http_route.clone()),
        (true, None) => {
            problems.push("trafficRouting.gatewayAPI must name an httpRoute or a grpcRoute".into());
            (RouteKind::Http, String::new())
        }
        (false, Some(_)) => {
            problems.push(
                "trafficRouting.gatewayAPI must name one of httpRoute and grpcRoute, not both"
                    .into(),
            );
            (RouteKind::Http, gateway.http_route.clone())
        }
    };
    let own_namespace = rollout.metadata.namespace.clone().unwrap_or_default();
    Routing::GatewayApi {
        kind,
        namespace: gateway.namespace.clone().unwrap_or(own_namespace),
        name,
        rule_indexes: gateway.rule_indexes.clone(),
    }
}

/// History, deadline and scale-down delays: read alike for both strategies.
struct Timing {
    history: usize,
    deadline: Duration,
    scale_down: Duration,
    abort_scale_down: Duration,
}

fn timing(
    rollout: &Rollout,
    scale_down: Option<i32>,
    abort_scale_down: Option<i32>,
    problems: &mut Vec<String>,
) -> Timing {
    let spec = &rollout.spec;
    let history = non_negative(
        spec.revision_history_limit,
        DEFAULT_REVISION_HISTORY_LIMIT,
        "revisionHistoryLimit",
        problems,
    );
    Timing {
        history: usize::try_from(history).unwrap_or(usize::MAX),
        deadline: seconds(
            spec.progress_deadline_seconds,
            DEFAULT_PROGRESS_DEADLINE_SECONDS,
            "progressDeadlineSeconds",
            problems,
        ),
        scale_down: seconds(
            scale_down,
            DEFAULT_SCALE_DOWN_DELAY_SECONDS,
            "scaleDownDelaySeconds",
            problems,
        ),
        abort_scale_down: seconds(
            abort_scale_down,
            DEFAULT_SCALE_DOWN_DELAY_SECONDS,
            "abortScaleDownDelaySeconds",
            problems,
        ),
    }
}

/// Resolve an int-or-percent against `total`; percentages round up for surge, down for unavailability.
fn scaled_int(
    value: Option<&IntOrString>,
    total: i32,
    round_up: bool,
    field: &str,
    problems: &mut Vec<String>,
) -> Option<i32> {
    match value? {
        IntOrString::Int(n) if *n > MAX_REPLICAS => {
            problems.push(format!("{field} is {n}, at most {MAX_REPLICAS}"));
            None
        }
        IntOrString::Int(n) if *n >= 0 => Some(*n),
        IntOrString::Int(n) => {
            problems.push(format!("{field} is {n}, must not be negative"));
            None
        }
        IntOrString::String(text) => {
            let parsed = text
                .strip_suffix('%')
                .and_then(|p| p.trim().parse::<i64>().ok());
            match parsed {
                Some(percent) if (0..=100).contains(&percent) => {
                    let scaled = i64::from(total) * percent;
                    let value = if round_up {
                        (scaled + 99) / 100
                    } else {
                        scaled / 100
                    };
                    i32::try_from(value).ok()
                }
                _ => {
                    problems.push(format!(
                        "{field} is {text:?}, must be a number or a percentage like 25%"
                    ));
                    None
                }
            }
        }
    }
}
