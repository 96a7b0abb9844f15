//! Executing a plugin binary the way a runtime does: a controlled environment,
//! the configuration on stdin, the answer (result or CNI error) on stdout.

use crate::error::{Error, Result};
use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// PATH given to plugins when the runtime itself has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The protocol parameters of one call (the `CNI_*` variables).
#[derive(Debug, Clone, Default)]
pub struct Args {
    pub command: String,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    /// `CNI_ARGS` pairs, joined as `K=V;K=V`.
    pub args: Vec<(String, String)>,
    pub path: Vec<PathBuf>,
}

impl Args {
    /// The environment a runtime sets: every `CNI_*` variable, empty when unused.
    pub fn to_env(&self) -> Vec<(String, String)> {
        let args: Vec<String> = self.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let path: Vec<String> = self.path.iter().map(|p| p.display().to_string()).collect();
        vec![
            ("CNI_COMMAND".into(), self.command.clone()),
            ("CNI_CONTAINERID".into(), self.container_id.clone()),
            ("CNI_NETNS".into(), self.netns.clone()),
            ("CNI_ARGS".into(), args.join(";")),
            ("CNI_IFNAME".into(), self.ifname.clone()),
            ("CNI_PATH".into(), path.join(":")),
        ]
    }
}

/// How plugin processes are started.
#[derive(Debug, Clone)]
pub struct Exec {
    /// Variables every plugin gets besides the `CNI_*` ones (PATH by default).
    pub base_env: Vec<(String, String)>,
    /// Kill a plugin that runs longer than this (None: wait forever).
    pub timeout: Option<Duration>,
    /// Copy the plugins' stderr to ours on success (on failure it goes into the error).
    pub forward_stderr: bool,
    /// Start plugins inside this network namespace instead of ours. Runtimes
    /// leave it unset; tests use it to give plugins a sandboxed "host".
    pub netns: Option<PathBuf>,
}

impl Default for Exec {
    fn default() -> Exec {
        let path = std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.to_string());
        Exec {
            base_env: vec![("PATH".into(), path)],
            timeout: None,
            forward_stderr: true,
            netns: None,
        }
    }
}

/// Everything one plugin run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Exit code; None when the process was killed by a signal.
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub timed_out: bool,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// stdout as JSON: None when empty, Err when it is not JSON.
    pub fn json(&self) -> Option<std::result::Result<Value, serde_json::Error>> {
        if self.stdout.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            Some(serde_json::from_slice(&self.stdout))
        }
    }

    /// The failure as a CNI error: the plugin's own error document when it
    /// printed one, else a description built from what it did print.
    pub fn error(&self) -> cni::Error {
        let status = match (self.timed_out, self.code) {
            (true, _) => "was killed after timing out".to_string(),
            (false, Some(c)) => format!("exited with status {c}"),
            (false, None) => "was killed by a signal".to_string(),
        };
        match self.json() {
            Some(Ok(v)) => cni::delegate::error_from_json(&v).unwrap_or_else(|| {
                cni::Error::new(
                    0,
                    format!(
                        "plugin {status} but its stdout is not a CNI error: {}",
                        self.stdout_text().trim()
                    ),
                )
            }),
            Some(Err(e)) => cni::Error::new(
                0,
                format!(
                    "plugin {status} and printed unparseable output ({e}): {}",
                    self.stdout_text().trim()
                ),
            ),
            None if self.stderr.is_empty() => {
                cni::Error::new(0, format!("plugin {status} with no error message"))
            }
            None => cni::Error::new(
                0,
                format!("plugin {status}: {:?}", self.stderr_text().trim()),
            ),
        }
    }
}

impl Exec {
    /// Run `binary` with exactly `env` (plus `base_env`) and `stdin`.
    pub fn run(&self, binary: &Path, env: &[(String, String)], stdin: &[u8]) -> Result<Output> {
        let mut cmd = Command::new(binary);
        cmd.env_clear()
            .envs(self.base_env.iter().map(|(k, v)| (k, v)))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if self.timeout.is_some() {
            // Its own process group, so that a timeout also kills whatever it started.
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        }
        // Kept open until the child has been started.
        let netns = match &self.netns {
            Some(path) => Some(std::fs::File::open(path).map_err(|e| {
                Error::Exec(format!(
                    "cannot open network namespace {}: {e}",
                    path.display()
                ))
            })?),
            None => None,
        };
        if let Some(fd) = netns.as_ref().map(std::os::fd::AsRawFd::as_raw_fd) {
            // SAFETY: the closure runs in the forked child before exec and
            // only calls setns(2), which is async-signal-safe; `fd` stays
            // open in the parent (and so in the child) until spawn returns.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                    if libc::setns(fd, libc::CLONE_NEWNET) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let mut child = spawn_retrying(&mut cmd)
            .map_err(|e| Error::Exec(format!("failed to run plugin {}: {e}", binary.display())))?;
        drop(netns);
        let output = self
            .collect(&mut child, stdin)
            .map_err(|e| Error::Exec(format!("failed to run plugin {}: {e}", binary.display())))?;
        if self.forward_stderr && output.success() && !output.stderr.is_empty() {
            let _ = std::io::stderr().write_all(&output.stderr);
        }
        Ok(output)
    }

    /// Feed stdin and drain stdout/stderr concurrently (a plugin may write
    /// before it reads), then wait for exit within the timeout.
    fn collect(&self, child: &mut Child, stdin: &[u8]) -> std::io::Result<Output> {
        let input = child.stdin.take();
        let out = child.stdout.take();
        let err = child.stderr.take();
        std::thread::scope(|s| {
            s.spawn(move || {
                if let Some(mut input) = input {
                    // A plugin that exits without reading all input has answered anyway.
                    let _ = input.write_all(stdin);
                }
            });
            let stdout = s.spawn(move || drain(out));
            let stderr = s.spawn(move || drain(err));
            let (code, timed_out) = self.wait(child)?;
            Ok(Output {
                code,
                stdout: stdout.join().unwrap_or_default(),
                stderr: stderr.join().unwrap_or_default(),
                timed_out,
            })
        })
    }

    fn wait(&self, child: &mut Child) -> std::io::Result<(Option<i32>, bool)> {
        let Some(timeout) = self.timeout else {
            return Ok((child.wait()?.code(), false));
        };
        let deadline = Instant::now() + timeout;
        // Poll with a growing interval: plugins usually finish in milliseconds.
        let mut pause = Duration::from_micros(100);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok((status.code(), false));
            }
            if Instant::now() >= deadline {
                if let Ok(pgid) = i32::try_from(child.id()) {
                    // SAFETY: kill(2) has no memory-safety preconditions; the
                    // group is the one made for this child at spawn.
                    unsafe { libc::kill(-pgid, libc::SIGKILL) };
                }
                let _ = child.kill();
                return Ok((child.wait()?.code(), true));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }
}

fn drain(pipe: Option<impl Read>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(mut p) = pipe {
        let _ = p.read_to_end(&mut buf);
    }
    buf
}

/// Spawn, retrying while the binary is still being written ("text file busy"),
/// as the reference runtime library does.
fn spawn_retrying(cmd: &mut Command) -> std::io::Result<Child> {
    let mut attempts = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && attempts < 10 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// Find plugin `name` in `paths` (a plain file name, executable).
pub fn find(name: &str, paths: &[PathBuf]) -> Result<PathBuf> {
    cni::delegate::find(name, paths).map_err(|e| Error::Exec(e.msg))
}

/// What a plugin's VERSION call reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    pub cni_version: String,
    pub supported_versions: Vec<String>,
}

impl VersionInfo {
    pub fn supports(&self, version: &str) -> bool {
        self.supported_versions.iter().any(|v| v == version)
    }

    /// Decode a VERSION answer as the reference does: a 0.2.0-era answer
    /// without `supportedVersions` means 0.1.0 and 0.2.0.
    pub fn decode(v: &Value) -> std::result::Result<VersionInfo, String> {
        let cni_version = v
            .get("cniVersion")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or("decoding version info: missing field cniVersion")?
            .to_string();
        let supported: Vec<String> = match v.get("supportedVersions") {
            None | Some(Value::Null) => Vec::new(),
            Some(list) => serde_json::from_value(list.clone()).map_err(|e| {
                format!("decoding version info: supportedVersions is not a list of strings: {e}")
            })?,
        };
        if supported.is_empty() {
            if cni_version == "0.2.0" {
                return Ok(VersionInfo {
                    cni_version,
                    supported_versions: vec!["0.1.0".into(), "0.2.0".into()],
                });
            }
            return Err("decoding version info: missing field supportedVersions".into());
        }
        Ok(VersionInfo {
            cni_version,
            supported_versions: supported,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn env_sets_every_cni_variable() {
        let a = Args {
            command: "ADD".into(),
            container_id: "c".into(),
            netns: "/run/netns/x".into(),
            ifname: "eth0".into(),
            args: vec![("IP".into(), "10.0.0.2".into()), ("K".into(), "v".into())],
            path: vec!["/a".into(), "/b".into()],
        };
        let env = a.to_env();
        let get = |k: &str| env.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CNI_ARGS"), Some("IP=10.0.0.2;K=v"));
        assert_eq!(get("CNI_PATH"), Some("/a:/b"));
        assert_eq!(get("CNI_NETNS"), Some("/run/netns/x"));
        assert_eq!(env.len(), 6);
    }

    #[test]
    fn version_info_decoding() {
        let v = VersionInfo::decode(
            &json!({"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}),
        )
        .unwrap();
        assert!(v.supports("1.0.0") && !v.supports("1.1.0"));
        let old = VersionInfo::decode(&json!({"cniVersion":"0.2.0"})).unwrap();
        assert_eq!(old.supported_versions, ["0.1.0", "0.2.0"]);
        assert!(VersionInfo::decode(&json!({"cniVersion":"1.0.0"})).is_err());
        assert!(VersionInfo::decode(&json!({"supportedVersions":["1.0.0"]})).is_err());
    }

    #[test]
    fn errors_from_plugin_output() {
        let out = |code, stdout: &str, stderr: &str| Output {
            code,
            stdout: stdout.into(),
            stderr: stderr.into(),
            timed_out: false,
        };
        let e = out(Some(1), r#"{"code":7,"msg":"bad","details":"d"}"#, "").error();
        assert_eq!(
            (e.code, e.msg.as_str(), e.details.as_str()),
            (7, "bad", "d")
        );
        let e = out(Some(1), "", "boom").error();
        assert!(e.msg.contains("boom") && e.code == 0);
        let e = out(None, "not json", "").error();
        assert!(e.msg.contains("unparseable") && e.msg.contains("signal"));
    }

    #[test]
    fn runs_a_process_with_a_clean_environment() {
        let exec = Exec {
            timeout: Some(Duration::from_secs(10)),
            ..Exec::default()
        };
        let sh = Path::new("/bin/sh");
        let out = exec
            .run(sh, &[("CNI_COMMAND".into(), "ADD".into())], b"env")
            .unwrap();
        assert!(out.success());
        for line in out.stdout_text().lines() {
            let key = line.split('=').next().unwrap();
            assert!(
                ["PATH", "CNI_COMMAND", "PWD", "SHLVL", "_"].contains(&key),
                "leaked variable {line}"
            );
        }
        assert!(out.stdout_text().contains("CNI_COMMAND=ADD"));
        let out = exec
            .run(sh, &[], b"echo \"[$CNI_COMMAND]\"; echo err >&2; exit 3")
            .unwrap();
        assert_eq!(out.code, Some(3));
        assert_eq!(out.stdout_text(), "[]\n");
        assert_eq!(out.stderr_text(), "err\n");
        let slow = Exec {
            timeout: Some(Duration::from_millis(50)),
            ..Exec::default()
        };
        let out = slow.run(sh, &[], b"sleep 5").unwrap();
        assert!(out.timed_out && !out.success());
    }
}
