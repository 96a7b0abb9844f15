//! Addresses as numbers, and the address forms runtimes and users write.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The address as an unsigned number (IPv4 in the low 32 bits).
pub fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address numbered `n` in the family of `like`; IPv4 keeps the low 32 bits.
pub fn from_u128(n: u128, like: IpAddr) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(n as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) become plain IPv4, as the
/// reference canonicalizes them, so one address has one file name.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// Parse `10.1.2.3` or `10.1.2.3/24` (the prefix is returned when given).
pub fn parse_ip_or_cidr(s: &str) -> Option<(IpAddr, Option<u8>)> {
    let s = s.trim();
    if s.contains('/') {
        let net: IpNet = s.parse().ok()?;
        Some((canonical(net.addr()), Some(net.prefix_len())))
    } else {
        s.parse().ok().map(|ip| (canonical(ip), None))
    }
}

/// Parse a CIDR that keeps its host bits (`10.1.2.3/24`).
pub fn parse_cidr(s: &str) -> Option<IpNet> {
    s.trim().parse().ok()
}

/// Parse a plain address.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    s.trim().parse().ok().map(canonical)
}

pub fn same_family(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip() {
        for s in [
            "0.0.0.0",
            "10.1.2.3",
            "255.255.255.255",
            "::",
            "fd00::1",
            "ffff::",
        ] {
            let ip: IpAddr = s.parse().unwrap();
            assert_eq!(from_u128(to_u128(ip), ip), ip);
        }
        assert_eq!(to_u128("0.0.1.2".parse().unwrap()), 258);
    }

    #[test]
    fn forms() {
        assert_eq!(
            parse_ip_or_cidr("10.0.0.2/24"),
            Some(("10.0.0.2".parse().unwrap(), Some(24)))
        );
        assert_eq!(
            parse_ip_or_cidr(" fd00::2 "),
            Some(("fd00::2".parse().unwrap(), None))
        );
        assert_eq!(
            parse_ip_or_cidr("::ffff:10.0.0.9"),
            Some(("10.0.0.9".parse().unwrap(), None))
        );
        for bad in ["", "10.0.0", "10.0.0.2/33", "x/24", "10.0.0.256"] {
            assert_eq!(parse_ip_or_cidr(bad), None, "{bad}");
        }
        assert_eq!(
            parse_cidr("10.0.0.5/24").unwrap().addr().to_string(),
            "10.0.0.5"
        );
    }

    #[test]
    fn names_match_the_reference_spelling() {
        // Lease files are named as Go's net.IP.String() prints addresses.
        for (input, name) in [
            ("fd00:0:0:0:0:0:0:1", "fd00::1"),
            ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
            ("2001:0db8::0", "2001:db8::"),
            ("FD00::A", "fd00::a"),
            ("fd00:0:0:1::5", "fd00:0:0:1::5"),
        ] {
            assert_eq!(parse_ip(input).unwrap().to_string(), name);
        }
    }
}
