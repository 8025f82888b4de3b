//! Header routes and traffic mirroring on a Gateway API `HTTPRoute`: the
//! `setHeaderRoute` and `setMirrorRoute` steps, as plain JSON edits of
//! `spec.rules`.
//!
//! What Sluice owns, and so may remove, is recognisable in the route itself
//! (no bookkeeping elsewhere that a GitOps re-apply could desynchronise):
//! - the rule named [`HEADER_RULE_NAME`], appended after the user's rules;
//! - the rules named `sluice-route-<name>` of named routes
//!   (`managedRoutes`, see [`super::named_routes`]), before it;
//! - `RequestMirror` filters on the *managed* rules whose backendRef is the
//!   canary Service in the Rollout's namespace.
//!
//! Every other rule and filter is sent back exactly as read, and a
//! blue-green Rollout's route is never edited here at all (its user may
//! mirror to the preview Service). The safe state
//! is "no extras": every route write that does not come from a step in
//! progress removes them (abort, promotion, an invalid spec).

use serde_json::{Map, Value, json};

use super::named_routes::{self, NamedIntent, NamedRoute};
use super::observed::RouteState;
use super::route;
use super::spec::{HeaderCondition, RouteKind, Step};
use crate::crd::SetHeaderRoute;

/// Name of the rule Sluice adds for a header route (Gateway API rule names
/// are unique within a route, and a route is used by one Rollout).
pub const HEADER_RULE_NAME: &str = "sluice-canary-header";

/// The header route and mirror wanted on the route.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteExtras {
    /// Requests carrying all these headers go to the canary; empty: none.
    pub header: Vec<HeaderCondition>,
    /// Percent of the managed rules' requests copied to the canary.
    pub mirror_percent: Option<i32>,
    /// Named routes in effect, in order of precedence.
    pub named: Vec<NamedRoute>,
}

/// The extras in effect at step `index`: the last unnamed `setHeaderRoute`
/// and `setMirrorRoute` at or before it, and for each route name the last
/// step naming it (unless that step removed it).
pub fn extras_at(steps: &[Step], index: usize) -> RouteExtras {
    let mut extras = RouteExtras::default();
    for step in steps.iter().take(index + 1) {
        let (route, intent) = match step {
            Step::SetHeaderRoute {
                route: None,
                conditions,
            } => {
                extras.header = conditions.clone();
                continue;
            }
            Step::SetMirrorRoute {
                route: None,
                percent,
                ..
            } => {
                extras.mirror_percent = *percent;
                continue;
            }
            Step::SetHeaderRoute {
                route: Some(route),
                conditions,
            } => (
                route,
                (!conditions.is_empty()).then(|| NamedIntent::Header(conditions.clone())),
            ),
            Step::SetMirrorRoute {
                route: Some(route),
                matches,
                percent,
            } => (
                route,
                (!matches.is_empty()).then(|| NamedIntent::Mirror {
                    matches: matches.clone(),
                    percent: percent.unwrap_or(100),
                }),
            ),
            _ => continue,
        };
        extras.named.retain(|n| n.name != route.name);
        if let Some(intent) = intent {
            extras.named.push(NamedRoute {
                name: route.name.clone(),
                precedence: route.precedence,
                intent,
            });
        }
    }
    extras.named.sort_by_key(|n| n.precedence);
    extras
}

/// Header names as RFC 7230 tokens (the Gateway API's own pattern).
pub(super) fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

/// Validate the conditions of the `setHeaderRoute` at `steps[index]`.
pub fn header_conditions(
    index: usize,
    step: &SetHeaderRoute,
    problems: &mut Vec<String>,
) -> Vec<HeaderCondition> {
    let mut out = Vec::new();
    for (at, condition) in step.matches.iter().enumerate() {
        let field = format!("steps[{index}].setHeaderRoute.match[{at}]");
        if !valid_header_name(&condition.header_name) {
            problems.push(format!(
                "{field}.headerName {:?} is not a valid HTTP header name",
                condition.header_name
            ));
            continue;
        }
        let value = &condition.header_value;
        let (text, regex) = match (&value.exact, &value.regex) {
            (Some(exact), None) if !exact.is_empty() => (exact.clone(), false),
            (None, Some(pattern)) if !pattern.is_empty() => {
                if let Err(error) = regex::Regex::new(pattern) {
                    problems.push(format!(
                        "{field}.headerValue.regex {pattern:?} is not a regular expression: {error}"
                    ));
                    continue;
                }
                (pattern.clone(), true)
            }
            _ => {
                problems.push(format!(
                    "{field}.headerValue must set exactly one of exact and regex, not empty"
                ));
                continue;
            }
        };
        let name = condition.header_name.to_ascii_lowercase();
        if out.iter().any(|c: &HeaderCondition| c.name == name) {
            problems.push(format!("{field}.headerName {name:?} appears twice"));
            continue;
        }
        out.push(HeaderCondition {
            name,
            value: text,
            regex,
        });
    }
    out
}

/// Header routes and mirrors are routes: refuse them without a router.
pub fn check_needs_router(steps: &[Step], problems: &mut Vec<String>) {
    for (index, step) in steps.iter().enumerate() {
        let name = match step {
            Step::SetHeaderRoute { .. } => "setHeaderRoute",
            Step::SetMirrorRoute { .. } => "setMirrorRoute",
            _ => continue,
        };
        problems.push(format!(
            "steps[{index}].{name} needs trafficRouting.gatewayAPI (a replica ratio cannot route by header or mirror)"
        ));
    }
}

/// `rules` (the route's rules, weights already set) with Sluice's old extras
/// removed and `extras` added. `managed` are the indexes of the weighted
/// rules in `rules`; `canary` the canary Service.
pub fn rules_with_extras(
    state: &RouteState,
    rules: &Value,
    managed: &[usize],
    canary: &str,
    extras: &RouteExtras,
) -> Value {
    let mut all = rules.as_array().cloned().unwrap_or_default();
    let template = managed.first().and_then(|i| all.get(*i)).cloned();
    // Mirrors first, by index, before the header rule is taken out.
    for index in managed {
        let Some(rule) = all.get_mut(*index).and_then(Value::as_object_mut) else {
            continue;
        };
        let mirror = canary_ref(state, rule, canary).map(|r| mirror_filter(&r, extras));
        let mut filters = strip_mirrors(state, rule.get("filters"), canary);
        if let Some(Some(filter)) = mirror {
            filters.push(filter);
        }
        if filters.is_empty() {
            rule.remove("filters");
        } else {
            rule.insert("filters".into(), Value::Array(filters));
        }
    }
    // Read by index before Sluice's old rules are taken out and indexes shift.
    let sources = source_matches(state, &all, managed);
    all.retain(|rule| !is_sluice_rule(rule));
    let Some(template) = template.as_ref().and_then(Value::as_object) else {
        return Value::Array(all);
    };
    if let Some(backend) = canary_ref(state, template, canary) {
        let filters = strip_mirrors(state, template.get("filters"), canary);
        for route in &extras.named {
            if let Some(rule) =
                named_routes::named_rule(route, &sources, template, filters.clone(), &backend)
            {
                all.push(rule);
            }
        }
    }
    if !extras.header.is_empty()
        && let Some(rule) = header_rule(state, &sources, template, canary, extras)
    {
        all.push(rule);
    }
    Value::Array(all)
}

/// Whether the route shows exactly `extras` (and none of Sluice's old ones).
pub fn extras_in_place(
    state: &RouteState,
    managed: &[usize],
    canary: &str,
    extras: &RouteExtras,
) -> bool {
    rules_with_extras(state, &state.rules, managed, canary, extras) == state.rules
}

fn is_header_rule(rule: &Value) -> bool {
    rule.get("name").and_then(Value::as_str) == Some(HEADER_RULE_NAME)
}

/// Whether `rule` is Sluice's own: the header rule or a named route's.
pub fn is_sluice_rule(rule: &Value) -> bool {
    is_header_rule(rule) || named_routes::is_named_rule(rule)
}

/// The canary's backendRef in `rule`, as Gateway API writes it back
/// (group and kind explicit, so what is read equals what was written).
fn canary_ref(state: &RouteState, rule: &Map<String, Value>, canary: &str) -> Option<Value> {
    let refs = rule.get("backendRefs")?.as_array()?;
    let found = refs
        .iter()
        .find(|b| route::service_of(state, b) == Some(canary))?;
    let mut out = found.as_object()?.clone();
    out.entry("group").or_insert(json!(""));
    out.entry("kind").or_insert(json!("Service"));
    Some(Value::Object(out))
}

/// The `RequestMirror` filter for `extras`, from the canary's backendRef.
fn mirror_filter(canary_ref: &Value, extras: &RouteExtras) -> Option<Value> {
    Some(mirror_filter_to(canary_ref, extras.mirror_percent?))
}

/// A `RequestMirror` filter copying `percent` of requests to `canary_ref`.
pub(super) fn mirror_filter_to(canary_ref: &Value, percent: i32) -> Value {
    let mut target = Map::new();
    for key in ["group", "kind", "name", "namespace", "port"] {
        if let Some(value) = canary_ref.get(key) {
            target.insert(key.into(), value.clone());
        }
    }
    json!({
        "type": "RequestMirror",
        "requestMirror": { "backendRef": target, "percent": percent },
    })
}

/// `filters` without the mirrors to the canary Service (Sluice's).
fn strip_mirrors(state: &RouteState, filters: Option<&Value>, canary: &str) -> Vec<Value> {
    let list = filters
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    list.into_iter()
        .filter(|f| {
            let target = f.get("requestMirror").and_then(|m| m.get("backendRef"));
            let ours = f.get("type").and_then(Value::as_str) == Some("RequestMirror")
                && target.is_some_and(|t| route::service_of(state, t) == Some(canary));
            !ours
        })
        .collect()
}

/// Every match of the managed rules, as the rules Sluice adds copy them.
fn source_matches(state: &RouteState, all: &[Value], managed: &[usize]) -> Vec<Value> {
    let mut matches: Vec<Value> = Vec::new();
    for rule in managed.iter().filter_map(|i| all.get(*i)) {
        let listed = rule.get("matches").and_then(Value::as_array).cloned();
        // No matches: every request. An HTTPRoute's stored rules always
        // have them (the CRD defaults one); a GRPCRoute's may not.
        let listed = listed.unwrap_or_else(|| match state.kind {
            RouteKind::Http => vec![json!({"path": {"type": "PathPrefix", "value": "/"}})],
            RouteKind::Grpc => vec![json!({})],
        });
        for one in listed {
            if !matches.contains(&one) {
                matches.push(one);
            }
        }
    }
    matches
}

/// The header rule: every match of the managed rules, each narrowed by the
/// headers (so it is more specific than the rule it copies and wins by the
/// Gateway API's precedence), sending to the canary alone. Filters and
/// timeouts are the first managed rule's, less Sluice's mirror.
fn header_rule(
    state: &RouteState,
    sources: &[Value],
    template: &Map<String, Value>,
    canary: &str,
    extras: &RouteExtras,
) -> Option<Value> {
    let mut backend = canary_ref(state, template, canary)?;
    if let Some(object) = backend.as_object_mut() {
        object.insert("weight".into(), json!(1));
    }
    let mut matches: Vec<Value> = Vec::new();
    for mut one in sources.iter().cloned() {
        narrow(&mut one, &extras.header);
        if !matches.contains(&one) {
            matches.push(one);
        }
    }
    let mut rule = Map::new();
    rule.insert("name".into(), json!(HEADER_RULE_NAME));
    rule.insert("matches".into(), Value::Array(matches));
    let filters = strip_mirrors(state, template.get("filters"), canary);
    if !filters.is_empty() {
        rule.insert("filters".into(), Value::Array(filters));
    }
    rule.insert("backendRefs".into(), json!([backend]));
    if let Some(timeouts) = template.get("timeouts") {
        rule.insert("timeouts".into(), timeouts.clone());
    }
    Some(Value::Object(rule))
}

/// Add the header conditions to one match (ours replace a same-named one).
pub(super) fn narrow(one: &mut Value, header: &[HeaderCondition]) {
    let Some(object) = one.as_object_mut() else {
        return;
    };
    let mut headers: Vec<Value> = object
        .get("headers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    headers.retain(|h| {
        let name = h.get("name").and_then(Value::as_str).unwrap_or_default();
        !header.iter().any(|c| c.name.eq_ignore_ascii_case(name))
    });
    for condition in header {
        let kind = if condition.regex {
            "RegularExpression"
        } else {
            "Exact"
        };
        headers.push(json!({"name": condition.name, "type": kind, "value": condition.value}));
    }
    object.insert("headers".into(), Value::Array(headers));
}
