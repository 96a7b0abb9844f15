//! Network sysctls (`/proc/sys/net/...`) of the calling thread's namespace.
//!
//! `/proc/sys/net` shows the namespace of the thread that opens the file, so
//! to change a container's setting, call these inside [`crate::Netns::run`].

use crate::error::{Error, Result};
use std::path::PathBuf;

/// The file behind a key. Keys are `net.ipv4.ip_forward` or, when a part
/// holds a dot (an interface like `eth0.100`), `net/ipv4/conf/eth0.100/forwarding`.
/// Only keys under `net` are allowed, and no part may be empty, `.` or `..`.
pub fn path(key: &str) -> std::result::Result<PathBuf, String> {
    let parts: Vec<&str> = if key.contains('/') {
        key.split('/').collect()
    } else {
        key.split('.').collect()
    };
    if parts.first() != Some(&"net") || parts.len() < 2 {
        return Err(format!("sysctl {key:?} is not a network setting (net.*)"));
    }
    if let Some(bad) = parts
        .iter()
        .find(|p| p.is_empty() || **p == "." || **p == ".." || p.contains('\0'))
    {
        return Err(format!("sysctl {key:?} has an invalid part {bad:?}"));
    }
    let mut path = PathBuf::from("/proc/sys");
    path.extend(parts);
    Ok(path)
}

/// Read a network sysctl, without the trailing newline.
pub fn get(key: &str) -> Result<String> {
    let op = || format!("reading sysctl {key:?}");
    let path = path(key).map_err(|e| Error::invalid(op(), e))?;
    let mut v = std::fs::read_to_string(path).map_err(|e| Error::os(op(), e))?;
    v.truncate(v.trim_end_matches('\n').len());
    Ok(v)
}

/// Write a network sysctl.
pub fn set(key: &str, value: &str) -> Result<()> {
    let op = || format!("setting sysctl {key:?} to {value:?}");
    let path = path(key).map_err(|e| Error::invalid(op(), e))?;
    std::fs::write(path, value).map_err(|e| Error::os(op(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_proc_sys_net() {
        assert_eq!(
            path("net.ipv4.ip_forward").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            path("net/ipv4/conf/eth0.100/forwarding").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0.100/forwarding")
        );
    }

    #[test]
    fn keys_cannot_escape_net() {
        for bad in [
            "kernel.hostname",
            "net",
            "net/../kernel/hostname",
            "net/ipv4/../../kernel/x",
            "net..ipv4",
            "/net/ipv4/ip_forward",
            "net.ipv4.",
            "net/./ipv4",
            "",
        ] {
            assert!(path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn invalid_keys_fail_as_invalid_input() {
        let e = set("kernel.hostname", "x").unwrap_err();
        assert!(e.is_invalid());
        let e: cni::Error = e.into();
        assert_eq!(e.code, cni::code::INVALID_CONFIG);
    }

    #[test]
    fn missing_keys_are_not_found() {
        assert!(get("net.ipv4.no_such_setting").unwrap_err().is_not_found());
    }
}
