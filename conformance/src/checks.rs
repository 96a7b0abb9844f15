//! Judging results: is a result in the schema of the version it claims, and
//! what does it contain.

use cni::{CniResult, Version};
use ipnet::IpNet;
use serde_json::Value;

/// A result must be labelled with `version` and laid out as that version
/// defines it (SPEC §5 and the per-version types). Problems come in two
/// kinds: `Broken` (mislabelled, undecodable, values that contradict each
/// other), which runtimes trip over, and `Layout` (fields present or missing
/// against the version's schema), which runtimes' decoders tolerate because
/// they ignore unknown fields and default missing ones; cases report the
/// latter as a difference.
pub enum ShapeError {
    Broken(String),
    Layout(String),
}

pub fn check_shape(v: &Value, version: Version) -> Result<CniResult, ShapeError> {
    let broken = |s: String| ShapeError::Broken(s);
    let obj = v
        .as_object()
        .ok_or_else(|| broken(format!("result is not an object: {v}")))?;
    let label = obj.get("cniVersion").and_then(Value::as_str).unwrap_or("");
    if label != version.as_str() {
        return Err(broken(format!(
            "result is labelled cniVersion {label:?}, the request was {version}"
        )));
    }
    if version.is_legacy() {
        let modern: Vec<&str> = ["interfaces", "ips", "routes"]
            .into_iter()
            .filter(|k| obj.contains_key(*k))
            .collect();
        if !modern.is_empty() {
            return Err(ShapeError::Layout(format!(
                "a {version} result must carry ip4/ip6 blocks, but this one has {modern:?} \
                 (the 0.3.0+ layout)"
            )));
        }
        if !obj.contains_key("ip4") && !obj.contains_key("ip6") {
            return Err(ShapeError::Layout(format!(
                "a {version} result needs an ip4 or ip6 block"
            )));
        }
        for key in ["ip4", "ip6"] {
            if let Some(block) = obj.get(key) {
                let ip = block.get("ip").and_then(Value::as_str).unwrap_or("");
                let net: IpNet = ip
                    .parse()
                    .map_err(|_| broken(format!("{key}.ip {ip:?} is not an address/prefix")))?;
                if matches!(net, IpNet::V4(_)) != (key == "ip4") {
                    return Err(broken(format!("{key} holds {net}, of the other family")));
                }
            }
        }
    } else {
        if obj.contains_key("ip4") || obj.contains_key("ip6") {
            return Err(broken(format!(
                "a {version} result must not carry legacy ip4/ip6 blocks"
            )));
        }
        let ifaces = obj
            .get("interfaces")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let ips = obj
            .get("ips")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (i, ip) in ips.iter().enumerate() {
            let addr = ip.get("address").and_then(Value::as_str).unwrap_or("");
            let net: IpNet = addr.parse().map_err(|_| {
                broken(format!(
                    "ips[{i}].address {addr:?} is not an address/prefix"
                ))
            })?;
            let family = if matches!(net, IpNet::V4(_)) {
                "4"
            } else {
                "6"
            };
            match (version < Version::V1_0_0, ip.get("version")) {
                (true, Some(Value::String(f))) if f == family => {}
                (true, None) => {
                    return Err(ShapeError::Layout(format!(
                        "ips[{i}] ({addr}) lacks the \"version\": \"{family}\" field of the {version} layout"
                    )))
                }
                (true, Some(other)) => {
                    return Err(broken(format!(
                        "ips[{i}] ({addr}) is IPv{family} but says \"version\": {other}"
                    )))
                }
                (false, Some(_)) => {
                    return Err(ShapeError::Layout(format!(
                        "ips[{i}] carries \"version\", which {version} removed"
                    )))
                }
                (false, None) => {}
            }
            if let Some(idx) = ip.get("interface") {
                let ok = idx.as_u64().is_some_and(|n| (n as usize) < ifaces);
                if !ok {
                    return Err(broken(format!(
                        "ips[{i}].interface {idx} does not index the {ifaces} interfaces"
                    )));
                }
            }
        }
        if version < Version::V1_1_0 {
            for (i, iface) in obj
                .get("interfaces")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                for key in ["mtu", "socketPath", "pciID"] {
                    if iface.get(key).is_some() {
                        return Err(ShapeError::Layout(format!(
                            "interfaces[{i}].{key} is a 1.1.0 field, not allowed in {version}"
                        )));
                    }
                }
            }
        }
    }
    CniResult::from_json(v, version)
        .map_err(|e| broken(format!("result does not decode as {version}: {e}")))
}

/// Addresses of a result, as strings like `10.0.0.2/24`.
pub fn addresses(r: &CniResult) -> Vec<String> {
    r.ips.iter().map(|ip| ip.address.to_string()).collect()
}

/// The first address of each family.
pub fn first_of(r: &CniResult, v4: bool) -> Option<IpNet> {
    r.ips
        .iter()
        .map(|ip| ip.address)
        .find(|a| matches!(a, IpNet::V4(_)) == v4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(v: Value, ver: Version) -> bool {
        check_shape(&v, ver).is_ok()
    }

    #[test]
    fn versions_and_layouts() {
        let modern = json!({"cniVersion":"1.0.0","interfaces":[{"name":"lo"}],
            "ips":[{"address":"127.0.0.1/8","interface":0}]});
        assert!(ok(modern.clone(), Version::V1_0_0));
        assert!(!ok(modern, Version::V1_1_0), "label must match");
        let v040 = json!({"cniVersion":"0.4.0","ips":[{"address":"10.0.0.2/24","version":"4"}]});
        assert!(ok(v040, Version::V0_4_0));
        let wrong_family =
            json!({"cniVersion":"0.4.0","ips":[{"address":"10.0.0.2/24","version":"6"}]});
        assert!(!ok(wrong_family, Version::V0_4_0));
        let stray = json!({"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24","version":"4"}]});
        assert!(matches!(
            check_shape(&stray, Version::V1_0_0),
            Err(ShapeError::Layout(_))
        ));
        let unversioned = json!({"cniVersion":"0.3.1","ips":[{"address":"10.0.0.2/24"}]});
        assert!(matches!(
            check_shape(&unversioned, Version::V0_3_1),
            Err(ShapeError::Layout(_))
        ));
        let bad_index =
            json!({"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24","interface":1}]});
        assert!(!ok(bad_index, Version::V1_0_0));
        let mtu = json!({"cniVersion":"1.0.0","interfaces":[{"name":"e","mtu":1500}]});
        assert!(!ok(mtu.clone(), Version::V1_0_0));
        assert!(ok(
            json!({"cniVersion":"1.1.0","interfaces":[{"name":"e","mtu":1500}]}),
            Version::V1_1_0
        ));
    }

    #[test]
    fn legacy_layouts() {
        assert!(ok(
            json!({"cniVersion":"0.2.0","ip4":{"ip":"10.0.0.2/24"}}),
            Version::V0_2_0
        ));
        let misfiled = json!({"cniVersion":"0.2.0","ip4":{"ip":"fd00::2/64"}});
        assert!(matches!(
            check_shape(&misfiled, Version::V0_2_0),
            Err(ShapeError::Broken(_))
        ));
        let modern = json!({"cniVersion":"0.2.0","ips":[{"address":"10.0.0.2/24"}]});
        assert!(matches!(
            check_shape(&modern, Version::V0_2_0),
            Err(ShapeError::Layout(_))
        ));
    }
}
