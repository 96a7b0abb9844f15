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
    del_early(req).map(drop)
}

/// The packet-filter connection [`del_early`] leaves open.
pub struct Open(#[allow(dead_code)] Box<dyn firewall::Masquerade>);

/// [`del`] for the start of a DEL: the connection stays open until the
/// returned value is dropped. Closing it waits for the kernel to release
/// the deleted rules (an RCU grace period, 10-20 ms); dropped after the
/// rest of the DEL, that wait has mostly passed meanwhile.
pub fn del_early(req: &Request) -> Result<Open> {
    let who = instance(req);
    who.validate()?;
    let masq = firewall::masquerade(None)?;
    masq.del(&who)?;
    Ok(Open(masq))
}

/// Remove the rules of this network whose attachment is not in `valid`.
pub fn gc(req: &Request, valid: &[Attachment]) -> Result<()> {
    firewall::masquerade(None)?.gc(&req.conf.name, valid)?;
    Ok(())
}
