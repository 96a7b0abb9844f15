//! Network configuration as a plugin receives it, and conflists as runtimes load them.

use crate::ci;
use crate::error::{Error, Result};
use crate::result::Dns;
use crate::version::Version;
use serde::Deserialize;
use serde_json::{Map, Value};

/// The keys every plugin shares; the full object stays in `raw` so that a
/// plugin can decode its own keys and nothing unknown is lost.
#[derive(Debug, Clone)]
pub struct NetConf {
    pub cni_version: String,
    pub name: String,
    pub plugin_type: String,
    pub ip_masq: bool,
    pub ipam_type: Option<String>,
    pub dns: Dns,
    pub disable_check: bool,
    pub disable_gc: bool,
    pub raw: Value,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct CommonKeys {
    cni_version: String,
    name: String,
    #[serde(rename = "type")]
    plugin_type: String,
    ip_masq: bool,
    ipam: Option<IpamType>,
    dns: Option<Dns>,
    disable_check: bool,
    #[serde(rename = "disableGC")]
    disable_gc: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct IpamType {
    #[serde(rename = "type")]
    plugin_type: String,
}

impl NetConf {
    /// Decode stdin. A missing `cniVersion` means 0.1.0, as in the reference.
    pub fn parse(bytes: &[u8]) -> Result<NetConf> {
        let raw: Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::decode(format!("error parsing network configuration: {e}")))?;
        NetConf::from_value(raw)
    }

    pub fn from_value(raw: Value) -> Result<NetConf> {
        if !raw.is_object() {
            return Err(Error::decode(
                "error parsing network configuration: expected a JSON object",
            ));
        }
        let keys: CommonKeys = ci::from_value(raw.clone())
            .map_err(|e| Error::decode(format!("error parsing network configuration: {e}")))?;
        Ok(NetConf {
            cni_version: if keys.cni_version.is_empty() {
                Version::V0_1_0.as_str().to_string()
            } else {
                keys.cni_version
            },
            name: keys.name,
            plugin_type: keys.plugin_type,
            ip_masq: keys.ip_masq,
            ipam_type: keys.ipam.map(|i| i.plugin_type).filter(|t| !t.is_empty()),
            dns: keys.dns.unwrap_or_default(),
            disable_check: keys.disable_check,
            disable_gc: keys.disable_gc,
            raw,
        })
    }

    /// Decode the plugin's own keys from the whole object (keys match ignoring case).
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        ci::from_value(self.raw.clone()).map_err(|e| {
            Error::invalid_config(format!(
                "invalid configuration for network \"{}\" (type \"{}\"): {e}",
                self.name, self.plugin_type
            ))
        })
    }

    /// A top-level key, looked up as Go would (exact, then ignoring case).
    pub fn get(&self, key: &str) -> Option<&Value> {
        get_ci(self.raw.as_object()?, key)
    }

    /// `runtimeConfig.<key>`, or None when absent or null.
    pub fn runtime_config(&self, key: &str) -> Option<&Value> {
        get_ci(self.get("runtimeConfig")?.as_object()?, key).filter(|v| !v.is_null())
    }

    /// `args.cni.<key>`, or None when absent or null.
    pub fn cni_arg(&self, key: &str) -> Option<&Value> {
        let cni = get_ci(self.get("args")?.as_object()?, "cni")?;
        get_ci(cni.as_object()?, key).filter(|v| !v.is_null())
    }

    /// The previous plugin's result in a chain, if any.
    pub fn prev_result(&self) -> Option<&Value> {
        self.get("prevResult").filter(|v| !v.is_null())
    }
}

/// Go's field lookup: an exact key first, then one equal ignoring ASCII case.
pub fn get_ci<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// A network configuration list (`.conflist`).
#[derive(Debug, Clone)]
pub struct ConfList {
    pub cni_version: String,
    pub cni_versions: Vec<String>,
    pub name: String,
    pub disable_check: bool,
    pub disable_gc: bool,
    pub plugins: Vec<Value>,
    pub raw: Value,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ConfListKeys {
    cni_version: String,
    cni_versions: Vec<String>,
    name: String,
    disable_check: bool,
    #[serde(rename = "disableGC")]
    disable_gc: bool,
    plugins: Option<Vec<Value>>,
}

impl ConfList {
    pub fn parse(bytes: &[u8]) -> Result<ConfList> {
        let raw: Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::decode(format!("error parsing configuration list: {e}")))?;
        let keys: ConfListKeys = ci::from_value(raw.clone())
            .map_err(|e| Error::decode(format!("error parsing configuration list: {e}")))?;
        if keys.name.is_empty() {
            return Err(Error::invalid_config(
                "error parsing configuration list: no name",
            ));
        }
        let plugins = keys.plugins.ok_or_else(|| {
            Error::invalid_config(format!(
                "error parsing configuration list \"{}\": no 'plugins' key",
                keys.name
            ))
        })?;
        if plugins.is_empty() {
            return Err(Error::invalid_config(format!(
                "error parsing configuration list \"{}\": no plugins in list",
                keys.name
            )));
        }
        Ok(ConfList {
            cni_version: keys.cni_version,
            cni_versions: keys.cni_versions,
            name: keys.name,
            disable_check: keys.disable_check,
            disable_gc: keys.disable_gc,
            plugins,
            raw,
        })
    }

    /// Wrap a single `.conf` network as a one-plugin list.
    pub fn from_single(conf: Value) -> Result<ConfList> {
        let nc = NetConf::from_value(conf.clone())?;
        let mut list = serde_json::json!({
            "cniVersion": nc.cni_version, "name": nc.name, "plugins": [conf]});
        if nc.disable_check {
            list["disableCheck"] = true.into();
        }
        ConfList::parse(list.to_string().as_bytes())
    }

    /// The version to run the list at: the highest of `cniVersions` we know,
    /// else `cniVersion`.
    pub fn version(&self) -> Result<Version> {
        let best = self
            .cni_versions
            .iter()
            .filter_map(|v| Version::parse(v).ok())
            .max();
        match best {
            Some(v) => Ok(v),
            None if self.cni_version.is_empty() => Ok(Version::V0_1_0),
            None => Version::parse(&self.cni_version),
        }
    }
}

/// Valid network names and container IDs: `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`.
pub fn is_valid_id(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn missing_version_means_0_1_0_and_keys_fold_case() {
        let c = NetConf::parse(
            br#"{"Name":"n","TYPE":"bridge","IPAM":{"Type":"host-local"},"ipmasq":true}"#,
        )
        .unwrap();
        assert_eq!(c.cni_version, "0.1.0");
        assert_eq!(c.name, "n");
        assert_eq!(c.plugin_type, "bridge");
        assert_eq!(c.ipam_type.as_deref(), Some("host-local"));
        assert!(c.ip_masq);
    }

    #[test]
    fn runtime_config_and_args_lookups() {
        let c = NetConf::from_value(json!({"name":"n","runtimeConfig":{"ips":["10.0.0.2/24"]},
            "args":{"cni":{"ips":["10.0.0.3"]}}}))
        .unwrap();
        assert_eq!(c.runtime_config("IPs").unwrap()[0], "10.0.0.2/24");
        assert_eq!(c.cni_arg("ips").unwrap()[0], "10.0.0.3");
        assert!(c.runtime_config("mac").is_none());
    }

    #[test]
    fn malformed_input_is_decode_error() {
        for bad in [&b"{"[..], b"[]", b"\"x\"", br#"{"name": 3}"#] {
            assert_eq!(
                NetConf::parse(bad).unwrap_err().code,
                6,
                "{:?}",
                std::str::from_utf8(bad)
            );
        }
    }

    #[test]
    fn conflist_picks_highest_known_version() {
        let l = ConfList::parse(
            br#"{"cniVersion":"0.4.0","cniVersions":["1.0.0","1.1.0","9.0.0"],
            "name":"n","plugins":[{"type":"loopback"}]}"#,
        )
        .unwrap();
        assert_eq!(l.version().unwrap(), Version::V1_1_0);
        assert!(ConfList::parse(br#"{"name":"n","plugins":[]}"#).is_err());
        assert!(ConfList::parse(br#"{"plugins":[{}]}"#).is_err());
    }

    #[test]
    fn ids() {
        for ok in ["a", "abc-1.2_3", "0"] {
            assert!(is_valid_id(ok), "{ok}");
        }
        for bad in ["", "-a", "../../etc", "a/b", "a b", ".x"] {
            assert!(!is_valid_id(bad), "{bad}");
        }
    }
}
