//! Results in the 1.1.0 shape, and their encoding to and from every spec version.
//!
//! Plugins build a [`CniResult`]; [`CniResult::to_json`] prints it in the
//! request's version and [`CniResult::from_json`] reads any version back,
//! following the reference library's conversion rules.

use crate::error::{Error, Result};
use crate::version::Version;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::net::IpAddr;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniResult {
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
    #[serde(
        default,
        rename = "socketPath",
        skip_serializing_if = "String::is_empty"
    )]
    pub socket_path: String,
    #[serde(default, rename = "pciID", skip_serializing_if = "String::is_empty")]
    pub pci_id: String,
}

/// One address: `address` keeps the host bits (`10.1.0.5/24`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
    pub address: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advmss: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u8>,
}

impl Route {
    pub fn new(dst: IpNet, gw: Option<IpAddr>) -> Route {
        Route {
            dst,
            gw,
            mtu: None,
            advmss: None,
            priority: None,
            table: None,
            scope: None,
        }
    }

    fn without_extras(&self) -> Route {
        Route::new(self.dst, self.gw)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self == &Dns::default()
    }
}

fn is_v4(net: &IpNet) -> bool {
    matches!(net, IpNet::V4(_))
}

fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

// 0.1.0/0.2.0: one block per family with its routes nested inside.
#[derive(Serialize, Deserialize)]
struct LegacyIp {
    ip: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<LegacyRoute>,
}

#[derive(Serialize, Deserialize)]
struct LegacyRoute {
    dst: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gw: Option<IpAddr>,
}

impl CniResult {
    /// Encode for `version`; fails only when 0.2.0 and older have no address to carry.
    pub fn to_json(&self, version: Version) -> Result<Value> {
        if version.is_legacy() {
            return self.to_legacy_json(version);
        }
        let mut out = Map::new();
        out.insert("cniVersion".into(), version.as_str().into());
        let modern = version >= Version::V1_0_0;
        if !self.interfaces.is_empty() {
            let ifs: Vec<Value> = self
                .interfaces
                .iter()
                .map(|i| {
                    if version >= Version::V1_1_0 {
                        to_value(i)
                    } else {
                        // Before 1.1.0 interfaces had only name, mac and sandbox.
                        to_value(&Interface {
                            name: i.name.clone(),
                            mac: i.mac.clone(),
                            sandbox: i.sandbox.clone(),
                            ..Interface::default()
                        })
                    }
                })
                .collect();
            out.insert("interfaces".into(), ifs.into());
        }
        if !self.ips.is_empty() {
            let ips: Vec<Value> = self
                .ips
                .iter()
                .map(|ip| {
                    let mut v = to_value(ip);
                    if !modern {
                        let family = if is_v4(&ip.address) { "4" } else { "6" };
                        v["version"] = family.into();
                    }
                    v
                })
                .collect();
            out.insert("ips".into(), ips.into());
        }
        if !self.routes.is_empty() {
            out.insert("routes".into(), to_value(&self.routes));
        }
        // Go prints `"dns":{}` before 1.0.0 and omits an empty block from 1.0.0 on.
        if !modern || !self.dns.is_empty() {
            out.insert("dns".into(), to_value(&self.dns));
        }
        Ok(Value::Object(out))
    }

    fn to_legacy_json(&self, version: Version) -> Result<Value> {
        let first = |v4: bool| {
            self.ips
                .iter()
                .find(|ip| is_v4(&ip.address) == v4)
                .map(|ip| LegacyIp {
                    ip: ip.address,
                    gateway: ip.gateway,
                    routes: self
                        .routes
                        .iter()
                        .filter(|r| is_v4(&r.dst) == v4)
                        .map(|r| LegacyRoute {
                            dst: r.dst,
                            gw: r.gw,
                        })
                        .collect(),
                })
        };
        let (ip4, ip6) = (first(true), first(false));
        if ip4.is_none() && ip6.is_none() {
            return Err(Error::incompatible(format!(
                "cannot convert result to version {version}: no valid IP addresses \
                 (versions before 0.3.0 need at least one; use cniVersion 0.3.0 or later)"
            )));
        }
        let mut out = Map::new();
        out.insert("cniVersion".into(), version.as_str().into());
        if let Some(ip4) = ip4 {
            out.insert("ip4".into(), to_value(&ip4));
        }
        if let Some(ip6) = ip6 {
            out.insert("ip6".into(), to_value(&ip6));
        }
        out.insert("dns".into(), to_value(&self.dns));
        Ok(Value::Object(out))
    }

    /// Decode a result written in `version` (a `cniVersion` inside the value wins).
    pub fn from_json(value: &Value, version: Version) -> Result<CniResult> {
        let obj = value
            .as_object()
            .ok_or_else(|| Error::decode("result must be a JSON object"))?;
        let version = match obj.get("cniVersion").and_then(Value::as_str) {
            Some(v) if !v.is_empty() => Version::parse(v)?,
            _ => version,
        };
        let field = |name: &str| obj.get(name).filter(|v| !v.is_null()).cloned();
        let decode = |what: &str, e: serde_json::Error| {
            Error::decode(format!("failed to parse {version} result: {what}: {e}"))
        };
        let dns: Dns = match field("dns") {
            Some(v) => serde_json::from_value(v).map_err(|e| decode("dns", e))?,
            None => Dns::default(),
        };
        if version.is_legacy() {
            let mut result = CniResult {
                dns,
                ..CniResult::default()
            };
            for key in ["ip4", "ip6"] {
                if let Some(v) = field(key) {
                    let ip: LegacyIp = serde_json::from_value(v).map_err(|e| decode(key, e))?;
                    result.ips.push(IpConfig {
                        interface: None,
                        address: ip.ip,
                        gateway: ip.gateway,
                    });
                    result
                        .routes
                        .extend(ip.routes.into_iter().map(|r| Route::new(r.dst, r.gw)));
                }
            }
            return Ok(result);
        }
        let list = |key: &str| field(key).unwrap_or_else(|| json!([]));
        let mut result = CniResult {
            interfaces: serde_json::from_value(list("interfaces"))
                .map_err(|e| decode("interfaces", e))?,
            ips: serde_json::from_value(list("ips")).map_err(|e| decode("ips", e))?,
            routes: serde_json::from_value(list("routes")).map_err(|e| decode("routes", e))?,
            dns,
        };
        if version < Version::V1_1_0 {
            for i in &mut result.interfaces {
                i.mtu = None;
                i.socket_path.clear();
                i.pci_id.clear();
            }
        }
        Ok(result)
    }

    /// The result as an older plugin in a chain would have seen it: what
    /// survives encoding to `version` and decoding back.
    pub fn convert(&self, version: Version) -> Result<CniResult> {
        CniResult::from_json(&self.to_json(version)?, version)
    }

    /// Index of the interface named `name` inside `sandbox` (any sandbox when empty).
    pub fn interface_index(&self, name: &str, sandbox: &str) -> Option<usize> {
        self.interfaces
            .iter()
            .position(|i| i.name == name && (sandbox.is_empty() || i.sandbox == sandbox))
    }

    /// Routes stripped of 1.1.0 extras, for comparing results across versions.
    pub fn plain_routes(&self) -> Vec<Route> {
        self.routes.iter().map(Route::without_extras).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::ALL;

    fn sample() -> CniResult {
        CniResult {
            interfaces: vec![Interface {
                name: "eth0".into(),
                mac: "02:00:00:00:00:01".into(),
                mtu: Some(1400),
                sandbox: "/run/netns/x".into(),
                socket_path: "/s".into(),
                pci_id: "0000:00:01.0".into(),
            }],
            ips: vec![
                IpConfig {
                    interface: Some(0),
                    address: "10.1.0.5/24".parse().unwrap(),
                    gateway: Some("10.1.0.1".parse().unwrap()),
                },
                IpConfig {
                    interface: Some(0),
                    address: "10.2.0.5/24".parse().unwrap(),
                    gateway: None,
                },
                IpConfig {
                    interface: Some(0),
                    address: "fd00::5/64".parse().unwrap(),
                    gateway: Some("fd00::1".parse().unwrap()),
                },
            ],
            routes: vec![
                Route {
                    mtu: Some(1300),
                    table: Some(100),
                    ..Route::new("0.0.0.0/0".parse().unwrap(), None)
                },
                Route::new("::/0".parse().unwrap(), Some("fd00::1".parse().unwrap())),
            ],
            dns: Dns {
                nameservers: vec!["10.1.0.1".into()],
                ..Dns::default()
            },
        }
    }

    #[test]
    fn v110_round_trips_everything() {
        let r = sample();
        let v = r.to_json(Version::V1_1_0).unwrap();
        assert_eq!(v["interfaces"][0]["pciID"], "0000:00:01.0");
        assert_eq!(v["routes"][0]["table"], 100);
        assert!(v["ips"][0].get("version").is_none());
        assert_eq!(CniResult::from_json(&v, Version::V1_1_0).unwrap(), r);
    }

    #[test]
    fn v040_adds_version_and_drops_interface_extras() {
        let v = sample().to_json(Version::V0_4_0).unwrap();
        assert_eq!(v["cniVersion"], "0.4.0");
        assert_eq!(v["ips"][0]["version"], "4");
        assert_eq!(v["ips"][2]["version"], "6");
        assert!(v["interfaces"][0].get("mtu").is_none());
        assert!(v["interfaces"][0].get("pciID").is_none());
        // types.Route is shared in the reference, so route extras survive.
        assert_eq!(v["routes"][0]["mtu"], 1300);
    }

    #[test]
    fn empty_dns_printed_before_1_0_only() {
        let r = CniResult::default();
        assert_eq!(r.to_json(Version::V0_3_1).unwrap()["dns"], json!({}));
        assert!(r.to_json(Version::V1_0_0).unwrap().get("dns").is_none());
    }

    #[test]
    fn legacy_takes_first_ip_per_family_and_nests_routes() {
        let v = sample().to_json(Version::V0_2_0).unwrap();
        assert_eq!(v["ip4"]["ip"], "10.1.0.5/24");
        assert_eq!(v["ip4"]["gateway"], "10.1.0.1");
        assert_eq!(v["ip4"]["routes"], json!([{"dst": "0.0.0.0/0"}]));
        assert_eq!(
            v["ip6"]["routes"],
            json!([{"dst": "::/0", "gw": "fd00::1"}])
        );
        assert!(v.get("interfaces").is_none());
        let back = CniResult::from_json(&v, Version::V0_2_0).unwrap();
        assert_eq!(back.ips.len(), 2);
        assert_eq!(back.routes.len(), 2);
        assert_eq!(back.ips[0].interface, None);
    }

    #[test]
    fn legacy_without_ips_is_a_clear_error() {
        let r = CniResult {
            interfaces: vec![Interface {
                name: "eth0".into(),
                ..Interface::default()
            }],
            ..CniResult::default()
        };
        let e = r.to_json(Version::V0_1_0).unwrap_err();
        assert!(e.msg.contains("no valid IP addresses"), "{}", e.msg);
    }

    #[test]
    fn every_version_decodes_what_it_encodes() {
        for v in ALL {
            let json = sample().to_json(*v).unwrap();
            let back = CniResult::from_json(&json, *v).unwrap();
            assert_eq!(back.to_json(*v).unwrap(), json, "version {v}");
        }
    }

    #[test]
    fn embedded_cni_version_wins_over_config_version() {
        let v = json!({"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.2/8"}});
        let r = CniResult::from_json(&v, Version::V1_0_0).unwrap();
        assert_eq!(r.ips[0].address.to_string(), "10.0.0.2/8");
    }

    #[test]
    fn malformed_results_are_decode_errors() {
        for bad in [
            json!([]),
            json!({"ips": [{"address": "nonsense"}]}),
            json!({"ips": 3}),
        ] {
            assert_eq!(
                CniResult::from_json(&bad, Version::V1_0_0)
                    .unwrap_err()
                    .code,
                6
            );
        }
    }
}
