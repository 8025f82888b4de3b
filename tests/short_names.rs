//! Sluice installs beside Argo Rollouts, Argo CD and Flux: none of its CRD
//! short names may be one those tools (or Kubernetes itself) already define,
//! or `kubectl get ro` would answer for one of them at random. The lists
//! below are written from those projects' CRDs as documented.

use std::collections::BTreeSet;
use std::path::Path;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// Short names of Argo Rollouts' CRDs (argoproj.io).
const ARGO_ROLLOUTS: &[&str] = &["ro", "ar", "at", "cat", "exp"];
/// Short names of Argo CD's CRDs (argoproj.io).
const ARGO_CD: &[&str] = &["app", "apps", "appset", "appsets", "appproj", "appprojs"];
/// Short names of Flux's CRDs (source, kustomize, helm, image and notification controllers).
const FLUX: &[&str] = &[
    "gitrepo", "helmrepo", "hc", "ocirepo", "ks", "hr", "imgrepo", "imgpol", "imgupd",
];
/// Short names built into Kubernetes.
const KUBERNETES: &[&str] = &[
    "cm", "cs", "csr", "crd", "crds", "cj", "deploy", "ds", "ep", "ev", "hpa", "ing", "limits",
    "netpol", "no", "ns", "pc", "pdb", "po", "pv", "pvc", "quota", "rc", "rs", "sa", "sc", "sts",
    "svc",
];

/// The short names Sluice chose, by kind: documented in the README's
/// "Migrating from Argo Rollouts and Flagger" section.
const SLUICE: &[(&str, &str)] = &[
    ("Rollout", "sro"),
    ("AnalysisRun", "sar"),
    ("AnalysisTemplate", "sat"),
    ("ClusterAnalysisTemplate", "scat"),
    ("GitRepository", "sgitrepo"),
    ("ClusterGitRepository", "scgitrepo"),
    ("AlertTarget", "alerttarget"),
    ("ClusterAlertTarget", "calerttarget"),
];

fn short_names(crd: &CustomResourceDefinition) -> Vec<String> {
    crd.spec.names.short_names.clone().unwrap_or_default()
}

#[test]
fn no_short_name_clashes_with_argo_flux_or_kubernetes() {
    let taken: BTreeSet<&str> = [ARGO_ROLLOUTS, ARGO_CD, FLUX, KUBERNETES]
        .into_iter()
        .flatten()
        .copied()
        .collect();
    let mut ours = BTreeSet::new();
    let crds = sluice::crd::all_crds();
    assert_eq!(
        crds.len(),
        SLUICE.len(),
        "every CRD has its documented short name"
    );
    for (file, crd) in &crds {
        let names = short_names(crd);
        assert!(!names.is_empty(), "{file} has a short name");
        for name in &names {
            assert!(
                !taken.contains(name.as_str()),
                "{file}: short name {name} is taken"
            );
            assert!(
                ours.insert(name.clone()),
                "{file}: short name {name} used twice"
            );
        }
        let kind = crd.spec.names.kind.as_str();
        let documented = SLUICE.iter().find(|(k, _)| *k == kind).map(|(_, s)| *s);
        assert_eq!(names.first().map(String::as_str), documented, "{kind}");
        let categories = crd.spec.names.categories.clone().unwrap_or_default();
        assert!(
            categories.iter().any(|c| c == "sluice"),
            "{kind}: `kubectl get sluice` lists it"
        );
    }
}

/// The chart installs what the types say: its CRDs carry the same short names.
#[test]
fn the_chart_crds_carry_the_same_short_names() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/sluice/crds");
    for (file, crd) in sluice::crd::all_crds() {
        let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        let installed: CustomResourceDefinition = serde_yaml_ng::from_str(&text)
            .unwrap_or_else(|e| panic!("charts/sluice/crds/{file}: {e}"));
        assert_eq!(short_names(&installed), short_names(&crd), "{file}");
    }
}
