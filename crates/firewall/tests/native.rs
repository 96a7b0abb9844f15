//! The native nf_tables backend against the kernel, each test in its own
//! network namespace.

mod common;

use common::*;
use firewall::names::{nft_comment, NFT_TABLE};
use firewall::{Attachment, Error, Instance};
use ipnet::IpNet;

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

fn inst<'a>(network: &'a str, container_id: &'a str, ifname: &'a str) -> Instance<'a> {
    Instance {
        network,
        container_id,
        ifname,
    }
}

/// The comments on the rules of masq_checks, in order.
fn masq_comments(ns: &Netns) -> Vec<String> {
    let items = ruleset(ns);
    rules_of(&items, "inet", NFT_TABLE, "masq_checks")
        .iter()
        .map(|r| r["comment"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn comment(network: &str, ifname: &str, cid: &str) -> String {
    String::from_utf8(nft_comment(network, ifname, cid)).unwrap()
}

/// What the reference's nftables backend (knftables) feeds `nft -f` for one
/// ADD; the same text is used to stand in for reference-created state.
fn reference_script(network: &str, ifname: &str, cid: &str, addrs: &[(&str, &str)]) -> String {
    let mut s = String::from(
        "add table inet cni_plugins_masquerade { comment \"Masquerading for plugins from github.com/containernetworking/plugins\" ; }\n\
         add chain inet cni_plugins_masquerade masq_checks { comment \"Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet\" ; }\n\
         add chain inet cni_plugins_masquerade postrouting { type nat hook postrouting priority srcnat ; }\n\
         flush chain inet cni_plugins_masquerade postrouting\n\
         add rule inet cni_plugins_masquerade postrouting ip daddr == 224.0.0.0/4  return\n\
         add rule inet cni_plugins_masquerade postrouting ip6 daddr == ff00::/8  return\n\
         add rule inet cni_plugins_masquerade postrouting goto masq_checks\n",
    );
    for (ip, subnet) in addrs {
        let fam = if ip.contains(':') { "ip6" } else { "ip" };
        s.push_str(&format!(
            "add rule inet cni_plugins_masquerade masq_checks {fam} saddr == {ip} {fam} daddr != {subnet} masquerade comment \"{}\"\n",
            comment(network, ifname, cid)
        ));
    }
    s
}

fn nft_apply(ns: &Netns, script: &str) {
    let path = std::env::temp_dir().join(testutil::unique("fw-nft-"));
    std::fs::write(&path, script).unwrap();
    sh(ns, &format!("nft -f {}", path.display()));
    let _ = std::fs::remove_file(path);
}

/// `nft list ruleset` without handles: shows table and chain comments too,
/// which the JSON of nft 1.0.6 leaves out.
fn listing(ns: &Netns) -> String {
    sh(ns, "nft list ruleset")
}

#[test]
fn add_writes_the_reference_ruleset() {
    let ours = Netns::new("fwn");
    let reference = Netns::new("fwn");
    let addrs = nets(&["10.1.0.5/24", "fd00:1::5/64", "10.2.0.9/21"]);
    in_ns(&ours, || {
        let m = firewall::masquerade(Some("nftables")).unwrap();
        m.add(&inst("mynet", "c1", "eth0"), &addrs).unwrap();
    });
    nft_apply(
        &reference,
        &reference_script(
            "mynet",
            "eth0",
            "c1",
            &[
                ("10.1.0.5", "10.1.0.0/24"),
                ("fd00:1::5", "fd00:1::/64"),
                ("10.2.0.9", "10.2.0.0/21"),
            ],
        ),
    );
    assert_eq!(ruleset(&ours), ruleset(&reference));
    assert_eq!(listing(&ours), listing(&reference));
    // And the kernel reads back exactly what we meant.
    in_ns(&ours, || {
        let m = firewall::masquerade(Some("nftables")).unwrap();
        m.check(&inst("mynet", "c1", "eth0"), &addrs).unwrap();
    });
}

#[test]
fn del_removes_exactly_one_attachment_and_is_idempotent() {
    let ns = Netns::new("fwn");
    in_ns(&ns, || {
        let m = firewall::masquerade(None).unwrap();
        m.add(
            &inst("net1", "c1", "eth0"),
            &nets(&["10.1.0.2/24", "fd00:1::2/64"]),
        )
        .unwrap();
        m.add(&inst("net1", "c1", "net1"), &nets(&["10.3.0.2/24"]))
            .unwrap();
        m.add(&inst("net1", "c2", "eth0"), &nets(&["10.1.0.3/24"]))
            .unwrap();
        m.add(&inst("net2", "c1", "eth0"), &nets(&["10.4.0.2/24"]))
            .unwrap();
    });
    assert_eq!(masq_comments(&ns).len(), 5);
    in_ns(&ns, || {
        let m = firewall::masquerade(None).unwrap();
        // DEL gets no addresses: it finds the rules by their comment.
        m.del(&inst("net1", "c1", "eth0")).unwrap();
        m.del(&inst("net1", "c1", "eth0")).unwrap();
        m.del(&inst("net9", "nothing", "eth0")).unwrap();
    });
    assert_eq!(
        masq_comments(&ns),
        [
            comment("net1", "net1", "c1"),
            comment("net1", "eth0", "c2"),
            comment("net2", "eth0", "c1"),
        ]
    );
}

#[test]
fn del_on_a_namespace_without_any_state_succeeds() {
    let ns = Netns::new("fwn");
    in_ns(&ns, || {
        let m = firewall::masquerade(Some("nftables")).unwrap();
        m.del(&inst("net1", "c1", "eth0")).unwrap();
        m.gc("net1", &[]).unwrap();
    });
    assert!(ruleset(&ns).is_empty(), "DEL must not create anything");
}

#[test]
fn readd_without_del_adds_beside_and_del_removes_all() {
    // ADD does not dump every container's rules to look for old ones.
    let ns = Netns::new("fwn");
    in_ns(&ns, || {
        let m = firewall::masquerade(None).unwrap();
        let who = inst("net1", "c1", "eth0");
        m.add(&who, &nets(&["10.1.0.2/24", "fd00:1::2/64"]))
            .unwrap();
        m.add(&who, &nets(&["10.1.0.7/24"])).unwrap();
        m.check(&who, &nets(&["10.1.0.7/24"])).unwrap();
    });
    let items = ruleset(&ns);
    assert_eq!(rules_of(&items, "inet", NFT_TABLE, "masq_checks").len(), 3);
    // postrouting is rewritten, not appended to.
    assert_eq!(rules_of(&items, "inet", NFT_TABLE, "postrouting").len(), 3);
    in_ns(&ns, || {
        firewall::masquerade(None)
            .unwrap()
            .del(&inst("net1", "c1", "eth0"))
            .unwrap()
    });
    let items = ruleset(&ns);
    assert!(rules_of(&items, "inet", NFT_TABLE, "masq_checks").is_empty());
}

/// The postrouting rules with their handles, as `nft -a` shows them.
fn postrouting_with_handles(ns: &Netns) -> String {
    sh(
        ns,
        "nft -a list chain inet cni_plugins_masquerade postrouting",
    )
}

#[test]
fn add_leaves_a_correct_layout_alone_and_repairs_a_changed_one() {
    let ns = Netns::new("fwn");
    let add = |cid: &str, addr: &str| {
        in_ns(&ns, || {
            let m = firewall::masquerade(Some("nftables")).unwrap();
            let who = inst("net1", cid, "eth0");
            m.add(&who, &nets(&[addr])).unwrap();
            m.check(&who, &nets(&[addr])).unwrap();
        })
    };
    add("c1", "10.1.0.2/24");
    let before = postrouting_with_handles(&ns);
    // In place: the next ADD only appends its rule (same handles).
    add("c2", "10.1.0.3/24");
    assert_eq!(postrouting_with_handles(&ns), before);
    assert_eq!(masq_comments(&ns).len(), 2);

    // An extra rule, a missing rule, or no chain at all: rewritten as the
    // reference rewrites it.
    for tamper in [
        "nft add rule inet cni_plugins_masquerade postrouting counter",
        "nft flush chain inet cni_plugins_masquerade postrouting",
        "nft delete table inet cni_plugins_masquerade",
    ] {
        sh(&ns, tamper);
        add("c3", "10.1.0.4/24");
        let items = ruleset(&ns);
        let post = rules_of(&items, "inet", NFT_TABLE, "postrouting");
        assert_eq!(post.len(), 3, "after {tamper:?}: {post:?}");
        assert!(
            post[2]["expr"][0]["goto"]["target"] == "masq_checks",
            "{post:?}"
        );
    }
}

#[test]
fn check_notices_a_removed_rule() {
    let ns = Netns::new("fwn");
    let who = inst("net1", "c1", "eth0");
    let addrs = nets(&["10.1.0.2/24"]);
    in_ns(&ns, || {
        let m = firewall::masquerade(None).unwrap();
        m.add(&who, &addrs).unwrap();
        m.check(&who, &addrs).unwrap();
    });
    sh(
        &ns,
        "nft flush chain inet cni_plugins_masquerade masq_checks",
    );
    in_ns(&ns, || {
        let m = firewall::masquerade(None).unwrap();
        let e = m.check(&who, &addrs).unwrap_err();
        assert!(e.to_string().contains("10.1.0.2"), "{e}");
        assert_eq!(cni::Error::from(e).code, cni::code::CHECK_FAILED);
    });
    sh(
        &ns,
        "nft flush chain inet cni_plugins_masquerade postrouting",
    );
    in_ns(&ns, || {
        let m = firewall::masquerade(None).unwrap();
        assert!(matches!(m.check(&who, &addrs), Err(Error::Missing(_))));
    });
}

#[test]
fn gc_keeps_valid_attachments_and_other_networks() {
    let ns = Netns::new("fwn");
    in_ns(&ns, || {
        let m = firewall::masquerade(None).unwrap();
        m.add(&inst("net1", "a", "eth0"), &nets(&["10.1.0.2/24"]))
            .unwrap();
        m.add(&inst("net1", "b", "eth0"), &nets(&["10.1.0.3/24"]))
            .unwrap();
        m.add(&inst("net1", "a", "eth1"), &nets(&["10.1.0.4/24"]))
            .unwrap();
        m.add(&inst("net2", "c", "eth0"), &nets(&["10.2.0.2/24"]))
            .unwrap();
        let valid = [Attachment {
            container_id: "a".into(),
            ifname: "eth0".into(),
        }];
        m.gc("net1", &valid).unwrap();
    });
    assert_eq!(
        masq_comments(&ns),
        [comment("net1", "eth0", "a"), comment("net2", "eth0", "c")]
    );
    in_ns(&ns, || {
        firewall::masquerade(None).unwrap().gc("net1", &[]).unwrap()
    });
    assert_eq!(masq_comments(&ns), [comment("net2", "eth0", "c")]);
}

#[test]
fn gc_removes_many_stale_rules_in_rounds() {
    // More than one transaction's worth (1000) of stale rules.
    let ns = Netns::new("fwn");
    let mut script = reference_script("big", "eth0", "keep", &[("10.9.0.1", "10.9.0.0/16")]);
    for i in 0..1100u32 {
        script.push_str(&format!(
            "add rule inet cni_plugins_masquerade masq_checks ip saddr == 10.9.{}.{} ip daddr != 10.9.0.0/16 masquerade comment \"{}\"\n",
            i / 250,
            i % 250 + 2,
            comment("big", "eth0", &format!("c{i}"))
        ));
    }
    nft_apply(&ns, &script);
    assert_eq!(masq_comments(&ns).len(), 1101);
    in_ns(&ns, || {
        let valid = [Attachment {
            container_id: "keep".into(),
            ifname: "eth0".into(),
        }];
        firewall::masquerade(None)
            .unwrap()
            .gc("big", &valid)
            .unwrap();
    });
    assert_eq!(masq_comments(&ns), [comment("big", "eth0", "keep")]);
}

#[test]
fn reference_nftables_state_is_removed_and_ours_is_readable_by_it() {
    let ns = Netns::new("fwn");
    nft_apply(
        &ns,
        &reference_script("net1", "eth0", "ref1", &[("10.1.0.2", "10.1.0.0/24")]),
    );
    nft_apply(
        &ns,
        &reference_script("net1", "eth0", "ref2", &[("10.1.0.3", "10.1.0.0/24")]),
    );
    in_ns(&ns, || {
        let m = firewall::masquerade(None).unwrap();
        // Our CHECK accepts the reference's rules, our ADD joins its table.
        m.check(&inst("net1", "ref1", "eth0"), &nets(&["10.1.0.2/24"]))
            .unwrap();
        m.add(&inst("net1", "ours", "eth0"), &nets(&["10.1.0.4/24"]))
            .unwrap();
        m.del(&inst("net1", "ref1", "eth0")).unwrap();
    });
    assert_eq!(
        masq_comments(&ns),
        [
            comment("net1", "eth0", "ref2"),
            comment("net1", "eth0", "ours")
        ]
    );
    // The reference finds rules by comment prefix, as nft would show them.
    let listing = listing(&ns);
    assert!(listing.contains(&comment("net1", "eth0", "ours")));
}

#[test]
fn concurrent_adds_and_dels_lose_nothing() {
    let ns = Netns::new("fwn");
    let ids: Vec<String> = (0..8).map(|i| format!("c{i}")).collect();
    std::thread::scope(|s| {
        for (i, id) in ids.iter().enumerate() {
            let ns = &ns;
            s.spawn(move || {
                in_ns(ns, || {
                    let m = firewall::masquerade(None).unwrap();
                    let who = inst("net1", id, "eth0");
                    for round in 0..10 {
                        if round > 0 {
                            m.del(&who).unwrap();
                        }
                        m.add(&who, &nets(&[&format!("10.1.{i}.{}/16", round + 2)]))
                            .unwrap();
                    }
                })
            });
        }
    });
    let mut got = masq_comments(&ns);
    got.sort();
    let mut want: Vec<String> = ids.iter().map(|id| comment("net1", "eth0", id)).collect();
    want.sort();
    assert_eq!(got, want);
    std::thread::scope(|s| {
        for id in &ids {
            let ns = &ns;
            s.spawn(move || {
                in_ns(ns, || {
                    let m = firewall::masquerade(None).unwrap();
                    m.del(&inst("net1", id, "eth0")).unwrap();
                    m.del(&inst("net1", id, "eth0")).unwrap();
                })
            });
        }
    });
    assert!(masq_comments(&ns).is_empty());
}

#[test]
fn bad_input_changes_nothing() {
    let ns = Netns::new("fwn");
    in_ns(&ns, || {
        let m = firewall::masquerade(None).unwrap();
        let e = m
            .add(&inst("", "c1", "eth0"), &nets(&["10.1.0.2/24"]))
            .unwrap_err();
        assert_eq!(cni::Error::from(e).code, cni::code::INVALID_CONFIG);
        assert!(firewall::masquerade(Some("pf")).is_err());
    });
    assert!(ruleset(&ns).is_empty());
}
