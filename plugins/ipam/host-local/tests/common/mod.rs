//! Helpers shared by the host-local integration tests: configurations,
//! calls of our binary and the reference's, and views of the data dir.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use testutil::{Call, Output};

pub const NET: &str = "hlnet";

/// A bridge-style configuration whose `ipam` is host-local with `ipam` merged in.
pub fn conf(version: &str, data_dir: &Path, ipam: Value) -> Value {
    let mut c = json!({
        "cniVersion": version,
        "name": NET,
        "type": "bridge",
        "ipam": {"type": "host-local", "dataDir": data_dir.display().to_string()},
    });
    if let (Some(dst), Some(src)) = (c["ipam"].as_object_mut(), ipam.as_object()) {
        for (k, v) in src {
            dst.insert(k.clone(), v.clone());
        }
    }
    c
}

pub fn ours() -> PathBuf {
    testutil::plugin("host-local")
}

/// The reference binary, or None with a note (tests then skip that part).
pub fn reference() -> Option<PathBuf> {
    let found = testutil::reference_dir().map(|d| d.join("host-local"));
    if found.is_none() {
        eprintln!("note: reference host-local not installed; skipping the interop part");
    }
    found
}

/// Run `command` for attachment `(cid, ifname)` with `binary`.
pub fn run(binary: &Path, command: &str, cid: &str, ifname: &str, stdin: &Value) -> Output {
    Call::new(binary, command)
        .attach(cid, "/var/run/netns/hl-test-unused", ifname)
        .run(&stdin.to_string())
}

pub fn add(binary: &Path, cid: &str, stdin: &Value) -> Value {
    run(binary, "ADD", cid, "eth0", stdin).ok()
}

/// The addresses (without prefix) of a 0.3.0+ result.
pub fn ips_of(result: &Value) -> Vec<IpAddr> {
    result["ips"]
        .as_array()
        .map(|ips| {
            ips.iter()
                .filter_map(|ip| ip["address"].as_str()?.split('/').next()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

pub fn net_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(NET)
}

/// Lease file names (the IP-named files) in the network directory.
pub fn lease_files(data_dir: &Path) -> BTreeSet<String> {
    match std::fs::read_dir(net_dir(data_dir)) {
        Ok(rd) => rd
            .filter_map(|e| e.ok()?.file_name().to_str().map(str::to_string))
            .filter(|n| n.parse::<IpAddr>().is_ok())
            .collect(),
        Err(_) => BTreeSet::new(),
    }
}

/// Every file under `dir` with its content, to show an operation changed nothing.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.insert(p.clone(), b"<dir>".to_vec());
                todo.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap_or_default());
            }
        }
    }
    out
}
