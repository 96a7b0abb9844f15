//! The bridge plugin's keys, their defaults, and their validation.

use cni::{Error, Request, Result};
use serde::Deserialize;

pub const DEFAULT_BRIDGE: &str = "cni0";

/// The plugin's own keys (the common ones live in `req.conf`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Conf {
    pub bridge: String,
    pub is_gateway: bool,
    pub is_default_gateway: bool,
    pub force_address: bool,
    pub ip_masq: bool,
    pub ip_masq_backend: Option<String>,
    /// 0: the kernel's default.
    pub mtu: u32,
    pub hairpin_mode: bool,
    pub promisc_mode: bool,
    /// 0: no VLAN.
    pub vlan: i64,
    pub vlan_trunk: Option<Vec<VlanTrunk>>,
    pub preserve_default_vlan: bool,
    #[serde(rename = "macspoofchk")]
    pub mac_spoof_chk: bool,
    #[serde(rename = "enabledad")]
    pub enable_dad: bool,
    pub disable_container_interface: bool,
    pub port_isolation: bool,

    /// The VLAN ids of `vlanTrunk`, sorted, each once (filled by `load`).
    #[serde(skip)]
    pub trunk: Vec<u16>,
    /// An `ipam` section names a plugin: addresses are configured.
    #[serde(skip)]
    pub layer3: bool,
}

impl Default for Conf {
    fn default() -> Conf {
        Conf {
            bridge: DEFAULT_BRIDGE.into(),
            is_gateway: false,
            is_default_gateway: false,
            force_address: false,
            ip_masq: false,
            ip_masq_backend: None,
            mtu: 0,
            hairpin_mode: false,
            promisc_mode: false,
            vlan: 0,
            vlan_trunk: None,
            preserve_default_vlan: false,
            mac_spoof_chk: false,
            enable_dad: false,
            disable_container_interface: false,
            port_isolation: false,
            trunk: Vec::new(),
            layer3: false,
        }
    }
}

/// One `vlanTrunk` entry: a single `id`, or a `minID`..=`maxID` range.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct VlanTrunk {
    #[serde(rename = "minID")]
    pub min_id: Option<i64>,
    #[serde(rename = "maxID")]
    pub max_id: Option<i64>,
    pub id: Option<i64>,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::invalid_config(msg)
}

fn vlan_id(what: &str, v: i64) -> Result<u16> {
    match u16::try_from(v) {
        Ok(id @ 1..=4094) => Ok(id),
        _ => Err(invalid(format!("vlanTrunk: {what} {v} is outside 1-4094"))),
    }
}

/// The VLAN ids of a `vlanTrunk` list, sorted and without duplicates.
pub fn trunk_vlans(entries: &[VlanTrunk]) -> Result<Vec<u16>> {
    let mut ids = Vec::new();
    for e in entries {
        match (e.min_id, e.max_id) {
            (Some(min), Some(max)) => {
                let (min, max) = (vlan_id("minID", min)?, vlan_id("maxID", max)?);
                if max < min {
                    return Err(invalid(format!(
                        "vlanTrunk: minID {min} is greater than maxID {max}"
                    )));
                }
                ids.extend(min..=max);
            }
            (None, Some(_)) => {
                return Err(invalid("vlanTrunk: maxID given without minID"));
            }
            (Some(_), None) => {
                return Err(invalid("vlanTrunk: minID given without maxID"));
            }
            (None, None) => {}
        }
        if let Some(id) = e.id {
            ids.push(vlan_id("id", id)?);
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

impl Conf {
    /// Decode the keys and fill in what follows from them, checking only
    /// that values have the right types. DEL and GC use this: they must not
    /// fail over a setting they do not need.
    pub fn decode(req: &Request) -> Result<Conf> {
        let mut conf: Conf = req.conf.decode()?;
        conf.layer3 = req.conf.ipam_type.is_some();
        if conf.is_default_gateway {
            conf.is_gateway = true;
        }
        Ok(conf)
    }

    /// Decode and validate every key: what ADD and CHECK use. Nothing has
    /// been changed when this fails.
    pub fn load(req: &Request) -> Result<Conf> {
        let mut conf = Conf::decode(req)?;
        netlink::check_name(&conf.bridge)
            .map_err(|e| invalid(format!("invalid \"bridge\": {e}")))?;
        if !(0..=4094).contains(&conf.vlan) {
            return Err(invalid(format!(
                "invalid VLAN id {} in \"vlan\": it must be 0 (none) or 1-4094",
                conf.vlan
            )));
        }
        conf.trunk = trunk_vlans(conf.vlan_trunk.as_deref().unwrap_or_default())?;
        plumbing::veth::mtu(conf.mtu)?;
        if conf.hairpin_mode && conf.promisc_mode {
            return Err(invalid(
                "\"hairpinMode\" and \"promiscMode\" cannot both be true",
            ));
        }
        if conf.layer3 && conf.disable_container_interface {
            return Err(invalid(
                "\"disableContainerInterface\" cannot be used with \"ipam\": \
                 addresses need the container interface up",
            ));
        }
        if !conf.layer3 && req.version.is_legacy() {
            // Checked now: the result is printed after everything is made.
            return Err(Error::incompatible(format!(
                "a bridge without \"ipam\" returns no IP addresses, which a {} result \
                 cannot carry: use cniVersion 0.3.0 or later",
                req.version
            )));
        }
        if conf.is_gateway && conf.vlan != 0 {
            let name = conf.vlan_gateway_name();
            netlink::check_name(&name).map_err(|e| {
                invalid(format!(
                    "the gateway interface for VLAN {} of bridge {:?} would be {name:?}: {e}",
                    conf.vlan, conf.bridge
                ))
            })?;
        }
        plumbing::masq::validate_backend(conf.ip_masq_backend.as_deref())?;
        Ok(conf)
    }

    /// The port's native VLAN, if any.
    pub fn native_vlan(&self) -> Option<u16> {
        u16::try_from(self.vlan).ok().filter(|v| *v != 0)
    }

    /// The bridge filters by VLAN when any VLAN is configured.
    pub fn vlan_filtering(&self) -> bool {
        self.native_vlan().is_some() || !self.trunk.is_empty()
    }

    /// With `isGateway` and `vlan`, the gateway lives on `<bridge>.<vlan>`.
    pub fn vlan_gateway_name(&self) -> String {
        format!("{}.{}", self.bridge, self.vlan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni::{Command, NetConf, Version};
    use serde_json::json;

    fn req(conf: serde_json::Value) -> Request {
        let conf = NetConf::from_value(conf).unwrap();
        Request {
            version: Version::parse(&conf.cni_version).unwrap(),
            command: Command::Add,
            container_id: "c".into(),
            netns: String::new(),
            ifname: "eth0".into(),
            args: String::new(),
            path: Vec::new(),
            stdin: Vec::new(),
            conf,
        }
    }

    fn load(extra: serde_json::Value) -> Result<Conf> {
        let mut c = json!({"cniVersion": "1.0.0", "name": "n", "type": "bridge"});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        Conf::load(&req(c))
    }

    #[test]
    fn defaults_match_the_reference() {
        let c = load(json!({})).unwrap();
        assert_eq!(c.bridge, "cni0");
        assert!(!c.is_gateway && !c.ip_masq && !c.hairpin_mode && !c.promisc_mode);
        assert!(!c.preserve_default_vlan && !c.vlan_filtering() && !c.layer3);
        assert_eq!((c.mtu, c.vlan), (0, 0));
    }

    #[test]
    fn default_gateway_implies_gateway_and_keys_fold_case() {
        let c = load(
            json!({"IsDefaultGateway": true, "MTU": 1450, "IPMASQ": true,
            "ipam": {"type": "host-local"}}),
        )
        .unwrap();
        assert!(c.is_gateway && c.is_default_gateway && c.ip_masq && c.layer3);
        assert_eq!(c.mtu, 1450);
    }

    #[test]
    fn layer2_needs_a_result_version_without_mandatory_ips() {
        let mut c = json!({"cniVersion": "0.2.0", "name": "n", "type": "bridge"});
        let e = Conf::load(&req(c.clone())).unwrap_err();
        assert_eq!(e.code, cni::code::INCOMPATIBLE_VERSION, "{e}");
        c["ipam"] = json!({"type": "host-local"});
        assert!(Conf::load(&req(c)).is_ok());
    }

    #[test]
    fn trunks_are_sorted_and_deduplicated() {
        let c = load(
            json!({"vlan": 100, "vlanTrunk": [{"id": 101}, {"minID": 200, "maxID": 203},
            {"id": 201}]}),
        )
        .unwrap();
        assert_eq!(c.trunk, [101, 200, 201, 202, 203]);
        assert_eq!(c.native_vlan(), Some(100));
        assert!(c.vlan_filtering());
    }

    #[test]
    fn bad_values_are_refused_with_the_key_named() {
        for (conf, words) in [
            (json!({"vlan": 4095}), "\"vlan\""),
            (json!({"vlan": -1}), "\"vlan\""),
            (json!({"vlanTrunk": [{"id": 0}]}), "id 0"),
            (json!({"vlanTrunk": [{"minID": 10}]}), "without maxID"),
            (json!({"vlanTrunk": [{"maxID": 10}]}), "without minID"),
            (json!({"vlanTrunk": [{"minID": 10, "maxID": 5}]}), "greater"),
            (
                json!({"vlanTrunk": [{"minID": 1, "maxID": 5000}]}),
                "maxID 5000",
            ),
            (
                json!({"hairpinMode": true, "promiscMode": true}),
                "hairpinMode",
            ),
            (json!({"bridge": "a/b"}), "\"bridge\""),
            (json!({"bridge": "a-very-long-bridge-name"}), "\"bridge\""),
            (json!({"mtu": 20}), "\"mtu\""),
            (json!({"ipMasqBackend": "ebtables"}), "ipMasqBackend"),
            // The decoder says what is wrong, though not (yet) which key.
            (json!({"isGateway": "yes"}), "expected a boolean"),
            (
                json!({"disableContainerInterface": true, "ipam": {"type": "host-local"}}),
                "disableContainerInterface",
            ),
            (
                json!({"bridge": "bridge12345", "vlan": 1000, "isGateway": true}),
                "bridge12345.1000",
            ),
        ] {
            let e = load(conf.clone()).unwrap_err();
            assert_eq!(e.code, cni::code::INVALID_CONFIG, "{conf}: {e}");
            assert!(e.msg.contains(words), "{conf}: {e}");
        }
    }
}
