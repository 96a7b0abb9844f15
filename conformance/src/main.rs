//! Black-box CNI conformance runner over any directory of plugin binaries

fn main() {}
