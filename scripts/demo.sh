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
cp "$top/testdata/demo/10-lo.conflist" "$work/net.d/"
# host-local keeps its leases under dataDir: here, inside the demo's temp dir.
sed "s|DATADIR|$work/leases|" "$top/testdata/demo/20-ipam.conflist" > "$work/net.d/20-ipam.conflist"

ip netns add "$ns"
export NETCONFPATH=$work/net.d CNI_PATH=$bin CNI_CACHE_DIR=$work/cache
cnitool=$bin/cnitool
lo_net=demo-lo hl_net=demo-ipam

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "lo in namespace $ns before ADD"
ip -n "$ns" -brief addr show lo

say "ADD $lo_net (loopback)"
"$cnitool" add "$lo_net" "/run/netns/$ns"
ip -n "$ns" -brief addr show lo

say "ADD $hl_net (host-local IPAM, leases in $work/leases)"
CNI_IFNAME=eth0 "$cnitool" add "$hl_net" "/run/netns/$ns"
echo "leases: $(ls "$work/leases/$hl_net" | grep -E "^[0-9a-f.:]+$" | tr "\n" " ")"

say "CHECK both"
"$cnitool" check "$lo_net" "/run/netns/$ns" && echo "loopback: ok"
CNI_IFNAME=eth0 "$cnitool" check "$hl_net" "/run/netns/$ns" && echo "host-local: ok"

say "DEL both"
CNI_IFNAME=eth0 "$cnitool" del "$hl_net" "/run/netns/$ns"
"$cnitool" del "$lo_net" "/run/netns/$ns"
echo "leases left: $(ls "$work/leases/$hl_net" | grep -cE '^[0-9a-f.:]+$' || true)"
ip -n "$ns" -brief addr show lo
say "done: namespace and temp files are removed on exit"
