#!/usr/bin/env bash
# Demo: run our plugins the way a container runtime does, in a fresh network
# namespace, print what they return, then tear everything down again.
set -euo pipefail
bin=$(realpath "${1:-target/x86_64-unknown-linux-gnu/release}")
top=$(realpath "$(dirname "$0")/..")

if [[ $(id -u) -ne 0 ]]; then
  echo "the demo creates network namespaces: run it as root (sudo make demo)" >&2
  exit 1
fi

ns=cni-demo-$$
work=$(mktemp -d /tmp/cni-demo.XXXXXX)
cleanup() {
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/net.d"
cp "$top/testdata/loopback.conflist" "$work/net.d/10-loopback.conflist"
# host-local writes its leases under dataDir: keep them inside the demo's temp dir.
sed "s|\"dataDir\": *\"[^\"]*\"|\"dataDir\": \"$work/leases\"|" \
  "$top/testdata/host-local.conflist" > "$work/net.d/20-host-local.conflist"

ip netns add "$ns"
export NETCONFPATH=$work/net.d CNI_PATH=$bin CNI_CACHE_DIR=$work/cache
cnitool=$bin/cnitool
net_of() { sed -n 's/.*"name": *"\([^"]*\)".*/\1/p' "$1" | head -n1; }
lo_net=$(net_of "$work/net.d/10-loopback.conflist")
hl_net=$(net_of "$work/net.d/20-host-local.conflist")

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "lo in namespace $ns before ADD"
ip -n "$ns" -brief addr show lo

say "ADD $lo_net (loopback)"
"$cnitool" add "$lo_net" "/run/netns/$ns"
ip -n "$ns" -brief addr show lo

say "ADD $hl_net (host-local IPAM, leases in $work/leases)"
CNI_IFNAME=eth0 "$cnitool" add "$hl_net" "/run/netns/$ns"
echo "leases: $(ls "$work/leases/$hl_net" | tr '\n' ' ')"

say "CHECK both"
"$cnitool" check "$lo_net" "/run/netns/$ns" && echo "loopback: ok"
CNI_IFNAME=eth0 "$cnitool" check "$hl_net" "/run/netns/$ns" && echo "host-local: ok"

say "DEL both"
CNI_IFNAME=eth0 "$cnitool" del "$hl_net" "/run/netns/$ns"
"$cnitool" del "$lo_net" "/run/netns/$ns"
echo "leases left: $(ls "$work/leases/$hl_net" | grep -cE '^[0-9a-f.:]+$' || true)"
ip -n "$ns" -brief addr show lo
say "done: namespace and temp files are removed on exit"
