//! The bridge's own kernel steps: the bridge, its ports' settings, and the
//! gateway addresses. All in the plugin's (host) namespace.

use crate::config::Conf;
use cni::{CniResult, Context, Error, Result, Route};
use ipnet::IpNet;
use netlink::{
    sysctl, Addr, Batch, BridgeVlan, Family, Handle, LinkInfo, LinkKind, NewAddr, NewLink,
};
use plumbing::Rollback;
use std::net::IpAddr;

/// Turn a kernel that cannot filter VLANs into words an operator can act on.
fn vlan_error(e: netlink::Error) -> Error {
    if e.errno() == Some(libc::EOPNOTSUPP) {
        Error::failed(format!(
            "{e}: this kernel has no bridge VLAN filtering \
             (CONFIG_BRIDGE_VLAN_FILTERING); remove \"vlan\"/\"vlanTrunk\""
        ))
    } else {
        e.into()
    }
}

/// The configured bridge if it exists; an error if that name is taken by
/// a link that is not a bridge. For [`ensure_bridge`], looked up first so
/// that a bad name is refused before anything changes.
pub fn find_bridge(host: &mut Handle, conf: &Conf) -> Result<Option<LinkInfo>> {
    let found = host.find_link(&conf.bridge)?;
    if let Some(link) = &found {
        check_is_bridge(link, conf)?;
    }
    Ok(found)
}

fn check_is_bridge(link: &LinkInfo, conf: &Conf) -> Result<()> {
    if link.kind.as_deref() != Some("bridge") {
        return Err(Error::invalid_config(format!(
            "{:?} already exists but is not a bridge (it is a {}): \
             name another \"bridge\" or remove that link",
            conf.bridge,
            link.kind.as_deref().unwrap_or("device of no kind")
        )));
    }
    Ok(())
}

/// The bridge named in the configuration (`found` by [`find_bridge`]),
/// created if needed, and set up. A bridge created here is removed again
/// on rollback if no other container attached to it meanwhile.
pub fn ensure_bridge<'a>(
    host: &mut Handle,
    conf: &Conf,
    found: Option<LinkInfo>,
    undo: &mut Rollback<'a>,
) -> Result<LinkInfo> {
    let (br, created) = match found {
        Some(link) => (link, false),
        None => {
            let mut new = NewLink::new(&conf.bridge, LinkKind::Bridge);
            new.mtu = plumbing::veth::mtu(conf.mtu)?;
            match host.add_link(&new) {
                Ok(link) => (link, true),
                // Another ADD created it just now: use theirs.
                Err(e) if e.is_exists() => (host.link_by_name(&conf.bridge)?, false),
                Err(e) => return Err(e.into()),
            }
        }
    };
    check_is_bridge(&br, conf)?;
    if created {
        let index = br.index;
        undo.push(format!("removing bridge {:?}", conf.bridge), move || {
            remove_if_unused(index)
        });
    }
    // We own the routes of this interface. Written only when the link says
    // otherwise: a /proc/sys/net path costs more the more namespaces exist.
    if br.ipv6_accept_ra != Some(0) {
        let _ = sysctl::set(&format!("net/ipv6/conf/{}/accept_ra", conf.bridge), "0");
    }

    let mut batch = Batch::new();
    if let (true, Some(mac)) = (created, br.mac) {
        // Set explicitly, the kernel keeps it instead of taking the lowest
        // port's MAC each time ports come and go.
        batch.set_mac(br.index, mac);
    }
    if conf.promisc_mode && !br.promisc {
        batch.set_promisc(br.index, true);
    }
    if !br.up {
        batch.set_up(br.index);
    }
    batch.commit(host)?;
    if conf.vlan_filtering() && !host.vlan_filtering(br.index).map_err(vlan_error)? {
        host.set_vlan_filtering(br.index, true)
            .map_err(vlan_error)?;
    }
    Ok(br)
}

/// Delete the bridge unless some link is still attached to it.
fn remove_if_unused(bridge: u32) -> Result<()> {
    let mut nl = Handle::new()?;
    if nl.links()?.iter().any(|l| l.master == Some(bridge)) {
        return Ok(());
    }
    match nl.delete_link(bridge) {
        Err(e) if !e.is_not_found() => Err(e.into()),
        _ => Ok(()),
    }
}

/// Port settings of the host end: hairpin, isolation, VLANs.
pub fn setup_port(host: &mut Handle, port: u32, conf: &Conf) -> Result<()> {
    let mut batch = Batch::new();
    // New ports start with both off.
    if conf.hairpin_mode {
        batch.set_hairpin(port, true);
    }
    if conf.port_isolation {
        batch.set_isolated(port, true);
    }
    batch.commit(host)?;
    if conf.vlan_filtering() {
        set_port_vlans(host, port, conf).map_err(vlan_error)?;
    }
    Ok(())
}

/// `vlan` becomes the port's native VLAN, `vlanTrunk` its tagged VLANs
/// (with VLAN 1 native when only a trunk is given). Without
/// `preserveDefaultVlan` the bridge's default VLAN is taken away first.
fn set_port_vlans(host: &mut Handle, port: u32, conf: &Conf) -> netlink::Result<()> {
    let mut batch = Batch::new();
    if !conf.preserve_default_vlan {
        for v in host.bridge_vlans(port)? {
            batch.del_bridge_vlan(port, v.vid);
        }
    }
    match conf.native_vlan() {
        Some(vid) => batch.add_bridge_vlan(port, BridgeVlan::native(vid)),
        None if !conf.trunk.is_empty() => batch.add_bridge_vlan(port, BridgeVlan::native(1)),
        None => &mut batch,
    };
    for vid in &conf.trunk {
        batch.add_bridge_vlan(port, BridgeVlan::tagged(*vid));
    }
    batch.commit(host)
}

/// The first address after the network address: the reference's gateway
/// when IPAM names none.
fn first_host(net: &IpNet) -> Option<IpAddr> {
    match net.network() {
        IpAddr::V4(a) => u32::from(a).checked_add(1).map(|v| IpAddr::V4(v.into())),
        IpAddr::V6(a) => u128::from(a).checked_add(1).map(|v| IpAddr::V6(v.into())),
    }
}

/// Decide the gateways, like the reference: with `isGateway` every address
/// gets one (IPAM's, or its subnet's first address), and with
/// `isDefaultGateway` each family gets a default route through it unless
/// IPAM gave one. Returns the addresses to put on the bridge (gateway with
/// the subnet's prefix).
pub fn plan_gateways(result: &mut CniResult, conf: &Conf) -> Vec<IpNet> {
    let mut on_bridge = Vec::new();
    let mut defaulted = Vec::new();
    for i in 0..result.ips.len() {
        let Some(ip) = result.ips.get_mut(i) else {
            continue;
        };
        if ip.gateway.is_none() && conf.is_gateway {
            ip.gateway = first_host(&ip.address);
        }
        let (address, gateway) = (ip.address, ip.gateway);
        let family = Family::of(&address.addr());
        if conf.is_default_gateway && !defaulted.contains(&family) {
            let any: IpNet = match family {
                Family::V4 => IpNet::V4(Default::default()),
                Family::V6 => IpNet::V6(Default::default()),
            };
            let has_default = result.routes.iter().any(|r| r.dst == any && r.gw.is_some());
            if !has_default {
                result.routes.push(Route::new(any, gateway));
            }
            defaulted.push(family);
        }
        if conf.is_gateway {
            if let Some(gw) = gateway.and_then(|g| IpNet::new(g, address.prefix_len()).ok()) {
                on_bridge.push(gw);
            }
        }
    }
    on_bridge
}

/// Put gateway address `gw` on `link` (no DAD: usable at once), given the
/// link's current addresses. Another address of the family (IPv4) or an
/// overlapping one (IPv6) is replaced with `forceAddress`, else an error.
/// Whether the address was added by this call.
fn ensure_address(
    host: &mut Handle,
    link: &LinkInfo,
    present: &[Addr],
    gw: IpNet,
    force: bool,
) -> Result<bool> {
    let family = Family::of(&gw.addr());
    let same_family = present
        .iter()
        .filter(|a| Family::of(&a.address.addr()) == family);
    if same_family.clone().any(|a| a.address == gw) {
        return Ok(false);
    }
    for a in same_family {
        let clash = family == Family::V4
            || a.address.contains(&gw.addr())
            || gw.contains(&a.address.addr());
        if !clash {
            continue;
        }
        if !force {
            return Err(Error::failed(format!(
                "{:?} already has address {}, not gateway {gw}: \
                 set \"forceAddress\" to replace it",
                link.name, a.address
            )));
        }
        host.del_address(link.index, &a.address)
            .or_failed(format!("replacing {} on {:?}", a.address, link.name))?;
    }
    match host.add_address(&NewAddr::new(link.index, gw).nodad()) {
        Ok(()) => Ok(true),
        // A concurrent ADD put it there first.
        Err(e) if e.is_exists() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Where the gateway addresses go: the bridge, or with `vlan` its
/// `<bridge>.<vlan>` interface (made here if missing), with the addresses
/// it has now. Read while IPAM runs.
pub struct GatewayLink {
    pub link: LinkInfo,
    /// The link is the VLAN gateway interface, which the result lists.
    pub is_vlan_interface: bool,
    present: Vec<Addr>,
}

pub fn gateway_link(host: &mut Handle, br: &LinkInfo, conf: &Conf) -> Result<GatewayLink> {
    let (link, is_vlan_interface) = match conf.native_vlan() {
        Some(vid) => (ensure_vlan_gateway(host, br, conf, vid)?, true),
        None => (br.clone(), false),
    };
    let present = host.addresses(Some(link.index), None)?;
    Ok(GatewayLink {
        link,
        is_vlan_interface,
        present,
    })
}

/// The gateway addresses on their link, the bridge's MAC pinned so it no
/// longer follows its ports, and forwarding on for those families.
pub fn ensure_gateways(
    host: &mut Handle,
    target: &GatewayLink,
    conf: &Conf,
    gateways: &[IpNet],
) -> Result<()> {
    let link = &target.link;
    let mut added = false;
    for gw in gateways {
        added |= ensure_address(host, link, &target.present, *gw, conf.force_address)?;
    }
    // Pinning the current MAC stops the bridge taking its lowest port's.
    // Only with a new address, as the reference does: setting a MAC, even
    // the same one, flushes the bridge's neighbour table.
    if added {
        if let Some(mac) = host.link_by_index(link.index)?.mac {
            host.set_mac(link.index, mac)?;
        }
    }
    let mut families: Vec<Family> = gateways.iter().map(|g| Family::of(&g.addr())).collect();
    families.dedup();
    for family in families {
        plumbing::forward::enable_family(family)?;
    }
    Ok(())
}

/// Our port as it is now, still attached to the bridge. A concurrent ADD
/// that failed may have removed a bridge it had just created; a port still
/// on `bridge_index` shows ours is there.
pub fn confirm_attached(
    host: &mut Handle,
    conf: &Conf,
    port: &LinkInfo,
    bridge_index: u32,
) -> Result<LinkInfo> {
    let went_away = || {
        Error::failed(format!(
            "bridge {:?} went away while attaching {:?} (a concurrent ADD rolled back): retry",
            conf.bridge, port.name
        ))
    };
    match host.link_by_index(port.index) {
        Err(e) if e.is_not_found() => Err(went_away()),
        Err(e) => Err(e.into()),
        Ok(now) if now.master == Some(bridge_index) => Ok(now),
        Ok(_) => Err(went_away()),
    }
}

/// `<bridge>.<vlan>`: one end of a veth pair whose other end is a port of
/// the bridge in `vlan`, where the VLAN's gateway address lives. Made once
/// per bridge and VLAN, then shared (never removed, like the bridge).
fn ensure_vlan_gateway(
    host: &mut Handle,
    br: &LinkInfo,
    conf: &Conf,
    vid: u16,
) -> Result<LinkInfo> {
    let name = conf.vlan_gateway_name();
    if let Some(link) = host.find_link(&name)? {
        return Ok(link);
    }
    let port_name = plumbing::veth::random_host_name()?;
    let mut new = NewLink::veth(&port_name, &name, None);
    new.master = Some(br.index);
    new.mtu = Some(br.mtu);
    new.up = true;
    let port = match host.add_link(&new) {
        Ok(port) => port,
        Err(e) if e.is_exists() => return Ok(host.link_by_name(&name)?),
        Err(e) => return Err(e.into()),
    };
    let gw_conf = Conf {
        vlan: i64::from(vid),
        trunk: Vec::new(),
        hairpin_mode: false,
        port_isolation: false,
        ..conf.clone()
    };
    setup_port(host, port.index, &gw_conf)?;
    let link = host.link_by_name(&name)?;
    host.set_up(link.index)?;
    Ok(link)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni::IpConfig;

    fn result(ips: &[(&str, Option<&str>)], routes: &[(&str, Option<&str>)]) -> CniResult {
        CniResult {
            ips: ips
                .iter()
                .map(|(a, g)| IpConfig {
                    interface: Some(2),
                    address: a.parse().unwrap(),
                    gateway: g.map(|g| g.parse().unwrap()),
                })
                .collect(),
            routes: routes
                .iter()
                .map(|(d, g)| Route::new(d.parse().unwrap(), g.map(|g| g.parse().unwrap())))
                .collect(),
            ..CniResult::default()
        }
    }

    fn conf(gateway: bool, default: bool) -> Conf {
        Conf {
            is_gateway: gateway || default,
            is_default_gateway: default,
            ..Conf::default()
        }
    }

    #[test]
    fn gateways_default_to_the_first_address_of_the_subnet() {
        let mut r = result(
            &[("10.1.0.5/24", None), ("fd00::5/64", Some("fd00::fe"))],
            &[],
        );
        let gws = plan_gateways(&mut r, &conf(true, false));
        let shown: Vec<String> = gws.iter().map(|g| g.to_string()).collect();
        assert_eq!(shown, ["10.1.0.1/24", "fd00::fe/64"]);
        assert_eq!(r.ips[0].gateway, Some("10.1.0.1".parse().unwrap()));
        assert!(r.routes.is_empty(), "isGateway alone adds no route");
    }

    #[test]
    fn default_gateway_adds_one_default_route_per_family() {
        let mut r = result(
            &[
                ("10.1.0.5/24", None),
                ("10.2.0.5/24", None),
                ("fd00::5/64", None),
            ],
            &[("::/0", Some("fd00::99"))],
        );
        plan_gateways(&mut r, &conf(false, true));
        let routes: Vec<String> = r
            .routes
            .iter()
            .map(|r| format!("{} {:?}", r.dst, r.gw))
            .collect();
        assert_eq!(
            routes,
            ["::/0 Some(fd00::99)", "0.0.0.0/0 Some(10.1.0.1)"],
            "IPAM's default route is kept, one is added for IPv4"
        );
    }

    #[test]
    fn no_gateway_without_is_gateway() {
        let mut r = result(&[("10.1.0.5/24", None)], &[]);
        assert!(plan_gateways(&mut r, &conf(false, false)).is_empty());
        assert_eq!(r.ips[0].gateway, None);
    }
}
