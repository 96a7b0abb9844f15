//! Rough timing of one masquerade ADD and DEL, native vs `nft -f` vs the
//! iptables backend, in a throw-away namespace (needs root):
//!
//!     cargo run --release -p firewall --example masq_timing [existing-containers]
//!
//! Not a test: numbers depend on the machine and its load.

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
    let (add, del) = time_backend(native.as_ref(), &addrs);
    println!(
        "native nf_tables  ADD {:>8.3} ms   DEL {:>8.3} ms",
        ms(add),
        ms(del)
    );

    let ipt = firewall::masquerade(Some("iptables")).unwrap();
    let (add, del) = time_backend(ipt.as_ref(), &addrs);
    println!(
        "iptables backend  ADD {:>8.3} ms   DEL {:>8.3} ms",
        ms(add),
        ms(del)
    );

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
    let mut times = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        nft_f(&script);
        times.push(t.elapsed());
        native.del(&who("c")).unwrap();
    }
    println!("nft -f (no DEL)   ADD {:>8.3} ms", ms(median(times)));
}

fn who(id: &str) -> Instance<'_> {
    Instance {
        network: "timing",
        container_id: id,
        ifname: "eth0",
    }
}

fn time_backend(m: &dyn Masquerade, addrs: &[ipnet::IpNet]) -> (Duration, Duration) {
    let (mut adds, mut dels) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let t = Instant::now();
        m.add(&who("c"), addrs).unwrap();
        adds.push(t.elapsed());
        let t = Instant::now();
        m.del(&who("c")).unwrap();
        dels.push(t.elapsed());
    }
    (median(adds), median(dels))
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
