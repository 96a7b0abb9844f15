//! Running a network's plugin chain for each verb, as the reference runtime
//! library (`libcni/api.go`) does.

use crate::cache::{Cache, Entry};
use crate::conf::{plugin_type, NetworkConfigList};
use crate::error::{Error, Result};
use crate::invoke::{self, Args, Exec, VersionInfo};
use cni::{Attachment, CniResult, Version};
use serde_json::{json, Map, Value};
use std::path::PathBuf;

/// The per-attachment arguments of a call.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConf {
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    /// `CNI_ARGS` pairs.
    pub args: Vec<(String, String)>,
    /// Capability arguments; each plugin gets those it declares in `capabilities`.
    pub capability_args: Map<String, Value>,
}

/// A runtime: where plugins are, where results are cached, how to run them.
#[derive(Debug, Clone)]
pub struct CniConfig {
    pub path: Vec<PathBuf>,
    pub cache: Cache,
    pub exec: Exec,
}

/// Whether version string `v` is at least `min` ("" counts as 0.1.0; an
/// unknown but well-formed version compares numerically).
pub fn at_least(v: &str, min: Version) -> bool {
    fn parts(s: &str) -> Option<(u64, u64, u64)> {
        let mut it = s.split('.').map(|p| p.parse::<u64>().ok());
        let t = (it.next()??, it.next()??, it.next()??);
        it.next().is_none().then_some(t)
    }
    let v = if v.is_empty() { "0.1.0" } else { v };
    match (parts(v), parts(min.as_str())) {
        (Some(a), Some(b)) => a >= b,
        _ => false,
    }
}

/// The request configuration for one plugin of a list (SPEC "Deriving
/// request configuration"): the plugin object with the list's `name` and
/// `cniVersion`, `prevResult` when given, and `runtimeConfig` set to the
/// capability arguments the plugin declares (left untouched when none match).
pub fn build_plugin_config(
    network: &str,
    version: &str,
    plugin: &Value,
    prev_result: Option<&Value>,
    capability_args: &Map<String, Value>,
) -> Result<Value> {
    let mut conf = plugin.as_object().cloned().ok_or_else(|| {
        Error::Config(format!(
            "network {network:?}: plugin configuration is not a JSON object"
        ))
    })?;
    conf.insert("name".into(), network.into());
    conf.insert("cniVersion".into(), version.into());
    if let Some(prev) = prev_result {
        conf.insert("prevResult".into(), prev.clone());
    }
    let rc = runtime_config(plugin, capability_args);
    if !rc.is_empty() {
        conf.insert("runtimeConfig".into(), Value::Object(rc));
    }
    Ok(Value::Object(conf))
}

impl NetworkConfigList {
    /// The request configuration for `plugin` (one of this list's) in the
    /// call `rt` describes; see [`build_plugin_config`].
    pub fn plugin_config(
        &self,
        plugin: &Value,
        prev_result: Option<&Value>,
        rt: &RuntimeConf,
    ) -> Result<Value> {
        build_plugin_config(
            &self.name,
            &self.cni_version,
            plugin,
            prev_result,
            &rt.capability_args,
        )
    }
}

/// The intersection of the plugin's `capabilities: {name: true}` and the
/// runtime's capability arguments.
pub fn runtime_config(plugin: &Value, capability_args: &Map<String, Value>) -> Map<String, Value> {
    let declared = plugin
        .as_object()
        .and_then(|o| cni::config::get_ci(o, "capabilities"))
        .and_then(Value::as_object);
    let mut rc = Map::new();
    for (name, enabled) in declared.into_iter().flatten() {
        if enabled == &Value::Bool(true) {
            if let Some(arg) = capability_args.get(name) {
                rc.insert(name.clone(), arg.clone());
            }
        }
    }
    rc
}

/// The attachments list as a GC request carries it.
pub fn attachments_json(valid: &[Attachment]) -> Value {
    valid
        .iter()
        .map(|a| json!({"containerID": a.container_id, "ifname": a.ifname}))
        .collect()
}

/// Parse an ADD answer: an object, labelled with the config's version when
/// it names none (as the reference does), readable in that version.
pub fn parse_result(stdout: &[u8], version: &str) -> std::result::Result<Value, cni::Error> {
    let mut v: Value = serde_json::from_slice(stdout).map_err(|e| {
        cni::Error::decode(format!(
            "plugin printed an invalid result ({e}): {:?}",
            String::from_utf8_lossy(stdout)
        ))
    })?;
    let obj = v
        .as_object_mut()
        .ok_or_else(|| cni::Error::decode("plugin printed a result that is not a JSON object"))?;
    let labelled = obj
        .get("cniVersion")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    if !labelled {
        obj.insert("cniVersion".into(), version.into());
    }
    let fallback = Version::parse(version).unwrap_or(Version::V0_1_0);
    CniResult::from_json(&v, fallback)
        .map_err(|e| e.context("plugin printed an invalid result"))?;
    Ok(v)
}

fn validate_attachment(network: &str, rt: &RuntimeConf) -> Result<()> {
    if rt.container_id.is_empty() {
        return Err(Error::InvalidArgs("missing container ID".into()));
    }
    if !cni::config::is_valid_id(&rt.container_id) {
        return Err(Error::InvalidArgs(format!(
            "invalid characters in container ID {:?}",
            rt.container_id
        )));
    }
    if !cni::config::is_valid_id(network) {
        return Err(Error::InvalidArgs(format!(
            "invalid characters in network name {network:?}"
        )));
    }
    cni::skel::validate_ifname(&rt.ifname).map_err(|e| Error::InvalidArgs(e.msg))
}

impl CniConfig {
    pub fn new(path: Vec<PathBuf>, cache_dir: impl Into<PathBuf>) -> CniConfig {
        CniConfig {
            path,
            cache: Cache::new(cache_dir),
            exec: Exec::default(),
        }
    }

    fn args(&self, command: &str, rt: &RuntimeConf) -> Args {
        Args {
            command: command.into(),
            container_id: rt.container_id.clone(),
            netns: rt.netns.clone(),
            ifname: rt.ifname.clone(),
            args: rt.args.clone(),
            path: self.path.clone(),
        }
    }

    /// Run one plugin; Ok(stdout) when it exits 0, its CNI error otherwise.
    fn exec_plugin(&self, conf: &Value, args: &Args) -> Result<Vec<u8>> {
        let ty = plugin_type(conf);
        let binary = invoke::find(ty, &self.path)?;
        let stdin = serde_json::to_vec(conf).unwrap_or_default();
        let out = self.exec.run(&binary, &args.to_env(), &stdin)?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(Error::Plugin {
                plugin: ty.into(),
                command: args.command.to_lowercase(),
                error: out.error(),
            })
        }
    }

    /// ADD: run the chain in order, each plugin getting the previous result,
    /// cache the final result, and return it.
    pub fn add_network_list(&self, list: &NetworkConfigList, rt: &RuntimeConf) -> Result<Value> {
        validate_attachment(&list.name, rt)?;
        let mut prev: Option<Value> = None;
        for plugin in &list.plugins {
            let conf = list.plugin_config(plugin, prev.as_ref(), rt)?;
            let stdout = self.exec_plugin(&conf, &self.args("ADD", rt))?;
            let result =
                parse_result(&stdout, list.effective_version()).map_err(|error| Error::Plugin {
                    plugin: plugin_type(plugin).into(),
                    command: "add".into(),
                    error,
                })?;
            prev = Some(result);
        }
        let result = prev.unwrap_or_else(|| json!({"cniVersion": list.cni_version}));
        self.cache.store(&Entry {
            network_name: list.name.clone(),
            container_id: rt.container_id.clone(),
            ifname: rt.ifname.clone(),
            netns: rt.netns.clone(),
            config: list.bytes.clone(),
            cni_args: rt.args.clone(),
            capability_args: rt.capability_args.clone(),
            result: Some(result.clone()),
        })?;
        Ok(result)
    }

    /// The cached final ADD result, converted to the list's version.
    pub fn cached_result(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConf,
    ) -> Result<Option<Value>> {
        let Some(entry) = self.cache.load(&list.name, &rt.container_id, &rt.ifname)? else {
            return Ok(None);
        };
        let Some(raw) = entry.result else {
            return Ok(None);
        };
        let convert = || -> std::result::Result<Value, cni::Error> {
            let version = Version::parse(list.effective_version())?;
            CniResult::from_json(&raw, version)?.to_json(version)
        };
        convert().map(Some).map_err(|e| {
            Error::Cache(format!(
                "failed to convert cached result of network {:?} to version {}: {e}",
                list.name,
                list.effective_version()
            ))
        })
    }

    /// DEL: run the chain in reverse, with the cached result as `prevResult`
    /// from 0.4.0 on, then drop the cache entry. Stops at the first failure.
    pub fn del_network_list(&self, list: &NetworkConfigList, rt: &RuntimeConf) -> Result<()> {
        let prev = if at_least(list.effective_version(), Version::V0_4_0) {
            // An unreadable cache entry must not block DEL: drop it and go on.
            self.cached_result(list, rt).unwrap_or_else(|_| {
                self.cache.remove(&list.name, &rt.container_id, &rt.ifname);
                None
            })
        } else {
            None
        };
        for plugin in list.plugins.iter().rev() {
            let conf = list.plugin_config(plugin, prev.as_ref(), rt)?;
            self.exec_plugin(&conf, &self.args("DEL", rt))?;
        }
        self.cache.remove(&list.name, &rt.container_id, &rt.ifname);
        Ok(())
    }

    /// CHECK (0.4.0 and later; nothing when `disableCheck`), with the cached
    /// result as `prevResult`.
    pub fn check_network_list(&self, list: &NetworkConfigList, rt: &RuntimeConf) -> Result<()> {
        if !at_least(list.effective_version(), Version::V0_4_0) {
            return Err(Error::Config(format!(
                "configuration version {:?} does not support the CHECK command",
                list.cni_version
            )));
        }
        if list.disable_check {
            return Ok(());
        }
        let prev = self.cached_result(list, rt)?;
        for plugin in &list.plugins {
            let conf = list.plugin_config(plugin, prev.as_ref(), rt)?;
            self.exec_plugin(&conf, &self.args("CHECK", rt))?;
        }
        Ok(())
    }

    /// STATUS (1.1.0 and later; older lists are reported ready, as the
    /// reference does): every plugin in order, stopping at the first error.
    pub fn status_network_list(&self, list: &NetworkConfigList) -> Result<()> {
        if !at_least(list.effective_version(), Version::V1_1_0) {
            return Ok(());
        }
        let no_attachment = RuntimeConf::default();
        for plugin in &list.plugins {
            let conf = list.plugin_config(plugin, None, &no_attachment)?;
            self.exec_plugin(&conf, &self.args("STATUS", &no_attachment))?;
        }
        Ok(())
    }

    /// GC: DEL every cached attachment of this network that is not in `valid`
    /// (all of them when `valid` is None), then, from 1.1.0 on, send GC with
    /// `cni.dev/valid-attachments` to every plugin. Nothing at all when
    /// `disableGC`. Keeps going after errors and reports them together.
    pub fn gc_network_list(
        &self,
        list: &NetworkConfigList,
        valid: Option<&[Attachment]>,
    ) -> Result<()> {
        if list.disable_gc {
            return Ok(());
        }
        let mut errors = Vec::new();
        let stale = self.cache.attachments(None).into_iter().filter(|e| {
            e.network_name == list.name
                && !valid
                    .unwrap_or_default()
                    .iter()
                    .any(|a| a.container_id == e.container_id && a.ifname == e.ifname)
        });
        for entry in stale {
            let rt = RuntimeConf {
                container_id: entry.container_id,
                netns: entry.netns,
                ifname: entry.ifname,
                args: entry.cni_args,
                capability_args: entry.capability_args,
            };
            if let Err(e) = self.del_network_list(list, &rt) {
                errors.push(Error::Exec(format!(
                    "failed to delete stale attachment {} {}: {e}",
                    rt.container_id, rt.ifname
                )));
            }
        }
        if at_least(list.effective_version(), Version::V1_1_0) {
            let no_attachment = RuntimeConf::default();
            for plugin in &list.plugins {
                let mut conf = list.plugin_config(plugin, None, &no_attachment)?;
                if let (Some(valid), Some(obj)) = (valid, conf.as_object_mut()) {
                    let listed = attachments_json(valid);
                    obj.insert("cni.dev/valid-attachments".into(), listed.clone());
                    // The key the spec's first 1.1.0 text used; still read by some plugins.
                    obj.insert("cni.dev/attachments".into(), listed);
                }
                if let Err(e) = self.exec_plugin(&conf, &self.args("GC", &no_attachment)) {
                    errors.push(e);
                }
            }
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(Error::Multiple(errors)),
        }
    }

    /// Ask plugin `plugin_type` which versions it supports (VERSION).
    pub fn version_info(&self, plugin_type: &str) -> Result<VersionInfo> {
        let binary = invoke::find(plugin_type, &self.path)?;
        // Fake values for plugins built on old libraries that demanded them.
        let args = Args {
            command: "VERSION".into(),
            netns: "dummy".into(),
            ifname: "dummy".into(),
            path: vec!["dummy".into()],
            ..Args::default()
        };
        let stdin = json!({"cniVersion": Version::CURRENT.as_str()}).to_string();
        let out = self.exec.run(&binary, &args.to_env(), stdin.as_bytes())?;
        let fail = |error: cni::Error| Error::Plugin {
            plugin: plugin_type.into(),
            command: "version".into(),
            error,
        };
        if !out.success() {
            let error = out.error();
            if error.msg == "unknown CNI_COMMAND: VERSION" {
                return Ok(VersionInfo {
                    cni_version: "0.1.0".into(),
                    supported_versions: vec!["0.1.0".into()],
                });
            }
            return Err(fail(error));
        }
        let v: Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| fail(cni::Error::decode(format!("invalid VERSION output: {e}"))))?;
        VersionInfo::decode(&v).map_err(|e| fail(cni::Error::decode(e)))
    }

    /// Check that every plugin exists and supports the list's version;
    /// returns the capabilities the list declares.
    pub fn validate_network_list(&self, list: &NetworkConfigList) -> Result<Vec<String>> {
        let mut errors = Vec::new();
        let mut caps = Vec::new();
        for plugin in &list.plugins {
            let ty = plugin_type(plugin);
            match self.version_info(ty) {
                Ok(info) if info.supports(list.effective_version()) => {}
                Ok(info) => errors.push(Error::Config(format!(
                    "plugin {ty} does not support config version {:?} (it supports {:?})",
                    list.effective_version(),
                    info.supported_versions
                ))),
                Err(e) => errors.push(e),
            }
            let declared = plugin.get("capabilities").and_then(Value::as_object);
            for (name, on) in declared.into_iter().flatten() {
                if on == &Value::Bool(true) && !caps.contains(name) {
                    caps.push(name.clone());
                }
            }
        }
        caps.sort();
        match errors.len() {
            0 => Ok(caps),
            1 => Err(errors.remove(0)),
            _ => Err(Error::Multiple(errors)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn injects_name_version_and_prev_result() {
        let plugin = json!({"type":"bridge","name":"ignored","cniVersion":"0.1.0","mtu":1400});
        let prev = json!({"cniVersion":"1.0.0","ips":[]});
        let c = build_plugin_config("net", "1.0.0", &plugin, Some(&prev), &Map::new()).unwrap();
        assert_eq!(c["name"], "net");
        assert_eq!(c["cniVersion"], "1.0.0");
        assert_eq!(c["mtu"], 1400);
        assert_eq!(c["prevResult"], prev);
        assert!(c.get("runtimeConfig").is_none());
        let first = build_plugin_config("net", "1.0.0", &plugin, None, &Map::new()).unwrap();
        assert!(first.get("prevResult").is_none());
        assert!(build_plugin_config("net", "1.0.0", &json!([1]), None, &Map::new()).is_err());
    }

    #[test]
    fn list_derives_each_plugins_request() {
        let list = NetworkConfigList::from_bytes(
            br#"{"cniVersion":"1.0.0","name":"net",
                "plugins":[{"type":"portmap","capabilities":{"portMappings":true}}]}"#,
        )
        .unwrap();
        let rt = RuntimeConf {
            capability_args: caps(json!({"portMappings":[{"hostPort":80}]})),
            ..RuntimeConf::default()
        };
        let prev = json!({"cniVersion":"1.0.0","ips":[]});
        let plugin = &list.plugins[0];
        let c = list.plugin_config(plugin, Some(&prev), &rt).unwrap();
        let want =
            build_plugin_config("net", "1.0.0", plugin, Some(&prev), &rt.capability_args).unwrap();
        assert_eq!(c, want);
        assert_eq!(
            c["runtimeConfig"],
            json!({"portMappings":[{"hostPort":80}]})
        );
    }

    #[test]
    fn runtime_config_is_the_capability_intersection() {
        let plugin = json!({"type":"portmap",
            "capabilities":{"portMappings":true,"ips":false,"mac":true},
            "runtimeConfig":{"stale":1}});
        let args =
            caps(json!({"portMappings":[{"hostPort":80}],"ips":["10.0.0.2/24"],"bandwidth":{}}));
        let c = build_plugin_config("n", "1.1.0", &plugin, None, &args).unwrap();
        assert_eq!(
            c["runtimeConfig"],
            json!({"portMappings":[{"hostPort":80}]})
        );
        // No overlap: runtimeConfig is left as written.
        let c = build_plugin_config("n", "1.1.0", &plugin, None, &caps(json!({"ips":[]}))).unwrap();
        assert_eq!(c["runtimeConfig"], json!({"stale":1}));
        let bare = json!({"type":"x"});
        let c = build_plugin_config("n", "1.1.0", &bare, None, &args).unwrap();
        assert!(c.get("runtimeConfig").is_none());
        // The capabilities key itself is passed on, as libcni does.
        let c = build_plugin_config("n", "1.1.0", &plugin, None, &args).unwrap();
        assert_eq!(c["capabilities"]["mac"], true);
    }

    #[test]
    fn version_gates() {
        assert!(at_least("0.4.0", Version::V0_4_0));
        assert!(at_least("1.0.0", Version::V0_4_0));
        assert!(!at_least("0.3.1", Version::V0_4_0));
        assert!(!at_least("", Version::V0_4_0));
        assert!(at_least("2.0.0", Version::V1_1_0));
        assert!(!at_least("banana", Version::V0_1_0));
    }

    #[test]
    fn results_get_labelled_and_validated() {
        let v = parse_result(br#"{"ips":[{"address":"10.0.0.2/24"}]}"#, "1.0.0").unwrap();
        assert_eq!(v["cniVersion"], "1.0.0");
        let v = parse_result(
            br#"{"cniVersion":"0.2.0","ip4":{"ip":"10.0.0.2/24"}}"#,
            "1.0.0",
        )
        .unwrap();
        assert_eq!(v["cniVersion"], "0.2.0");
        assert_eq!(parse_result(b"", "1.0.0").unwrap_err().code, 6);
        assert_eq!(parse_result(b"[]", "1.0.0").unwrap_err().code, 6);
        assert_eq!(
            parse_result(br#"{"ips":[{"address":"x"}]}"#, "1.0.0")
                .unwrap_err()
                .code,
            6
        );
    }

    #[test]
    fn gc_attachment_list_shape() {
        let a = [Attachment {
            container_id: "c1".into(),
            ifname: "eth0".into(),
        }];
        assert_eq!(
            attachments_json(&a),
            json!([{"containerID":"c1","ifname":"eth0"}])
        );
    }
}
