//! What a case is, what it can report, and the per-case environment: a temp
//! dir for caches and IPAM state, namespaces removed on drop, a runtime
//! (`libcni`) pointed at the plugin dir, and raw calls for bad input.

use cni::Version;
use libcni::{CniConfig, Exec, NetworkConfigList, Output, RuntimeConf, VersionInfo};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use testutil::{Netns, TempDir};

/// How one case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// The plugin broke a rule; why.
    Fail(String),
    /// A plugin the case needs is not in the directory.
    Skip(String),
    /// The plugins lack an optional or newer feature, or deviate from the
    /// spec in a way runtimes tolerate; what was observed.
    Differs(String),
}

/// A case body: `Err(why)` is a failure.
pub type CaseResult = Result<Outcome, String>;

pub struct Case {
    pub name: String,
    /// Plugins that must be present (else the case is skipped).
    pub needs: Vec<&'static str>,
    pub run: Box<dyn Fn(&mut Env) -> CaseResult + Send + Sync>,
}

impl Case {
    pub fn new(
        name: impl Into<String>,
        needs: &[&'static str],
        run: impl Fn(&mut Env) -> CaseResult + Send + Sync + 'static,
    ) -> Case {
        Case {
            name: name.into(),
            needs: needs.to_vec(),
            run: Box::new(run),
        }
    }
}

/// Return early with a failure unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(format!($($why)+));
        }
    };
}

/// What the suite knows before any case runs.
pub struct Suite {
    pub dir: PathBuf,
    /// Each present plugin's VERSION answer (or why it has none).
    pub versions: BTreeMap<String, Result<VersionInfo, String>>,
}

/// Time a single plugin call may take before it is killed and the case fails.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

impl Suite {
    pub fn new(dir: &Path, plugins: &[&str]) -> Suite {
        // VERSION never touches the cache, so none is needed here.
        let cni = runtime(dir, Path::new("/nonexistent"));
        let versions = plugins
            .iter()
            .filter(|p| dir.join(p).is_file())
            .map(|p| {
                let info = cni.version_info(p).map_err(|e| e.to_string());
                (p.to_string(), info)
            })
            .collect();
        Suite {
            dir: dir.to_path_buf(),
            versions,
        }
    }

    pub fn has(&self, plugin: &str) -> bool {
        self.versions.contains_key(plugin)
    }

    /// Why a case needing these plugins cannot run, if it cannot.
    pub fn missing(&self, needs: &[&str]) -> Option<String> {
        let absent: Vec<&str> = needs.iter().copied().filter(|p| !self.has(p)).collect();
        if !absent.is_empty() {
            return Some(format!("plugin absent: {}", absent.join(", ")));
        }
        let mute: Vec<&str> = needs
            .iter()
            .copied()
            .filter(|p| matches!(self.versions.get(*p), Some(Err(_))))
            .collect();
        (!mute.is_empty()).then(|| {
            format!(
                "no usable VERSION answer from {} (see its VE-1 case)",
                mute.join(", ")
            )
        })
    }
}

/// How every plugin is started: killed when it hangs, stderr kept out of the report.
fn exec() -> Exec {
    Exec {
        timeout: Some(CALL_TIMEOUT),
        forward_stderr: false,
        ..Exec::default()
    }
}

fn runtime(dir: &Path, cache: &Path) -> CniConfig {
    let mut cni = CniConfig::new(vec![dir.to_path_buf()], cache);
    cni.exec = exec();
    cni
}

/// The network name every case uses (state is per case, so no clashes).
pub const NET: &str = "conformance";

/// One case's world; everything in it is removed when it drops.
pub struct Env<'s> {
    pub suite: &'s Suite,
    pub tmp: TempDir,
    netns: Vec<Netns>,
}

impl<'s> Env<'s> {
    pub fn new(suite: &'s Suite) -> Env<'s> {
        Env {
            suite,
            tmp: TempDir::new("conformance"),
            netns: Vec::new(),
        }
    }

    /// A fresh network namespace; returns its path.
    pub fn netns(&mut self) -> String {
        let ns = Netns::new("cfm");
        let path = ns.path();
        self.netns.push(ns);
        path
    }

    /// A runtime whose plugins run inside a fresh namespace standing in for
    /// the host, so that interface plugins' host-side links, bridges and
    /// sysctls stay out of the real host. Returns it and that namespace.
    pub fn sandboxed_cni(&mut self) -> (CniConfig, String) {
        let host = self.netns();
        let mut cni = self.cni();
        cni.exec.netns = Some(host.clone().into());
        (cni, host)
    }

    /// Delete a namespace made by [`Env::netns`] (to test DEL after it is gone).
    pub fn delete_netns(&mut self, path: &str) {
        self.netns.retain(|ns| ns.path() != path);
    }

    /// Run `ip args...` inside the namespace at `netns` (a path made by [`Env::netns`]).
    pub fn ip_in(&self, netns: &str, args: &[&str]) -> Result<String, String> {
        let name = Path::new(netns)
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("suite bug: {netns} is not a named namespace"))?;
        testutil::try_ip(&[&["-n", name], args].concat())
    }

    /// A runtime over the plugin dir with this case's private cache.
    pub fn cni(&self) -> CniConfig {
        runtime(&self.suite.dir, &self.tmp.path.join("cache"))
    }

    /// host-local's `dataDir` for this case.
    pub fn data_dir(&self) -> String {
        self.tmp.path.join("ipam").display().to_string()
    }

    /// A list named [`NET`] of `plugins` at `version`.
    pub fn list(&self, version: &str, plugins: Vec<Value>) -> Result<NetworkConfigList, String> {
        let conf = json!({"cniVersion": version, "name": NET, "plugins": plugins});
        NetworkConfigList::from_bytes(conf.to_string().as_bytes())
            .map_err(|e| format!("suite bug: bad conflist: {e}"))
    }

    /// A list of `plugin` alone, at the usual version of its type (see [`Env::usual_version`]).
    pub fn usual_list(&self, plugin: Value) -> Result<NetworkConfigList, String> {
        let version = self.usual_version(plugin["type"].as_str().unwrap_or_default());
        self.list(version.as_str(), vec![plugin])
    }

    /// Whether `plugin` says (VERSION) it supports `version`.
    pub fn supports(&self, plugin: &str, version: Version) -> bool {
        matches!(self.suite.versions.get(plugin), Some(Ok(i)) if i.supports(version.as_str()))
    }

    /// The version bad-input cases speak to `plugin`: 1.0.0, else the highest it supports.
    pub fn usual_version(&self, plugin: &str) -> Version {
        if self.supports(plugin, Version::V1_0_0) {
            return Version::V1_0_0;
        }
        cni::version::ALL
            .iter()
            .copied()
            .filter(|v| self.supports(plugin, *v))
            .max()
            .unwrap_or(Version::V1_0_0)
    }

    pub fn supported(&self, plugin: &str) -> String {
        match self.suite.versions.get(plugin) {
            Some(Ok(i)) => format!("{:?}", i.supported_versions),
            _ => "nothing".into(),
        }
    }

    /// The outcome for a request at `version` that `plugin` does not
    /// advertise: it must refuse with code 1; the case then reports the
    /// missing feature as a difference.
    pub fn unsupported(
        &self,
        plugin: &str,
        version: Version,
        feature: &str,
        out: &Output,
    ) -> CaseResult {
        let e = expect_error(out)?;
        ensure!(
            e.code == cni::code::INCOMPATIBLE_VERSION,
            "{plugin} does not advertise {version} but answered a {version} request with \
             code {} ({}) instead of code 1",
            e.code,
            e.msg
        );
        Ok(Outcome::Differs(format!(
            "{plugin} supports {} only, so no {feature}; it refuses {version} with code 1 as required",
            self.supported(plugin)
        )))
    }

    /// The outcome for a STATUS or GC request to a plugin that does not
    /// advertise 1.1.0: such a plugin may not know the verb at all, so any
    /// CNI error is a proper refusal; the case reports the missing verb.
    pub fn unsupported_verb(&self, plugin: &str, verb: &str, out: &Output) -> CaseResult {
        let e = expect_error(out).map_err(|why| {
            format!("{plugin} does not advertise 1.1.0, so it must refuse {verb}: {why}")
        })?;
        Ok(Outcome::Differs(format!(
            "{plugin} supports {} only, so no {verb}; it answers {verb} with code {} ({})",
            self.supported(plugin),
            e.code,
            e.msg
        )))
    }

    /// A raw call of `plugin` with only CNI_COMMAND and CNI_PATH set.
    pub fn call(&self, plugin: &str, command: &str) -> Call {
        Call {
            binary: self.suite.dir.join(plugin),
            vars: vec![
                ("CNI_COMMAND".into(), command.into()),
                ("CNI_PATH".into(), self.suite.dir.display().to_string()),
            ],
            exec: exec(),
        }
    }
}

/// Runtime arguments for an attachment.
pub fn rt(container_id: &str, netns: &str, ifname: &str) -> RuntimeConf {
    RuntimeConf {
        container_id: container_id.into(),
        netns: netns.into(),
        ifname: ifname.into(),
        ..RuntimeConf::default()
    }
}

/// A plugin call assembled by hand, for requests no runtime would send.
pub struct Call {
    binary: PathBuf,
    vars: Vec<(String, String)>,
    exec: Exec,
}

impl Call {
    pub fn var(mut self, key: &str, value: &str) -> Self {
        self.vars.retain(|(k, _)| k != key);
        self.vars.push((key.into(), value.into()));
        self
    }

    pub fn unset(mut self, key: &str) -> Self {
        self.vars.retain(|(k, _)| k != key);
        self
    }

    pub fn attach(self, container_id: &str, netns: &str, ifname: &str) -> Self {
        self.var("CNI_CONTAINERID", container_id)
            .var("CNI_NETNS", netns)
            .var("CNI_IFNAME", ifname)
    }

    pub fn run_bytes(&self, stdin: &[u8]) -> Result<Output, String> {
        self.exec
            .run(&self.binary, &self.vars, stdin)
            .map_err(|e| e.to_string())
    }

    pub fn run(&self, stdin: &Value) -> Result<Output, String> {
        self.run_bytes(stdin.to_string().as_bytes())
    }
}

/// A CNI error document as a plugin printed it.
#[derive(Debug)]
pub struct CniErr {
    pub code: u32,
    pub msg: String,
}

/// The call must have failed with an error document on stdout (ER-1).
pub fn expect_error(out: &Output) -> Result<CniErr, String> {
    ensure!(
        !out.success(),
        "expected a failure, but the plugin exited 0 (stdout: {})",
        short(&out.stdout_text())
    );
    ensure!(!out.timed_out, "the plugin hung and was killed");
    let doc = match out.json() {
        Some(Ok(v)) => v,
        Some(Err(e)) => {
            return Err(format!(
                "failed, but its stdout is not a JSON error ({e}): {}",
                short(&out.stdout_text())
            ))
        }
        None => {
            return Err(format!(
                "failed with no error document on stdout (stderr: {})",
                short(&out.stderr_text())
            ))
        }
    };
    let code = doc
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u32::try_from(c).ok());
    let msg = doc.get("msg").and_then(Value::as_str).unwrap_or_default();
    match code {
        Some(code) if !msg.is_empty() => Ok(CniErr {
            code,
            msg: msg.to_string(),
        }),
        _ => Err(format!(
            "error document lacks a numeric code or a msg: {}",
            short(&doc.to_string())
        )),
    }
}

/// The call must have failed with exactly `code`.
pub fn expect_code(out: &Output, code: u32, what: &str) -> Result<CniErr, String> {
    let e = expect_error(out).map_err(|why| format!("{what}: {why}"))?;
    ensure!(
        e.code == code,
        "{what}: expected code {code}, got code {} ({})",
        e.code,
        e.msg
    );
    Ok(e)
}

/// The call must have succeeded; returns its stdout JSON, if any.
pub fn expect_ok(out: &Output, what: &str) -> Result<Option<Value>, String> {
    ensure!(
        out.success(),
        "{what}: plugin failed ({}): {} {}",
        out.code.map_or("signal".into(), |c| c.to_string()),
        short(&out.stdout_text()),
        short(&out.stderr_text())
    );
    match out.json() {
        None => Ok(None),
        Some(Ok(v)) => Ok(Some(v)),
        Some(Err(e)) => Err(format!(
            "{what}: succeeded but printed invalid JSON ({e}): {}",
            short(&out.stdout_text())
        )),
    }
}

/// Text cut to a readable length for one report line.
pub fn short(s: &str) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > 300 {
        format!("{}…", s.chars().take(300).collect::<String>())
    } else {
        s
    }
}

/// Run `f` on `n` threads at once (index passed in) and collect the results in order.
pub fn parallel<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                s.spawn({
                    let f = &f;
                    move || f(i)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}
