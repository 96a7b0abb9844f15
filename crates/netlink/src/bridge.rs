//! Linux bridges: VLAN filtering on the bridge, port flags (hairpin,
//! isolated) and per-port VLANs (`bridge vlan add/del/show`).
//!
//! Per-port VLANs travel as `AF_BRIDGE` link messages whose `IFLA_AF_SPEC`
//! holds `IFLA_BRIDGE_VLAN_INFO` entries; the bridge (the port's master)
//! applies them.

use crate::error::{Error, Result};
use crate::socket::{Batch, Handle};
use netlink_packet_route::link::{
    self as nl, AfSpecBridge, BridgeFlag, BridgeVlanInfo, BridgeVlanInfoFlags, InfoBridge,
    InfoBridgePort, InfoData, InfoKind, InfoPortData, LinkAttribute, LinkExtentMask, LinkMessage,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

/// A VLAN on a bridge port, as `bridge vlan show` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BridgeVlan {
    /// VLAN id, 1–4094.
    pub vid: u16,
    /// Untagged frames arriving on the port belong to this VLAN.
    pub pvid: bool,
    /// Frames of this VLAN leave the port without a tag.
    pub untagged: bool,
}

impl BridgeVlan {
    /// A tagged member VLAN (a trunk VLAN).
    pub fn tagged(vid: u16) -> BridgeVlan {
        BridgeVlan {
            vid,
            pvid: false,
            untagged: false,
        }
    }

    /// The port's native VLAN: untagged in and out (an access port).
    pub fn native(vid: u16) -> BridgeVlan {
        BridgeVlan {
            vid,
            pvid: true,
            untagged: true,
        }
    }

    fn info(&self) -> BridgeVlanInfo {
        let mut flags = BridgeVlanInfoFlags::empty();
        if self.pvid {
            flags |= BridgeVlanInfoFlags::Pvid;
        }
        if self.untagged {
            flags |= BridgeVlanInfoFlags::Untagged;
        }
        BridgeVlanInfo {
            flags,
            vid: self.vid,
        }
    }
}

/// The bridge-port settings of a link attached to a bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BridgePort {
    /// Frames may leave through the port they came in on.
    pub hairpin: bool,
    /// The port may talk only to ports that are not isolated.
    pub isolated: bool,
}

fn check_vid(op: &str, vid: u16) -> Result<()> {
    if (1..=4094).contains(&vid) {
        Ok(())
    } else {
        Err(Error::invalid(
            op,
            format!("VLAN id {vid} is outside 1-4094"),
        ))
    }
}

/// An `AF_BRIDGE` message for `port` carrying one VLAN entry, applied by
/// the port's master (the bridge).
fn vlan_message(port: u32, info: BridgeVlanInfo) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.interface_family = AddressFamily::Bridge;
    m.header.index = port;
    m.attributes.push(LinkAttribute::AfSpecBridge(vec![
        AfSpecBridge::Flags(BridgeFlag::Controller),
        AfSpecBridge::VlanInfo(info),
    ]));
    m
}

/// NEWLINK on an existing bridge changing its `vlan_filtering` option.
fn vlan_filtering_message(bridge: u32, on: bool) -> RouteNetlinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = bridge;
    m.attributes.push(LinkAttribute::LinkInfo(vec![
        nl::LinkInfo::Kind(InfoKind::Bridge),
        nl::LinkInfo::Data(InfoData::Bridge(vec![InfoBridge::VlanFiltering(on)])),
    ]));
    RouteNetlinkMessage::NewLink(m)
}

/// The VLAN entries of one `AF_BRIDGE` dump message.
fn vlans_of(m: &LinkMessage) -> Vec<BridgeVlan> {
    let mut out = Vec::new();
    for a in &m.attributes {
        if let LinkAttribute::AfSpecBridge(specs) = a {
            for s in specs {
                if let AfSpecBridge::VlanInfo(i) = s {
                    out.push(BridgeVlan {
                        vid: i.vid,
                        pvid: i.flags.contains(BridgeVlanInfoFlags::Pvid),
                        untagged: i.flags.contains(BridgeVlanInfoFlags::Untagged),
                    });
                }
            }
        }
    }
    out
}

/// The link-info entries of a GETLINK answer.
fn link_infos(m: &LinkMessage) -> impl Iterator<Item = &nl::LinkInfo> {
    m.attributes
        .iter()
        .filter_map(|a| match a {
            LinkAttribute::LinkInfo(i) => Some(i),
            _ => None,
        })
        .flatten()
}

fn port_of(m: &LinkMessage) -> Option<BridgePort> {
    link_infos(m).find_map(|i| match i {
        nl::LinkInfo::PortData(InfoPortData::BridgePort(attrs)) => {
            let mut p = BridgePort::default();
            for a in attrs {
                match a {
                    InfoBridgePort::HairpinMode(v) => p.hairpin = *v,
                    InfoBridgePort::Isolated(v) => p.isolated = *v,
                    _ => {}
                }
            }
            Some(p)
        }
        _ => None,
    })
}

/// `None` when `m` is not a bridge; `Some(false)` also when the kernel
/// cannot filter VLANs (it then leaves the option out).
fn vlan_filtering_of(m: &LinkMessage) -> Option<bool> {
    link_infos(m).find_map(|i| match i {
        nl::LinkInfo::Data(InfoData::Bridge(attrs)) => Some(
            attrs
                .iter()
                .any(|a| matches!(a, InfoBridge::VlanFiltering(true))),
        ),
        _ => None,
    })
}

impl Handle {
    /// The full GETLINK answer for one link.
    fn link_message(&mut self, index: u32, op: &str) -> Result<LinkMessage> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        let replies = self.request(RouteNetlinkMessage::GetLink(m), 0, op)?;
        replies
            .into_iter()
            .find_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })
            .ok_or_else(|| Error::not_found(self.op(op), "the kernel sent no link"))
    }

    /// Turn VLAN filtering of a bridge on or off.
    pub fn set_vlan_filtering(&mut self, bridge: u32, on: bool) -> Result<()> {
        let op = format!(
            "setting vlan_filtering of bridge {bridge} to {}",
            u8::from(on)
        );
        self.request(vlan_filtering_message(bridge, on), 0, op)
            .map(|_| ())
    }

    /// Whether a bridge filters by VLAN; an error when `bridge` is not a bridge.
    pub fn vlan_filtering(&mut self, bridge: u32) -> Result<bool> {
        let op = format!("reading vlan_filtering of bridge {bridge}");
        let m = self.link_message(bridge, &op)?;
        vlan_filtering_of(&m).ok_or_else(|| Error::not_found(self.op(&op), "not a bridge"))
    }

    /// The bridge-port settings of `port`; `None` when it is not a bridge port.
    pub fn bridge_port(&mut self, port: u32) -> Result<Option<BridgePort>> {
        let op = format!("reading bridge port settings of link {port}");
        let m = self.link_message(port, &op)?;
        Ok(port_of(&m))
    }

    /// Add (or update) a VLAN on a bridge port.
    pub fn add_bridge_vlan(&mut self, port: u32, vlan: BridgeVlan) -> Result<()> {
        let op = format!("adding VLAN {} to bridge port {port}", vlan.vid);
        check_vid(&self.op(&op), vlan.vid)?;
        let msg = RouteNetlinkMessage::SetLink(vlan_message(port, vlan.info()));
        self.request(msg, 0, op).map(|_| ())
    }

    /// Remove a VLAN from a bridge port.
    pub fn del_bridge_vlan(&mut self, port: u32, vid: u16) -> Result<()> {
        let op = format!("removing VLAN {vid} from bridge port {port}");
        check_vid(&self.op(&op), vid)?;
        let info = BridgeVlanInfo {
            flags: BridgeVlanInfoFlags::empty(),
            vid,
        };
        // An AF_BRIDGE DELLINK removes the VLAN entry, never the link.
        let msg = RouteNetlinkMessage::DelLink(vlan_message(port, info));
        self.request(msg, 0, op).map(|_| ())
    }

    /// The VLANs of a bridge port (empty when VLANs are not configured).
    pub fn bridge_vlans(&mut self, port: u32) -> Result<Vec<BridgeVlan>> {
        let mut m = LinkMessage::default();
        m.header.interface_family = AddressFamily::Bridge;
        m.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::Brvlan]));
        let all = self.dump(RouteNetlinkMessage::GetLink(m), "listing bridge VLANs")?;
        Ok(all
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) if l.header.index == port => Some(vlans_of(l)),
                _ => None,
            })
            .flatten()
            .collect())
    }
}

impl Batch {
    pub fn set_vlan_filtering(&mut self, bridge: u32, on: bool) -> &mut Batch {
        let op = format!(
            "setting vlan_filtering of bridge {bridge} to {}",
            u8::from(on)
        );
        self.push(vlan_filtering_message(bridge, on), 0, op)
    }

    pub fn add_bridge_vlan(&mut self, port: u32, vlan: BridgeVlan) -> &mut Batch {
        let op = format!("adding VLAN {} to bridge port {port}", vlan.vid);
        if let Err(e) = check_vid(&op, vlan.vid) {
            return self.invalid(e);
        }
        let msg = RouteNetlinkMessage::SetLink(vlan_message(port, vlan.info()));
        self.push(msg, 0, op)
    }

    pub fn del_bridge_vlan(&mut self, port: u32, vid: u16) -> &mut Batch {
        let op = format!("removing VLAN {vid} from bridge port {port}");
        if let Err(e) = check_vid(&op, vid) {
            return self.invalid(e);
        }
        let info = BridgeVlanInfo {
            flags: BridgeVlanInfoFlags::empty(),
            vid,
        };
        self.push(
            RouteNetlinkMessage::DelLink(vlan_message(port, info)),
            0,
            op,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{Emitable, Parseable};

    fn round_trip(m: &LinkMessage) -> LinkMessage {
        let mut buf = vec![0; m.buffer_len()];
        m.emit(&mut buf);
        <LinkMessage as Parseable<[u8]>>::parse(&buf[..]).unwrap()
    }

    #[test]
    fn vlan_requests_are_af_bridge_and_read_back() {
        let m = vlan_message(7, BridgeVlan::native(100).info());
        assert_eq!(m.header.interface_family, AddressFamily::Bridge);
        assert_eq!(m.header.index, 7);
        let back = round_trip(&m);
        assert_eq!(back, m);
        assert_eq!(vlans_of(&back), vec![BridgeVlan::native(100)]);
        let trunk = vlan_message(7, BridgeVlan::tagged(200).info());
        assert_eq!(vlans_of(&round_trip(&trunk)), vec![BridgeVlan::tagged(200)]);
    }

    #[test]
    fn vlan_ids_outside_the_range_are_refused() {
        assert!(check_vid("x", 0).unwrap_err().is_invalid());
        assert!(check_vid("x", 4095).is_err());
        assert!(check_vid("x", 1).is_ok() && check_vid("x", 4094).is_ok());
        let mut b = Batch::new();
        b.add_bridge_vlan(3, BridgeVlan::tagged(5000));
        assert!(b.is_empty(), "an invalid request is never queued");
    }

    #[test]
    fn bridge_and_port_settings_are_read_from_link_info() {
        let RouteNetlinkMessage::NewLink(m) = vlan_filtering_message(4, true) else {
            panic!("vlan_filtering goes through NEWLINK");
        };
        assert_eq!(vlan_filtering_of(&round_trip(&m)), Some(true));
        assert_eq!(port_of(&m), None);

        let mut port = LinkMessage::default();
        port.attributes.push(LinkAttribute::LinkInfo(vec![
            nl::LinkInfo::PortKind(nl::InfoPortKind::Bridge),
            nl::LinkInfo::PortData(InfoPortData::BridgePort(vec![
                InfoBridgePort::HairpinMode(true),
                InfoBridgePort::Isolated(false),
            ])),
        ]));
        assert_eq!(
            port_of(&round_trip(&port)),
            Some(BridgePort {
                hairpin: true,
                isolated: false
            })
        );
        assert_eq!(vlan_filtering_of(&port), None);
    }
}
