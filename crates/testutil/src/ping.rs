//! ICMP echo from inside a namespace, without a `ping` binary: a raw
//! socket on a thread that enters the namespace and then ends.

use crate::Netns;
use std::fs::File;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// Send echo requests from inside `ns` to `to` (every 200 ms); true when a
/// reply arrives within two seconds.
pub fn ping(ns: &Netns, to: &str) -> bool {
    ping_timed(ns, to, Duration::from_millis(200), Duration::from_secs(2)).is_some()
}

/// Send an echo request from inside `ns` to `to` every `every` until a reply
/// arrives; how long that took, or `None` after `within`.
pub fn ping_timed(ns: &Netns, to: &str, every: Duration, within: Duration) -> Option<Duration> {
    let path = ns.path();
    let to: IpAddr = to
        .parse()
        .unwrap_or_else(|e| panic!("ping: {to:?} is not an IP address: {e}"));
    std::thread::spawn(move || echo_from(&path, to, every, within))
        .join()
        .unwrap_or(None)
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Runs on its own thread: the namespace switch dies with the thread.
fn echo_from(netns: &str, to: IpAddr, every: Duration, within: Duration) -> Option<Duration> {
    let ns = File::open(netns).unwrap_or_else(|e| panic!("open {netns}: {e}"));
    // SAFETY: plain system calls on valid descriptors and buffers.
    unsafe {
        assert_eq!(libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET), 0, "setns");
    }
    let (domain, proto, request, reply) = match to {
        IpAddr::V4(_) => (libc::AF_INET, libc::IPPROTO_ICMP, 8u8, 0u8),
        IpAddr::V6(_) => (libc::AF_INET6, libc::IPPROTO_ICMPV6, 128, 129),
    };
    let raw = unsafe { libc::socket(domain, libc::SOCK_RAW, proto) };
    assert!(raw >= 0, "raw socket: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh descriptor we own from here on.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    let fd = sock.as_raw_fd();
    let timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: every.min(Duration::from_millis(50)).as_micros().max(1) as libc::suseconds_t,
    };
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&timeout as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        );
    }
    let id = (std::process::id() as u16) ^ 0x5a5a;
    let mut packet = vec![request, 0, 0, 0, (id >> 8) as u8, id as u8, 0, 1];
    packet.extend_from_slice(b"cni-plugins-rs!!");
    if to.is_ipv4() {
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    } // the kernel fills in ICMPv6 checksums
    let (addr, len) = sockaddr(to);
    let start = Instant::now();
    while start.elapsed() < within {
        unsafe {
            libc::sendto(
                fd,
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&addr as *const libc::sockaddr_storage).cast(),
                len,
            );
        }
        let resend = Instant::now() + every;
        while Instant::now() < resend {
            let mut buf = [0u8; 1500];
            let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            let Some(data) = usize::try_from(n).ok().and_then(|n| buf.get(..n)) else {
                continue;
            };
            // IPv4 raw sockets deliver the IP header too.
            let icmp = match to {
                IpAddr::V4(_) => data.get(usize::from(data[0] & 0x0f) * 4..),
                IpAddr::V6(_) => Some(data),
            };
            if let Some(icmp) = icmp {
                if icmp.len() >= 8 && icmp[0] == reply && icmp[4..6] == id.to_be_bytes() {
                    return Some(start.elapsed());
                }
            }
        }
    }
    None
}

fn sockaddr(to: IpAddr) -> (libc::sockaddr_storage, u32) {
    // SAFETY: all-zero is a valid sockaddr_storage; the writes below fit in it.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match to {
        IpAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as u16,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.octets()),
                },
                sin_zero: [0; 8],
            };
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        IpAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as u16,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.octets(),
                },
                sin6_scope_id: 0,
            };
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_an_echo_request() {
        // type 8, code 0, id 1, seq 1: sum 0x0802, complement 0xf7fd.
        assert_eq!(checksum(&[8, 0, 0, 0, 0, 1, 0, 1]), 0xf7fd);
        assert_eq!(checksum(&[0xff]), !0xff00u16);
    }
}
