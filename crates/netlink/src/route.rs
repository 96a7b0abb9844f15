//! Routes: add, replace, remove, list; with gateway, metric, table, scope,
//! MTU and advmss (the route fields of CNI 1.1.0).

use crate::addr::{scope, Family};
use crate::error::{Error, Result};
use crate::socket::{Batch, Handle};
use crate::wire::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use ipnet::IpNet;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteMetric,
    RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::RouteNetlinkMessage;
use std::net::IpAddr;

/// The main routing table, where routes go unless a table is named.
pub const MAIN_TABLE: u32 = 254;
/// The kernel's table of local and broadcast addresses.
pub const LOCAL_TABLE: u32 = 255;

// RTN_* route types.
const RTN_UNICAST: u8 = 1;

/// A route, to add or delete, or as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: IpNet,
    pub gw: Option<IpAddr>,
    /// Output link index.
    pub oif: Option<u32>,
    /// Preferred source address.
    pub src: Option<IpAddr>,
    /// Metric (`RTA_PRIORITY`).
    pub metric: Option<u32>,
    /// Routing table; `None` means main when adding (listed routes always
    /// carry their table).
    pub table: Option<u32>,
    /// `RT_SCOPE_*` (see [`crate::scope`]); `None` means universe when adding
    /// and "any" when deleting.
    pub scope: Option<u8>,
    pub mtu: Option<u32>,
    pub advmss: Option<u32>,
    /// Use the gateway even though no address on the link covers it.
    pub onlink: bool,
    /// `RTN_*` type: 1 unicast (added routes are always unicast), 2 local,
    /// 3 broadcast, 6 blackhole, 7 unreachable, ...
    pub kind: u8,
}

impl Route {
    /// A unicast route to `dst`, everything else unset.
    pub fn new(dst: IpNet) -> Route {
        Route {
            dst,
            gw: None,
            oif: None,
            src: None,
            metric: None,
            table: None,
            scope: None,
            mtu: None,
            advmss: None,
            onlink: false,
            kind: RTN_UNICAST,
        }
    }

    /// The route a CNI result asks for, out of link `oif`.
    pub fn from_cni(r: &cni::Route, oif: u32) -> Route {
        Route {
            gw: r.gw,
            oif: Some(oif),
            metric: r.priority,
            table: r.table,
            scope: r.scope,
            mtu: r.mtu,
            advmss: r.advmss,
            ..Route::new(r.dst)
        }
    }

    fn describe(&self) -> String {
        let mut s = format!("route {}", self.dst);
        if let Some(gw) = self.gw {
            s += &format!(" via {gw}");
        }
        if let Some(oif) = self.oif {
            s += &format!(" dev {oif}");
        }
        if let Some(t) = self.table {
            s += &format!(" table {t}");
        }
        s
    }

    /// The request: `adding` decides the defaults that differ for delete.
    fn message(&self, adding: bool) -> std::result::Result<RouteMessage, String> {
        let family = Family::of(&self.dst.addr());
        let mut m = RouteMessage::default();
        let table = self.table.unwrap_or(MAIN_TABLE);
        m.header = RouteHeader {
            address_family: Family::wire(Some(family)),
            destination_prefix_length: self.dst.prefix_len(),
            // Tables above 255 only fit in the attribute.
            table: u8::try_from(table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC),
            ..RouteHeader::default()
        };
        if adding {
            m.header.protocol = RouteProtocol::Boot;
            m.header.scope = RouteScope::from(self.scope.unwrap_or(scope::UNIVERSE));
            m.header.kind = RouteType::from(self.kind);
        } else {
            m.header.scope = RouteScope::from(self.scope.unwrap_or(scope::NOWHERE));
        }
        if self.onlink {
            m.header.flags = RouteFlags::Onlink;
        }
        let attrs = &mut m.attributes;
        if self.dst.prefix_len() > 0 {
            attrs.push(RouteAttribute::Destination(address(self.dst.network())));
        }
        if let Some(gw) = self.gw {
            if Family::of(&gw) != family {
                return Err(format!(
                    "gateway {gw} is not of the same family as {}",
                    self.dst
                ));
            }
            attrs.push(RouteAttribute::Gateway(address(gw)));
        }
        if let Some(src) = self.src {
            attrs.push(RouteAttribute::PrefSource(address(src)));
        }
        if let Some(oif) = self.oif {
            attrs.push(RouteAttribute::Oif(oif));
        }
        if let Some(p) = self.metric {
            attrs.push(RouteAttribute::Priority(p));
        }
        attrs.push(RouteAttribute::Table(table));
        let mut metrics = Vec::new();
        if let Some(v) = self.mtu {
            metrics.push(RouteMetric::Mtu(v));
        }
        if let Some(v) = self.advmss {
            metrics.push(RouteMetric::Advmss(v));
        }
        if !metrics.is_empty() {
            attrs.push(RouteAttribute::Metrics(metrics));
        }
        Ok(m)
    }

    fn from_message(m: &RouteMessage) -> Option<Route> {
        let h = &m.header;
        let family = match h.address_family {
            netlink_packet_route::AddressFamily::Inet => Family::V4,
            netlink_packet_route::AddressFamily::Inet6 => Family::V6,
            _ => return None,
        };
        let unspecified = match family {
            Family::V4 => IpAddr::from([0u8; 4]),
            Family::V6 => IpAddr::from([0u8; 16]),
        };
        let mut r = Route::new(IpNet::new(unspecified, 0).ok()?);
        let mut dst = unspecified;
        r.table = Some(u32::from(h.table));
        r.scope = Some(u8::from(h.scope));
        r.kind = u8::from(h.kind);
        r.onlink = h.flags.contains(RouteFlags::Onlink);
        for a in &m.attributes {
            match a {
                RouteAttribute::Destination(d) => dst = ip(d)?,
                RouteAttribute::Gateway(g) => r.gw = ip(g),
                RouteAttribute::PrefSource(s) => r.src = ip(s),
                RouteAttribute::Oif(i) => r.oif = Some(*i),
                RouteAttribute::Priority(p) => r.metric = Some(*p),
                RouteAttribute::Table(t) => r.table = Some(*t),
                RouteAttribute::Metrics(ms) => {
                    for metric in ms {
                        match metric {
                            RouteMetric::Mtu(v) => r.mtu = Some(*v),
                            RouteMetric::Advmss(v) => r.advmss = Some(*v),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        r.dst = IpNet::new(dst, h.destination_prefix_length).ok()?;
        Some(r)
    }
}

fn address(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(v4) => RouteAddress::Inet(v4),
        IpAddr::V6(v6) => RouteAddress::Inet6(v6),
    }
}

fn ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

impl Handle {
    fn route_request(&mut self, r: &Route, verb: &str, add: bool, flags: u16) -> Result<()> {
        let op = format!("{verb} {}", r.describe());
        let msg = r
            .message(add)
            .map_err(|e| Error::invalid(self.op(&op), e))?;
        let msg = if add {
            RouteNetlinkMessage::NewRoute(msg)
        } else {
            RouteNetlinkMessage::DelRoute(msg)
        };
        self.request(msg, flags, op).map(|_| ())
    }

    /// Add a route; [`Error::is_exists`] when an equal one is there.
    pub fn add_route(&mut self, r: &Route) -> Result<()> {
        self.route_request(r, "adding", true, NLM_F_CREATE | NLM_F_EXCL)
    }

    /// Add a route even when another one to the same destination and metric
    /// exists (IPv6 gateway routes become multipath siblings, IPv4 keeps
    /// both), as the reference's `RouteAddEcmp`; only an identical route is
    /// [`Error::is_exists`]. Use it for routes from an IPAM result, which
    /// may repeat a destination the kernel already has (a prefix route).
    pub fn add_route_ecmp(&mut self, r: &Route) -> Result<()> {
        self.route_request(r, "adding", true, NLM_F_CREATE)
    }

    /// Add a route or replace the one with the same destination and metric.
    pub fn replace_route(&mut self, r: &Route) -> Result<()> {
        self.route_request(r, "replacing", true, NLM_F_CREATE | NLM_F_REPLACE)
    }

    /// Delete the route matching `r`'s set fields; [`Error::is_not_found`]
    /// when there is none.
    pub fn del_route(&mut self, r: &Route) -> Result<()> {
        self.route_request(r, "deleting", false, 0)
    }

    /// Routes of one family or both, in one table or all of them.
    pub fn routes(&mut self, family: Option<Family>, table: Option<u32>) -> Result<Vec<Route>> {
        let mut m = RouteMessage::default();
        m.header.address_family = Family::wire(family);
        if let Some(t) = table {
            // With strict checking the kernel filters by table itself.
            m.attributes.push(RouteAttribute::Table(t));
        }
        let all = self.dump(RouteNetlinkMessage::GetRoute(m), "listing routes")?;
        Ok(all
            .iter()
            .filter_map(|msg| match msg {
                RouteNetlinkMessage::NewRoute(r) => Route::from_message(r),
                _ => None,
            })
            .filter(|r| table.is_none() || r.table == table)
            .filter(|r| family.is_none_or(|f| Family::of(&r.dst.addr()) == f))
            .collect())
    }
}

impl Batch {
    /// Queue adding a route; an invalid route shows up as an error of `commit`.
    pub fn add_route(&mut self, r: &Route) -> &mut Batch {
        self.queue_route(r, NLM_F_CREATE | NLM_F_EXCL)
    }

    /// Queue [`Handle::add_route_ecmp`].
    pub fn add_route_ecmp(&mut self, r: &Route) -> &mut Batch {
        self.queue_route(r, NLM_F_CREATE)
    }

    fn queue_route(&mut self, r: &Route, flags: u16) -> &mut Batch {
        let op = format!("adding {}", r.describe());
        match r.message(true) {
            Ok(m) => self.push(RouteNetlinkMessage::NewRoute(m), flags, op),
            Err(e) => self.invalid(Error::invalid(op, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{Emitable, Parseable};

    fn round_trip(m: &RouteMessage) -> RouteMessage {
        let mut buf = vec![0; m.buffer_len()];
        m.emit(&mut buf);
        RouteMessage::parse(&buf[..]).unwrap()
    }

    fn full() -> Route {
        Route {
            gw: Some("10.1.0.1".parse().unwrap()),
            oif: Some(3),
            metric: Some(100),
            table: Some(1000),
            scope: Some(scope::LINK),
            mtu: Some(1300),
            advmss: Some(1200),
            ..Route::new("10.9.0.0/16".parse().unwrap())
        }
    }

    #[test]
    fn add_request_carries_every_field_and_reads_back() {
        let r = full();
        let m = r.message(true).unwrap();
        assert_eq!(m.header.destination_prefix_length, 16);
        assert_eq!(
            m.header.table,
            RouteHeader::RT_TABLE_UNSPEC,
            "table 1000 needs the attribute"
        );
        assert_eq!(m.header.protocol, RouteProtocol::Boot);
        assert_eq!(m.header.kind, RouteType::Unicast);
        assert!(m.attributes.contains(&RouteAttribute::Table(1000)));
        let back = round_trip(&m);
        assert_eq!(back, m);
        let mut listed = Route::from_message(&back).unwrap();
        listed.src = None;
        assert_eq!(listed, r);
    }

    #[test]
    fn delete_matches_any_scope_unless_told() {
        let m = Route::new("10.9.0.0/16".parse().unwrap())
            .message(false)
            .unwrap();
        assert_eq!(u8::from(m.header.scope), scope::NOWHERE);
        assert_eq!(m.header.protocol, RouteProtocol::Unspec);
        assert_eq!(m.header.table, 254);
    }

    #[test]
    fn default_route_has_no_destination_attribute() {
        let mut r = Route::new("::/0".parse().unwrap());
        r.gw = Some("fd00::1".parse().unwrap());
        let m = r.message(true).unwrap();
        assert!(!m
            .attributes
            .iter()
            .any(|a| matches!(a, RouteAttribute::Destination(_))));
        let listed = Route::from_message(&round_trip(&m)).unwrap();
        assert_eq!(listed.dst, "::/0".parse::<IpNet>().unwrap());
        assert_eq!(listed.gw, r.gw);
    }

    #[test]
    fn mixed_families_are_refused() {
        let mut r = Route::new("10.0.0.0/8".parse().unwrap());
        r.gw = Some("fd00::1".parse().unwrap());
        assert!(r.message(true).is_err());
    }

    #[test]
    fn cni_routes_map_field_by_field() {
        let c = cni::Route {
            mtu: Some(1400),
            advmss: Some(1360),
            priority: Some(5),
            table: Some(100),
            scope: Some(scope::LINK),
            ..cni::Route::new(
                "0.0.0.0/0".parse().unwrap(),
                Some("10.0.0.1".parse().unwrap()),
            )
        };
        let r = Route::from_cni(&c, 7);
        assert_eq!(
            (r.oif, r.metric, r.table, r.scope, r.mtu, r.advmss),
            (
                Some(7),
                Some(5),
                Some(100),
                Some(scope::LINK),
                Some(1400),
                Some(1360)
            )
        );
        assert_eq!(r.gw, c.gw);
    }
}
