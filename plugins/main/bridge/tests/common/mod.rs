//! Shared by the bridge and ptp integration tests: a plugin whose "host"
//! is a namespace of the test, host-local in a temp dir, kernel state
//! through `ip` and `nft`.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
pub use testutil::ping;
use testutil::{Call, Netns, Output, TempDir};

/// A test bed: the "host" namespace, host-local's data dir, the plugin.
pub struct Bed {
    pub host: Netns,
    pub data: TempDir,
    pub plugin: PathBuf,
}

impl Bed {
    pub fn new(plugin: &str) -> Bed {
        Bed {
            host: Netns::new("h"),
            data: TempDir::new(plugin),
            plugin: testutil::plugin(plugin),
        }
    }

    /// A call of the plugin running inside the host namespace.
    pub fn invoke(&self, command: &str) -> Call {
        Call::new(&self.plugin, command).in_netns(&self.host.name)
    }

    /// Call the plugin for (id, container namespace, ifname).
    pub fn call(&self, command: &str, id: &str, netns: &str, ifname: &str, conf: &Value) -> Output {
        self.invoke(command)
            .attach(id, netns, ifname)
            .run(&conf.to_string())
    }

    pub fn add(&self, id: &str, ns: &Netns, conf: &Value) -> Value {
        self.call("ADD", id, &ns.path(), "eth0", conf).ok()
    }

    /// ADD container `ctr<i>` into each namespace, all at once; the results in order.
    pub fn add_parallel(&self, ctrs: &[Netns], conf: &Value) -> Vec<Value> {
        std::thread::scope(|s| {
            let handles: Vec<_> = ctrs
                .iter()
                .enumerate()
                .map(|(i, ns)| s.spawn(move || self.add(&format!("ctr{i}"), ns, conf)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    /// DEL what [`Bed::add_parallel`] added, all at once; every DEL must succeed.
    pub fn del_parallel(&self, ctrs: &[Netns], conf: &Value) {
        std::thread::scope(|s| {
            for (i, ns) in ctrs.iter().enumerate() {
                s.spawn(move || {
                    self.call("DEL", &format!("ctr{i}"), &ns.path(), "eth0", conf)
                        .ok()
                });
            }
        });
    }

    /// CHECK or DEL with the ADD's result as prevResult (as libcni does).
    pub fn with_prev(
        &self,
        command: &str,
        id: &str,
        ns: &Netns,
        conf: &Value,
        prev: &Value,
    ) -> Output {
        let mut c = conf.clone();
        c["prevResult"] = prev.clone();
        self.call(command, id, &ns.path(), "eth0", &c)
    }

    /// The addresses host-local has leased.
    pub fn leases(&self, network: &str) -> Vec<String> {
        let dir = self.data.path.join(network);
        let mut out: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    // Lease files are named by address (`:` kept on Linux).
                    .filter(|n| n.parse::<IpAddr>().is_ok())
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Links of the host namespace of one kind (`ip -d link` words).
    pub fn links(&self, kind: &str) -> Vec<String> {
        links(&self.host, kind)
    }

    /// The host namespace's nftables ruleset (empty when none).
    pub fn ruleset(&self) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.host.name, "nft", "list", "ruleset"])
            .output()
            .expect("run nft");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Names of the links of `kind` in `ns`.
pub fn links(ns: &Netns, kind: &str) -> Vec<String> {
    let out = ns.ip(&["-j", "-d", "link", "show"]);
    let all: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    all.as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["linkinfo"]["info_kind"] == kind)
        .filter_map(|l| l["ifname"].as_str().map(str::to_string))
        .collect()
}

/// A host-local `ipam` section storing leases in `data`.
pub fn host_local(data: &TempDir, ranges: Value, routes: Value) -> Value {
    json!({
        "type": "host-local",
        "dataDir": data.path.display().to_string(),
        "ranges": ranges,
        "routes": routes,
    })
}

/// `base` with the keys of `extra` added or replaced.
pub fn merge(mut base: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().into_iter().flatten() {
        base[k] = v.clone();
    }
    base
}

/// A network configuration of `kind` with `extra` keys.
pub fn netconf(version: &str, name: &str, kind: &str, extra: Value) -> Value {
    merge(
        json!({"cniVersion": version, "name": name, "type": kind}),
        extra,
    )
}

/// A sysctl of namespace `ns` (`net/ipv4/ip_forward`).
pub fn sysctl(ns: &Netns, key: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "cat"])
        .arg(format!("/proc/sys/{key}"))
        .output()
        .expect("read sysctl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The `inet` addresses shown by `ip -j addr` of `dev` in `ns`.
pub fn addresses(ns: &Netns, dev: &str) -> Vec<Value> {
    let out = ns.ip(&["-j", "addr", "show", "dev", dev]);
    let all: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    all[0]["addr_info"].as_array().cloned().unwrap_or_default()
}

/// `local/prefixlen` of each address of `dev` in `ns`.
pub fn cidrs(ns: &Netns, dev: &str) -> Vec<String> {
    addresses(ns, dev)
        .iter()
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]))
        .collect()
}

/// The first plugin of `testdata/<file>` as a runtime would send it (with
/// the list's name and version), its leases moved to `data`.
pub fn testdata_plugin(file: &str, data: &TempDir) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../testdata")
        .join(file);
    let list: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read conflist"))
        .expect("conflist is JSON");
    let mut plugin = list["plugins"][0].clone();
    plugin["name"] = list["name"].clone();
    plugin["cniVersion"] = list["cniVersion"].clone();
    plugin["ipam"]["dataDir"] = json!(data.path.display().to_string());
    plugin
}
