//! `ipMasq` and `ipMasqBackend` of bridge and ptp, on the `firewall`
//! crate. Rules belong to (network, container ID, ifname), so DEL and GC
//! find them without the namespace, the addresses or `prevResult`.
//! Everything acts on the calling thread's (host) namespace.

use cni::{Attachment, Request, Result};
use ipnet::IpNet;

fn instance(req: &Request) -> firewall::Instance<'_> {
    firewall::Instance {
        network: &req.conf.name,
        container_id: &req.container_id,
        ifname: &req.ifname,
    }
}

/// Check an `ipMasqBackend` value early, before anything is changed.
pub fn validate_backend(backend: Option<&str>) -> Result<()> {
    firewall::Backend::parse(backend)?;
    Ok(())
}

/// Masquerade traffic from `addrs` leaving their subnets.
pub fn add(req: &Request, backend: Option<&str>, addrs: &[IpNet]) -> Result<()> {
    let who = instance(req);
    who.validate()?;
    firewall::masquerade(backend)?.add(&who, addrs)?;
    Ok(())
}

/// CHECK: the rules for `addrs` are in place.
pub fn check(req: &Request, backend: Option<&str>, addrs: &[IpNet]) -> Result<()> {
    let who = instance(req);
    firewall::masquerade(backend)?.check(&who, addrs)?;
    Ok(())
}

/// Remove the attachment's rules; nothing there is success. Removal does
/// not depend on `ipMasqBackend` (either backend removes both kinds), so a
/// DEL never fails over the configuration.
pub fn del(req: &Request) -> Result<()> {
    let who = instance(req);
    who.validate()?;
    firewall::masquerade(None)?.del(&who)?;
    Ok(())
}

/// Remove the rules of this network whose attachment is not in `valid`.
pub fn gc(req: &Request, valid: &[Attachment]) -> Result<()> {
    firewall::masquerade(None)?.gc(&req.conf.name, valid)?;
    Ok(())
}
