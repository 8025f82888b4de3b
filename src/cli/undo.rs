//! `sluice rollout undo`: go back to an earlier revision's pod template.
//!
//! A ReplicaSet's template carries the API server's defaults
//! (`imagePullPolicy`, `dnsPolicy`, …) that the Rollout's template never
//! had, and a revision is identified by the hash of the template as written.
//! So the template to restore is read back through the ReplicaSet's
//! `managedFields`: only the fields some manager set (Sluice's server-side
//! apply of exactly the Rollout's template), none of the defaults. The
//! restored template then hashes to the old revision, and its ReplicaSet is
//! reused.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::{Map, Value};

use crate::engine::hash::{POD_TEMPLATE_HASH_LABEL, pod_template_hash};
use crate::engine::revisions::Revision;

/// Why no revision can be restored.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("no earlier revision to go back to (revisions: {0})")]
    NoEarlier(String),
    #[error("there is no revision {wanted} (revisions: {have})")]
    NoSuchRevision { wanted: i64, have: String },
    #[error("revision {0} is the current pod template already")]
    AlreadyCurrent(i64),
}

/// The revision to go back to: `to` by number, or else the newest one whose
/// template is not the current one (`current_hash`).
pub fn choose<'a>(
    revisions: &'a [Revision],
    current_hash: &str,
    to: Option<i64>,
) -> Result<&'a Revision, Error> {
    let mut numbers: Vec<i64> = revisions.iter().map(|r| r.number).collect();
    numbers.sort_unstable();
    let have = numbers
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    match to {
        Some(wanted) => {
            let found = revisions
                .iter()
                .find(|r| r.number == wanted && !r.hash.ends_with("-baseline"))
                .ok_or(Error::NoSuchRevision { wanted, have })?;
            if found.hash == current_hash {
                return Err(Error::AlreadyCurrent(wanted));
            }
            Ok(found)
        }
        None => revisions
            .iter()
            .filter(|r| r.hash != current_hash && !r.hash.ends_with("-baseline"))
            .max_by_key(|r| r.number)
            .ok_or(Error::NoEarlier(have)),
    }
}

/// The pod template of `rs` as Sluice applied it (see the module header),
/// and whether it is exact: false when the ReplicaSet has no managedFields
/// and its whole template, defaults included, is used.
pub fn template_of(rs: &ReplicaSet, revision: &Revision) -> (PodTemplateSpec, bool) {
    let applied = owned_fields(rs).and_then(|fields| {
        let object = serde_json::to_value(rs).ok()?;
        let kept = prune(&object, &fields);
        let mut template: PodTemplateSpec =
            serde_json::from_value(kept.get("spec")?.get("template")?.clone()).ok()?;
        if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            labels.remove(POD_TEMPLATE_HASH_LABEL);
        }
        Some(template)
    });
    match applied {
        Some(template) if pod_template_hash(&template) == revision.hash => (template, true),
        _ => (revision.template.clone(), false),
    }
}

/// The union of the fields every manager of the main resource set.
fn owned_fields(rs: &ReplicaSet) -> Option<Value> {
    let entries = rs.metadata.managed_fields.as_ref()?;
    let mut union = Value::Object(Map::new());
    for entry in entries {
        if entry.subresource.as_deref().is_some_and(|s| !s.is_empty()) {
            continue;
        }
        if let Some(fields) = &entry.fields_v1 {
            merge_into(&mut union, &fields.0);
        }
    }
    union
        .as_object()
        .is_some_and(|m| !m.is_empty())
        .then_some(union)
}

fn merge_into(into: &mut Value, from: &Value) {
    if let (Some(into), Some(from)) = (into.as_object_mut(), from.as_object()) {
        for (key, value) in from {
            merge_into(
                into.entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new())),
                value,
            );
        }
    }
}

/// `value` without what `fields` (a `fieldsV1` set) does not name.
fn prune(value: &Value, fields: &Value) -> Value {
    let Some(fields) = fields.as_object().filter(|f| f.keys().any(|k| k != ".")) else {
        // A leaf, or an atomic value owned whole.
        return value.clone();
    };
    match value {
        Value::Object(object) => Value::Object(
            object
                .iter()
                .filter_map(|(key, child)| {
                    let sub = fields.get(&format!("f:{key}"))?;
                    Some((key.clone(), prune(child, sub)))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .filter_map(|item| {
                    let sub = fields
                        .iter()
                        .find_map(|(key, sub)| element_matches(key, item).then_some(sub))?;
                    Some(prune(item, sub))
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Whether a list key of `fieldsV1` (`k:{"name":"web"}` or `v:"x"`) names `item`.
fn element_matches(key: &str, item: &Value) -> bool {
    if let Some(keys) = key.strip_prefix("k:") {
        let Ok(Value::Object(keys)) = serde_json::from_str::<Value>(keys) else {
            return false;
        };
        keys.iter().all(|(k, v)| item.get(k) == Some(v))
    } else if let Some(set_value) = key.strip_prefix("v:") {
        serde_json::from_str::<Value>(set_value).is_ok_and(|v| &v == item)
    } else {
        false
    }
}

/// The JSON merge patch that turns `current` into `target` (removed keys
/// become `null`; lists are replaced whole, as merge patches do).
pub fn merge_diff(current: &Value, target: &Value) -> Value {
    match (current, target) {
        (Value::Object(current), Value::Object(target)) => {
            let mut patch = Map::new();
            for key in current.keys().filter(|k| !target.contains_key(*k)) {
                patch.insert(key.clone(), Value::Null);
            }
            for (key, wanted) in target {
                match current.get(key) {
                    Some(now) if now == wanted => {}
                    Some(now @ Value::Object(_)) if wanted.is_object() => {
                        patch.insert(key.clone(), merge_diff(now, wanted));
                    }
                    _ => {
                        patch.insert(key.clone(), wanted.clone());
                    }
                }
            }
            Value::Object(patch)
        }
        _ => target.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testkit::{replica_set, rollout, template};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
    use serde_json::json;

    fn revision(number: i64, hash: &str) -> Revision {
        let web = rollout(1, None, false);
        let mut r = Revision::from_replica_set(&replica_set(&web, "web:1", 1, number))
            .unwrap_or_else(|| panic!("fixture"));
        r.hash = hash.into();
        r
    }

    #[test]
    fn the_previous_revision_is_the_newest_that_is_not_current() {
        let revisions = [
            revision(1, "a"),
            revision(3, "c"),
            revision(2, "b"),
            revision(4, "a-baseline"),
        ];
        // (current hash, --to-revision, chosen number or error)
        let cases = [
            ("c", None, Ok(2)),
            ("b", None, Ok(3)),
            ("new", None, Ok(3)),
            ("c", Some(1), Ok(1)),
            ("c", Some(3), Err(Error::AlreadyCurrent(3))),
            (
                "c",
                Some(4),
                Err(Error::NoSuchRevision {
                    wanted: 4,
                    have: "1, 2, 3, 4".into(),
                }),
            ),
        ];
        for (current, to, expected) in cases {
            let chosen = choose(&revisions, current, to).map(|r| r.number);
            assert_eq!(chosen, expected, "{current} {to:?}");
        }
        assert_eq!(
            choose(&revisions[..1], "a", None).map(|r| r.number),
            Err(Error::NoEarlier("1".into()))
        );
    }

    #[test]
    fn the_template_is_read_back_without_the_api_servers_defaults() {
        let web = rollout(1, None, false);
        let mut rs = replica_set(&web, "web:1", 1, 1);
        let hash = pod_template_hash(&template("web:1"));
        // What the API server stores: defaults beside the applied fields.
        let mut stored = serde_json::to_value(&rs).unwrap_or_default();
        stored["spec"]["template"]["spec"]["dnsPolicy"] = json!("ClusterFirst");
        stored["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] =
            json!("IfNotPresent");
        rs = serde_json::from_value(stored).unwrap_or_default();
        let revision = Revision::from_replica_set(&rs).unwrap_or_else(|| panic!("fixture"));
        assert_ne!(
            pod_template_hash(&revision.template),
            hash,
            "the defaults change the hash"
        );
        // Without managedFields: the whole template, and it says so.
        let (_, exact) = template_of(&rs, &revision);
        assert!(!exact);
        rs.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some("sluice".into()),
            operation: Some("Apply".into()),
            fields_v1: Some(FieldsV1(
                json!({"f:spec": {"f:replicas": {}, "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}, "f:sluice.dev/pod-template-hash": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}}
                }}}),
            )),
            ..ManagedFieldsEntry::default()
        }]);
        let (restored, exact) = template_of(&rs, &revision);
        assert!(exact);
        assert_eq!(pod_template_hash(&restored), hash);
        assert_eq!(restored, template("web:1"));
    }

    #[test]
    fn the_merge_diff_removes_what_the_target_lacks() {
        let current = json!({"metadata": {"labels": {"app": "web", "extra": "x"}}, "spec": {"containers": [{"name": "web", "image": "web:2"}]}});
        let target = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:1"}]}});
        let patch = merge_diff(&current, &target);
        assert_eq!(
            patch,
            json!({"metadata": {"labels": {"extra": null}}, "spec": {"containers": [{"name": "web", "image": "web:1"}]}})
        );
        assert_eq!(merge_diff(&target, &target), json!({}));
    }
}
