//! `scripts/release.sh VERSION` produces what a release publishes, and each
//! artifact holds what it says: checksums that verify, a binary tarball whose
//! `sluice` runs and prints the version with its completions and man page
//! beside it, the image as an OCI archive, a CycloneDX SBOM naming the crates
//! in the binary, the packaged Helm chart and plain manifests.
//!
//! The artifacts are `SLUICE_RELEASE_DIR` (scripts/test.sh runs the release
//! script before the tests), else this test runs `scripts/release.sh` itself
//! (it builds the image when its inputs changed: minutes).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

fn artifacts() -> PathBuf {
    if let Some(dir) = std::env::var_os("SLUICE_RELEASE_DIR").filter(|d| !d.is_empty()) {
        return std::fs::canonicalize(&dir).expect("SLUICE_RELEASE_DIR exists");
    }
    let out = Command::new("bash")
        .arg(root().join("scripts/release.sh"))
        .arg(version())
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/release.sh");
    assert!(out.status.success(), "scripts/release.sh failed");
    PathBuf::from(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .expect("release.sh prints the artifacts directory last")
            .trim(),
    )
}

fn run(program: &str, args: &[&str], dir: &Path) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_release_artifacts_are_complete_verified_and_say_their_version() {
    let dir = artifacts();
    let version = version();
    let names = [
        format!("sluice-{version}-x86_64-unknown-linux-gnu.tar.gz"),
        format!("sluice-{version}-image.oci.tar"),
        format!("sluice-{version}-image-packages.txt"),
        format!("sluice-{version}.cdx.json"),
        format!("sluice-{version}.tgz"),
        format!("sluice-{version}-install.yaml"),
    ];

    // Every artifact is listed in SHA256SUMS, and every sum verifies.
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).expect("SHA256SUMS");
    for name in &names {
        assert!(
            sums.contains(name.as_str()),
            "{name} missing from SHA256SUMS:\n{sums}"
        );
    }
    run("sha256sum", &["--check", "--strict", "SHA256SUMS"], &dir);

    // The binary tarball: sluice runs and says the version; completions, man page, licence.
    let unpacked = tempfile::tempdir().expect("temp dir");
    let tarball = dir.join(&names[0]);
    run(
        "tar",
        &["-xzf", &tarball.display().to_string()],
        unpacked.path(),
    );
    let top = unpacked
        .path()
        .join(format!("sluice-{version}-x86_64-unknown-linux-gnu"));
    for file in [
        "sluice",
        "README.md",
        "LICENSE",
        "completions/sluice.bash",
        "completions/_sluice",
        "completions/sluice.fish",
        "man/man1/sluice.1",
    ] {
        assert!(top.join(file).is_file(), "{file} missing from the tarball");
    }
    let said = run(
        &top.join("sluice").display().to_string(),
        &["--version"],
        &top,
    );
    assert!(said.starts_with(&format!("sluice {version} (")), "{said}");
    assert!(!said.contains("unknown"), "the commit is recorded: {said}");

    // The image as an OCI archive: an OCI layout whose index names the image.
    let listing = run("tar", &["-tf", &names[1]], &dir);
    for entry in ["oci-layout", "index.json"] {
        assert!(
            listing.lines().any(|l| l == entry),
            "{entry} not in the OCI archive"
        );
    }
    let index = run("tar", &["-xOf", &names[1], "index.json"], &dir);
    let index: Value = serde_json::from_str(&index).expect("index.json");
    let reference = index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
        .as_str()
        .unwrap_or_default();
    assert!(reference.ends_with(&version), "image reference {reference}");
    let packages = std::fs::read_to_string(dir.join(&names[2])).expect("package list");
    for package in ["git ", "openssh-client ", "ca-certificates "] {
        assert!(
            packages.contains(package),
            "{package}not in the image:\n{packages}"
        );
    }

    // The SBOM: CycloneDX, describing sluice, listing the crates it is built from.
    let sbom: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(&names[3])).expect("SBOM"))
            .expect("SBOM JSON");
    assert_eq!(sbom["bomFormat"], "CycloneDX");
    assert_eq!(sbom["metadata"]["component"]["name"], "sluice");
    let components: Vec<&str> = sbom["components"]
        .as_array()
        .expect("components")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for krate in ["kube-client", "tokio", "reqwest", "statrs", "serde"] {
        assert!(components.contains(&krate), "{krate} not in the SBOM");
    }
    assert!(
        !components.contains(&"proptest"),
        "dev-dependencies are not in the binary"
    );

    // The chart package, at the release's version.
    let chart = run("tar", &["-xzOf", &names[4], "sluice/Chart.yaml"], &dir);
    assert!(chart.contains(&format!("version: {version}")), "{chart}");

    // Plain manifests: the Namespace, the CRDs, RBAC and the Deployment of this version.
    let text = std::fs::read_to_string(dir.join(&names[5])).expect("install.yaml");
    let mut kinds = Vec::new();
    let mut image = String::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let value: Value = serde::Deserialize::deserialize(doc).expect("YAML");
        if value.is_null() {
            continue;
        }
        if value["kind"] == "Deployment" {
            image = value["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or_default()
                .to_string();
        }
        kinds.push(value["kind"].as_str().unwrap_or_default().to_string());
    }
    let count = |kind: &str| kinds.iter().filter(|k| *k == kind).count();
    assert_eq!(count("Namespace"), 1, "{kinds:?}");
    assert_eq!(
        count("CustomResourceDefinition"),
        std::fs::read_dir(root().join("crds"))
            .expect("crds/")
            .filter(|e| e.as_ref().is_ok_and(|e| e
                .file_name()
                .to_string_lossy()
                .ends_with(".sluice.dev.yaml")))
            .count(),
        "{kinds:?}"
    );
    for kind in [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
    ] {
        assert_eq!(count(kind), 1, "{kind}: {kinds:?}");
    }
    assert_eq!(image, format!("ghcr.io/sluice-dev/sluice:{version}"));
}
