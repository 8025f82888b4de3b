#!/usr/bin/env bash
# Debian packages the test stack needs: Prometheus (scrapes the traffic
# generator), git (the GitOps repository), OpenSSH (Git over SSH), curl and
# jq (the demo reads Prometheus with them), buildah and mmdebstrap (the
# container image, scripts/image.sh: no base image can be pulled here, so
# mmdebstrap makes local stand-ins for them and buildah builds the Containerfile),
# lua5.4 and lua5.1 (the Argo CD health checks and actions run under real Luas;
# Argo CD embeds a Lua 5.1) and
# prometheus-alertmanager (the Alertmanager alert target is tested against it).
# Idempotent and non-interactive; services are not started.
set -euo pipefail
want=(prometheus git openssh-server openssh-client curl jq buildah mmdebstrap lua5.4 lua5.1 prometheus-alertmanager)
missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
  echo "[deps] already installed: ${want[*]}" >&2
  exit 0
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
echo "[deps] installing ${missing[*]}" >&2
# Keep package scripts from starting daemons (there is no init system here anyway).
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod +x /usr/sbin/policy-rc.d
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "[deps] installed ${missing[*]}" >&2
