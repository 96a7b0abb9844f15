//! The veth pair of bridge and ptp: the container end is created directly
//! in the container's namespace under `CNI_IFNAME`, the host end stays in
//! the plugin's namespace under a random `veth` name.

use cni::{code, Error, Result};
use netlink::{sysctl, Handle, LinkInfo, Mac, Netns, NewLink};

/// How many random host-side names to try before giving up.
const NAME_TRIES: usize = 10;

/// Both ends of a new veth pair, as the kernel reports them.
#[derive(Debug, Clone)]
pub struct Veth {
    /// In the plugin's (host) namespace, still down.
    pub host: LinkInfo,
    /// In the container's namespace, still down.
    pub container: LinkInfo,
}

/// What the pair should look like.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// MTU of both ends; kernel default when unset.
    pub mtu: Option<u32>,
    /// MAC of the container end; random when unset.
    pub mac: Option<Mac>,
    /// Attach the host end to this bridge at creation.
    pub master: Option<u32>,
}

/// The `mtu` key: 0 means the kernel's default; anything else must be a
/// size the kernel accepts for Ethernet-like links.
pub fn mtu(value: u32) -> Result<Option<u32>> {
    match value {
        0 => Ok(None),
        68..=65535 => Ok(Some(value)),
        _ => Err(Error::invalid_config(format!(
            "invalid \"mtu\" {value}: it must be 68-65535 (or 0 for the default)"
        ))),
    }
}

/// `veth` + 4 random bytes in hex, like the reference (`veth1a2b3c4d`).
pub fn random_host_name() -> Result<String> {
    let mut bytes = [0u8; 4];
    // SAFETY: the buffer is valid for its length.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        return Err(Error::failed(format!(
            "picking a random veth name: {}",
            std::io::Error::last_os_error()
        )));
    }
    let [a, b, c, d] = bytes;
    Ok(format!("veth{a:02x}{b:02x}{c:02x}{d:02x}"))
}

/// Fail clearly when `ifname` is already taken in the container, before
/// anything is created.
pub fn ensure_ifname_free(container: &mut Handle, ns: &Netns, ifname: &str) -> Result<()> {
    match container.find_link(ifname)? {
        Some(_) => Err(Error::new(
            code::OPERATION_FAILED,
            format!(
                "interface {ifname:?} already exists in netns {}: \
                 pick another CNI_IFNAME or remove it first",
                ns.path()
            ),
        )),
        None => Ok(()),
    }
}

/// Create the pair: container end `ifname` in `ns`, host end (on
/// `opts.master`) here, both down. The caller registers its removal for
/// rollback and brings the ends up: the container end first, or else the
/// host end after [`settle_host_end`].
/// A taken `ifname` fails like [`ensure_ifname_free`], which plugins call
/// first to fail before they change anything.
pub fn create(
    host: &mut Handle,
    container: &mut Handle,
    ns: &Netns,
    ifname: &str,
    opts: &Options,
) -> Result<Veth> {
    let mut last = None;
    for _ in 0..NAME_TRIES {
        let name = random_host_name()?;
        let mut new = NewLink::veth(&name, ifname, Some(ns));
        if let netlink::LinkKind::Veth { peer_mac, .. } = &mut new.kind {
            *peer_mac = opts.mac;
        }
        new.mtu = opts.mtu;
        new.master = opts.master;
        match host.add_link(&new) {
            Ok(created) => {
                // A routed host end (ptp): we own its routes, so no router
                // advertisements on it. A bridge port needs nothing: the
                // bridge takes every frame it receives, so its own IPv6
                // never sees one, and each /proc/sys/net path costs more
                // the more namespaces the node has.
                if opts.master.is_none() {
                    let _ = sysctl::set(&format!("net/ipv6/conf/{name}/accept_ra"), "0");
                }
                // Reading the container end also settles it (see `settle_host_end`).
                let container_link = container.link_by_name(ifname)?;
                return Ok(Veth {
                    host: created,
                    container: container_link,
                });
            }
            // Either name may be taken: ours is random, so try another,
            // unless the container's name appeared meanwhile.
            Err(e) if e.is_exists() => {
                ensure_ifname_free(container, ns, ifname)?;
                last = Some(e);
            }
            Err(e) => {
                return Err(Error::from(e).context(format!(
                    "creating the veth pair for {ifname:?} in {}",
                    ns.path()
                )))
            }
        }
    }
    Err(Error::failed(format!(
        "no free host-side veth name after {NAME_TRIES} tries: {}",
        last.map(|e| e.to_string()).unwrap_or_default()
    )))
}

/// Before the host end comes up ahead of the container end: have the
/// kernel handle its creation event now. A new veth end reports "no
/// carrier" to the kernel's link watcher; handled while the end is up,
/// that costs an RCU grace period (about 0.5 ms, holding RTNL), while it
/// is down, nothing. Reading a link handles its pending event, so the
/// container end (read by [`create`]) is settled already; an end that
/// comes up second gets its carrier at once and needs nothing either.
pub fn settle_host_end(host: &mut Handle, pair: &Veth) -> Result<()> {
    host.link_by_index(pair.host.index)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mtu_zero_is_the_default() {
        assert_eq!(mtu(0).unwrap(), None);
        assert_eq!(mtu(1450).unwrap(), Some(1450));
        assert!(mtu(67).is_err() && mtu(65536).is_err());
    }

    #[test]
    fn host_names_look_like_the_reference() {
        let a = random_host_name().unwrap();
        let b = random_host_name().unwrap();
        assert_eq!(a.len(), 12);
        assert!(a.starts_with("veth") && a[4..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert!(netlink::check_name(&a).is_ok());
    }
}
