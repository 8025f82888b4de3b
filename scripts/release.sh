#!/usr/bin/env bash
# Release artifacts for VERSION, which must be Cargo.toml's version (the one
# place where the version is set), into target/release-artifacts/VERSION/:
#   sluice-VERSION-image.oci.tar          the controller image (scripts/image.sh)
#                                         as an OCI archive; `skopeo copy
#                                         oci-archive:… docker://ghcr.io/…` or
#                                         `podman load -i` takes it
#   sluice-VERSION-image-packages.txt     the Debian packages in the image
#   sluice-VERSION-x86_64-unknown-linux-gnu.tar.gz
#                                         the binary from that image (glibc
#                                         2.34+: Debian 12, Ubuntu 22.04, RHEL 9
#                                         or newer), README, LICENSE if present,
#                                         shell completions and man page if the
#                                         CLI can print them
#   sluice-VERSION.cdx.json               CycloneDX SBOM of the binary's crates
#                                         (cargo-cyclonedx)
#   sluice-VERSION.tgz                    the Helm chart (helm: SLUICE_HELM,
#                                         PATH or tests/cluster/build-helm.sh's cache)
#   sluice-VERSION-install.yaml           plain manifests (the chart's defaults,
#                                         equal to deploy/, and the Namespace)
#   SHA256SUMS                            checksums of all of the above
# aarch64 is built only where the toolchain has that target (rustup cannot
# download one here); otherwise the script says so. Nothing is pushed.
# Progress goes to stderr; the last stdout line is the artifacts directory.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

log() { echo "[release $(date +%H:%M:%S)] $*" >&2; }
bh() { buildah --storage-driver vfs "$@"; }
export BUILDAH_ISOLATION=chroot

[[ $# -eq 1 ]] || { echo "usage: $0 VERSION" >&2; exit 2; }
version="$1"
cargo_version="$(bash scripts/version.sh)"
if [[ $version != "$cargo_version" ]]; then
  log "refusing: VERSION $version is not Cargo.toml's version $cargo_version (set it there, in one place)"
  exit 1
fi
if [[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
  log "warning: the working tree has uncommitted changes; the artifacts are of the tree, not of a commit"
fi
cache_root="${SLUICE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}"
out="$root/target/release-artifacts/$version"
rm -rf "$out"
mkdir -p "$out"
started=$SECONDS
created="$(git log -1 --format=%ct 2>/dev/null || date +%s)"

# 1. The image, and the binary in it.
image="$(scripts/image.sh | tail -1)"
log "exporting $image"
bh push --quiet "$image" "oci-archive:$out/sluice-$version-image.oci.tar:$image" >&2
ctr="$(bh from --quiet --pull=false "$image")"
mnt="$(bh mount "$ctr")"
cleanup() { bh umount "$ctr" >/dev/null 2>&1 || true; bh rm "$ctr" >/dev/null 2>&1 || true; rm -rf "${work:-}"; }
trap cleanup EXIT
work="$(mktemp -d)"
dpkg-query --admindir="$mnt/var/lib/dpkg" -W -f '${Package} ${Version}\n' >"$out/sluice-$version-image-packages.txt"

triple=x86_64-unknown-linux-gnu
name="sluice-$version-$triple"
stage="$work/$name"
mkdir -p "$stage"
cp "$mnt/usr/local/bin/sluice" "$stage/sluice"
bin="$stage/sluice"
"$bin" --version | grep -q "$version" || { log "the image's binary does not say $version"; exit 1; }
cp README.md "$stage/"
if [[ -f LICENSE ]]; then cp LICENSE "$stage/"; else log "no LICENSE file in the repository (Cargo.toml says Apache-2.0): the tarball has none"; fi
if "$bin" completion --help >/dev/null 2>&1; then
  mkdir -p "$stage/completions"
  "$bin" completion bash >"$stage/completions/sluice.bash"
  "$bin" completion zsh >"$stage/completions/_sluice"
  "$bin" completion fish >"$stage/completions/sluice.fish"
  log "shell completions: bash, zsh, fish"
else
  log "skipped shell completions: this sluice has no 'completion' subcommand"
fi
if "$bin" man --help >/dev/null 2>&1; then
  mkdir -p "$stage/man/man1"
  "$bin" man >"$stage/man/man1/sluice.1"
  log "man page: man/man1/sluice.1"
else
  log "skipped the man page: this sluice has no 'man' subcommand"
fi
# Reproducible: sorted names, one owner, the commit's time, no gzip timestamp.
(cd "$work" && tar --sort=name --mtime="@$created" --owner=0 --group=0 --numeric-owner -cf - "$name") \
  | gzip -9n >"$out/$name.tar.gz"
glibc="$(objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1 || true)"
log "$name.tar.gz: $(du -h "$out/$name.tar.gz" | cut -f1); the binary needs ${glibc:-an unknown glibc} or newer"

host_sysroot="$(rustc --print sysroot)"
if [[ -d "$host_sysroot/lib/rustlib/aarch64-unknown-linux-gnu" ]]; then
  log "aarch64: the target is installed, but this script does not cross-build yet"
else
  log "aarch64: not built: the toolchain has no aarch64-unknown-linux-gnu standard library" \
    "(installed: $(cd "$host_sysroot/lib/rustlib" && ls -d -- */lib | sed 's|/lib$||' | tr '\n' ' '| sed 's/ $//'))," \
    "rustup cannot download it here and there is no rust-src for -Zbuild-std; a release" \
    "pipeline with registry access builds it with 'docker buildx build --platform linux/arm64'"
fi

# 2. SBOM of the crates in the binary (normal dependencies of the sluice
# package for this target; not dev- or build-only crates, not the test tools
# of the workspace). Run on a copy of the build context, because
# cargo-cyclonedx writes its output beside the manifest.
cdx_version=0.5.9
cdx="$cache_root/cargo-cyclonedx-$cdx_version/bin/cargo-cyclonedx"
if [[ ! -x $cdx ]]; then
  log "installing cargo-cyclonedx $cdx_version (once, into $(dirname "$(dirname "$cdx")"))"
  nice -n 10 cargo install --quiet --locked --version "$cdx_version" \
    --root "$cache_root/cargo-cyclonedx-$cdx_version" cargo-cyclonedx >&2
fi
mapfile -t context < <(sed -n 's/^!//p' .containerignore)
mkdir -p "$work/src-copy"
cp -r --parents "${context[@]}" "$work/src-copy/"
(cd "$work/src-copy" && SOURCE_DATE_EPOCH="$created" "$cdx" cyclonedx --quiet --format json \
   --spec-version 1.5 --target "$triple" --no-build-deps --describe binaries >&2)
sbom="$work/src-copy/sluice_bin.cdx.json"
[[ -f $sbom ]] || { log "cargo-cyclonedx wrote no $sbom"; exit 1; }
# The copy's temporary path would end up in every bom-ref; /src is where the
# Containerfile builds.
sed "s|file://$work/src-copy|file:///src|g" "$sbom" >"$out/sluice-$version.cdx.json"
log "SBOM: $(grep -o '"bom-ref"' "$out/sluice-$version.cdx.json" | wc -l) bom-refs"

# 3. The Helm chart, when another script built helm and the chart exists.
helm="${SLUICE_HELM:-$(command -v helm || ls -d "$cache_root"/helm-*/helm 2>/dev/null | sort -V | tail -1 || true)}"
if [[ -n $helm && -d charts/sluice ]]; then
  "$helm" package charts/sluice --version "$version" --app-version "$version" --destination "$out" >&2
  log "Helm chart: push with: helm push $out/sluice-$version.tgz oci://ghcr.io/sluice-dev/charts"
  # 4. Plain manifests: the chart with default values in sluice-system, which
  # tests/chart.rs holds equal to `kubectl kustomize deploy/`, and the Namespace.
  {
    cat deploy/base/namespace.yaml
    "$helm" template sluice charts/sluice --namespace sluice-system --include-crds
  } >"$out/sluice-$version-install.yaml"
  log "plain manifests: kubectl apply --server-side -f sluice-$version-install.yaml"
else
  # A release without its chart and manifests is incomplete: refuse.
  log "no helm (SLUICE_HELM, PATH or $cache_root/helm-*/): run tests/cluster/build-helm.sh; no release without the chart"
  exit 1
fi

(cd "$out" && sha256sum -- * >SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS)
log "artifacts in $out ($((SECONDS - started))s):"
(cd "$out" && ls -l --block-size=K . | tail -n +2 | awk '{print "  " $5 "\t" $9}' >&2)
echo "$out"
