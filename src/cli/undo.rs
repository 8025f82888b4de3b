//! `sluice rollout undo`: which revision to go back to, and its pod
//! template as the user wrote it (see `undo_defaults`), so that it hashes to
//! that revision again and its ReplicaSet is reused.

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
    #[error(
        "the Rollout runs the pod template of Deployment {0:?} (spec.workloadRef): undo there, e.g. `kubectl rollout undo deployment/{0}` or a revert in Git"
    )]
    AdoptsDeployment(String),
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

/// The pod template of `rs` as written, and whether it hashes to the
/// revision (else the defaults could not all be told apart, and it rolls
/// out as a new revision). `current` is the Rollout's template now.
pub fn template_of(
    rs: &ReplicaSet,
    revision: &Revision,
    current: &PodTemplateSpec,
) -> (PodTemplateSpec, bool) {
    let stored = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| serde_json::to_value(t).ok())
        .unwrap_or_default();
    let reference = serde_json::to_value(current).ok();
    let candidates = [
        super::undo_defaults::strip(&stored, reference.as_ref()),
        super::undo_defaults::strip(&stored, None),
        stored,
    ];
    let parsed: Vec<PodTemplateSpec> = candidates
        .into_iter()
        .filter_map(|c| serde_json::from_value::<PodTemplateSpec>(c).ok())
        .map(|mut t| {
            if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
                labels.remove(POD_TEMPLATE_HASH_LABEL);
            }
            t
        })
        .collect();
    match parsed
        .iter()
        .find(|t| pod_template_hash(t) == revision.hash)
    {
        Some(exact) => (exact.clone(), true),
        None => (
            parsed
                .into_iter()
                .next()
                .unwrap_or_else(|| revision.template.clone()),
            false,
        ),
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
        let (restored, exact) = template_of(&rs, &revision, &template("web:2"));
        assert!(exact);
        assert_eq!(pod_template_hash(&restored), hash);
        assert_eq!(restored, template("web:1"));
        // A default the user wrote is kept when the current template writes it too.
        let mut written = template("web:1");
        if let Some(spec) = written.spec.as_mut() {
            spec.dns_policy = Some("ClusterFirst".into());
        }
        let mut rs = replica_set(&web, "web:1", 1, 1);
        if let Some(t) = rs.spec.as_mut().and_then(|s| s.template.as_mut()) {
            t.spec = written.spec.clone();
        }
        let mut revision = Revision::from_replica_set(&rs).unwrap_or_else(|| panic!("fixture"));
        revision.hash = pod_template_hash(&written);
        let mut current = template("web:2");
        if let Some(spec) = current.spec.as_mut() {
            spec.dns_policy = Some("ClusterFirst".into());
        }
        let (restored, exact) = template_of(&rs, &revision, &current);
        assert!(exact);
        assert_eq!(restored, written);
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
