//! Ranges and range sets: how they are written, validated and walked.
//!
//! A range is a subnet with an allocatable window `[start, end]` and a
//! gateway that is never handed out. A range set is a list of ranges of one
//! family; host-local allocates one address per range set.

use crate::addr::{from_u128, parse_cidr, parse_ip, same_family, to_u128};
use cni::Error;
use ipnet::IpNet;
use serde::Deserialize;
use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;

/// A range as written in the configuration (`ranges[i][j]` or the legacy
/// top-level keys). Every field is text so errors can quote it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RangeConf {
    pub subnet: Option<String>,
    pub range_start: Option<String>,
    pub range_end: Option<String>,
    pub gateway: Option<String>,
}

/// A validated range; `subnet` is the network address with its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub subnet: IpNet,
    pub start: IpAddr,
    pub end: IpAddr,
    pub gateway: IpAddr,
}

/// Optional address text: absent and empty both mean "use the default",
/// as Go's `net.IP` decoding treats `""`.
fn optional_ip(value: &Option<String>, key: &str) -> Result<Option<IpAddr>, String> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => parse_ip(s)
            .map(Some)
            .ok_or_else(|| format!("{key} {s:?} is not an IP address")),
    }
}

impl RangeConf {
    /// Validate and fill in the defaults: start = network + 1, end = the last
    /// address (IPv4: broadcast − 1), gateway = network + 1.
    pub fn canonicalize(&self) -> Result<Range, String> {
        let text = self.subnet.as_deref().map(str::trim).unwrap_or_default();
        if text.is_empty() {
            return Err("missing \"subnet\"".into());
        }
        let given = parse_cidr(text)
            .ok_or_else(|| format!("subnet {text:?} is not a CIDR such as 10.1.0.0/16"))?;
        let subnet = given.trunc();
        let host_bits = given.max_prefix_len() - given.prefix_len();
        if host_bits < 2 {
            return Err(format!(
                "network {given} is too small to allocate from: it needs at least 2 host bits \
                 (/31, /32, /127 and /128 are not supported)"
            ));
        }
        if given.addr() != subnet.addr() {
            return Err(format!(
                "network {given} has host bits set: for a /{} the network address is {}",
                given.prefix_len(),
                subnet.addr()
            ));
        }
        let network = to_u128(subnet.addr());
        let first = from_u128(network + 1, subnet.addr());
        let mut last = to_u128(subnet.broadcast());
        if subnet.addr().is_ipv4() {
            last -= 1;
        }
        let last = from_u128(last, subnet.addr());

        let gateway = optional_ip(&self.gateway, "gateway")?.unwrap_or(first);
        if !same_family(gateway, subnet.addr()) {
            return Err(format!(
                "gateway {gateway} is not of the family of subnet {subnet}"
            ));
        }
        let start = optional_ip(&self.range_start, "rangeStart")?.unwrap_or(first);
        if !same_family(start, subnet.addr()) || !subnet.contains(&start) {
            return Err(format!("rangeStart {start} is not in network {subnet}"));
        }
        let end = optional_ip(&self.range_end, "rangeEnd")?.unwrap_or(last);
        if !same_family(end, subnet.addr()) || !subnet.contains(&end) {
            return Err(format!("rangeEnd {end} is not in network {subnet}"));
        }
        if to_u128(end) < to_u128(start) {
            return Err(format!("rangeEnd {end} is before rangeStart {start}"));
        }
        Ok(Range {
            subnet,
            start,
            end,
            gateway,
        })
    }
}

impl Range {
    pub fn is_v4(&self) -> bool {
        self.subnet.addr().is_ipv4()
    }

    /// True when `ip` lies in `[start, end]` (the gateway included).
    pub fn contains(&self, ip: IpAddr) -> bool {
        same_family(ip, self.start)
            && (to_u128(self.start)..=to_u128(self.end)).contains(&to_u128(ip))
    }

    pub fn overlaps(&self, other: &Range) -> bool {
        self.contains(other.start)
            || self.contains(other.end)
            || other.contains(self.start)
            || other.contains(self.end)
    }

    /// How many addresses the range can hand out (all but the gateway).
    pub fn capacity(&self) -> u128 {
        let size = (to_u128(self.end) - to_u128(self.start)).saturating_add(1);
        size - u128::from(self.contains(self.gateway))
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// A non-empty list of non-overlapping ranges of one family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSet(Vec<Range>);

impl RangeSet {
    /// Validate a range set as written.
    pub fn parse(confs: &[RangeConf]) -> Result<RangeSet, String> {
        let mut ranges = Vec::with_capacity(confs.len());
        for (i, conf) in confs.iter().enumerate() {
            let r = conf.canonicalize().map_err(|e| format!("range {i}: {e}"))?;
            if let Some(first) = ranges.first() {
                let first: &Range = first;
                if first.is_v4() != r.is_v4() {
                    return Err("mixes IPv4 and IPv6 ranges; use one range set per family".into());
                }
            }
            if let Some(other) = ranges.iter().find(|o: &&Range| o.overlaps(&r)) {
                return Err(format!("ranges {other} and {r} overlap"));
            }
            ranges.push(r);
        }
        if ranges.is_empty() {
            return Err("is empty: give at least one range with a \"subnet\"".into());
        }
        Ok(RangeSet(ranges))
    }

    pub fn ranges(&self) -> &[Range] {
        &self.0
    }

    pub fn is_v4(&self) -> bool {
        self.0.first().is_some_and(Range::is_v4)
    }

    /// The range holding `ip`, if any.
    pub fn range_for(&self, ip: IpAddr) -> Option<&Range> {
        self.0.iter().find(|r| r.contains(ip))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.range_for(ip).is_some()
    }

    pub fn overlaps(&self, other: &RangeSet) -> bool {
        self.0.iter().any(|a| other.0.iter().any(|b| a.overlaps(b)))
    }

    /// Every allocatable address once, in the reference's round-robin order:
    /// from the address after `last` (when `last` is in the set), else from
    /// the first range's start, wrapping through the ranges in order and
    /// skipping each range's gateway.
    pub fn candidates(&self, last: Option<IpAddr>) -> Candidates<'_> {
        let ranges = &self.0;
        let begin = last
            .and_then(|ip| {
                let i = ranges.iter().position(|r| r.contains(ip))?;
                Some(next_position(ranges, (i, to_u128(ip))))
            })
            .unwrap_or((0, ranges.first().map_or(0, |r| to_u128(r.start))));
        Candidates {
            ranges,
            begin,
            pos: (!ranges.is_empty()).then_some(begin),
        }
    }

    /// How many more addresses this set can hand out, given the leased ones.
    pub fn free(&self, leased: &HashSet<IpAddr>) -> u128 {
        let capacity: u128 = self
            .0
            .iter()
            .map(Range::capacity)
            .fold(0, u128::saturating_add);
        let used = leased
            .iter()
            .filter(|ip| self.range_for(**ip).is_some_and(|r| r.gateway != **ip))
            .count() as u128;
        capacity.saturating_sub(used)
    }
}

impl fmt::Display for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// The position after `(range, address)`: the next address, or the start of
/// the next range (cyclically) after a range's end.
fn next_position(ranges: &[Range], (i, n): (usize, u128)) -> (usize, u128) {
    match ranges.get(i) {
        Some(r) if n < to_u128(r.end) => (i, n + 1),
        _ => {
            let j = if i + 1 < ranges.len() { i + 1 } else { 0 };
            (j, ranges.get(j).map_or(0, |r| to_u128(r.start)))
        }
    }
}

/// Iterator of [`RangeSet::candidates`]: `(address, its range)`.
pub struct Candidates<'a> {
    ranges: &'a [Range],
    begin: (usize, u128),
    pos: Option<(usize, u128)>,
}

impl<'a> Iterator for Candidates<'a> {
    type Item = (IpAddr, &'a Range);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (i, n) = self.pos?;
            let range = self.ranges.get(i)?;
            let next = next_position(self.ranges, (i, n));
            self.pos = (next != self.begin).then_some(next);
            let ip = from_u128(n, range.start);
            if ip != range.gateway {
                return Some((ip, range));
            }
        }
    }
}

/// Validate a list of range sets: each set on its own, no two sets
/// overlapping; errors name the set. Uses code 7 (invalid configuration).
pub fn parse_range_sets(sets: &[Vec<RangeConf>]) -> cni::Result<Vec<RangeSet>> {
    let mut out: Vec<RangeSet> = Vec::with_capacity(sets.len());
    for (i, confs) in sets.iter().enumerate() {
        let set = RangeSet::parse(confs)
            .map_err(|e| Error::invalid_config(format!("invalid range set {i}: {e}")))?;
        if let Some(j) = out.iter().position(|o| o.overlaps(&set)) {
            return Err(Error::invalid_config(format!(
                "range set {j} ({}) overlaps with range set {i} ({set})",
                out.get(j).map(ToString::to_string).unwrap_or_default()
            )));
        }
        out.push(set);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(subnet: &str) -> RangeConf {
        RangeConf {
            subnet: Some(subnet.into()),
            ..RangeConf::default()
        }
    }

    fn conf4(subnet: &str, start: &str, end: &str, gw: &str) -> RangeConf {
        let s = |v: &str| (!v.is_empty()).then(|| v.to_string());
        RangeConf {
            subnet: Some(subnet.into()),
            range_start: s(start),
            range_end: s(end),
            gateway: s(gw),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn set(confs: &[RangeConf]) -> RangeSet {
        RangeSet::parse(confs).unwrap()
    }

    #[test]
    fn defaults() {
        let r = conf("10.1.2.0/24").canonicalize().unwrap();
        assert_eq!(
            (r.start, r.end, r.gateway),
            (ip("10.1.2.1"), ip("10.1.2.254"), ip("10.1.2.1"))
        );
        let r = conf("fd00::/120").canonicalize().unwrap();
        assert_eq!(
            (r.start, r.end, r.gateway),
            (ip("fd00::1"), ip("fd00::ff"), ip("fd00::1"))
        );
        let r = conf("10.0.0.0/30").canonicalize().unwrap();
        assert_eq!((r.start, r.end), (ip("10.0.0.1"), ip("10.0.0.2")));
        assert_eq!(r.capacity(), 1);
    }

    #[test]
    fn rejects_what_the_reference_rejects() {
        for (c, why) in [
            (conf("10.0.0.0/31"), "too small"),
            (conf("10.0.0.0/32"), "too small"),
            (conf("fd00::/127"), "too small"),
            (conf("fd00::/128"), "too small"),
            (conf("10.0.0.1/24"), "host bits"),
            (conf("10.0.0.0"), "not a CIDR"),
            (RangeConf::default(), "missing"),
            (conf4("10.0.0.0/24", "10.0.1.1", "", ""), "rangeStart"),
            (conf4("10.0.0.0/24", "", "10.0.1.1", ""), "rangeEnd"),
            (conf4("10.0.0.0/24", "10.0.0.9", "10.0.0.5", ""), "before"),
            (conf4("10.0.0.0/24", "fd00::1", "", ""), "rangeStart"),
            (conf4("10.0.0.0/24", "", "", "fd00::1"), "family"),
            (conf4("10.0.0.0/24", "", "", "x"), "not an IP"),
        ] {
            let e = c.canonicalize().unwrap_err();
            assert!(e.contains(why), "{c:?}: {e}");
        }
        assert!(conf4("10.0.0.0/24", "", "", "").canonicalize().is_ok());
    }

    #[test]
    fn sets_reject_mixed_families_and_overlaps() {
        let e = RangeSet::parse(&[conf("10.0.0.0/24"), conf("fd00::/64")]).unwrap_err();
        assert!(e.contains("IPv4 and IPv6"), "{e}");
        let e = RangeSet::parse(&[conf("10.0.0.0/24"), conf("10.0.0.0/25")]).unwrap_err();
        assert!(e.contains("overlap"), "{e}");
        assert!(RangeSet::parse(&[]).is_err());
        // Same subnet, disjoint windows: allowed, as in the reference.
        set(&[
            conf4("10.0.0.0/24", "10.0.0.1", "10.0.0.9", ""),
            conf4("10.0.0.0/24", "10.0.0.10", "10.0.0.20", ""),
        ]);

        let sets = parse_range_sets(&[vec![conf("10.0.0.0/24")], vec![conf("10.0.0.0/16")]]);
        let e = sets.unwrap_err();
        assert_eq!(e.code, 7);
        assert!(
            e.msg.contains("range set 0") && e.msg.contains("range set 1"),
            "{e}"
        );
        let e = parse_range_sets(&[vec![conf("10.0.0.0/31")]]).unwrap_err();
        assert!(
            e.msg.starts_with("invalid range set 0: range 0: network"),
            "{e}"
        );
    }

    #[test]
    fn candidates_follow_the_reference_order() {
        let s = set(&[
            conf4("10.0.0.0/29", "10.0.0.1", "10.0.0.3", ""),
            conf4("10.0.1.0/29", "10.0.1.2", "10.0.1.4", "10.0.1.3"),
        ]);
        let order = |last: Option<&str>| -> Vec<String> {
            s.candidates(last.map(ip))
                .map(|(a, _)| a.to_string())
                .collect()
        };
        // From the start, skipping each gateway (.1 in the first, .3 in the second).
        assert_eq!(
            order(None),
            ["10.0.0.2", "10.0.0.3", "10.0.1.2", "10.0.1.4"]
        );
        // After the last reserved address, wrapping around.
        assert_eq!(
            order(Some("10.0.0.2")),
            ["10.0.0.3", "10.0.1.2", "10.0.1.4", "10.0.0.2"]
        );
        // After a range's end: the next range's start.
        assert_eq!(
            order(Some("10.0.0.3")),
            ["10.0.1.2", "10.0.1.4", "10.0.0.2", "10.0.0.3"]
        );
        assert_eq!(
            order(Some("10.0.1.4")),
            ["10.0.0.2", "10.0.0.3", "10.0.1.2", "10.0.1.4"]
        );
        // A last address outside the set restarts from the beginning.
        assert_eq!(order(Some("192.168.0.1")), order(None));
        assert_eq!(order(Some("fd00::1")), order(None));
    }

    #[test]
    fn candidates_visit_every_address_once_from_any_start() {
        // Exhaustive over small sets: every start position, gateway anywhere.
        for gw in 0..8u8 {
            let s = set(&[
                conf4("10.0.0.0/29", "", "", &format!("10.0.0.{gw}")),
                conf4("10.0.0.8/30", "10.0.0.9", "10.0.0.10", ""),
            ]);
            let all: Vec<IpAddr> = s.candidates(None).map(|(a, _)| a).collect();
            let unique: HashSet<IpAddr> = all.iter().copied().collect();
            assert_eq!(unique.len(), all.len());
            let expected = s.ranges().iter().map(Range::capacity).sum::<u128>();
            assert_eq!(all.len() as u128, expected, "gateway .{gw}");
            assert!(all.iter().all(|a| s.contains(*a)));
            for last in 0..=12u8 {
                let from: Vec<IpAddr> = s
                    .candidates(Some(ip(&format!("10.0.0.{last}"))))
                    .map(|(a, _)| a)
                    .collect();
                let mut sorted = from.clone();
                sorted.sort();
                let mut base = all.clone();
                base.sort();
                assert_eq!(sorted, base, "gateway .{gw}, last .{last}");
                // A rotation of the base order.
                if let Some(k) = all.iter().position(|a| Some(a) == from.first()) {
                    let rotated: Vec<IpAddr> = all[k..].iter().chain(&all[..k]).copied().collect();
                    assert_eq!(from, rotated);
                }
            }
        }
    }

    #[test]
    fn single_address_ranges_terminate() {
        let s = set(&[conf4("10.0.0.0/24", "10.0.0.1", "10.0.0.1", "")]);
        assert_eq!(s.candidates(None).count(), 0);
        assert_eq!(s.candidates(Some(ip("10.0.0.1"))).count(), 0);
        let s = set(&[conf4("10.0.0.0/24", "10.0.0.5", "10.0.0.5", "")]);
        assert_eq!(s.candidates(Some(ip("10.0.0.5"))).count(), 1);
    }

    #[test]
    fn large_v6_sets_are_lazy_and_counted() {
        let s = set(&[conf("fd00::/64")]);
        let first: Vec<String> = s
            .candidates(None)
            .take(2)
            .map(|(a, _)| a.to_string())
            .collect();
        assert_eq!(first, ["fd00::2", "fd00::3"]);
        assert_eq!(s.free(&HashSet::new()), (1u128 << 64) - 2);
        let whole = set(&[conf("::/0")]);
        assert!(whole.free(&HashSet::new()) > 0);
    }

    #[test]
    fn free_counts_only_leases_in_the_set() {
        let s = set(&[conf4("10.0.0.0/29", "10.0.0.2", "10.0.0.4", "")]);
        let leased: HashSet<IpAddr> = ["10.0.0.2", "10.0.0.1", "10.0.0.9", "fd00::2"]
            .iter()
            .map(|a| ip(a))
            .collect();
        assert_eq!(s.free(&leased), 2);
        assert_eq!(s.to_string(), "10.0.0.2-10.0.0.4");
    }
}
