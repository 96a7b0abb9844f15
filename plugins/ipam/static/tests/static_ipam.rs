//! The static IPAM plugin as a runtime drives it.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use testutil::{Call, Output};

fn ours() -> PathBuf {
    testutil::plugin("static")
}

fn conf(version: &str, ipam: Value) -> Value {
    let mut c = json!({"cniVersion": version, "name": "stnet", "type": "bridge",
                       "ipam": {"type": "static"}});
    if let (Some(dst), Some(src)) = (c["ipam"].as_object_mut(), ipam.as_object()) {
        for (k, v) in src {
            dst.insert(k.clone(), v.clone());
        }
    }
    c
}

fn call(binary: &Path, command: &str, cni_args: &str, stdin: &Value) -> Output {
    let mut call = Call::new(binary, command).attach("ctr", "/var/run/netns/st-unused", "eth0");
    if !cni_args.is_empty() {
        call = call.env("CNI_ARGS", cni_args);
    }
    call.run(&stdin.to_string())
}

fn full_ipam() -> Value {
    json!({
        "addresses": [
            {"address": "10.10.0.1/24", "gateway": "10.10.0.254"},
            {"address": "3ffe:ffff:0:01ff::1/64", "gateway": "3ffe:ffff:0::1"}
        ],
        "routes": [
            {"dst": "0.0.0.0/0"},
            {"dst": "192.168.0.0/16", "gw": "10.10.5.1"},
            {"dst": "3ffe:ffff:0:01ff::1/64"}
        ],
        "dns": {"nameservers": ["8.8.8.8"], "domain": "example.com", "search": ["example.com"]}
    })
}

fn addresses(r: &Value) -> Vec<(String, Option<String>)> {
    r["ips"]
        .as_array()
        .map(|ips| {
            ips.iter()
                .map(|i| {
                    (
                        i["address"].as_str().unwrap_or_default().to_string(),
                        i["gateway"].as_str().map(str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn pair(a: &str, gw: Option<&str>) -> (String, Option<String>) {
    (a.to_string(), gw.map(str::to_string))
}

#[test]
fn addresses_routes_and_dns_in_every_version() {
    for version in [
        "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
    ] {
        let c = conf(version, full_ipam());
        let r = call(&ours(), "ADD", "", &c).ok();
        assert_eq!(r["cniVersion"], version);
        if version < "0.3.0" {
            assert_eq!(r["ip4"]["ip"], "10.10.0.1/24", "{r}");
            assert_eq!(r["ip6"]["ip"], "3ffe:ffff:0:1ff::1/64");
            assert_eq!(r["ip6"]["gateway"], "3ffe:ffff::1");
        } else {
            assert_eq!(
                addresses(&r),
                [
                    pair("10.10.0.1/24", Some("10.10.0.254")),
                    pair("3ffe:ffff:0:1ff::1/64", Some("3ffe:ffff::1"))
                ]
            );
            assert_eq!(r["routes"].as_array().unwrap().len(), 3);
            assert!(r.get("interfaces").is_none());
            assert!(r["ips"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i.get("interface").is_none()));
        }
        assert_eq!(r["dns"]["nameservers"], json!(["8.8.8.8"]));
        if version >= "0.4.0" {
            let mut with_prev = c.clone();
            with_prev["prevResult"] = r.clone();
            call(&ours(), "CHECK", "", &with_prev).ok();
        }
        call(&ours(), "DEL", "", &c).ok();
    }
}

#[test]
fn cni_args_addresses_and_gateways() {
    let c = conf("1.0.0", json!({}));
    let r = call(
        &ours(),
        "ADD",
        "IP=10.10.0.1/24,11.11.0.1/24;GATEWAY=10.10.0.254",
        &c,
    )
    .ok();
    assert_eq!(
        addresses(&r),
        [
            pair("10.10.0.1/24", Some("10.10.0.254")),
            pair("11.11.0.1/24", None)
        ]
    );
    // More than one address per family needs 0.3.0 or later.
    let old = conf("0.2.0", json!({}));
    let e = call(&ours(), "ADD", "IP=10.10.0.1/24,11.11.0.1/24", &old).err(7);
    assert!(
        e["msg"]
            .as_str()
            .unwrap()
            .contains("more than 1 address per family"),
        "{e}"
    );
    // CNI_ARGS addresses add to the configured ones; GATEWAY sets only theirs.
    let c = conf("1.0.0", json!({"addresses": [{"address": "10.10.0.1/24"}]}));
    let r = call(&ours(), "ADD", "IP=10.10.0.2/24;GATEWAY=10.10.0.254", &c).ok();
    assert_eq!(
        addresses(&r),
        [
            pair("10.10.0.1/24", None),
            pair("10.10.0.2/24", Some("10.10.0.254"))
        ]
    );
}

#[test]
fn runtime_config_wins_over_args_which_win_over_the_rest() {
    let mut c = conf(
        "1.0.0",
        json!({"addresses": [{"address": "10.9.0.1/24", "gateway": "10.9.0.254"}],
               "routes": [{"dst": "0.0.0.0/0", "gw": "10.10.0.254"}]}),
    );
    c["runtimeConfig"] = json!({"ips": ["10.10.0.1/24", "3ffe:ffff:0:01ff::1/64"]});
    c["args"] = json!({"cni": {"ips": ["10.10.0.2/24", "3ffe:ffff:0:01ff::2/64"]}});
    let env = "IP=10.10.0.3/24,11.11.0.3/24;GATEWAY=10.10.0.254";
    let r = call(&ours(), "ADD", env, &c).ok();
    assert_eq!(
        addresses(&r),
        [
            pair("10.10.0.1/24", None),
            pair("3ffe:ffff:0:1ff::1/64", None)
        ]
    );

    c.as_object_mut().unwrap().remove("runtimeConfig");
    let r = call(&ours(), "ADD", env, &c).ok();
    assert_eq!(
        addresses(&r),
        [
            pair("10.10.0.2/24", None),
            pair("3ffe:ffff:0:1ff::2/64", None)
        ]
    );

    c.as_object_mut().unwrap().remove("args");
    let r = call(&ours(), "ADD", env, &c).ok();
    assert_eq!(
        addresses(&r),
        [
            pair("10.9.0.1/24", Some("10.9.0.254")),
            pair("10.10.0.3/24", Some("10.10.0.254")),
            pair("11.11.0.3/24", None)
        ]
    );
}

#[test]
fn bad_input_gets_its_code() {
    let cases: Vec<(&str, &str, Value, u64)> = vec![
        (
            "config address without prefix",
            "",
            conf("1.0.0", json!({"addresses": [{"address": "10.10.0.1"}]})),
            7,
        ),
        (
            "config gateway",
            "",
            conf(
                "1.0.0",
                json!({"addresses": [{"address": "10.10.0.1/24", "gateway": "x"}]}),
            ),
            7,
        ),
        (
            "CNI_ARGS without prefix",
            "IP=10.10.0.1",
            conf("1.0.0", json!({})),
            4,
        ),
        (
            "CNI_ARGS gateway",
            "IP=10.10.0.1/24;GATEWAY=nope",
            conf("1.0.0", json!({})),
            4,
        ),
        (
            "unknown CNI_ARGS",
            "MAC=00:11:22:33:44:55",
            conf("1.0.0", json!({})),
            4,
        ),
        (
            "args.cni.ips without prefix",
            "",
            {
                let mut c = conf("1.0.0", json!({}));
                c["args"] = json!({"cni": {"ips": ["10.10.0.1"]}});
                c
            },
            7,
        ),
        (
            "runtimeConfig.ips without prefix",
            "",
            {
                let mut c = conf("1.0.0", json!({}));
                c["runtimeConfig"] = json!({"ips": ["10.10.0.1"]});
                c
            },
            7,
        ),
        (
            "missing ipam",
            "IP=10.10.0.1/24",
            json!({"cniVersion": "1.0.0", "name": "stnet", "type": "bridge"}),
            7,
        ),
        (
            "bad route",
            "",
            conf("1.0.0", json!({"routes": [{"dst": "x"}]})),
            7,
        ),
        (
            "two v6 at 0.1.0",
            "",
            conf(
                "0.1.0",
                json!({"addresses": [{"address": "fd00::1/64"}, {"address": "fd00::2/64"}]}),
            ),
            7,
        ),
        ("unknown version", "", conf("0.0.9", json!({})), 1),
    ];
    for (what, env, stdin, code) in cases {
        let e = call(&ours(), "ADD", env, &stdin).err(code);
        assert!(!e["msg"].as_str().unwrap_or_default().is_empty(), "{what}");
    }
    let e = call(&ours(), "ADD", "IP=10.10.0.1", &conf("1.0.0", json!({}))).err(4);
    assert!(e["msg"].as_str().unwrap().contains("CIDR"), "{e}");
}

#[test]
fn del_is_a_no_op_and_check_compares_with_the_previous_result() {
    // DEL keeps no state: any parsable request succeeds, even without ipam.
    call(
        &ours(),
        "DEL",
        "",
        &json!({"cniVersion": "1.0.0", "name": "stnet", "type": "bridge"}),
    )
    .ok();
    call(&ours(), "DEL", "", &conf("1.0.0", full_ipam())).ok();

    let c = conf("1.0.0", full_ipam());
    call(&ours(), "CHECK", "", &c).ok();
    let good = call(&ours(), "ADD", "", &c).ok();
    let with_prev = |prev: Value| {
        let mut c = c.clone();
        c["prevResult"] = prev;
        c
    };
    call(&ours(), "CHECK", "", &with_prev(good.clone())).ok();
    let mut wrong_gw = good.clone();
    wrong_gw["ips"][0]["gateway"] = "10.10.0.9".into();
    let e = call(&ours(), "CHECK", "", &with_prev(wrong_gw)).err(103);
    assert!(e["msg"].as_str().unwrap().contains("10.10.0.1/24"), "{e}");
    let mut missing = good.clone();
    missing["ips"].as_array_mut().unwrap().remove(1);
    call(&ours(), "CHECK", "", &with_prev(missing)).err(103);
    call(
        &ours(),
        "CHECK",
        "",
        &conf("1.0.0", json!({"addresses": [{"address": "bad"}]})),
    )
    .err(7);

    // GC and STATUS have nothing to do.
    let v11 = conf("1.1.0", full_ipam());
    Call::new(&ours(), "STATUS").run(&v11.to_string()).ok();
    Call::new(&ours(), "GC").run(&v11.to_string()).ok();
}

#[test]
fn results_match_the_reference() {
    let Some(dir) = testutil::reference_dir() else {
        eprintln!("note: reference plugins not installed; skipping the comparison");
        return;
    };
    let reference = dir.join("static");
    if !reference.exists() {
        eprintln!("note: reference static not installed; skipping the comparison");
        return;
    }
    let mut precedence = conf("1.0.0", full_ipam());
    precedence["args"] = json!({"cni": {"ips": ["10.10.0.2/24"]}});
    let cases = [
        (
            conf(
                "0.2.0",
                json!({"addresses": [{"address": "10.10.0.1/24", "gateway": "10.10.0.254"}], "routes": [{"dst": "0.0.0.0/0"}]}),
            ),
            "",
        ),
        (
            conf("0.4.0", full_ipam()),
            "IP=10.20.0.1/24;GATEWAY=10.20.0.9",
        ),
        (conf("1.0.0", full_ipam()), ""),
        (
            conf("1.0.0", json!({})),
            "IP=10.10.0.1/24,fd00::5/64;GATEWAY=fd00::1",
        ),
        (precedence, "IP=10.30.0.1/24"),
    ];
    // libcni 1.1.2 prints an empty `"dns": {}` at 1.0.0, newer ones omit it.
    let normal = |mut v: Value| {
        if v["dns"] == json!({}) {
            v.as_object_mut().map(|o| o.remove("dns"));
        }
        v
    };
    for (c, env) in cases {
        let ours = normal(call(&ours(), "ADD", env, &c).ok());
        let theirs = normal(call(&reference, "ADD", env, &c).ok());
        assert_eq!(ours, theirs, "config {c} with CNI_ARGS {env:?}");
    }
}

#[test]
fn example_conflist_is_accepted() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../testdata/static.conflist"
    );
    let list: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut plugin = list["plugins"][0].clone();
    plugin["name"] = list["name"].clone();
    plugin["cniVersion"] = "1.1.0".into();
    let r = call(&ours(), "ADD", "", &plugin).ok();
    assert_eq!(
        addresses(&r),
        [
            pair("10.89.0.5/24", Some("10.89.0.1")),
            pair("fd00:89::5/64", Some("fd00:89::1"))
        ]
    );
    assert_eq!(r["dns"]["options"], json!(["ndots:2"]));
}
