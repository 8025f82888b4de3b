#!/usr/bin/env bash
# Local stand-ins for the two base images the Containerfile names, for
# machines that reach Debian's mirror but no container registry:
#   docker.io/library/debian:bookworm-slim      mmdebstrap minbase, slimmed as
#                                               the official image is (no docs,
#                                               man pages or locales; no apt lists)
#   docker.io/library/rust:1.95-slim-bookworm   the same plus gcc, libc6-dev and
#                                               ca-certificates (what the official
#                                               rust:slim adds) and this machine's
#                                               rustup toolchain at /usr/local/rustup,
#                                               cargo at /usr/local/cargo/bin
# Both go into buildah's vfs store under exactly those names, so the
# Containerfile is the one a registry-connected `docker build` uses, unchanged.
# Where the real images can be pulled, this script is not needed.
#
# Cached under $SLUICE_CACHE_DIR (default ~/.cache/sluice)/base-images-<key>,
# keyed by the suite, the snapshot month (Debian's mirror is not pinnable from
# here: snapshot.debian.org is unreachable, so the stand-ins are rebuilt once a
# month; SLUICE_BASE_SNAPSHOT=YYYYMM overrides) and the Rust version. A warm
# run only checks the store's labels. Progress goes to stderr; the last stdout
# line is the cache directory.
set -euo pipefail

suite=bookworm
snapshot="${SLUICE_BASE_SNAPSHOT:-$(date -u +%Y%m)}"
toolchain_dir="${SLUICE_RUST_TOOLCHAIN:-$(rustc --print sysroot)}"
rust_version="$("$toolchain_dir/bin/rustc" --version | cut -d' ' -f2)"
rust_minor="${rust_version%.*}"
host_triple="$("$toolchain_dir/bin/rustc" -vV | sed -n 's/^host: //p')"
debian_image="docker.io/library/debian:$suite-slim"
rust_image="docker.io/library/rust:$rust_minor-slim-$suite"
# The Containerfile pins its Rust image; a stand-in of another version would
# never be used (image.sh builds with --pull=false and would not find it).
wanted="$(sed -n 's/^ARG RUST_IMAGE=//p' "$(dirname "$0")/../Containerfile")"
if [[ $wanted != "$rust_image" ]]; then
  echo "[base-images] the Containerfile builds with $wanted, but this toolchain ($toolchain_dir) is Rust $rust_version:" \
    "point SLUICE_RUST_TOOLCHAIN at a $wanted toolchain's sysroot (rustup toolchain list), or change the Containerfile's ARG RUST_IMAGE" >&2
  exit 1
fi
mirror="http://deb.debian.org/debian"
security="http://deb.debian.org/debian-security"

cache_root="${SLUICE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}"
key="$suite-$snapshot-rust-$rust_version"
dir="$cache_root/base-images-$key"
mkdir -p "$dir"

log() { echo "[base-images $(date +%H:%M:%S)] $*" >&2; }
bh() { buildah --storage-driver vfs "$@"; }
export BUILDAH_ISOLATION=chroot
# What the official slim images leave out (debuerreotype's --slimify list).
slim=(
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-include=/usr/share/locale/locale.alias'
  --dpkgopt='path-exclude=/usr/share/lintian/*'
  --aptopt='Acquire::Languages "none"'
)
sources=("deb $mirror $suite main" "deb $mirror $suite-updates main" "deb $security $suite-security main")

for tool in buildah mmdebstrap; do
  command -v "$tool" >/dev/null || { log "$tool is missing: run tests/cluster/install-deps.sh"; exit 1; }
done
log "$debian_image and $rust_image (Rust $rust_version from $toolchain_dir); cache: $dir"

# The Rust stand-in also trusts the host's own CAs: where egress goes through
# a TLS-intercepting proxy (as on the machines the tests run on), cargo inside
# the build reaches crates.io only through it. The Debian stand-in, on which
# the shipped image is built, does not: apt uses plain HTTP (signed indexes)
# and the image must not trust a build machine's CA.
mapfile -t host_cas < <(find /usr/local/share/ca-certificates -name '*.crt' 2>/dev/null | sort)
ca_hooks=()
rust_key="$key"
if ((${#host_cas[@]} > 0)); then
  rust_key="$key-ca-$(cat "${host_cas[@]}" | sha256sum | cut -c1-8)"
  for ca in "${host_cas[@]}"; do
    ca_hooks+=(--customize-hook="copy-in $ca /usr/local/share/ca-certificates")
  done
  ca_hooks+=(--customize-hook='chroot "$1" update-ca-certificates >/dev/null')
fi

# in_store IMAGE KEY: the image is in the store and is the one built for that
# key (its ID is recorded in the cache, not in a label that every image built
# on it would inherit).
in_store() {
  local id
  id="$(bh images --quiet --no-trunc "$1" 2>/dev/null | sed -n 1p)"
  [[ -n $id && -f "$dir/$2.id" && "$(cat "$dir/$2.id")" == "$id" ]]
}

# rootfs NAME PACKAGES [mmdebstrap options…]: a slim minbase tarball, built once per key.
rootfs() {
  local name="$1" include="$2"; shift 2
  if [[ -f "$dir/$name.tar" ]]; then
    log "$name rootfs: cached"
    return
  fi
  log "$name rootfs: mmdebstrap $suite minbase${include:+ + $include}"
  local started=$SECONDS
  # The merged-usr hook lays /usr out merged from the start and installs
  # usr-is-merged, as the official images do; otherwise apt satisfies
  # init-system-helpers with usrmerge, which brings a full perl (+30 MB).
  mmdebstrap --quiet --variant=minbase --mode=root --format=tar \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr ${include:+--include="$include"} "${slim[@]}" "$@" \
    "$suite" "$dir/.$name.tmp.tar" "${sources[@]}" >&2
  mv "$dir/.$name.tmp.tar" "$dir/$name.tar"
  log "$name rootfs: $(du -h "$dir/$name.tar" | cut -f1) in $((SECONDS - started))s"
}

# import TAR IMAGE KEY [--env K=V]… [-- SOURCE DEST]…: a scratch container with
# TAR unpacked at /, the config options, and host directories copied in,
# committed as IMAGE (one layer).
import() {
  local tar="$1" image="$2" image_key="$3"; shift 3
  local ctr config=(--cmd '["bash"]' --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
  while [[ $# -gt 0 && $1 != -- ]]; do config+=("$1" "$2"); shift 2; done
  [[ $# -gt 0 ]] && shift
  ctr="$(bh from --quiet scratch)"
  bh add --quiet "$ctr" "$tar" / >/dev/null
  while [[ $# -gt 0 ]]; do bh copy --quiet "$ctr" "$1" "$2" >/dev/null; shift 2; done
  bh config "${config[@]}" "$ctr"
  local old
  old="$(bh images --quiet --no-trunc "$image" 2>/dev/null || true)"
  bh commit --quiet --rm --identity-label=false "$ctr" "$image" >/dev/null
  bh images --quiet --no-trunc "$image" | sed -n 1p >"$dir/$image_key.id"
  # The image this one replaces (an older key) would stay behind untagged.
  [[ -z $old || $old == "$(cat "$dir/$image_key.id")" ]] || bh rmi "$old" >/dev/null 2>&1 || true
  log "$image: $(bh images --format '{{.Size}}' "$image" | sed -n 1p)"
}

started=$SECONDS
if in_store "$debian_image" "$key"; then
  log "$debian_image: in the store"
else
  rootfs debian ""
  import "$dir/debian.tar" "$debian_image" "$key"
fi

if in_store "$rust_image" "$rust_key"; then
  log "$rust_image: in the store"
else
  rust_tar="rust${rust_key#"$key"}"
  rootfs "$rust_tar" "ca-certificates,gcc,libc6-dev" "${ca_hooks[@]}"
  ((${#host_cas[@]} == 0)) || log "$rust_image trusts this machine's CAs too: ${host_cas[*]}"
  # The toolchain as rustup-init --profile minimal lays it out (rustc, cargo,
  # rust-std; no docs, clippy or rustfmt), with rustup's proxies in cargo/bin.
  if [[ ! -f "$dir/toolchain/.done" ]]; then
    rm -rf "$dir/toolchain"
    name="$rust_version-$host_triple"
    tc="$dir/toolchain/rustup/toolchains/$name"
    mkdir -p "$tc/bin" "$dir/toolchain/cargo/bin"
    cp -a "$toolchain_dir/bin/"{rustc,rustdoc,cargo} "$tc/bin/"
    cp -a "$toolchain_dir/lib" "$tc/"
    rm -f "$tc/lib/rustlib/"manifest-{clippy,rustfmt,rust-docs}*
    printf 'version = "12"\ndefault_toolchain = "%s"\nprofile = "minimal"\nauto_self_update = "disable"\n\n[overrides]\n' \
      "$name" >"$dir/toolchain/rustup/settings.toml"
    cp "$(command -v rustup)" "$dir/toolchain/cargo/bin/rustup"
    for proxy in cargo rustc rustdoc; do ln -s rustup "$dir/toolchain/cargo/bin/$proxy"; done
    touch "$dir/toolchain/.done"
    log "toolchain: $(du -sh "$dir/toolchain" | cut -f1) (docs, clippy and rustfmt left out)"
  fi
  import "$dir/$rust_tar.tar" "$rust_image" "$rust_key" \
    --env RUSTUP_HOME=/usr/local/rustup --env CARGO_HOME=/usr/local/cargo \
    --env "RUST_VERSION=$rust_version" \
    --env PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin -- \
    "$dir/toolchain/rustup" /usr/local/rustup "$dir/toolchain/cargo" /usr/local/cargo
  ctr="$(bh from --quiet "$rust_image")"
  log "$rust_image: $(bh run "$ctr" -- cargo --version) (through rustup's proxy)"
  bh rm "$ctr" >/dev/null
fi
log "done in $((SECONDS - started))s"
echo "$dir"
