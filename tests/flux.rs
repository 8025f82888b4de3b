//! `examples/flux/` holds together: the Kustomization health-checks the
//! Rollout under Sluice's real API version, and the image automation's
//! quarantine keeps an aborted tag away from the policy while later tags still
//! flow. No Flux runs here: tag selection follows Flux's documented rules
//! (`exclusionList` and `filterTags.pattern` are Go RE2 regular expressions,
//! which the `regex` crate implements; `semver` picks the highest in range).
//! How kstatus reads Sluice's status is tested on live objects by
//! `e2e argocd::…` and on the captured fixtures by `tests/argocd.rs`.

use std::path::Path;

use kube::Resource;
use serde_json::Value;
use sluice::crd::Rollout;

fn documents(file: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/flux")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("yaml"))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

#[test]
fn the_kustomization_waits_for_the_rollout_under_its_real_api_version() {
    let docs = documents("kustomization.yaml");
    let kustomization = kind(&docs, "Kustomization");
    assert_eq!(
        kustomization["apiVersion"],
        "kustomize.toolkit.fluxcd.io/v1"
    );
    let checks = kustomization["spec"]["healthChecks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let rollout = checks
        .iter()
        .find(|c| c["kind"] == Rollout::kind(&()).as_ref())
        .expect("a health check on the Rollout");
    assert_eq!(rollout["apiVersion"], Rollout::api_version(&()).as_ref());
    // Flux ignores healthChecks when wait is true.
    assert_ne!(kustomization["spec"]["wait"], true);
    let timeout = kustomization["spec"]["timeout"]
        .as_str()
        .unwrap_or_default();
    let timeout = humantime::parse_duration(timeout).expect("a Flux duration");
    assert!(
        timeout.as_secs() >= 600,
        "room for a whole rollout: {timeout:?}"
    );
}

/// Version parts of `x.y.z`, if the tag is one.
fn semver(tag: &str) -> Option<(u64, u64, u64)> {
    let mut parts = tag.split('.').map(|p| p.parse::<u64>().ok());
    let version = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(version)
}

/// The tag the ImagePolicy picks from `tags`, after the repository's exclusions.
fn latest<'a>(docs: &[Value], tags: &[&'a str]) -> Option<&'a str> {
    let repository = kind(docs, "ImageRepository");
    let exclusions: Vec<regex::Regex> = repository["spec"]["exclusionList"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| regex::Regex::new(p.as_str().unwrap_or_default()).expect("an RE2 pattern"))
        .collect();
    let policy = kind(docs, "ImagePolicy");
    let filter = regex::Regex::new(
        policy["spec"]["filterTags"]["pattern"]
            .as_str()
            .unwrap_or(""),
    )
    .expect("an RE2 pattern");
    assert_eq!(
        policy["spec"]["policy"]["semver"]["range"],
        ">=1.0.0 <2.0.0"
    );
    tags.iter()
        .copied()
        .filter(|t| !exclusions.iter().any(|r| r.is_match(t)))
        .filter(|t| filter.is_match(t))
        .filter_map(|t| Some((semver(t)?, t)))
        .filter(|((major, _, _), _)| *major == 1)
        .max()
        .map(|(_, t)| t)
}

#[test]
fn the_quarantined_tag_is_never_offered_again_and_later_tags_still_flow() {
    let docs = documents("image-automation.yaml");
    let automation = kind(&docs, "ImageUpdateAutomation");
    assert_eq!(automation["spec"]["update"]["strategy"], "Setters");
    // The list replaces Flux's default, which must survive in it.
    let exclusions = &kind(&docs, "ImageRepository")["spec"]["exclusionList"];
    assert!(
        exclusions
            .as_array()
            .is_some_and(|l| l.iter().any(|p| p == r"^.*\.sig$"))
    );
    let registry = ["1.4.1", "1.4.2", "1.4.2.sig", "1.5.0-rc.1"];
    assert_eq!(latest(&docs, &registry), Some("1.4.1"));
    assert_eq!(latest(&docs, &["1.4.1", "1.4.2", "1.4.3"]), Some("1.4.3"));
}
