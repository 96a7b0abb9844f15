//! Links: look up, list, create (veth, bridge, macvlan, ipvlan, vlan,
//! dummy), change (up/down, MTU, MAC, master, alias, name, namespace,
//! promisc, allmulti, txqueuelen, bridge-port hairpin), delete.

use crate::error::{Error, Result};
use crate::netns::Netns;
use crate::socket::{Batch, Handle};
use crate::wire::{NLM_F_CREATE, NLM_F_ECHO, NLM_F_EXCL};
use netlink_packet_core::DefaultNla;
use netlink_packet_route::link::{
    self as nl, AfSpecInet, AfSpecInet6, AfSpecUnspec, InfoBridgePort, InfoData, InfoIpVlan,
    InfoKind, InfoMacVlan, InfoPortData, InfoPortKind, InfoVeth, InfoVlan, IpVlanMode,
    LinkAttribute, LinkExtentMask, LinkFlags, LinkHeader, LinkMessage, MacVlanMode,
};
use netlink_packet_route::RouteNetlinkMessage;
use std::fmt;
use std::os::fd::{AsFd, AsRawFd};
use std::str::FromStr;

/// An Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for Mac {
    type Err = String;

    /// `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff`, any case.
    fn from_str(s: &str) -> std::result::Result<Mac, String> {
        let bad =
            || format!("invalid MAC address {s:?}: expected six hex pairs like 0a:58:0a:00:00:01");
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in out.iter_mut() {
            let p = parts.next().ok_or_else(bad)?;
            if p.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Mac(out))
    }
}

/// What the kernel says about one link.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    /// The hardware address when it is a 6-byte one.
    pub mac: Option<Mac>,
    pub mtu: u32,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Has carrier (`IFF_LOWER_UP`).
    pub lower_up: bool,
    pub promisc: bool,
    pub allmulti: bool,
    pub txqlen: u32,
    /// `veth`, `bridge`, `macvlan`, ...; `None` for plain devices such as `lo`.
    pub kind: Option<String>,
    /// Index of the bridge (or other master) this link is attached to.
    pub master: Option<u32>,
    pub alias: Option<String>,
    /// `IFLA_LINK`: the peer of a veth, the lower device of a macvlan/vlan
    /// (an index in the namespace named by `link_netnsid`, if that is set).
    pub parent_index: Option<u32>,
    /// The namespace id (as seen from here) where `parent_index` lives.
    pub link_netnsid: Option<i32>,
    /// `net.ipv6.conf.<link>.accept_ra`, when the kernel reports IPv6 settings.
    pub ipv6_accept_ra: Option<i32>,
}

impl LinkInfo {
    fn from_message(m: &LinkMessage) -> LinkInfo {
        let mut info = LinkInfo {
            index: m.header.index,
            up: m.header.flags.contains(LinkFlags::Up),
            lower_up: m.header.flags.contains(LinkFlags::LowerUp),
            promisc: m.header.flags.contains(LinkFlags::Promisc),
            allmulti: m.header.flags.contains(LinkFlags::Allmulti),
            ..LinkInfo::default()
        };
        for a in &m.attributes {
            match a {
                LinkAttribute::IfName(n) => info.name = n.clone(),
                LinkAttribute::Address(a) => {
                    info.mac = <[u8; 6]>::try_from(a.as_slice()).ok().map(Mac)
                }
                LinkAttribute::Mtu(v) => info.mtu = *v,
                LinkAttribute::TxQueueLen(v) => info.txqlen = *v,
                LinkAttribute::Controller(v) if *v != 0 => info.master = Some(*v),
                LinkAttribute::IfAlias(s) => info.alias = Some(s.clone()),
                LinkAttribute::Link(v) if *v != 0 => info.parent_index = Some(*v),
                LinkAttribute::LinkNetNsId(v) => info.link_netnsid = Some(*v),
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        if let nl::LinkInfo::Kind(k) = i {
                            info.kind = Some(k.to_string());
                        }
                    }
                }
                LinkAttribute::AfSpecUnspec(specs) => {
                    for spec in specs {
                        if let AfSpecUnspec::Inet6(inet6) = spec {
                            for i in inet6 {
                                if let AfSpecInet6::DevConf(conf) = i {
                                    info.ipv6_accept_ra = Some(conf.accept_ra);
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        info
    }
}

/// macvlan modes (`mode` in the macvlan plugin's config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacvlanMode {
    Bridge,
    Private,
    Vepa,
    Passthru,
}

/// ipvlan modes (`mode` in the ipvlan plugin's config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpvlanMode {
    L2,
    L3,
    L3s,
}

/// The type of a new link and its type-specific settings.
#[derive(Debug, Clone, Copy)]
pub enum LinkKind<'a> {
    /// A veth pair; the peer may be placed directly in another namespace.
    Veth {
        peer_name: &'a str,
        peer_netns: Option<&'a Netns>,
        peer_mac: Option<Mac>,
    },
    Bridge,
    Macvlan {
        parent: u32,
        mode: MacvlanMode,
    },
    Ipvlan {
        parent: u32,
        mode: IpvlanMode,
    },
    Vlan {
        parent: u32,
        id: u16,
    },
    Dummy,
}

impl LinkKind<'_> {
    fn name(&self) -> &'static str {
        match self {
            LinkKind::Veth { .. } => "veth",
            LinkKind::Bridge => "bridge",
            LinkKind::Macvlan { .. } => "macvlan",
            LinkKind::Ipvlan { .. } => "ipvlan",
            LinkKind::Vlan { .. } => "vlan",
            LinkKind::Dummy => "dummy",
        }
    }
}

/// A link to create with [`Handle::add_link`].
#[derive(Debug, Clone, Copy)]
pub struct NewLink<'a> {
    pub name: &'a str,
    pub kind: LinkKind<'a>,
    pub mtu: Option<u32>,
    pub mac: Option<Mac>,
    /// Create the link directly in this namespace instead of the handle's.
    pub netns: Option<&'a Netns>,
    /// Attach to this master (bridge) index on creation.
    pub master: Option<u32>,
    /// Bring the link up on creation.
    pub up: bool,
}

impl<'a> NewLink<'a> {
    pub fn new(name: &'a str, kind: LinkKind<'a>) -> NewLink<'a> {
        NewLink {
            name,
            kind,
            mtu: None,
            mac: None,
            netns: None,
            master: None,
            up: false,
        }
    }

    /// A veth pair `name` (here) and `peer_name` (in `peer_netns` or here).
    pub fn veth(name: &'a str, peer_name: &'a str, peer_netns: Option<&'a Netns>) -> NewLink<'a> {
        NewLink::new(
            name,
            LinkKind::Veth {
                peer_name,
                peer_netns,
                peer_mac: None,
            },
        )
    }

    /// The NEWLINK request; `op` names the operation for errors.
    fn message(&self, op: &str) -> Result<LinkMessage> {
        check_name(self.name).map_err(|e| Error::invalid(op, e))?;
        let mut m = LinkMessage::default();
        m.attributes
            .push(LinkAttribute::IfName(self.name.to_string()));
        if self.up {
            m.header.flags = LinkFlags::Up;
            m.header.change_mask = LinkFlags::Up;
        }
        if let Some(mtu) = self.mtu {
            m.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(mac) = self.mac {
            m.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
        }
        if let Some(ns) = self.netns {
            m.attributes
                .push(LinkAttribute::NetNsFd(ns.as_fd().as_raw_fd()));
        }
        if let Some(master) = self.master {
            m.attributes.push(LinkAttribute::Controller(master));
        }
        let (kind, data, parent) = match self.kind {
            LinkKind::Veth {
                peer_name,
                peer_netns,
                peer_mac,
            } => {
                check_name(peer_name).map_err(|e| Error::invalid(op, format!("peer: {e}")))?;
                let mut peer = LinkMessage::default();
                peer.attributes
                    .push(LinkAttribute::IfName(peer_name.to_string()));
                if let Some(mtu) = self.mtu {
                    peer.attributes.push(LinkAttribute::Mtu(mtu));
                }
                if let Some(mac) = peer_mac {
                    peer.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
                }
                if let Some(ns) = peer_netns {
                    peer.attributes
                        .push(LinkAttribute::NetNsFd(ns.as_fd().as_raw_fd()));
                }
                // One queue each way, the count a veth uses unless told
                // otherwise. Left unset, the kernel allocates one per CPU and
                // then cuts the active count to one, which waits for an RCU
                // grace period per end (~0.7 ms of an ADD here).
                for attrs in [&mut peer.attributes, &mut m.attributes] {
                    attrs.push(LinkAttribute::NumTxQueues(1));
                    attrs.push(LinkAttribute::NumRxQueues(1));
                }
                (
                    InfoKind::Veth,
                    Some(InfoData::Veth(InfoVeth::Peer(peer))),
                    None,
                )
            }
            LinkKind::Bridge => (InfoKind::Bridge, None, None),
            LinkKind::Dummy => (InfoKind::Dummy, None, None),
            LinkKind::Macvlan { parent, mode } => {
                let mode = match mode {
                    MacvlanMode::Bridge => MacVlanMode::Bridge,
                    MacvlanMode::Private => MacVlanMode::Private,
                    MacvlanMode::Vepa => MacVlanMode::Vepa,
                    MacvlanMode::Passthru => MacVlanMode::Passthrough,
                };
                let data = InfoData::MacVlan(vec![InfoMacVlan::Mode(mode)]);
                (InfoKind::MacVlan, Some(data), Some(parent))
            }
            LinkKind::Ipvlan { parent, mode } => {
                let mode = match mode {
                    IpvlanMode::L2 => IpVlanMode::L2,
                    IpvlanMode::L3 => IpVlanMode::L3,
                    IpvlanMode::L3s => IpVlanMode::L3S,
                };
                let data = InfoData::IpVlan(vec![InfoIpVlan::Mode(mode)]);
                (InfoKind::IpVlan, Some(data), Some(parent))
            }
            LinkKind::Vlan { parent, id } => {
                let data = InfoData::Vlan(vec![InfoVlan::Id(id)]);
                (InfoKind::Vlan, Some(data), Some(parent))
            }
        };
        if let Some(parent) = parent {
            m.attributes.push(LinkAttribute::Link(parent));
        }
        let mut info = vec![nl::LinkInfo::Kind(kind)];
        info.extend(data.map(nl::LinkInfo::Data));
        m.attributes.push(LinkAttribute::LinkInfo(info));
        Ok(m)
    }
}

/// `prefix` plus random hex up to the 15-byte limit (`veth` gives
/// `veth1a2b3c4d5e6`): a host-side name unlikely to be taken.
pub fn random_name(prefix: &str) -> Result<String> {
    let mut bytes = [0u8; 8];
    // SAFETY: the buffer is valid for its length.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        return Err(Error::os(
            "picking a random interface name",
            std::io::Error::last_os_error(),
        ));
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let keep = 15usize.saturating_sub(prefix.len());
    let name = format!("{prefix}{}", hex.get(..keep).unwrap_or(&hex));
    check_name(&name).map_err(|e| Error::invalid("picking a random interface name", e))?;
    Ok(name)
}

/// Kernel rules for interface names (`dev_valid_name`).
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        Err("interface name is empty".into())
    } else if name.len() > 15 {
        Err(format!("interface name {name:?} is longer than 15 bytes"))
    } else if name == "." || name == ".." {
        Err(format!("interface name {name:?} is not allowed"))
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        Err(format!(
            "interface name {name:?} contains '/', ':' or whitespace"
        ))
    } else {
        Ok(())
    }
}

fn with_index(index: u32) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header = LinkHeader {
        index,
        ..LinkHeader::default()
    };
    m
}

fn skip_stats() -> LinkAttribute {
    LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats])
}

fn first_link(replies: Vec<RouteNetlinkMessage>) -> Option<LinkInfo> {
    replies.iter().find_map(|m| match m {
        RouteNetlinkMessage::NewLink(l) => Some(LinkInfo::from_message(l)),
        _ => None,
    })
}

fn set_flag(m: &mut LinkMessage, flag: LinkFlags, on: bool) {
    if on {
        m.header.flags = flag;
    }
    m.header.change_mask = flag;
}

/// Bridge-port options go through NEWLINK on the existing port ("bridge_slave").
fn port_option(mut m: LinkMessage, option: InfoBridgePort) -> RouteNetlinkMessage {
    m.attributes.push(LinkAttribute::LinkInfo(vec![
        nl::LinkInfo::PortKind(InfoPortKind::Bridge),
        nl::LinkInfo::PortData(InfoPortData::BridgePort(vec![option])),
    ]));
    RouteNetlinkMessage::NewLink(m)
}

/// The request that makes one [`LinkChange`].
fn change_message(index: u32, change: &LinkChange) -> RouteNetlinkMessage {
    let mut m = with_index(index);
    match change {
        LinkChange::Up => set_flag(&mut m, LinkFlags::Up, true),
        LinkChange::Down => set_flag(&mut m, LinkFlags::Up, false),
        LinkChange::Promisc(on) => set_flag(&mut m, LinkFlags::Promisc, *on),
        LinkChange::AllMulti(on) => set_flag(&mut m, LinkFlags::Allmulti, *on),
        LinkChange::TxQueueLen(v) => m.attributes.push(LinkAttribute::TxQueueLen(*v)),
        LinkChange::Hairpin(on) => return port_option(m, InfoBridgePort::HairpinMode(*on)),
        LinkChange::Isolated(on) => return port_option(m, InfoBridgePort::Isolated(*on)),
        LinkChange::Mtu(v) => m.attributes.push(LinkAttribute::Mtu(*v)),
        LinkChange::Mac(mac) => m.attributes.push(LinkAttribute::Address(mac.0.to_vec())),
        LinkChange::Master(v) => m.attributes.push(LinkAttribute::Controller(v.unwrap_or(0))),
        LinkChange::Alias(s) => m.attributes.push(LinkAttribute::IfAlias(s.clone())),
        LinkChange::Name(s) => m.attributes.push(LinkAttribute::IfName(s.clone())),
        LinkChange::NetnsFd(fd) => m.attributes.push(LinkAttribute::NetNsFd(*fd)),
        LinkChange::ArpNotify(on) => m.attributes.push(ipv4_conf(IPV4_DEVCONF_ARP_NOTIFY, *on)),
    }
    RouteNetlinkMessage::SetLink(m)
}

/// `net.ipv4.conf.<link>.arp_notify`'s index in the kernel's IPv4 devconf.
const IPV4_DEVCONF_ARP_NOTIFY: u16 = 22;

/// One IPv4 devconf value (`IFLA_AF_SPEC` > `AF_INET` > `IFLA_INET_CONF` >
/// key), the netlink twin of a write to `/proc/sys/net/ipv4/conf/<link>/`.
/// Written by hand: the crate's request form leaves out zero values.
fn ipv4_conf(key: u16, on: bool) -> LinkAttribute {
    const IFLA_INET_CONF: u16 = 1;
    const NLA_F_NESTED: u16 = 0x8000;
    let mut entry = Vec::with_capacity(8);
    entry.extend_from_slice(&8u16.to_ne_bytes());
    entry.extend_from_slice(&key.to_ne_bytes());
    entry.extend_from_slice(&u32::from(on).to_ne_bytes());
    let conf = DefaultNla::new(IFLA_INET_CONF | NLA_F_NESTED, entry);
    LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(vec![AfSpecInet::Other(conf)])])
}

/// One change to an existing link.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LinkChange {
    Up,
    Down,
    Promisc(bool),
    AllMulti(bool),
    TxQueueLen(u32),
    /// Hairpin mode of a bridge port: frames may go back out where they came in.
    Hairpin(bool),
    /// An isolated bridge port talks only to ports that are not isolated.
    Isolated(bool),
    Mtu(u32),
    Mac(Mac),
    /// `None` detaches from the current master.
    Master(Option<u32>),
    Alias(String),
    Name(String),
    NetnsFd(i32),
    /// Gratuitous ARP when the link comes up or its address changes.
    ArpNotify(bool),
}

fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

impl LinkChange {
    fn op(&self, index: u32) -> String {
        match self {
            LinkChange::Up => format!("setting link {index} up"),
            LinkChange::Down => format!("setting link {index} down"),
            LinkChange::Promisc(on) => format!("setting promisc {} on link {index}", on_off(*on)),
            LinkChange::AllMulti(on) => {
                format!("setting allmulticast {} on link {index}", on_off(*on))
            }
            LinkChange::TxQueueLen(v) => format!("setting txqueuelen of link {index} to {v}"),
            LinkChange::Hairpin(on) => {
                format!(
                    "setting hairpin mode {} on bridge port {index}",
                    on_off(*on)
                )
            }
            LinkChange::Isolated(on) => {
                format!("setting isolation {} on bridge port {index}", on_off(*on))
            }
            LinkChange::Mtu(v) => format!("setting MTU of link {index} to {v}"),
            LinkChange::Mac(m) => format!("setting MAC of link {index} to {m}"),
            LinkChange::Master(Some(m)) => format!("attaching link {index} to master {m}"),
            LinkChange::Master(None) => format!("detaching link {index} from its master"),
            LinkChange::Alias(s) => format!("setting alias of link {index} to {s:?}"),
            LinkChange::Name(s) => format!("renaming link {index} to {s:?}"),
            LinkChange::NetnsFd(_) => format!("moving link {index} to another netns"),
            LinkChange::ArpNotify(on) => {
                format!("setting arp_notify {} on link {index}", on_off(*on))
            }
        }
    }
}

impl Handle {
    /// The link called `name`; an error for which [`Error::is_not_found`]
    /// holds when there is none.
    pub fn link_by_name(&mut self, name: &str) -> Result<LinkInfo> {
        let op = format!("looking up link {name:?}");
        check_name(name).map_err(|e| Error::invalid(self.op(&op), e))?;
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        m.attributes.push(skip_stats());
        let replies = self.request(RouteNetlinkMessage::GetLink(m), 0, &op)?;
        first_link(replies).ok_or_else(|| Error::not_found(self.op(&op), "the kernel sent no link"))
    }

    /// The link with this index.
    pub fn link_by_index(&mut self, index: u32) -> Result<LinkInfo> {
        let op = format!("looking up link {index}");
        let mut m = with_index(index);
        m.attributes.push(skip_stats());
        let replies = self.request(RouteNetlinkMessage::GetLink(m), 0, &op)?;
        first_link(replies).ok_or_else(|| Error::not_found(self.op(&op), "the kernel sent no link"))
    }

    /// `Some(link)` when a link called `name` exists, `None` when not.
    pub fn find_link(&mut self, name: &str) -> Result<Option<LinkInfo>> {
        match self.link_by_name(name) {
            Ok(l) => Ok(Some(l)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every link in the namespace.
    pub fn links(&mut self) -> Result<Vec<LinkInfo>> {
        let mut m = LinkMessage::default();
        m.attributes.push(skip_stats());
        let all = self.dump(RouteNetlinkMessage::GetLink(m), "listing links")?;
        Ok(all
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(LinkInfo::from_message(l)),
                _ => None,
            })
            .collect())
    }

    /// Create a link; fails with [`Error::is_exists`] when the name is taken.
    ///
    /// Returns the new link as the kernel reports it. When `new.netns` places
    /// it in another namespace it is looked up there by name.
    pub fn add_link(&mut self, new: &NewLink<'_>) -> Result<LinkInfo> {
        let op = format!("creating {} {:?}", new.kind.name(), new.name);
        let msg = new.message(&self.op(&op))?;
        // The echo would be delivered in the link's namespace, so ask for it
        // only when that is ours.
        let echo = if new.netns.is_none() { NLM_F_ECHO } else { 0 };
        let replies = self.request(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL | echo,
            &op,
        )?;
        if let Some(link) = first_link(replies).filter(|l| l.name == new.name) {
            return Ok(link);
        }
        match new.netns {
            Some(ns) => ns.handle()?.link_by_name(new.name),
            None => self.link_by_name(new.name),
        }
    }

    fn change(&mut self, index: u32, change: LinkChange) -> Result<()> {
        let op = change.op(index);
        self.request(change_message(index, &change), 0, op)
            .map(|_| ())
    }

    pub fn set_up(&mut self, index: u32) -> Result<()> {
        self.change(index, LinkChange::Up)
    }

    pub fn set_down(&mut self, index: u32) -> Result<()> {
        self.change(index, LinkChange::Down)
    }

    pub fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<()> {
        self.change(index, LinkChange::Mtu(mtu))
    }

    pub fn set_promisc(&mut self, index: u32, on: bool) -> Result<()> {
        self.change(index, LinkChange::Promisc(on))
    }

    pub fn set_allmulti(&mut self, index: u32, on: bool) -> Result<()> {
        self.change(index, LinkChange::AllMulti(on))
    }

    pub fn set_txqlen(&mut self, index: u32, len: u32) -> Result<()> {
        self.change(index, LinkChange::TxQueueLen(len))
    }

    /// Hairpin mode of a link attached to a bridge.
    pub fn set_hairpin(&mut self, index: u32, on: bool) -> Result<()> {
        self.change(index, LinkChange::Hairpin(on))
    }

    /// Port isolation of a link attached to a bridge.
    pub fn set_isolated(&mut self, index: u32, on: bool) -> Result<()> {
        self.change(index, LinkChange::Isolated(on))
    }

    pub fn set_mac(&mut self, index: u32, mac: Mac) -> Result<()> {
        self.change(index, LinkChange::Mac(mac))
    }

    /// Attach to a bridge (or other master), or detach with `None`.
    pub fn set_master(&mut self, index: u32, master: Option<u32>) -> Result<()> {
        self.change(index, LinkChange::Master(master))
    }

    pub fn set_alias(&mut self, index: u32, alias: &str) -> Result<()> {
        self.change(index, LinkChange::Alias(alias.to_string()))
    }

    /// Rename a link (the kernel refuses while it is up).
    pub fn rename(&mut self, index: u32, name: &str) -> Result<()> {
        check_name(name)
            .map_err(|e| Error::invalid(self.op(format!("renaming link {index}")), e))?;
        self.change(index, LinkChange::Name(name.to_string()))
    }

    /// Move a link into another namespace (it goes down on the way).
    pub fn move_to_netns(&mut self, index: u32, ns: &Netns) -> Result<()> {
        let op = format!("moving link {index} to netns {}", ns.path());
        let msg = change_message(index, &LinkChange::NetnsFd(ns.as_fd().as_raw_fd()));
        self.request(msg, 0, op).map(|_| ())
    }

    /// Delete a link (a veth takes its peer with it).
    pub fn delete_link(&mut self, index: u32) -> Result<()> {
        let op = format!("deleting link {index}");
        self.request(RouteNetlinkMessage::DelLink(with_index(index)), 0, op)
            .map(|_| ())
    }

    /// Delete the link called `name` if it exists; `false` when there was none.
    pub fn delete_link_by_name(&mut self, name: &str) -> Result<bool> {
        match self.find_link(name)? {
            None => Ok(false),
            Some(l) => match self.delete_link(l.index) {
                Ok(()) => Ok(true),
                // Gone in between: the outcome the caller wanted.
                Err(e) if e.is_not_found() => Ok(false),
                Err(e) => Err(e),
            },
        }
    }
}

/// Link changes queued in a [`Batch`], sent together by [`Batch::commit`].
impl Batch {
    fn link_change(&mut self, index: u32, change: LinkChange) -> &mut Batch {
        let op = change.op(index);
        self.push(change_message(index, &change), 0, op)
    }

    pub fn set_up(&mut self, index: u32) -> &mut Batch {
        self.link_change(index, LinkChange::Up)
    }

    pub fn set_down(&mut self, index: u32) -> &mut Batch {
        self.link_change(index, LinkChange::Down)
    }

    pub fn set_mtu(&mut self, index: u32, mtu: u32) -> &mut Batch {
        self.link_change(index, LinkChange::Mtu(mtu))
    }

    pub fn set_hairpin(&mut self, index: u32, on: bool) -> &mut Batch {
        self.link_change(index, LinkChange::Hairpin(on))
    }

    pub fn set_isolated(&mut self, index: u32, on: bool) -> &mut Batch {
        self.link_change(index, LinkChange::Isolated(on))
    }

    pub fn set_promisc(&mut self, index: u32, on: bool) -> &mut Batch {
        self.link_change(index, LinkChange::Promisc(on))
    }

    pub fn set_mac(&mut self, index: u32, mac: Mac) -> &mut Batch {
        self.link_change(index, LinkChange::Mac(mac))
    }

    pub fn set_master(&mut self, index: u32, master: Option<u32>) -> &mut Batch {
        self.link_change(index, LinkChange::Master(master))
    }

    pub fn set_alias(&mut self, index: u32, alias: &str) -> &mut Batch {
        self.link_change(index, LinkChange::Alias(alias.to_string()))
    }

    /// `net.ipv4.conf.<link>.arp_notify`, without a path lookup in
    /// `/proc/sys/net` (which compares one entry per network namespace on
    /// the node).
    pub fn set_arp_notify(&mut self, index: u32, on: bool) -> &mut Batch {
        self.link_change(index, LinkChange::ArpNotify(on))
    }

    pub fn delete_link(&mut self, index: u32) -> &mut Batch {
        self.push(
            RouteNetlinkMessage::DelLink(with_index(index)),
            0,
            format!("deleting link {index}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::Emitable;

    #[test]
    fn mac_round_trips_and_rejects_garbage() {
        let m: Mac = "0A:58:0a:00:00:01".parse().unwrap();
        assert_eq!(m, Mac([0x0a, 0x58, 0x0a, 0, 0, 1]));
        assert_eq!(m.to_string(), "0a:58:0a:00:00:01");
        assert_eq!("0a-58-0a-00-00-01".parse::<Mac>().unwrap(), m);
        for bad in [
            "",
            "0a:58:0a:00:00",
            "0a:58:0a:00:00:01:02",
            "0a:58:0a:00:00:1",
            "zz:58:0a:00:00:01",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
    }

    #[test]
    fn random_names_fit_and_differ() {
        let a = random_name("veth").unwrap();
        let b = random_name("veth").unwrap();
        assert_eq!(a.len(), 15);
        assert!(a.starts_with("veth") && a != b);
        assert!(random_name("a-very-long-prefix").is_err());
    }

    #[test]
    fn interface_names_follow_the_kernel() {
        assert!(check_name("eth0").is_ok());
        assert!(check_name("a234567890123456").is_err());
        for bad in ["", ".", "..", "a/b", "a:b", "a b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn veth_request_carries_the_peer_and_its_name() {
        let mut new = NewLink::veth("veth1", "eth0", None);
        new.mtu = Some(1400);
        let msg = new.message("x").unwrap();
        let mut buf = vec![0; msg.buffer_len()];
        msg.emit(&mut buf);
        let back = <LinkMessage as netlink_packet_core::Parseable<[u8]>>::parse(&buf[..]).unwrap();
        assert_eq!(back, msg);
        let infos = msg
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::LinkInfo(i) => Some(i.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(infos[0], nl::LinkInfo::Kind(InfoKind::Veth));
        let nl::LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))) = &infos[1] else {
            panic!("no peer: {infos:?}");
        };
        assert!(peer
            .attributes
            .contains(&LinkAttribute::IfName("eth0".into())));
        for attrs in [&peer.attributes, &msg.attributes] {
            assert!(attrs.contains(&LinkAttribute::NumTxQueues(1)));
            assert!(attrs.contains(&LinkAttribute::NumRxQueues(1)));
        }
        assert!(peer.attributes.contains(&LinkAttribute::Mtu(1400)));
        assert!(msg
            .attributes
            .contains(&LinkAttribute::IfName("veth1".into())));
    }

    #[test]
    fn arp_notify_is_one_nested_ipv4_devconf_entry() {
        let RouteNetlinkMessage::SetLink(msg) = change_message(7, &LinkChange::ArpNotify(true))
        else {
            panic!("not a SETLINK");
        };
        assert_eq!(msg.header.index, 7);
        let [LinkAttribute::AfSpecUnspec(spec)] = &msg.attributes[..] else {
            panic!("{:?}", msg.attributes);
        };
        let [AfSpecUnspec::Inet(inet)] = &spec[..] else {
            panic!("{spec:?}");
        };
        let [AfSpecInet::Other(conf)] = &inet[..] else {
            panic!("{inet:?}");
        };
        use netlink_packet_core::Nla;
        // IFLA_INET_CONF, nested: {len 8, IPV4_DEVCONF_ARP_NOTIFY (22), 1}.
        assert_eq!(conf.kind(), 1 | 0x8000);
        let mut value = vec![0; conf.value_len()];
        conf.emit_value(&mut value);
        let want: Vec<u8> = [8u16.to_ne_bytes(), 22u16.to_ne_bytes()]
            .concat()
            .into_iter()
            .chain(1u32.to_ne_bytes())
            .collect();
        assert_eq!(value, want);
    }

    #[test]
    fn bad_names_are_refused_before_the_kernel_sees_them() {
        let e = NewLink::veth("veth1", "a/b", None)
            .message("x")
            .unwrap_err();
        assert!(e.is_invalid());
        assert!(NewLink::new("", LinkKind::Bridge).message("x").is_err());
    }

    #[test]
    fn set_messages_say_exactly_one_thing() {
        let setlink = |c| match change_message(3, &c) {
            RouteNetlinkMessage::SetLink(m) => m,
            other => panic!("not a SETLINK: {other:?}"),
        };
        let up = setlink(LinkChange::Up);
        assert_eq!(up.header.index, 3);
        assert_eq!(up.header.flags, LinkFlags::Up);
        assert_eq!(up.header.change_mask, LinkFlags::Up);
        let down = setlink(LinkChange::Down);
        assert!(down.header.flags.is_empty());
        assert_eq!(down.header.change_mask, LinkFlags::Up);
        let nomaster = setlink(LinkChange::Master(None));
        assert_eq!(nomaster.attributes, vec![LinkAttribute::Controller(0)]);
        let promisc_off = setlink(LinkChange::Promisc(false));
        assert!(promisc_off.header.flags.is_empty());
        assert_eq!(promisc_off.header.change_mask, LinkFlags::Promisc);
        let RouteNetlinkMessage::NewLink(hairpin) = change_message(3, &LinkChange::Hairpin(true))
        else {
            panic!("hairpin goes through NEWLINK");
        };
        assert_eq!(hairpin.header.index, 3);
    }

    #[test]
    fn link_info_reads_the_attributes() {
        let mut ipv6_conf = netlink_packet_route::link::Inet6DevConf::default();
        ipv6_conf.accept_ra = 2;
        let mut m = with_index(7);
        m.header.flags = LinkFlags::Up | LinkFlags::LowerUp;
        m.attributes = vec![
            LinkAttribute::IfName("veth1".into()),
            LinkAttribute::Address(vec![2, 0, 0, 0, 0, 1]),
            LinkAttribute::Mtu(1500),
            LinkAttribute::Controller(4),
            LinkAttribute::Link(9),
            LinkAttribute::LinkNetNsId(0),
            LinkAttribute::LinkInfo(vec![nl::LinkInfo::Kind(InfoKind::Veth)]),
            LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(vec![AfSpecInet6::DevConf(
                ipv6_conf,
            )])]),
        ];
        let info = LinkInfo::from_message(&m);
        assert_eq!(
            info,
            LinkInfo {
                index: 7,
                name: "veth1".into(),
                mac: Some(Mac([2, 0, 0, 0, 0, 1])),
                mtu: 1500,
                up: true,
                lower_up: true,
                promisc: false,
                allmulti: false,
                txqlen: 0,
                kind: Some("veth".into()),
                master: Some(4),
                alias: None,
                parent_index: Some(9),
                link_netnsid: Some(0),
                ipv6_accept_ra: Some(2),
            }
        );
    }
}
