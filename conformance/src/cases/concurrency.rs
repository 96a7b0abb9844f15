//! Concurrent invocations never hand out an address twice or corrupt state
//! 64 parallel ADDs into one /24, parallel DELs, and a pool smaller
//! than the crowd asking for it.

use super::*;
use crate::ensure;
use crate::harness::{parallel, rt, CaseResult, Outcome};
use std::collections::BTreeSet;

const CROWD: usize = 64;

pub fn cases() -> Vec<Case> {
    vec![
        Case::new(
            "A-6 parallel-add-distinct/host-local",
            &[HOST_LOCAL],
            |env| {
                let ns = env.netns();
                let list = host_local_v4_list(env)?;
                let cni = env.cni();
                let results = parallel(CROWD, |i| {
                    cni.add_network_list(&list, &rt(&format!("cid-{i}"), &ns, "eth0"))
                        .map(|r| {
                            r["ips"][0]["address"]
                                .as_str()
                                .unwrap_or_default()
                                .to_string()
                        })
                        .map_err(|e| format!("ADD {i}: {e}"))
                });
                let addrs: Vec<String> = results.into_iter().collect::<Result<_, _>>()?;
                let distinct: BTreeSet<&String> = addrs.iter().collect();
                ensure!(
                    distinct.len() == CROWD,
                    "{CROWD} parallel ADDs got only {} distinct addresses",
                    distinct.len()
                );
                ensure!(
                    leases(env).len() == CROWD,
                    "{CROWD} ADDs but {} leases on disk",
                    leases(env).len()
                );
                let dels = parallel(CROWD, |i| {
                    cni.del_network_list(&list, &rt(&format!("cid-{i}"), &ns, "eth0"))
                        .map_err(|e| format!("DEL {i}: {e}"))
                });
                dels.into_iter().collect::<Result<Vec<()>, _>>()?;
                ensure!(
                    leases(env).is_empty(),
                    "parallel DELs left leases {:?}",
                    leases(env)
                );
                Ok(Outcome::Pass)
            },
        ),
        Case::new(
            "A-6 parallel-exhaustion/host-local",
            &[HOST_LOCAL],
            exhaustion,
        ),
    ]
}

/// 16 parallel ADDs for 8 addresses: exactly 8 win, the rest fail cleanly.
fn exhaustion(env: &mut Env) -> CaseResult {
    let ns = env.netns();
    let plugin = host_local_with(
        env,
        json!([[{"subnet": V4_SUBNET, "rangeStart": "10.200.0.10", "rangeEnd": "10.200.0.17"}]]),
    );
    let list = env.usual_list(plugin)?;
    let cni = env.cni();
    let results = parallel(16, |i| {
        cni.add_network_list(&list, &rt(&format!("cid-{i}"), &ns, "eth0"))
    });
    let mut won = BTreeSet::new();
    for r in &results {
        match r {
            Ok(v) => {
                let a = v["ips"][0]["address"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                ensure!(won.insert(a.clone()), "address {a} handed out twice");
            }
            Err(e) => {
                let code = e.plugin_error().map_or(0, |p| p.code);
                ensure!(code != 0, "a failed ADD did not print a CNI error: {e}");
            }
        }
    }
    ensure!(
        won.len() == 8,
        "8 addresses for 16 parallel ADDs, but {} succeeded",
        won.len()
    );
    ensure!(
        leases(env).len() == 8,
        "8 addresses handed out, {} leases on disk",
        leases(env).len()
    );
    Ok(Outcome::Pass)
}
