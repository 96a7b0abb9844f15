//! ADD rules beyond versions: a namespace that does not exist, one
//! container with two interfaces, unknown and case-folded keys.

use super::*;
use crate::ensure;
use crate::harness::{expect_error, rt, CaseResult, Outcome};

pub fn cases() -> Vec<Case> {
    let mut cases = vec![
        Case::new("A-1 add-netns-missing/loopback", &[LOOPBACK], |env| {
            let conf = request(env, LOOPBACK, env.usual_version(LOOPBACK).as_str());
            let gone = format!("/run/netns/{}", testutil::unique("cfm-none"));
            let out = env
                .call(LOOPBACK, "ADD")
                .attach("cid-nons", &gone, "eth0")
                .run(&conf)?;
            expect_error(&out)
                .map_err(|why| format!("ADD into a namespace that does not exist: {why}"))?;
            Ok(Outcome::Pass)
        }),
        Case::new("A-4 two-ifnames/host-local", &[HOST_LOCAL], two_ifnames),
        Case::new(
            "R-5 keys-case-insensitive/host-local",
            &[HOST_LOCAL],
            |env| {
                // Go matches JSON keys ignoring case; a drop-in replacement must too.
                let mut plugin = host_local_v4(env, V4_SUBNET);
                plugin["ipam"] = json!({"type": HOST_LOCAL, "dataDir": env.data_dir(),
                "Ranges": [[{"Subnet": "10.200.0.0/24", "RangeStart": "10.200.0.50"}]]});
                let ns = env.netns();
                let list = env.usual_list(plugin)?;
                let r = env
                    .cni()
                    .add_network_list(&list, &rt("cid-case", &ns, "eth0"))
                    .map_err(|e| {
                        format!("ADD with keys \"Ranges\"/\"Subnet\"/\"RangeStart\": {e}")
                    })?;
                let addr = r["ips"][0]["address"].as_str().unwrap_or_default();
                ensure!(
                addr == "10.200.0.50/24",
                "with \"RangeStart\": \"10.200.0.50\" the first address should be 10.200.0.50/24, got {addr:?}"
            );
                Ok(Outcome::Pass)
            },
        ),
    ];
    for p in CORE {
        cases.push(Case::new(
            format!("R-5 unknown-keys/{p}"),
            &[p],
            move |env| {
                let ns = env.netns();
                let mut plugin = plugin_conf(env, p);
                plugin["someVendorKey"] = json!({"nested": [1, 2, 3]});
                plugin["cni.dev/unknown"] = json!(true);
                plugin["capabilities"] = json!({"portMappings": true});
                if plugin.get("ipam").is_some() {
                    plugin["ipam"]["vendorOption"] = json!("x");
                }
                let list = env.usual_list(plugin)?;
                let cni = env.cni();
                let attachment = rt("cid-unknown", &ns, "eth0");
                cni.add_network_list(&list, &attachment)
                    .map_err(|e| format!("ADD with unknown keys (they must be ignored): {e}"))?;
                cni.del_network_list(&list, &attachment)
                    .map_err(|e| format!("DEL with unknown keys: {e}"))?;
                Ok(Outcome::Pass)
            },
        ));
    }
    cases
}

/// One container may be attached twice under different interface names.
fn two_ifnames(env: &mut Env) -> CaseResult {
    let ns = env.netns();
    let list = host_local_v4_list(env)?;
    let cni = env.cni();
    let (a, b) = (rt("cid-two", &ns, "eth0"), rt("cid-two", &ns, "eth1"));
    let ra = cni
        .add_network_list(&list, &a)
        .map_err(|e| format!("ADD eth0: {e}"))?;
    let rb = cni
        .add_network_list(&list, &b)
        .map_err(|e| format!("ADD eth1: {e}"))?;
    let (ia, ib) = (&ra["ips"][0]["address"], &rb["ips"][0]["address"]);
    ensure!(
        ia != ib,
        "eth0 and eth1 of one container got the same address {ia}"
    );
    cni.del_network_list(&list, &a)
        .map_err(|e| format!("DEL eth0: {e}"))?;
    let left = leases(env);
    ensure!(
        left.len() == 1,
        "after DEL of eth0 the lease of eth1 must remain alone: {left:?}"
    );
    cni.del_network_list(&list, &b)
        .map_err(|e| format!("DEL eth1: {e}"))?;
    ensure!(
        leases(env).is_empty(),
        "leases left after both DELs: {:?}",
        leases(env)
    );
    Ok(Outcome::Pass)
}
