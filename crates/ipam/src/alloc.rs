//! Allocation as the reference does it: one address per range set, a
//! requested address when one falls in the set, otherwise round-robin after
//! the last reserved address, each claim an `O_EXCL` file create.

use crate::range::RangeSet;
use crate::store::Leases;
use cni::{code, Error, IpConfig, Result};
use ipnet::IpNet;
use std::net::IpAddr;

/// One address handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub range_set: usize,
    /// The address with its subnet's prefix.
    pub address: IpNet,
    pub gateway: IpAddr,
}

impl Allocation {
    pub fn ip_config(&self) -> IpConfig {
        IpConfig {
            interface: None,
            address: self.address,
            gateway: Some(self.gateway),
        }
    }
}

fn unavailable(msg: String) -> Error {
    Error::new(code::ADDRESS_UNAVAILABLE, msg)
}

/// Give each requested address its range set (the first containing it).
/// Every address must fall in some set, not be that range's gateway, and no
/// set may get two: host-local hands out one address per range set.
/// Checked before anything is written.
pub fn assign_requested(sets: &[RangeSet], requested: &[IpAddr]) -> Result<Vec<Option<IpAddr>>> {
    let mut wanted: Vec<Option<IpAddr>> = vec![None; sets.len()];
    let mut seen: Vec<IpAddr> = Vec::new();
    for ip in requested.iter().copied() {
        if seen.contains(&ip) {
            continue;
        }
        seen.push(ip);
        let Some((i, set)) = sets.iter().enumerate().find(|(_, s)| s.contains(ip)) else {
            let all: Vec<String> = sets.iter().map(ToString::to_string).collect();
            return Err(unavailable(format!(
                "failed to allocate all requested IPs: {ip} is not in any range of this network \
                 (ranges: {})",
                all.join("; ")
            )));
        };
        if let Some(r) = set.range_for(ip).filter(|r| r.gateway == ip) {
            return Err(unavailable(format!(
                "requested IP {ip} is the gateway of range {r}, which is never handed out"
            )));
        }
        match wanted.get_mut(i) {
            Some(Some(other)) => {
                return Err(unavailable(format!(
                    "failed to allocate all requested IPs: {other} and {ip} both fall in range \
                     set {i} ({set}); host-local hands out one address per range set"
                )))
            }
            Some(slot) => *slot = Some(ip),
            None => {}
        }
    }
    Ok(wanted)
}

/// Allocate one address per range set for `(container_id, ifname)` under the
/// session's lock. On failure every address claimed here is released again.
pub fn allocate(
    leases: &mut Leases,
    network: &str,
    sets: &[RangeSet],
    wanted: &[Option<IpAddr>],
    container_id: &str,
    ifname: &str,
) -> Result<Vec<Allocation>> {
    let mut out = Vec::with_capacity(sets.len());
    for (i, set) in sets.iter().enumerate() {
        let requested = wanted.get(i).copied().flatten();
        match allocate_one(leases, network, i, set, requested, container_id, ifname) {
            Ok(a) => out.push(a),
            Err(e) => {
                let undo = leases.rollback();
                let e = e.context(format!("failed to allocate for range set {i}"));
                return Err(if undo.is_empty() {
                    e
                } else {
                    e.with_details(format!("and could not undo: {}", undo.join("; ")))
                });
            }
        }
    }
    Ok(out)
}

fn allocate_one(
    leases: &mut Leases,
    network: &str,
    i: usize,
    set: &RangeSet,
    requested: Option<IpAddr>,
    container_id: &str,
    ifname: &str,
) -> Result<Allocation> {
    let found = |ip: IpAddr| {
        set.range_for(ip).map(|r| Allocation {
            range_set: i,
            address: IpNet::new(ip, r.subnet.prefix_len()).unwrap_or(r.subnet),
            gateway: r.gateway,
        })
    };
    if let Some(ip) = requested {
        if leases.reserve(ip, container_id, ifname, i)? {
            return found(ip).ok_or_else(|| unavailable(format!("{ip} is not in range set {set}")));
        }
        return Err(unavailable(format!(
            "requested IP address {ip} is not available in range set {set} of network \
             {network:?}: it is leased to another container"
        )));
    }
    // As in the spec: no second ADD for the same attachment without a DEL.
    let owned = leases.find(container_id, ifname)?;
    if let Some(ip) = owned
        .exact
        .iter()
        .chain(&owned.legacy)
        .find(|ip| set.contains(**ip))
    {
        return Err(Error::failed(format!(
            "{ip} has been allocated to container {container_id} (interface {ifname}) already, \
             duplicate allocation is not allowed; run DEL for it first"
        )));
    }
    let last = leases.last_reserved(i);
    for (ip, _) in set.candidates(last) {
        if leases.reserve(ip, container_id, ifname, i)? {
            return found(ip).ok_or_else(|| unavailable(format!("{ip} is not in range set {set}")));
        }
    }
    Err(Error::new(
        code::POOL_EXHAUSTED,
        format!("no IP addresses available in range set {set} of network {network:?}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::range::{RangeConf, RangeSet};

    fn set(subnet: &str) -> RangeSet {
        RangeSet::parse(&[RangeConf {
            subnet: Some(subnet.into()),
            ..RangeConf::default()
        }])
        .unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn requested_addresses_go_to_their_set() {
        let sets = [set("10.0.0.0/24"), set("fd00::/64")];
        let w = assign_requested(&sets, &[ip("fd00::9"), ip("10.0.0.9"), ip("10.0.0.9")]).unwrap();
        assert_eq!(w, [Some(ip("10.0.0.9")), Some(ip("fd00::9"))]);
        assert_eq!(assign_requested(&sets, &[]).unwrap(), [None, None]);
    }

    #[test]
    fn requested_addresses_are_refused_before_anything_is_written() {
        let sets = [set("10.0.0.0/24")];
        for (req, why) in [
            (vec![ip("10.9.0.1")], "not in any range"),
            (vec![ip("10.0.0.1")], "gateway"),
            (
                vec![ip("10.0.0.5"), ip("10.0.0.6")],
                "one address per range set",
            ),
        ] {
            let e = assign_requested(&sets, &req).unwrap_err();
            assert_eq!(e.code, code::ADDRESS_UNAVAILABLE);
            assert!(e.msg.contains(why), "{e}");
        }
    }
}
