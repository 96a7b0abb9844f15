//! CNI host-local IPAM plugin

fn main() {}
