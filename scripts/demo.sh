#!/usr/bin/env bash
# Demo: two containers on a bridge network with ipMasq, run the way a container
# runtime runs plugins (cnitool over conflists). They ping each other and their
# gateway; then DEL leaves nothing behind.
#
# The "host" is a private network namespace made for the demo, so the bridge,
# veths and nf_tables rules never touch this machine's own network.
set -euo pipefail
bin=$(realpath "${1:-target/x86_64-unknown-linux-gnu/release}")
top=$(realpath "$(dirname "$0")/..")

if [[ $(id -u) -ne 0 ]]; then
  echo "the demo creates network namespaces: run it as root (sudo make demo)" >&2
  exit 1
fi

host=cni-demo-host-$$ c1=cni-demo-c1-$$ c2=cni-demo-c2-$$
work=$(mktemp -d /tmp/cni-demo.XXXXXX)
cleanup() {
  for ns in "$c1" "$c2" "$host"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/net.d"
cp "$top/testdata/demo/10-lo.conflist" "$work/net.d/"
# host-local keeps its leases under dataDir: here, inside the demo's temp dir.
sed "s|DATADIR|$work/leases|" "$top/testdata/demo/20-bridge.conflist" > "$work/net.d/20-bridge.conflist"
for ns in "$host" "$c1" "$c2"; do ip netns add "$ns"; done

export NETCONFPATH=$work/net.d CNI_PATH=$bin CNI_CACHE_DIR=$work/cache
on_host() { ip netns exec "$host" "$@"; }
cnitool() { on_host "$bin/cnitool" "$@"; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
addr_of() { ip -n "$1" -4 -brief addr show eth0 | awk '{print $3}' | cut -d/ -f1; }
ping_from() {
  if ip netns exec "$1" ping -c1 -W2 "$2" >/dev/null; then echo "  $1 -> $2: ok"
  else echo "  $1 -> $2: FAILED"; return 1; fi
}

say "ADD loopback and bridge+host-local (ipMasq) for two containers"
for c in "$c1" "$c2"; do
  cnitool add demo-lo "/run/netns/$c" >/dev/null
  echo "-- $c:"
  cnitool add demo-bridge "/run/netns/$c"
done

say "what the kernel now has"
ip -n "$c1" -brief addr show
on_host ip -brief link show master demo0
on_host nft list table inet cni_plugins_masquerade

say "ping each other and the gateway"
ip1=$(addr_of "$c1") ip2=$(addr_of "$c2")
ping_from "$c1" "$ip2"
ping_from "$c2" "$ip1"
ping_from "$c1" 10.250.0.1
ping_from "$c2" fd00:250::1

say "CHECK"
for c in "$c1" "$c2"; do cnitool check demo-bridge "/run/netns/$c" && echo "  $c: ok"; done

say "DEL everything"
for c in "$c1" "$c2"; do
  cnitool del demo-bridge "/run/netns/$c"
  cnitool del demo-lo "/run/netns/$c"
done
echo "  veths left on demo0: $(on_host ip -brief link show master demo0 | wc -l)"
echo "  masquerade rules left: $(on_host nft -a list chain inet cni_plugins_masquerade masq_checks 2>/dev/null | grep -c saddr || true)"
echo "  leases left: $(ls "$work/leases/demo-bridge" | grep -cE '^[0-9a-f.:]+$' || true)"
say "done: the demo's namespaces and temp files are removed on exit"
