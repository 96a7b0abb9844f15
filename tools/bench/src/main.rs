//! `bench --ours DIR --reference DIR [--runs N] [--parallel N] [--only NAME|parallel] [--no-resident]`
//!
//! Runs each scenario with our plugins and the reference plugins on the same
//! machine, and prints medians and ratios. Every ADD and DEL is a fresh
//! process, as a runtime would run it; we time from spawn to exit. Both
//! sets run copies of their binaries, installed into the bench's own
//! directory first (see `Set::new`).
//!
//! Each set of plugins (ours, reference) gets its own private "host"
//! namespace made for the run, so bridges, veths and firewall rules never
//! touch the real host, and the two sets never share a bridge, a data
//! directory, firewall rules or container IDs. The two sets take turns run
//! by run (which goes first alternates), so that drift in the machine's
//! speed over minutes hits both alike instead of skewing the ratio. While a
//! scenario's containers come and go, one more container stays attached to
//! each set's network (see `sequential`; `--no-resident` leaves it out).
//!
//! Everything the bench makes is named `cnibench-<pid>-…` (namespaces) or
//! lives under `$TMPDIR/cnibench-<pid>` (data directories). It is removed at
//! the end, also after SIGINT, SIGTERM or SIGHUP, and a later bench removes
//! what a bench that was killed outright (SIGKILL) left behind.

use serde_json::{json, Value};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Print a line to stdout, ignoring write errors: a closed pipe (`bench |
/// head`) must not kill the bench before it has cleaned up.
macro_rules! say {
    ($($arg:tt)*) => {{
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, $($arg)*);
        let _ = out.flush();
    }};
}

/// Like `say!`, to stderr.
macro_rules! complain {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

/// The SIGINT, SIGTERM or SIGHUP that arrived, if any: the bench lets the
/// plugin process under way finish, then stops and cleans up.
static STOP: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    STOP.store(sig, Ordering::SeqCst);
}

fn stopping() -> bool {
    STOP.load(Ordering::SeqCst) != 0
}

fn catch_signals() -> std::io::Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe; SA_RESTART lets the waits for our children go on.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(sig, &action, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// Prefix of every namespace and directory this bench makes.
const PREFIX: &str = "cnibench-";

/// `cnibench-<pid>-…`: the pid of the bench that made it.
fn owner_pid(name: &str) -> Option<u32> {
    name.strip_prefix(PREFIX)?.split('-').next()?.parse().ok()
}

/// `<prefix><pid>-<tag><n>`, unique within this process.
fn names(prefix: &str, tag: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}-{tag}{n}", std::process::id())
}

/// Whether process `pid` exists and has not exited: a bench killed a moment
/// ago may still be a zombie that its parent has not reaped yet.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // "pid (comm) state …"; comm may contain spaces and parentheses.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        !matches!(state, Some('Z' | 'X') | None)
    })
}

/// Remove the namespaces and data directories of benches that no longer
/// run (killed before they could clean up).
fn remove_stale() {
    let dead = |name: &str| owner_pid(name).is_some_and(|pid| !alive(pid));
    if let Ok(entries) = std::fs::read_dir("/run/netns") {
        for name in entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
        {
            if dead(&name) {
                complain!("bench: removing namespace {name} left by an earlier bench");
                let _ = testutil::try_ip(&["netns", "del", &name]);
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for e in entries.flatten() {
            if e.file_name().to_str().is_some_and(dead) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// A named network namespace `cnibench-<pid>-<tag><n>`, deleted on drop.
struct Ns {
    name: String,
    /// Held open to enter it with setns.
    file: File,
}

impl Ns {
    fn new(tag: &str) -> Result<Ns, String> {
        let name = names(PREFIX, tag);
        testutil::try_ip(&["netns", "add", &name])?;
        let file = match File::open(format!("/run/netns/{name}")) {
            Ok(f) => f,
            Err(e) => {
                let _ = testutil::try_ip(&["netns", "del", &name]);
                return Err(format!("open namespace {name}: {e}"));
            }
        };
        Ok(Ns { name, file })
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// Move the calling thread into this namespace; the processes and
    /// threads it starts from then on start there too.
    fn enter(&self) -> Result<(), String> {
        enter(&self.file).map_err(|e| format!("entering {}: {e}", self.name))
    }

    /// The same namespace as a `testutil::Netns`, for `testutil::ping_timed`;
    /// it must not delete the namespace when dropped, we do.
    fn as_testutil(&self) -> std::mem::ManuallyDrop<testutil::Netns> {
        std::mem::ManuallyDrop::new(testutil::Netns {
            name: self.name.clone(),
        })
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = testutil::try_ip(&["netns", "del", &self.name]);
    }
}

fn enter(ns: &File) -> std::io::Result<()> {
    // SAFETY: setns on a namespace fd we hold open. A network namespace is
    // per thread; the bench runs its plugins from this one thread.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A directory under `$TMPDIR/cnibench-<pid>`, removed on drop.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new(tag: &str) -> Result<TempDir, String> {
        let root = std::env::temp_dir().join(format!("{PREFIX}{}", std::process::id()));
        let path = root.join(names("", tag));
        std::fs::create_dir_all(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
        Ok(TempDir { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

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
    /// Containers that stay attached to the network during the timed runs
    /// (none with `--no-resident`).
    residents: usize,
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
            residents: 1,
        },
        Scenario {
            name: "bridge+host-local",
            plugin: "bridge",
            conf: |d| {
                json!({"bridge": "cnibr0", "isGateway": true,
                       "ipam": host_local(d, json!([[{"subnet": "10.99.0.0/16"}]]))})
            },
            v6_probe: false,
            residents: 1,
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
            residents: 1,
        },
        Scenario {
            name: "bridge+host-local ipMasq",
            plugin: "bridge",
            conf: |d| {
                json!({"bridge": "cnibr1", "isGateway": true, "ipMasq": true,
                       "ipam": host_local(d, json!([[{"subnet": "10.98.0.0/16"}]]))})
            },
            v6_probe: false,
            residents: 1,
        },
        Scenario {
            // A fuller node: 100 containers on the network already.
            name: "  the same, 100 attached",
            plugin: "bridge",
            conf: |d| {
                json!({"bridge": "cnibr4", "isGateway": true, "ipMasq": true,
                       "ipam": host_local(d, json!([[{"subnet": "10.94.0.0/16"}]]))})
            },
            v6_probe: false,
            residents: 100,
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
            residents: 1,
        },
        Scenario {
            name: "ptp+host-local",
            plugin: "ptp",
            conf: |d| json!({"ipam": host_local(d, json!([[{"subnet": "10.96.0.0/16"}]]))}),
            v6_probe: false,
            residents: 1,
        },
    ]
}

/// The scenario the parallel waves and the floor compare against.
fn bridge_host_local() -> Option<Scenario> {
    scenarios()
        .into_iter()
        .find(|s| s.name == "bridge+host-local")
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

/// The binaries a set runs, as far as the given directory has them.
const BINARIES: [&str; 6] = ["loopback", "bridge", "ptp", "host-local", "static", "floor"];

/// One set of plugin binaries and the private host namespace it runs in.
struct Set {
    /// One letter in the container IDs, so the sets never share one.
    tag: &'static str,
    /// The set's binaries, installed (copied) into a directory of ours.
    dir: PathBuf,
    _installed: TempDir,
    host: Ns,
}

impl Set {
    /// Both sets run copies of their binaries, made the way a package
    /// installs them. A binary as the linker just wrote it is slower to
    /// start: run from `target/` our bridge ADD took 73 page faults and
    /// 2.75 ms of CPU, a copy of the same file 64 and 2.32 ms (the page
    /// cache holds the linker's output in smaller pieces).
    fn new(tag: &'static str, dir: &Path) -> Result<Set, String> {
        let installed = TempDir::new(&format!("bin{tag}"))?;
        for name in BINARIES {
            let from = dir.join(name);
            if from.exists() {
                std::fs::copy(&from, installed.path.join(name))
                    .map_err(|e| format!("installing {}: {e}", from.display()))?;
            }
        }
        let set = Set {
            tag,
            dir: installed.path.clone(),
            _installed: installed,
            host: Ns::new(&format!("host{tag}"))?,
        };
        set.host.enter()?;
        // Written from inside the namespace, so it is this namespace's setting.
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
            .map_err(|e| format!("enabling ip_forward in {}: {e}", set.host.name))?;
        Ok(set)
    }

    fn binary(&self, s: &Scenario) -> PathBuf {
        self.dir.join(s.plugin)
    }
}

/// The order in which the two sets take turn `i`: each goes first every
/// other time.
fn turns(i: usize) -> [usize; 2] {
    if i.is_multiple_of(2) {
        [0, 1]
    } else {
        [1, 0]
    }
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
        .filter(|gw| gw.parse::<std::net::IpAddr>().is_ok())
        .map(str::to_string)
}

/// How many fresh bridges the IPv6 probe makes per set, and how long it waits.
const V6_ROUNDS: usize = 5;
const V6_PATIENCE: Duration = Duration::from_secs(5);

/// For each set, the median time from ADD's return until the container gets
/// an echo reply from its IPv6 gateway, and the failures. Each round names a
/// bridge that does not exist yet, so ADD creates it and puts the gateway on
/// it, as for a new network: a bridge reused from an earlier ADD would have
/// finished duplicate address detection long ago and hide the wait. The
/// bridge is deleted after. Rounds that never get a reply count as the
/// patience (and as failures). The sets take turns round by round.
fn v6_ready(s: &Scenario, sets: &[Set; 2]) -> Result<[(f64, usize); 2], String> {
    let data = [TempDir::new("v6")?, TempDir::new("v6")?];
    let mut times = [vec![], vec![]];
    let mut failures = [0, 0];
    for i in 0..V6_ROUNDS {
        if stopping() {
            break;
        }
        for k in turns(i) {
            let set = &sets[k];
            set.host.enter()?;
            let bridge = format!("cnibr6p{i}");
            let _ = testutil::try_ip(&["link", "del", &bridge]);
            let mut conf = config_value(s, &data[k].path);
            conf["bridge"] = bridge.clone().into();
            let conf = conf.to_string();
            let ns = Ns::new("v6")?;
            let id = format!("benchv6{}{i}", set.tag);
            let binary = set.binary(s);
            let add = exec(&binary, &cni_env("ADD", &set.dir, &id, &ns.path()), &conf);
            let added = Instant::now();
            let reply = v6_gateway(&add.stdout).and_then(|gw| {
                testutil::ping_timed(
                    &ns.as_testutil(),
                    &gw,
                    Duration::from_millis(10),
                    V6_PATIENCE,
                )
            });
            match reply {
                Some(_) => times[k].push(ms(added.elapsed())),
                None => {
                    failures[k] += 1;
                    times[k].push(ms(V6_PATIENCE));
                }
            }
            let del = exec(&binary, &cni_env("DEL", &set.dir, &id, &ns.path()), &conf);
            failures[k] += usize::from(!add.ok) + usize::from(!del.ok);
            let _ = testutil::try_ip(&["link", "del", &bridge]);
        }
    }
    let [t0, t1] = times;
    Ok([(median(t0), failures[0]), (median(t1), failures[1])])
}

/// ADD then DEL of container `id` with `binary`, in a container namespace
/// made for it and the set's host namespace.
fn add_del(set: &Set, binary: &Path, id: &str, conf: &str) -> Result<(Run, Run), String> {
    let container = Ns::new("c")?;
    set.host.enter()?;
    let ns = container.path();
    let add = exec(binary, &cni_env("ADD", &set.dir, id, &ns), conf);
    let del = exec(binary, &cni_env("DEL", &set.dir, id, &ns), conf);
    Ok((add, del))
}

/// Median ADD and DEL times of `runs` containers added and deleted one
/// after the other, each in a new namespace, for each set. Run `i` adds and
/// deletes one container with each set, in its own host namespace, the
/// sets taking turns at going first. With `resident`, one more container
/// stays attached to each set's network meanwhile, as on a node that runs
/// containers: the network then never goes back to empty, so the timed runs
/// do not include one-time set-up of the first attachment (for ipMasq, the
/// kernel enabling connection tracking and NAT in the namespace for the
/// first masquerade rule, ~0.7 ms here, and tearing it down again at DEL).
fn sequential(
    s: &Scenario,
    sets: &[Set; 2],
    runs: usize,
    resident: bool,
) -> Result<[Stats; 2], String> {
    let data = [TempDir::new("data")?, TempDir::new("data")?];
    let confs = [config(s, &data[0].path), config(s, &data[1].path)];
    let residents = match resident && s.plugin != "loopback" {
        true => s.residents,
        false => 0,
    };
    let resident_ns: Vec<[Ns; 2]> = (0..residents)
        .map(|_| Ok([Ns::new("res")?, Ns::new("res")?]))
        .collect::<Result<_, String>>()?;
    let mut stats: [Stats; 2] = Default::default();
    let (mut adds, mut dels) = ([vec![], vec![]], [vec![], vec![]]);
    // The resident containers' ADDs (then DELs) in each set's host namespace.
    let resident_call = |cmd: &str, stats: &mut [Stats; 2]| -> Result<(), String> {
        for (r, pair) in resident_ns.iter().enumerate() {
            for (k, set) in sets.iter().enumerate() {
                set.host.enter()?;
                let id = format!("benchres{}{r}", set.tag);
                let env = cni_env(cmd, &set.dir, &id, &pair[k].path());
                stats[k].failures += usize::from(!exec(&set.binary(s), &env, &confs[k]).ok);
            }
        }
        Ok(())
    };
    resident_call("ADD", &mut stats)?;
    for i in 0..runs {
        if stopping() {
            break;
        }
        for k in turns(i) {
            let set = &sets[k];
            // add_del makes the container namespace right before the set's
            // turn and deletes it right after, so that each set's ADD meets
            // one of the same age (made in advance for both, the first set's
            // was always the older one).
            let id = format!("bench{}{i}", set.tag);
            let (add, del) = add_del(set, &set.binary(s), &id, &confs[k])?;
            stats[k].failures += usize::from(!add.ok) + usize::from(!del.ok);
            stats[k].rss_kb = stats[k].rss_kb.max(add.max_rss_kb);
            adds[k].push(ms(add.wall));
            dels[k].push(ms(del.wall));
        }
    }
    resident_call("DEL", &mut stats)?;
    for (k, (a, d)) in adds.into_iter().zip(dels).enumerate() {
        stats[k].add_ms = median(a);
        stats[k].del_ms = median(d);
    }
    if s.v6_probe && !stopping() {
        for (st, (v6, failures)) in stats.iter_mut().zip(v6_ready(s, sets)?) {
            st.v6_ms = Some(v6);
            st.failures += failures;
        }
    }
    Ok(stats)
}

/// Median ADD times of the `floor` binary (see src/bin/floor.rs: the
/// kernel work of a bridge ADD in one process, nothing else) and of
/// scenario `s` with the same set, alternating run by run in the set's host
/// namespace.
fn floor_and(s: &Scenario, set: &Set, runs: usize) -> Result<(f64, f64, usize), String> {
    let data = TempDir::new("data")?;
    let conf = config(s, &data.path);
    let floor = set.dir.join("floor");
    let (mut floors, mut plugins, mut failures) = (vec![], vec![], 0);
    for i in 0..runs {
        if stopping() {
            break;
        }
        for (binary, times) in [(&floor, &mut floors), (&set.binary(s), &mut plugins)] {
            let (add, del) = add_del(set, binary, &format!("floor{}{i}", set.tag), &conf)?;
            failures += usize::from(!add.ok) + usize::from(!del.ok);
            times.push(ms(add.wall));
        }
    }
    Ok((median(floors), median(plugins), failures))
}

/// How many times each side runs its parallel waves.
const PARALLEL_REPEATS: usize = 3;

/// One side of a parallel comparison: a binary run in a set's host
/// namespace with a network configuration.
struct Waves<'a> {
    set: &'a Set,
    binary: PathBuf,
    conf: String,
}

/// For each side, the median wall time of `n` ADDs started at once, then of
/// their `n` DELs, over `PARALLEL_REPEATS` pairs of waves (the sides taking
/// turns, each with its own container namespaces), and the failures.
fn parallel_waves(sides: [Waves; 2], n: usize) -> Result<[(f64, f64, usize); 2], String> {
    let mut namespaces = [vec![], vec![]];
    for list in &mut namespaces {
        for _ in 0..n {
            list.push(Ns::new("p")?);
        }
    }
    // Runs on this thread after it entered the set's host namespace: the
    // threads it starts, and their plugins, start there too.
    let wave = |k: usize, cmd: &str| {
        let Waves { set, binary, conf } = &sides[k];
        let start = Instant::now();
        let failures = std::thread::scope(|scope| {
            let handles: Vec<_> = namespaces[k]
                .iter()
                .enumerate()
                .map(|(i, ns)| {
                    let id = format!("par{}{i}", set.tag);
                    scope.spawn(move || {
                        exec(binary, &cni_env(cmd, &set.dir, &id, &ns.path()), conf).ok
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
    let (mut adds, mut dels) = ([vec![], vec![]], [vec![], vec![]]);
    let mut failures = [0, 0];
    for r in 0..PARALLEL_REPEATS {
        if stopping() {
            break;
        }
        for k in turns(r) {
            sides[k].set.host.enter()?;
            let (add, f1) = wave(k, "ADD");
            let (del, f2) = wave(k, "DEL");
            adds[k].push(add);
            dels[k].push(del);
            failures[k] += f1 + f2;
        }
    }
    let [a0, a1] = adds;
    let [d0, d1] = dels;
    Ok([
        (median(a0), median(d0), failures[0]),
        (median(a1), median(d1), failures[1]),
    ])
}

/// `n` parallel bridge+host-local ADDs and DELs, ours against the
/// reference (see [`parallel_waves`]).
fn parallel(sets: &[Set; 2], n: usize) -> Result<[(f64, f64, usize); 2], String> {
    let Some(s) = bridge_host_local() else {
        return Ok([(f64::NAN, f64::NAN, 1), (f64::NAN, f64::NAN, 1)]);
    };
    let data = [TempDir::new("par")?, TempDir::new("par")?];
    let [ours, reference] = [0, 1].map(|k| Waves {
        set: &sets[k],
        binary: sets[k].binary(&s),
        conf: config(&s, &data[k].path),
    });
    parallel_waves([ours, reference], n)
}

/// `n` parallel ADDs and DELs of the `floor` binary against our
/// bridge+host-local, both with our set: how close the plugin comes to the
/// kernel's own cost when everything runs at once.
fn floor_parallel(s: &Scenario, set: &Set, n: usize) -> Result<[(f64, f64, usize); 2], String> {
    let data = TempDir::new("parfloor")?;
    let conf = config(s, &data.path);
    let floor = Waves {
        set,
        binary: set.dir.join("floor"),
        conf: conf.clone(),
    };
    let plugin = Waves {
        set,
        binary: set.binary(s),
        conf,
    };
    parallel_waves([floor, plugin], n)
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

fn failed(n: usize) -> String {
    match n {
        0 => String::new(),
        n => format!("  ({n} failed runs!)"),
    }
}

/// Everything the bench measures and prints, with both sets set up.
fn measure(opts: &Opts, sets: &[Set; 2]) -> Result<(), String> {
    say!(
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
        if sets.iter().any(|set| !set.binary(&s).exists()) {
            say!("{:<30} skipped: {} missing in one set", s.name, s.plugin);
            continue;
        }
        let [ours, reference] = sequential(&s, sets, opts.runs, opts.resident)?;
        if stopping() {
            return Ok(());
        }
        say!(
            "{:<30} {:>9.2} {:>9.2} {:>7} {:>9.2} {:>9.2} {:>7}KB {:>7}KB{}",
            s.name,
            ours.add_ms,
            reference.add_ms,
            ratio(reference.add_ms, ours.add_ms),
            ours.del_ms,
            reference.del_ms,
            ours.rss_kb,
            reference.rss_kb,
            failed(ours.failures + reference.failures)
        );
        if let (Some(o), Some(r)) = (ours.v6_ms, reference.v6_ms) {
            say!(
                "{:<30} {:>9.1} {:>9.1} {:>7}",
                "  IPv6 gw reachable (new br)",
                o,
                r,
                ratio(r, o)
            );
        }
    }
    let wanted = opts.only.as_deref().is_none_or(|o| "parallel".contains(o));
    if wanted && sets.iter().all(|set| set.dir.join("bridge").exists()) {
        let [ours, reference] = parallel(sets, opts.parallel)?;
        if stopping() {
            return Ok(());
        }
        say!(
            "{:<30} {:>9.1} {:>9.1} {:>7} {:>9.1} {:>9.1}{}",
            format!("{} parallel (wall ms)", opts.parallel),
            ours.0,
            reference.0,
            ratio(reference.0, ours.0),
            ours.1,
            reference.1,
            failed(ours.2 + reference.2)
        );
    }
    let floor_wanted = opts.only.as_deref().is_none_or(|o| "floor".contains(o));
    if let (true, Some(s)) = (floor_wanted, bridge_host_local().as_ref()) {
        if sets[0].dir.join("floor").exists() && sets[0].binary(s).exists() {
            let (floor, plugin, failures) = floor_and(s, &sets[0], opts.runs)?;
            if stopping() {
                return Ok(());
            }
            say!(
                "{:<30} {:>9.2}   (ours' bridge+host-local in the same runs: {:.2}){}",
                "raw-netlink floor, 1 process",
                floor,
                plugin,
                failed(failures)
            );
            let [floor, plugin] = floor_parallel(s, &sets[0], opts.parallel)?;
            if stopping() {
                return Ok(());
            }
            say!(
                "{:<30} {:>9.1}   (ours' bridge+host-local in the same runs: {:.1}){}",
                format!("  the same, {} parallel", opts.parallel),
                floor.0,
                plugin.0,
                failed(floor.2 + plugin.2)
            );
        }
    }
    say!("\nbinary sizes (KB):");
    for name in ["loopback", "host-local", "static", "bridge", "ptp"] {
        let [o, r] = [&sets[0], &sets[1]].map(|set| size_kb(&set.dir.join(name)));
        if let (Some(o), Some(r)) = (o, r) {
            say!(
                "  {name:<12} ours {o:>6}  reference {r:>6}  ({})",
                ratio(r as f64, o as f64)
            );
        }
    }
    Ok(())
}

fn run() -> i32 {
    let opts = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            complain!("bench: {e}");
            return 2;
        }
    };
    if !testutil::can_netns() {
        complain!("bench: needs root to create network namespaces");
        return 2;
    }
    if let Err(e) = catch_signals() {
        complain!("bench: catching signals: {e}");
        return 1;
    }
    remove_stale();
    let home = match File::open("/proc/thread-self/ns/net") {
        Ok(f) => f,
        Err(e) => {
            complain!("bench: opening our own network namespace: {e}");
            return 1;
        }
    };
    let result = Set::new("o", &opts.ours).and_then(|ours| {
        let reference = Set::new("r", &opts.reference)?;
        let sets = [ours, reference];
        let result = measure(&opts, &sets);
        // Leave the host namespaces before they are deleted (on drop).
        let _ = enter(&home);
        result
    });
    let _ = enter(&home);
    let _ = std::fs::remove_dir_all(
        std::env::temp_dir().join(format!("{PREFIX}{}", std::process::id())),
    );
    match result {
        Err(e) => {
            complain!("bench: {e}");
            1
        }
        Ok(()) if stopping() => {
            let sig = STOP.load(Ordering::SeqCst);
            complain!("bench: stopped by signal {sig}; cleaned up");
            128 + sig
        }
        Ok(()) => 0,
    }
}

fn main() {
    // Everything the bench made is gone by the time `run` returns.
    std::process::exit(run());
}
