//! Rough timing of one masquerade ADD and DEL, native vs `nft -f` vs the
//! iptables backend, in a throw-away namespace (needs root):
//!
//!     cargo run --release -p firewall --example masq_timing [existing-containers]
//!
//! Not a test: numbers depend on the machine and its load. Besides wall time
//! it shows CPU time (ours: this thread, user + kernel; tools: the children's),
//! which a busy machine disturbs less.

use firewall::names::nft_comment;
use firewall::{Instance, Masquerade};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROUNDS: usize = 200;

fn main() {
    let existing: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    let ns = testutil::Netns::new("fwtime");
    let file = std::fs::File::open(ns.path()).expect("open netns");
    // This process has one thread doing the work; enter the namespace for it.
    assert_eq!(
        unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) },
        0
    );

    let native = firewall::masquerade(Some("nftables")).unwrap();
    for i in 0..existing {
        let id = format!("bg{i}");
        let addr = format!(
            "10.{}.{}.{}/16",
            100 + i / 65000,
            (i / 250) % 250,
            i % 250 + 2
        );
        native.add(&who(&id), &[addr.parse().unwrap()]).unwrap();
    }
    println!("{existing} containers' rules present; {ROUNDS} rounds; median per operation:");

    let addrs = ["10.1.0.5/24".parse().unwrap()];
    let [add, del] = time_backend(native.as_ref(), &addrs);
    println!("native nf_tables  ADD {add}   DEL {del}");

    // As a plugin process does it: open, operate, close. Closing an nfnetlink
    // socket waits for the kernel's deferred release of the last transaction
    // (an RCU grace period), which a process pays at exit.
    let (mut adds, mut dels) = (Times::default(), Times::default());
    for _ in 0..ROUNDS {
        adds.measure(|| {
            let m = firewall::masquerade(Some("nftables")).unwrap();
            m.add(&who("c"), &addrs).unwrap();
        });
        dels.measure(|| {
            let m = firewall::masquerade(Some("nftables")).unwrap();
            m.del(&who("c")).unwrap();
        });
    }
    println!("  + open/close    ADD {adds}   DEL {dels}");

    let ipt = firewall::masquerade(Some("iptables")).unwrap();
    let [add, del] = time_backend(ipt.as_ref(), &addrs);
    println!("iptables backend  ADD {add}   DEL {del}");

    // What the reference's nftables backend does per ADD: one `nft -f`.
    let comment = String::from_utf8(nft_comment("timing", "eth0", "c")).unwrap();
    let script = format!(
        "add table inet cni_plugins_masquerade {{ comment \"Masquerading for plugins from github.com/containernetworking/plugins\" ; }}\n\
         add chain inet cni_plugins_masquerade masq_checks {{ comment \"Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet\" ; }}\n\
         add chain inet cni_plugins_masquerade postrouting {{ type nat hook postrouting priority srcnat ; }}\n\
         flush chain inet cni_plugins_masquerade postrouting\n\
         add rule inet cni_plugins_masquerade postrouting ip daddr == 224.0.0.0/4  return\n\
         add rule inet cni_plugins_masquerade postrouting ip6 daddr == ff00::/8  return\n\
         add rule inet cni_plugins_masquerade postrouting goto masq_checks\n\
         add rule inet cni_plugins_masquerade masq_checks ip saddr == 10.1.0.5 ip daddr != 10.1.0.0/24 masquerade comment \"{comment}\"\n"
    );
    let mut times = Times::default();
    for _ in 0..ROUNDS {
        times.measure(|| nft_f(&script));
        native.del(&who("c")).unwrap();
    }
    println!("nft -f            ADD {times}");
}

/// Wall and CPU time of repeated runs; prints medians.
#[derive(Default)]
struct Times {
    wall: Vec<Duration>,
    cpu: Vec<Duration>,
}

impl Times {
    fn measure(&mut self, f: impl FnOnce()) {
        let (c0, w0) = (cpu(), Instant::now());
        f();
        self.wall.push(w0.elapsed());
        self.cpu.push(cpu().saturating_sub(c0));
    }
}

impl std::fmt::Display for Times {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "wall {:>7.3} ms cpu {:>7.3} ms",
            ms(median(self.wall.clone())),
            ms(median(self.cpu.clone()))
        )
    }
}

/// CPU time of this thread plus all waited-for children.
fn cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    let own = Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    own + tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn who(id: &str) -> Instance<'_> {
    Instance {
        network: "timing",
        container_id: id,
        ifname: "eth0",
    }
}

fn time_backend(m: &dyn Masquerade, addrs: &[ipnet::IpNet]) -> [Times; 2] {
    let (mut adds, mut dels) = (Times::default(), Times::default());
    for _ in 0..ROUNDS {
        adds.measure(|| m.add(&who("c"), addrs).unwrap());
        dels.measure(|| m.del(&who("c")).unwrap());
    }
    [adds, dels]
}

fn nft_f(script: &str) {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("run nft");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
