//! Synchronous netlink and network-namespace operations
