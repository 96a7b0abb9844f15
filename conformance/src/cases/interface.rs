//! Interface plugins (ptp, bridge) with host-local: the container interface
//! in every version (V-2, A-1), an interface that already exists (A-3, with
//! IPAM released: A-5), CHECK noticing a missing interface (C-1), DEL after
//! the namespace is gone (D-3) and twice (D-2). Plugins run in a sandbox
//! namespace standing in for the host, so nothing touches the real host.

use super::*;
use crate::checks::{check_shape, ShapeError};
use crate::ensure;
use crate::harness::{rt, CaseResult, Outcome};
use cni::{version::ALL, Version};
use libcni::{CniConfig, NetworkConfigList};

const PTP: &str = "ptp";
const BRIDGE: &str = "bridge";

pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for p in [PTP, BRIDGE] {
        for v in ALL.iter().copied() {
            cases.push(Case::new(
                format!("V-2 version-honoured-{v}/{p}+host-local"),
                &[p, HOST_LOCAL],
                move |env| honoured(env, p, v),
            ));
        }
        cases.push(Case::new(
            format!("A-3 interface-exists/{p}+host-local"),
            &[p, HOST_LOCAL],
            move |env| interface_exists(env, p),
        ));
        cases.push(Case::new(
            format!("C-1 check-missing-interface/{p}+host-local"),
            &[p, HOST_LOCAL],
            move |env| check_missing_interface(env, p),
        ));
        cases.push(Case::new(
            format!("D-3 del-netns-gone/{p}+host-local"),
            &[p, HOST_LOCAL],
            move |env| del_netns_gone(env, p),
        ));
        cases.push(Case::new(
            format!("D-2 del-twice/{p}+host-local"),
            &[p, HOST_LOCAL],
            move |env| {
                let w = World::new(env, p, env.usual_version(p))?;
                w.add(env, "cid-twice")?;
                for n in ["first", "second"] {
                    w.cni
                        .del_network_list(&w.list, &w.rt("cid-twice"))
                        .map_err(|e| format!("{n} DEL: {e}"))?;
                }
                w.nothing_left(env)
            },
        ));
    }
    cases
}

/// One interface plugin network in a sandboxed host, attaching to one container namespace.
struct World {
    cni: CniConfig,
    list: NetworkConfigList,
    host: String,
    ctr: String,
    subnet: &'static str,
    /// The subnet's first three octets, to recognise its addresses.
    prefix: &'static str,
}

impl World {
    fn new(env: &mut Env, p: &str, v: Version) -> Result<World, String> {
        let (cni, host) = env.sandboxed_cni();
        let ctr = env.netns();
        let (subnet, prefix) = if p == PTP {
            ("10.220.0.0/24", "10.220.0.")
        } else {
            ("10.221.0.0/24", "10.221.0.")
        };
        let mut plugin = json!({"type": p, "ipam": {"type": HOST_LOCAL,
            "ranges": [[{"subnet": subnet}]], "dataDir": env.data_dir()}});
        if p == BRIDGE {
            plugin["bridge"] = "cfmbr0".into();
            plugin["isGateway"] = true.into();
        }
        let list = env.list(v.as_str(), vec![plugin])?;
        Ok(World {
            cni,
            list,
            host,
            ctr,
            subnet,
            prefix,
        })
    }

    fn rt(&self, cid: &str) -> libcni::RuntimeConf {
        rt(cid, &self.ctr, "eth0")
    }

    fn add(&self, env: &Env, cid: &str) -> Result<Value, String> {
        let r = self
            .cni
            .add_network_list(&self.list, &self.rt(cid))
            .map_err(|e| format!("ADD: {e}"))?;
        let addrs = env.ip_in(&self.ctr, &["-o", "-4", "addr", "show", "dev", "eth0"])?;
        ensure!(
            addrs.contains(self.prefix),
            "eth0 in the container has no address from {}: {addrs}",
            self.subnet
        );
        Ok(r)
    }

    fn nothing_left(&self, env: &Env) -> CaseResult {
        let left = leases(env);
        ensure!(left.is_empty(), "leases left behind: {left:?}");
        let links = env.ip_in(&self.host, &["-o", "link", "show", "type", "veth"])?;
        ensure!(
            links.trim().is_empty(),
            "host-side veths left behind: {links}"
        );
        Ok(Outcome::Pass)
    }
}

fn honoured(env: &mut Env, p: &str, v: Version) -> CaseResult {
    if !env.supports(p, v) {
        let (cni, _) = env.sandboxed_cni();
        let ctr = env.netns();
        let conf = json!({"type": p, "name": crate::harness::NET, "cniVersion": v.as_str(),
            "ipam": {"type": HOST_LOCAL, "ranges": [[{"subnet": "10.220.0.0/24"}]], "dataDir": env.data_dir()}});
        // Through the runtime: the refusal must come from the plugin itself.
        let list = env.list(v.as_str(), vec![conf])?;
        let e = cni
            .add_network_list(&list, &rt("cid-version", &ctr, "eth0"))
            .err();
        let code = e.as_ref().and_then(|e| e.plugin_error()).map(|e| e.code);
        ensure!(
            code == Some(cni::code::INCOMPATIBLE_VERSION),
            "{p} does not advertise {v} but did not refuse it with code 1: {e:?}"
        );
        return Ok(Outcome::Differs(format!(
            "{p} supports {} only, so no {v} results; it refuses {v} with code 1 as required",
            env.supported(p)
        )));
    }
    let w = World::new(env, p, v)?;
    let result = w.add(env, "cid-version")?;
    let mut layout = None;
    match check_shape(&result, v) {
        Err(ShapeError::Broken(why)) => return Err(why),
        Err(ShapeError::Layout(why)) => layout = Some(why),
        Ok(r) if !v.is_legacy() => {
            let inside = r
                .interface_index("eth0", &w.ctr)
                .ok_or_else(|| format!("no interface eth0 with sandbox {} in {result}", w.ctr))?;
            let ip = r.ips.first().ok_or("no address in the result")?;
            ensure!(
                ip.interface == Some(inside),
                "ips[0].interface is {:?}, eth0 is interface {inside}",
                ip.interface
            );
            let host_side = r
                .interfaces
                .iter()
                .find(|i| i.sandbox.is_empty())
                .ok_or("no host-side interface in the result")?;
            env.ip_in(&w.host, &["link", "show", "dev", &host_side.name])
                .map_err(|e| {
                    format!(
                        "host-side interface {} reported but missing: {e}",
                        host_side.name
                    )
                })?;
        }
        Ok(_) => {}
    }
    if v.supports_check() {
        w.cni
            .check_network_list(&w.list, &w.rt("cid-version"))
            .map_err(|e| format!("CHECK right after ADD at {v}: {e}"))?;
    }
    w.cni
        .del_network_list(&w.list, &w.rt("cid-version"))
        .map_err(|e| format!("DEL at {v}: {e}"))?;
    let gone = env.ip_in(&w.ctr, &["-o", "link", "show", "dev", "eth0"]);
    ensure!(
        gone.is_err(),
        "eth0 still exists in the container after DEL"
    );
    w.nothing_left(env)?;
    Ok(match layout {
        Some(why) => Outcome::Differs(format!("{why}; ADD/DEL otherwise work")),
        None => Outcome::Pass,
    })
}

/// ADD for an interface name already present must fail, leave the
/// existing attachment alone and release what it allocated.
fn interface_exists(env: &mut Env, p: &str) -> CaseResult {
    let w = World::new(env, p, env.usual_version(p))?;
    w.add(env, "cid-first")?;
    let held = leases(env);
    let e = w.cni.add_network_list(&w.list, &w.rt("cid-second"));
    let err = match e {
        Ok(r) => {
            return Err(format!(
                "a second ADD of eth0 into the same namespace succeeded: {r}"
            ))
        }
        Err(err) => err,
    };
    ensure!(
        err.plugin_error().is_some_and(|e| e.code != 0),
        "the second ADD failed without a CNI error: {err}"
    );
    ensure!(
        leases(env) == held,
        "the failed ADD kept its address: leases {:?}, before {held:?}",
        leases(env)
    );
    w.cni
        .check_network_list(&w.list, &w.rt("cid-first"))
        .map_err(|e| format!("the first attachment is broken after the failed ADD: {e}"))?;
    w.cni
        .del_network_list(&w.list, &w.rt("cid-first"))
        .map_err(|e| format!("DEL: {e}"))?;
    w.nothing_left(env)
}

fn check_missing_interface(env: &mut Env, p: &str) -> CaseResult {
    let v = env.usual_version(p);
    ensure!(
        v.supports_check(),
        "{p} supports {} only: no CHECK to test",
        env.supported(p)
    );
    let w = World::new(env, p, v)?;
    w.add(env, "cid-check")?;
    env.ip_in(&w.ctr, &["link", "del", "eth0"])?;
    let e = w.cni.check_network_list(&w.list, &w.rt("cid-check"));
    ensure!(
        e.is_err(),
        "CHECK passed although eth0 was deleted from the container"
    );
    w.cni
        .del_network_list(&w.list, &w.rt("cid-check"))
        .map_err(|e| format!("DEL after eth0 was deleted: {e}"))?;
    w.nothing_left(env)
}

/// D-3: DEL after the container namespace is gone must still release IPAM.
fn del_netns_gone(env: &mut Env, p: &str) -> CaseResult {
    let w = World::new(env, p, env.usual_version(p))?;
    w.add(env, "cid-gone")?;
    env.delete_netns(&w.ctr);
    w.cni
        .del_network_list(&w.list, &w.rt("cid-gone"))
        .map_err(|e| format!("DEL after the namespace was deleted: {e}"))?;
    let left = leases(env);
    ensure!(
        left.is_empty(),
        "DEL without the namespace did not release the address: {left:?}"
    );
    // The host-side veth goes with the namespace, asynchronously in the
    // kernel, so only the lease is judged here.
    Ok(Outcome::Pass)
}
