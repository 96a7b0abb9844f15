//! Steps the interface plugins (bridge, ptp, and later macvlan, ipvlan,
//! vlan, dummy, host-device, tap) share, each written once:
//!
//! - [`Rollback`]: what an ADD created, undone in reverse if it fails
//!   (IPAM DEL, links, masquerade rules).
//! - [`ipam::run`]: IPAM DEL, CHECK, STATUS and GC (and ADD through
//!   [`Rollback::ipam_start`]); this build's own host-local runs in-process.
//! - [`veth::create`]: a veth pair, container end `CNI_IFNAME` made directly
//!   in the container's namespace, host end `veth` + 8 random hex digits.
//! - [`iface::apply`]: apply an IPAM result to the container interface
//!   (IPv6 sysctls, addresses without DAD, link up, routes) so that it is
//!   usable the moment ADD returns.
//! - [`forward::enable`]: IP forwarding for the families in use.
//! - [`mac::requested`]: the MAC from `runtimeConfig.mac` > `args.cni.mac` >
//!   `CNI_ARGS MAC`.
//! - [`check`]: CHECK against `prevResult` (interfaces, addresses, routes).
//! - [`teardown::delete_container_link`]: DEL of the container interface,
//!   fine when the namespace or the link is gone; [`teardown::Failures`]
//!   to carry on through DEL and GC and report every failure.
//! - [`masq`]: `ipMasq`/`ipMasqBackend` on top of the `firewall` crate.

pub mod check;
pub mod forward;
pub mod iface;
pub mod ipam;
pub mod mac;
pub mod masq;
mod rollback;
pub mod teardown;
pub mod veth;

pub use rollback::{PendingIpam, Rollback};
