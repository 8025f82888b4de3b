#!/usr/bin/env bash
# Build the controller image from the Containerfile with buildah (vfs storage,
# chroot isolation: no daemon and no user namespaces needed), tagged
#   ghcr.io/sluice-dev/sluice:<version from Cargo.toml>
#   localhost/sluice:<hash of the build inputs>   (the cache key)
#   localhost/sluice:latest
# then check it: its size, `sluice --version` run as 65532:65532 in the image's
# root filesystem, and that git and ssh work there for that user.
#
# Cached: the inputs are the files the build context lets in (.containerignore),
# the Containerfile, the base images' IDs and the version; when an image with
# their hash exists, nothing is rebuilt. Base images that are not in the store
# come from scripts/base-images.sh (local stand-ins) unless SLUICE_PULL_BASE=1,
# when buildah pulls them. The build is stopped after SLUICE_IMAGE_TIMEOUT
# seconds (default 2400). Progress goes to stderr; the last stdout line is the
# image name.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

log() { echo "[image $(date +%H:%M:%S)] $*" >&2; }
bh() { buildah --storage-driver vfs "$@"; }
export BUILDAH_ISOLATION=chroot

version="$(bash scripts/version.sh)"
[[ -n $version ]] || { log "no version in Cargo.toml's [package]"; exit 1; }
image="ghcr.io/sluice-dev/sluice:$version"
rust_image="$(sed -n 's/^ARG RUST_IMAGE=//p' Containerfile)"
runtime_image="$(sed -n 's/^ARG RUNTIME_IMAGE=//p' Containerfile)"

# The build context as .containerignore admits it ("*" then "!path" lines).
mapfile -t context < <(sed -n 's/^!//p' .containerignore)
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
if [[ $revision != unknown && -n "$(git status --porcelain -- "${context[@]}" Containerfile .containerignore)" ]]; then
  revision="$revision-dirty"
fi
created="$(git log -1 --format=%ct 2>/dev/null || date +%s)"

command -v buildah >/dev/null || { log "buildah is missing: run tests/cluster/install-deps.sh"; exit 1; }
base_id() { bh inspect --type image --format '{{.FromImageID}}' "$1" 2>/dev/null || true; }
if [[ ${SLUICE_PULL_BASE:-0} != 1 && ( -z "$(base_id "$rust_image")" || -z "$(base_id "$runtime_image")" ) ]]; then
  scripts/base-images.sh >/dev/null
fi

inputs="$({
  find "${context[@]}" Containerfile .containerignore -type f -not -path '*/target/*' -print0 \
    | sort -z | xargs -0 sha256sum
  echo "version=$version rust=$(base_id "$rust_image") runtime=$(base_id "$runtime_image")"
} | sha256sum | cut -c1-16)"
local_tag="localhost/sluice:$inputs"

if [[ -n "$(bh images --quiet "$local_tag" 2>/dev/null)" ]]; then
  log "$local_tag: cached (inputs unchanged), not rebuilt"
  bh tag "$local_tag" "$image" localhost/sluice:latest
else
  log "building $image (inputs $inputs, revision $revision); a cold build compiles Sluice, minutes on 2 cores"
  started=$SECONDS
  timeout --kill-after=30 "${SLUICE_IMAGE_TIMEOUT:-2400}" \
    buildah --storage-driver vfs build --isolation chroot --pull=false --identity-label=false \
      --timestamp "$created" \
      --build-arg "VERSION=$version" --build-arg "REVISION=$revision" \
      --label "dev.sluice.inputs=$inputs" \
      --tag "$image" --tag "$local_tag" --tag localhost/sluice:latest \
      --file Containerfile . >&2
  log "built in $((SECONDS - started))s"
  # Keep the three newest input hashes (vfs stores every image as a full copy).
  bh images --format '{{.Name}} {{.Tag}}' \
    | awk '$1 == "localhost/sluice" && $2 != "latest" && ++n > 3 {print $1 ":" $2}' | while read -r old; do
      if bh rmi "$old" >/dev/null 2>&1; then log "removed the older $old"; fi
    done
fi

size="$(bh images --format '{{.Size}}' "$image" | sed -n 1p)"
log "$image: $size uncompressed (base $runtime_image: $(bh images --format '{{.Size}}' "$runtime_image" | sed -n 1p))"

# Check the image's root filesystem as the controller's user would run in it.
ctr="$(bh from --quiet --pull=false "$image")"
mnt="$(bh mount "$ctr")"
cleanup() { bh umount "$ctr" >/dev/null 2>&1 || true; bh rm "$ctr" >/dev/null 2>&1 || true; }
trap cleanup EXIT
as_user() { chroot --userspec=65532:65532 "$mnt" env -i HOME=/var/cache/sluice-git PATH=/usr/bin:/bin "$@"; }
version_line="$(as_user /usr/local/bin/sluice --version)"
log "in the image: $version_line"
[[ $version_line == *"$version"* ]] || { log "the image's sluice is not version $version"; exit 1; }
# The commit comes from REVISION (build.rs), as .git is not in the context.
if [[ $version_line == *unknown* && $(bh inspect --type image --format '{{index .OCIv1.Config.Labels "org.opencontainers.image.revision"}}' "$image") != unknown ]]; then
  log "the image's sluice --version lacks the commit it was built from"; exit 1
fi
log "in the image: $(as_user git --version), $(as_user ssh -V 2>&1)"
# ssh looks the user up before anything else; this fails without a passwd entry.
as_user ssh -T -G git.example </dev/null >/dev/null
config="$(bh inspect --type image --format '{{.OCIv1.Config.User}} {{.OCIv1.Config.Entrypoint}} {{.OCIv1.Config.Cmd}}' "$image")"
log "user, entrypoint, cmd: $config"
log "labels: $(bh inspect --type image --format '{{range $k, $v := .OCIv1.Config.Labels}}{{$k}}={{$v}} {{end}}' "$image")"
echo "$image"
