//! GC (1.1.0): the plugin removes exactly the state of attachments missing
//! from `cni.dev/valid-attachments` (G-1, G-4); the runtime first DELs
//! cached attachments that are no longer valid (G-5) and does nothing at all
//! when `disableGC` is set (G-3).

use super::*;
use crate::ensure;
use crate::harness::{expect_ok, rt, CaseResult, Outcome, NET};
use cni::{Attachment, Version};
use libcni::{CniConfig, NetworkConfigList};

pub fn cases() -> Vec<Case> {
    let mut cases = vec![
        Case::new("G-1 gc-removes-stale/host-local", &[HOST_LOCAL], |env| {
            let Some((list, cni, ns)) = gc_setup(env)? else {
                return unsupported_gc(env);
            };
            let ips = add_all(env, &cni, &list, &ns, &["a", "b", "c"])?;
            // The runtime lost track of c (crash, lost cache): only GC can free its address.
            cni.cache.remove(NET, "cid-c", "eth0");
            cni.gc_network_list(&list, Some(&valid(&["a", "b"])))
                .map_err(|e| format!("GC keeping a and b: {e}"))?;
            let left = leases(env);
            let mut want = vec![ips[0].clone(), ips[1].clone()];
            want.sort();
            ensure!(
                left == want,
                "after GC keeping a and b, leases are {left:?}; want {want:?} (c had {})",
                ips[2]
            );
            cni.check_network_list(&list, &rt("cid-a", &ns, "eth0"))
                .map_err(|e| format!("CHECK of a valid attachment after GC: {e}"))?;
            Ok(Outcome::Pass)
        }),
        Case::new("G-4 gc-empty-list/host-local", &[HOST_LOCAL], |env| {
            let Some((list, cni, ns)) = gc_setup(env)? else {
                return unsupported_gc(env);
            };
            add_all(env, &cni, &list, &ns, &["a", "b"])?;
            for id in ["cid-a", "cid-b"] {
                cni.cache.remove(NET, id, "eth0");
            }
            cni.gc_network_list(&list, Some(&[]))
                .map_err(|e| format!("GC with an empty valid list: {e}"))?;
            ensure!(
                leases(env).is_empty(),
                "an empty valid list means nothing is valid; leases left: {:?}",
                leases(env)
            );
            Ok(Outcome::Pass)
        }),
        Case::new("G-4 gc-without-list/host-local", &[HOST_LOCAL], |env| {
            let Some((list, cni, ns)) = gc_setup(env)? else {
                return unsupported_gc(env);
            };
            let ips = add_all(env, &cni, &list, &ns, &["a"])?;
            cni.cache.remove(NET, "cid-a", "eth0");
            // No cni.dev/valid-attachments key: the plugin cannot know what is stale.
            let _ = cni.gc_network_list(&list, None);
            ensure!(
                leases(env) == ips,
                "GC without a valid-attachments list removed leases (had {ips:?}, now {:?})",
                leases(env)
            );
            Ok(Outcome::Pass)
        }),
        Case::new(
            "G-5 runtime-gc-deletes-stale/host-local",
            &[HOST_LOCAL],
            |env| {
                let ns = env.netns();
                let list = host_local_v4_list(env)?;
                let cni = env.cni();
                let ips = add_all(env, &cni, &list, &ns, &["a", "b"])?;
                cni.gc_network_list(&list, Some(&valid(&["a"])))
                    .map_err(|e| format!("GC keeping a: {e}"))?;
                ensure!(
                    leases(env) == ips[..1],
                    "after GC keeping a, leases are {:?}; want {:?}",
                    leases(env),
                    &ips[..1]
                );
                ensure!(!cached(&cni, "b")?, "b's cache entry survived GC");
                ensure!(cached(&cni, "a")?, "a's cache entry was removed by GC");
                Ok(Outcome::Pass)
            },
        ),
        Case::new("G-3 runtime-disable-gc/host-local", &[HOST_LOCAL], |env| {
            let ns = env.netns();
            let mut list = host_local_v4_list(env)?;
            let cni = env.cni();
            let ips = add_all(env, &cni, &list, &ns, &["a"])?;
            list.disable_gc = true;
            cni.gc_network_list(&list, Some(&[]))
                .map_err(|e| format!("GC with disableGC: {e}"))?;
            ensure!(
                leases(env) == ips,
                "disableGC is set, yet GC removed leases"
            );
            ensure!(
                cached(&cni, "a")?,
                "disableGC is set, yet the cache entry is gone"
            );
            Ok(Outcome::Pass)
        }),
    ];
    for p in [LOOPBACK, STATIC] {
        cases.push(Case::new(
            format!("G-1 gc-stateless/{p}"),
            &[p],
            move |env| {
                let v = Version::V1_1_0;
                let mut conf = request(env, p, v.as_str());
                conf["cni.dev/valid-attachments"] =
                    json!([{"containerID": "cid-x", "ifname": "eth0"}]);
                // Only CNI_COMMAND and CNI_PATH, as the spec defines GC.
                let out = env.call(p, "GC").run(&conf)?;
                if !env.supports(p, v) {
                    return env.unsupported_verb(p, "GC", &out);
                }
                let printed = expect_ok(&out, "GC")?;
                ensure!(
                    printed.is_none(),
                    "GC succeeded but printed {}",
                    out.stdout_text()
                );
                Ok(Outcome::Pass)
            },
        ));
    }
    cases
}

/// A 1.1.0 host-local network, or None when host-local predates GC.
fn gc_setup(env: &mut Env) -> Result<Option<(NetworkConfigList, CniConfig, String)>, String> {
    if !env.supports(HOST_LOCAL, Version::V1_1_0) {
        return Ok(None);
    }
    let ns = env.netns();
    let list = env.list("1.1.0", vec![host_local_v4(env, V4_SUBNET)])?;
    Ok(Some((list, env.cni(), ns)))
}

fn unsupported_gc(env: &mut Env) -> CaseResult {
    let mut conf = request(env, HOST_LOCAL, "1.1.0");
    conf["cni.dev/valid-attachments"] = json!([]);
    let out = env.call(HOST_LOCAL, "GC").run(&conf)?;
    env.unsupported_verb(HOST_LOCAL, "GC", &out)
}

/// ADD containers `cid-<name>` on eth0; returns their IPv4 addresses (no prefix).
fn add_all(
    env: &Env,
    cni: &CniConfig,
    list: &NetworkConfigList,
    ns: &str,
    names: &[&str],
) -> Result<Vec<String>, String> {
    let mut ips = Vec::new();
    for n in names {
        let r = cni
            .add_network_list(list, &rt(&format!("cid-{n}"), ns, "eth0"))
            .map_err(|e| format!("ADD {n}: {e}"))?;
        let addr = r["ips"][0]["address"].as_str().unwrap_or_default();
        ips.push(addr.split('/').next().unwrap_or_default().to_string());
    }
    let held = leases(env);
    let mut sorted = ips.clone();
    sorted.sort();
    ensure!(
        held == sorted,
        "after ADD the leases are {held:?}, the results say {sorted:?}"
    );
    Ok(ips)
}

/// Whether the runtime's cache holds container `cid-<name>` on eth0.
fn cached(cni: &CniConfig, name: &str) -> Result<bool, String> {
    let entry = cni
        .cache
        .load(NET, &format!("cid-{name}"), "eth0")
        .map_err(|e| e.to_string())?;
    Ok(entry.is_some())
}

fn valid(names: &[&str]) -> Vec<Attachment> {
    names
        .iter()
        .map(|n| Attachment {
            container_id: format!("cid-{n}"),
            ifname: "eth0".into(),
        })
        .collect()
}
