//! Packet-filter state for CNI plugins. For now: masquerade (`ipMasq`) for
//! bridge and ptp.
//!
//! ```no_run
//! # fn main() -> Result<(), firewall::Error> {
//! let who = firewall::Instance { network: "mynet", container_id: "c1", ifname: "eth0" };
//! let masq = firewall::masquerade(None)?;          // the ipMasqBackend key
//! masq.add(&who, &["10.1.0.5/24".parse().unwrap()])?; // in the host's namespace
//! masq.del(&who)?;                                  // needs no addresses
//! # Ok(()) }
//! ```
//!
//! Two backends behind one trait, chosen like the reference's
//! `ipMasqBackend`:
//! - `"nftables"`: native nf_tables over netlink, one transaction per
//!   operation, no process spawned ([`native`]). The reference's nftables
//!   layout, so either implementation removes what the other made.
//! - `"iptables"`: the reference's `CNI-<hash>` chains through one
//!   `iptables-save` and one `iptables-restore` per address family
//!   ([`iptables`]).
//! - unset: native nf_tables when the kernel has it, else iptables. (The
//!   reference prefers iptables when both exist; we prefer the faster path,
//!   and the two coexist: either backend's DEL and GC remove both kinds.)
//!
//! DEL and GC do not depend on the backend: they remove the attachment's
//! rules from our table, the reference's iptables chains held by
//! iptables-nft (found over netlink), and legacy iptables chains when a
//! legacy nat table exists ([`cleanup`]). So switching a node from the
//! reference plugins, or between backends, leaks nothing.
//!
//! Everything acts on the network namespace of the calling thread.

pub mod cleanup;
mod error;
pub mod iptables;
pub mod iptchains;
pub mod names;
pub mod native;
pub mod nft;

pub use cni::skel::Attachment;
pub use error::{Error, Result};
use ipnet::IpNet;

/// The attachment that masquerade state belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instance<'a> {
    pub network: &'a str,
    pub container_id: &'a str,
    pub ifname: &'a str,
}

impl Instance<'_> {
    /// The identifiers end up in rule comments and chain names; refuse ones
    /// that could not be written or found again.
    pub fn validate(&self) -> Result<()> {
        for (what, v) in [
            ("network name", self.network),
            ("container ID", self.container_id),
            ("interface name", self.ifname),
        ] {
            if v.is_empty() || v.contains('\0') {
                return Err(Error::Config(format!(
                    "masquerade: {what} {v:?} must be non-empty and without NUL characters"
                )));
            }
        }
        Ok(())
    }
}

/// What bridge and ptp need from the packet filter for `ipMasq`.
pub trait Masquerade {
    /// Masquerade traffic from each address (given with its prefix, e.g.
    /// `10.1.0.5/24`) to destinations outside its subnet, except multicast.
    /// Replaces this attachment's earlier rules; all or nothing.
    fn add(&self, who: &Instance, addrs: &[IpNet]) -> Result<()>;
    /// Fail with [`Error::Missing`] unless the rules for `addrs` are in place.
    fn check(&self, who: &Instance, addrs: &[IpNet]) -> Result<()>;
    /// Remove the attachment's rules, whoever created them. Needs no
    /// addresses, so it works when the netns or prevResult is gone.
    /// Succeeds when there is nothing to remove.
    fn del(&self, who: &Instance) -> Result<()>;
    /// Remove the rules of `network` whose attachment is not in `valid`.
    fn gc(&self, network: &str, valid: &[Attachment]) -> Result<()>;
}

/// The `ipMasqBackend` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Nftables,
    Iptables,
}

impl Backend {
    /// Parse the `ipMasqBackend` value; None means "choose for me".
    pub fn parse(value: Option<&str>) -> Result<Option<Backend>> {
        match value {
            None => Ok(None),
            Some("nftables") => Ok(Some(Backend::Nftables)),
            Some("iptables") => Ok(Some(Backend::Iptables)),
            Some(other) => Err(Error::Config(format!(
                "unknown ipMasqBackend {other:?}: use \"nftables\" or \"iptables\""
            ))),
        }
    }
}

/// The masquerade backend for an `ipMasqBackend` value (see the crate docs).
pub fn masquerade(ip_masq_backend: Option<&str>) -> Result<Box<dyn Masquerade>> {
    match Backend::parse(ip_masq_backend)? {
        Some(Backend::Iptables) => Ok(Box::new(iptables::Iptables)),
        Some(Backend::Nftables) => match native::Native::open()? {
            Some(n) => Ok(Box::new(n)),
            None => Err(Error::Config(
                "ipMasqBackend \"nftables\": this kernel has no nf_tables".into(),
            )),
        },
        None => Ok(match native::Native::open()? {
            Some(n) => Box::new(n),
            None => Box::new(iptables::Iptables),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_values() {
        assert_eq!(Backend::parse(None).unwrap(), None);
        assert_eq!(
            Backend::parse(Some("nftables")).unwrap(),
            Some(Backend::Nftables)
        );
        assert_eq!(
            Backend::parse(Some("iptables")).unwrap(),
            Some(Backend::Iptables)
        );
        let e = Backend::parse(Some("ebtables")).unwrap_err();
        assert!(e.to_string().contains("ipMasqBackend"));
        assert_eq!(cni::Error::from(e).code, cni::code::INVALID_CONFIG);
    }

    #[test]
    fn instance_validation() {
        let ok = Instance {
            network: "n",
            container_id: "c",
            ifname: "eth0",
        };
        assert!(ok.validate().is_ok());
        assert!(Instance { network: "", ..ok }.validate().is_err());
        assert!(Instance {
            container_id: "a\0b",
            ..ok
        }
        .validate()
        .is_err());
    }
}
