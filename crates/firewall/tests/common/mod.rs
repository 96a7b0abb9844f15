//! Helpers for running the firewall crate against a real kernel, always
//! inside a namespace made for the test: netfilter state is per namespace,
//! so nothing here can touch the host's ruleset.

#![allow(dead_code)]

use serde_json::Value;
use std::os::fd::AsRawFd;
use std::process::Command;
pub use testutil::Netns;

/// Run `f` on a fresh thread that has entered `ns` (setns is per thread, and
/// every socket and child process it makes belongs to `ns`).
pub fn in_ns<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = std::fs::File::open(ns.path()).expect("open netns");
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("test thread panicked")
    })
}

/// Run a shell command inside `ns`, returning stdout; panics on failure.
pub fn sh(ns: &Netns, cmd: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "sh", "-c", cmd])
        .output()
        .expect("run ip netns exec");
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `nft -j list ruleset` inside `ns`, as the list of objects without the
/// metainfo entry and with handles removed, so two rulesets compare.
pub fn ruleset(ns: &Netns) -> Vec<Value> {
    let v: Value = serde_json::from_str(&sh(ns, "nft -j list ruleset")).expect("nft json");
    let mut items: Vec<Value> = v["nftables"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| i.get("metainfo").is_none())
        .collect();
    for i in &mut items {
        for kind in ["table", "chain", "rule"] {
            if let Some(o) = i.get_mut(kind).and_then(|o| o.as_object_mut()) {
                o.remove("handle");
            }
        }
    }
    items
}

/// The rules (as nft JSON) of one chain of `ruleset`.
pub fn rules_of<'a>(items: &'a [Value], family: &str, table: &str, chain: &str) -> Vec<&'a Value> {
    items
        .iter()
        .filter_map(|i| i.get("rule"))
        .filter(|r| r["family"] == family && r["table"] == table && r["chain"] == chain)
        .collect()
}

/// True if the ruleset has a chain `name` in `family table`.
pub fn has_chain(items: &[Value], family: &str, table: &str, name: &str) -> bool {
    items
        .iter()
        .filter_map(|i| i.get("chain"))
        .any(|c| c["family"] == family && c["table"] == table && c["name"] == name)
}
