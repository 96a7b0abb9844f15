//! Running another plugin (usually IPAM) with the caller's stdin and
//! environment, as SPEC §4 describes.

use crate::error::{code, Error, Result};
use crate::result::CniResult;
use crate::skel::{Command, Request};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// Find the executable for plugin `name` in `paths`.
pub fn find(name: &str, paths: &[PathBuf]) -> Result<PathBuf> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(Error::invalid_config(format!(
            "invalid plugin type {name:?}: it must be a plain file name"
        )));
    }
    paths
        .iter()
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
        .ok_or_else(|| {
            Error::new(
                code::DELEGATE_FAILED,
                format!(
                    "failed to find plugin {name:?} in path {:?}: install it there or fix CNI_PATH",
                    paths
                ),
            )
        })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Execute `binary` with `command`, the given stdin, and our environment with
/// `CNI_COMMAND` (and any `extra_env`) overridden. Returns the parsed stdout,
/// or the plugin's own CNI error.
pub fn exec(
    binary: &Path,
    command: Command,
    stdin: &[u8],
    extra_env: &[(&str, &str)],
) -> Result<Option<Value>> {
    spawn(binary, command, stdin, extra_env)?.wait()
}

/// A delegated plugin started by [`spawn`] and not yet waited for.
///
/// Dropping it waits for the process too (with its stdout closed, so it
/// cannot block on a full pipe): whatever the plugin does is over before the
/// caller goes on, for instance to undo it.
pub struct Running {
    child: Option<std::process::Child>,
    name: String,
    /// Stdout read so far.
    out: Vec<u8>,
}

/// Like [`exec`], but returns once the plugin is running with all of its
/// stdin written, so the caller can work while it runs.
pub fn spawn(
    binary: &Path,
    command: Command,
    stdin: &[u8],
    extra_env: &[(&str, &str)],
) -> Result<Running> {
    let name = binary.display().to_string();
    let mut cmd = std::process::Command::new(binary);
    cmd.env("CNI_COMMAND", command.as_str())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().map_err(|e| {
        Error::new(
            code::DELEGATE_FAILED,
            format!("failed to run plugin {name}: {e}"),
        )
    })?;
    if let Some(mut input) = child.stdin.take() {
        // A plugin may exit without reading everything; that is its answer, not ours.
        let _ = input.write_all(stdin);
    }
    Ok(Running {
        child: Some(child),
        name,
        out: Vec::new(),
    })
}

impl Running {
    /// The plugin's stdout as soon as it is one whole JSON document that is
    /// not a CNI error, before the process has exited. A plugin prints its
    /// result as its last act, so the caller can use the result while the
    /// process exits; [`Running::wait`] must still confirm the exit status
    /// before the result counts. `None`: nothing like a result came before
    /// the plugin closed its stdout; `wait` tells what happened.
    pub fn early_result(&mut self) -> Option<Value> {
        use std::io::Read;
        let stdout = self.child.as_mut()?.stdout.as_mut()?;
        let mut chunk = [0u8; 4096];
        loop {
            match stdout.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.out.extend_from_slice(chunk.get(..n)?),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return None,
            }
            // Only a buffer ending in `}` can be a whole document: a large
            // output is not parsed again after every chunk.
            let last = self.out.iter().rev().find(|b| !b.is_ascii_whitespace());
            if last != Some(&b'}') {
                continue;
            }
            match serde_json::from_slice::<Value>(&self.out) {
                Ok(v) if error_from_json(&v).is_none() => return Some(v),
                // An error document: the exit status decides.
                Ok(_) => return None,
                // Incomplete (or invalid, which `wait` reports): read on.
                Err(_) => continue,
            }
        }
    }

    /// Wait for the plugin: its parsed stdout, or its own CNI error.
    pub fn wait(mut self) -> Result<Option<Value>> {
        let name = std::mem::take(&mut self.name);
        let Some(child) = self.child.take() else {
            return Err(Error::new(
                code::DELEGATE_FAILED,
                format!("plugin {name} was already waited for"),
            ));
        };
        let mut output = child.wait_with_output().map_err(|e| {
            Error::new(
                code::DELEGATE_FAILED,
                format!("failed to wait for plugin {name}: {e}"),
            )
        })?;
        self.out.append(&mut output.stdout);
        let text = String::from_utf8_lossy(&self.out);
        let parsed: Option<Value> = if text.trim().is_empty() {
            None
        } else {
            Some(serde_json::from_str(&text).map_err(|e| {
                Error::decode(format!("plugin {name} printed invalid JSON ({e}): {text}"))
            })?)
        };
        if output.status.success() {
            return Ok(parsed);
        }
        Err(match parsed.as_ref().and_then(error_from_json) {
            Some(e) => e,
            None => Error::new(
                code::DELEGATE_FAILED,
                format!(
                    "plugin {name} failed ({}) without a CNI error on stdout",
                    output.status
                ),
            ),
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            drop(child.stdout.take());
            let _ = child.wait();
        }
    }
}

/// A CNI error document (`code`, `msg`, `details`) as an [`Error`].
pub fn error_from_json(v: &Value) -> Option<Error> {
    let code = v.get("code")?.as_u64()?;
    let msg = v.get("msg").and_then(Value::as_str).unwrap_or_default();
    let details = v.get("details").and_then(Value::as_str).unwrap_or_default();
    Some(Error::new(u32::try_from(code).ok()?, msg).with_details(details))
}

/// The request's IPAM plugin (`ipam.type`) as found on `CNI_PATH`.
pub fn ipam_binary(req: &Request) -> Result<PathBuf> {
    let Some(ipam_type) = req.conf.ipam_type.as_deref() else {
        return Err(Error::invalid_config(format!(
            "network \"{}\" has no \"ipam\" section with a \"type\"",
            req.conf.name
        )));
    };
    find(ipam_type, &req.path)
}

/// Decode what IPAM ADD printed, in the request's version.
pub fn ipam_add_result(req: &Request, out: Option<Value>) -> Result<CniResult> {
    let out = out.ok_or_else(|| {
        Error::decode(format!(
            "IPAM plugin {:?} printed no result",
            req.conf.ipam_type.as_deref().unwrap_or_default()
        ))
    })?;
    CniResult::from_json(&out, req.version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A plugin made of shell `body`, in a fresh directory.
    fn plugin(body: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "cni-delegate-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let bin = dir.join("p");
        testutil::write_script(&bin, &format!("#!/bin/sh\n{body}\n"));
        bin
    }

    #[test]
    fn early_result_comes_when_the_document_is_whole() {
        // Printed in two pieces, then the plugin lingers before exiting.
        let bin = plugin(
            "printf '{\"cniVersion\": \"1.0.0\", '; sleep 0.1; \
             printf '\"ips\": []}\\n'; sleep 0.4",
        );
        let start = Instant::now();
        let mut running = spawn(&bin, Command::Add, b"{}", &[]).unwrap();
        let early = running.early_result().unwrap();
        assert_eq!(early["cniVersion"], "1.0.0");
        assert!(start.elapsed() < Duration::from_millis(350));
        assert_eq!(running.wait().unwrap().unwrap(), early);
        assert!(start.elapsed() >= Duration::from_millis(500));
        let _ = std::fs::remove_dir_all(bin.parent().unwrap());
    }

    #[test]
    fn a_large_result_is_read_whole() {
        // 256 KiB of one string: many chunks, one document.
        let bin = plugin(
            "printf '{\"cniVersion\": \"1.0.0\", \"pad\": \"'; \
             head -c 262144 /dev/zero | tr '\\0' x; printf '\"}'",
        );
        let mut running = spawn(&bin, Command::Add, b"{}", &[]).unwrap();
        let early = running.early_result().unwrap();
        assert_eq!(early["pad"].as_str().map(str::len), Some(262144));
        assert_eq!(running.wait().unwrap().unwrap(), early);
        let _ = std::fs::remove_dir_all(bin.parent().unwrap());
    }

    #[test]
    fn errors_and_garbage_wait_for_the_exit_status() {
        let bin = plugin("echo '{\"code\": 11, \"msg\": \"busy\"}'; exit 1");
        let mut running = spawn(&bin, Command::Add, b"{}", &[]).unwrap();
        assert!(running.early_result().is_none());
        assert_eq!(running.wait().unwrap_err().code, 11);

        let bin = plugin("echo '{\"ips\": [] } trailing'");
        let mut running = spawn(&bin, Command::Add, b"{}", &[]).unwrap();
        assert!(running.early_result().is_none());
        let e = running.wait().unwrap_err();
        assert!(e.msg.contains("invalid JSON"), "{e}");
        let _ = std::fs::remove_dir_all(bin.parent().unwrap());
    }
}
