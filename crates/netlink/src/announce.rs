//! Telling neighbours about a (new) address: a gratuitous ARP for IPv4 and
//! an unsolicited neighbour advertisement for IPv6, so peers that cached an
//! old MAC for a reused address update at once.
//!
//! Sockets belong to the namespace they are created in: call these inside
//! [`crate::Netns::run`] for a container's interface, after it is up.

use crate::error::{Error, Result};
use crate::link::Mac;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IP: u16 = 0x0800;
const ARPHRD_ETHER: u16 = 1;
const ARPOP_REQUEST: u16 = 1;
const ND_NEIGHBOR_ADVERT: u8 = 136;
const ND_OPT_TARGET_LL_ADDR: u8 = 2;
const NA_FLAG_OVERRIDE: u32 = 0x2000_0000;

/// An RFC 5227 ARP announcement: a broadcast request whose sender and
/// target address are both `ip`.
pub fn arp_announcement(ip: Ipv4Addr, mac: Mac) -> [u8; 28] {
    let mut p = [0u8; 28];
    p[0..2].copy_from_slice(&ARPHRD_ETHER.to_be_bytes());
    p[2..4].copy_from_slice(&ETH_P_IP.to_be_bytes());
    p[4] = 6;
    p[5] = 4;
    p[6..8].copy_from_slice(&ARPOP_REQUEST.to_be_bytes());
    p[8..14].copy_from_slice(&mac.0);
    p[14..18].copy_from_slice(&ip.octets());
    // Target hardware address stays zero; the target protocol address is ours.
    p[24..28].copy_from_slice(&ip.octets());
    p
}

/// An unsolicited neighbour advertisement (RFC 4861 7.2.6) for `ip` with
/// the override flag and our link-layer address; the kernel fills the
/// checksum.
pub fn neighbour_advertisement(ip: Ipv6Addr, mac: Mac) -> [u8; 32] {
    let mut p = [0u8; 32];
    p[0] = ND_NEIGHBOR_ADVERT;
    p[4..8].copy_from_slice(&NA_FLAG_OVERRIDE.to_be_bytes());
    p[8..24].copy_from_slice(&ip.octets());
    p[24] = ND_OPT_TARGET_LL_ADDR;
    p[25] = 1; // option length in units of 8 bytes
    p[26..32].copy_from_slice(&mac.0);
    p
}

fn socket(domain: i32, kind: i32, protocol: i32, op: &str) -> Result<OwnedFd> {
    // SAFETY: plain system call; the fd is owned right away.
    let fd: RawFd = unsafe { libc::socket(domain, kind | libc::SOCK_CLOEXEC, protocol) };
    if fd < 0 {
        return Err(Error::os(op, std::io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn check(rc: isize, op: &str) -> Result<()> {
    if rc < 0 {
        Err(Error::os(op, std::io::Error::last_os_error()))
    } else {
        Ok(())
    }
}

/// Broadcast a gratuitous ARP for `ip` out of link `index` (which has `mac`).
pub fn send_gratuitous_arp(index: u32, ip: Ipv4Addr, mac: Mac) -> Result<()> {
    use std::os::fd::AsRawFd;
    let op = format!("sending gratuitous ARP for {ip} on link {index}");
    let fd = socket(libc::AF_PACKET, libc::SOCK_DGRAM, 0, &op)?;
    let packet = arp_announcement(ip, mac);
    // SAFETY: sockaddr_ll is plain data; zero is a valid start.
    let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_protocol = ETH_P_ARP.to_be();
    to.sll_ifindex =
        i32::try_from(index).map_err(|_| Error::invalid(&op, "link index out of range"))?;
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    // SAFETY: buffer and address are valid for the lengths given.
    let rc = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            packet.as_ptr().cast(),
            packet.len(),
            0,
            (&to as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    check(rc, &op)
}

/// Send an unsolicited neighbour advertisement for `ip` to all nodes on
/// link `index` (which has `mac`). `ip` must be usable (not tentative): it
/// is the source address.
pub fn send_unsolicited_na(index: u32, ip: Ipv6Addr, mac: Mac) -> Result<()> {
    use std::os::fd::AsRawFd;
    let op = format!("sending neighbour advertisement for {ip} on link {index}");
    let fd = socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_ICMPV6, &op)?;
    // Receivers drop neighbour discovery that crossed a router: hop limit 255.
    let hops: libc::c_int = 255;
    // SAFETY: option value is a valid c_int.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_MULTICAST_HOPS,
            (&hops as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    check(rc as isize, &op)?;
    // SAFETY: sockaddr_in6 is plain data; zero is a valid start.
    let mut from: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    from.sin6_family = libc::AF_INET6 as u16;
    from.sin6_addr.s6_addr = ip.octets();
    from.sin6_scope_id = index;
    let len = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    // SAFETY: address valid for len.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&from as *const libc::sockaddr_in6).cast(),
            len,
        )
    };
    check(rc as isize, &op)?;
    let mut to = from;
    to.sin6_addr.s6_addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1).octets();
    let packet = neighbour_advertisement(ip, mac);
    // SAFETY: buffer and address are valid for the lengths given.
    let rc = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            packet.as_ptr().cast(),
            packet.len(),
            0,
            (&to as *const libc::sockaddr_in6).cast(),
            len,
        )
    };
    check(rc, &op)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: Mac = Mac([0x0a, 0x58, 0x0a, 0x01, 0x00, 0x05]);

    #[test]
    fn arp_announcement_layout() {
        let p = arp_announcement(Ipv4Addr::new(10, 1, 0, 5), MAC);
        assert_eq!(&p[0..8], &[0, 1, 8, 0, 6, 4, 0, 1]);
        assert_eq!(&p[8..14], &MAC.0);
        assert_eq!(&p[14..18], &[10, 1, 0, 5]);
        assert_eq!(&p[18..24], &[0; 6]);
        assert_eq!(&p[24..28], &[10, 1, 0, 5]);
    }

    #[test]
    fn neighbour_advertisement_layout() {
        let ip: Ipv6Addr = "fd00::5".parse().unwrap();
        let p = neighbour_advertisement(ip, MAC);
        assert_eq!(p[0], 136);
        assert_eq!(&p[2..4], &[0, 0], "checksum left to the kernel");
        assert_eq!(
            &p[4..8],
            &[0x20, 0, 0, 0],
            "override, not solicited, not router"
        );
        assert_eq!(&p[8..24], &ip.octets());
        assert_eq!(&p[24..26], &[2, 1]);
        assert_eq!(&p[26..32], &MAC.0);
    }
}
