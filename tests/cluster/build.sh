#!/usr/bin/env bash
# Build the test control plane once and cache it under a directory keyed by
# the pinned versions: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, KWOK (with its stage configs) and the Gateway API
# standard CRDs. Everything comes from the Go module proxy; nothing else is
# downloaded. Progress goes to stderr; the cache directory is the last line
# on stdout.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache_root="${SLUICE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}"
dir="$cache_root/cluster-k8s-$KUBERNETES_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION-gw-$GATEWAY_API_VERSION"
mkdir -p "$dir/bin" "$dir/gateway-api" "$dir/kwok-stages"

export CGO_ENABLED=0 GOFLAGS="-buildvcs=false -mod=readonly"
log() { echo "[build $(date +%H:%M:%S)] $*" >&2; }
log "Kubernetes $KUBERNETES_VERSION, etcd $ETCD_VERSION, KWOK $KWOK_VERSION, Gateway API $GATEWAY_API_VERSION ($(go version | cut -d' ' -f3))"
log "cache: $dir"

# build NAME MODULE_DIR PACKAGE [LDFLAGS]: go build into bin/ unless already there.
build() {
  local name="$1" module="$2" package="$3" ldflags="${4:-}"
  if [[ -x "$dir/bin/$name" ]]; then
    log "$name: cached"
    return
  fi
  log "$name: building $package (cold builds take minutes on 2 cores)"
  local started=$SECONDS
  (cd "$here/$module" && nice -n 10 go build -trimpath -ldflags "-s -w $ldflags" -o "$dir/bin/.$name.tmp" "$package")
  mv "$dir/bin/.$name.tmp" "$dir/bin/$name"
  log "$name: built in $((SECONDS - started))s"
}

minor="${KUBERNETES_VERSION#v1.}"; minor="${minor%%.*}"
version_flags="-X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION \
 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.gitVersion=$KUBERNETES_VERSION \
 -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"

build etcd etcd .
build kube-apiserver k8s k8s.io/kubernetes/cmd/kube-apiserver "$version_flags"
build kube-controller-manager k8s k8s.io/kubernetes/cmd/kube-controller-manager "$version_flags"
build kube-scheduler k8s k8s.io/kubernetes/cmd/kube-scheduler "$version_flags"
build kubectl k8s k8s.io/kubernetes/cmd/kubectl "$version_flags"
build kwok kwok sigs.k8s.io/kwok/cmd/kwok

if [[ ! -f "$dir/gateway-api/.done" ]]; then
  # `go build` fetches only the packages kwok needs; the CRD YAML needs the whole module.
  (cd "$here/kwok" && go mod download sigs.k8s.io/gateway-api)
  gw="$(cd "$here/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/gateway-api)"
  [[ -n $gw ]] || { log "sigs.k8s.io/gateway-api is not in the module cache"; exit 1; }
  cp "$gw"/config/crd/standard/gateway.networking.k8s.io_*.yaml "$dir/gateway-api/"
  chmod u+w "$dir"/gateway-api/*.yaml
  touch "$dir/gateway-api/.done"
  log "Gateway API CRDs: $(ls "$dir/gateway-api" | tr '\n' ' ')"
fi
if [[ ! -f "$dir/kwok-stages/.done" ]]; then
  (cd "$here/kwok" && go mod download sigs.k8s.io/kwok)
  kwok_src="$(cd "$here/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
  [[ -n $kwok_src ]] || { log "sigs.k8s.io/kwok is not in the module cache"; exit 1; }
  for stage in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
               pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
    cp "$kwok_src/kustomize/stage/$stage.yaml" "$dir/kwok-stages/$(basename "$stage").yaml"
  done
  chmod u+w "$dir"/kwok-stages/*.yaml
  touch "$dir/kwok-stages/.done"
  log "KWOK stages: $(ls "$dir/kwok-stages" | tr '\n' ' ')"
fi
echo "$dir"
