//! `cnitool add|check|del|status|gc <network> [<netns>]`: run a network
//! configuration's plugins by hand, the way the reference `cnitool` does,
//! on top of `libcni`.
//!
//! Environment: `NETCONFPATH` (configuration dir, default /etc/cni/net.d),
//! `CNI_PATH` (plugin dirs, `:`-separated), `CNI_IFNAME` (default eth0),
//! `CAP_ARGS` (capability arguments as a JSON object), `CNI_ARGS`
//! (`K=V;K=V`), `CNI_CONTAINERID` (default: derived from the netns path, as
//! the reference does), and our additions `CNI_CACHE_DIR` (result cache,
//! default /var/lib/cni) and `CNI_VALID_ATTACHMENTS` (for gc: a JSON list of
//! `{"containerID","ifname"}` to keep; without it every cached attachment of
//! the network is deleted, as with the reference).

use libcni::{conf, Attachment, CniConfig, RuntimeConf};
use serde_json::{Map, Value};
use sha2::{Digest, Sha512};
use std::path::{Component, Path, PathBuf};

const USAGE: &str = "\
cnitool: add, check, delete, garbage-collect or query the status of networks in a network namespace
  cnitool add    <net> <netns>
  cnitool check  <net> <netns>
  cnitool del    <net> <netns>
  cnitool status <net>
  cnitool gc     <net>
environment: NETCONFPATH (default /etc/cni/net.d), CNI_PATH, CNI_IFNAME (default eth0),
  CAP_ARGS (JSON object), CNI_ARGS (K=V;K=V), CNI_CONTAINERID (default from the netns path),
  CNI_CACHE_DIR (default /var/lib/cni), CNI_VALID_ATTACHMENTS (gc: JSON [{containerID,ifname}])";

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let env = |k: &str| std::env::var(k).ok();
    match run(&argv, &env) {
        Ok(Some(out)) => println!("{out}"),
        Ok(None) => {}
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(1);
        }
    }
}

/// The whole tool, with the environment injected: what to print on success.
fn run(argv: &[String], env: &dyn Fn(&str) -> Option<String>) -> Result<Option<String>, String> {
    let (cmd, net, netns) = match argv {
        [cmd, net] if cmd == "status" || cmd == "gc" => (cmd.as_str(), net, None),
        [cmd, net, netns] => (cmd.as_str(), net, Some(netns)),
        _ => return Err(USAGE.into()),
    };
    if !["add", "check", "del", "status", "gc"].contains(&cmd) {
        return Err(format!("unknown command {cmd:?}\n{USAGE}"));
    }
    let conf_dir = env("NETCONFPATH")
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "/etc/cni/net.d".into());
    let list = conf::load(Path::new(&conf_dir), net).map_err(|e| e.to_string())?;
    let cache_dir = env("CNI_CACHE_DIR")
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "/var/lib/cni".into());
    let path = env("CNI_PATH").unwrap_or_default();
    let cni = CniConfig::new(
        std::env::split_paths(&path)
            .filter(|p| !p.as_os_str().is_empty())
            .collect(),
        cache_dir,
    );

    match cmd {
        "status" => {
            return cni
                .status_network_list(&list)
                .map(|_| None)
                .map_err(|e| e.to_string())
        }
        "gc" => {
            let valid = match env("CNI_VALID_ATTACHMENTS").filter(|s| !s.is_empty()) {
                Some(text) => Some(parse_attachments(&text)?),
                None => None,
            };
            return cni
                .gc_network_list(&list, valid.as_deref())
                .map(|_| None)
                .map_err(|e| e.to_string());
        }
        _ => {}
    }

    let netns = absolute(Path::new(netns.map(String::as_str).unwrap_or_default()))?;
    let rt = RuntimeConf {
        container_id: env("CNI_CONTAINERID")
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| container_id_for(&netns)),
        netns: netns.display().to_string(),
        ifname: env("CNI_IFNAME").unwrap_or_else(|| "eth0".into()),
        args: parse_cni_args(&env("CNI_ARGS").unwrap_or_default())?,
        capability_args: parse_cap_args(&env("CAP_ARGS").unwrap_or_default())?,
    };
    match cmd {
        "add" => {
            let result = cni
                .add_network_list(&list, &rt)
                .map_err(|e| e.to_string())?;
            Ok(Some(pretty(&result)))
        }
        "check" => cni
            .check_network_list(&list, &rt)
            .map(|_| None)
            .map_err(|e| e.to_string()),
        _ => cni
            .del_network_list(&list, &rt)
            .map(|_| None)
            .map_err(|e| e.to_string()),
    }
}

/// The reference cnitool's container ID: `cnitool-` and the first 10 bytes
/// of SHA-512 of the absolute netns path, in hex.
fn container_id_for(netns: &Path) -> String {
    let digest = Sha512::digest(netns.as_os_str().as_encoded_bytes());
    let hex: String = digest.iter().take(10).map(|b| format!("{b:02x}")).collect();
    format!("cnitool-{hex}")
}

/// An absolute, lexically cleaned path (symlinks are not resolved, as Go's `filepath.Abs`).
fn absolute(p: &Path) -> Result<PathBuf, String> {
    if p.as_os_str().is_empty() {
        return Err(format!("missing netns path\n{USAGE}"));
    }
    let full = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| format!("cannot resolve {}: {e}", p.display()))?
            .join(p)
    };
    let mut clean = PathBuf::from("/");
    for c in full.components() {
        match c {
            Component::ParentDir => {
                clean.pop();
            }
            Component::Normal(part) => clean.push(part),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(clean)
}

/// `K=V;K=V`, each pair with one `=` and both sides non-empty.
fn parse_cni_args(raw: &str) -> Result<Vec<(String, String)>, String> {
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    raw.split(';')
        .map(|pair| match pair.split('=').collect::<Vec<_>>()[..] {
            [k, v] if !k.is_empty() && !v.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!(
                "invalid CNI_ARGS pair {pair:?}: expected KEY=VALUE"
            )),
        })
        .collect()
}

fn parse_cap_args(raw: &str) -> Result<Map<String, Value>, String> {
    if raw.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str(raw) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("CAP_ARGS must be a JSON object".into()),
        Err(e) => Err(format!("CAP_ARGS is not valid JSON: {e}")),
    }
}

fn parse_attachments(raw: &str) -> Result<Vec<Attachment>, String> {
    serde_json::from_str(raw).map_err(|e| {
        format!("CNI_VALID_ATTACHMENTS must be a JSON list of {{\"containerID\",\"ifname\"}}: {e}")
    })
}

/// JSON indented by four spaces, as the reference prints results.
fn pretty(v: &Value) -> String {
    use serde::Serialize;
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    match v.serialize(&mut ser) {
        Ok(()) => String::from_utf8_lossy(&out).into_owned(),
        Err(_) => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_id_matches_the_reference_derivation() {
        let id = container_id_for(Path::new("/run/netns/testing"));
        assert!(id.starts_with("cnitool-"));
        assert_eq!(id.len(), "cnitool-".len() + 20);
        assert!(cni::config::is_valid_id(&id));
        assert_ne!(id, container_id_for(Path::new("/run/netns/other")));
    }

    #[test]
    fn paths_are_made_absolute_and_clean() {
        assert_eq!(
            absolute(Path::new("/run/netns/../netns/./x")).unwrap(),
            PathBuf::from("/run/netns/x")
        );
        assert!(absolute(Path::new("x")).unwrap().is_absolute());
        assert!(absolute(Path::new("")).is_err());
    }

    #[test]
    fn cni_args_and_cap_args() {
        assert_eq!(
            parse_cni_args("IP=10.0.0.2;IgnoreUnknown=1").unwrap(),
            vec![
                ("IP".to_string(), "10.0.0.2".to_string()),
                ("IgnoreUnknown".to_string(), "1".to_string())
            ]
        );
        for bad in ["IP", "IP=", "=x", "a=b=c", "A=1;"] {
            assert!(parse_cni_args(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_cap_args(r#"{"ips":["10.0.0.2/24"]}"#).unwrap()["ips"][0],
            "10.0.0.2/24"
        );
        assert!(parse_cap_args("[1]").is_err());
        assert!(parse_cap_args("{").is_err());
    }

    #[test]
    fn usage_errors() {
        let env = |_: &str| None;
        for argv in [vec![], vec!["add", "n"], vec!["frob", "n", "/x"]] {
            let argv: Vec<String> = argv.into_iter().map(String::from).collect();
            assert!(run(&argv, &env).is_err());
        }
        let gc = vec!["gc".to_string(), "missing".to_string()];
        let env = |k: &str| (k == "NETCONFPATH").then(|| "/nonexistent-cnitool-test".to_string());
        let e = run(&gc, &env).unwrap_err();
        assert!(e.contains("no net configurations found"), "{e}");
    }

    #[test]
    fn pretty_prints_with_four_spaces() {
        assert_eq!(pretty(&serde_json::json!({"a": 1})), "{\n    \"a\": 1\n}");
    }
}
