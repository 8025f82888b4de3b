//! Gateway API `HTTPRoute` weights, read and written as plain JSON.
//!
//! Only `backendRefs[].weight` of the stable and canary Services in the
//! managed rules is ever changed; everything else in the rules is sent back
//! exactly as read, with the read `resourceVersion` as a precondition.

use serde_json::Value;

use super::observed::RouteState;

/// Rules of `route` that Sluice manages: the configured indexes, or every rule
/// that references the stable Service. Each must reference both Services.
pub fn managed_rules(
    route: &RouteState,
    rule_indexes: Option<&[u32]>,
    stable: &str,
    canary: &str,
    baseline: Option<&str>,
) -> Result<Vec<usize>, String> {
    let rules = route
        .rules
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let indexes: Vec<usize> = match rule_indexes {
        Some(list) => list.iter().map(|i| *i as usize).collect(),
        None => (0..rules.len())
            .filter(|i| backend_ref(&rules[*i], stable).is_some())
            .collect(),
    };
    if indexes.is_empty() {
        return Err(format!(
            "no rule of the HTTPRoute references the stable Service {stable:?}"
        ));
    }
    for index in &indexes {
        let Some(rule) = rules.get(*index) else {
            return Err(format!("the HTTPRoute has no rule at index {index}"));
        };
        for service in [Some(stable), Some(canary), baseline].into_iter().flatten() {
            if backend_ref(rule, service).is_none() {
                return Err(format!(
                    "rule {index} of the HTTPRoute has no backendRef to Service {service:?}"
                ));
            }
        }
    }
    Ok(indexes)
}

/// The canary's share in percent on the first managed rule.
pub fn canary_weight(
    route: &RouteState,
    rules: &[usize],
    stable: &str,
    canary: &str,
    baseline: Option<&str>,
) -> i32 {
    let Some(rule) = rules.first().and_then(|i| route.rules.get(*i)) else {
        return 0;
    };
    let weight = |service| backend_ref(rule, service).map(ref_weight).unwrap_or(0);
    let (stable_weight, canary_weight) = (weight(stable), weight(canary));
    let total = stable_weight + canary_weight + baseline.map(weight).unwrap_or(0);
    if total == 0 {
        return 0;
    }
    i32::try_from((canary_weight * 100 + total / 2) / total).unwrap_or(0)
}

/// The baseline's share beside a canary at `percent`: the same, at most what is left.
pub fn baseline_weight(percent: i32) -> i32 {
    percent.min(100 - percent).max(0)
}

/// `spec.rules` with the canary at `percent` on the managed rules; the baseline
/// (if any) at `baseline_weight(percent)`, stable the rest.
pub fn rules_with_weight(
    route: &RouteState,
    rules: &[usize],
    stable: &str,
    canary: &str,
    baseline: Option<&str>,
    percent: i32,
) -> Value {
    let baseline_share = if baseline.is_some() {
        baseline_weight(percent)
    } else {
        0
    };
    let mut all = route.rules.clone();
    for index in rules {
        let Some(rule) = all.get_mut(*index) else {
            continue;
        };
        let Some(refs) = rule.get_mut("backendRefs").and_then(Value::as_array_mut) else {
            continue;
        };
        for backend in refs.iter_mut() {
            let weight = match backend_name(backend) {
                Some(name) if name == stable => 100 - percent - baseline_share,
                Some(name) if name == canary => percent,
                Some(name) if Some(name) == baseline => baseline_share,
                _ => continue,
            };
            if let Some(object) = backend.as_object_mut() {
                object.insert("weight".into(), Value::from(weight));
            }
        }
    }
    all
}

fn backend_ref<'a>(rule: &'a Value, service: &str) -> Option<&'a Value> {
    rule.get("backendRefs")?
        .as_array()?
        .iter()
        .find(|b| backend_name(b) == Some(service))
}

/// Name of a backendRef that points at a core Service (the default kind).
fn backend_name(backend: &Value) -> Option<&str> {
    let kind = backend
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("Service");
    let group = backend.get("group").and_then(Value::as_str).unwrap_or("");
    (kind == "Service" && group.is_empty()).then(|| backend.get("name").and_then(Value::as_str))?
}

/// Weight of a backendRef; the Gateway API default is 1.
fn ref_weight(backend: &Value) -> i64 {
    backend.get("weight").and_then(Value::as_i64).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn route(rules: Value) -> RouteState {
        RouteState {
            owner: None,
            resource_version: Some("7".into()),
            rules,
        }
    }

    fn two_backends(stable: i64, canary: i64) -> Value {
        json!([{ "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                 "backendRefs": [
                    {"name": "web-stable", "port": 80, "weight": stable},
                    {"name": "web-canary", "port": 80, "weight": canary}]}])
    }

    #[test]
    fn finds_rules_referencing_stable_and_reads_weight() {
        let r = route(two_backends(75, 25));
        let rules = managed_rules(&r, None, "web-stable", "web-canary", None).expect("rules");
        assert_eq!(rules, vec![0]);
        assert_eq!(
            canary_weight(&r, &rules, "web-stable", "web-canary", None),
            25
        );
    }

    #[test]
    fn missing_canary_backend_is_an_error() {
        let r = route(json!([{ "backendRefs": [{"name": "web-stable", "port": 80}]}]));
        let err = managed_rules(&r, None, "web-stable", "web-canary", None).expect_err("must fail");
        assert!(err.contains("web-canary"), "{err}");
        let err =
            managed_rules(&r, Some(&[3]), "web-stable", "web-canary", None).expect_err("must fail");
        assert!(err.contains("index 3"), "{err}");
    }

    #[test]
    fn writing_weights_keeps_everything_else() {
        let r = route(two_backends(100, 0));
        let rules = rules_with_weight(&r, &[0], "web-stable", "web-canary", None, 10);
        assert_eq!(rules[0]["backendRefs"][0]["weight"], 90);
        assert_eq!(rules[0]["backendRefs"][1]["weight"], 10);
        assert_eq!(rules[0]["matches"], r.rules[0]["matches"]);
        assert_eq!(rules[0]["backendRefs"][1]["port"], 80);
    }

    #[test]
    fn default_weight_is_one_and_foreign_kinds_are_ignored() {
        let r = route(json!([{ "backendRefs": [
            {"name": "web-stable", "port": 80},
            {"name": "web-canary", "port": 80},
            {"name": "web-canary", "kind": "ServiceImport", "group": "multicluster.x-k8s.io", "weight": 50}]}]));
        assert_eq!(
            canary_weight(&r, &[0], "web-stable", "web-canary", None),
            50
        );
    }
}
