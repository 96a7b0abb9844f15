//! Capability arguments reach exactly the plugins that declare them,
//! and CNI_ARGS requests work as the conventions describe.

use super::*;
use crate::ensure;
use crate::harness::{expect_error, expect_ok, rt, Outcome};
use serde_json::Map;

pub fn cases() -> Vec<Case> {
    vec![
        Case::new("R-2 runtimeconfig-ips/host-local", &[HOST_LOCAL], |env| {
            let mut plugin = host_local_v4(env, V4_SUBNET);
            plugin["capabilities"] = json!({"ips": true});
            let addr = add_with_caps(env, plugin, json!({"ips": ["10.200.0.77/24"]}))?;
            ensure!(addr.contains(&"10.200.0.77/24".to_string()), "requested 10.200.0.77/24 through runtimeConfig.ips, got {addr:?}");
            Ok(Outcome::Pass)
        }),
        Case::new("R-2 runtimeconfig-ipranges/host-local", &[HOST_LOCAL], |env| {
            let mut plugin = host_local_v4(env, V4_SUBNET);
            plugin["capabilities"] = json!({"ipRanges": true});
            let addr = add_with_caps(env, plugin, json!({"ipRanges": [[{"subnet": "10.202.0.0/28"}]]}))?;
            let net: ipnet::IpNet = "10.202.0.0/28".parse().map_err(|_| "suite bug")?;
            let inside = addr.iter().filter_map(|a| a.parse::<ipnet::IpNet>().ok()).any(|a| net.contains(&a.addr()));
            ensure!(inside, "runtimeConfig.ipRanges [[10.202.0.0/28]] gave no address from it: {addr:?}");
            Ok(Outcome::Pass)
        }),
        Case::new("R-2 capability-undeclared/host-local", &[HOST_LOCAL], |env| {
            // The runtime offers ips, but the plugin does not declare it: it must not get them.
            let mut plugin = host_local_v4(env, V4_SUBNET);
            plugin["capabilities"] = json!({"portMappings": true});
            let addr = add_with_caps(env, plugin, json!({"ips": ["10.200.0.77/24"]}))?;
            ensure!(!addr.contains(&"10.200.0.77/24".to_string()), "an undeclared capability reached the plugin: {addr:?}");
            Ok(Outcome::Pass)
        }),
        Case::new("R-2 runtimeconfig-ips/static", &[STATIC], |env| {
            let mut plugin = static_plugin();
            plugin["capabilities"] = json!({"ips": true});
            let addr = add_with_caps(env, plugin, json!({"ips": ["10.204.0.8/24"]}))?;
            ensure!(addr.contains(&"10.204.0.8/24".to_string()), "requested 10.204.0.8/24 through runtimeConfig.ips, got {addr:?}");
            Ok(Outcome::Pass)
        }),
        Case::new("ARGS-1 cni-args-ip/host-local", &[HOST_LOCAL], |env| {
            let addr = add_with_args(env, host_local_v4(env, V4_SUBNET), "IgnoreUnknown=1;K8S_POD_NAME=p;IP=10.200.0.9")?;
            ensure!(addr.contains(&"10.200.0.9/24".to_string()), "CNI_ARGS IP=10.200.0.9 gave {addr:?}");
            Ok(Outcome::Pass)
        }),
        Case::new("ARGS-1 cni-args-ip/static", &[STATIC], |env| {
            let addr = add_with_args(env, static_plugin(), "IP=10.203.0.7/24")?;
            ensure!(addr.contains(&"10.203.0.7/24".to_string()), "CNI_ARGS IP=10.203.0.7/24 gave {addr:?}");
            Ok(Outcome::Pass)
        }),
    ]
    .into_iter()
    .chain([HOST_LOCAL, STATIC].map(|p| {
        Case::new(format!("ARGS-2 cni-args-unknown-rejected/{p}"), &[p], move |env| {
            let ns = env.netns();
            let out = env.call(p, "ADD").attach("cid-args", &ns, "eth0")
                .var("CNI_ARGS", "NOT_A_KNOWN_KEY=1")
                .run(&request(env, p, env.usual_version(p).as_str()))?;
            expect_error(&out).map_err(|why| format!("an unknown CNI_ARGS key without IgnoreUnknown: {why}"))?;
            Ok(Outcome::Pass)
        })
    }))
    .chain(CORE.map(|p| {
        Case::new(format!("ARGS-3 cni-args-ignore-unknown/{p}"), &[p], move |env| {
            let ns = env.netns();
            let conf = request(env, p, env.usual_version(p).as_str());
            let args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=pod;K8S_POD_INFRA_CONTAINER_ID=x";
            let out = env.call(p, "ADD").attach("cid-args", &ns, "eth0").var("CNI_ARGS", args).run(&conf)?;
            expect_ok(&out, "ADD with Kubernetes' CNI_ARGS and IgnoreUnknown=1")?;
            let out = env.call(p, "DEL").attach("cid-args", &ns, "eth0").var("CNI_ARGS", args).run(&conf)?;
            expect_ok(&out, "DEL with Kubernetes' CNI_ARGS and IgnoreUnknown=1")?;
            Ok(Outcome::Pass)
        })
    }))
    .collect()
}

/// ADD through the runtime with capability arguments; returns the addresses, then DELs.
fn add_with_caps(env: &mut Env, plugin: Value, caps: Value) -> Result<Vec<String>, String> {
    let ns = env.netns();
    let list = env.usual_list(plugin)?;
    let mut a = rt("cid-caps", &ns, "eth0");
    a.capability_args = caps.as_object().cloned().unwrap_or_else(Map::new);
    add_and_del(env, &list, &a)
}

fn add_with_args(env: &mut Env, plugin: Value, args: &str) -> Result<Vec<String>, String> {
    let ns = env.netns();
    let list = env.usual_list(plugin)?;
    let mut a = rt("cid-args", &ns, "eth0");
    a.args = args
        .split(';')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    add_and_del(env, &list, &a)
}

fn add_and_del(
    env: &Env,
    list: &libcni::NetworkConfigList,
    a: &libcni::RuntimeConf,
) -> Result<Vec<String>, String> {
    let cni = env.cni();
    let r = cni
        .add_network_list(list, a)
        .map_err(|e| format!("ADD: {e}"))?;
    let addrs = r["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["address"].as_str().map(String::from))
        .collect();
    cni.del_network_list(list, a)
        .map_err(|e| format!("DEL: {e}"))?;
    ensure!(leases(env).is_empty(), "DEL left leases {:?}", leases(env));
    Ok(addrs)
}
