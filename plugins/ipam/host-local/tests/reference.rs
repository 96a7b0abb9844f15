//! Sharing a node with the reference host-local (Debian's /usr/lib/cni):
//! leases written by either are found and released by the other, and mixed
//! allocations never hand out one address twice. Skipped with a note when
//! the reference is not installed.

mod common;

use common::*;
use serde_json::json;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::thread;
use testutil::TempDir;

#[test]
fn reference_lease_is_checked_and_released_by_us() {
    let Some(reference) = reference() else { return };
    let tmp = TempDir::new("hl-ref1");
    let c = conf(
        "1.0.0",
        &tmp.path,
        json!({"ranges": [[{"subnet": "10.40.0.0/24"}], [{"subnet": "fd40::/64"}]]}),
    );
    // Our index exists before the reference writes: it must notice.
    add(&ours(), "warmup", &c);
    let r = add(&reference, "refctr", &c);
    assert_eq!(lease_files(&tmp.path).len(), 4);

    run(&ours(), "CHECK", "refctr", "eth0", &c).ok();
    // A second ADD for the same attachment is refused, as the reference does.
    run(&ours(), "ADD", "refctr", "eth0", &c).err(100);
    run(&ours(), "DEL", "refctr", "eth0", &c).ok();
    let left = lease_files(&tmp.path);
    for ip in ips_of(&r) {
        assert!(
            !left.contains(&ip.to_string()),
            "{ip} was not released: {left:?}"
        );
    }
    run(&reference, "CHECK", "refctr", "eth0", &c).err(999);
    run(&ours(), "CHECK", "warmup", "eth0", &c).ok();
}

#[test]
fn our_lease_is_checked_and_released_by_the_reference() {
    let Some(reference) = reference() else { return };
    let tmp = TempDir::new("hl-ref2");
    let c = conf(
        "1.0.0",
        &tmp.path,
        json!({"ranges": [[{"subnet": "10.41.0.0/24"}], [{"subnet": "fd41::/64"}]]}),
    );
    add(&ours(), "ours", &c);
    add(&ours(), "other", &c);
    run(&reference, "CHECK", "ours", "eth0", &c).ok();
    run(&reference, "DEL", "ours", "eth0", &c).ok();
    assert_eq!(
        lease_files(&tmp.path).len(),
        2,
        "{:?}",
        lease_files(&tmp.path)
    );
    // The reference removed files behind our index: we must not believe it.
    run(&ours(), "CHECK", "ours", "eth0", &c).err(103);
    run(&ours(), "DEL", "ours", "eth0", &c).ok();
    run(&ours(), "CHECK", "other", "eth0", &c).ok();
    // The reference's DEL never touches our index files.
    run(&reference, "DEL", "other", "eth0", &c).ok();
    assert!(lease_files(&tmp.path).is_empty());
    assert!(net_dir(&tmp.path)
        .join("cni-plugins-rs.index")
        .join("meta")
        .exists());
}

#[test]
fn legacy_lease_content_is_released() {
    let tmp = TempDir::new("hl-ref3");
    let c = conf(
        "1.0.0",
        &tmp.path,
        json!({"ranges": [[{"subnet": "10.42.0.0/24"}]]}),
    );
    add(&ours(), "x", &c);
    // What host-local wrote before it recorded the interface name.
    std::fs::write(net_dir(&tmp.path).join("10.42.0.77"), "oldctr").unwrap();
    run(&ours(), "CHECK", "oldctr", "eth0", &c).ok();
    run(&ours(), "DEL", "oldctr", "eth0", &c).ok();
    assert!(!net_dir(&tmp.path).join("10.42.0.77").exists());
}

#[test]
fn mixed_adds_never_share_an_address() {
    let Some(reference) = reference() else { return };
    let tmp = TempDir::new("hl-ref4");
    let c = conf(
        "1.0.0",
        &tmp.path,
        json!({"ranges": [[{"subnet": "10.43.0.0/24"}]]}),
    );
    // Sequential: reference first, then ours, then alternating.
    let mut got: Vec<IpAddr> = ips_of(&add(&reference, "r0", &c));
    got.extend(ips_of(&add(&ours(), "o0", &c)));
    // Concurrent: both implementations racing on one directory.
    let workers: Vec<_> = (1..33)
        .map(|i| {
            let (c, reference) = (c.clone(), reference.clone());
            thread::spawn(move || {
                let (bin, cid) = if i % 2 == 0 {
                    (reference, format!("r{i}"))
                } else {
                    (ours(), format!("o{i}"))
                };
                ips_of(&add(&bin, &cid, &c))
            })
        })
        .collect();
    got.extend(workers.into_iter().flat_map(|t| t.join().unwrap()));
    let distinct: BTreeSet<IpAddr> = got.iter().copied().collect();
    assert_eq!(got.len(), 34);
    assert_eq!(
        distinct.len(),
        34,
        "an address was handed out twice: {got:?}"
    );
    assert_eq!(lease_files(&tmp.path).len(), 34);

    // And every one is found and released by the other implementation.
    for i in 0..33 {
        let (cid, other) = if i % 2 == 0 {
            (format!("r{i}"), ours())
        } else {
            (format!("o{i}"), reference.clone())
        };
        run(&other, "CHECK", &cid, "eth0", &c).ok();
        run(&other, "DEL", &cid, "eth0", &c).ok();
    }
    run(&reference, "DEL", "o0", "eth0", &c).ok();
    assert!(
        lease_files(&tmp.path).is_empty(),
        "{:?}",
        lease_files(&tmp.path)
    );
}

#[test]
fn results_match_the_reference() {
    let Some(reference) = reference() else { return };
    let tmp = TempDir::new("hl-ref5");
    let resolv = tmp.path.join("resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 10.0.0.53\nsearch example.org\noptions ndots:1\n",
    )
    .unwrap();
    let resolv = resolv.display().to_string();
    let cases = [
        (
            "0.2.0",
            json!({"subnet": "10.44.0.0/24", "routes": [{"dst": "0.0.0.0/0"}]}),
            json!(null),
        ),
        (
            "0.3.1",
            json!({"subnet": "10.44.0.0/24", "rangeStart": "10.44.0.9", "gateway": "10.44.0.254",
                          "ranges": [[{"subnet": "fd44::/64"}]], "resolvConf": resolv}),
            json!(null),
        ),
        (
            "1.0.0",
            json!({"ranges": [[{"subnet": "10.44.0.0/24"}, {"subnet": "10.45.0.0/24"}],
                                     [{"subnet": "fd44::/120", "rangeEnd": "fd44::10"}]],
                          "routes": [{"dst": "0.0.0.0/0", "gw": "10.44.0.1"}, {"dst": "::/0"}]}),
            json!({"ips": ["10.45.0.7/24"], "ipRanges": [[{"subnet": "10.46.0.0/16"}]]}),
        ),
        (
            "0.4.0",
            json!({"ranges": [[{"subnet": "10.44.0.0/24"}]], "resolvConf": resolv}),
            json!(null),
        ),
    ];
    let normal = |mut v: serde_json::Value| {
        if v["dns"] == json!({}) {
            v.as_object_mut().map(|o| o.remove("dns"));
        }
        v
    };
    for (i, (version, ipam, runtime)) in cases.into_iter().enumerate() {
        let results: Vec<serde_json::Value> = [ours(), reference.clone()]
            .iter()
            .enumerate()
            .map(|(j, bin)| {
                let mut c = conf(version, &tmp.path.join(format!("{i}-{j}")), ipam.clone());
                if !runtime.is_null() {
                    c["runtimeConfig"] = runtime.clone();
                }
                normal(add(bin, "cmp", &c))
            })
            .collect();
        assert_eq!(results[0], results[1], "case {i} ({version})");
    }
}

#[test]
fn the_reference_ignores_our_spare_lease_files() {
    let Some(reference) = reference() else { return };
    let tmp = TempDir::new("hl-ref6");
    let c = conf(
        "1.0.0",
        &tmp.path,
        json!({"ranges": [[{"subnet": "10.45.0.0/24"}]]}),
    );
    add(&ours(), "a", &c);
    run(&ours(), "DEL", "a", "eth0", &c).ok();
    let spare = net_dir(&tmp.path)
        .join("cni-plugins-rs.index")
        .join("spare-0");
    assert!(spare.exists());
    // The same attachment again, by the reference: the spare is no lease
    // of "a" for it, neither on ADD nor on DEL.
    add(&reference, "a", &c);
    run(&reference, "CHECK", "a", "eth0", &c).ok();
    run(&reference, "DEL", "a", "eth0", &c).ok();
    assert!(spare.exists());
    assert!(lease_files(&tmp.path).is_empty());
    // Our next lease takes it over.
    add(&ours(), "b", &c);
    assert!(!spare.exists());
    assert_eq!(lease_files(&tmp.path).len(), 1);
    run(&reference, "CHECK", "b", "eth0", &c).ok();
}
