//! The iptables backend, and removal of state the reference made with
//! iptables (iptables-nft and legacy), each test in its own namespace.

mod common;

use common::*;
use firewall::names::{ipt_chain, ipt_comment};
use firewall::{Attachment, Error, Instance};
use ipnet::IpNet;
use std::path::Path;

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

fn inst<'a>(network: &'a str, container_id: &'a str) -> Instance<'a> {
    Instance {
        network,
        container_id,
        ifname: "eth0",
    }
}

/// The `-A` and `:` lines of `<tool>-save -t nat`, without comments/dates.
fn nat(ns: &Netns, tool: &str) -> Vec<String> {
    sh(ns, &format!("{tool}-save -t nat"))
        .lines()
        .filter(|l| l.starts_with("-A") || l.starts_with(':'))
        .map(String::from)
        .collect()
}

/// The commands the reference (go-iptables, v1.1.1's SetupIPMasq) runs for
/// one address, with `iptables` being `bin`.
fn reference_setup(ns: &Netns, bin: &str, network: &str, cid: &str, addr: &str) {
    let chain = ipt_chain(network, cid);
    let c = ipt_comment(network, cid).replace('"', "\\\"");
    let multicast = if addr.contains(':') {
        "ff00::/8"
    } else {
        "224.0.0.0/4"
    };
    let ip = addr.split('/').next().unwrap();
    // AppendUnique: check first, append only if missing.
    let unique = |rule: String| {
        format!("{{ {bin} -t nat -C {rule} 2>/dev/null || {bin} -t nat -A {rule}; }}")
    };
    sh(
        ns,
        &format!(
            "{bin} -t nat -N {chain} 2>/dev/null; {} && {} && {}",
            unique(format!(
                "{chain} -d {addr} -j ACCEPT -m comment --comment \"{c}\""
            )),
            unique(format!(
                "{chain} ! -d {multicast} -j MASQUERADE -m comment --comment \"{c}\""
            )),
            unique(format!(
                "POSTROUTING -s {ip} -j {chain} -m comment --comment \"{c}\""
            )),
        ),
    );
}

/// The declarations of `CNI-` chains, sorted.
fn cni_chains(lines: &[String]) -> Vec<String> {
    let mut c: Vec<String> = lines
        .iter()
        .filter(|l| l.starts_with(":CNI-"))
        .cloned()
        .collect();
    c.sort();
    c
}

fn decls(chains: &[String]) -> Vec<String> {
    let mut d: Vec<String> = chains.iter().map(|c| format!(":{c} - [0:0]")).collect();
    d.sort();
    d
}

#[test]
fn add_writes_the_reference_chains() {
    let ours = Netns::new("fwi");
    let reference = Netns::new("fwi");
    in_ns(&ours, || {
        let m = firewall::masquerade(Some("iptables")).unwrap();
        m.add(
            &inst("mynet", "c1"),
            &nets(&["10.1.0.5/24", "fd00:1::5/64", "10.3.0.5/16"]),
        )
        .unwrap();
    });
    // In the reference's order: one address after the other.
    reference_setup(&reference, "iptables", "mynet", "c1", "10.1.0.5/24");
    reference_setup(&reference, "iptables", "mynet", "c1", "10.3.0.5/16");
    reference_setup(&reference, "ip6tables", "mynet", "c1", "fd00:1::5/64");
    assert_eq!(nat(&ours, "iptables"), nat(&reference, "iptables"));
    // Our CHECK accepts what the reference wrote.
    in_ns(&reference, || {
        let m = firewall::masquerade(Some("iptables")).unwrap();
        m.check(
            &inst("mynet", "c1"),
            &nets(&["10.1.0.5/24", "fd00:1::5/64", "10.3.0.5/16"]),
        )
        .unwrap();
    });
    assert_eq!(nat(&ours, "ip6tables"), nat(&reference, "ip6tables"));
    let v4 = nat(&ours, "iptables");
    let chain = ipt_chain("mynet", "c1");
    assert!(v4.contains(&format!(
        "-A POSTROUTING -s 10.1.0.5/32 -m comment --comment \"name: \\\"mynet\\\" id: \\\"c1\\\"\" -j {chain}"
    )), "{v4:#?}");
}

#[test]
fn readd_is_idempotent_and_check_sees_changes() {
    let ns = Netns::new("fwi");
    let who = inst("net1", "c1");
    in_ns(&ns, || {
        let m = firewall::masquerade(Some("iptables")).unwrap();
        m.add(&who, &nets(&["10.1.0.5/24"])).unwrap();
        m.add(&who, &nets(&["10.1.0.5/24"])).unwrap();
        m.check(&who, &nets(&["10.1.0.5/24"])).unwrap();
        // A new address replaces the old jump.
        m.add(&who, &nets(&["10.1.0.6/24"])).unwrap();
        m.check(&who, &nets(&["10.1.0.6/24"])).unwrap();
        assert!(matches!(
            m.check(&who, &nets(&["10.1.0.5/24"])),
            Err(Error::Missing(_))
        ));
    });
    let lines = nat(&ns, "iptables");
    let jumps: Vec<_> = lines
        .iter()
        .filter(|l| l.starts_with("-A POSTROUTING"))
        .collect();
    assert_eq!(jumps.len(), 1, "{lines:#?}");
    assert!(jumps[0].contains("10.1.0.6/32"));
    assert_eq!(lines.iter().filter(|l| l.contains("MASQUERADE")).count(), 1);
    let chain = ipt_chain("net1", "c1");
    sh(&ns, &format!("iptables -t nat -F {chain}"));
    in_ns(&ns, || {
        let m = firewall::masquerade(Some("iptables")).unwrap();
        let e = m.check(&who, &nets(&["10.1.0.6/24"])).unwrap_err();
        assert!(e.to_string().contains("MASQUERADE"), "{e}");
    });
}

#[test]
fn iptables_backend_del_and_gc() {
    let ns = Netns::new("fwi");
    in_ns(&ns, || {
        let m = firewall::masquerade(Some("iptables")).unwrap();
        for id in ["a", "b", "c"] {
            m.add(&inst("net1", id), &nets(&["10.1.0.5/24", "fd00::5/64"]))
                .unwrap();
        }
        m.add(&inst("net2", "d"), &nets(&["10.2.0.5/24"])).unwrap();
        m.del(&inst("net1", "a")).unwrap();
        m.del(&inst("net1", "a")).unwrap();
        let valid = [Attachment {
            container_id: "b".into(),
            ifname: "eth0".into(),
        }];
        m.gc("net1", &valid).unwrap();
    });
    let v4 = nat(&ns, "iptables");
    assert_eq!(
        cni_chains(&v4),
        decls(&[ipt_chain("net1", "b"), ipt_chain("net2", "d")])
    );
    assert_eq!(
        cni_chains(&nat(&ns, "ip6tables")),
        [format!(":{} - [0:0]", ipt_chain("net1", "b"))]
    );
    assert_eq!(
        v4.iter()
            .filter(|l| l.starts_with("-A POSTROUTING"))
            .count(),
        2
    );
}

#[test]
fn native_del_removes_reference_iptables_nft_chains() {
    let ns = Netns::new("fwi");
    reference_setup(&ns, "iptables", "net1", "ref1", "10.1.0.2/24");
    reference_setup(&ns, "ip6tables", "net1", "ref1", "fd00:1::2/64");
    reference_setup(&ns, "iptables", "net1", "ref2", "10.1.0.3/24");
    reference_setup(&ns, "iptables", "net1", "ref3", "10.1.0.4/24");
    reference_setup(&ns, "iptables", "net2", "ref4", "10.2.0.4/24");
    // An unrelated chain with the same prefix must survive.
    sh(
        &ns,
        "iptables -t nat -N CNI-HOSTPORT-DNAT && iptables -t nat -A PREROUTING -j CNI-HOSTPORT-DNAT",
    );
    in_ns(&ns, || {
        let m = firewall::masquerade(Some("nftables")).unwrap();
        m.del(&inst("net1", "ref1")).unwrap();
        m.del(&inst("net1", "ref1")).unwrap();
        let valid = [Attachment {
            container_id: "ref2".into(),
            ifname: "eth0".into(),
        }];
        m.gc("net1", &valid).unwrap();
    });
    let v4 = nat(&ns, "iptables");
    assert_eq!(
        cni_chains(&v4),
        decls(&[
            "CNI-HOSTPORT-DNAT".into(),
            ipt_chain("net1", "ref2"),
            ipt_chain("net2", "ref4"),
        ])
    );
    assert!(cni_chains(&nat(&ns, "ip6tables")).is_empty());
    let jumps: Vec<_> = v4.iter().filter(|l| l.contains(" -j CNI-")).collect();
    assert_eq!(jumps.len(), 3, "{v4:#?}");
    // iptables-nft can still read and change its table after our edits.
    sh(&ns, "iptables -t nat -A POSTROUTING -s 10.9.0.1 -j ACCEPT");
}

fn legacy_available() -> bool {
    Path::new("/usr/sbin/iptables-legacy").exists()
}

#[test]
fn legacy_iptables_state_is_removed() {
    if !legacy_available() {
        eprintln!("skipped: iptables-legacy is not installed");
        return;
    }
    let ns = Netns::new("fwi");
    reference_setup(&ns, "iptables-legacy", "net1", "old1", "10.1.0.2/24");
    reference_setup(&ns, "iptables-legacy", "net1", "old2", "10.1.0.3/24");
    reference_setup(&ns, "ip6tables-legacy", "net1", "old1", "fd00::2/64");
    reference_setup(&ns, "iptables-legacy", "net2", "old3", "10.2.0.3/24");
    in_ns(&ns, || {
        let m = firewall::masquerade(None).unwrap();
        m.del(&inst("net1", "old1")).unwrap();
        m.gc("net2", &[]).unwrap();
    });
    assert_eq!(
        cni_chains(&nat(&ns, "iptables-legacy")),
        [format!(":{} - [0:0]", ipt_chain("net1", "old2"))]
    );
    assert!(cni_chains(&nat(&ns, "ip6tables-legacy")).is_empty());
}

#[test]
fn del_does_not_instantiate_legacy_tables() {
    let ns = Netns::new("fwi");
    in_ns(&ns, || {
        firewall::masquerade(None)
            .unwrap()
            .del(&inst("n", "c"))
            .unwrap()
    });
    assert_eq!(sh(&ns, "cat /proc/net/ip_tables_names"), "");
    assert_eq!(sh(&ns, "cat /proc/net/ip6_tables_names"), "");
}

/// The reference bridge plugin with ipMasq, run in a namespace standing in for
/// the host. Its own DEL leaks the chain once the container's netns is gone;
/// ours removes it.
#[test]
fn reference_bridge_leftovers_are_removed_after_netns_is_gone() {
    let Some(refdir) = testutil::reference_dir() else {
        eprintln!("skipped: reference plugins not installed");
        return;
    };
    let host = Netns::new("fwh");
    let container = Netns::new("fwc");
    let data = testutil::TempDir::new("fw-ipam");
    let conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "refnet",
        "type": "bridge",
        "bridge": "cnifw0",
        "isGateway": true,
        "ipMasq": true,
        "ipam": {
            "type": "host-local",
            "subnet": "10.77.0.0/24",
            "dataDir": data.path.display().to_string(),
        }
    })
    .to_string();
    let bridge = refdir.join("bridge");
    let call = |cmd: &str, netns: &str| {
        testutil::Call::new(&bridge, cmd)
            .attach("refcid", netns, "eth0")
            .run(&conf)
    };
    let chain = ipt_chain("refnet", "refcid");
    let added = in_ns(&host, || call("ADD", &container.path()));
    added.ok();
    assert!(cni_chains(&nat(&host, "iptables"))
        .iter()
        .any(|l| l.contains(&chain)));

    let gone = container.path();
    drop(container);
    let out = in_ns(&host, || call("DEL", &gone));
    assert_eq!(out.code, 0, "reference DEL: {}{}", out.stdout, out.stderr);
    assert!(
        cni_chains(&nat(&host, "iptables"))
            .iter()
            .any(|l| l.contains(&chain)),
        "the reference is expected to leak its chain here"
    );

    in_ns(&host, || {
        firewall::masquerade(None)
            .unwrap()
            .del(&Instance {
                network: "refnet",
                container_id: "refcid",
                ifname: "eth0",
            })
            .unwrap()
    });
    let after = nat(&host, "iptables");
    assert!(cni_chains(&after).is_empty(), "{after:#?}");
    assert!(!after.iter().any(|l| l.contains(&chain)), "{after:#?}");
}
