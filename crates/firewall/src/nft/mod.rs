//! nf_tables over netlink, without libnftnl or the `nft` binary.

mod socket;
pub mod wire;

pub use socket::{family_name, Batch, Socket};
