//! Every case, named after the spec checklist IDs
//! (`/work/shared/notes/spec-checklist.md`, section 1) where one applies.

use crate::harness::{Case, CaseResult, Env, Outcome};
use libcni::NetworkConfigList;
use serde_json::{json, Value};

mod add;
mod capabilities;
mod check;
mod concurrency;
mod convert;
mod del;
mod errors;
mod gc;
mod interface;
mod status;
mod version;

pub const LOOPBACK: &str = "loopback";
pub const HOST_LOCAL: &str = "host-local";
pub const STATIC: &str = "static";
/// The plugins the ADD/DEL/... cases exercise directly.
pub const CORE: [&str; 3] = [LOOPBACK, HOST_LOCAL, STATIC];

/// Every plugin the reference suite ships: each gets the VERSION case.
pub const KNOWN: [&str; 18] = [
    "bandwidth",
    "bridge",
    "dhcp",
    "dummy",
    "firewall",
    "host-device",
    "host-local",
    "ipvlan",
    "loopback",
    "macvlan",
    "portmap",
    "ptp",
    "sbr",
    "static",
    "tap",
    "tuning",
    "vlan",
    "vrf",
];

pub fn all() -> Vec<Case> {
    let mut cases = Vec::new();
    cases.extend(version::cases());
    cases.extend(convert::cases());
    cases.extend(errors::cases());
    cases.extend(add::cases());
    cases.extend(del::cases());
    cases.extend(check::cases());
    cases.extend(status::cases());
    cases.extend(gc::cases());
    cases.extend(capabilities::cases());
    cases.extend(concurrency::cases());
    cases.extend(interface::cases());
    cases
}

pub const V4_SUBNET: &str = "10.200.0.0/24";
pub const V6_SUBNET: &str = "fd00:200::/64";

/// host-local as the network's plugin, over `ranges`, keeping its state in the case's dir.
pub fn host_local_with(env: &Env, ranges: Value) -> Value {
    json!({"type": HOST_LOCAL,
           "ipam": {"type": HOST_LOCAL, "ranges": ranges, "dataDir": env.data_dir()}})
}

/// host-local with one IPv4 and one IPv6 range (one address of each).
pub fn host_local(env: &Env) -> Value {
    host_local_with(
        env,
        json!([[{"subnet": V4_SUBNET}], [{"subnet": V6_SUBNET}]]),
    )
}

/// host-local with one IPv4 range.
pub fn host_local_v4(env: &Env, subnet: &str) -> Value {
    host_local_with(env, json!([[{"subnet": subnet}]]))
}

/// The list most host-local cases use: host-local over [`V4_SUBNET`] alone, at its usual version.
pub fn host_local_v4_list(env: &Env) -> Result<NetworkConfigList, String> {
    env.usual_list(host_local_v4(env, V4_SUBNET))
}

pub const STATIC_V4: &str = "10.201.0.5/24";
pub const STATIC_GW4: &str = "10.201.0.1";
pub const STATIC_V6: &str = "fd00:201::5/64";

/// static as the network's plugin: one address per family, routes and DNS.
pub fn static_plugin() -> Value {
    json!({"type": STATIC, "ipam": {
        "type": STATIC,
        "addresses": [{"address": STATIC_V4, "gateway": STATIC_GW4}, {"address": STATIC_V6}],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "fd00:1::/64"}],
        "dns": {"nameservers": ["10.201.0.1"], "domain": "example.test"}}})
}

pub fn loopback() -> Value {
    json!({"type": LOOPBACK})
}

/// The usual single-plugin configuration of each core plugin.
pub fn plugin_conf(env: &Env, plugin: &str) -> Value {
    match plugin {
        HOST_LOCAL => host_local(env),
        STATIC => static_plugin(),
        _ => json!({"type": plugin}),
    }
}

/// A complete request config for raw calls: the plugin object with name and version.
pub fn request(env: &Env, plugin: &str, version: &str) -> Value {
    let mut conf = plugin_conf(env, plugin);
    conf["name"] = crate::harness::NET.into();
    conf["cniVersion"] = version.into();
    conf
}

/// The outcome of a CHECK case for a plugin whose usual version predates CHECK.
pub fn no_check(env: &Env, plugin: &str) -> CaseResult {
    Ok(Outcome::Differs(format!(
        "supports {} only: no CHECK",
        env.supported(plugin)
    )))
}

/// host-local's leases for the case's network: the files named by an IP.
pub fn leases(env: &Env) -> Vec<String> {
    let dir = std::path::Path::new(&env.data_dir()).join(crate::harness::NET);
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
        .collect();
    out.sort();
    out
}
