//! The route steps of a canary, as Argo Rollouts spells them:
//! `setHeaderRoute`, `setMirrorRoute` and the `managedRoutes` they name.
//!
//! Admission checks only shapes here; names against `managedRoutes`, regular
//! expressions and the route kind are checked by `engine::spec`.

use std::collections::BTreeMap;

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// A route a step may set, by name (Argo Rollouts' `managedRoutes[]`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ManagedRoute {
    /// Route name: lowercase letters, digits and `-` (it becomes part of the
    /// Gateway API rule name `sluice-route-<name>`).
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
}

/// A header-based route to the canary (Argo Rollouts' `setHeaderRoute`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SetHeaderRoute {
    /// Name of the route, listed in `trafficRouting.managedRoutes`. Omitted:
    /// the one unnamed header route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub name: Option<String>,
    /// Headers a request must carry, all of them, to reach the canary. Empty
    /// or omitted: remove the header route.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub matches: Vec<HeaderRouteMatch>,
}

/// One header condition of a header route.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HeaderRouteMatch {
    /// Header name, e.g. `x-canary` (compared without regard to case).
    #[schemars(length(min = 1, max = 256))]
    pub header_name: String,
    /// The value to match: exactly one of `exact` and `regex`.
    pub header_value: HeaderValueMatch,
}

/// How a header's value is matched.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.exact) != has(self.regex)").message("set exactly one of exact and regex"))]
pub struct HeaderValueMatch {
    /// The value, exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub exact: Option<String>,
    /// A regular expression (the Gateway's dialect; Sluice checks RE2 syntax).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub regex: Option<String>,
}

/// Traffic mirroring to the canary (Argo Rollouts' `setMirrorRoute`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SetMirrorRoute {
    /// Name of the route, listed in `trafficRouting.managedRoutes`: only the
    /// requests that match `match` are mirrored. Omitted: the unnamed mirror
    /// of every request of the managed rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub name: Option<String>,
    /// With a `name`: the requests to mirror, any of these (the conditions
    /// inside one must all hold). A `name` without `match` removes the route.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub matches: Vec<MirrorRouteMatch>,
    /// Percent (1-100) of the requests copied to the canary. Omitted: remove
    /// the unnamed mirror; with a `name` and `match`, 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 100").message("setMirrorRoute.percentage must be between 1 and 100"))]
    pub percentage: Option<i32>,
}

/// One request match of a mirror route (all its conditions must hold).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MirrorRouteMatch {
    /// HTTP method, `exact` only (HTTPRoute only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<RouteStringMatch>,
    /// Request path (HTTPRoute only); `prefix` is a Gateway API `PathPrefix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<RouteStringMatch>,
    /// Headers by name; `prefix` becomes a regular expression.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 16))]
    pub headers: BTreeMap<String, RouteStringMatch>,
}

/// A string condition: exactly one of `exact`, `prefix` and `regex`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.exact), has(self.prefix), has(self.regex)].filter(x, x).size() == 1").message("set exactly one of exact, prefix and regex"))]
pub struct RouteStringMatch {
    /// The value, exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub exact: Option<String>,
    /// A prefix of the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub prefix: Option<String>,
    /// A regular expression (RE2 syntax).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub regex: Option<String>,
}
