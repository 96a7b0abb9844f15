//! `bench --ours DIR --reference DIR [--runs N] [--parallel N] [--only NAME|parallel] [--no-resident]`
//!
//! Runs each scenario with our plugins and the reference plugins back to back,
//! on the same machine, and prints medians and ratios. Every ADD and DEL is a
//! fresh process, as a runtime would run it; we time from spawn to exit.
//! Everything happens inside a private "host" namespace made for the run, so
//! bridges, veths and firewall rules never touch the real host. While a
//! scenario's containers come and go, one more container stays attached to
//! its network (see `sequential`; `--no-resident` leaves it out).

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testutil::{Netns, TempDir};

struct Opts {
    ours: PathBuf,
    reference: PathBuf,
    runs: usize,
    parallel: usize,
    only: Option<String>,
    /// Keep one container attached during each scenario's timed runs.
    resident: bool,
}

fn parse_opts() -> Result<Opts, String> {
    let mut opts = Opts {
        ours: PathBuf::from("target/x86_64-unknown-linux-gnu/release"),
        reference: PathBuf::from("/usr/lib/cni"),
        runs: 40,
        parallel: 64,
        only: None,
        resident: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--ours" => opts.ours = val()?.into(),
            "--reference" => opts.reference = val()?.into(),
            "--runs" => opts.runs = val()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--parallel" => {
                opts.parallel = val()?.parse().map_err(|e| format!("--parallel: {e}"))?
            }
            "--only" => opts.only = Some(val()?),
            "--no-resident" => opts.resident = false,
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    Ok(opts)
}

/// One finished plugin process.
struct Run {
    ok: bool,
    wall: Duration,
    max_rss_kb: i64,
    stdout: String,
}

/// Spawn `binary` with a CNI environment and wait for it with wait4, so we
/// get its peak RSS (including the IPAM plugin it waited for) as well.
fn exec(binary: &Path, env: &[(&str, String)], stdin: &str) -> Run {
    let start = Instant::now();
    let mut child = match Command::new(binary)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            return Run {
                ok: false,
                wall: start.elapsed(),
                max_rss_kb: 0,
                stdout: format!("spawn {}: {e}", binary.display()),
            }
        }
    };
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut stdout);
    }
    let mut status = 0;
    // SAFETY: rusage is plain data the kernel fills in; the pid is our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    Run {
        ok: rc == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        wall,
        max_rss_kb: usage.ru_maxrss,
        stdout,
    }
}

/// A network to benchmark: the plugin and its config (without name/version).
struct Scenario {
    name: &'static str,
    plugin: &'static str,
    conf: fn(&Path) -> Value,
    /// Also time how soon the container reaches its IPv6 gateway after ADD,
    /// each time on a bridge that ADD creates.
    v6_probe: bool,
}

fn host_local(data: &Path, ranges: Value) -> Value {
    json!({"type": "host-local", "dataDir": data, "ranges": ranges})
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "loopback",
            plugin: "loopback",
            conf: |_| json!({}),
            v6_probe: false,
        },
        Scenario {
            name: "bridge+host-local",
            plugin: "bridge",
            conf: |d| {
                json!({"bridge": "cnibr0", "isGateway": true,
                       "ipam": host_local(d, json!([[{"subnet": "10.99.0.0/16"}]]))})
            },
            v6_probe: false,
        },
        Scenario {
            // IPAM that costs little more than its process: what is left
            // is the bridge plugin's own work.
            name: "bridge+static",
            plugin: "bridge",
            conf: |_| {
                json!({"bridge": "cnibr3", "isGateway": true,
                       "ipam": {"type": "static", "addresses": [{"address": "10.95.0.5/16"}]}})
            },
            v6_probe: false,
        },
        Scenario {
            name: "bridge+host-local ipMasq",
            plugin: "bridge",
            conf: |d| {
                json!({"bridge": "cnibr1", "isGateway": true, "ipMasq": true,
                       "ipam": host_local(d, json!([[{"subnet": "10.98.0.0/16"}]]))})
            },
            v6_probe: false,
        },
        Scenario {
            name: "bridge+host-local dual-stack",
            plugin: "bridge",
            conf: |d| {
                json!({"bridge": "cnibr2", "isGateway": true,
                       "ipam": host_local(d, json!([[{"subnet": "10.97.0.0/16"}],
                                                    [{"subnet": "fd97::/64"}]]))})
            },
            v6_probe: true,
        },
        Scenario {
            name: "ptp+host-local",
            plugin: "ptp",
            conf: |d| json!({"ipam": host_local(d, json!([[{"subnet": "10.96.0.0/16"}]]))}),
            v6_probe: false,
        },
    ]
}

fn config_value(s: &Scenario, data: &Path) -> Value {
    let mut conf = (s.conf)(data);
    conf["cniVersion"] = "1.0.0".into();
    conf["name"] = format!("bench{}", s.plugin.replace('-', "")).into();
    conf["type"] = s.plugin.into();
    conf
}

fn config(s: &Scenario, data: &Path) -> String {
    config_value(s, data).to_string()
}

fn cni_env(cmd: &str, dir: &Path, id: &str, netns: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CNI_COMMAND", cmd.into()),
        ("CNI_CONTAINERID", id.into()),
        ("CNI_NETNS", netns.into()),
        ("CNI_IFNAME", "eth0".into()),
        ("CNI_PATH", dir.display().to_string()),
    ]
}

fn median(mut xs: Vec<f64>) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Per-set measurements of one scenario.
#[derive(Default)]
struct Stats {
    add_ms: f64,
    del_ms: f64,
    rss_kb: i64,
    v6_ms: Option<f64>,
    failures: usize,
}

/// The IPv6 gateway in an ADD result.
fn v6_gateway(result: &str) -> Option<String> {
    let v: Value = serde_json::from_str(result).ok()?;
    v["ips"]
        .as_array()?
        .iter()
        .find(|ip| ip["address"].as_str().is_some_and(|a| a.contains(':')))?["gateway"]
        .as_str()
        .map(str::to_string)
}

/// How many fresh bridges the IPv6 probe makes, and how long it waits.
const V6_ROUNDS: usize = 5;
const V6_PATIENCE: Duration = Duration::from_secs(5);

/// Median time from ADD's return until the container gets an echo reply
/// from its IPv6 gateway. Each round names a bridge that does not exist yet,
/// so ADD creates it and puts the gateway on it, as for a new network: a
/// bridge reused from an earlier ADD would have finished duplicate address
/// detection long ago and hide the wait. The bridge is deleted after.
/// Rounds that never get a reply count as the patience (and as failures).
fn v6_ready(s: &Scenario, dir: &Path) -> (f64, usize) {
    let data = TempDir::new("benchv6");
    let binary = dir.join(s.plugin);
    let (mut times, mut failures) = (vec![], 0);
    for i in 0..V6_ROUNDS {
        let bridge = format!("cnibr6p{i}");
        let _ = testutil::try_ip(&["link", "del", &bridge]);
        let mut conf = config_value(s, &data.path);
        conf["bridge"] = bridge.clone().into();
        let conf = conf.to_string();
        let ns = Netns::new("benchv6");
        let id = format!("benchv6{i}");
        let add = exec(&binary, &cni_env("ADD", dir, &id, &ns.path()), &conf);
        let added = Instant::now();
        let reply = v6_gateway(&add.stdout)
            .and_then(|gw| testutil::ping_timed(&ns, &gw, Duration::from_millis(10), V6_PATIENCE));
        match reply {
            Some(_) => times.push(ms(added.elapsed())),
            None => {
                failures += 1;
                times.push(ms(V6_PATIENCE));
            }
        }
        let del = exec(&binary, &cni_env("DEL", dir, &id, &ns.path()), &conf);
        failures += usize::from(!add.ok) + usize::from(!del.ok);
        let _ = testutil::try_ip(&["link", "del", &bridge]);
    }
    (median(times), failures)
}

/// Median ADD and DEL times of `runs` containers added and deleted one
/// after the other, each in a new namespace. With `resident`, one more
/// container stays attached to the network meanwhile, as on a node that
/// runs containers: the network then never goes back to empty, so the
/// timed runs do not include one-time set-up of the first attachment (for
/// ipMasq, the kernel enabling connection tracking and NAT in the
/// namespace for the first masquerade rule, ~0.7 ms here, and tearing it
/// down again at DEL).
fn sequential(s: &Scenario, dir: &Path, runs: usize, resident: bool) -> Stats {
    let data = TempDir::new("bench");
    let conf = config(s, &data.path);
    let binary = dir.join(s.plugin);
    let (mut adds, mut dels) = (vec![], vec![]);
    let mut stats = Stats::default();
    let resident_ns = Netns::new("benchres");
    let resident_env = |cmd| cni_env(cmd, dir, "benchresident", &resident_ns.path());
    if resident && s.plugin != "loopback" {
        stats.failures += usize::from(!exec(&binary, &resident_env("ADD"), &conf).ok);
    }
    for i in 0..runs {
        let ns = Netns::new("bench");
        let id = format!("bench{i}");
        let add = exec(&binary, &cni_env("ADD", dir, &id, &ns.path()), &conf);
        let del = exec(&binary, &cni_env("DEL", dir, &id, &ns.path()), &conf);
        stats.failures += usize::from(!add.ok) + usize::from(!del.ok);
        stats.rss_kb = stats.rss_kb.max(add.max_rss_kb);
        adds.push(ms(add.wall));
        dels.push(ms(del.wall));
    }
    if resident && s.plugin != "loopback" {
        stats.failures += usize::from(!exec(&binary, &resident_env("DEL"), &conf).ok);
    }
    stats.add_ms = median(adds);
    stats.del_ms = median(dels);
    if s.v6_probe {
        let (v6, failures) = v6_ready(s, dir);
        stats.v6_ms = Some(v6);
        stats.failures += failures;
    }
    stats
}

/// Wall time of `n` ADDs started at once, then of their `n` DELs.
fn parallel(dir: &Path, n: usize) -> (f64, f64, usize) {
    let data = TempDir::new("benchpar");
    let all = scenarios();
    let Some(s) = all.iter().find(|s| s.name == "bridge+host-local") else {
        return (f64::NAN, f64::NAN, 1);
    };
    let conf = config(s, &data.path);
    let binary = dir.join(s.plugin);
    let namespaces: Vec<Netns> = (0..n).map(|_| Netns::new("benchp")).collect();
    let wave = |cmd: &str| {
        let start = Instant::now();
        let failures = std::thread::scope(|scope| {
            let handles: Vec<_> = namespaces
                .iter()
                .enumerate()
                .map(|(i, ns)| {
                    let (binary, conf) = (&binary, &conf);
                    scope.spawn(move || {
                        exec(
                            binary,
                            &cni_env(cmd, dir, &format!("par{i}"), &ns.path()),
                            conf,
                        )
                        .ok
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join())
                .filter(|ok| !matches!(ok, Ok(true)))
                .count()
        });
        (ms(start.elapsed()), failures)
    };
    let (add, f1) = wave("ADD");
    let (del, f2) = wave("DEL");
    (add, del, f1 + f2)
}

fn size_kb(p: &Path) -> Option<u64> {
    std::fs::metadata(p).ok().map(|m| m.len() / 1024)
}

fn ratio(reference: f64, ours: f64) -> String {
    if ours > 0.0 && reference.is_finite() && ours.is_finite() {
        format!("{:.1}x", reference / ours)
    } else {
        "-".into()
    }
}

fn main() {
    let opts = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(2);
        }
    };
    if !testutil::can_netns() {
        eprintln!("bench: needs root to create network namespaces");
        std::process::exit(2);
    }
    // A private host namespace: everything the plugins do on "the host" lands here.
    let host = Netns::new("benchhost");
    if let Err(e) = enter(&host.path()) {
        eprintln!("bench: entering {}: {e}", host.path());
        std::process::exit(1);
    }
    let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1");
    let sets = [("ours", &opts.ours), ("reference", &opts.reference)];
    println!(
        "{:<30} {:>9} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9}",
        "scenario (median ms)",
        "ours ADD",
        "ref ADD",
        "ratio",
        "ours DEL",
        "ref DEL",
        "ours RSS",
        "ref RSS"
    );
    for s in scenarios() {
        if opts.only.as_deref().is_some_and(|o| !s.name.contains(o)) {
            continue;
        }
        if sets.iter().any(|(_, d)| !d.join(s.plugin).exists()) {
            println!("{:<30} skipped: {} missing in one set", s.name, s.plugin);
            continue;
        }
        let [ours, reference] = sets.map(|(_, d)| sequential(&s, d, opts.runs, opts.resident));
        println!(
            "{:<30} {:>9.2} {:>9.2} {:>7} {:>9.2} {:>9.2} {:>7}KB {:>7}KB{}",
            s.name,
            ours.add_ms,
            reference.add_ms,
            ratio(reference.add_ms, ours.add_ms),
            ours.del_ms,
            reference.del_ms,
            ours.rss_kb,
            reference.rss_kb,
            match ours.failures + reference.failures {
                0 => String::new(),
                n => format!("  ({n} failed runs!)"),
            }
        );
        if let (Some(o), Some(r)) = (ours.v6_ms, reference.v6_ms) {
            println!(
                "{:<30} {:>9.1} {:>9.1} {:>7}",
                "  IPv6 gw reachable (new br)",
                o,
                r,
                ratio(r, o)
            );
        }
    }
    let wanted = opts.only.as_deref().is_none_or(|o| "parallel".contains(o));
    if wanted && sets.iter().all(|(_, d)| d.join("bridge").exists()) {
        let [ours, reference] = sets.map(|(_, d)| parallel(d, opts.parallel));
        println!(
            "{:<30} {:>9.1} {:>9.1} {:>7} {:>9.1} {:>9.1}{}",
            format!("{} parallel (wall ms)", opts.parallel),
            ours.0,
            reference.0,
            ratio(reference.0, ours.0),
            ours.1,
            reference.1,
            match ours.2 + reference.2 {
                0 => String::new(),
                n => format!("  ({n} failed runs!)"),
            }
        );
    }
    println!("\nbinary sizes (KB):");
    for name in ["loopback", "host-local", "static", "bridge", "ptp"] {
        let [o, r] = sets.map(|(_, d)| size_kb(&d.join(name)));
        if let (Some(o), Some(r)) = (o, r) {
            println!(
                "  {name:<12} ours {o:>6}  reference {r:>6}  ({})",
                ratio(r as f64, o as f64)
            );
        }
    }
}

fn enter(path: &str) -> std::io::Result<()> {
    let file = std::fs::File::open(path)?;
    use std::os::fd::AsRawFd;
    // SAFETY: setns on a namespace fd we hold open; this process is single-threaded here.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
