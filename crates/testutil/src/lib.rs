//! Shared support for integration tests that exec plugin binaries in real
//! network namespaces. Everything made here is removed on drop, also when a
//! test fails, and names are unique per process so tests can run in parallel.

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

mod ping;
pub use ping::{ping, ping_timed};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call, at most `prefix.len() + 10` chars.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{:x}{n:x}", std::process::id() & 0xffffff)
}

/// Where the built plugin binaries are: `$CNI_BIN_DIR`, else the workspace's
/// `target/debug`.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CNI_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../../target"));
    target.join("debug")
}

/// Path of the plugin binary `name`; panics with a hint when it is not built.
pub fn plugin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "plugin binary {} not found: run `cargo build --workspace` first (or set CNI_BIN_DIR)",
        p.display()
    );
    p
}

/// Where Debian's reference plugins live, when installed.
pub fn reference_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(
        std::env::var_os("CNI_REFERENCE_DIR").unwrap_or_else(|| "/usr/lib/cni".into()),
    );
    dir.join("host-local").exists().then_some(dir)
}

/// True when we may create namespaces (root with CAP_SYS_ADMIN).
pub fn can_netns() -> bool {
    Path::new("/run").exists() && unsafe_geteuid_is_root()
}

fn unsafe_geteuid_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Run `ip` with `args`, panicking with its stderr on failure (test set-up only).
pub fn ip(args: &[&str]) -> String {
    try_ip(args).unwrap_or_else(|e| panic!("{e}"))
}

/// Run `ip` with `args`: its stdout, or what went wrong (for callers such as
/// the conformance runner that report failures instead of panicking).
pub fn try_ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Write an executable script to `path`. The file is written by an
/// `install` process, never through a descriptor of ours: a test thread
/// that forks while we hold the file open for writing would make our own
/// exec of it fail with ETXTBSY ("Text file busy").
pub fn write_script(path: &Path, text: &str) {
    let source = path.with_extension(format!("src{}", unique("")));
    std::fs::write(&source, text).unwrap();
    let status = Command::new("install")
        .args(["-m", "755"])
        .arg(&source)
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "install {} failed", path.display());
    let _ = std::fs::remove_file(&source);
}

/// A named network namespace under /run/netns, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(prefix: &str) -> Netns {
        let name = unique(prefix);
        ip(&["netns", "add", &name]);
        Netns { name }
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// Run `ip args...` inside this namespace.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Run a command inside this namespace and return its success.
    pub fn exec_ok(&self, cmd: &[&str]) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(cmd)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// A temporary directory removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let path = std::env::temp_dir().join(unique(&format!("cni-test-{prefix}-")));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// What one plugin run printed.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// stdout as JSON (Null when empty).
    pub fn json(&self) -> Value {
        if self.stdout.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&self.stdout)
                .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
        }
    }

    /// Assert success and return the JSON printed.
    pub fn ok(&self) -> Value {
        assert_eq!(
            self.code, 0,
            "plugin failed: {}{}",
            self.stdout, self.stderr
        );
        self.json()
    }

    /// Assert failure with the CNI error `code`, returning the error document.
    pub fn err(&self, code: u64) -> Value {
        assert_ne!(
            self.code, 0,
            "plugin unexpectedly succeeded: {}",
            self.stdout
        );
        let v = self.json();
        assert_eq!(v["code"], code, "wrong error code: {v}");
        assert!(
            !v["msg"].as_str().unwrap_or_default().is_empty(),
            "error without message: {v}"
        );
        v
    }
}

/// An invocation as a runtime makes it; build with the setters, then `run`.
#[derive(Clone)]
pub struct Call {
    binary: PathBuf,
    env: Vec<(String, String)>,
    /// Run the plugin inside this named namespace (its "host").
    netns: Option<String>,
}

impl Call {
    /// A call of `binary` with `CNI_COMMAND=command` and `CNI_PATH` set to the
    /// binary's own directory; nothing else from the test's environment leaks in.
    pub fn new(binary: &Path, command: &str) -> Call {
        let dir = binary
            .parent()
            .unwrap_or(Path::new("/"))
            .display()
            .to_string();
        Call {
            binary: binary.to_path_buf(),
            env: vec![
                ("CNI_COMMAND".into(), command.into()),
                ("CNI_PATH".into(), dir),
            ],
            netns: None,
        }
    }

    /// Run the plugin inside namespace `name` (through `ip netns exec`), so
    /// the namespace is the plugin's host: its bridges, host veth ends,
    /// routes and firewall rules land there, never in the real host.
    pub fn in_netns(mut self, name: &str) -> Call {
        self.netns = Some(name.to_string());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Call {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn unset(mut self, key: &str) -> Call {
        self.env.retain(|(k, _)| k != key);
        self
    }

    /// Set CNI_CONTAINERID, CNI_NETNS and CNI_IFNAME at once.
    pub fn attach(self, container_id: &str, netns: &str, ifname: &str) -> Call {
        self.env("CNI_CONTAINERID", container_id)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", ifname)
    }

    pub fn run(&self, stdin: &str) -> Output {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&self.binary);
                c
            }
            None => Command::new(&self.binary),
        };
        let mut child = cmd
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.binary.display()));
        if let Some(mut input) = child.stdin.take() {
            let _ = input.write_all(stdin.as_bytes());
        }
        let out = child.wait_with_output().expect("wait for plugin");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}
