//! Apply an IPAM result to the container's interface, like the reference's
//! `ConfigureIface`, but ready at once: addresses are added without
//! duplicate address detection (unless asked for), so an IPv6 address and
//! the routes through its gateway work the moment ADD returns.

use cni::{Error, IpConfig, Result};
use ipnet::IpNet;
use netlink::{scope, sysctl, Batch, Family, Handle, LinkInfo, Netns, NewAddr, Route};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long to wait for duplicate address detection when it is enabled.
const DAD_TIMEOUT: Duration = Duration::from_secs(5);
const DAD_POLL: Duration = Duration::from_millis(10);

/// How to configure the interface.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Run IPv6 duplicate address detection (the bridge's `enabledad`) and
    /// wait until it is done; otherwise addresses are usable at once.
    pub dad: bool,
    /// ptp style: no subnet route on the link. Each address gets a host
    /// route to its gateway on the link and a route to its subnet through
    /// that gateway, so all traffic goes to the gateway.
    pub point_to_point: bool,
}

/// The first gateway of each family, used for routes that name none.
fn family_gateways(ips: &[IpConfig]) -> (Option<IpAddr>, Option<IpAddr>) {
    let first = |f| {
        ips.iter()
            .filter_map(|ip| ip.gateway)
            .find(|gw| Family::of(gw) == f)
    };
    (first(Family::V4), first(Family::V6))
}

/// The routes a point-to-point address needs: gateway on the link, subnet
/// through the gateway, both preferring the address as source.
fn point_to_point_routes(ip: &IpConfig, oif: u32) -> Result<[Route; 2]> {
    let addr = ip.address.addr();
    let gw = ip.gateway.ok_or_else(|| {
        Error::invalid_config(format!(
            "IPAM gave address {} no gateway: a point-to-point link needs one",
            ip.address
        ))
    })?;
    let host = IpNet::from(gw);
    let to_gw = Route {
        oif: Some(oif),
        src: Some(addr),
        scope: Some(scope::LINK),
        ..Route::new(host)
    };
    let subnet = Route {
        gw: Some(gw),
        oif: Some(oif),
        src: Some(addr),
        ..Route::new(ip.address.trunc())
    };
    Ok([to_gw, subnet])
}

/// Every route this configuration adds, in order.
pub fn planned_routes(
    ips: &[IpConfig],
    routes: &[cni::Route],
    oif: u32,
    opts: &Options,
) -> Result<Vec<Route>> {
    let mut out = Vec::new();
    if opts.point_to_point {
        for ip in ips {
            out.extend(point_to_point_routes(ip, oif)?);
        }
    }
    let (v4gw, v6gw) = family_gateways(ips);
    for r in routes {
        let mut route = Route::from_cni(r, oif);
        if route.gw.is_none() {
            route.gw = match Family::of(&r.dst.addr()) {
                Family::V4 => v4gw,
                Family::V6 => v6gw,
            };
        }
        out.push(route);
    }
    Ok(out)
}

/// A sysctl's value; `None` when it cannot be read (IPv6 disabled in the
/// kernel).
fn read_sysctl(key: &str) -> Option<String> {
    sysctl::get(key).ok()
}

/// The sysctls an IPv6 address needs; run inside the container's namespace.
/// (`arp_notify`, an IPv4 one, goes with the addresses over netlink.) Not
/// made for IPv4-only results, as in the reference: every `/proc/sys/net`
/// path in a new namespace is looked up afresh, which costs more the more
/// namespaces the node has (without these sysctls and the host end's
/// `accept_ra`, 64 parallel ADDs were 1.0-1.2x faster).
fn ipv6_sysctls(ifname: &str, dad: bool) -> Result<()> {
    for dev in ["lo", ifname] {
        let key = format!("net/ipv6/conf/{dev}/disable_ipv6");
        match read_sysctl(&key).as_deref() {
            None | Some("0") => {}
            Some(_) => sysctl::set(&key, "0")
                .map_err(|e| Error::failed(format!("failed to enable IPv6 on {dev:?}: {e}")))?,
        }
    }
    if dad {
        let _ = sysctl::set(&format!("net/ipv6/conf/{ifname}/enhanced_dad"), "1");
        let _ = sysctl::set(&format!("net/ipv6/conf/{ifname}/accept_dad"), "1");
    } else {
        // Also makes the link-local address usable at once, and keeps
        // hairpinned neighbour solicitations from failing it.
        let _ = sysctl::set(&format!("net/ipv6/conf/{ifname}/accept_dad"), "0");
    }
    // Keep the addresses if the interface goes down and up again.
    sysctl::set(&format!("net/ipv6/conf/{ifname}/keep_addr_on_down"), "1")?;
    Ok(())
}

/// Wait until no IPv6 address of the link is tentative; fail on a
/// duplicate or after [`DAD_TIMEOUT`].
fn settle(nl: &mut Handle, link: &LinkInfo) -> Result<()> {
    let deadline = Instant::now() + DAD_TIMEOUT;
    loop {
        let addrs = nl.addresses(Some(link.index), Some(Family::V6))?;
        if let Some(dup) = addrs.iter().find(|a| a.is_dad_failed()) {
            return Err(Error::failed(format!(
                "address {} on {:?} is a duplicate (IPv6 DAD failed)",
                dup.address, link.name
            )));
        }
        if !addrs.iter().any(|a| a.is_tentative()) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::failed(format!(
                "addresses on {:?} still tentative after {} s of IPv6 DAD",
                link.name,
                DAD_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(DAD_POLL);
    }
}

/// Configure `link` in `ns` (through `nl`, a handle inside it) with an IPAM
/// result: for IPv6 its sysctls, then `ips`, `arp_notify`, link up, then
/// `routes` (a route without `gw` goes through its family's gateway). Route
/// fields of CNI 1.1.0 are honoured.
pub fn apply(
    ns: &Netns,
    nl: &mut Handle,
    link: &LinkInfo,
    opts: &Options,
    ips: &[IpConfig],
    routes: &[cni::Route],
) -> Result<()> {
    let context = |e: Error| e.context(format!("configuring {:?} in {}", link.name, ns.path()));
    if ips.iter().any(|ip| matches!(ip.address, IpNet::V6(_))) {
        ns.run(|| ipv6_sysctls(&link.name, opts.dad))
            .map_err(context)?;
    }

    let planned = planned_routes(ips, routes, link.index, opts).map_err(context)?;
    let mut batch = Batch::new();
    for ip in ips {
        let mut addr = NewAddr::new(link.index, ip.address);
        addr.nodad = !opts.dad;
        addr.noprefixroute = opts.point_to_point;
        batch.add_address(&addr);
    }
    // Tell neighbours about the new addresses when the link comes up.
    batch.set_arp_notify(link.index, true);
    batch.set_up(link.index);
    if opts.dad {
        batch.commit(nl).map_err(|e| context(e.into()))?;
        settle(nl, link).map_err(context)?;
        batch = Batch::new();
    }
    for r in &planned {
        batch.add_route_ecmp(r);
    }
    batch.commit(nl).map_err(|e| context(e.into()))
}

/// A link as a result's `interfaces` entry; `sandbox` is empty on the host.
/// The MTU is filled in for 1.1.0 results (older versions drop it).
pub fn result_interface(link: &netlink::LinkInfo, sandbox: &str) -> cni::Interface {
    cni::Interface {
        name: link.name.clone(),
        mac: link.mac.map(|m| m.to_string()).unwrap_or_default(),
        mtu: (link.mtu > 0).then_some(link.mtu),
        sandbox: sandbox.to_string(),
        ..cni::Interface::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(addr: &str, gw: Option<&str>) -> IpConfig {
        IpConfig {
            interface: Some(2),
            address: addr.parse().unwrap(),
            gateway: gw.map(|g| g.parse().unwrap()),
        }
    }

    #[test]
    fn routes_without_gateway_use_their_familys() {
        let ips = [
            ip("10.1.0.5/24", Some("10.1.0.1")),
            ip("fd00::5/64", Some("fd00::1")),
        ];
        let mut extra = cni::Route::new("10.9.0.0/16".parse().unwrap(), None);
        extra.priority = Some(50);
        extra.table = Some(100);
        let routes = [
            cni::Route::new("0.0.0.0/0".parse().unwrap(), None),
            cni::Route::new("::/0".parse().unwrap(), None),
            cni::Route::new(
                "10.8.0.0/16".parse().unwrap(),
                Some("10.1.0.254".parse().unwrap()),
            ),
            extra,
        ];
        let got = planned_routes(&ips, &routes, 7, &Options::default()).unwrap();
        let gws: Vec<_> = got.iter().map(|r| r.gw.unwrap().to_string()).collect();
        assert_eq!(gws, ["10.1.0.1", "fd00::1", "10.1.0.254", "10.1.0.1"]);
        assert!(got.iter().all(|r| r.oif == Some(7)));
        assert_eq!((got[3].metric, got[3].table), (Some(50), Some(100)));
    }

    #[test]
    fn no_gateway_leaves_the_route_on_link() {
        let ips = [ip("10.1.0.5/24", None)];
        let routes = [cni::Route::new("10.9.0.0/16".parse().unwrap(), None)];
        let got = planned_routes(&ips, &routes, 3, &Options::default()).unwrap();
        assert_eq!(got[0].gw, None);
    }

    #[test]
    fn point_to_point_routes_everything_through_the_gateway() {
        let ips = [ip("10.1.1.5/24", Some("10.1.1.1"))];
        let opts = Options {
            point_to_point: true,
            ..Options::default()
        };
        let got = planned_routes(&ips, &[], 4, &opts).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].dst.to_string(), "10.1.1.1/32");
        assert_eq!(got[0].scope, Some(scope::LINK));
        assert_eq!(got[0].src, Some("10.1.1.5".parse().unwrap()));
        assert_eq!(got[1].dst.to_string(), "10.1.1.0/24");
        assert_eq!(got[1].gw, Some("10.1.1.1".parse().unwrap()));
        let e = planned_routes(&[ip("10.1.1.5/24", None)], &[], 4, &opts).unwrap_err();
        assert_eq!(e.code, cni::code::INVALID_CONFIG);
    }
}
