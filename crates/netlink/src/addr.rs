//! IPv4 and IPv6 addresses on links: add, remove, list.

use crate::error::{Error, Result};
use crate::socket::{Batch, Handle};
use crate::wire::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use ipnet::IpNet;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::IpAddr;

/// An address family, for filtering lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    pub(crate) fn wire(family: Option<Family>) -> AddressFamily {
        match family {
            None => AddressFamily::Unspec,
            Some(Family::V4) => AddressFamily::Inet,
            Some(Family::V6) => AddressFamily::Inet6,
        }
    }
}

/// Route and address scopes (`RT_SCOPE_*`); `ip` shows them by these names.
pub mod scope {
    pub const UNIVERSE: u8 = 0;
    pub const SITE: u8 = 200;
    pub const LINK: u8 = 253;
    pub const HOST: u8 = 254;
    pub const NOWHERE: u8 = 255;
}

// IFA_F_* flags the kernel reports or accepts.
const IFA_F_NODAD: u32 = 0x02;
const IFA_F_DADFAILED: u32 = 0x08;
const IFA_F_TENTATIVE: u32 = 0x40;
const IFA_F_PERMANENT: u32 = 0x80;
const IFA_F_NOPREFIXROUTE: u32 = 0x200;

/// An address as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    /// The link it is on.
    pub index: u32,
    /// The address with its prefix length (host bits kept: `10.1.0.5/24`).
    pub address: IpNet,
    /// `RT_SCOPE_*`, see [`scope`].
    pub scope: u8,
    /// Raw `IFA_F_*` flags; see the helper methods.
    pub flags: u32,
    pub label: Option<String>,
}

impl Addr {
    /// IPv6 duplicate address detection is still running: not usable yet.
    pub fn is_tentative(&self) -> bool {
        self.flags & IFA_F_TENTATIVE != 0
    }

    /// IPv6 duplicate address detection found a duplicate.
    pub fn is_dad_failed(&self) -> bool {
        self.flags & IFA_F_DADFAILED != 0
    }

    /// Added with duplicate address detection disabled.
    pub fn is_nodad(&self) -> bool {
        self.flags & IFA_F_NODAD != 0
    }

    /// Has no lifetime (not learned from router advertisements).
    pub fn is_permanent(&self) -> bool {
        self.flags & IFA_F_PERMANENT != 0
    }

    fn from_message(m: &AddressMessage) -> Option<Addr> {
        let mut address = None;
        let mut local = None;
        let mut flags = None;
        let mut label = None;
        for a in &m.attributes {
            match a {
                AddressAttribute::Address(ip) => address = Some(*ip),
                AddressAttribute::Local(ip) => local = Some(*ip),
                AddressAttribute::Flags(f) => flags = Some(f.bits()),
                AddressAttribute::Label(l) => label = Some(l.clone()),
                _ => {}
            }
        }
        // For IPv4, IFA_LOCAL is ours and IFA_ADDRESS may be a point-to-point peer.
        let ip = local.or(address)?;
        Some(Addr {
            index: m.header.index,
            address: IpNet::new(ip, m.header.prefix_len).ok()?,
            scope: u8::from(m.header.scope),
            flags: flags.unwrap_or(u32::from(m.header.flags.bits())),
            label,
        })
    }
}

/// An address to add with [`Handle::add_address`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewAddr {
    pub index: u32,
    /// Address with prefix length (`10.1.0.5/24`); host bits are the address.
    pub address: IpNet,
    /// Skip IPv6 duplicate address detection so the address is usable at
    /// once (what the reference plugins do for container addresses).
    pub nodad: bool,
    /// Do not add the prefix route for the address's subnet.
    pub noprefixroute: bool,
    /// `RT_SCOPE_*`; `None` lets the kernel choose (universe, or host for 127/8).
    pub scope: Option<u8>,
}

impl NewAddr {
    pub fn new(index: u32, address: IpNet) -> NewAddr {
        NewAddr {
            index,
            address,
            nodad: false,
            noprefixroute: false,
            scope: None,
        }
    }

    pub fn nodad(mut self) -> NewAddr {
        self.nodad = true;
        self
    }

    fn message(&self) -> AddressMessage {
        let mut m = base(self.index, &self.address);
        let ip = self.address.addr();
        m.attributes.push(AddressAttribute::Local(ip));
        m.attributes.push(AddressAttribute::Address(ip));
        if let IpNet::V4(v4) = self.address {
            // Like the reference (netlink library), give IPv4 subnets their broadcast.
            if v4.prefix_len() < 31 {
                m.attributes
                    .push(AddressAttribute::Broadcast(v4.broadcast()));
            }
        }
        let mut flags = 0;
        if self.nodad {
            flags |= IFA_F_NODAD;
        }
        if self.noprefixroute {
            flags |= IFA_F_NOPREFIXROUTE;
        }
        if flags != 0 {
            m.header.flags = AddressHeaderFlags::from_bits_retain(flags as u8);
            m.attributes
                .push(AddressAttribute::Flags(AddressFlags::from_bits_retain(
                    flags,
                )));
        }
        if let Some(s) = self.scope {
            m.header.scope = AddressScope::from(s);
        }
        m
    }
}

fn base(index: u32, address: &IpNet) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.family = Family::wire(Some(Family::of(&address.addr())));
    m.header.prefix_len = address.prefix_len();
    m.header.index = index;
    m
}

fn del_message(index: u32, address: &IpNet) -> AddressMessage {
    let mut m = base(index, address);
    m.attributes.push(AddressAttribute::Local(address.addr()));
    m
}

impl Handle {
    /// Add an address; fails with [`Error::is_exists`] when it is already there.
    pub fn add_address(&mut self, new: &NewAddr) -> Result<()> {
        let op = format!("adding address {} to link {}", new.address, new.index);
        self.request(
            RouteNetlinkMessage::NewAddress(new.message()),
            NLM_F_CREATE | NLM_F_EXCL,
            op,
        )
        .map(|_| ())
    }

    /// Add an address or update it when it is already there.
    pub fn replace_address(&mut self, new: &NewAddr) -> Result<()> {
        let op = format!("setting address {} on link {}", new.address, new.index);
        self.request(
            RouteNetlinkMessage::NewAddress(new.message()),
            NLM_F_CREATE | NLM_F_REPLACE,
            op,
        )
        .map(|_| ())
    }

    /// Remove an address; [`Error::is_not_found`] when it was not there.
    pub fn del_address(&mut self, index: u32, address: &IpNet) -> Result<()> {
        let op = format!("removing address {address} from link {index}");
        self.request(
            RouteNetlinkMessage::DelAddress(del_message(index, address)),
            0,
            op,
        )
        .map(|_| ())
    }

    /// Addresses, of one link (`index`) or all, of one family or both.
    pub fn addresses(&mut self, index: Option<u32>, family: Option<Family>) -> Result<Vec<Addr>> {
        let mut m = AddressMessage::default();
        m.header.family = Family::wire(family);
        m.header.index = index.unwrap_or(0);
        let op = match index {
            Some(i) => format!("listing addresses of link {i}"),
            None => "listing addresses".to_string(),
        };
        let all = self.dump(RouteNetlinkMessage::GetAddress(m), &op)?;
        let mut out = Vec::new();
        for msg in &all {
            let RouteNetlinkMessage::NewAddress(a) = msg else {
                continue;
            };
            let Some(addr) = Addr::from_message(a) else {
                return Err(Error::decode(
                    self.op(&op),
                    "address message without an address",
                ));
            };
            // The kernel filters too (strict checking); this covers old kernels.
            let family_ok = family.is_none_or(|f| Family::of(&addr.address.addr()) == f);
            if index.is_none_or(|i| i == addr.index) && family_ok {
                out.push(addr);
            }
        }
        Ok(out)
    }
}

impl Batch {
    pub fn add_address(&mut self, new: &NewAddr) -> &mut Batch {
        let op = format!("adding address {} to link {}", new.address, new.index);
        self.push(
            RouteNetlinkMessage::NewAddress(new.message()),
            NLM_F_CREATE | NLM_F_EXCL,
            op,
        )
    }

    pub fn del_address(&mut self, index: u32, address: &IpNet) -> &mut Batch {
        let op = format!("removing address {address} from link {index}");
        self.push(
            RouteNetlinkMessage::DelAddress(del_message(index, address)),
            0,
            op,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{Emitable, Parseable};

    fn round_trip(m: &AddressMessage) -> AddressMessage {
        let mut buf = vec![0; m.buffer_len()];
        m.emit(&mut buf);
        AddressMessage::parse(&buf[..]).unwrap()
    }

    #[test]
    fn ipv4_address_gets_local_and_broadcast() {
        let m = NewAddr::new(5, "10.1.2.3/24".parse().unwrap()).message();
        assert_eq!(m.header.prefix_len, 24);
        assert_eq!(m.header.index, 5);
        assert_eq!(m.header.family, AddressFamily::Inet);
        assert!(m
            .attributes
            .contains(&AddressAttribute::Local("10.1.2.3".parse().unwrap())));
        assert!(m
            .attributes
            .contains(&AddressAttribute::Broadcast("10.1.2.255".parse().unwrap())));
        assert_eq!(round_trip(&m), m);
        let p2p = NewAddr::new(5, "10.1.2.3/31".parse().unwrap()).message();
        assert!(!p2p
            .attributes
            .iter()
            .any(|a| matches!(a, AddressAttribute::Broadcast(_))));
    }

    #[test]
    fn nodad_sets_the_flag_in_header_and_attribute() {
        let m = NewAddr::new(5, "fd00::5/64".parse().unwrap())
            .nodad()
            .message();
        assert_eq!(m.header.family, AddressFamily::Inet6);
        assert!(m.header.flags.contains(AddressHeaderFlags::Nodad));
        assert!(m
            .attributes
            .contains(&AddressAttribute::Flags(AddressFlags::Nodad)));
        assert_eq!(round_trip(&m), m);
    }

    #[test]
    fn reported_addresses_keep_host_bits_and_flags() {
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet6;
        m.header.prefix_len = 64;
        m.header.index = 2;
        m.attributes = vec![
            AddressAttribute::Address("fd00::5".parse().unwrap()),
            AddressAttribute::Flags(AddressFlags::from_bits_retain(
                IFA_F_TENTATIVE | IFA_F_PERMANENT,
            )),
        ];
        let a = Addr::from_message(&m).unwrap();
        assert_eq!(a.address, "fd00::5/64".parse::<IpNet>().unwrap());
        assert!(a.is_tentative() && a.is_permanent() && !a.is_nodad());
        // A message without an address is not an address.
        m.attributes.clear();
        assert!(Addr::from_message(&m).is_none());
    }
}
