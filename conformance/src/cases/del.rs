//! DEL is idempotent and best-effort (D-1, D-2, D-4): twice, never added,
//! after the namespace is gone, with an empty prevResult, after a failed ADD.

use super::*;
use crate::ensure;
use crate::harness::{expect_error, expect_ok, rt, CaseResult, Outcome};

pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for p in CORE {
        cases.push(Case::new(format!("D-2 del-twice/{p}"), &[p], move |env| {
            let ns = env.netns();
            let list = env.usual_list(plugin_conf(env, p))?;
            let cni = env.cni();
            let a = rt("cid-twice", &ns, "eth0");
            cni.add_network_list(&list, &a)
                .map_err(|e| format!("ADD: {e}"))?;
            recorded(env, p)?;
            cni.del_network_list(&list, &a)
                .map_err(|e| format!("first DEL: {e}"))?;
            cni.del_network_list(&list, &a)
                .map_err(|e| format!("second DEL: {e}"))?;
            // And once more by hand, with the prevResult a runtime may still hold.
            let out = env
                .call(p, "DEL")
                .attach("cid-twice", &ns, "eth0")
                .run(&request(env, p, env.usual_version(p).as_str()))?;
            expect_ok(&out, "third DEL")?;
            nothing_left(env, p)
        }));
        cases.push(Case::new(
            format!("D-1 del-never-added/{p}"),
            &[p],
            move |env| {
                let ns = env.netns();
                let list = env.usual_list(plugin_conf(env, p))?;
                env.cni()
                    .del_network_list(&list, &rt("cid-never", &ns, "eth0"))
                    .map_err(|e| format!("DEL of an attachment that was never added: {e}"))?;
                nothing_left(env, p)
            },
        ));
        cases.push(Case::new(
            format!("D-1 del-netns-gone/{p}"),
            &[p],
            move |env| {
                let ns = env.netns();
                let list = env.usual_list(plugin_conf(env, p))?;
                let cni = env.cni();
                let a = rt("cid-gone", &ns, "eth0");
                cni.add_network_list(&list, &a)
                    .map_err(|e| format!("ADD: {e}"))?;
                recorded(env, p)?;
                env.delete_netns(&ns);
                ensure!(
                    !std::path::Path::new(&ns).exists(),
                    "suite bug: {ns} still exists"
                );
                cni.del_network_list(&list, &a)
                    .map_err(|e| format!("DEL after the namespace was deleted: {e}"))?;
                nothing_left(env, p)
            },
        ));
        cases.push(Case::new(
            format!("D-1 del-empty-prevresult/{p}"),
            &[p],
            move |env| {
                let ns = env.netns();
                let v = env.usual_version(p);
                let list = env.list(v.as_str(), vec![plugin_conf(env, p)])?;
                env.cni()
                    .add_network_list(&list, &rt("cid-empty", &ns, "eth0"))
                    .map_err(|e| format!("ADD: {e}"))?;
                recorded(env, p)?;
                let mut conf = request(env, p, v.as_str());
                conf["prevResult"] = json!({"cniVersion": v.as_str()});
                let out = env
                    .call(p, "DEL")
                    .attach("cid-empty", &ns, "eth0")
                    .run(&conf)?;
                expect_ok(&out, "DEL with an empty prevResult")?;
                nothing_left(env, p)
            },
        ));
    }
    cases.push(Case::new(
        "D-4 del-after-failed-add/host-local",
        &[HOST_LOCAL],
        |env| {
            let ns = env.netns();
            let list = host_local_v4_list(env)?;
            let cni = env.cni();
            let mut a = rt("cid-failed", &ns, "eth0");
            a.args = vec![("IP".into(), "10.99.99.99".into())];
            let e = cni.add_network_list(&list, &a);
            ensure!(
                e.is_err(),
                "ADD asking for 10.99.99.99 outside {V4_SUBNET} succeeded"
            );
            let out = env
                .call(HOST_LOCAL, "ADD")
                .attach("cid-failed", &ns, "eth0")
                .var("CNI_ARGS", "IP=10.99.99.99")
                .run(&request(
                    env,
                    HOST_LOCAL,
                    env.usual_version(HOST_LOCAL).as_str(),
                ))?;
            expect_error(&out)?;
            cni.del_network_list(&list, &a)
                .map_err(|e| format!("DEL after a failed ADD: {e}"))?;
            nothing_left(env, HOST_LOCAL)
        },
    ));
    cases
}

/// ADD must have left state for DEL to remove (host-local: one lease per family).
fn recorded(env: &Env, p: &str) -> Result<(), String> {
    if p == HOST_LOCAL {
        let held = leases(env);
        ensure!(
            held.len() == 2,
            "ADD should hold one IPv4 and one IPv6 lease, found {held:?}"
        );
    }
    Ok(())
}

fn nothing_left(env: &Env, p: &str) -> CaseResult {
    if p == HOST_LOCAL {
        let left = leases(env);
        ensure!(left.is_empty(), "leases left behind: {left:?}");
    }
    Ok(Outcome::Pass)
}
