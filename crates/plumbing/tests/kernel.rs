//! The shared steps against the real kernel. Each test runs on a thread
//! that entered a "host" namespace made for it, as a plugin process would
//! run in the host; containers are other namespaces.

use cni::{CniResult, Command, Interface, IpConfig, NetConf, Request, Version};
use netlink::{Handle, Netns};
use plumbing::{check, iface, teardown, veth};
use testutil::Netns as TestNs;

/// Run `f` on a thread inside a fresh host namespace.
fn in_host(f: impl FnOnce(&TestNs) + Send) {
    let host = TestNs::new("ph");
    std::thread::scope(|s| {
        s.spawn(|| {
            let ns = Netns::open(&host.path()).unwrap();
            let _inside = ns.enter().unwrap();
            f(&host);
        })
        .join()
        .unwrap();
    });
}

fn ip(address: &str, gateway: &str) -> IpConfig {
    IpConfig {
        interface: Some(1),
        address: address.parse().unwrap(),
        gateway: Some(gateway.parse().unwrap()),
    }
}

fn request(ctr: &TestNs, prev: &CniResult) -> Request {
    let mut conf = serde_json::json!({"cniVersion": "1.1.0", "name": "n", "type": "x"});
    conf["prevResult"] = prev.to_json(Version::V1_1_0).unwrap();
    Request {
        command: Command::Check,
        container_id: "c".into(),
        netns: ctr.path(),
        ifname: "eth0".into(),
        args: String::new(),
        path: Vec::new(),
        stdin: Vec::new(),
        conf: NetConf::from_value(conf).unwrap(),
        version: Version::V1_1_0,
    }
}

#[test]
fn veth_configure_check_and_delete() {
    in_host(|host| {
        let ctr = TestNs::new("pc");
        let ns = Netns::open(&ctr.path()).unwrap();
        let mut h = Handle::new().unwrap();
        let mut c = ns.handle().unwrap();
        let opts = veth::Options {
            mtu: Some(1400),
            mac: Some("0a:58:0a:01:00:05".parse().unwrap()),
            master: None,
        };
        let pair = veth::create(&mut h, &mut c, &ns, "eth0", &opts).unwrap();
        // Both ends down: the plugin brings them up when it is ready.
        assert!(!pair.host.up && !pair.container.up);
        assert!(pair.host.name.starts_with("veth"));
        assert_eq!(pair.container.name, "eth0");
        assert_eq!(pair.container.mtu, 1400);
        assert_eq!(pair.container.mac.unwrap().to_string(), "0a:58:0a:01:00:05");
        assert_eq!(pair.container.parent_index, Some(pair.host.index));
        assert!(host.ip(&["link"]).contains(&pair.host.name));
        // One queue each way on both ends, as the kernel's active default.
        for shown in [
            ctr.ip(&["-d", "link", "show", "eth0"]),
            host.ip(&["-d", "link", "show", &pair.host.name]),
        ] {
            assert!(shown.contains("numtxqueues 1 numrxqueues 1"), "{shown}");
        }

        // The name is taken now: a clear error, nothing new made.
        let e = veth::create(&mut h, &mut c, &ns, "eth0", &opts).unwrap_err();
        assert!(e.msg.contains("already exists"), "{e}");
        assert_eq!(h.links().unwrap().len(), 2, "lo and the first host end");

        let ips = [
            ip("10.3.0.5/24", "10.3.0.1"),
            ip("fd00:3::5/64", "fd00:3::1"),
        ];
        let routes = [
            cni::Route::new("0.0.0.0/0".parse().unwrap(), None),
            cni::Route::new("::/0".parse().unwrap(), None),
        ];
        iface::apply(
            &ns,
            &mut c,
            &pair.container,
            &iface::Options::default(),
            &ips,
            &routes,
        )
        .unwrap();
        let shown = ctr.ip(&["addr", "show", "eth0"]);
        assert!(
            shown.contains("10.3.0.5/24") && shown.contains("fd00:3::5/64"),
            "{shown}"
        );
        let sysctl = |key: &str| ns.run(|| netlink::sysctl::get(key)).unwrap();
        assert_eq!(sysctl("net/ipv4/conf/eth0/arp_notify"), "1");
        assert_eq!(sysctl("net/ipv6/conf/eth0/accept_dad"), "0");
        // The configured address is never tentative. (The link-local one
        // leaves that state from a work queue a moment after the link
        // comes up, so it is not checked here.)
        let global = shown.lines().find(|l| l.contains("fd00:3::5/64"));
        assert!(
            global.is_some_and(|l| !l.contains("tentative")),
            "usable at once: {shown}"
        );
        assert!(ctr
            .ip(&["-6", "route"])
            .contains("default via fd00:3::1 dev eth0"));

        let result = CniResult {
            interfaces: vec![
                Interface {
                    name: pair.host.name.clone(),
                    ..Interface::default()
                },
                Interface {
                    name: "eth0".into(),
                    mac: "0a:58:0a:01:00:05".into(),
                    sandbox: ctr.path(),
                    ..Interface::default()
                },
            ],
            ips: ips.to_vec(),
            routes: routes.to_vec(),
            ..CniResult::default()
        };
        let req = request(&ctr, &result);
        let (index, link) = check::container(&ns, &mut c, &req, &result, "veth").unwrap();
        assert_eq!((index, link.index), (1, pair.container.index));
        ctr.ip(&["route", "del", "default"]);
        let e = check::container(&ns, &mut c, &req, &result, "veth").unwrap_err();
        assert_eq!(e.code, cni::code::CHECK_FAILED);
        assert!(e.msg.contains("0.0.0.0/0"), "{e}");

        assert!(teardown::delete_container_link(&ctr.path(), "eth0").unwrap());
        assert!(!teardown::delete_container_link(&ctr.path(), "eth0").unwrap());
        assert!(
            h.find_link(&pair.host.name).unwrap().is_none(),
            "the host end went too"
        );
        assert!(!teardown::delete_container_link("", "eth0").unwrap());
        assert!(!teardown::delete_container_link("/run/netns/gone-gone", "eth0").unwrap());
    });
}

#[test]
fn point_to_point_and_dad() {
    in_host(|_host| {
        let ctr = TestNs::new("pc");
        let ns = Netns::open(&ctr.path()).unwrap();
        let mut h = Handle::new().unwrap();
        let mut c = ns.handle().unwrap();
        let pair = veth::create(&mut h, &mut c, &ns, "eth0", &veth::Options::default()).unwrap();
        // DAD runs only once the link has its carrier: both ends up, the
        // host end first (as ptp does).
        veth::settle_host_end(&mut h, &pair).unwrap();
        h.set_up(pair.host.index).unwrap();
        let opts = iface::Options {
            dad: true,
            point_to_point: true,
        };
        let ips = [ip("fd00:4::5/64", "fd00:4::1")];
        iface::apply(&ns, &mut c, &pair.container, &opts, &ips, &[]).unwrap();
        // With DAD the address went through detection, and ADD waited for it.
        let shown = ctr.ip(&["-6", "addr", "show", "eth0"]);
        assert!(
            shown.contains("fd00:4::5/64") && !shown.contains("nodad"),
            "{shown}"
        );
        assert!(!shown.contains("tentative"), "{shown}");
        let routes = ctr.ip(&["-6", "route"]);
        assert!(
            routes.contains("fd00:4::/64 via fd00:4::1 dev eth0"),
            "{routes}"
        );
        assert!(
            !routes.contains("fd00:4::/64 dev eth0 proto kernel"),
            "{routes}"
        );
    });
}

#[test]
fn ipv4_only_writes_no_ipv6_settings_and_a_bridge_port_keeps_accept_ra() {
    in_host(|_host| {
        let ctr = TestNs::new("pc4");
        let ns = Netns::open(&ctr.path()).unwrap();
        let mut h = Handle::new().unwrap();
        let mut c = ns.handle().unwrap();
        let br = h
            .add_link(&netlink::NewLink::new("br4", netlink::LinkKind::Bridge))
            .unwrap();
        // Routed host end (ptp): router advertisements off.
        let routed = veth::create(&mut h, &mut c, &ns, "eth1", &veth::Options::default()).unwrap();
        // Bridge port: left as the kernel made it.
        let opts = veth::Options {
            master: Some(br.index),
            ..veth::Options::default()
        };
        let port = veth::create(&mut h, &mut c, &ns, "eth0", &opts).unwrap();
        // This thread is in the host namespace.
        let on_host = |key: String| netlink::sysctl::get(&key).unwrap();
        assert_eq!(
            on_host(format!("net/ipv6/conf/{}/accept_ra", routed.host.name)),
            "0"
        );
        assert_eq!(
            on_host(format!("net/ipv6/conf/{}/accept_ra", port.host.name)),
            "1"
        );

        let sysctl = |key: &str| ns.run(|| netlink::sysctl::get(key)).unwrap();
        let before =
            ["accept_dad", "keep_addr_on_down"].map(|k| sysctl(&format!("net/ipv6/conf/eth0/{k}")));
        let ips = [ip("10.4.0.5/24", "10.4.0.1")];
        iface::apply(
            &ns,
            &mut c,
            &port.container,
            &iface::Options::default(),
            &ips,
            &[],
        )
        .unwrap();
        assert!(ctr.ip(&["addr", "show", "eth0"]).contains("10.4.0.5/24"));
        assert_eq!(sysctl("net/ipv4/conf/eth0/arp_notify"), "1");
        let after =
            ["accept_dad", "keep_addr_on_down"].map(|k| sysctl(&format!("net/ipv6/conf/eth0/{k}")));
        assert_eq!(after, before, "an IPv4-only result changes no IPv6 setting");
    });
}
