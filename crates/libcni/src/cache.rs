//! The result cache, in the reference library's on-disk format so that this
//! runtime and Go runtimes can read each other's entries:
//! `<dir>/results/<network>-<containerID>-<ifname>` holding
//! `{"kind":"cniCacheV1","containerId","config"(base64),"ifName","networkName",
//! "netns","cniArgs","capabilityArgs","result"}`.

use crate::error::{Error, Result};
use base64::{engine::general_purpose::STANDARD, Engine as _};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Makes temp file names unique between threads of one process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

pub const KIND_V1: &str = "cniCacheV1";

/// One cached attachment: what was run, with which arguments, and its result.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Entry {
    pub network_name: String,
    pub container_id: String,
    pub ifname: String,
    pub netns: String,
    /// The network configuration as loaded when ADD ran.
    pub config: Vec<u8>,
    pub cni_args: Vec<(String, String)>,
    pub capability_args: Map<String, Value>,
    pub result: Option<Value>,
}

#[derive(Serialize, Deserialize, Default)]
struct OnDisk {
    #[serde(default)]
    kind: String,
    #[serde(rename = "containerId", default)]
    container_id: String,
    #[serde(default)]
    config: Option<String>,
    #[serde(rename = "ifName", default)]
    ifname: String,
    #[serde(rename = "networkName", default)]
    network_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    netns: String,
    #[serde(rename = "cniArgs", default, skip_serializing_if = "Option::is_none")]
    cni_args: Option<Vec<[String; 2]>>,
    #[serde(
        rename = "capabilityArgs",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    capability_args: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<Value>,
}

impl Entry {
    /// The file contents for this entry.
    pub fn encode(&self) -> Vec<u8> {
        let disk = OnDisk {
            kind: KIND_V1.into(),
            container_id: self.container_id.clone(),
            config: Some(STANDARD.encode(&self.config)),
            ifname: self.ifname.clone(),
            network_name: self.network_name.clone(),
            netns: self.netns.clone(),
            cni_args: (!self.cni_args.is_empty()).then(|| {
                self.cni_args
                    .iter()
                    .map(|(k, v)| [k.clone(), v.clone()])
                    .collect()
            }),
            capability_args: (!self.capability_args.is_empty())
                .then(|| self.capability_args.clone()),
            result: self.result.clone(),
        };
        serde_json::to_vec(&disk).unwrap_or_default()
    }

    /// Read a cache file. Files from before `cniCacheV1` hold just the result.
    pub fn decode(bytes: &[u8]) -> std::result::Result<Entry, String> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        if value.get("kind").and_then(Value::as_str) != Some(KIND_V1) {
            return Ok(Entry {
                result: Some(value),
                ..Entry::default()
            });
        }
        let disk: OnDisk = serde_json::from_value(value).map_err(|e| e.to_string())?;
        let config = match disk.config {
            Some(text) => STANDARD.decode(&text).map_err(|_| "config is not base64")?,
            None => Vec::new(),
        };
        Ok(Entry {
            network_name: disk.network_name,
            container_id: disk.container_id,
            ifname: disk.ifname,
            netns: disk.netns,
            config,
            cni_args: disk
                .cni_args
                .unwrap_or_default()
                .into_iter()
                .map(|[k, v]| (k, v))
                .collect(),
            capability_args: disk.capability_args.unwrap_or_default(),
            result: disk.result,
        })
    }

    /// True for an entry written in the current format with its keys filled.
    fn is_attachment(&self) -> bool {
        !self.network_name.is_empty() && !self.ifname.is_empty() && !self.container_id.is_empty()
    }
}

/// The cache directory (the reference default is `/var/lib/cni`).
#[derive(Debug, Clone)]
pub struct Cache {
    pub dir: PathBuf,
}

/// A name usable as part of a file name in the cache.
fn safe_part(s: &str) -> bool {
    !s.is_empty() && !s.contains('/') && s != "." && s != ".." && !s.contains('\0')
}

impl Cache {
    pub fn new(dir: impl Into<PathBuf>) -> Cache {
        Cache { dir: dir.into() }
    }

    fn results_dir(&self) -> PathBuf {
        self.dir.join("results")
    }

    /// Where the entry for (network, container, ifname) lives; None when a
    /// part is empty or could escape the directory.
    pub fn path(&self, network: &str, container_id: &str, ifname: &str) -> Option<PathBuf> {
        [network, container_id, ifname]
            .iter()
            .all(|p| safe_part(p))
            .then(|| {
                self.results_dir()
                    .join(format!("{network}-{container_id}-{ifname}"))
            })
    }

    /// Write an entry atomically (temp file + rename), directories 0700, file 0600.
    pub fn store(&self, entry: &Entry) -> Result<()> {
        let path = self
            .path(&entry.network_name, &entry.container_id, &entry.ifname)
            .ok_or_else(|| {
                Error::Cache(format!(
                    "cache file path requires network name ({:?}), container ID ({:?}) and \
                     interface name ({:?}) without '/'",
                    entry.network_name, entry.container_id, entry.ifname
                ))
            })?;
        let fail = |what: &str, p: &Path, e: std::io::Error| {
            Error::Cache(format!("failed to {what} {}: {e}", p.display()))
        };
        let dir = self.results_dir();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| fail("create", &dir, e))?;
        let tmp = dir.join(format!(
            ".{}.tmp{}-{}",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| fail("create", &tmp, e))?;
        file.write_all(&entry.encode())
            .and_then(|_| file.sync_all())
            .map_err(|e| fail("write", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            fail("rename into", &path, e)
        })
    }

    /// The entry for (network, container, ifname); None when there is none.
    pub fn load(&self, network: &str, container_id: &str, ifname: &str) -> Result<Option<Entry>> {
        let Some(path) = self.path(network, container_id, ifname) else {
            return Ok(None);
        };
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            // Nothing cached (or unreadable): DEL must still be able to proceed.
            Err(_) => return Ok(None),
        };
        Entry::decode(&bytes).map(Some).map_err(|e| {
            Error::Cache(format!(
                "failed to parse cached network {network:?} ({}): {e}",
                path.display()
            ))
        })
    }

    /// Remove the entry; a missing one is fine.
    pub fn remove(&self, network: &str, container_id: &str, ifname: &str) {
        if let Some(path) = self.path(network, container_id, ifname) {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Every current-format entry, optionally only those of one container,
    /// in file-name order. Unreadable or foreign files are skipped.
    pub fn attachments(&self, container_id: Option<&str>) -> Vec<Entry> {
        let Ok(dir) = std::fs::read_dir(self.results_dir()) else {
            return Vec::new();
        };
        let mut names: Vec<PathBuf> = dir
            .filter_map(|e| e.ok())
            // Dot files are our temp files, caught half-way.
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| e.path())
            .collect();
        names.sort();
        names
            .iter()
            .filter_map(|p| std::fs::read(p).ok())
            .filter_map(|b| Entry::decode(&b).ok())
            .filter(Entry::is_attachment)
            .filter(|e| container_id.is_none_or(|c| e.container_id == c))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry() -> Entry {
        let mut caps = Map::new();
        caps.insert("ips".into(), json!(["10.0.0.5/24"]));
        Entry {
            network_name: "net".into(),
            container_id: "cid".into(),
            ifname: "eth0".into(),
            netns: "/run/netns/x".into(),
            config: br#"{"name":"net"}"#.to_vec(),
            cni_args: vec![("IP".into(), "10.0.0.5".into())],
            capability_args: caps,
            result: Some(json!({"cniVersion":"1.0.0","ips":[{"address":"10.0.0.5/24"}]})),
        }
    }

    #[test]
    fn encodes_the_reference_format() {
        let v: Value = serde_json::from_slice(&entry().encode()).unwrap();
        assert_eq!(v["kind"], "cniCacheV1");
        assert_eq!(v["containerId"], "cid");
        assert_eq!(v["ifName"], "eth0");
        assert_eq!(v["networkName"], "net");
        assert_eq!(v["netns"], "/run/netns/x");
        // Go encodes []byte as base64.
        assert_eq!(v["config"], "eyJuYW1lIjoibmV0In0=");
        assert_eq!(v["cniArgs"], json!([["IP", "10.0.0.5"]]));
        assert_eq!(v["capabilityArgs"]["ips"][0], "10.0.0.5/24");
        assert_eq!(v["result"]["cniVersion"], "1.0.0");
        let bare = Entry {
            cni_args: vec![],
            capability_args: Map::new(),
            netns: String::new(),
            ..entry()
        };
        let v: Value = serde_json::from_slice(&bare.encode()).unwrap();
        assert!(v.get("cniArgs").is_none() && v.get("capabilityArgs").is_none());
        assert!(v.get("netns").is_none());
    }

    #[test]
    fn decodes_what_go_writes_and_legacy_files() {
        let go = br#"{"kind":"cniCacheV1","containerId":"cid","config":"eyJuYW1lIjoibmV0In0=","ifName":"eth0","networkName":"net","cniArgs":[["IP","10.0.0.5"]],"capabilityArgs":{"ips":["10.0.0.5/24"]},"result":{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.5/24"}]}}"#;
        let e = Entry::decode(go).unwrap();
        assert_eq!(
            e,
            Entry {
                netns: String::new(),
                ..entry()
            }
        );
        let legacy =
            Entry::decode(br#"{"cniVersion":"0.2.0","ip4":{"ip":"10.0.0.2/24"}}"#).unwrap();
        assert_eq!(legacy.result.unwrap()["ip4"]["ip"], "10.0.0.2/24");
        assert!(legacy.network_name.is_empty());
        assert!(Entry::decode(b"nope").is_err());
    }

    #[test]
    fn store_load_list_remove() {
        let dir = std::env::temp_dir().join(format!("libcni-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cache = Cache::new(&dir);
        cache.store(&entry()).unwrap();
        cache
            .store(&Entry {
                container_id: "other".into(),
                ..entry()
            })
            .unwrap();
        let file = dir.join("results/net-cid-eth0");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(cache.load("net", "cid", "eth0").unwrap(), Some(entry()));
        assert_eq!(cache.load("net", "nope", "eth0").unwrap(), None);
        assert_eq!(cache.attachments(None).len(), 2);
        assert_eq!(cache.attachments(Some("other")).len(), 1);
        cache.remove("net", "cid", "eth0");
        assert!(!file.exists());
        assert!(cache.path("net", "../x", "eth0").is_none());
        assert!(cache
            .store(&Entry {
                container_id: "a/b".into(),
                ..entry()
            })
            .is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
