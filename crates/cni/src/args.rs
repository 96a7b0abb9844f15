//! `CNI_ARGS`: `K=V;K=V` pairs, strict as the reference library is.

use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pairs: Vec<(String, String)>,
}

impl CniArgs {
    /// Parse `raw`, accepting only keys in `known` (plus `IgnoreUnknown`)
    /// unless `IgnoreUnknown` is `1` or `true` (any case), as `types.LoadArgs` does.
    pub fn parse(raw: &str, known: &[&str]) -> Result<CniArgs> {
        let mut pairs = Vec::new();
        for item in raw.split(';').filter(|s| !s.is_empty()) {
            let mut kv = item.split('=');
            let (Some(k), Some(v), None) = (kv.next(), kv.next(), kv.next()) else {
                return Err(Error::invalid_env(format!(
                    "CNI_ARGS: invalid pair {item:?}, expected KEY=VALUE"
                )));
            };
            pairs.push((k.to_string(), v.to_string()));
        }
        let args = CniArgs { pairs };
        let ignore = args
            .get("IgnoreUnknown")
            .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
        if !ignore {
            if let Some((k, _)) = args
                .pairs
                .iter()
                .find(|(k, _)| k != "IgnoreUnknown" && !known.contains(&k.as_str()))
            {
                return Err(Error::invalid_env(format!(
                    "CNI_ARGS: unknown key {k:?} (this plugin knows {known:?}; \
                     add IgnoreUnknown=1 to ignore keys it does not use)"
                )));
            }
        }
        Ok(args)
    }

    /// The last value given for `key` (keys are case-sensitive, as in Go).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_keys() {
        let a = CniArgs::parse("IP=10.0.0.2;MAC=02:00:00:00:00:01", &["IP", "MAC"]).unwrap();
        assert_eq!(a.get("IP"), Some("10.0.0.2"));
        assert_eq!(a.get("MAC"), Some("02:00:00:00:00:01"));
        assert_eq!(a.get("ip"), None);
    }

    #[test]
    fn unknown_keys_rejected_unless_ignored() {
        assert_eq!(CniArgs::parse("FOO=1", &["IP"]).unwrap_err().code, 4);
        for flag in [
            "IgnoreUnknown=1",
            "IgnoreUnknown=true",
            "IgnoreUnknown=TRUE",
        ] {
            let a = CniArgs::parse(&format!("{flag};K8S_POD_NAME=p;IP=1.2.3.4"), &["IP"]).unwrap();
            assert_eq!(a.get("IP"), Some("1.2.3.4"));
        }
        assert!(CniArgs::parse("IgnoreUnknown=0;FOO=1", &[]).is_err());
    }

    #[test]
    fn malformed_pairs_rejected() {
        for bad in ["IP", "IP=a=b", "=;x"] {
            assert!(CniArgs::parse(bad, &["IP"]).is_err(), "{bad}");
        }
        assert!(CniArgs::parse("", &[]).is_ok());
    }
}
