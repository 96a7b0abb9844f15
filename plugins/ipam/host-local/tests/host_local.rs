//! host-local as a runtime drives it: the built binary, temp data dirs.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::thread;
use testutil::{Call, TempDir};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn add_check_del_in_every_version() {
    for version in [
        "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
    ] {
        let tmp = TempDir::new("hl-versions");
        let legacy = version < "0.3.0";
        let ranges = if legacy {
            json!([[{"subnet": "10.20.0.0/24"}]])
        } else {
            json!([[{"subnet": "10.20.0.0/24"}], [{"subnet": "fd20::/64"}]])
        };
        let c = conf(
            version,
            &tmp.path,
            json!({"ranges": ranges, "routes": [{"dst": "0.0.0.0/0"}, {"dst": "fd99::/64", "gw": "fd20::1"}]}),
        );
        let r = add(&ours(), "ctr1", &c);
        assert_eq!(r["cniVersion"], version);
        if legacy {
            assert_eq!(r["ip4"]["ip"], "10.20.0.2/24", "{version}: {r}");
            assert_eq!(r["ip4"]["gateway"], "10.20.0.1");
            assert_eq!(r["ip4"]["routes"], json!([{"dst": "0.0.0.0/0"}]));
            assert!(r.get("ip6").is_none());
        } else {
            let ips = r["ips"].as_array().unwrap();
            assert_eq!(ips.len(), 2, "{version}: {r}");
            assert_eq!(ips[0]["address"], "10.20.0.2/24");
            assert_eq!(ips[0]["gateway"], "10.20.0.1");
            assert_eq!(ips[1]["address"], "fd20::2/64");
            assert_eq!(ips[1]["gateway"], "fd20::1");
            assert!(ips.iter().all(|i| i.get("interface").is_none()), "{r}");
            assert!(r.get("interfaces").is_none());
            assert_eq!(r["routes"][1], json!({"dst": "fd99::/64", "gw": "fd20::1"}));
            assert_eq!(ips[0].get("version").is_some(), version < "1.0.0");
        }
        let expected: BTreeSet<String> = if legacy {
            ["10.20.0.2"].map(String::from).into()
        } else {
            ["10.20.0.2", "fd20::2"].map(String::from).into()
        };
        assert_eq!(lease_files(&tmp.path), expected);
        let lease = std::fs::read(net_dir(&tmp.path).join("10.20.0.2")).unwrap();
        assert_eq!(lease, b"ctr1\r\neth0");

        if version >= "0.4.0" {
            run(&ours(), "CHECK", "ctr1", "eth0", &c).ok();
            run(&ours(), "CHECK", "ctr1", "eth1", &c).err(103);
        }
        run(&ours(), "DEL", "ctr1", "eth0", &c).ok();
        assert!(lease_files(&tmp.path).is_empty(), "{version}");
        run(&ours(), "DEL", "ctr1", "eth0", &c).ok();
        if version >= "0.4.0" {
            run(&ours(), "CHECK", "ctr1", "eth0", &c).err(103);
        }
    }
}

#[test]
fn concurrent_adds_and_dels() {
    let tmp = TempDir::new("hl-concurrent");
    let c = conf(
        "1.0.0",
        &tmp.path,
        json!({"ranges": [[{"subnet": "10.21.0.0/24"}]]}),
    );
    let adds: Vec<_> = (0..64)
        .map(|i| {
            let c = c.clone();
            thread::spawn(move || ips_of(&add(&ours(), &format!("ctr{i}"), &c)))
        })
        .collect();
    let got: Vec<IpAddr> = adds.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let distinct: BTreeSet<IpAddr> = got.iter().copied().collect();
    assert_eq!(got.len(), 64);
    assert_eq!(
        distinct.len(),
        64,
        "an address was handed out twice: {got:?}"
    );
    let files: BTreeSet<IpAddr> = lease_files(&tmp.path).iter().map(|n| ip(n)).collect();
    assert_eq!(files, distinct);

    // Each lease names its own container.
    for i in 0..64 {
        run(&ours(), "CHECK", &format!("ctr{i}"), "eth0", &c).ok();
    }

    let dels: Vec<_> = (0..64)
        .map(|i| {
            let c = c.clone();
            thread::spawn(move || run(&ours(), "DEL", &format!("ctr{i}"), "eth0", &c).code)
        })
        .collect();
    assert!(dels.into_iter().all(|t| t.join().unwrap() == 0));
    assert!(
        lease_files(&tmp.path).is_empty(),
        "{:?}",
        lease_files(&tmp.path)
    );
}

#[test]
fn del_of_unknown_and_repeated_del_succeed() {
    let tmp = TempDir::new("hl-del");
    let c = conf(
        "1.0.0",
        &tmp.path,
        json!({"ranges": [[{"subnet": "10.22.0.0/24"}]]}),
    );
    // Nothing was ever added: no directory is created either.
    run(&ours(), "DEL", "never", "eth0", &c).ok();
    assert!(!net_dir(&tmp.path).exists());
    add(&ours(), "a", &c);
    run(&ours(), "DEL", "never", "eth0", &c).ok();
    run(&ours(), "DEL", "a", "eth1", &c).ok();
    assert_eq!(
        lease_files(&tmp.path).len(),
        1,
        "DEL of another ifname released a lease"
    );
    for _ in 0..2 {
        run(&ours(), "DEL", "a", "eth0", &c).ok();
    }
    assert!(lease_files(&tmp.path).is_empty());
    // DEL needs no netns.
    Call::new(&ours(), "DEL")
        .env("CNI_CONTAINERID", "a")
        .env("CNI_IFNAME", "eth0")
        .run(&c.to_string())
        .ok();
}

#[test]
fn bad_input_gets_its_code_and_changes_nothing() {
    let tmp = TempDir::new("hl-bad");
    let good = conf(
        "1.0.0",
        &tmp.path,
        json!({"ranges": [[{"subnet": "10.23.0.0/29"}]]}),
    );
    // Fill the pool: .2 to .6 (the gateway .1 is never handed out).
    for i in 0..5 {
        add(&ours(), &format!("full{i}"), &good);
    }
    let file = tmp.path.join("not-a-dir");
    std::fs::write(&file, "keep me").unwrap();
    let before = snapshot(&tmp.path);

    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = good.clone();
        f(&mut c);
        c.to_string()
    };
    let call = |cmd: &str| Call::new(&ours(), cmd).attach("bad", "/var/run/netns/x", "eth0");
    let cases: Vec<(&str, Call, String, u64)> = vec![
        ("malformed JSON", call("ADD"), "{\"cniVersion\":".into(), 6),
        (
            "unknown version",
            call("ADD"),
            with(&|c| c["cniVersion"] = "9.9.9".into()),
            1,
        ),
        (
            "missing env",
            call("ADD").unset("CNI_CONTAINERID"),
            good.to_string(),
            4,
        ),
        (
            "missing netns",
            call("ADD").unset("CNI_NETNS"),
            good.to_string(),
            4,
        ),
        (
            "bad ifname",
            call("ADD").env("CNI_IFNAME", "eth/0"),
            good.to_string(),
            4,
        ),
        (
            "long ifname",
            call("ADD").env("CNI_IFNAME", "a-very-long-ifname"),
            good.to_string(),
            4,
        ),
        (
            "bad container id",
            call("ADD").env("CNI_CONTAINERID", "../x"),
            good.to_string(),
            4,
        ),
        (
            "network name",
            call("ADD"),
            with(&|c| c["name"] = "../../etc".into()),
            7,
        ),
        (
            "missing ipam",
            call("ADD"),
            with(&|c| c.as_object_mut().unwrap().retain(|k, _| k != "ipam")),
            7,
        ),
        (
            "dataDir is a file",
            call("ADD"),
            with(&|c| c["ipam"]["dataDir"] = file.display().to_string().into()),
            7,
        ),
        (
            "overlapping ranges",
            call("ADD"),
            with(&|c| {
                c["ipam"]["ranges"] =
                    json!([[{"subnet": "10.24.0.0/24"}], [{"subnet": "10.24.0.0/25"}]])
            }),
            7,
        ),
        (
            "overlap in a set",
            call("ADD"),
            with(&|c| {
                c["ipam"]["ranges"] =
                    json!([[{"subnet": "10.24.0.0/24"}, {"subnet": "10.24.0.0/16"}]])
            }),
            7,
        ),
        (
            "/31",
            call("ADD"),
            with(&|c| c["ipam"]["ranges"] = json!([[{"subnet": "10.24.0.0/31"}]])),
            7,
        ),
        (
            "/32",
            call("ADD"),
            with(&|c| c["ipam"]["ranges"] = json!([[{"subnet": "10.24.0.0/32"}]])),
            7,
        ),
        (
            "host bits",
            call("ADD"),
            with(&|c| c["ipam"]["ranges"] = json!([[{"subnet": "10.24.0.1/24"}]])),
            7,
        ),
        (
            "no ranges",
            call("ADD"),
            with(&|c| c["ipam"]["ranges"] = json!([])),
            7,
        ),
        (
            "bad rangeStart",
            call("ADD"),
            with(&|c| {
                c["ipam"]["ranges"] =
                    json!([[{"subnet": "10.24.0.0/24", "rangeStart": "10.25.0.1"}]])
            }),
            7,
        ),
        (
            "two v4 at 0.2.0",
            call("ADD"),
            with(&|c| {
                c["cniVersion"] = "0.2.0".into();
                c["ipam"]["ranges"] =
                    json!([[{"subnet": "10.24.0.0/24"}], [{"subnet": "10.25.0.0/24"}]]);
            }),
            7,
        ),
        (
            "bad route",
            call("ADD"),
            with(&|c| c["ipam"]["routes"] = json!([{"dst": "nowhere"}])),
            7,
        ),
        (
            "missing resolvConf",
            call("ADD"),
            with(&|c| c["ipam"]["resolvConf"] = "/nonexistent/resolv.conf".into()),
            7,
        ),
        ("exhausted pool", call("ADD"), good.to_string(), 101),
        (
            "requested IP taken",
            call("ADD").env("CNI_ARGS", "IP=10.23.0.3"),
            good.to_string(),
            102,
        ),
        (
            "requested IP outside",
            call("ADD").env("CNI_ARGS", "IP=10.99.0.3"),
            good.to_string(),
            102,
        ),
        (
            "requested gateway",
            call("ADD").env("CNI_ARGS", "IP=10.23.0.1"),
            good.to_string(),
            102,
        ),
        (
            "bad requested IP",
            call("ADD").env("CNI_ARGS", "IP=10.23.0.300"),
            good.to_string(),
            4,
        ),
        (
            "unknown CNI_ARGS key",
            call("ADD").env("CNI_ARGS", "FOO=1"),
            good.to_string(),
            4,
        ),
        (
            "bad runtimeConfig.ips",
            call("ADD"),
            with(&|c| c["runtimeConfig"] = json!({"ips": ["nope"]})),
            7,
        ),
        (
            "bad ipRanges",
            call("ADD"),
            with(&|c| c["runtimeConfig"] = json!({"ipRanges": [[{"subnet": "x"}]]})),
            7,
        ),
        (
            "duplicate ADD",
            call("ADD").env("CNI_CONTAINERID", "full0"),
            good.to_string(),
            100,
        ),
        (
            "CHECK at 0.3.1",
            call("CHECK"),
            with(&|c| c["cniVersion"] = "0.3.1".into()),
            1,
        ),
        ("GC at 1.0.0", call("GC"), good.to_string(), 1),
        ("unknown command", call("ADDX"), good.to_string(), 4),
    ];
    for (what, call, stdin, code) in cases {
        let out = call.run(&stdin);
        let err = out.err(code);
        assert!(
            !err["msg"].as_str().unwrap_or_default().is_empty(),
            "{what}: no message"
        );
        assert_eq!(
            snapshot(&tmp.path),
            before,
            "{what} changed the data dir: {err}"
        );
    }
    assert!(!std::path::Path::new("/etc/hlnet").exists());
}

#[test]
fn exhausted_pool_names_the_range() {
    let tmp = TempDir::new("hl-exhaust");
    let c = conf(
        "1.0.0",
        &tmp.path,
        json!({"ranges": [[{"subnet": "10.26.0.0/24", "rangeStart": "10.26.0.10", "rangeEnd": "10.26.0.11"}]]}),
    );
    add(&ours(), "a", &c);
    add(&ours(), "b", &c);
    let e = run(&ours(), "ADD", "c", "eth0", &c).err(101);
    let msg = e["msg"].as_str().unwrap();
    assert!(
        msg.contains("10.26.0.10-10.26.0.11") && msg.contains(NET),
        "{msg}"
    );
}

#[test]
fn failed_add_in_a_later_range_set_releases_the_earlier_ones() {
    let tmp = TempDir::new("hl-rollback");
    let c = conf(
        "1.0.0",
        &tmp.path,
        json!({"ranges": [[{"subnet": "10.27.0.0/24"}], [{"subnet": "fd27::/120", "rangeStart": "fd27::5", "rangeEnd": "fd27::5"}]]}),
    );
    add(&ours(), "a", &c);
    let before = snapshot(&tmp.path);
    let e = run(&ours(), "ADD", "b", "eth0", &c).err(101);
    assert!(e["msg"].as_str().unwrap().contains("range set 1"), "{e}");
    assert_eq!(
        lease_files(&tmp.path),
        ["10.27.0.2", "fd27::5"].map(String::from).into()
    );
    let after = snapshot(&tmp.path);
    let leases_and_marks = |s: &std::collections::BTreeMap<std::path::PathBuf, Vec<u8>>| {
        s.iter()
            .filter(|(p, _)| !p.to_string_lossy().contains("cni-plugins-rs.index"))
            .map(|(p, v)| (p.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(leases_and_marks(&after), leases_and_marks(&before));
}

#[test]
fn requested_addresses_from_every_source() {
    let tmp = TempDir::new("hl-requested");
    let base = conf(
        "1.0.0",
        &tmp.path,
        json!({"ranges": [[{"subnet": "10.28.0.0/24"}], [{"subnet": "fd28::/64"}]]}),
    );
    let r = Call::new(&ours(), "ADD")
        .attach("env", "/x", "eth0")
        .env("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=p;IP=10.28.0.50")
        .run(&base.to_string())
        .ok();
    assert_eq!(ips_of(&r), [ip("10.28.0.50"), ip("fd28::2")]);

    let mut c = base.clone();
    c["args"] = json!({"cni": {"ips": ["fd28::60/64"]}});
    // Round-robin continues after the last reserved address (.50).
    assert_eq!(
        ips_of(&add(&ours(), "args", &c)),
        [ip("10.28.0.51"), ip("fd28::60")]
    );

    let mut c = base.clone();
    c["runtimeConfig"] = json!({"ips": ["10.28.0.70/24", "fd28::70"]});
    assert_eq!(
        ips_of(&add(&ours(), "runtime", &c)),
        [ip("10.28.0.70"), ip("fd28::70")]
    );

    // Two addresses for one range set cannot both be honoured: refused up front.
    let mut c = base.clone();
    c["runtimeConfig"] = json!({"ips": ["10.28.0.80"]});
    c["args"] = json!({"cni": {"ips": ["10.28.0.81"]}});
    run(&ours(), "ADD", "two", "eth0", &c).err(102);
}

#[test]
fn ip_ranges_capability_is_prepended_and_legacy_keys_work() {
    let tmp = TempDir::new("hl-ipranges");
    let mut c = conf(
        "1.0.0",
        &tmp.path,
        json!({"subnet": "10.29.0.0/24", "rangeStart": "10.29.0.100", "rangeEnd": "10.29.0.101",
               "gateway": "10.29.0.254", "ranges": [[{"subnet": "fd29::/64"}]]}),
    );
    c["runtimeConfig"] =
        json!({"ipRanges": [[{"subnet": "10.30.0.0/24", "gateway": "10.30.0.9"}]]});
    let r = add(&ours(), "a", &c);
    assert_eq!(
        ips_of(&r),
        [ip("10.30.0.1"), ip("10.29.0.100"), ip("fd29::2")]
    );
    assert_eq!(r["ips"][0]["gateway"], "10.30.0.9");
    assert_eq!(r["ips"][1]["gateway"], "10.29.0.254");
    let marks: Vec<String> = (0..3)
        .map(|i| {
            std::fs::read_to_string(net_dir(&tmp.path).join(format!("last_reserved_ip.{i}")))
                .unwrap()
        })
        .collect();
    assert_eq!(marks, ["10.30.0.1", "10.29.0.100", "fd29::2"]);
}

#[test]
fn allocation_is_round_robin() {
    let tmp = TempDir::new("hl-rr");
    let c = conf(
        "1.0.0",
        &tmp.path,
        json!({"ranges": [[{"subnet": "10.31.0.0/24", "rangeStart": "10.31.0.5", "rangeEnd": "10.31.0.7"}]]}),
    );
    let mut seen = Vec::new();
    for i in 0..4 {
        let cid = format!("c{i}");
        seen.extend(ips_of(&add(&ours(), &cid, &c)));
        run(&ours(), "DEL", &cid, "eth0", &c).ok();
    }
    assert_eq!(
        seen,
        ["10.31.0.5", "10.31.0.6", "10.31.0.7", "10.31.0.5"].map(ip)
    );
}

#[test]
fn resolv_conf_becomes_dns() {
    let tmp = TempDir::new("hl-dns");
    let resolv = tmp.path.join("resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 10.0.0.53\ndomain example.org\nsearch a.example b.example\noptions ndots:2\n",
    )
    .unwrap();
    let c = conf(
        "1.1.0",
        &tmp.path,
        json!({"ranges": [[{"subnet": "10.32.0.0/24"}]], "resolvConf": resolv.display().to_string()}),
    );
    let r = add(&ours(), "a", &c);
    assert_eq!(
        r["dns"],
        json!({"nameservers": ["10.0.0.53"], "domain": "example.org",
               "search": ["a.example", "b.example"], "options": ["ndots:2"]})
    );
}

fn gc_call(c: &Value, list: Option<Value>) -> testutil::Output {
    let mut c = c.clone();
    if let Some(list) = list {
        c["cni.dev/valid-attachments"] = list;
    }
    Call::new(&ours(), "GC").run(&c.to_string())
}

#[test]
fn gc_keeps_exactly_the_valid_attachments() {
    let tmp = TempDir::new("hl-gc");
    let c = conf(
        "1.1.0",
        &tmp.path,
        json!({"ranges": [[{"subnet": "10.33.0.0/24"}]]}),
    );
    for cid in ["a", "b", "c"] {
        add(&ours(), cid, &c);
    }
    // Missing list: refused, nothing released.
    let e = gc_call(&c, None).err(7);
    assert!(
        e["msg"].as_str().unwrap().contains("nothing was released"),
        "{e}"
    );
    assert_eq!(lease_files(&tmp.path).len(), 3);

    gc_call(
        &c,
        Some(
            json!([{"containerID": "a", "ifname": "eth0"}, {"containerID": "b", "ifname": "eth9"}]),
        ),
    )
    .ok();
    assert_eq!(
        lease_files(&tmp.path),
        ["10.33.0.2"].map(String::from).into()
    );
    run(&ours(), "CHECK", "a", "eth0", &c).ok();
    run(&ours(), "CHECK", "b", "eth0", &c).err(103);

    // The older key name is accepted too.
    let mut legacy_key = c.clone();
    legacy_key["cni.dev/attachments"] = json!([{"containerID": "a", "ifname": "eth0"}]);
    Call::new(&ours(), "GC").run(&legacy_key.to_string()).ok();
    assert_eq!(lease_files(&tmp.path).len(), 1);

    // Empty list: nothing is valid.
    gc_call(&c, Some(json!([]))).ok();
    assert!(lease_files(&tmp.path).is_empty());
    // GC on a network that never had a lease.
    let other = conf(
        "1.1.0",
        &tmp.path.join("none"),
        json!({"ranges": [[{"subnet": "10.33.0.0/24"}]]}),
    );
    gc_call(&other, Some(json!([]))).ok();
}

#[test]
fn status_reports_exhaustion() {
    let tmp = TempDir::new("hl-status");
    let c = conf(
        "1.1.0",
        &tmp.path,
        json!({"ranges": [[{"subnet": "10.34.0.0/24"}], [{"subnet": "10.35.0.0/30"}]]}),
    );
    let status = || Call::new(&ours(), "STATUS").run(&c.to_string());
    status().ok();
    add(&ours(), "a", &c);
    let e = status().err(50);
    let msg = e["msg"].as_str().unwrap();
    assert!(
        msg.contains("range set 1") && msg.contains("10.35.0.1-10.35.0.2") && msg.contains(NET),
        "{msg}"
    );
    run(&ours(), "DEL", "a", "eth0", &c).ok();
    status().ok();
}

#[test]
fn example_conflist_is_accepted() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../testdata/host-local.conflist"
    );
    let list: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let tmp = TempDir::new("hl-example");
    let mut plugin = list["plugins"][0].clone();
    plugin["name"] = list["name"].clone();
    plugin["cniVersion"] = "1.1.0".into();
    plugin["ipam"]["dataDir"] = tmp.path.display().to_string().into();
    let r = run(&ours(), "ADD", "example", "eth0", &plugin).ok();
    assert_eq!(ips_of(&r), [ip("10.88.0.10"), ip("fd00:88::2")]);
    Call::new(&ours(), "STATUS").run(&plugin.to_string()).ok();
    run(&ours(), "DEL", "example", "eth0", &plugin).ok();
}
