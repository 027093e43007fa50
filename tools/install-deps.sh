#!/usr/bin/env bash
# Install the Debian packages listed in tools/debian-packages.txt, when run as root.
# As a non-root contributor this prints what is missing and exits 0: the tests that need
# those packages skip themselves with the reason.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mapfile -t pkgs < <(grep -v '^\s*#' "$here/debian-packages.txt" | grep -v '^\s*$')
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then echo "deps: all Debian packages present"; exit 0; fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "deps: not root (or no apt): not installing ${missing[*]}; tests needing them will skip"
  exit 0
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# services must not be started by package scripts: the labs start their own, by PID.  The file is
# removed on every exit (apt failing, Ctrl-C) when this script created it, never otherwise: left
# behind, it would keep every later package on this machine from starting its service.
# OGLAB_POLICY_RC moves it for the test suite only.
policy=${OGLAB_POLICY_RC:-/usr/sbin/policy-rc.d}
made_policy=0
cleanup() { if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if [ ! -e "$policy" ]; then
  made_policy=1
  printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
