//! The runtime side against recording fake plugins (shell scripts): what
//! each plugin receives on stdin and in its environment, in which order,
//! and what the cache holds afterwards. No namespaces or root needed.

use libcni::{Attachment, CniConfig, NetworkConfigList, RuntimeConf};
use serde_json::{json, Value};
use std::path::PathBuf;
use testutil::TempDir;

/// A plugin that records every call as `<dir>/calls/<n>.<name>.<COMMAND>.{stdin,env}`.
/// ADD answers with an address chosen by its name; `fail` always fails with code 7.
const RECORDER: &str = r#"#!/bin/sh
name=$(basename "$0")
d=$(dirname "$0")/calls
mkdir -p "$d"
n=$(ls "$d" | wc -l)
n=$((n / 2))
n=$(printf %03d "$n")
cat > "$d/$n.$name.$CNI_COMMAND.stdin"
env | sort > "$d/$n.$name.$CNI_COMMAND.env"
v=$(grep -o '"cniVersion":"[^"]*"' "$d/$n.$name.$CNI_COMMAND.stdin" | head -n 1 | cut -d'"' -f4)
case "$CNI_COMMAND/$name" in
  VERSION/*) echo '{"cniVersion":"1.1.0","supportedVersions":["0.3.1","0.4.0","1.0.0","1.1.0"]}' ;;
  */fail) echo '{"code":7,"msg":"configured to fail"}'; exit 1 ;;
  ADD/one) echo "{\"cniVersion\":\"$v\",\"ips\":[{\"address\":\"10.0.0.1/24\"}]}" ;;
  ADD/two) echo '{"ips":[{"address":"10.0.0.2/24"}]}' ;;
esac
exit 0
"#;

struct Fixture {
    tmp: TempDir,
    cni: CniConfig,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = TempDir::new("libcni");
        let bin = tmp.path.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for name in ["one", "two", "fail"] {
            testutil::write_script(&bin.join(name), RECORDER);
        }
        let cni = CniConfig::new(vec![bin], tmp.path.join("cache"));
        Fixture { tmp, cni }
    }

    fn list(&self, version: &str, plugins: Value) -> NetworkConfigList {
        NetworkConfigList::from_bytes(
            json!({"cniVersion": version, "name": "net", "plugins": plugins})
                .to_string()
                .as_bytes(),
        )
        .unwrap()
    }

    /// (plugin, command, stdin JSON, env lines) of every recorded call, in order.
    fn calls(&self) -> Vec<(String, String, Value, Vec<String>)> {
        let dir = self.tmp.path.join("bin/calls");
        let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        names.retain(|p| p.extension().is_some_and(|e| e == "stdin"));
        names.sort();
        let out = names
            .iter()
            .map(|p| {
                let file = p.file_name().unwrap().to_str().unwrap();
                let parts: Vec<&str> = file.split('.').collect();
                let stdin = std::fs::read_to_string(p).unwrap();
                let env = std::fs::read_to_string(p.with_extension("env")).unwrap();
                (
                    parts[1].to_string(),
                    parts[2].to_string(),
                    serde_json::from_str(&stdin).unwrap_or(Value::Null),
                    env.lines().map(String::from).collect(),
                )
            })
            .collect();
        let _ = std::fs::remove_dir_all(&dir);
        out
    }

    fn cache_file(&self, cid: &str) -> PathBuf {
        self.tmp.path.join(format!("cache/results/net-{cid}-eth0"))
    }
}

fn rt(cid: &str) -> RuntimeConf {
    RuntimeConf {
        container_id: cid.into(),
        netns: "/run/netns/fake".into(),
        ifname: "eth0".into(),
        args: vec![("K8S_POD_NAME".into(), "pod".into())],
        ..RuntimeConf::default()
    }
}

fn order(calls: &[(String, String, Value, Vec<String>)]) -> Vec<String> {
    calls
        .iter()
        .map(|(p, c, _, _)| format!("{p} {c}"))
        .collect()
}

#[test]
fn add_chains_results_injects_capabilities_and_caches() {
    let f = Fixture::new();
    let list = f.list(
        "1.0.0",
        json!([{"type": "one", "capabilities": {"ips": true, "mac": false}, "keep": 1},
               {"type": "two"}]),
    );
    let mut a = rt("c1");
    a.capability_args = json!({"ips": ["10.0.0.9/24"], "mac": "x", "portMappings": []})
        .as_object()
        .cloned()
        .unwrap();
    let result = f.cni.add_network_list(&list, &a).unwrap();
    // `two` printed no cniVersion: the runtime labels it with the config's.
    assert_eq!(
        result,
        json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}]})
    );
    let calls = f.calls();
    assert_eq!(order(&calls), ["one ADD", "two ADD"]);
    let (one, two) = (&calls[0].2, &calls[1].2);
    assert_eq!(one["name"], "net");
    assert_eq!(one["cniVersion"], "1.0.0");
    assert_eq!(one["keep"], 1);
    assert_eq!(one["runtimeConfig"], json!({"ips": ["10.0.0.9/24"]}));
    assert!(one.get("prevResult").is_none());
    assert_eq!(
        two["prevResult"],
        json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1/24"}]})
    );
    assert!(two.get("runtimeConfig").is_none());

    // Exactly the protocol variables and PATH reach the plugin.
    let env = &calls[0].3;
    for want in [
        "CNI_COMMAND=ADD",
        "CNI_CONTAINERID=c1",
        "CNI_NETNS=/run/netns/fake",
        "CNI_IFNAME=eth0",
        "CNI_ARGS=K8S_POD_NAME=pod",
    ] {
        assert!(env.iter().any(|l| l == want), "{want} missing from {env:?}");
    }
    for line in env {
        let key = line.split('=').next().unwrap();
        assert!(
            key.starts_with("CNI_") || ["PATH", "PWD", "SHLVL", "_"].contains(&key),
            "unexpected variable {line}"
        );
    }

    let cached: Value =
        serde_json::from_slice(&std::fs::read(f.cache_file("c1")).unwrap()).unwrap();
    assert_eq!(cached["kind"], "cniCacheV1");
    assert_eq!(cached["networkName"], "net");
    assert_eq!(cached["result"], result);
    assert_eq!(cached["cniArgs"], json!([["K8S_POD_NAME", "pod"]]));
    assert_eq!(cached["capabilityArgs"]["mac"], "x");
}

#[test]
fn del_runs_in_reverse_with_the_cached_result_from_0_4_0() {
    for (version, with_prev) in [("1.0.0", true), ("0.4.0", true), ("0.3.1", false)] {
        let f = Fixture::new();
        let list = f.list(version, json!([{"type": "one"}, {"type": "two"}]));
        f.cni.add_network_list(&list, &rt("c1")).unwrap();
        f.calls();
        f.cni.del_network_list(&list, &rt("c1")).unwrap();
        let calls = f.calls();
        assert_eq!(order(&calls), ["two DEL", "one DEL"], "{version}");
        for (_, _, stdin, _) in &calls {
            if with_prev {
                assert_eq!(stdin["prevResult"]["ips"][0]["address"], "10.0.0.2/24");
                assert_eq!(stdin["prevResult"]["cniVersion"], version);
            } else {
                assert!(stdin.get("prevResult").is_none(), "{version}: {stdin}");
            }
        }
        assert!(!f.cache_file("c1").exists(), "{version}: cache entry kept");
        // DEL again: nothing cached, no prevResult, still fine.
        f.cni.del_network_list(&list, &rt("c1")).unwrap();
        assert!(f.calls().iter().all(|c| c.2.get("prevResult").is_none()));
    }
}

#[test]
fn a_failing_plugin_stops_add_and_caches_nothing() {
    let f = Fixture::new();
    let list = f.list(
        "1.0.0",
        json!([{"type": "one"}, {"type": "fail"}, {"type": "two"}]),
    );
    let e = f.cni.add_network_list(&list, &rt("c1")).unwrap_err();
    let cni_err = e.plugin_error().expect("a plugin error");
    assert_eq!(cni_err.code, 7);
    assert!(e.to_string().contains("fail"), "{e}");
    assert_eq!(order(&f.calls()), ["one ADD", "fail ADD"]);
    assert!(!f.cache_file("c1").exists());
    let missing = f.list("1.0.0", json!([{"type": "absent"}]));
    let e = f.cni.add_network_list(&missing, &rt("c1")).unwrap_err();
    assert!(e.to_string().contains("absent"), "{e}");
}

#[test]
fn invalid_attachments_are_refused_before_any_plugin_runs() {
    let f = Fixture::new();
    let list = f.list("1.0.0", json!([{"type": "one"}]));
    for bad in [
        rt("../x"),
        rt(""),
        RuntimeConf {
            ifname: "a/b".into(),
            ..rt("c1")
        },
    ] {
        assert!(f.cni.add_network_list(&list, &bad).is_err());
    }
    assert!(f.calls().is_empty());
}

#[test]
fn check_uses_the_cache_and_honours_disable_check_and_version() {
    let f = Fixture::new();
    let mut list = f.list("1.0.0", json!([{"type": "one"}, {"type": "two"}]));
    f.cni.add_network_list(&list, &rt("c1")).unwrap();
    f.calls();
    f.cni.check_network_list(&list, &rt("c1")).unwrap();
    let calls = f.calls();
    assert_eq!(order(&calls), ["one CHECK", "two CHECK"]);
    assert_eq!(calls[0].2["prevResult"]["ips"][0]["address"], "10.0.0.2/24");
    list.disable_check = true;
    f.cni.check_network_list(&list, &rt("c1")).unwrap();
    assert!(f.calls().is_empty());
    let old = f.list("0.3.1", json!([{"type": "one"}]));
    assert!(f.cni.check_network_list(&old, &rt("c1")).is_err());
    assert!(f.calls().is_empty());
}

#[test]
fn gc_deletes_stale_cached_attachments_then_sends_the_valid_list() {
    let f = Fixture::new();
    let mut list = f.list("1.1.0", json!([{"type": "one"}, {"type": "two"}]));
    for cid in ["a", "b"] {
        f.cni.add_network_list(&list, &rt(cid)).unwrap();
    }
    f.calls();
    let keep = [Attachment {
        container_id: "a".into(),
        ifname: "eth0".into(),
    }];
    f.cni.gc_network_list(&list, Some(&keep)).unwrap();
    let calls = f.calls();
    assert_eq!(order(&calls), ["two DEL", "one DEL", "one GC", "two GC"]);
    // The synthesized DEL is b's, with what was cached for it.
    assert!(calls[0].3.iter().any(|l| l == "CNI_CONTAINERID=b"));
    assert!(calls[0].3.iter().any(|l| l == "CNI_NETNS=/run/netns/fake"));
    assert!(calls[0].3.iter().any(|l| l == "CNI_ARGS=K8S_POD_NAME=pod"));
    let gc = &calls[2].2;
    let listed = json!([{"containerID": "a", "ifname": "eth0"}]);
    assert_eq!(gc["cni.dev/valid-attachments"], listed);
    assert_eq!(gc["cni.dev/attachments"], listed);
    assert!(gc.get("prevResult").is_none());
    assert!(calls[2].3.iter().any(|l| l == "CNI_CONTAINERID="));
    assert!(f.cache_file("a").exists() && !f.cache_file("b").exists());

    // Below 1.1.0 only the synthesized DELs happen; with disableGC nothing does.
    let old = f.list("1.0.0", json!([{"type": "one"}]));
    f.cni.gc_network_list(&old, Some(&[])).unwrap();
    assert_eq!(order(&f.calls()), ["one DEL"]);
    f.cni.add_network_list(&list, &rt("c")).unwrap();
    f.calls();
    list.disable_gc = true;
    f.cni.gc_network_list(&list, Some(&[])).unwrap();
    assert!(f.calls().is_empty());
    assert!(f.cache_file("c").exists());
}

#[test]
fn status_only_from_1_1_0_with_name_and_version() {
    let f = Fixture::new();
    f.cni
        .status_network_list(&f.list("1.0.0", json!([{"type": "one"}])))
        .unwrap();
    assert!(f.calls().is_empty());
    f.cni
        .status_network_list(&f.list("1.1.0", json!([{"type": "one"}, {"type": "two"}])))
        .unwrap();
    let calls = f.calls();
    assert_eq!(order(&calls), ["one STATUS", "two STATUS"]);
    assert_eq!(calls[0].2["name"], "net");
    assert_eq!(calls[0].2["cniVersion"], "1.1.0");
    let failing = f.list("1.1.0", json!([{"type": "fail"}, {"type": "one"}]));
    assert!(f.cni.status_network_list(&failing).is_err());
    assert_eq!(order(&f.calls()), ["fail STATUS"]);
}

#[test]
fn version_info_and_validation() {
    let f = Fixture::new();
    let info = f.cni.version_info("one").unwrap();
    assert!(info.supports("1.1.0") && !info.supports("0.2.0"));
    let calls = f.calls();
    assert!(calls[0].3.iter().any(|l| l == "CNI_COMMAND=VERSION"));
    let ok = f.list(
        "1.0.0",
        json!([{"type": "one", "capabilities": {"ips": true}}]),
    );
    assert_eq!(f.cni.validate_network_list(&ok).unwrap(), ["ips"]);
    let old = f.list("0.2.0", json!([{"type": "one"}]));
    assert!(f.cni.validate_network_list(&old).is_err());
}

#[test]
fn plugins_can_be_started_inside_another_network_namespace() {
    if !testutil::can_netns() {
        eprintln!("skipped: creating namespaces needs root");
        return;
    }
    let ns = testutil::Netns::new("lcni");
    let inode = |p: &str| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).unwrap().ino()
    };
    let exec = libcni::Exec {
        netns: Some(ns.path().into()),
        ..libcni::Exec::default()
    };
    let out = exec
        .run(
            std::path::Path::new("/bin/sh"),
            &[],
            b"stat -L -c %i /proc/self/ns/net",
        )
        .unwrap();
    assert!(out.success(), "{}", out.stderr_text());
    assert_eq!(out.stdout_text().trim(), inode(&ns.path()).to_string());
    assert_ne!(inode(&ns.path()), inode("/proc/self/ns/net"));
    let missing = libcni::Exec {
        netns: Some("/run/netns/does-not-exist-libcni".into()),
        ..libcni::Exec::default()
    };
    assert!(missing
        .run(std::path::Path::new("/bin/sh"), &[], b"")
        .is_err());
}
