//! The ptp plugin as a runtime drives it: the built binary runs inside a
//! "host" namespace made by the test, containers are other namespaces,
//! IPAM is our host-local with a temp data dir.

#[path = "../../bridge/tests/common/mod.rs"]
mod common;

use common::*;
use serde_json::{json, Value};
use testutil::Netns;

const NET: &str = "ptptest";

fn conf(bed: &Bed, version: &str, extra: Value) -> Value {
    let ipam = host_local(
        &bed.data,
        json!([[{"subnet": "10.40.0.0/24"}], [{"subnet": "fd00:40::/64"}]]),
        json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]),
    );
    netconf(version, NET, "ptp", merge(json!({"ipam": ipam}), extra))
}

#[test]
fn add_check_del_in_every_version() {
    for version in [
        "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
    ] {
        let bed = Bed::new("ptp");
        let ctr = Netns::new("c");
        let legacy = version < "0.3.0";
        let mut c = conf(&bed, version, json!({"mtu": 1400}));
        if legacy {
            c["ipam"]["ranges"] = json!([[{"subnet": "10.40.0.0/24"}]]);
            c["ipam"]["routes"] = json!([{"dst": "0.0.0.0/0"}]);
        }
        let r = bed.add("ctr1", &ctr, &c);
        assert_eq!(r["cniVersion"], version);
        if legacy {
            assert_eq!(r["ip4"]["ip"], "10.40.0.2/24", "{version}: {r}");
            assert_eq!(r["ip4"]["gateway"], "10.40.0.1");
        } else {
            let ifs = r["interfaces"].as_array().unwrap();
            assert_eq!(ifs.len(), 2, "{r}");
            assert!(ifs[0]["name"].as_str().unwrap().starts_with("veth"));
            assert!(ifs[0].get("sandbox").is_none());
            assert_eq!(ifs[1]["name"], "eth0");
            assert_eq!(ifs[1]["sandbox"], ctr.path());
            let ips = r["ips"].as_array().unwrap();
            assert_eq!(ips[1]["address"], "fd00:40::2/64");
            assert!(ips.iter().all(|i| i["interface"] == 1), "{r}");
            assert_eq!(r["routes"], json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]));
        }
        // Container: addresses without prefix routes, gateway on the link,
        // subnet and default through the gateway.
        let routes = ctr.ip(&["route"]);
        for want in [
            "default via 10.40.0.1 dev eth0",
            "10.40.0.0/24 via 10.40.0.1 dev eth0 src 10.40.0.2",
            "10.40.0.1 dev eth0 scope link src 10.40.0.2",
        ] {
            assert!(routes.contains(want), "{version}: {want} in {routes}");
        }
        assert!(!routes.contains("proto kernel"), "{routes}");
        assert!(ctr.ip(&["link", "show", "eth0"]).contains("mtu 1400"));
        // Host end: the gateway as /32 and a host route to the container.
        let host_end = bed.links("veth");
        assert_eq!(host_end.len(), 1);
        assert!(cidrs(&bed.host, &host_end[0]).contains(&"10.40.0.1/32".to_string()));
        let host_routes = bed.host.ip(&["route"]);
        assert!(
            host_routes.contains(&format!("10.40.0.2 dev {} scope host", host_end[0])),
            "{host_routes}"
        );
        assert_eq!(sysctl(&bed.host, "net/ipv4/ip_forward"), "1");
        if !legacy {
            assert_eq!(sysctl(&bed.host, "net/ipv6/conf/all/forwarding"), "1");
        }

        if version >= "0.4.0" {
            bed.with_prev("CHECK", "ctr1", &ctr, &c, &r).ok();
        }
        bed.with_prev("DEL", "ctr1", &ctr, &c, &r).ok();
        assert!(bed.links("veth").is_empty() && links(&ctr, "veth").is_empty());
        assert!(bed.leases(NET).is_empty());
        assert!(!bed.host.ip(&["route"]).contains("10.40.0.2"));
        bed.with_prev("DEL", "ctr1", &ctr, &c, &r).ok();
    }
}

#[test]
fn containers_reach_each_other_through_the_host_at_once() {
    let bed = Bed::new("ptp");
    let c = conf(&bed, "1.0.0", json!({}));
    let (a, b) = (Netns::new("c"), Netns::new("c"));
    bed.add("a", &a, &c);
    assert!(ping(&a, "10.40.0.1"), "container → gateway (IPv4)");
    assert!(ping(&a, "fd00:40::1"), "container → gateway (IPv6)");
    bed.add("b", &b, &c);
    assert!(ping(&b, "10.40.0.2"), "container → host → container (IPv4)");
    assert!(
        ping(&b, "fd00:40::2"),
        "container → host → container (IPv6)"
    );
    assert!(!a.ip(&["-6", "addr"]).contains("tentative"));
}

#[test]
fn check_notices_missing_routes_addresses_and_host_end() {
    let bed = Bed::new("ptp");
    let ctr = Netns::new("c");
    let c = conf(&bed, "1.1.0", json!({"ipMasq": true}));
    let r = bed.add("ctr", &ctr, &c);
    bed.with_prev("CHECK", "ctr", &ctr, &c, &r).ok();

    ctr.ip(&["route", "del", "10.40.0.0/24"]);
    let e = bed.with_prev("CHECK", "ctr", &ctr, &c, &r).err(103);
    assert!(e["msg"].as_str().unwrap().contains("10.40.0.0/24"), "{e}");
    ctr.ip(&[
        "route",
        "add",
        "10.40.0.0/24",
        "via",
        "10.40.0.1",
        "dev",
        "eth0",
        "src",
        "10.40.0.2",
    ]);
    bed.with_prev("CHECK", "ctr", &ctr, &c, &r).ok();

    let host_end = bed.links("veth")[0].clone();
    bed.host
        .ip(&["addr", "del", "10.40.0.1/32", "dev", &host_end]);
    let e = bed.with_prev("CHECK", "ctr", &ctr, &c, &r).err(103);
    assert!(e["msg"].as_str().unwrap().contains("10.40.0.1/32"), "{e}");
    bed.host
        .ip(&["addr", "add", "10.40.0.1/32", "dev", &host_end]);
    bed.host.ip(&[
        "route",
        "replace",
        "10.40.0.2/32",
        "dev",
        &host_end,
        "scope",
        "host",
    ]);
    bed.with_prev("CHECK", "ctr", &ctr, &c, &r).ok();

    // The masquerade rules are part of what ADD made.
    bed.host.exec_ok(&[
        "nft",
        "flush",
        "chain",
        "inet",
        "cni_plugins_masquerade",
        "masq_checks",
    ]);
    let e = bed.with_prev("CHECK", "ctr", &ctr, &c, &r).err(103);
    assert!(e["msg"].as_str().unwrap().contains("masquerade"), "{e}");
}

#[test]
fn bad_input_and_half_way_failures_leave_nothing() {
    let bed = Bed::new("ptp");
    let ctr = Netns::new("c");
    for (extra, words) in [
        (json!({"mtu": 5}), "mtu"),
        (
            json!({"ipMasq": true, "ipMasqBackend": "pf"}),
            "ipMasqBackend",
        ),
    ] {
        let e = bed
            .call("ADD", "x", &ctr.path(), "eth0", &conf(&bed, "1.0.0", extra))
            .err(7);
        assert!(e["msg"].as_str().unwrap().contains(words), "{e}");
    }
    let no_ipam = netconf("1.0.0", NET, "ptp", json!({}));
    bed.call("ADD", "x", &ctr.path(), "eth0", &no_ipam).err(7);
    bed.call(
        "ADD",
        "x",
        "/run/netns/not-there-at-all",
        "eth0",
        &conf(&bed, "1.0.0", json!({})),
    )
    .err(100);
    ctr.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "taken",
    ]);
    let e = bed
        .call(
            "ADD",
            "x",
            &ctr.path(),
            "eth0",
            &conf(&bed, "1.0.0", json!({})),
        )
        .err(100);
    assert!(e["msg"].as_str().unwrap().contains("already exists"), "{e}");
    assert!(bed.links("veth").is_empty() && bed.leases(NET).is_empty());

    // A route the kernel refuses, after IPAM and the veth.
    let ctr = Netns::new("c");
    let mut c = conf(&bed, "1.0.0", json!({"ipMasq": true}));
    c["ipam"]["routes"] = json!([{"dst": "10.90.0.0/16", "gw": "192.168.5.5"}]);
    bed.call("ADD", "x", &ctr.path(), "eth0", &c).err(100);
    assert!(bed.links("veth").is_empty() && links(&ctr, "veth").is_empty());
    assert!(bed.leases(NET).is_empty());
    assert!(!bed.ruleset().contains("10.40.0."));
}

#[test]
fn del_without_namespace_removes_lease_and_masquerade_and_gc_cleans_stale() {
    let bed = Bed::new("ptp");
    let c = conf(&bed, "1.1.0", json!({"ipMasq": true}));
    let ctr = Netns::new("c");
    let path = ctr.path();
    bed.add("gone", &ctr, &c);
    assert!(bed.ruleset().contains("ip saddr 10.40.0.2"));
    drop(ctr);
    bed.call("DEL", "gone", &path, "eth0", &c).ok();
    assert!(bed.leases(NET).is_empty());
    assert!(!bed.ruleset().contains("10.40.0.2"));
    bed.call("DEL", "gone", "", "eth0", &c).ok();

    let (a, b) = (Netns::new("c"), Netns::new("c"));
    bed.add("keep", &a, &c);
    bed.add("stale", &b, &c);
    let mut gc = c.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    bed.invoke("GC").run(&gc.to_string()).ok();
    let rules = bed.ruleset();
    assert!(rules.contains("ip saddr 10.40.0.3"), "{rules}");
    assert!(!rules.contains("10.40.0.4"), "{rules}");
    assert_eq!(bed.leases(NET), ["10.40.0.3", "fd00:40::3"]);
    bed.invoke("STATUS").run(&c.to_string()).ok();
}

#[test]
fn parallel_adds_and_dels_leave_nothing() {
    let bed = Bed::new("ptp");
    let c = conf(&bed, "1.0.0", json!({"ipMasq": true}));
    let ctrs: Vec<Netns> = (0..64).map(|_| Netns::new("p")).collect();
    let results = bed.add_parallel(&ctrs, &c);
    let mut addrs: Vec<&str> = results
        .iter()
        .map(|r| r["ips"][0]["address"].as_str().unwrap())
        .collect();
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 64);
    assert_eq!(bed.links("veth").len(), 64);
    bed.del_parallel(&ctrs, &c);
    assert!(bed.links("veth").is_empty());
    assert!(bed.leases(NET).is_empty());
    assert!(!bed.ruleset().contains("saddr 10.40.0."));
    assert!(!bed.host.ip(&["route"]).contains("10.40.0."));
}

#[test]
fn dns_key_overrides_what_ipam_returns() {
    let bed = Bed::new("ptp");
    let ctr = Netns::new("c");
    let c = conf(
        &bed,
        "1.0.0",
        json!({"dns": {"nameservers": ["10.40.0.53"], "search": ["example.test"]}}),
    );
    let r = bed.add("dns", &ctr, &c);
    assert_eq!(
        r["dns"],
        json!({"nameservers": ["10.40.0.53"], "search": ["example.test"]})
    );
}

#[test]
fn the_example_conflist_works() {
    let bed = Bed::new("ptp");
    let ctr = Netns::new("c");
    let c = testdata_plugin("ptp.conflist", &bed.data);
    let r = bed.add("example", &ctr, &c);
    assert_eq!(r["dns"]["nameservers"], json!(["10.90.0.1"]));
    assert!(ping(&ctr, "10.90.0.1"));
    bed.with_prev("CHECK", "example", &ctr, &c, &r).ok();
    bed.with_prev("DEL", "example", &ctr, &c, &r).ok();
    assert!(bed.leases("ptp-example").is_empty());
}
