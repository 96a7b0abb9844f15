//! The loopback binary, run as a runtime runs it, in fresh namespaces.

use netlink::Netns as NsHandle;
use serde_json::{json, Value};
use testutil::{plugin, unique, Call, Netns};

const VERSIONS: [&str; 7] = [
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
];

fn conf(version: &str) -> String {
    json!({"cniVersion": version, "name": "lo-net", "type": "loopback"}).to_string()
}

fn chained(version: &str, prev: Value) -> String {
    json!({"cniVersion": version, "name": "lo-net", "type": "loopback", "prevResult": prev})
        .to_string()
}

fn call(command: &str, netns: &str) -> Call {
    // CNI_IFNAME is deliberately not "lo": the plugin must ignore it.
    Call::new(&plugin("loopback"), command).attach(&unique("cid"), netns, "eth0")
}

fn lo_is_up(ns: &Netns) -> bool {
    let mut handle = NsHandle::open(&ns.path()).unwrap().handle().unwrap();
    handle.link_by_name("lo").unwrap().up
}

#[test]
fn add_brings_lo_up_and_reports_it_in_every_version() {
    for v in VERSIONS {
        let ns = Netns::new("lo");
        assert!(!lo_is_up(&ns), "a fresh namespace starts with lo down");
        let out = call("ADD", &ns.path()).run(&conf(v)).ok();
        assert!(lo_is_up(&ns), "{v}: lo not up after ADD");
        assert_eq!(out["cniVersion"], v);
        match v {
            "0.1.0" | "0.2.0" => {
                assert_eq!(out["ip4"]["ip"], "127.0.0.1/8", "{v}: {out}");
                assert_eq!(out["ip6"]["ip"], "::1/128", "{v}: {out}");
                assert!(out.get("interfaces").is_none(), "{v}: {out}");
            }
            _ => {
                let sandbox = ns.path();
                assert_eq!(
                    out["interfaces"],
                    json!([{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": sandbox}]),
                    "{v}"
                );
                let ips = out["ips"].as_array().unwrap();
                assert_eq!(ips.len(), 2, "{v}: {out}");
                assert_eq!(ips[0]["address"], "127.0.0.1/8");
                assert_eq!(ips[1]["address"], "::1/128");
                for ip in ips {
                    assert_eq!(ip["interface"], 0, "{v}: {out}");
                    assert!(ip.get("gateway").is_none());
                }
                if v.starts_with("0.") {
                    assert_eq!(ips[0]["version"], "4");
                    assert_eq!(ips[1]["version"], "6");
                } else {
                    assert!(ips[0].get("version").is_none(), "{v}: {out}");
                }
            }
        }
    }
}

#[test]
fn reports_only_the_families_lo_has() {
    let ns = Netns::new("lo");
    assert!(ns.exec_ok(&["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"]));
    let out = call("ADD", &ns.path()).run(&conf("1.0.0")).ok();
    assert_eq!(
        out["ips"],
        json!([{"address": "127.0.0.1/8", "interface": 0}]),
        "{out}"
    );
}

#[test]
fn chained_add_passes_prev_result_through() {
    let prev = json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "mac": "0a:58:0a:01:00:05", "sandbox": "/x"}],
        "ips": [{"address": "10.1.0.5/24", "gateway": "10.1.0.1", "interface": 0}],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": {"nameservers": ["10.1.0.1"]}
    });
    for v in ["0.4.0", "1.0.0", "1.1.0"] {
        let ns = Netns::new("lo");
        let mut p = prev.clone();
        p["cniVersion"] = v.into();
        if v == "0.4.0" {
            p["ips"][0]["version"] = "4".into();
        }
        let out = call("ADD", &ns.path()).run(&chained(v, p.clone())).ok();
        assert_eq!(out, p, "{v}");
        assert!(lo_is_up(&ns), "{v}: chained ADD must still bring lo up");
    }

    // Legacy shape too.
    let ns = Netns::new("lo");
    let p = json!({"cniVersion": "0.2.0", "ip4": {"ip": "10.1.0.5/24", "gateway": "10.1.0.1"}, "dns": {}});
    let out = call("ADD", &ns.path())
        .run(&chained("0.2.0", p.clone()))
        .ok();
    assert_eq!(out, p);
}

#[test]
fn bad_prev_result_changes_nothing() {
    let ns = Netns::new("lo");
    let bad = chained(
        "1.0.0",
        json!({"cniVersion": "1.0.0", "ips": [{"address": "not-an-ip"}]}),
    );
    call("ADD", &ns.path()).run(&bad).err(6);
    assert!(!lo_is_up(&ns));
}

#[test]
fn del_sets_lo_down_and_can_repeat() {
    let ns = Netns::new("lo");
    call("ADD", &ns.path()).run(&conf("1.0.0")).ok();
    for _ in 0..2 {
        let out = call("DEL", &ns.path()).run(&conf("1.0.0"));
        assert_eq!(out.ok(), Value::Null, "DEL prints nothing");
        assert!(!lo_is_up(&ns));
    }
}

#[test]
fn del_succeeds_when_the_namespace_is_gone_or_not_given() {
    let ns = Netns::new("lo");
    let path = ns.path();
    call("ADD", &path).run(&conf("0.4.0")).ok();
    drop(ns);
    call("DEL", &path).run(&conf("0.4.0")).ok();
    call("DEL", "").run(&conf("0.4.0")).ok();
    Call::new(&plugin("loopback"), "DEL")
        .env("CNI_CONTAINERID", "c1")
        .env("CNI_IFNAME", "eth0")
        .run(&conf("1.1.0"))
        .ok();
}

#[test]
fn check_passes_while_lo_is_up_and_fails_after_del() {
    let ns = Netns::new("lo");
    let add = call("ADD", &ns.path()).run(&conf("1.0.0")).ok();
    let with_prev = chained("1.0.0", add);
    assert_eq!(call("CHECK", &ns.path()).run(&with_prev).ok(), Value::Null);
    call("DEL", &ns.path()).run(&with_prev).ok();
    let err = call("CHECK", &ns.path()).run(&with_prev).err(103);
    let msg = err["msg"].as_str().unwrap();
    assert!(
        msg.contains("loopback interface") && msg.contains("down"),
        "{msg}"
    );
}

#[test]
fn add_with_a_missing_namespace_says_so() {
    let path = format!("/run/netns/{}", unique("nope"));
    let err = call("ADD", &path).run(&conf("1.0.0")).err(100);
    assert_eq!(
        err["msg"],
        format!("failed to open netns {path}: No such file or directory (os error 2)")
    );
    assert!(!std::path::Path::new(&path).exists(), "nothing was created");
    call("CHECK", &path).run(&conf("1.0.0")).err(100);
}

#[test]
fn add_refuses_a_file_that_is_not_a_namespace() {
    let dir = testutil::TempDir::new("lo");
    let file = dir.path.join("not-a-netns");
    std::fs::write(&file, "").unwrap();
    let err = call("ADD", file.to_str().unwrap())
        .run(&conf("1.0.0"))
        .err(100);
    assert!(
        err["msg"]
            .as_str()
            .unwrap()
            .contains("is not a network namespace"),
        "{err}"
    );
    // DEL treats it as a namespace that is gone.
    call("DEL", file.to_str().unwrap()).run(&conf("1.0.0")).ok();
}

#[test]
fn status_and_version_answer() {
    let out = Call::new(&plugin("loopback"), "STATUS").run(&conf("1.1.0"));
    assert_eq!(out.ok(), Value::Null);
    let out = Call::new(&plugin("loopback"), "VERSION")
        .run(&conf("1.0.0"))
        .ok();
    assert_eq!(out["supportedVersions"], json!(VERSIONS));
}

/// The plugin skips the Rust runtime's start-up (`cni::plugin_main!`); what
/// of it matters is done by hand. Closed standard fds must not become our
/// files, and a runtime that stops reading must not kill us with SIGPIPE.
#[test]
fn closed_standard_fds_and_a_closed_pipe_are_survived() {
    use std::io::Write;
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::{Command, Stdio};

    let mut closed = Command::new(plugin("loopback"));
    closed.env("CNI_COMMAND", "VERSION");
    // SAFETY: only async-signal-safe close() between fork and exec.
    unsafe {
        closed.pre_exec(|| {
            for fd in 0..3 {
                libc::close(fd);
            }
            Ok(())
        });
    }
    let status = closed.status().unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");

    // Stdout is a pipe nobody reads any more when the answer is written.
    let mut child = Command::new(plugin("loopback"))
        .env("CNI_COMMAND", "VERSION")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(b"{}");
    drop(stdin);
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), None, "killed by a signal: {status:?}");
}
