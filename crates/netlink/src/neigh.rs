//! The neighbour (ARP / NDP) table: set, remove, list entries.

use crate::addr::Family;
use crate::error::Result;
use crate::link::Mac;
use crate::socket::Handle;
use crate::wire::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::RouteNetlinkMessage;
use std::net::IpAddr;

/// `NUD_*` states of neighbour entries.
pub mod nud {
    pub const INCOMPLETE: u16 = 0x01;
    pub const REACHABLE: u16 = 0x02;
    pub const STALE: u16 = 0x04;
    pub const DELAY: u16 = 0x08;
    pub const PROBE: u16 = 0x10;
    pub const FAILED: u16 = 0x20;
    pub const NOARP: u16 = 0x40;
    pub const PERMANENT: u16 = 0x80;
}

/// One neighbour entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    pub index: u32,
    pub ip: IpAddr,
    /// Missing while the entry is still being resolved.
    pub mac: Option<Mac>,
    /// `NUD_*`, see [`nud`].
    pub state: u16,
}

impl Neighbour {
    fn from_message(m: &NeighbourMessage) -> Option<Neighbour> {
        let mut ip = None;
        let mut mac = None;
        for a in &m.attributes {
            match a {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => {
                    ip = Some(IpAddr::V4(*v4))
                }
                NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => {
                    ip = Some(IpAddr::V6(*v6))
                }
                NeighbourAttribute::LinkLayerAddress(l) => {
                    mac = <[u8; 6]>::try_from(l.as_slice()).ok().map(Mac)
                }
                _ => {}
            }
        }
        Some(Neighbour {
            index: m.header.ifindex,
            ip: ip?,
            mac,
            state: u16::from(m.header.state),
        })
    }
}

fn message(index: u32, ip: IpAddr) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = Family::wire(Some(Family::of(&ip)));
    m.header.ifindex = index;
    m.attributes.push(NeighbourAttribute::Destination(match ip {
        IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
        IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
    }));
    m
}

impl Handle {
    /// Set (add or replace) the entry `ip` → `mac` on link `index`;
    /// `permanent` entries never expire, others start out stale.
    pub fn set_neighbour(
        &mut self,
        index: u32,
        ip: IpAddr,
        mac: Mac,
        permanent: bool,
    ) -> Result<()> {
        let mut m = message(index, ip);
        m.header.state = NeighbourState::from(if permanent {
            nud::PERMANENT
        } else {
            nud::STALE
        });
        m.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()));
        let op = format!("setting neighbour {ip} to {mac} on link {index}");
        self.request(
            RouteNetlinkMessage::NewNeighbour(m),
            NLM_F_CREATE | NLM_F_REPLACE,
            op,
        )
        .map(|_| ())
    }

    /// Remove the entry for `ip` on link `index`; [`crate::Error::is_not_found`]
    /// when there is none.
    pub fn del_neighbour(&mut self, index: u32, ip: IpAddr) -> Result<()> {
        let op = format!("removing neighbour {ip} from link {index}");
        self.request(RouteNetlinkMessage::DelNeighbour(message(index, ip)), 0, op)
            .map(|_| ())
    }

    /// Neighbour entries, of one link or all, of one family or both.
    pub fn neighbours(
        &mut self,
        index: Option<u32>,
        family: Option<Family>,
    ) -> Result<Vec<Neighbour>> {
        let mut m = NeighbourMessage::default();
        m.header.family = Family::wire(family);
        // Dumps filter by attribute; strict checking refuses a header index.
        if let Some(i) = index {
            m.attributes.push(NeighbourAttribute::IfIndex(i));
        }
        let all = self.dump(RouteNetlinkMessage::GetNeighbour(m), "listing neighbours")?;
        Ok(all
            .iter()
            .filter_map(|msg| match msg {
                RouteNetlinkMessage::NewNeighbour(n) => Neighbour::from_message(n),
                _ => None,
            })
            .filter(|n| index.is_none_or(|i| i == n.index))
            .filter(|n| family.is_none_or(|f| Family::of(&n.ip) == f))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{Emitable, Parseable};

    #[test]
    fn neighbour_messages_round_trip() {
        let mut m = message(4, "fd00::7".parse().unwrap());
        m.header.state = NeighbourState::Permanent;
        m.attributes
            .push(NeighbourAttribute::LinkLayerAddress(vec![2, 0, 0, 0, 0, 7]));
        let mut buf = vec![0; m.buffer_len()];
        m.emit(&mut buf);
        let back = NeighbourMessage::parse(&buf[..]).unwrap();
        assert_eq!(back, m);
        assert_eq!(
            Neighbour::from_message(&back).unwrap(),
            Neighbour {
                index: 4,
                ip: "fd00::7".parse().unwrap(),
                mac: Some(Mac([2, 0, 0, 0, 0, 7])),
                state: nud::PERMANENT,
            }
        );
    }
}
