//! Pieces every IPAM plugin shares: routes as written, the addresses a
//! runtime or user asks for, the per-family limit of old spec versions, and
//! the result an IPAM plugin prints.

use crate::addr::parse_ip;
use cni::{CniArgs, CniResult, Dns, Error, IpConfig, NetConf, Result, Route, Version};
use ipnet::IpNet;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use std::fmt;

/// The configuration's `ipam` object decoded into the plugin's own key
/// struct (keys matched ignoring case, as Go does); code 7 when it is missing.
pub fn ipam_keys<T: DeserializeOwned>(conf: &NetConf) -> Result<T> {
    #[derive(Deserialize)]
    struct NetKeys<T> {
        ipam: Option<T>,
    }
    let keys: NetKeys<T> = conf.decode()?;
    keys.ipam
        .ok_or_else(|| Error::invalid_config("IPAM config missing 'ipam' key"))
}

/// A route as written in `ipam.routes`: `{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}`
/// plus the 1.1.0 extras, passed through.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RouteConf {
    pub dst: Option<String>,
    pub gw: Option<String>,
    pub mtu: Option<u32>,
    pub advmss: Option<u32>,
    pub priority: Option<u32>,
    pub table: Option<u32>,
    pub scope: Option<u8>,
}

impl RouteConf {
    pub fn to_route(&self) -> std::result::Result<Route, String> {
        let dst_text = self.dst.as_deref().map(str::trim).unwrap_or_default();
        let dst: IpNet = dst_text
            .parse()
            .map_err(|_| format!("route dst {dst_text:?} is not a CIDR such as 0.0.0.0/0"))?;
        let gw = match self.gw.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => {
                Some(parse_ip(s).ok_or_else(|| format!("route gw {s:?} is not an IP address"))?)
            }
        };
        Ok(Route {
            mtu: self.mtu,
            advmss: self.advmss,
            priority: self.priority,
            table: self.table,
            scope: self.scope,
            ..Route::new(dst, gw)
        })
    }
}

/// Validate `ipam.routes`; errors are code 7 and name the route.
pub fn parse_routes(routes: &[RouteConf]) -> Result<Vec<Route>> {
    routes
        .iter()
        .enumerate()
        .map(|(i, r)| {
            r.to_route()
                .map_err(|e| Error::invalid_config(format!("invalid ipam.routes[{i}]: {e}")))
        })
        .collect()
}

/// Where a requested address came from; the order is the spec's preference
/// order from oldest to newest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `CNI_ARGS` `IP=a[,b]` (deprecated by the conventions, still common).
    CniArgs,
    /// `args.cni.ips` in the network configuration.
    Args,
    /// `runtimeConfig.ips` (the `ips` capability).
    RuntimeConfig,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::CniArgs => "CNI_ARGS IP",
            Source::Args => "args.cni.ips",
            Source::RuntimeConfig => "runtimeConfig.ips",
        })
    }
}

/// The addresses asked for, as written, with their sources. Each plugin
/// parses them by its own rules (host-local takes `a` or `a/n`, static needs `a/n`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requested {
    pub items: Vec<(Source, String)>,
}

impl Requested {
    /// Gather `CNI_ARGS IP` (comma-separated), `args.cni.ips` and
    /// `runtimeConfig.ips` in that order.
    pub fn gather(conf: &NetConf, cni_args: &CniArgs) -> Result<Requested> {
        let mut items = Vec::new();
        if let Some(ip) = cni_args.get("IP") {
            items.extend(
                ip.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| (Source::CniArgs, s.to_string())),
            );
        }
        for (source, value) in [
            (Source::Args, conf.cni_arg("ips")),
            (Source::RuntimeConfig, conf.runtime_config("ips")),
        ] {
            let Some(value) = value else { continue };
            let list = value.as_array().ok_or_else(|| {
                Error::invalid_config(format!("{source} must be a list of addresses, got {value}"))
            })?;
            for v in list {
                let s = match v {
                    Value::String(s) => s.trim().to_string(),
                    other => {
                        return Err(Error::invalid_config(format!(
                            "{source} must be a list of address strings, got {other}"
                        )))
                    }
                };
                items.push((source, s));
            }
        }
        Ok(Requested { items })
    }

    pub fn from(&self, source: Source) -> impl Iterator<Item = &str> {
        self.items
            .iter()
            .filter(move |(s, _)| *s == source)
            .map(|(_, v)| v.as_str())
    }
}

/// Versions before 0.3.0 carry one address per family: refuse configurations
/// that would need more, before anything is allocated.
pub fn check_per_family(version: Version, v4: usize, v6: usize) -> Result<()> {
    if version.is_legacy() && (v4 > 1 || v6 > 1) {
        return Err(Error::invalid_config(format!(
            "CNI version {version} does not support more than 1 address per family \
             (this configuration needs {v4} IPv4 and {v6} IPv6); use cniVersion 0.3.0 or later"
        )));
    }
    Ok(())
}

/// The result of an IPAM plugin: addresses without an interface index (the
/// calling plugin assigns them), routes and DNS.
pub fn ipam_result(ips: Vec<IpConfig>, routes: Vec<Route>, dns: Dns) -> CniResult {
    CniResult {
        interfaces: Vec::new(),
        ips: ips
            .into_iter()
            .map(|ip| IpConfig {
                interface: None,
                ..ip
            })
            .collect(),
        routes,
        dns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ipam_object_is_required_and_case_folded() {
        #[derive(Deserialize, Debug, PartialEq)]
        #[serde(rename_all = "camelCase")]
        struct Keys {
            data_dir: Option<String>,
        }
        let conf = |v| NetConf::from_value(v).unwrap();
        let keys: Keys = ipam_keys(&conf(json!({"name":"n","IPAM":{"DataDir":"/d"}}))).unwrap();
        assert_eq!(keys.data_dir.as_deref(), Some("/d"));
        for missing in [json!({"name":"n"}), json!({"name":"n","ipam":null})] {
            let e = ipam_keys::<Keys>(&conf(missing)).unwrap_err();
            assert_eq!(
                (e.code, e.msg.as_str()),
                (7, "IPAM config missing 'ipam' key")
            );
        }
        let e = ipam_keys::<Keys>(&conf(json!({"name":"n","ipam":{"dataDir":5}}))).unwrap_err();
        assert_eq!(e.code, 7);
    }

    #[test]
    fn routes() {
        let r: Vec<RouteConf> = serde_json::from_value(json!([
            {"dst": "0.0.0.0/0"},
            {"dst": "192.168.0.0/16", "gw": "10.10.5.1"},
            {"dst": "3ffe:ffff:0:01ff::1/64", "gw": ""},
            {"dst": "10.9.0.0/16", "mtu": 1400, "priority": 5}
        ]))
        .unwrap();
        let routes = parse_routes(&r).unwrap();
        assert_eq!(routes[0], Route::new("0.0.0.0/0".parse().unwrap(), None));
        assert_eq!(routes[1].gw, Some("10.10.5.1".parse().unwrap()));
        // Host bits in dst are kept, as the reference keeps them.
        assert_eq!(routes[2].dst.to_string(), "3ffe:ffff:0:1ff::1/64");
        assert_eq!((routes[3].mtu, routes[3].priority), (Some(1400), Some(5)));

        for bad in [
            json!({"gw": "10.0.0.1"}),
            json!({"dst": "10.0.0.0"}),
            json!({"dst": "0.0.0.0/0", "gw": "x"}),
        ] {
            let r: RouteConf = serde_json::from_value(bad.clone()).unwrap();
            let e = parse_routes(&[r]).unwrap_err();
            assert_eq!(e.code, 7, "{bad}");
            assert!(e.msg.contains("ipam.routes[0]"), "{e}");
        }
    }

    #[test]
    fn gathers_every_source_in_order() {
        let conf = NetConf::from_value(json!({"name": "n",
            "args": {"cni": {"ips": ["10.0.0.3", "fd00::3/64"]}},
            "runtimeConfig": {"ips": ["10.0.0.4/24"]}}))
        .unwrap();
        let args = CniArgs::parse("IP=10.0.0.1, 10.0.0.2", &["IP"]).unwrap();
        let r = Requested::gather(&conf, &args).unwrap();
        let all: Vec<&str> = r.items.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(
            all,
            [
                "10.0.0.1",
                "10.0.0.2",
                "10.0.0.3",
                "fd00::3/64",
                "10.0.0.4/24"
            ]
        );
        assert_eq!(
            r.from(Source::RuntimeConfig).collect::<Vec<_>>(),
            ["10.0.0.4/24"]
        );

        let none = Requested::gather(
            &NetConf::from_value(json!({"name": "n"})).unwrap(),
            &CniArgs::default(),
        );
        assert_eq!(none.unwrap(), Requested::default());

        for bad in [
            json!({"runtimeConfig": {"ips": "10.0.0.1"}}),
            json!({"args": {"cni": {"ips": [1]}}}),
        ] {
            let conf = NetConf::from_value(bad.clone()).unwrap();
            assert_eq!(
                Requested::gather(&conf, &CniArgs::default())
                    .unwrap_err()
                    .code,
                7,
                "{bad}"
            );
        }
    }

    #[test]
    fn per_family_limit_applies_before_0_3_0() {
        assert!(check_per_family(Version::V0_2_0, 1, 1).is_ok());
        assert_eq!(check_per_family(Version::V0_2_0, 2, 0).unwrap_err().code, 7);
        assert!(check_per_family(Version::V0_3_0, 2, 3).is_ok());
    }
}
