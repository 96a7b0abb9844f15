//! CNI static IPAM plugin

fn main() {}
