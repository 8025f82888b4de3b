#!/usr/bin/env bash
# Build helm (helm.sh/helm/v3/cmd/helm at HELM_VERSION from versions.env) from
# the Go module proxy, once, into a cache directory keyed by the version. The
# chart tests (tests/chart.rs, e2e chart) run it to find helm: warm, it returns
# at once. Progress goes to stderr; the binary's path is the last line on stdout.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache_root="${SLUICE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}"
dir="$cache_root/helm-$HELM_VERSION"
bin="$dir/helm"
log() { echo "[build-helm $(date +%H:%M:%S)] $*" >&2; }

if [[ -x "$bin" ]]; then
  log "helm $HELM_VERSION: cached"
  echo "$bin"
  exit 0
fi

module_version="$(sed -n 's/^require helm\.sh\/helm\/v3 \(v[^ ]*\)$/\1/p' "$here/helm/go.mod")"
if [[ "$module_version" != "$HELM_VERSION" ]]; then
  log "helm/go.mod requires helm.sh/helm/v3 ${module_version:-(none)}, versions.env says $HELM_VERSION:"
  log "  cd tests/cluster/helm && go get helm.sh/helm/v3@$HELM_VERSION && go mod tidy"
  exit 1
fi

export CGO_ENABLED=0 GOFLAGS="-buildvcs=false -mod=readonly"
mkdir -p "$dir"
log "helm $HELM_VERSION: building helm.sh/helm/v3/cmd/helm ($(go version | cut -d' ' -f3); a cold build takes a few minutes on 2 cores)"
started=$SECONDS
# The Kubernetes version helm assumes for `helm template`/`lint` without a
# cluster (.Capabilities.KubeVersion) comes from its client-go, as in helm's Makefile.
client_go="$(cd "$here/helm" && go list -m -f '{{.Version}}' k8s.io/client-go)"
k8s_minor="${client_go#v0.}"; k8s_minor="${k8s_minor%%.*}"
ldflags="-s -w \
 -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
 -X helm.sh/helm/v3/internal/version.gitTreeState=clean \
 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$k8s_minor \
 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$k8s_minor"
# A private temporary name, then an atomic rename: two test binaries may build at once.
tmp="$dir/.helm.tmp.$$"
trap 'rm -f "$tmp"' EXIT
(cd "$here/helm" && nice -n 10 go build -trimpath -ldflags "$ldflags" -o "$tmp" helm.sh/helm/v3/cmd/helm)
mv "$tmp" "$bin"
log "helm $HELM_VERSION: built in $((SECONDS - started))s: $("$bin" version --short)"
echo "$bin"
