//! CNI bridge plugin: connects the container to a Linux bridge on the host
//! through a veth pair.
//!
//! - ADD creates the bridge if needed, the veth pair (host end on the
//!   bridge, container end `CNI_IFNAME` in `CNI_NETNS`), applies the IPAM
//!   result (addresses, routes; with `isGateway` the gateway on the bridge),
//!   enables forwarding, sets up masquerade and the MAC spoof check when
//!   asked, and returns the bridge, the host end and the container end with
//!   the IPs, routes and the IPAM plugin's DNS. Whatever fails half-way is
//!   undone.
//! - DEL releases the IPAM lease, then removes the veth, the masquerade
//!   rules and the spoof check; it succeeds when any of them (or the
//!   namespace) is already gone.
//! - CHECK compares the bridge, both veth ends, addresses, routes and rules
//!   with `prevResult`.
//! - GC removes the masquerade rules of attachments not in the valid list
//!   and the spoof checks of those whose port is gone, and forwards to
//!   IPAM; STATUS forwards to IPAM.
//!
//! Keys and defaults: README.md.

#![no_main]

mod config;
mod net;
mod spoofcheck;

use cni::{CniResult, Command, Error, Plugin, Request, Result};
use config::Conf;
use netlink::{Handle, Netns};
use plumbing::teardown::Failures;
use plumbing::{check, iface, masq, veth, Rollback};
use spoofcheck::SpoofCheck;

struct Bridge;

impl Plugin for Bridge {
    fn add(&self, req: &Request) -> Result<CniResult> {
        // Everything that can be refused is refused before anything changes.
        let conf = Conf::load(req)?;
        let mac = plumbing::mac::requested(req)?;
        let ns = Netns::open(&req.netns)?;
        let mut cont = ns.handle()?;
        veth::ensure_ifname_free(&mut cont, &ns, &req.ifname)?;
        let mut host = Handle::new()?;
        let found = net::find_bridge(&mut host, &conf)?;
        let mut undo = Rollback::new();

        // IPAM is a process of its own: start it, and make the links while
        // it runs.
        let ipam = match conf.layer3 {
            true => Some(undo.ipam_start(req)?),
            false => None,
        };
        let br = net::ensure_bridge(&mut host, &conf, found, &mut undo)?;
        let opts = veth::Options {
            mtu: veth::mtu(conf.mtu)?,
            mac,
            master: Some(br.index),
        };
        let pair = veth::create(&mut host, &mut cont, &ns, &req.ifname, &opts)?;
        undo.delete_link(None, pair.host.index, &pair.host.name);
        net::setup_port(&mut host, pair.host.index, &conf)?;

        if conf.mac_spoof_chk {
            let sc = SpoofCheck::new(&req.container_id, &req.ifname);
            let container_mac = pair.container.mac.ok_or_else(|| {
                Error::failed(format!("{:?} has no MAC address", pair.container.name))
            })?;
            sc.setup(&pair.host.name, container_mac)?;
            undo.push("removing the MAC spoof check", move || sc.teardown());
        }

        let gateway_link = match conf.layer3 && conf.is_gateway {
            true => Some(net::gateway_link(&mut host, &br, &conf)?),
            false => None,
        };
        let port = net::confirm_attached(&mut host, &conf, &pair.host, br.index)?;
        let mut result = CniResult {
            interfaces: vec![
                iface::result_interface(&br, ""),
                iface::result_interface(&port, ""),
                iface::result_interface(&pair.container, &req.netns),
            ],
            ..CniResult::default()
        };
        if let Some(target) = gateway_link.as_ref().filter(|t| t.is_vlan_interface) {
            result
                .interfaces
                .push(iface::result_interface(&target.link, ""));
        }

        if let Some(ipam) = ipam {
            let ipam = ipam.finish()?;
            result.ips = ipam.ips;
            result.routes = ipam.routes;
            result.dns = ipam.dns;
            // Every address belongs to the container end.
            for ip in &mut result.ips {
                ip.interface = Some(2);
            }
            let gateways = net::plan_gateways(&mut result, &conf);
            if let Some(target) = &gateway_link {
                net::ensure_gateways(&mut host, target, &conf, &gateways)?;
            }
        }

        // The host end comes up last: with both ends up the link has its
        // carrier, and the kernel's work on that holds the RTNL lock for a
        // while (~0.9 ms here), which any later link or address request
        // would wait for. DAD, though, runs only with the carrier.
        if conf.enable_dad {
            host.set_up(pair.host.index)?;
        }
        if conf.layer3 {
            let opts = iface::Options {
                dad: conf.enable_dad,
                point_to_point: false,
            };
            iface::apply(
                &ns,
                &mut cont,
                &pair.container,
                &opts,
                &result.ips,
                &result.routes,
            )?;
        } else if !conf.disable_container_interface {
            cont.set_up(pair.container.index)?;
        }
        if !conf.enable_dad {
            host.set_up(pair.host.index)?;
        }
        if conf.ip_masq && conf.layer3 {
            undo.masquerade(req, conf.ip_masq_backend.as_deref(), &result.ips)?;
        }
        if !req.conf.dns.is_empty() {
            result.dns = req.conf.dns.clone();
        }
        undo.commit()?;
        Ok(result)
    }

    fn del(&self, req: &Request) -> Result<()> {
        // Only what DEL needs is read, so a config ADD refused cannot make
        // DEL fail too.
        let conf = Conf::decode(req);
        let mut failures = Failures::new();
        // Masquerade (by network, container, ifname: works without netns or
        // prevResult) and the spoof check first, their connections closed
        // last: closing waits for the kernel to release the deleted rules,
        // which then overlaps with the steps below.
        let masq_open = match req.conf.ip_masq {
            true => failures.keep(masq::del_early(req)),
            false => None,
        };
        let spoof_open = match conf.as_ref().is_ok_and(|c| c.mac_spoof_chk) {
            true => failures.keep(SpoofCheck::new(&req.container_id, &req.ifname).teardown_early()),
            false => None,
        };
        if req.conf.ipam_type.is_some() {
            failures.note(plumbing::ipam::run(req, Command::Del));
        }
        failures.note(plumbing::teardown::delete_container_link(
            &req.netns,
            &req.ifname,
        ));
        drop((masq_open, spoof_open));
        failures.finish()
    }

    fn check(&self, req: &Request) -> Result<()> {
        let conf = Conf::load(req)?;
        let ns = Netns::open(&req.netns)?;
        if conf.layer3 {
            plumbing::ipam::run(req, Command::Check)?;
        }
        let prev = check::prev_result(req)?;
        let mut host = Handle::new()?;
        let mut cont = ns.handle()?;

        // The bridge, as configured.
        let br_iface = prev
            .interfaces
            .iter()
            .find(|i| i.name == conf.bridge && i.sandbox.is_empty())
            .ok_or_else(|| check::failed(format!("prevResult has no bridge {:?}", conf.bridge)))?;
        let br = check::link(&mut host, br_iface, "bridge", "the host")?;
        if br.promisc != conf.promisc_mode {
            return Err(check::failed(format!(
                "bridge {:?} has promiscuous mode {}, configured {}",
                br.name, br.promisc, conf.promisc_mode
            )));
        }

        // The container end, its addresses and routes.
        let (index, cont_link) = check::container(&ns, &mut cont, req, &prev, "veth")?;

        // The host end: the container end's peer, attached to the bridge.
        let host_end = prev
            .interfaces
            .iter()
            .enumerate()
            .filter(|(i, iface)| *i != index && iface.sandbox.is_empty() && iface.name != br.name)
            .filter_map(|(_, iface)| {
                let link = check::link(&mut host, iface, "veth", "the host").ok()?;
                (Some(link.index) == cont_link.parent_index
                    && link.parent_index == Some(cont_link.index))
                .then_some(link)
            })
            .next()
            .ok_or_else(|| {
                check::failed(format!(
                    "no host-side veth in prevResult is the peer of {:?}",
                    req.ifname
                ))
            })?;
        if host_end.master != Some(br.index) {
            return Err(check::failed(format!(
                "{:?} is not attached to bridge {:?}",
                host_end.name, br.name
            )));
        }
        let port = host.bridge_port(host_end.index)?.unwrap_or_default();
        if port.hairpin != conf.hairpin_mode || port.isolated != conf.port_isolation {
            return Err(check::failed(format!(
                "bridge port {:?} has hairpin {} and isolation {}, configured {} and {}",
                host_end.name, port.hairpin, port.isolated, conf.hairpin_mode, conf.port_isolation
            )));
        }

        if conf.ip_masq && conf.layer3 {
            let addrs: Vec<_> = prev.ips.iter().map(|ip| ip.address).collect();
            masq::check(req, conf.ip_masq_backend.as_deref(), &addrs)?;
        }
        if conf.mac_spoof_chk {
            let mac = cont_link
                .mac
                .ok_or_else(|| check::failed(format!("{:?} has no MAC", cont_link.name)))?;
            SpoofCheck::new(&req.container_id, &req.ifname).check(&host_end.name, mac)?;
        }
        Ok(())
    }

    fn status(&self, req: &Request) -> Result<()> {
        if req.conf.ipam_type.is_some() {
            plumbing::ipam::run(req, Command::Status)?;
        }
        Ok(())
    }

    fn gc(&self, req: &Request) -> Result<()> {
        let valid = req.valid_attachments()?;
        let spoof_check = Conf::decode(req).is_ok_and(|c| c.mac_spoof_chk);
        let mut failures = Failures::new();
        if req.conf.ipam_type.is_some() {
            failures.note(plumbing::ipam::run(req, Command::Gc));
        }
        // Without a list nothing is known to be stale.
        if let Some(valid) = &valid {
            if req.conf.ip_masq {
                failures.note(masq::gc(req, valid));
            }
            if spoof_check {
                let mut host = Handle::new()?;
                let port_exists = |name: &str| Ok(host.find_link(name)?.is_some());
                failures.note(SpoofCheck::gc(valid, port_exists));
            }
        }
        failures.finish()
    }
}

cni::plugin_main!(Bridge, "bridge");
