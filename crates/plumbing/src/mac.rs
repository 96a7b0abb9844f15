//! The MAC address a runtime asks for, by precedence:
//! `runtimeConfig.mac` (capability `mac`) > `args.cni.mac` > `CNI_ARGS MAC`.

use cni::{Error, Request, Result};
use netlink::Mac;

/// The requested MAC, or `None`. `CNI_ARGS` is read only when neither JSON
/// source names one, and strictly (unknown keys need `IgnoreUnknown=1`),
/// as the reference does.
pub fn requested(req: &Request) -> Result<Option<Mac>> {
    let from_json = |what: &str, v: Option<&serde_json::Value>| -> Result<Option<Mac>> {
        match v {
            None => Ok(None),
            Some(serde_json::Value::String(s)) if s.is_empty() => Ok(None),
            Some(serde_json::Value::String(s)) => parse(what, s).map(Some),
            Some(other) => Err(Error::invalid_config(format!(
                "{what} must be a string like \"0a:58:0a:01:00:05\", not {other}"
            ))),
        }
    };
    if let Some(mac) = from_json("runtimeConfig.mac", req.conf.runtime_config("mac"))? {
        return Ok(Some(mac));
    }
    if let Some(mac) = from_json("args.cni.mac", req.conf.cni_arg("mac"))? {
        return Ok(Some(mac));
    }
    match req.cni_args(&["MAC"])?.get("MAC") {
        None | Some("") => Ok(None),
        Some(s) => parse("CNI_ARGS MAC", s).map(Some),
    }
}

fn parse(what: &str, s: &str) -> Result<Mac> {
    let mac: Mac = s
        .parse()
        .map_err(|e| Error::invalid_config(format!("{what}: {e}")))?;
    // A multicast source address would never be accepted by the kernel.
    if mac.0[0] & 1 != 0 {
        return Err(Error::invalid_config(format!(
            "{what}: {s} is a multicast address; a unicast MAC is needed"
        )));
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni::{Command, NetConf, Version};
    use serde_json::json;

    fn req(conf: serde_json::Value, args: &str) -> Request {
        Request {
            command: Command::Add,
            container_id: "c".into(),
            netns: String::new(),
            ifname: "eth0".into(),
            args: args.into(),
            path: Vec::new(),
            stdin: Vec::new(),
            conf: NetConf::from_value(conf).unwrap(),
            version: Version::V1_0_0,
        }
    }

    #[test]
    fn runtime_config_beats_args_beats_cni_args() {
        let all = json!({"name": "n", "runtimeConfig": {"mac": "02:00:00:00:00:01"},
            "args": {"cni": {"mac": "02:00:00:00:00:02"}}});
        let env = "MAC=02:00:00:00:00:03";
        let got = |c, a| requested(&req(c, a)).unwrap().map(|m| m.to_string());
        assert_eq!(got(all, env).as_deref(), Some("02:00:00:00:00:01"));
        let args = json!({"name": "n", "args": {"cni": {"mac": "02:00:00:00:00:02"}}});
        assert_eq!(got(args, env).as_deref(), Some("02:00:00:00:00:02"));
        assert_eq!(
            got(json!({"name": "n"}), env).as_deref(),
            Some("02:00:00:00:00:03")
        );
        assert_eq!(got(json!({"name": "n"}), ""), None);
    }

    #[test]
    fn bad_values_are_config_errors() {
        for (conf, args) in [
            (json!({"name": "n", "runtimeConfig": {"mac": "nope"}}), ""),
            (json!({"name": "n", "args": {"cni": {"mac": 5}}}), ""),
            (json!({"name": "n"}), "MAC=01:00:5e:00:00:01"),
        ] {
            let e = requested(&req(conf, args)).unwrap_err();
            assert_eq!(e.code, cni::code::INVALID_CONFIG, "{e}");
        }
        let e = requested(&req(json!({"name": "n"}), "FOO=1")).unwrap_err();
        assert_eq!(e.code, cni::code::INVALID_ENV, "{e}");
        assert!(requested(&req(json!({"name": "n"}), "FOO=1;IgnoreUnknown=1")).is_ok());
    }
}
