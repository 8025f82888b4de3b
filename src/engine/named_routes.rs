//! Named header and mirror routes (Argo Rollouts' `managedRoutes`): reading
//! the steps that name them, and the Gateway API rules that carry them.
//!
//! Each active named route is one rule `sluice-route-<name>`, appended after
//! the user's rules in the order of `managedRoutes` (the Gateway API ranks
//! rules by how specific their matches are and only then by list order, so
//! that order decides between equally specific rules). The rule copies the
//! matches of the managed rules narrowed by the route's conditions:
//! - a header route sends its requests to the canary alone;
//! - a mirror route keeps the managed rule's weighted backends and adds a
//!   `RequestMirror` filter to the canary with the route's percent.

use serde_json::{Map, Value, json};

use super::spec::{HeaderCondition, RouteKind, Step};
use crate::crd::{CanaryStrategy, MirrorRouteMatch, RouteStringMatch, SetMirrorRoute};

/// Prefix of the rule names Sluice owns for named routes (whatever the
/// spec says now, so a route renamed in Git is still cleaned up).
pub const NAMED_RULE_PREFIX: &str = "sluice-route-";

/// HTTP methods a Gateway API `HTTPRouteMatch.method` accepts.
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// A route named by a step, with its place in `managedRoutes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteName {
    pub name: String,
    /// Index in `managedRoutes`: lower wins.
    pub precedence: usize,
}

/// One request match of a mirror route; every condition set must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestMatch {
    /// Uppercase HTTP method.
    pub method: Option<String>,
    /// Gateway API path match type (`Exact`, `PathPrefix`,
    /// `RegularExpression`) and value.
    pub path: Option<(String, String)>,
    pub headers: Vec<HeaderCondition>,
}

/// What a named route does while it is active.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamedIntent {
    /// Requests with all these headers go to the canary.
    Header(Vec<HeaderCondition>),
    /// This percent of the requests matching any of `matches` is copied to
    /// the canary.
    Mirror {
        matches: Vec<RequestMatch>,
        percent: i32,
    },
}

/// An active named route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedRoute {
    pub name: String,
    pub precedence: usize,
    pub intent: NamedIntent,
}

/// The rule name of route `name`.
pub fn rule_name(name: &str) -> String {
    format!("{NAMED_RULE_PREFIX}{name}")
}

/// Whether `rule` is one of Sluice's named-route rules.
pub fn is_named_rule(rule: &Value) -> bool {
    rule.get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| n.starts_with(NAMED_RULE_PREFIX))
}

/// A DNS label: what a rule-name suffix must be.
fn valid_route_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !name.is_empty()
        && name.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}

/// `trafficRouting.managedRoutes`, validated: names in order of precedence.
pub fn managed_names(canary: &CanaryStrategy, problems: &mut Vec<String>) -> Vec<String> {
    let listed = canary
        .traffic_routing
        .as_ref()
        .map(|t| t.managed_routes.as_slice())
        .unwrap_or_default();
    let mut names: Vec<String> = Vec::with_capacity(listed.len());
    for (at, route) in listed.iter().enumerate() {
        let field = format!("trafficRouting.managedRoutes[{at}].name");
        if !valid_route_name(&route.name) {
            problems.push(format!(
                "{field} {:?} must be lowercase letters, digits and '-' (at most 63), as it names a Gateway API rule",
                route.name
            ));
        } else if names.contains(&route.name) {
            problems.push(format!("{field} {:?} appears twice", route.name));
        } else {
            names.push(route.name.clone());
            continue;
        }
        // Keep the slot so later names keep their precedence.
        names.push(String::new());
    }
    names
}

/// The managed route a step names, or `None` for an unnamed step.
pub fn resolve(
    field: &str,
    name: Option<&str>,
    managed: &[String],
    problems: &mut Vec<String>,
) -> Option<RouteName> {
    let name = name?;
    match managed.iter().position(|m| m == name) {
        Some(precedence) => Some(RouteName {
            name: name.to_string(),
            precedence,
        }),
        None => {
            problems.push(format!(
                "{field}.name {name:?} is not listed in trafficRouting.managedRoutes"
            ));
            None
        }
    }
}

/// A string match as a header condition (a prefix becomes `^` + the escaped prefix).
fn header_condition(
    field: &str,
    name: &str,
    value: &RouteStringMatch,
) -> Result<HeaderCondition, String> {
    let (text, regex) = string_match(field, value)?;
    let (text, regex) = match regex {
        StringKind::Exact => (text, false),
        StringKind::Prefix => (format!("^{}", regex::escape(&text)), true),
        StringKind::Regex => (text, true),
    };
    Ok(HeaderCondition {
        name: name.to_ascii_lowercase(),
        value: text,
        regex,
    })
}

enum StringKind {
    Exact,
    Prefix,
    Regex,
}

fn string_match(field: &str, value: &RouteStringMatch) -> Result<(String, StringKind), String> {
    match (&value.exact, &value.prefix, &value.regex) {
        (Some(exact), None, None) if !exact.is_empty() => Ok((exact.clone(), StringKind::Exact)),
        (None, Some(prefix), None) if !prefix.is_empty() => {
            Ok((prefix.clone(), StringKind::Prefix))
        }
        (None, None, Some(pattern)) if !pattern.is_empty() => match regex::Regex::new(pattern) {
            Ok(_) => Ok((pattern.clone(), StringKind::Regex)),
            Err(error) => Err(format!(
                "{field}.regex {pattern:?} is not a regular expression: {error}"
            )),
        },
        _ => Err(format!(
            "{field} must set exactly one of exact, prefix and regex, not empty"
        )),
    }
}

/// Validate the `match` of a `setMirrorRoute` at `steps[index]`.
pub fn mirror_matches(
    index: usize,
    step: &SetMirrorRoute,
    problems: &mut Vec<String>,
) -> Vec<RequestMatch> {
    let mut out = Vec::new();
    for (at, one) in step.matches.iter().enumerate() {
        let field = format!("steps[{index}].setMirrorRoute.match[{at}]");
        match request_match(&field, one) {
            Ok(parsed) if parsed == RequestMatch::default() => problems.push(format!(
                "{field} sets no condition (give a method, a path or headers)"
            )),
            Ok(parsed) => out.push(parsed),
            Err(problem) => problems.push(problem),
        }
    }
    if step.name.is_none() && !step.matches.is_empty() {
        problems.push(format!(
            "steps[{index}].setMirrorRoute.match needs a name listed in trafficRouting.managedRoutes"
        ));
    }
    out
}

fn request_match(field: &str, one: &MirrorRouteMatch) -> Result<RequestMatch, String> {
    let method = match &one.method {
        None => None,
        Some(value) => match string_match(&format!("{field}.method"), value)? {
            (text, StringKind::Exact) if METHODS.contains(&text.to_ascii_uppercase().as_str()) => {
                Some(text.to_ascii_uppercase())
            }
            _ => {
                return Err(format!(
                    "{field}.method must be exact and one of {}",
                    METHODS.join(", ")
                ));
            }
        },
    };
    let path = match &one.path {
        None => None,
        Some(value) => {
            let (text, kind) = string_match(&format!("{field}.path"), value)?;
            let kind = match kind {
                StringKind::Exact => "Exact",
                StringKind::Prefix => "PathPrefix",
                StringKind::Regex => "RegularExpression",
            };
            if !matches!(kind, "RegularExpression") && !text.starts_with('/') {
                return Err(format!("{field}.path {text:?} must start with '/'"));
            }
            Some((kind.to_string(), text))
        }
    };
    let mut headers = Vec::new();
    for (name, value) in &one.headers {
        if !super::route_extras::valid_header_name(name) {
            return Err(format!(
                "{field}.headers {name:?} is not a valid HTTP header name"
            ));
        }
        headers.push(header_condition(
            &format!("{field}.headers.{name}"),
            name,
            value,
        )?);
    }
    Ok(RequestMatch {
        method,
        path,
        headers,
    })
}

/// A GRPCRoute's matches have neither path nor HTTP method.
pub fn check_route_kind(steps: &[Step], kind: RouteKind, problems: &mut Vec<String>) {
    if kind != RouteKind::Grpc {
        return;
    }
    for (index, step) in steps.iter().enumerate() {
        if let Step::SetMirrorRoute { matches, .. } = step
            && matches
                .iter()
                .any(|m| m.method.is_some() || m.path.is_some())
        {
            problems.push(format!(
                "steps[{index}].setMirrorRoute.match: a GRPCRoute matches headers only, not a path or an HTTP method"
            ));
        }
    }
}

/// The rule of named route `route`: `source_matches` (the managed rules'
/// matches) narrowed by the route's conditions; `template` the first
/// managed rule with its weights set, `canary_ref` the canary's backendRef.
/// `None` when no match remains (e.g. a path outside every managed rule).
pub fn named_rule(
    route: &NamedRoute,
    source_matches: &[Value],
    template: &Map<String, Value>,
    template_filters: Vec<Value>,
    canary_ref: &Value,
) -> Option<Value> {
    let mut matches: Vec<Value> = Vec::new();
    for source in source_matches {
        let narrowed: Vec<Value> = match &route.intent {
            NamedIntent::Header(conditions) => {
                let mut one = source.clone();
                super::route_extras::narrow(&mut one, conditions);
                vec![one]
            }
            NamedIntent::Mirror { matches, .. } => matches
                .iter()
                .filter_map(|wanted| combine(source, wanted))
                .collect(),
        };
        for one in narrowed {
            if !matches.contains(&one) {
                matches.push(one);
            }
        }
    }
    if matches.is_empty() {
        return None;
    }
    let mut rule = Map::new();
    rule.insert("name".into(), json!(rule_name(&route.name)));
    rule.insert("matches".into(), Value::Array(matches));
    let mut filters = template_filters;
    let backends = match &route.intent {
        NamedIntent::Header(_) => {
            let mut backend = canary_ref.clone();
            if let Some(object) = backend.as_object_mut() {
                object.insert("weight".into(), json!(1));
            }
            json!([backend])
        }
        NamedIntent::Mirror { percent, .. } => {
            filters.push(super::route_extras::mirror_filter_to(canary_ref, *percent));
            template.get("backendRefs").cloned().unwrap_or(json!([]))
        }
    };
    if !filters.is_empty() {
        rule.insert("filters".into(), Value::Array(filters));
    }
    rule.insert("backendRefs".into(), backends);
    if let Some(timeouts) = template.get("timeouts") {
        rule.insert("timeouts".into(), timeouts.clone());
    }
    Some(Value::Object(rule))
}

/// `source` (a managed rule's match) narrowed by `wanted`, or `None` when
/// the two cannot both hold or `wanted` reaches outside `source`.
fn combine(source: &Value, wanted: &RequestMatch) -> Option<Value> {
    let mut one = source.as_object()?.clone();
    if let Some(method) = &wanted.method {
        match one.get("method").and_then(Value::as_str) {
            Some(existing) if existing != method => return None,
            _ => {
                one.insert("method".into(), json!(method));
            }
        }
    }
    if let Some((kind, value)) = &wanted.path {
        if !path_within(one.get("path"), kind, value) {
            return None;
        }
        one.insert("path".into(), json!({"type": kind, "value": value}));
    }
    let mut one = Value::Object(one);
    if !wanted.headers.is_empty() {
        super::route_extras::narrow(&mut one, &wanted.headers);
    }
    Some(one)
}

/// Whether every path `kind`/`value` matches also matches `source`.
fn path_within(source: Option<&Value>, kind: &str, value: &str) -> bool {
    let Some(source) = source else { return true };
    let source_kind = source
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("PathPrefix");
    let source_value = source.get("value").and_then(Value::as_str).unwrap_or("/");
    match (source_kind, kind) {
        ("PathPrefix", _) if source_value.trim_end_matches('/').is_empty() => true,
        ("PathPrefix", "Exact" | "PathPrefix") => {
            let base = source_value.trim_end_matches('/');
            value == base || value.starts_with(&format!("{base}/"))
        }
        ("Exact", "Exact") => value == source_value,
        _ => false,
    }
}
