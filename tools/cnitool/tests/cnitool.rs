//! cnitool end to end: our loopback and host-local through conflists in a
//! fresh namespace, with a private cache and lease dir.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use testutil::{Netns, TempDir};

fn cnitool(conf: &Path, cache: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    testutil::plugin("loopback");
    testutil::plugin("host-local");
    Command::new(env!("CARGO_BIN_EXE_cnitool"))
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("NETCONFPATH", conf)
        .env("CNI_PATH", testutil::bin_dir())
        .env("CNI_CACHE_DIR", cache)
        .envs(env.iter().copied())
        .output()
        .expect("run cnitool")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "cnitool failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn add_check_status_gc_del_in_a_namespace() {
    if !testutil::can_netns() {
        eprintln!("skipped: creating namespaces needs root");
        return;
    }
    let ns = Netns::new("ctl");
    let tmp = TempDir::new("cnitool");
    let (conf, cache, leases) = (
        tmp.path.join("net.d"),
        tmp.path.join("cache"),
        tmp.path.join("leases"),
    );
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("10-lo.conflist"),
        r#"{"cniVersion":"1.0.0","name":"lo-net","plugins":[{"type":"loopback"}]}"#,
    )
    .unwrap();
    std::fs::write(
        conf.join("20-hl.conflist"),
        serde_json::json!({"cniVersion": "1.1.0", "name": "hl-net", "plugins": [{
            "type": "host-local", "capabilities": {"ips": true},
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.210.0.0/24"}]],
                     "dataDir": leases}}]})
        .to_string(),
    )
    .unwrap();
    let netns = ns.path();
    let run = |args: &[&str], env: &[(&str, &str)]| cnitool(&conf, &cache, args, env);

    let lo: Value = serde_json::from_str(&ok(&run(&["add", "lo-net", &netns], &[]))).unwrap();
    assert_eq!(lo["interfaces"][0]["name"], "lo");
    assert!(ns.ip(&["-o", "addr", "show", "lo"]).contains("127.0.0.1/8"));

    let caps = [("CAP_ARGS", r#"{"ips":["10.210.0.77/24"]}"#)];
    let hl: Value = serde_json::from_str(&ok(&run(&["add", "hl-net", &netns], &caps))).unwrap();
    assert_eq!(hl["ips"][0]["address"], "10.210.0.77/24");
    assert!(leases.join("hl-net/10.210.0.77").exists());
    // The container ID is derived from the netns path, as the reference cnitool does.
    let cached: Vec<String> = std::fs::read_dir(cache.join("results"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        cached
            .iter()
            .any(|n| n.starts_with("hl-net-cnitool-") && n.ends_with("-eth0")),
        "{cached:?}"
    );

    assert_eq!(ok(&run(&["check", "lo-net", &netns], &[])), "");
    assert_eq!(ok(&run(&["check", "hl-net", &netns], &[])), "");
    assert_eq!(ok(&run(&["status", "hl-net"], &[])), "");

    // A second attachment, then GC keeping only it: the first one's lease goes.
    let other = [("CNI_CONTAINERID", "other"), ("CNI_IFNAME", "eth1")];
    ok(&run(&["add", "hl-net", &netns], &other));
    let keep = [(
        "CNI_VALID_ATTACHMENTS",
        r#"[{"containerID":"other","ifname":"eth1"}]"#,
    )];
    ok(&run(&["gc", "hl-net"], &keep));
    assert!(!leases.join("hl-net/10.210.0.77").exists());
    ok(&run(&["del", "hl-net", &netns], &other));
    ok(&run(&["del", "lo-net", &netns], &[]));
    let left: Vec<_> = std::fs::read_dir(leases.join("hl-net"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with("10."))
        .collect();
    assert!(left.is_empty(), "leases left: {left:?}");
    assert_eq!(std::fs::read_dir(cache.join("results")).unwrap().count(), 0);

    let missing = run(&["add", "nope", &netns], &[]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr)
        .contains("no net configuration with name \"nope\""));
    let usage = run(&["add"], &[]);
    assert!(!usage.status.success());
    assert!(String::from_utf8_lossy(&usage.stderr).contains("cnitool add"));
}
