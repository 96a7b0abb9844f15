//! CNI loopback plugin: brings up lo in the container

fn main() {}
