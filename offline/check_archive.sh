#!/usr/bin/env bash
# offline/check_archive.sh ARCHIVE [--sandbox] [--out DIR] [gpu-check flags]: unpacks an offline
# bundle (deno task offline-bundle) into a fresh temporary folder and runs `./phd gpu-check` from
# it, then removes the folder. --sandbox runs it as an air-gapped node would (issue 27, item 5):
# no network (`unshare -n`), an empty environment with PATH=/usr/bin:/bin, and node, nodejs, npx
# and npm hidden (a private mount namespace binds /dev/null over them); as root, or where user
# namespaces are allowed. DIR (default out/gpu-check-offline) gets summary.md and one JSON per
# part; the last line says how long unpacking and checking took.
#   bash offline/check_archive.sh out/offline/phd-attention-offline.tar.xz --sandbox
set -uo pipefail
if [ $# -lt 1 ] || [ "$1" = --help ]; then
  echo "usage: bash offline/check_archive.sh ARCHIVE [--sandbox] [--out DIR] [--budget-s N] [--parts LIST]" >&2
  exit 1
fi
archive=$1
shift
if [ ! -f "$archive" ]; then
  echo "error: no archive at $archive: build one with deno task offline-bundle" >&2
  exit 1
fi
sandbox=0 out="$PWD/out/gpu-check-offline" args=()
while [ $# -gt 0 ]; do
  case $1 in
  --sandbox) sandbox=1 ;;
  --out) out=$(realpath -m "$2") && shift ;;
  *) args+=("$1") ;;
  esac
  shift
done
tmp=$(mktemp -d /tmp/phd_offline_XXXXXX)
trap 'rm -rf "$tmp"' EXIT
t0=$(date +%s)
if ! tar -xf "$archive" -C "$tmp"; then
  echo "error: $archive does not unpack (tar failed)" >&2
  exit 1
fi
phd=("$tmp/phd-attention/phd" gpu-check --out "$out" "${args[@]}")
if [ "$sandbox" = 1 ]; then
  userns=()
  [ "$(id -u)" = 0 ] || userns=(-r)
  # shellcheck disable=SC2016
  unshare "${userns[@]}" -n -m bash -c 'for b in node nodejs npx npm; do
      p=$(command -v "$b") && mount --bind /dev/null "$p"
    done
    exec env -i PATH=/usr/bin:/bin HOME="$1" "${@:2}"' _ "$tmp" "${phd[@]}"
else
  "${phd[@]}"
fi
rc=$?
echo "unpacked and checked in $(($(date +%s) - t0)) s (exit $rc); summary: $out/summary.md" >&2
exit $rc
