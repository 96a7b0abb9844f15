//! CNI host-local IPAM plugin: hands out one address per range set from the
//! configured ranges and records each lease on the node's disk, in the same
//! format as the reference plugin. The plugin itself lives in the `ipam`
//! crate (`ipam::host_local`), so interface plugins can also run it
//! in-process.

#![no_main]

cni::plugin_main!(ipam::host_local::HostLocal, "host-local");

/// Says that this binary is host-local built from these sources, so that
/// our interface plugins may run it in-process (`ipam::host_local::is_this_build`).
#[used]
#[link_section = ".cnirs.host_local"]
static BUILD_MARK: [u8; ipam::host_local::BUILD_MARK.len()] = ipam::host_local::BUILD_MARK;
