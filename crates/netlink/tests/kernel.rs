//! The netlink layer against the real kernel, in namespaces made per test.
//! Kernel state is checked through our own dumps and through `ip`.

use netlink::{
    scope, sysctl, Batch, BridgePort, BridgeVlan, Family, Handle, LinkKind, Netns, NewAddr,
    NewLink, Route,
};
use testutil::Netns as TestNs;

fn open(ns: &TestNs) -> (Netns, Handle) {
    let n = Netns::open(&ns.path()).unwrap();
    let h = n.handle().unwrap();
    (n, h)
}

#[test]
fn veth_pair_across_namespaces() {
    let a = TestNs::new("nla");
    let b = TestNs::new("nlb");
    let (_na, mut ha) = open(&a);
    let (nb, mut hb) = open(&b);

    let mut new = NewLink::veth("vhost", "vpeer", Some(&nb));
    new.mtu = Some(1400);
    new.up = true;
    let host = ha.add_link(&new).unwrap();
    assert!(host.index > 0);
    assert_eq!(host.name, "vhost");
    assert_eq!(host.kind.as_deref(), Some("veth"));
    assert_eq!(host.mtu, 1400);
    assert!(host.up);

    let peer = hb.link_by_name("vpeer").unwrap();
    assert_eq!(peer.mtu, 1400);
    assert_eq!(ha.link_by_index(host.index).unwrap(), host);
    assert_eq!(
        host.parent_index,
        Some(peer.index),
        "IFLA_LINK names the peer"
    );
    assert!(host.link_netnsid.is_some(), "the peer lives elsewhere");
    // IPv6 settings are reported; a new link accepts router advertisements.
    assert!(matches!(host.ipv6_accept_ra, Some(1 | 2)), "{host:?}");
    assert!(
        ha.find_link("vpeer").unwrap().is_none(),
        "peer went to the other side"
    );
    assert!(b.ip(&["-o", "link", "show", "vpeer"]).contains("mtu 1400"));

    // The name is taken now.
    let err = ha
        .add_link(&NewLink::veth("vhost", "vother", None))
        .unwrap_err();
    assert!(err.is_exists(), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "creating veth \"vhost\" in {}: File exists (os error 17)",
            a.path()
        )
    );

    // Deleting one side removes both.
    ha.delete_link(host.index).unwrap();
    assert!(hb.find_link("vpeer").unwrap().is_none());
    assert!(!ha.delete_link_by_name("vhost").unwrap());
}

#[test]
fn bridge_master_mac_alias_mtu_rename_move_delete() {
    let a = TestNs::new("nla");
    let b = TestNs::new("nlb");
    let (_na, mut h) = open(&a);
    let nb = Netns::open(&b.path()).unwrap();

    let br = h.add_link(&NewLink::new("br-t", LinkKind::Bridge)).unwrap();
    assert_eq!(br.kind.as_deref(), Some("bridge"));
    let v = h.add_link(&NewLink::veth("v0", "v1", None)).unwrap();

    h.set_master(v.index, Some(br.index)).unwrap();
    h.set_mac(v.index, "0a:58:0a:01:00:05".parse().unwrap())
        .unwrap();
    h.set_alias(v.index, "container abc").unwrap();
    h.set_mtu(v.index, 1280).unwrap();
    h.set_up(v.index).unwrap();
    let got = h.link_by_index(v.index).unwrap();
    assert_eq!(got.master, Some(br.index));
    assert_eq!(got.mac.unwrap().to_string(), "0a:58:0a:01:00:05");
    assert_eq!(got.alias.as_deref(), Some("container abc"));
    assert_eq!(got.mtu, 1280);
    assert!(got.up);
    let shown = a.ip(&["-o", "link", "show", "v0"]);
    assert!(
        shown.contains("master br-t") && shown.contains("mtu 1280"),
        "{shown}"
    );

    h.set_hairpin(v.index, true).unwrap();
    h.set_promisc(v.index, true).unwrap();
    h.set_allmulti(v.index, true).unwrap();
    h.set_txqlen(v.index, 500).unwrap();
    let got = h.link_by_index(v.index).unwrap();
    assert!(got.promisc && got.allmulti && got.txqlen == 500, "{got:?}");
    let shown = a.ip(&["-d", "-o", "link", "show", "v0"]);
    assert!(
        shown.contains("hairpin on") && shown.contains("PROMISC"),
        "{shown}"
    );
    h.set_promisc(v.index, false).unwrap();
    assert!(!h.link_by_index(v.index).unwrap().promisc);

    h.set_master(v.index, None).unwrap();
    assert_eq!(h.link_by_index(v.index).unwrap().master, None);

    // Renaming needs the link down.
    h.set_down(v.index).unwrap();
    assert!(!h.link_by_index(v.index).unwrap().up);
    h.rename(v.index, "v0-renamed").unwrap();
    assert_eq!(h.link_by_name("v0-renamed").unwrap().index, v.index);
    assert!(h.find_link("v0").unwrap().is_none());
    assert!(h.rename(v.index, "bad/name").unwrap_err().is_invalid());

    // Move the other end away.
    let peer = h.link_by_name("v1").unwrap();
    h.move_to_netns(peer.index, &nb).unwrap();
    assert!(h.find_link("v1").unwrap().is_none());
    assert!(nb.handle().unwrap().find_link("v1").unwrap().is_some());

    // Links listed; then delete.
    let names: Vec<String> = h.links().unwrap().into_iter().map(|l| l.name).collect();
    assert!(
        names.contains(&"lo".to_string()) && names.contains(&"br-t".to_string()),
        "{names:?}"
    );
    h.delete_link(br.index).unwrap();
    assert!(h.find_link("br-t").unwrap().is_none());
}

#[test]
fn missing_links_are_reported_as_not_found() {
    let a = TestNs::new("nla");
    let (_na, mut h) = open(&a);
    let err = h.link_by_name("nope0").unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "looking up link \"nope0\" in {}: No such device (os error 19)",
            a.path()
        )
    );
    assert!(h.link_by_index(99999).unwrap_err().is_not_found());
    assert!(h.delete_link(99999).unwrap_err().is_not_found());
    assert!(h.set_up(99999).unwrap_err().is_not_found());
    assert!(h.find_link("nope0").unwrap().is_none());
}

#[test]
fn addresses_v4_and_v6_with_nodad() {
    let a = TestNs::new("nla");
    let (_na, mut h) = open(&a);
    let mut new = NewLink::veth("va", "vb", None);
    new.up = true;
    let va = h.add_link(&new).unwrap();
    let vb = h.link_by_name("vb").unwrap();
    h.set_up(vb.index).unwrap();

    let v4 = NewAddr::new(va.index, "10.1.0.5/24".parse().unwrap());
    let v6 = NewAddr::new(va.index, "fd00:1::5/64".parse().unwrap()).nodad();
    let v6_dad = NewAddr::new(vb.index, "fd00:1::6/64".parse().unwrap());
    h.add_address(&v4).unwrap();
    h.add_address(&v6).unwrap();
    h.add_address(&v6_dad).unwrap();

    let listed = h.addresses(Some(va.index), None).unwrap();
    let got4 = listed.iter().find(|x| x.address == v4.address).unwrap();
    assert_eq!(got4.scope, scope::UNIVERSE);
    let got6 = listed.iter().find(|x| x.address == v6.address).unwrap();
    assert!(
        got6.is_nodad() && !got6.is_tentative(),
        "flags {:#x}",
        got6.flags
    );
    let shown = a.ip(&["-o", "addr", "show", "va"]);
    assert!(shown.contains("inet 10.1.0.5/24 brd 10.1.0.255"), "{shown}");
    let line = shown.lines().find(|l| l.contains("fd00:1::5/64")).unwrap();
    assert!(
        line.contains("nodad") && !line.contains("tentative"),
        "{line}"
    );

    // Without NODAD the kernel runs DAD first: the address starts tentative.
    let dad = h.addresses(Some(vb.index), Some(Family::V6)).unwrap();
    let got = dad.iter().find(|x| x.address == v6_dad.address).unwrap();
    assert!(got.is_tentative(), "flags {:#x}", got.flags);

    // Family filter, duplicates, removal.
    assert!(h
        .addresses(Some(va.index), Some(Family::V4))
        .unwrap()
        .iter()
        .all(|x| x.address.addr().is_ipv4()));
    assert!(h.add_address(&v4).unwrap_err().is_exists());
    h.del_address(va.index, &v4.address).unwrap();
    assert!(h
        .del_address(va.index, &v4.address)
        .unwrap_err()
        .is_not_found());
    assert!(!a.ip(&["-o", "addr", "show", "va"]).contains("10.1.0.5"));
}

#[test]
fn routes_with_gateway_metric_table_mtu_advmss() {
    let a = TestNs::new("nla");
    let (_na, mut h) = open(&a);
    let mut new = NewLink::veth("vr", "vr-peer", None);
    new.up = true;
    let link = h.add_link(&new).unwrap();
    h.add_address(&NewAddr::new(link.index, "10.2.0.5/24".parse().unwrap()))
        .unwrap();
    h.add_address(&NewAddr::new(link.index, "fd00:2::5/64".parse().unwrap()).nodad())
        .unwrap();

    let main = Route {
        gw: Some("10.2.0.1".parse().unwrap()),
        oif: Some(link.index),
        metric: Some(100),
        ..Route::new("10.9.0.0/16".parse().unwrap())
    };
    let in_table = Route {
        table: Some(1000),
        mtu: Some(1300),
        advmss: Some(1200),
        metric: Some(5),
        ..main.clone()
    };
    let link_scope = Route {
        oif: Some(link.index),
        scope: Some(scope::LINK),
        ..Route::new("10.3.0.0/24".parse().unwrap())
    };
    let v6 = Route {
        gw: Some("fd00:2::1".parse().unwrap()),
        oif: Some(link.index),
        metric: Some(50),
        ..Route::new("fd00:9::/48".parse().unwrap())
    };
    for r in [&main, &in_table, &link_scope, &v6] {
        h.add_route(r).unwrap();
    }

    let v4_main = h
        .routes(Some(Family::V4), Some(netlink::MAIN_TABLE))
        .unwrap();
    let got = v4_main.iter().find(|r| r.dst == main.dst).unwrap();
    assert_eq!(
        (got.gw, got.oif, got.metric),
        (main.gw, main.oif, Some(100))
    );
    let got = v4_main.iter().find(|r| r.dst == link_scope.dst).unwrap();
    assert_eq!(got.scope, Some(scope::LINK));

    let t = h.routes(Some(Family::V4), Some(1000)).unwrap();
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(
        (t[0].mtu, t[0].advmss, t[0].metric, t[0].table),
        (Some(1300), Some(1200), Some(5), Some(1000))
    );
    let shown = a.ip(&["route", "show", "table", "1000"]);
    assert!(
        shown.contains("10.9.0.0/16 via 10.2.0.1")
            && shown.contains("mtu 1300")
            && shown.contains("advmss 1200"),
        "{shown}"
    );

    let v6s = h.routes(Some(Family::V6), None).unwrap();
    let got = v6s.iter().find(|r| r.dst == v6.dst).unwrap();
    assert_eq!((got.gw, got.metric), (v6.gw, Some(50)));

    assert!(h.add_route(&main).unwrap_err().is_exists());
    let mut replaced = main.clone();
    replaced.gw = Some("10.2.0.2".parse().unwrap());
    h.replace_route(&replaced).unwrap();
    assert!(a
        .ip(&["route", "show", "10.9.0.0/16"])
        .contains("via 10.2.0.2"));

    for r in [&replaced, &in_table, &link_scope, &v6] {
        h.del_route(r).unwrap();
    }
    assert!(h.del_route(&main).unwrap_err().is_not_found());
    assert!(h.routes(Some(Family::V4), Some(1000)).unwrap().is_empty());
}

#[test]
fn a_batch_is_one_send_and_reports_the_failing_step() {
    let a = TestNs::new("nla");
    let (_na, mut h) = open(&a);
    let v = h.add_link(&NewLink::veth("vx", "vy", None)).unwrap();
    let mut batch = Batch::new();
    batch
        .set_mtu(v.index, 1450)
        .set_up(v.index)
        .add_address(&NewAddr::new(v.index, "10.4.0.2/24".parse().unwrap()));
    assert_eq!(batch.len(), 3);
    batch.commit(&mut h).unwrap();
    let got = h.link_by_index(v.index).unwrap();
    assert!(got.up && got.mtu == 1450);
    assert_eq!(
        h.addresses(Some(v.index), Some(Family::V4)).unwrap().len(),
        1
    );

    // The kernel carries on after a failing step; the error names that step.
    let mut batch = Batch::new();
    batch.set_mtu(99999, 1400).set_mtu(v.index, 1400);
    let err = batch.commit(&mut h).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("setting MTU of link 99999 to 1400"),
        "{err}"
    );
    assert_eq!(h.link_by_index(v.index).unwrap().mtu, 1400);
}

#[test]
fn the_guard_always_returns_to_the_original_namespace() {
    let a = TestNs::new("nla");
    let target = Netns::open(&a.path()).unwrap();
    let home = Netns::current().unwrap();
    assert!(!target.is_current().unwrap());

    let r: Result<(), netlink::Error> = target.run(|| {
        assert!(target.is_current().unwrap());
        // Inside, a plain handle sees the namespace's links only.
        let links = Handle::new()?.links()?;
        assert_eq!(links.len(), 1, "only lo: {links:?}");
        sysctl::get("net.no.such.key").map(|_| ())
    });
    assert!(r.unwrap_err().is_not_found());
    assert!(home.is_current().unwrap(), "back home after an error");

    {
        let _g = target.enter().unwrap();
        assert!(target.is_current().unwrap());
    }
    assert!(home.is_current().unwrap());

    // Failing to enter changes nothing.
    assert!(Netns::open("/run/netns/no-such-ns-here").is_err());
    assert!(home.is_current().unwrap());
}

#[test]
fn sysctls_inside_a_namespace_leave_the_host_alone() {
    let a = TestNs::new("nla");
    let ns = Netns::open(&a.path()).unwrap();
    let host_before = sysctl::get("net.ipv4.ip_forward").unwrap();
    ns.run(|| sysctl::set("net.ipv4.ip_forward", "1")).unwrap();
    assert_eq!(ns.run(|| sysctl::get("net.ipv4.ip_forward")).unwrap(), "1");
    assert_eq!(sysctl::get("net.ipv4.ip_forward").unwrap(), host_before);
    assert!(ns
        .run(|| sysctl::set("net/ipv4/../../kernel/hostname", "x"))
        .unwrap_err()
        .is_invalid());
}

#[test]
fn macvlan_created_directly_in_another_namespace() {
    let a = TestNs::new("nla");
    let b = TestNs::new("nlb");
    let (_na, mut ha) = open(&a);
    let (nb, mut hb) = open(&b);
    let parent = ha
        .add_link(&NewLink::veth("mvparent", "mvpeer", None))
        .unwrap();

    let mut new = NewLink::new(
        "mv0",
        LinkKind::Macvlan {
            parent: parent.index,
            mode: netlink::MacvlanMode::Bridge,
        },
    );
    new.netns = Some(&nb);
    new.mac = Some("0a:58:0a:05:00:02".parse().unwrap());
    let mv = ha.add_link(&new).unwrap();
    assert_eq!(mv.name, "mv0");
    assert_eq!(mv.kind.as_deref(), Some("macvlan"));
    assert_eq!(mv.mac.unwrap().to_string(), "0a:58:0a:05:00:02");
    assert_eq!(hb.link_by_name("mv0").unwrap().index, mv.index);
    assert!(ha.find_link("mv0").unwrap().is_none());
    assert!(b
        .ip(&["-d", "-o", "link", "show", "mv0"])
        .contains("macvlan mode bridge"));
}

#[test]
fn announcements_reach_the_neighbour() {
    let a = TestNs::new("nla");
    let b = TestNs::new("nlb");
    let (na, mut ha) = open(&a);
    let (nb, mut hb) = open(&b);
    let mut new = NewLink::veth("van", "vbn", Some(&nb));
    new.up = true;
    let va = ha.add_link(&new).unwrap();
    let vb = hb.link_by_name("vbn").unwrap();
    // b learns new IPv4 neighbours from gratuitous ARP; for IPv6 it holds a
    // stale entry with an old MAC, which the advertisement must override.
    nb.run(|| sysctl::set("net.ipv4.conf.vbn.arp_accept", "1"))
        .unwrap();
    hb.set_up(vb.index).unwrap();
    let v4: std::net::Ipv4Addr = "10.6.0.2".parse().unwrap();
    let v6: std::net::Ipv6Addr = "fd00:6::2".parse().unwrap();
    let old_mac = "02:00:00:00:00:09".parse().unwrap();
    hb.set_neighbour(vb.index, v6.into(), old_mac, false)
        .unwrap();
    ha.add_address(&NewAddr::new(va.index, "10.6.0.2/24".parse().unwrap()))
        .unwrap();
    ha.add_address(&NewAddr::new(va.index, "fd00:6::2/64".parse().unwrap()).nodad())
        .unwrap();
    hb.add_address(&NewAddr::new(vb.index, "10.6.0.1/24".parse().unwrap()))
        .unwrap();
    hb.add_address(&NewAddr::new(vb.index, "fd00:6::1/64".parse().unwrap()).nodad())
        .unwrap();

    let mac = va.mac.unwrap();
    let announce = || {
        na.run(|| {
            netlink::announce::send_gratuitous_arp(va.index, v4, mac)?;
            netlink::announce::send_unsolicited_na(va.index, v6, mac)
        })
        .unwrap()
    };

    // Delivery over a veth is handled in softirq, and until the kernel's link
    // watch has marked the pair's carrier up a frame may be dropped: look a
    // bounded number of times, announcing again now and then.
    let want4 = format!("10.6.0.2 dev vbn lladdr {mac}");
    let want6 = format!("fd00:6::2 dev vbn lladdr {mac}");
    let mut seen = String::new();
    for round in 0..50 {
        if round % 10 == 0 {
            announce();
        }
        seen = b.ip(&["neigh", "show"]);
        if seen.contains(&want4) && seen.contains(&want6) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(seen.contains(&want4) && seen.contains(&want6), "{seen}");
    let listed = hb.neighbours(Some(vb.index), Some(Family::V6)).unwrap();
    let entry = listed
        .iter()
        .find(|n| n.ip == std::net::IpAddr::V6(v6))
        .unwrap();
    assert_eq!(entry.mac, Some(mac));

    // Neighbour entries: permanent set, listed, removed.
    let ip = "10.6.0.9".parse().unwrap();
    hb.set_neighbour(vb.index, ip, "02:00:00:00:00:0a".parse().unwrap(), true)
        .unwrap();
    let listed = hb.neighbours(None, Some(Family::V4)).unwrap();
    let entry = listed.iter().find(|n| n.ip == ip).unwrap();
    assert_eq!(entry.state, netlink::nud::PERMANENT);
    assert!(b.ip(&["neigh", "show", "10.6.0.9"]).contains("PERMANENT"));
    hb.del_neighbour(vb.index, ip).unwrap();
    assert!(hb.del_neighbour(vb.index, ip).unwrap_err().is_not_found());

    // A tentative (or absent) source address cannot announce itself.
    let err = na
        .run(|| netlink::announce::send_unsolicited_na(va.index, "fd00:7::9".parse().unwrap(), mac))
        .unwrap_err();
    assert!(err.to_string().contains("fd00:7::9"), "{err}");
}

/// A bridge `br0` with port `p0` (peer `p1`) in a fresh namespace.
fn bridge_with_port(prefix: &str) -> (TestNs, Handle, u32, u32) {
    let a = TestNs::new(prefix);
    let (_na, mut h) = open(&a);
    let br = h.add_link(&NewLink::new("br0", LinkKind::Bridge)).unwrap();
    let mut port = NewLink::veth("p0", "p1", None);
    port.master = Some(br.index);
    let p = h.add_link(&port).unwrap();
    (a, h, br.index, p.index)
}

#[test]
fn bridge_port_hairpin_and_isolation() {
    let (a, mut h, br, p) = bridge_with_port("nli");
    assert_eq!(h.bridge_port(p).unwrap(), Some(BridgePort::default()));
    let peer = h.link_by_name("p1").unwrap();
    assert_eq!(h.bridge_port(peer.index).unwrap(), None, "not a port");
    assert_eq!(h.bridge_port(br).unwrap(), None, "the bridge itself");

    let mut b = Batch::new();
    b.set_isolated(p, true).set_hairpin(p, true);
    b.commit(&mut h).unwrap();
    let want = BridgePort {
        hairpin: true,
        isolated: true,
    };
    assert_eq!(h.bridge_port(p).unwrap(), Some(want));
    let shown = a.ip(&["-d", "link", "show", "p0"]);
    assert!(
        shown.contains("isolated on") && shown.contains("hairpin on"),
        "{shown}"
    );
    h.set_isolated(p, false).unwrap();
    assert!(!h.bridge_port(p).unwrap().unwrap().isolated);
}

#[test]
fn bridge_vlan_filtering_and_port_vlans() {
    let (a, mut h, br, p) = bridge_with_port("nlv");
    assert!(!h.vlan_filtering(br).unwrap());
    assert!(
        h.vlan_filtering(p).unwrap_err().is_not_found(),
        "not a bridge"
    );
    if let Err(e) = h.set_vlan_filtering(br, true) {
        // Kernels built without CONFIG_BRIDGE_VLAN_FILTERING refuse it.
        assert_eq!(e.errno(), Some(libc::EOPNOTSUPP), "{e}");
        eprintln!("skipped: this kernel has no bridge VLAN filtering ({e})");
        return;
    }
    assert!(h.vlan_filtering(br).unwrap());
    assert!(a
        .ip(&["-d", "link", "show", "br0"])
        .contains("vlan_filtering 1"));

    // A new port starts in the bridge's default VLAN 1; make it an access
    // port of VLAN 100 that also trunks 200 and 201.
    assert_eq!(h.bridge_vlans(p).unwrap(), vec![BridgeVlan::native(1)]);
    let mut b = Batch::new();
    b.del_bridge_vlan(p, 1)
        .add_bridge_vlan(p, BridgeVlan::native(100))
        .add_bridge_vlan(p, BridgeVlan::tagged(200))
        .add_bridge_vlan(p, BridgeVlan::tagged(201));
    b.commit(&mut h).unwrap();
    assert_eq!(
        h.bridge_vlans(p).unwrap(),
        vec![
            BridgeVlan::native(100),
            BridgeVlan::tagged(200),
            BridgeVlan::tagged(201)
        ]
    );
    let shown = std::process::Command::new("bridge")
        .args(["-n", &a.name, "vlan", "show", "dev", "p0"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("100 PVID Egress Untagged"), "{shown}");

    h.del_bridge_vlan(p, 200).unwrap();
    assert_eq!(h.bridge_vlans(p).unwrap().len(), 2);
    assert!(h.link_by_index(p).is_ok(), "a VLAN delete keeps the link");
    assert!(h
        .add_bridge_vlan(p, BridgeVlan::tagged(0))
        .unwrap_err()
        .is_invalid());
}

#[test]
fn ecmp_routes_may_share_a_destination() {
    let a = TestNs::new("nle");
    let (_na, mut h) = open(&a);
    let mut new = NewLink::veth("e0", "e1", None);
    new.up = true;
    let e = h.add_link(&new).unwrap();
    let peer = h.link_by_name("e1").unwrap();
    h.set_up(peer.index).unwrap();
    h.add_address(&NewAddr::new(e.index, "10.7.0.2/24".parse().unwrap()))
        .unwrap();
    // The same destination as the kernel's prefix route, through a gateway.
    let mut r = Route::new("10.7.0.0/24".parse().unwrap());
    r.gw = Some("10.7.0.1".parse().unwrap());
    r.oif = Some(e.index);
    assert!(h.add_route(&r).unwrap_err().is_exists());
    h.add_route_ecmp(&r).unwrap();
    assert!(h.add_route_ecmp(&r).unwrap_err().is_exists(), "identical");
    let shown = a.ip(&["route", "show", "10.7.0.0/24"]);
    assert!(shown.contains("via 10.7.0.1"), "{shown}");
}
