#!/usr/bin/env bash
# Install the Debian packages Holdfast builds with, if any is missing.
# Idempotent; prints nothing when everything is already there.
set -euo pipefail
pkgs=(gcc make cmake pkg-config libzmq3-dev libczmq-dev libmsgpack-dev liblmdb-dev libcriterion-dev
      lmdb-utils libmicrohttpd-dev)
if [ "${1:-}" = --net ]; then
    pkgs=(iproute2 iptables) # tests/chaos/net.sh: namespaces, tc, the loss rule
fi
if [ "${1:-}" = --fuzz ]; then
    pkgs=(clang libclang-rt-14-dev) # libFuzzer's runtime
fi
missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing packages: ${missing[*]}" >&2
    echo "deps: run 'sudo make deps' or: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
