//! STATUS (1.1.0): ready plugins exit 0 silently with the minimal
//! environment (ST-1, R-7); host-local reports an exhausted pool with code 50
//! (ST-3) and recovers once an address is freed.

use super::*;
use crate::ensure;
use crate::harness::{expect_code, expect_ok, rt, Outcome};
use cni::Version;

pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for p in CORE {
        cases.push(Case::new(
            format!("ST-1 status-ready/{p}"),
            &[p],
            move |env| {
                let v = Version::V1_1_0;
                // Only CNI_COMMAND and CNI_PATH, as the spec defines STATUS.
                let out = env.call(p, "STATUS").run(&request(env, p, v.as_str()))?;
                if !env.supports(p, v) {
                    return env.unsupported_verb(p, "STATUS", &out);
                }
                let printed = expect_ok(&out, "STATUS of a ready plugin")?;
                ensure!(
                    printed.is_none(),
                    "STATUS succeeded but printed {}",
                    out.stdout_text()
                );
                let list = env.list(v.as_str(), vec![plugin_conf(env, p)])?;
                env.cni()
                    .status_network_list(&list)
                    .map_err(|e| format!("STATUS through the runtime: {e}"))?;
                Ok(Outcome::Pass)
            },
        ));
    }
    cases.push(Case::new("ST-3 status-pool-exhausted/host-local", &[HOST_LOCAL], |env| {
        let v = Version::V1_1_0;
        let plugin = host_local_with(
            env,
            json!([[{"subnet": V4_SUBNET, "rangeStart": "10.200.0.10", "rangeEnd": "10.200.0.11"}]]),
        );
        let conf = {
            let mut c = plugin.clone();
            c["name"] = crate::harness::NET.into();
            c["cniVersion"] = v.as_str().into();
            c
        };
        if !env.supports(HOST_LOCAL, v) {
            let out = env.call(HOST_LOCAL, "STATUS").run(&conf)?;
            return env.unsupported_verb(HOST_LOCAL, "STATUS", &out);
        }
        let ns = env.netns();
        let list = env.list(v.as_str(), vec![plugin])?;
        let cni = env.cni();
        let status = || env.call(HOST_LOCAL, "STATUS").run(&conf);
        expect_ok(&status()?, "STATUS with a free pool")?;
        let first = rt("cid-full-1", &ns, "eth0");
        cni.add_network_list(&list, &first).map_err(|e| format!("ADD 1: {e}"))?;
        expect_ok(&status()?, "STATUS with one address of two free")?;
        cni.add_network_list(&list, &rt("cid-full-2", &ns, "eth0"))
            .map_err(|e| format!("ADD 2: {e}"))?;
        expect_code(&status()?, cni::code::NOT_AVAILABLE, "STATUS with the pool exhausted")?;
        cni.del_network_list(&list, &first).map_err(|e| format!("DEL 1: {e}"))?;
        expect_ok(&status()?, "STATUS after an address was freed again")?;
        Ok(Outcome::Pass)
    }));
    cases
}
