#!/usr/bin/env bash
# Prints Sluice's version: the `version` of Cargo.toml's [package], the one
# place where it is set. Used by test.sh, image.sh and release.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
version="$(sed -n '/^\[package\]/,/^\[/s/^version = "\(.*\)"$/\1/p' Cargo.toml)"
[[ -n $version ]] || { echo "version.sh: no version in Cargo.toml's [package]" >&2; exit 1; }
echo "$version"
