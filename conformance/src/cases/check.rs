//! CHECK (from 0.4.0): silent success after ADD (C-4), failure when what ADD
//! made is gone (C-1, C-3), and the runtime honouring `disableCheck` (C-5).

use super::*;
use crate::ensure;
use crate::harness::{expect_error, expect_ok, rt, Outcome};

pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for p in CORE {
        cases.push(Case::new(
            format!("C-4 check-silent/{p}"),
            &[p],
            move |env| {
                if !env.usual_version(p).supports_check() {
                    return no_check(env, p);
                }
                let ns = env.netns();
                let list = env.usual_list(plugin_conf(env, p))?;
                let cni = env.cni();
                let a = rt("cid-check", &ns, "eth0");
                cni.add_network_list(&list, &a)
                    .map_err(|e| format!("ADD: {e}"))?;
                let out = check_by_hand(env, p, &list, &a)?;
                let printed = expect_ok(&out, "CHECK right after ADD")?;
                ensure!(
                    printed.is_none(),
                    "CHECK succeeded but printed {} (it must print nothing)",
                    out.stdout_text()
                );
                Ok(Outcome::Pass)
            },
        ));
    }
    cases.push(Case::new(
        "C-1 check-missing-lease/host-local",
        &[HOST_LOCAL],
        |env| {
            needs_check(env, HOST_LOCAL)?;
            let ns = env.netns();
            let list = host_local_v4_list(env)?;
            let cni = env.cni();
            let a = rt("cid-lease", &ns, "eth0");
            cni.add_network_list(&list, &a)
                .map_err(|e| format!("ADD: {e}"))?;
            let held = leases(env);
            ensure!(
                held.len() == 1,
                "expected one lease after ADD, found {held:?}"
            );
            let file = std::path::Path::new(&env.data_dir())
                .join(crate::harness::NET)
                .join(&held[0]);
            std::fs::remove_file(&file).map_err(|e| format!("removing {}: {e}", file.display()))?;
            let out = check_by_hand(env, HOST_LOCAL, &list, &a)?;
            expect_error(&out)
                .map_err(|why| format!("CHECK after its lease was removed: {why}"))?;
            Ok(Outcome::Pass)
        },
    ));
    cases.push(Case::new(
        "C-1 check-lo-down/loopback",
        &[LOOPBACK],
        |env| {
            needs_check(env, LOOPBACK)?;
            let ns = env.netns();
            let list = env.usual_list(loopback())?;
            let cni = env.cni();
            let a = rt("cid-lo", &ns, "eth0");
            cni.add_network_list(&list, &a)
                .map_err(|e| format!("ADD: {e}"))?;
            env.ip_in(&ns, &["link", "set", "lo", "down"])?;
            let out = check_by_hand(env, LOOPBACK, &list, &a)?;
            expect_error(&out).map_err(|why| format!("CHECK with lo down: {why}"))?;
            Ok(Outcome::Pass)
        },
    ));
    cases.push(Case::new(
        "C-3 check-without-add/host-local",
        &[HOST_LOCAL],
        |env| {
            needs_check(env, HOST_LOCAL)?;
            let ns = env.netns();
            let list = host_local_v4_list(env)?;
            let cni = env.cni();
            let a = rt("cid-noadd", &ns, "eth0");
            let out = check_by_hand(env, HOST_LOCAL, &list, &a)?;
            expect_error(&out)
                .map_err(|why| format!("CHECK of an attachment never added: {why}"))?;
            cni.add_network_list(&list, &a)
                .map_err(|e| format!("ADD: {e}"))?;
            cni.del_network_list(&list, &a)
                .map_err(|e| format!("DEL: {e}"))?;
            let out = check_by_hand(env, HOST_LOCAL, &list, &a)?;
            expect_error(&out).map_err(|why| format!("CHECK after DEL: {why}"))?;
            Ok(Outcome::Pass)
        },
    ));
    cases.push(Case::new(
        "C-5 runtime-disable-check/host-local",
        &[HOST_LOCAL],
        |env| {
            needs_check(env, HOST_LOCAL)?;
            let ns = env.netns();
            let mut list = host_local_v4_list(env)?;
            list.disable_check = true;
            // Never added: a CHECK that reached the plugin would fail.
            env.cni()
                .check_network_list(&list, &rt("cid-disabled", &ns, "eth0"))
                .map_err(|e| format!("the runtime ran CHECK although disableCheck is set: {e}"))?;
            Ok(Outcome::Pass)
        },
    ));
    cases
}

/// CHECK cases run at the plugin's usual version, which must have CHECK (0.4.0 or later).
fn needs_check(env: &Env, p: &str) -> Result<(), String> {
    ensure!(
        env.usual_version(p).supports_check(),
        "{p} supports {} only: no CHECK to test",
        env.supported(p)
    );
    Ok(())
}

/// CHECK as a runtime sends it (cached result as prevResult), run by hand
/// so that its stdout and exit status can be judged.
fn check_by_hand(
    env: &Env,
    p: &str,
    list: &libcni::NetworkConfigList,
    a: &libcni::RuntimeConf,
) -> Result<libcni::Output, String> {
    let cached = env
        .cni()
        .cached_result(list, a)
        .map_err(|e| e.to_string())?;
    let conf = list
        .plugin_config(&list.plugins[0], cached.as_ref(), a)
        .map_err(|e| e.to_string())?;
    env.call(p, "CHECK")
        .attach(&a.container_id, &a.netns, &a.ifname)
        .run(&conf)
}
