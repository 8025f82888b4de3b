#!/usr/bin/env bash
# Run every test: lint, unit tests, manifest and CRD drift checks, and the
# end-to-end suite on a real Kubernetes control plane built from source.
#
# First run on a fresh machine: installs Debian packages (Prometheus, git,
# buildah, mmdebstrap), builds etcd, Kubernetes, KWOK and helm with Go into a
# cache keyed by version, and the controller's container image with buildah
# (tens of minutes on 2 cores); later runs reuse the caches.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== dependencies"
bash tests/cluster/install-deps.sh
# Installed just now: its tests fail rather than skip if it is missing.
export SLUICE_REQUIRE_ALERTMANAGER=1

echo "== control plane (cached under ~/.cache/sluice)"
SLUICE_CLUSTER_CACHE="$(bash tests/cluster/build.sh | tail -n 1)"
export SLUICE_CLUSTER_CACHE
echo "using $SLUICE_CLUSTER_CACHE"

echo "== helm (built from Go modules, cached under ~/.cache/sluice)"
SLUICE_HELM="$(bash tests/cluster/build-helm.sh | tail -n 1)"
export SLUICE_HELM
echo "using $SLUICE_HELM"

echo "== format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== build"
cargo build --workspace --bins --locked

echo "== container image (buildah; cached by its inputs)"
SLUICE_IMAGE="$(bash scripts/image.sh | tail -n 1)"
export SLUICE_IMAGE
echo "using $SLUICE_IMAGE"

echo "== release artifacts (scripts/release.sh; checked by tests/release.rs)"
version="$(bash scripts/version.sh)"
SLUICE_RELEASE_DIR="$(bash scripts/release.sh "$version" | tail -n 1)"
export SLUICE_RELEASE_DIR
echo "using $SLUICE_RELEASE_DIR"

echo "== tests"
mkdir -p target
status=0
cargo test --workspace --locked "$@" 2>&1 | tee target/test-output.log || status=$?
# One line for the whole run (cargo prints a result line per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) if ($i ~ /^(passed|failed|ignored);?$/) { sub(";", "", $i); total[$i] += $(i - 1) } }
     END { printf "== summary: %d passed, %d failed, %d ignored\n", total["passed"], total["failed"], total["ignored"] }' target/test-output.log
exit "$status"
