//! IP forwarding, turned on for the address families a container uses.

use cni::{Context, IpConfig, Result};
use netlink::{sysctl, Family};

fn key(family: Family) -> &'static str {
    match family {
        Family::V4 => "net.ipv4.ip_forward",
        Family::V6 => "net.ipv6.conf.all.forwarding",
    }
}

/// Turn forwarding on for `family` in the calling thread's namespace
/// (written only when it is off).
pub fn enable_family(family: Family) -> Result<()> {
    let key = key(family);
    if sysctl::get(key).ok().as_deref() == Some("1") {
        return Ok(());
    }
    sysctl::set(key, "1").or_failed("could not enable IP forwarding")
}

/// Turn forwarding on for each family that `ips` use.
pub fn enable(ips: &[IpConfig]) -> Result<()> {
    for family in families(ips) {
        enable_family(family)?;
    }
    Ok(())
}

/// The families present in `ips`, IPv4 first, each once.
pub fn families(ips: &[IpConfig]) -> Vec<Family> {
    [Family::V4, Family::V6]
        .into_iter()
        .filter(|f| ips.iter().any(|ip| Family::of(&ip.address.addr()) == *f))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_in_order_once() {
        let ip = |a: &str| IpConfig {
            interface: None,
            address: a.parse().unwrap(),
            gateway: None,
        };
        assert_eq!(
            families(&[ip("fd00::2/64"), ip("10.0.0.2/24"), ip("10.1.0.2/24")]),
            [Family::V4, Family::V6]
        );
        assert!(families(&[]).is_empty());
        assert_eq!(key(Family::V6), "net.ipv6.conf.all.forwarding");
    }
}
