#!/usr/bin/env bash
# Bridge VLAN tests on a kernel that has bridge VLAN filtering.
#
# The build machine's kernel lacks CONFIG_BRIDGE_VLAN_FILTERING, so the VLAN
# tests skip there. This runs them for real: Debian's 6.1 kernel in qemu
# (TCG, no KVM needed), an initramfs holding the test binaries, the bridge
# and host-local plugins, `ip`, `bridge` and their libraries. Nothing
# touches the host's network.
#
#   plugins/main/bridge/tests/vm/vlan.sh
#
# Needs: qemu-system-x86, rustc/cargo, apt-get (downloads the kernel package
# once into $CNI_VM_DIR, default /var/tmp/cni-vm). Exit status is the tests'.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../../../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
work=${CNI_VM_DIR:-/var/tmp/cni-vm}
kpkg=${CNI_VM_KERNEL:-$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' |
    awk '{print $1}' | sort -V | tail -1)}
mkdir -p "$work"

# 1. The kernel and the modules the tests need.
if [[ ! -d $work/$kpkg ]]; then
    (cd "$work" && apt-get download "$kpkg" >/dev/null 2>&1)
    dpkg-deb -x "$work/$kpkg"_*.deb "$work/$kpkg"
fi
kroot=$work/$kpkg
kver=$(ls "$kroot/lib/modules")
mods=(net/llc/llc.ko net/802/stp.ko net/bridge/bridge.ko drivers/net/veth.ko)

# 2. What runs inside: plugins, test binaries, the init helper.
cd "$repo"
cargo build -q -p bridge -p host-local
tests=$(cargo test -q -p bridge --test bridge -p netlink --test kernel --no-run \
    --message-format=json 2>/dev/null |
    grep '"reason":"compiler-artifact"' | grep '"test":true' |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p')
bridge_test=$(grep '/bridge-' <<<"$tests")
netlink_test=$(grep '/kernel-' <<<"$tests")
rustc -O -C target-feature=+crt-static --edition 2021 "$here/vmtool.rs" -o "$work/vmtool"

# 3. The initramfs.
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,cni/bin,lib,lib64,mod,proc,sys,dev,tmp,run,var,etc}
ln -s ../run "$root/var/run"
cp "$work/vmtool" "$root/init"
cp "$target/debug/bridge" "$target/debug/host-local" "$root/cni/bin/"
cp "$bridge_test" "$root/bin/bridge-test"
cp "$netlink_test" "$root/bin/netlink-test"
cp "$(command -v ip)" "$(command -v bridge)" "$root/bin/"
for m in "${mods[@]}"; do
    cp "$kroot/lib/modules/$kver/kernel/$m" "$root/mod/"
    echo "/mod/$(basename "$m")" >>"$root/modules"
done
for bin in "$root"/bin/* "$root"/cni/bin/*; do
    ldd "$bin" 2>/dev/null | grep -o '/[^ ]*' | while read -r lib; do
        mkdir -p "$root$(dirname "$lib")"
        cp -L -n "$lib" "$root$lib"
    done
done
cat >"$root/commands" <<'EOF'
/bin/netlink-test bridge_ --nocapture --test-threads 1
/bin/bridge-test vlans_isolate_containers_or_are_refused_in_words --exact --nocapture
EOF
"$work/vmtool" cpio "$root" "$work/initrd"

# 4. Boot; the tests' output comes back on the second serial port.
rm -f "$work/out.log" "$work/console.log"
timeout 600 qemu-system-x86_64 -accel tcg -cpu max -m 1024 -smp 1 -nodefaults \
    -display none -no-reboot \
    -serial "file:$work/console.log" -serial "file:$work/out.log" \
    -kernel "$kroot/boot/vmlinuz-$kver" -initrd "$work/initrd" \
    -append "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init"
cat "$work/out.log"
if grep -q '^skipped' "$work/out.log"; then
    echo "FAIL: a test skipped although this kernel has VLAN filtering" >&2
    exit 1
fi
grep -q '^exit=0' "$work/out.log"
