//! Plugin-side dispatch: read the `CNI_*` environment and stdin, validate
//! them as the reference library does, call the plugin, print the outcome.

use crate::args::CniArgs;
use crate::config::{get_ci, is_valid_id, NetConf};
use crate::error::{code, Error, Result};
use crate::result::CniResult;
use crate::version::{self, Version};
use serde::Deserialize;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Status,
    Gc,
    Version,
}

impl Command {
    pub fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            "VERSION" => Command::Version,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Status => "STATUS",
            Command::Gc => "GC",
            Command::Version => "VERSION",
        }
    }

    /// The environment variables the reference library requires per verb.
    fn required_env(self) -> &'static [&'static str] {
        match self {
            Command::Add | Command::Check => {
                &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"]
            }
            Command::Del => &["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"],
            Command::Status | Command::Gc => &["CNI_PATH"],
            Command::Version => &[],
        }
    }
}

/// One invocation, validated.
#[derive(Debug, Clone)]
pub struct Request {
    pub command: Command,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    pub args: String,
    pub path: Vec<PathBuf>,
    pub stdin: Vec<u8>,
    pub conf: NetConf,
    pub version: Version,
}

/// An attachment named in a GC request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

impl Request {
    /// `CNI_ARGS` with the keys this plugin understands.
    pub fn cni_args(&self, known: &[&str]) -> Result<CniArgs> {
        CniArgs::parse(&self.args, known)
    }

    /// `prevResult` decoded in the request's version.
    pub fn prev_result(&self) -> Result<Option<CniResult>> {
        self.conf
            .prev_result()
            .map(|v| {
                CniResult::from_json(v, self.version)
                    .map_err(|e| e.context("could not parse prevResult"))
            })
            .transpose()
    }

    /// The attachments a GC must keep. `None` when the request names no list
    /// at all (then nothing may be removed), `Some(empty)` when it names an
    /// empty one (then every attachment is stale).
    pub fn valid_attachments(&self) -> Result<Option<Vec<Attachment>>> {
        let obj = self.conf.raw.as_object();
        let list = obj.and_then(|o| {
            get_ci(o, "cni.dev/valid-attachments").or_else(|| get_ci(o, "cni.dev/attachments"))
        });
        match list {
            None | Some(Value::Null) => Ok(None),
            Some(v) => serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|e| Error::decode(format!("invalid cni.dev/valid-attachments list: {e}"))),
        }
    }
}

/// What a plugin implements. STATUS and GC default to "ready, nothing to collect".
pub trait Plugin {
    fn add(&self, req: &Request) -> Result<CniResult>;
    fn del(&self, req: &Request) -> Result<()>;
    fn check(&self, req: &Request) -> Result<()>;
    fn status(&self, _req: &Request) -> Result<()> {
        Ok(())
    }
    fn gc(&self, _req: &Request) -> Result<()> {
        Ok(())
    }
}

/// How a plugin describes itself.
pub struct About {
    pub name: &'static str,
    pub versions: &'static [Version],
}

impl About {
    pub fn new(name: &'static str) -> About {
        About {
            name,
            versions: version::ALL,
        }
    }
}

/// What one invocation produced: the exit code and stdout/stderr texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A plugin binary's entry point, in place of `fn main`, in a crate marked
/// `#![no_main]`:
///
/// ```ignore
/// #![no_main]
/// cni::plugin_main!(Bridge, "bridge");
/// ```
///
/// It skips the Rust runtime's start-up, which a plugin (a fresh process
/// per container, gone within milliseconds) does not need: installing the
/// main thread's stack overflow handler reads `/proc/self/maps` and maps a
/// signal stack, ~0.17 ms per process here, twice on the path of a bridge
/// ADD (bridge, then IPAM). What of that start-up matters is done by
/// [`prepare_process`].
#[macro_export]
macro_rules! plugin_main {
    ($plugin:expr, $name:expr) => {
        #[no_mangle]
        pub extern "C" fn main(_argc: i32, _argv: *const *const ::std::ffi::c_char) -> i32 {
            $crate::skel::prepare_process();
            $crate::run(&$plugin, &$crate::About::new($name))
        }
    };
}

/// What the Rust runtime's start-up does that a plugin needs: stdin,
/// stdout and stderr are opened on `/dev/null` if they are closed (else the
/// first file or socket we open would become stdout), and SIGPIPE is
/// ignored (a delegate that exits without reading its stdin gives EPIPE
/// instead of killing us; children get the default back from `Command`).
pub fn prepare_process() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: a valid array of three pollfds; a zero timeout never blocks.
    let polled = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) };
    if polled > 0 {
        for fd in fds.iter().filter(|f| f.revents & libc::POLLNVAL != 0) {
            // SAFETY: open and dup2 on a constant path and a closed fd.
            unsafe {
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                if null >= 0 && null != fd.fd {
                    libc::dup2(null, fd.fd);
                    libc::close(null);
                }
            }
        }
    }
    // SAFETY: setting a signal to SIG_IGN has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// Run as a CNI plugin process: never returns.
pub fn run(plugin: &impl Plugin, about: &About) -> ! {
    let env = |k: &str| std::env::var(k).ok();
    let out = dispatch(plugin, about, &env, &mut std::io::stdin().lock());
    let _ = std::io::stdout().write_all(out.stdout.as_bytes());
    let _ = std::io::stderr().write_all(out.stderr.as_bytes());
    std::process::exit(out.code)
}

fn printed(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// The whole of an invocation, with the environment and stdin injected.
pub fn dispatch(
    plugin: &impl Plugin,
    about: &About,
    env: &dyn Fn(&str) -> Option<String>,
    stdin: &mut dyn Read,
) -> Outcome {
    let Some(cmd) = env("CNI_COMMAND").filter(|c| !c.is_empty()) else {
        return Outcome {
            code: 0,
            stdout: String::new(),
            stderr: format!(
                "CNI {} plugin (cni-plugins-rs {})\nCNI protocol versions supported: {}\n",
                about.name,
                env!("CARGO_PKG_VERSION"),
                about
                    .versions
                    .iter()
                    .map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
    };
    let mut version_for_errors = Version::CURRENT;
    match handle(plugin, about, &cmd, env, stdin, &mut version_for_errors) {
        Ok(stdout) => Outcome {
            code: 0,
            stdout: stdout.as_ref().map(printed).unwrap_or_default(),
            stderr: String::new(),
        },
        Err(e) => Outcome {
            code: 1,
            stdout: printed(&e.to_json(version_for_errors.as_str())),
            stderr: String::new(),
        },
    }
}

fn handle(
    plugin: &impl Plugin,
    about: &About,
    cmd: &str,
    env: &dyn Fn(&str) -> Option<String>,
    stdin: &mut dyn Read,
    error_version: &mut Version,
) -> Result<Option<Value>> {
    let command = Command::parse(cmd)
        .ok_or_else(|| Error::invalid_env(format!("unknown CNI_COMMAND: {cmd:?}")))?;
    let get = |k: &str| env(k).unwrap_or_default();

    let missing: Vec<&str> = command
        .required_env()
        .iter()
        .copied()
        .filter(|k| get(k).is_empty())
        .collect();
    if !missing.is_empty() {
        return Err(Error::invalid_env(format!(
            "required env variables [{}] missing",
            missing.join(",")
        )));
    }

    let mut stdin_bytes = Vec::new();
    stdin
        .read_to_end(&mut stdin_bytes)
        .map_err(|e| Error::io(format!("error reading from stdin: {e}")))?;

    if command == Command::Version {
        // Answer in the caller's version when it names one we know.
        let asked = serde_json::from_slice::<Value>(&stdin_bytes)
            .ok()
            .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_string))
            .and_then(|v| Version::parse(&v).ok())
            .unwrap_or(Version::CURRENT);
        let versions: Vec<&str> = about.versions.iter().map(|v| v.as_str()).collect();
        return Ok(Some(
            json!({"cniVersion": asked.as_str(), "supportedVersions": versions}),
        ));
    }

    let container_id = get("CNI_CONTAINERID");
    if !container_id.is_empty() && !is_valid_id(&container_id) {
        return Err(Error::invalid_env(format!(
            "invalid characters in CNI_CONTAINERID {container_id:?}: \
             it must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"
        )));
    }
    let ifname = get("CNI_IFNAME");
    if !ifname.is_empty() {
        validate_ifname(&ifname)?;
    }

    let netns = get("CNI_NETNS");
    let override_netns = matches!(
        get("CNI_NETNS_OVERRIDE").to_ascii_lowercase().as_str(),
        "1" | "true"
    );
    if !netns.is_empty() && !override_netns && is_own_netns(&netns) {
        return Err(Error::new(
            code::INVALID_NETNS,
            format!(
                "CNI_NETNS {netns:?} is the plugin's own network namespace: refusing to \
                 configure the host as a container (set CNI_NETNS_OVERRIDE=1 if you mean it)"
            ),
        ));
    }

    let conf = NetConf::parse(&stdin_bytes)?;
    let version = Version::parse(&conf.cni_version)?;
    *error_version = version;
    if !about.versions.contains(&version) {
        return Err(
            Error::incompatible("incompatible CNI versions").with_details(format!(
                "config is \"{version}\", plugin supports {}",
                version::list(about.versions)
            )),
        );
    }
    if conf.name.is_empty() {
        return Err(Error::invalid_config(
            "missing network name: set \"name\" in the network configuration",
        ));
    }
    if !is_valid_id(&conf.name) {
        return Err(Error::invalid_config(format!(
            "invalid network name {:?}: it must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$",
            conf.name
        )));
    }
    match command {
        Command::Check if !version.supports_check() => {
            return Err(Error::incompatible(format!(
                "config version {version} does not allow CHECK (needs 0.4.0 or later)"
            )))
        }
        Command::Status | Command::Gc if !version.supports_gc_status() => {
            return Err(Error::incompatible(format!(
                "config version {version} does not allow {} (needs 1.1.0 or later)",
                command.as_str()
            )))
        }
        _ => {}
    }

    let req = Request {
        command,
        container_id,
        netns,
        ifname,
        args: get("CNI_ARGS"),
        path: std::env::split_paths(&get("CNI_PATH"))
            .filter(|p| !p.as_os_str().is_empty())
            .collect(),
        stdin: stdin_bytes,
        conf,
        version,
    };
    match command {
        Command::Add => plugin.add(&req)?.to_json(version).map(Some),
        Command::Del => plugin.del(&req).map(|_| None),
        Command::Check => plugin.check(&req).map(|_| None),
        Command::Status => plugin.status(&req).map(|_| None),
        Command::Gc => plugin.gc(&req).map(|_| None),
        Command::Version => Ok(None),
    }
}

/// Whether `path` names the namespace this process runs in. A path that
/// cannot be read is not ours (DEL must still work when it is gone).
fn is_own_netns(path: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (
        std::fs::metadata(path),
        std::fs::metadata("/proc/self/ns/net"),
    ) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Interface names as the kernel and the reference accept them.
pub fn validate_ifname(name: &str) -> Result<()> {
    let bad = if name.len() > 15 {
        Some("it is longer than 15 characters")
    } else if name == "." || name == ".." {
        Some("it is \".\" or \"..\"")
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        Some("it contains '/', ':' or whitespace")
    } else {
        None
    };
    match bad {
        Some(why) => Err(Error::invalid_env(format!(
            "invalid interface name {name:?} in CNI_IFNAME: {why}"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::IpConfig;
    use std::collections::HashMap;

    /// Answers ADD with one address and records nothing else.
    struct Fake;

    impl Plugin for Fake {
        fn add(&self, req: &Request) -> Result<CniResult> {
            if req.conf.name == "fail" {
                return Err(Error::failed("boom"));
            }
            Ok(CniResult {
                ips: vec![IpConfig {
                    interface: None,
                    address: "10.0.0.2/24".parse().map_err(|_| Error::failed("x"))?,
                    gateway: None,
                }],
                ..CniResult::default()
            })
        }
        fn del(&self, _req: &Request) -> Result<()> {
            Ok(())
        }
        fn check(&self, _req: &Request) -> Result<()> {
            Ok(())
        }
    }

    fn call(env: &[(&str, &str)], stdin: &str) -> Outcome {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let get = move |k: &str| env.get(k).cloned();
        dispatch(&Fake, &About::new("fake"), &get, &mut stdin.as_bytes())
    }

    const ADD: &[(&str, &str)] = &[
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin"),
    ];

    fn with(over: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut env: Vec<_> = ADD
            .iter()
            .filter(|(k, _)| !over.iter().any(|(o, _)| o == k))
            .copied()
            .collect();
        env.extend(over.iter().filter(|(_, v)| !v.is_empty()));
        env
    }

    fn json(out: &Outcome) -> Value {
        serde_json::from_str(&out.stdout).unwrap()
    }

    #[test]
    fn no_command_prints_about_and_exits_zero() {
        let out = call(&[], "");
        assert_eq!(out.code, 0);
        assert!(out.stdout.is_empty());
        assert!(out.stderr.contains("fake") && out.stderr.contains("1.1.0"));
    }

    #[test]
    fn add_prints_result_in_request_version() {
        let out = call(ADD, r#"{"cniVersion":"0.2.0","name":"n","type":"fake"}"#);
        assert_eq!(out.code, 0, "{}", out.stdout);
        assert_eq!(json(&out)["ip4"]["ip"], "10.0.0.2/24");
        let out = call(ADD, r#"{"cniVersion":"1.1.0","name":"n","type":"fake"}"#);
        assert_eq!(json(&out)["ips"][0]["address"], "10.0.0.2/24");
    }

    #[test]
    fn version_reports_supported_versions() {
        let out = call(&[("CNI_COMMAND", "VERSION")], r#"{"cniVersion":"0.4.0"}"#);
        let v = json(&out);
        assert_eq!(v["cniVersion"], "0.4.0");
        assert_eq!(v["supportedVersions"].as_array().unwrap().len(), 7);
    }

    #[test]
    fn env_errors_are_code_4_and_name_what_is_missing() {
        let out = call(&with(&[("CNI_NETNS", ""), ("CNI_PATH", "")]), "{}");
        let v = json(&out);
        assert_eq!(v["code"], 4);
        assert_eq!(
            v["msg"],
            "required env variables [CNI_NETNS,CNI_PATH] missing"
        );
        for (k, bad) in [
            ("CNI_COMMAND", "FROB"),
            ("CNI_IFNAME", "a-very-long-name-x"),
            ("CNI_IFNAME", ".."),
            ("CNI_IFNAME", "eth 0"),
            ("CNI_IFNAME", "eth:0"),
            ("CNI_CONTAINERID", "../x"),
        ] {
            let out = call(&with(&[(k, bad)]), r#"{"cniVersion":"1.0.0","name":"n"}"#);
            assert_eq!(out.code, 1);
            assert_eq!(json(&out)["code"], 4, "{k}={bad}");
        }
    }

    #[test]
    fn config_errors_have_their_codes() {
        let cases = [
            ("{", 6),
            ("[1]", 6),
            (r#"{"cniVersion":"7.0.0","name":"n"}"#, 1),
            (r#"{"cniVersion":"1.0.0"}"#, 7),
            (r#"{"cniVersion":"1.0.0","name":"../../etc"}"#, 7),
            (r#"{"cniVersion":"1.0.0","name":"fail"}"#, 100),
            (r#"{"cniVersion":"0.1.0","name":"n","type":"x"}"#, 0),
        ];
        for (stdin, code) in cases {
            let out = call(ADD, stdin);
            if code == 0 {
                assert_eq!(out.code, 0, "{stdin}");
            } else {
                assert_eq!(json(&out)["code"], code, "{stdin}: {}", out.stdout);
            }
        }
    }

    #[test]
    fn verbs_are_gated_by_version() {
        let check = with(&[("CNI_COMMAND", "CHECK")]);
        let out = call(&check, r#"{"cniVersion":"0.3.1","name":"n"}"#);
        assert_eq!(json(&out)["code"], 1);
        let out = call(&check, r#"{"cniVersion":"0.4.0","name":"n"}"#);
        assert_eq!((out.code, out.stdout.as_str()), (0, ""));
        for verb in ["STATUS", "GC"] {
            let env = [("CNI_COMMAND", verb), ("CNI_PATH", "/x")];
            assert_eq!(
                json(&call(&env, r#"{"cniVersion":"1.0.0","name":"n"}"#))["code"],
                1
            );
            assert_eq!(call(&env, r#"{"cniVersion":"1.1.0","name":"n"}"#).code, 0);
        }
    }

    #[test]
    fn del_needs_no_netns() {
        let out = call(
            &with(&[("CNI_COMMAND", "DEL"), ("CNI_NETNS", "")]),
            r#"{"cniVersion":"1.0.0","name":"n"}"#,
        );
        assert_eq!(out.code, 0, "{}", out.stdout);
    }

    #[test]
    fn own_namespace_is_refused_unless_overridden() {
        let stdin = r#"{"cniVersion":"1.0.0","name":"n"}"#;
        let out = call(&with(&[("CNI_NETNS", "/proc/self/ns/net")]), stdin);
        assert_eq!(json(&out)["code"], 8, "{}", out.stdout);
        let env = with(&[
            ("CNI_NETNS", "/proc/self/ns/net"),
            ("CNI_NETNS_OVERRIDE", "true"),
        ]);
        assert_eq!(call(&env, stdin).code, 0);
    }

    #[test]
    fn errors_carry_the_request_version() {
        let out = call(ADD, r#"{"cniVersion":"0.4.0","name":"fail"}"#);
        assert_eq!(json(&out)["cniVersion"], "0.4.0");
    }

    #[test]
    fn gc_attachment_list_missing_vs_empty() {
        let req = |conf: &str| Request {
            command: Command::Gc,
            container_id: String::new(),
            netns: String::new(),
            ifname: String::new(),
            args: String::new(),
            path: vec![],
            stdin: vec![],
            conf: NetConf::parse(conf.as_bytes()).unwrap(),
            version: Version::V1_1_0,
        };
        assert_eq!(req(r#"{"name":"n"}"#).valid_attachments().unwrap(), None);
        assert_eq!(
            req(r#"{"name":"n","cni.dev/valid-attachments":[]}"#)
                .valid_attachments()
                .unwrap(),
            Some(vec![])
        );
        let got =
            req(r#"{"name":"n","cni.dev/attachments":[{"containerID":"a","ifname":"eth0"}]}"#)
                .valid_attachments()
                .unwrap()
                .unwrap();
        assert_eq!(got[0].container_id, "a");
    }
}
