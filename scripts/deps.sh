#!/usr/bin/env bash
# Install the Debian packages the demo and the tests need, only when missing.
# Safe to run repeatedly; needs root (or sudo) only when something is missing.
set -euo pipefail

# command-or-file the package provides, then the package
needs=(
  "ip:iproute2"
  "nft:nftables"
  "iptables:iptables"
  "ping:iputils-ping"
  "qemu-system-x86_64:qemu-system-x86"
  "bridge:iproute2"
  "/usr/lib/cni/host-local:containernetworking-plugins"
)

missing=()
for pair in "${needs[@]}"; do
  probe=${pair%%:*} pkg=${pair#*:}
  if [[ $probe == /* ]]; then [[ -e $probe ]] || missing+=("$pkg")
  else command -v "$probe" >/dev/null 2>&1 || missing+=("$pkg"); fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "installing: ${missing[*]}" >&2
sudo=""
[[ $(id -u) -eq 0 ]] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
