//! Synchronous netlink and network-namespace operations for the plugins.
//!
//! - [`Netns`]: open a namespace by path, [`Netns::handle`] for a netlink
//!   socket inside it, [`Netns::run`] / [`Netns::enter`] to run code inside
//!   it (per thread, always back again).
//! - [`Handle`]: one route-netlink socket; links, addresses and routes are
//!   its methods. [`Batch`] sends several changes in one datagram.
//! - [`sysctl`]: read and write `net.*` sysctls, validated.
//! - [`announce`]: gratuitous ARP and unsolicited neighbour advertisements.
//! - [`Error`]: the failed operation plus the kernel's errno in words; turns
//!   into a [`cni::Error`] with `?`.
//!
//! Plugins never see `netlink-packet-*` types: everything here speaks in
//! [`LinkInfo`], [`Addr`], [`Route`] and friends.

mod addr;
pub mod announce;
mod bridge;
mod error;
mod link;
mod neigh;
mod netns;
mod route;
mod socket;
pub mod sysctl;
mod wire;

pub use addr::{scope, Addr, Family, NewAddr};
pub use bridge::{BridgePort, BridgeVlan};
pub use error::{Error, Result};
pub use link::{
    check_name, random_name, IpvlanMode, LinkInfo, LinkKind, Mac, MacvlanMode, NewLink,
};
pub use neigh::{nud, Neighbour};
pub use netns::{Netns, NetnsGuard};
pub use route::{Route, LOCAL_TABLE, MAIN_TABLE};
pub use socket::{Batch, Handle};
