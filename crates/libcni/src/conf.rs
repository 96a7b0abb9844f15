//! Finding and loading network configurations as runtimes do: `.conflist`
//! files first, then single-plugin `.conf`/`.json` files, each plugin list
//! optionally extended from `<dir>/<network name>/*.conf` (spec 1.1.0).

use crate::error::{Error, Result};
use cni::{ConfList, NetConf, Version};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// A loaded network, ready to run.
#[derive(Debug, Clone)]
pub struct NetworkConfigList {
    pub name: String,
    /// The version every plugin is called with (see [`negotiate_version`]);
    /// passed through as written when it is not one we know, so that the
    /// plugins, not the runtime, decide about it.
    pub cni_version: String,
    pub disable_check: bool,
    pub disable_gc: bool,
    /// The plugin objects in chain order, each with a `type`.
    pub plugins: Vec<Value>,
    /// The configuration as loaded; stored in the result cache.
    pub bytes: Vec<u8>,
}

impl NetworkConfigList {
    /// Parse conflist JSON (inlined plugins only).
    pub fn from_bytes(bytes: &[u8]) -> Result<NetworkConfigList> {
        let raw: Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::Config(format!("error parsing configuration list: {e}")))?;
        Self::from_parts(raw, bytes.to_vec())
    }

    /// Load a `.conflist` file, appending `<dir>/<name>/*.conf` plugins unless
    /// the list sets `loadOnlyInlinedPlugins`.
    pub fn from_file(path: &Path) -> Result<NetworkConfigList> {
        let bytes = read(path)?;
        let mut raw: Value = serde_json::from_slice(&bytes).map_err(|e| {
            Error::Config(format!(
                "error parsing configuration list {}: {e}",
                path.display()
            ))
        })?;
        let inlined_only = raw
            .get("loadOnlyInlinedPlugins")
            .is_some_and(|v| v == &json!(true) || v == &json!("true"));
        let name = raw.get("name").and_then(Value::as_str).unwrap_or_default();
        if !inlined_only && is_plain_name(name) {
            let dir = path.parent().unwrap_or(Path::new(".")).join(name);
            let mut extra = Vec::new();
            for file in conf_files(&dir, &["conf"])? {
                extra.push(plugin_from_bytes(&read(&file)?, &file)?);
            }
            if !extra.is_empty() {
                if let Some(obj) = raw.as_object_mut() {
                    let plugins = obj.entry("plugins").or_insert_with(|| json!([]));
                    if let Some(list) = plugins.as_array_mut() {
                        list.extend(extra);
                    }
                }
            }
        }
        Self::from_parts(raw, bytes).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// Wrap a single-plugin network (`.conf`) as a one-plugin list.
    pub fn from_single(bytes: &[u8]) -> Result<NetworkConfigList> {
        let conf = plugin_from_bytes(bytes, Path::new("<single config>"))?;
        let nc = NetConf::from_value(conf.clone()).map_err(|e| Error::Config(e.to_string()))?;
        let mut list = json!({"name": nc.name, "cniVersion": nc.cni_version, "plugins": [conf]});
        if nc.disable_check {
            list["disableCheck"] = true.into();
        }
        let bytes = list.to_string().into_bytes();
        Self::from_parts(list, bytes)
    }

    fn from_parts(raw: Value, bytes: Vec<u8>) -> Result<NetworkConfigList> {
        let text = raw.to_string();
        let list = ConfList::parse(text.as_bytes()).map_err(|e| Error::Config(e.to_string()))?;
        for (i, plugin) in list.plugins.iter().enumerate() {
            if plugin_type(plugin).is_empty() {
                return Err(Error::Config(format!(
                    "network {:?}: plugin {i} has no \"type\"",
                    list.name
                )));
            }
        }
        Ok(NetworkConfigList {
            cni_version: negotiate_version(&list.cni_version, &list.cni_versions),
            name: list.name,
            disable_check: list.disable_check,
            disable_gc: list.disable_gc,
            plugins: list.plugins,
            bytes,
        })
    }

    /// The negotiated version, when it is one we know.
    pub fn version(&self) -> Option<Version> {
        Version::parse(self.effective_version()).ok()
    }

    /// `cniVersion` with the spec's default for a missing one.
    pub fn effective_version(&self) -> &str {
        if self.cni_version.is_empty() {
            Version::V0_1_0.as_str()
        } else {
            &self.cni_version
        }
    }
}

/// The version to run a list at: the highest known version among
/// `cniVersions` and `cniVersion`; if none is known, `cniVersion` as written.
pub fn negotiate_version(cni_version: &str, cni_versions: &[String]) -> String {
    cni_versions
        .iter()
        .map(String::as_str)
        .chain(std::iter::once(cni_version))
        .filter_map(|v| Version::parse(v).ok())
        .max()
        .map(|v| v.as_str().to_string())
        .unwrap_or_else(|| cni_version.to_string())
}

/// A plugin's `type` ("" when missing).
pub fn plugin_type(plugin: &Value) -> &str {
    plugin
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn plugin_from_bytes(bytes: &[u8], origin: &Path) -> Result<Value> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        Error::Config(format!(
            "error parsing configuration {}: {e}",
            origin.display()
        ))
    })?;
    if !v.is_object() || plugin_type(&v).is_empty() {
        return Err(Error::Config(format!(
            "error parsing configuration {}: missing 'type'",
            origin.display()
        )));
    }
    Ok(v)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Config(format!("error reading {}: {e}", path.display())))
}

fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/')
}

/// Regular files in `dir` whose extension is one of `exts`, sorted by name;
/// a missing directory has none.
pub fn conf_files(dir: &Path, exts: &[&str]) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::Config(format!("reading {}: {e}", dir.display()))),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            p.extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| exts.contains(&x))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Load one file: a `.conflist` as a list, anything else as a single-plugin network.
pub fn load_file(path: &Path) -> Result<NetworkConfigList> {
    if path.extension().is_some_and(|x| x == "conflist") {
        NetworkConfigList::from_file(path)
    } else {
        NetworkConfigList::from_single(&read(path)?)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }
}

/// Find network `name` in `dir`: the first `.conflist` (by file name) with
/// that name, else the first `.conf`/`.json` single-plugin network.
pub fn load(dir: &Path, name: &str) -> Result<NetworkConfigList> {
    let lists = conf_files(dir, &["conflist"])?;
    for file in &lists {
        let list = NetworkConfigList::from_file(file)?;
        if list.name == name {
            return Ok(list);
        }
    }
    let singles = conf_files(dir, &["conf", "json"])?;
    if lists.is_empty() && singles.is_empty() {
        return Err(Error::Config(format!(
            "no net configurations found in {}",
            dir.display()
        )));
    }
    for file in &singles {
        let bytes = read(file)?;
        let conf = plugin_from_bytes(&bytes, file)?;
        if conf.get("name").and_then(Value::as_str) == Some(name) {
            return NetworkConfigList::from_single(&bytes);
        }
    }
    Err(Error::Config(format!(
        "no net configuration with name {name:?} in {}",
        dir.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("libcni-conf-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn negotiates_highest_known_version() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(negotiate_version("0.4.0", &v(&["1.0.0", "9.9.9"])), "1.0.0");
        assert_eq!(negotiate_version("1.0.0", &v(&["0.4.0"])), "1.0.0");
        assert_eq!(negotiate_version("", &v(&["1.1.0", "0.3.1"])), "1.1.0");
        // Unknown versions pass through for the plugin to refuse.
        assert_eq!(negotiate_version("7.0.0", &[]), "7.0.0");
        assert_eq!(negotiate_version("", &[]), "");
    }

    #[test]
    fn list_requires_plugin_types() {
        let ok = NetworkConfigList::from_bytes(
            br#"{"cniVersion":"1.0.0","name":"n","disableCheck":true,"plugins":[{"type":"a"},{"type":"b"}]}"#,
        )
        .unwrap();
        assert_eq!(ok.plugins.len(), 2);
        assert!(ok.disable_check);
        assert_eq!(ok.version(), Some(Version::V1_0_0));
        assert!(NetworkConfigList::from_bytes(br#"{"name":"n","plugins":[{"x":1}]}"#).is_err());
        assert!(NetworkConfigList::from_bytes(br#"{"name":"n"}"#).is_err());
        assert!(NetworkConfigList::from_bytes(b"{").is_err());
    }

    #[test]
    fn loads_lists_then_single_confs_and_plugin_dirs() {
        let d = tmpdir("load");
        std::fs::write(
            d.join("20-a.conflist"),
            r#"{"cniVersion":"1.1.0","name":"a","plugins":[{"type":"x"}]}"#,
        )
        .unwrap();
        std::fs::create_dir(d.join("a")).unwrap();
        std::fs::write(d.join("a/10-y.conf"), r#"{"type":"y"}"#).unwrap();
        std::fs::write(
            d.join("10-b.conf"),
            r#"{"cniVersion":"0.3.1","name":"b","type":"z","disableCheck":true}"#,
        )
        .unwrap();
        std::fs::write(
            d.join("30-c.conflist"),
            r#"{"cniVersion":"1.1.0","name":"c","loadOnlyInlinedPlugins":true,"plugins":[{"type":"x"}]}"#,
        )
        .unwrap();
        std::fs::create_dir(d.join("c")).unwrap();
        std::fs::write(d.join("c/10-y.conf"), r#"{"type":"y"}"#).unwrap();

        let a = load(&d, "a").unwrap();
        let types: Vec<&str> = a.plugins.iter().map(plugin_type).collect();
        assert_eq!(types, ["x", "y"]);
        let b = load(&d, "b").unwrap();
        assert_eq!(b.cni_version, "0.3.1");
        assert!(b.disable_check);
        assert_eq!(plugin_type(&b.plugins[0]), "z");
        assert_eq!(load(&d, "c").unwrap().plugins.len(), 1);
        let e = load(&d, "nope").unwrap_err().to_string();
        assert!(e.contains("no net configuration with name \"nope\""), "{e}");
        assert!(load(&d.join("missing"), "a").is_err());
        assert_eq!(
            load_file(&d.join("20-a.conflist")).unwrap().plugins.len(),
            2
        );
        assert_eq!(load_file(&d.join("10-b.conf")).unwrap().name, "b");
        assert!(load_file(&d.join("nope.conf")).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
