//! CNI ptp plugin: a point-to-point link between the container and the
//! host, routed (no bridge).
//!
//! - ADD gets addresses from IPAM, creates a veth pair (container end
//!   `CNI_IFNAME` in `CNI_NETNS`, host end `veth…`), and configures:
//!   - in the container: the addresses, a host route to each gateway on the
//!     link and the subnet through the gateway (so everything goes to the
//!     gateway), then the IPAM routes;
//!   - on the host end: each gateway as a /32 (/128) and a host route to
//!     each container address.
//!
//!   Forwarding is enabled for the families in use; `ipMasq` adds
//!   masquerade rules. The result lists the host end and the container end,
//!   the IPs, routes and DNS (the `dns` key overrides IPAM's). Whatever
//!   fails half-way is undone.
//! - DEL releases the IPAM lease, then removes the veth and the masquerade
//!   rules; it succeeds when any of them (or the namespace) is already gone.
//! - CHECK compares both ends, addresses and routes with `prevResult`.
//! - GC removes masquerade rules of attachments not in the valid list and
//!   forwards to IPAM; STATUS forwards to IPAM.
//!
//! Keys and defaults: README.md.

#![no_main]

use cni::{CniResult, Command, Error, IpConfig, Plugin, Request, Result};
use ipnet::IpNet;
use netlink::{scope, Batch, Handle, Netns, NewAddr, Route};
use plumbing::teardown::Failures;
use plumbing::{check, iface, masq, veth, Rollback};
use serde::Deserialize;

/// The plugin's own keys (`dns` is a common one, in `req.conf`).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Conf {
    ip_masq: bool,
    ip_masq_backend: Option<String>,
    /// 0: the kernel's default.
    mtu: u32,
}

impl Conf {
    fn load(req: &Request) -> Result<Conf> {
        let conf: Conf = req.conf.decode()?;
        veth::mtu(conf.mtu)?;
        plumbing::masq::validate_backend(conf.ip_masq_backend.as_deref())?;
        if req.conf.ipam_type.is_none() {
            return Err(Error::invalid_config(
                "ptp needs an \"ipam\" section: the link is routed by address",
            ));
        }
        Ok(conf)
    }
}

struct Ptp;

/// What the host end carries for each container address: the gateway as
/// a host address, and a host route to the container.
fn host_side(ips: &[IpConfig], port: u32) -> Result<(Vec<IpNet>, Vec<Route>)> {
    let mut addrs = Vec::new();
    let mut routes = Vec::new();
    for ip in ips {
        let gw = ip.gateway.ok_or_else(|| {
            Error::invalid_config(format!(
                "IPAM gave {} no gateway: ptp needs one for the host end",
                ip.address
            ))
        })?;
        addrs.push(IpNet::from(gw));
        routes.push(Route {
            oif: Some(port),
            scope: Some(scope::HOST),
            ..Route::new(IpNet::from(ip.address.addr()))
        });
    }
    Ok((addrs, routes))
}

impl Plugin for Ptp {
    fn add(&self, req: &Request) -> Result<CniResult> {
        let conf = Conf::load(req)?;
        let ns = Netns::open(&req.netns)?;
        let mut cont = ns.handle()?;
        veth::ensure_ifname_free(&mut cont, &ns, &req.ifname)?;
        let mut host = Handle::new()?;
        let mut undo = Rollback::new();

        // IPAM is a process of its own: start it, and make the veth pair
        // while it runs.
        let ipam = undo.ipam_start(req)?;
        let opts = veth::Options {
            mtu: veth::mtu(conf.mtu)?,
            ..veth::Options::default()
        };
        let pair = veth::create(&mut host, &mut cont, &ns, &req.ifname, &opts)?;
        undo.delete_link(None, pair.host.index, &pair.host.name);

        let opts = iface::Options {
            dad: false,
            point_to_point: true,
        };
        let mut result = ipam.finish()?;
        // A result without gateways is refused before anything uses it.
        host_side(&result.ips, 0)?;
        plumbing::forward::enable(&result.ips)?;

        result.interfaces = vec![
            iface::result_interface(&pair.host, ""),
            iface::result_interface(&pair.container, &req.netns),
        ];
        for ip in &mut result.ips {
            ip.interface = Some(1);
        }
        let (gateways, routes) = host_side(&result.ips, pair.host.index)?;
        veth::settle_host_end(&mut host, &pair)?;
        let mut batch = Batch::new();
        batch.set_up(pair.host.index);
        for gw in &gateways {
            batch.add_address(&NewAddr::new(pair.host.index, *gw).nodad());
        }
        for r in &routes {
            batch.add_route_ecmp(r);
        }
        batch
            .commit(&mut host)
            .map_err(|e| Error::from(e).context(format!("configuring {:?}", pair.host.name)))?;
        // The container end comes up last: with both ends up the link has
        // its carrier, and the kernel's work on that holds the RTNL lock for
        // a while, which any later request would wait for.
        iface::apply(
            &ns,
            &mut cont,
            &pair.container,
            &opts,
            &result.ips,
            &result.routes,
        )?;

        if conf.ip_masq {
            undo.masquerade(req, conf.ip_masq_backend.as_deref(), &result.ips)?;
        }
        if !req.conf.dns.is_empty() {
            result.dns = req.conf.dns.clone();
        }
        undo.commit()?;
        Ok(result)
    }

    fn del(&self, req: &Request) -> Result<()> {
        let mut failures = Failures::new();
        // By (network, container, ifname): works without netns or
        // prevResult. First, with the connection closed last: closing waits
        // for the kernel to release the deleted rules, which then overlaps
        // with the steps below.
        let masq_open = match req.conf.ip_masq {
            true => failures.keep(masq::del_early(req)),
            false => None,
        };
        if req.conf.ipam_type.is_some() {
            failures.note(plumbing::ipam::run(req, Command::Del));
        }
        failures.note(plumbing::teardown::delete_container_link(
            &req.netns,
            &req.ifname,
        ));
        drop(masq_open);
        failures.finish()
    }

    fn check(&self, req: &Request) -> Result<()> {
        let conf = Conf::load(req)?;
        let ns = Netns::open(&req.netns)?;
        plumbing::ipam::run(req, Command::Check)?;
        let prev = check::prev_result(req)?;
        let mut host = Handle::new()?;
        let mut cont = ns.handle()?;

        let (index, cont_link) = check::container(&ns, &mut cont, req, &prev, "veth")?;
        // The point-to-point routes: gateway on the link, subnet through it.
        let mine: Vec<&IpConfig> = prev
            .ips
            .iter()
            .filter(|ip| ip.interface.is_none_or(|i| i == index))
            .collect();
        let have = cont.routes(None, None)?;
        for ip in &mine {
            let gw = ip.gateway.ok_or_else(|| {
                check::failed(format!("prevResult gives {} no gateway", ip.address))
            })?;
            let wanted = [
                cni::Route::new(IpNet::from(gw), None),
                cni::Route::new(ip.address.trunc(), Some(gw)),
            ];
            for w in &wanted {
                if !have
                    .iter()
                    .any(|h| check::route_matches(h, w) && h.oif == Some(cont_link.index))
                {
                    return Err(check::failed(format!(
                        "route to {} on {:?} is missing in netns {}",
                        w.dst, req.ifname, req.netns
                    )));
                }
            }
        }

        // The host end: the container end's peer, with gateways and routes.
        let host_end = prev
            .interfaces
            .iter()
            .filter(|i| i.sandbox.is_empty())
            .filter_map(|i| check::link(&mut host, i, "veth", "the host").ok())
            .find(|l| {
                Some(l.index) == cont_link.parent_index && l.parent_index == Some(cont_link.index)
            })
            .ok_or_else(|| {
                check::failed(format!(
                    "no host-side veth in prevResult is the peer of {:?}",
                    req.ifname
                ))
            })?;
        let owned: Vec<IpConfig> = mine.into_iter().cloned().collect();
        let (gateways, routes) = host_side(&owned, host_end.index)?;
        let gw_ips: Vec<IpConfig> = gateways
            .iter()
            .map(|g| IpConfig {
                interface: None,
                address: *g,
                gateway: None,
            })
            .collect();
        check::addresses(&mut host, &host_end, &gw_ips)?;
        let have = host.routes(None, None)?;
        for r in &routes {
            if !have.iter().any(|h| h.dst == r.dst && h.oif == r.oif) {
                return Err(check::failed(format!(
                    "host route to {} on {:?} is missing",
                    r.dst, host_end.name
                )));
            }
        }

        if conf.ip_masq {
            let addrs: Vec<_> = owned.iter().map(|ip| ip.address).collect();
            masq::check(req, conf.ip_masq_backend.as_deref(), &addrs)?;
        }
        Ok(())
    }

    fn status(&self, req: &Request) -> Result<()> {
        plumbing::ipam::run(req, Command::Status)
    }

    fn gc(&self, req: &Request) -> Result<()> {
        let valid = req.valid_attachments()?;
        let mut failures = Failures::new();
        if req.conf.ipam_type.is_some() {
            failures.note(plumbing::ipam::run(req, Command::Gc));
        }
        // Without a list nothing is known to be stale.
        if let (true, Some(valid)) = (req.conf.ip_masq, &valid) {
            failures.note(masq::gc(req, valid));
        }
        failures.finish()
    }
}

cni::plugin_main!(Ptp, "ptp");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_end_gets_gateways_and_host_routes() {
        let ips = [
            IpConfig {
                interface: Some(1),
                address: "10.1.1.5/24".parse().unwrap(),
                gateway: Some("10.1.1.1".parse().unwrap()),
            },
            IpConfig {
                interface: Some(1),
                address: "fd00:1::5/64".parse().unwrap(),
                gateway: Some("fd00:1::1".parse().unwrap()),
            },
        ];
        let (addrs, routes) = host_side(&ips, 9).unwrap();
        let addrs: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
        assert_eq!(addrs, ["10.1.1.1/32", "fd00:1::1/128"]);
        let dsts: Vec<String> = routes.iter().map(|r| r.dst.to_string()).collect();
        assert_eq!(dsts, ["10.1.1.5/32", "fd00:1::5/128"]);
        assert!(routes
            .iter()
            .all(|r| r.oif == Some(9) && r.scope == Some(scope::HOST)));
    }

    #[test]
    fn a_gateway_is_required() {
        let ips = [IpConfig {
            interface: None,
            address: "10.1.1.5/24".parse().unwrap(),
            gateway: None,
        }];
        assert_eq!(
            host_side(&ips, 1).unwrap_err().code,
            cni::code::INVALID_CONFIG
        );
    }
}
