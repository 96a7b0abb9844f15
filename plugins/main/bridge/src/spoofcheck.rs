//! `macspoofchk`: frames from the container's port must carry the
//! container's MAC, everything else is dropped. Native nf_tables over
//! netlink (the `firewall` crate's nft layer) in the reference's layout,
//! so either implementation removes what the other made:
//!
//! ```text
//! table bridge nat {
//!     chain PREROUTING {
//!         type filter hook prerouting priority -300; policy accept;
//!         iifname "veth1a2b3c4d" jump cni-br-iface-<id>    comment "macspoofchk-<id>"
//!     }
//!     chain cni-br-iface-<id> { jump cni-br-iface-<id>-mac   comment "macspoofchk-<id>" }
//!     chain cni-br-iface-<id>-mac {
//!         ether saddr 0a:58:0a:01:00:05 return                comment "macspoofchk-<id>"
//!         drop                                                comment "macspoofchk-<id>"
//!     }
//! }
//! ```
//!
//! `<id>` is `<container ID>-<ifname>`. Everything acts on the calling
//! thread's (host) namespace.

use cni::{code, Attachment, Error, Result};
use firewall::nft::wire::{
    comment_udata, consts::*, ChainRepr, Data, Expr, Hook, RuleRepr, TableRepr,
};
use firewall::nft::{Batch, Socket};
use netlink::Mac;

const NFPROTO_BRIDGE: u8 = 7;
const TABLE: &str = "nat";
const PREROUTING: &str = "PREROUTING";
const NF_BR_PRE_ROUTING: u32 = 0;
const PRIORITY: i32 = -300;
const NFT_META_IIFNAME: u32 = 6;
const NFT_PAYLOAD_LL_HEADER: u32 = 0;
const NF_DROP: i32 = 0;
const IFNAMSIZ: usize = 16;
/// A transaction planned from a stale listing is refused; plan again.
const TRIES: usize = 5;

/// The spoof check of one attachment.
pub struct SpoofCheck {
    id: String,
}

fn fw(e: firewall::Error) -> Error {
    Error::from(e).context("macspoofchk")
}

fn verdict(code: i32, chain: Option<&str>) -> Expr {
    Expr::Immediate {
        dreg: NFT_REG_VERDICT,
        data: Data::Verdict {
            code,
            chain: chain.map(str::to_string),
        },
    }
}

/// `iifname "<port>"`: the name NUL-padded to IFNAMSIZ, as nft writes it.
fn iifname(port: &str) -> [Expr; 2] {
    let mut name = port.as_bytes().to_vec();
    name.resize(IFNAMSIZ, 0);
    [
        Expr::Meta {
            key: NFT_META_IIFNAME,
            dreg: NFT_REG_1,
        },
        Expr::Cmp {
            sreg: NFT_REG_1,
            op: NFT_CMP_EQ,
            data: name,
        },
    ]
}

/// The port an `iifname` match of a rule names.
fn matched_port(exprs: &[Expr]) -> Option<String> {
    exprs.windows(2).find_map(|pair| match pair {
        [Expr::Meta {
            key: NFT_META_IIFNAME,
            ..
        }, Expr::Cmp { data, .. }] => {
            let end = data.iter().position(|b| *b == 0).unwrap_or(data.len());
            Some(String::from_utf8_lossy(data.get(..end)?).into_owned())
        }
        _ => None,
    })
}

/// `ether saddr <mac>`.
fn ether_saddr(mac: Mac) -> [Expr; 2] {
    [
        Expr::Payload {
            dreg: NFT_REG_1,
            base: NFT_PAYLOAD_LL_HEADER,
            offset: 6,
            len: 6,
        },
        Expr::Cmp {
            sreg: NFT_REG_1,
            op: NFT_CMP_EQ,
            data: mac.0.to_vec(),
        },
    ]
}

impl SpoofCheck {
    pub fn new(container_id: &str, ifname: &str) -> SpoofCheck {
        SpoofCheck {
            id: format!("{container_id}-{ifname}"),
        }
    }

    fn iface_chain(&self) -> String {
        format!("cni-br-iface-{}", self.id)
    }

    fn mac_chain(&self) -> String {
        format!("{}-mac", self.iface_chain())
    }

    fn comment(&self) -> Vec<u8> {
        format!("macspoofchk-{}", self.id).into_bytes()
    }

    fn rule(&self, chain: &str, exprs: Vec<Expr>) -> RuleRepr {
        RuleRepr {
            family: NFPROTO_BRIDGE,
            table: TABLE.into(),
            chain: chain.into(),
            exprs,
            userdata: Some(comment_udata(&self.comment())),
            ..RuleRepr::default()
        }
    }

    /// The jump rules of this attachment in PREROUTING (handles).
    fn jump_rules(&self, sock: &Socket) -> firewall::Result<Vec<u64>> {
        let comment = self.comment();
        let iface_chain = self.iface_chain();
        Ok(sock
            .rules(NFPROTO_BRIDGE, TABLE, Some(PREROUTING))?
            .iter()
            .filter(|r| {
                r.comment() == Some(comment.as_slice())
                    || r.exprs
                        .iter()
                        .any(|e| e.jump_target() == Some(&iface_chain))
            })
            .filter_map(|r| r.handle)
            .collect())
    }

    fn chain_exists(&self, sock: &Socket, name: &str) -> firewall::Result<bool> {
        Ok(sock.chain(NFPROTO_BRIDGE, TABLE, name)?.is_some())
    }

    /// Only frames from `port` with source `mac` pass. Replaces this
    /// attachment's earlier rules, in one transaction.
    pub fn setup(&self, port: &str, mac: Mac) -> Result<()> {
        self.retry(|sock| self.try_setup(sock, port, mac))
    }

    /// The shared base chain every attachment jumps from.
    fn prerouting() -> ChainRepr {
        ChainRepr {
            family: NFPROTO_BRIDGE,
            table: TABLE.into(),
            name: PREROUTING.into(),
            hook: Some(Hook {
                num: NF_BR_PRE_ROUTING,
                priority: PRIORITY,
            }),
            policy: Some(NF_ACCEPT as u32),
            chain_type: Some("filter".into()),
            ..ChainRepr::default()
        }
    }

    fn try_setup(&self, sock: &Socket, port: &str, mac: Mac) -> firewall::Result<()> {
        let generation = sock.generation()?;
        let stale = self.jump_rules(sock)?;
        let (iface_chain, mac_chain) = (self.iface_chain(), self.mac_chain());
        let mut b = Batch::new();
        b.genid = Some(generation);
        // "Creating" an existing base chain is an update to the kernel,
        // whose deferred release makes closing the socket wait an RCU grace
        // period (10-20 ms): create table and chain only when missing.
        let want = Self::prerouting();
        let in_place = sock
            .chain(NFPROTO_BRIDGE, TABLE, PREROUTING)?
            .is_some_and(|c| {
                (c.hook, c.policy, &c.chain_type) == (want.hook, want.policy, &want.chain_type)
            });
        if !in_place {
            b.add_table(&TableRepr {
                family: NFPROTO_BRIDGE,
                name: TABLE.into(),
                ..TableRepr::default()
            })?;
            b.add_chain(&want)?;
        }
        for name in [&iface_chain, &mac_chain] {
            b.add_chain(&ChainRepr {
                family: NFPROTO_BRIDGE,
                table: TABLE.into(),
                name: name.clone(),
                ..ChainRepr::default()
            })?;
            b.flush_chain(NFPROTO_BRIDGE, TABLE, name)?;
        }
        for h in stale {
            b.del_rule(NFPROTO_BRIDGE, TABLE, PREROUTING, h)?;
        }
        let mut jump: Vec<Expr> = iifname(port).into();
        jump.push(verdict(NFT_JUMP, Some(&iface_chain)));
        let mut accept: Vec<Expr> = ether_saddr(mac).into();
        accept.push(verdict(NFT_RETURN, None));
        for r in [
            self.rule(PREROUTING, jump),
            self.rule(&iface_chain, vec![verdict(NFT_JUMP, Some(&mac_chain))]),
            self.rule(&mac_chain, accept),
            self.rule(&mac_chain, vec![verdict(NF_DROP, None)]),
        ] {
            let what = format!("adding a macspoofchk rule to bridge {TABLE} {}", r.chain);
            b.add_rule(&r, what)?;
        }
        sock.commit(&b)
    }

    /// Remove this attachment's rules and chains; nothing there is success.
    pub fn teardown(&self) -> Result<()> {
        self.teardown_early().map(drop)
    }

    /// [`SpoofCheck::teardown`] for the start of a DEL: returns the socket,
    /// to be dropped at the end. Closing it waits for the kernel to release
    /// what was deleted (an RCU grace period), which meanwhile passes.
    pub fn teardown_early(&self) -> Result<Socket> {
        let sock = Socket::open().map_err(fw)?;
        self.retry_on(&sock, |sock| self.try_teardown(sock))?;
        Ok(sock)
    }

    fn try_teardown(&self, sock: &Socket) -> firewall::Result<()> {
        let generation = sock.generation()?;
        let stale = self.jump_rules(sock)?;
        let chains: Vec<String> = [self.iface_chain(), self.mac_chain()]
            .into_iter()
            .map(|c| Ok((self.chain_exists(sock, &c)?, c)))
            .collect::<firewall::Result<Vec<_>>>()?
            .into_iter()
            .filter_map(|(exists, c)| exists.then_some(c))
            .collect();
        if stale.is_empty() && chains.is_empty() {
            return Ok(());
        }
        let mut b = Batch::new();
        b.genid = Some(generation);
        for h in stale {
            b.del_rule(NFPROTO_BRIDGE, TABLE, PREROUTING, h)?;
        }
        // Rules first: a chain must be empty and unreferenced to go.
        for c in &chains {
            b.flush_chain(NFPROTO_BRIDGE, TABLE, c)?;
        }
        for c in &chains {
            b.del_chain(NFPROTO_BRIDGE, TABLE, c)?;
        }
        sock.commit(&b)
    }

    /// CHECK: the jump for `port` and the rule allowing `mac` are in place.
    pub fn check(&self, port: &str, mac: Mac) -> Result<()> {
        let sock = Socket::open().map_err(fw)?;
        let missing = |what: &str| {
            Error::new(
                code::CHECK_FAILED,
                format!("macspoofchk: {what} of {} is missing", self.id),
            )
        };
        let jumps = sock
            .rules(NFPROTO_BRIDGE, TABLE, Some(PREROUTING))
            .map_err(fw)?;
        let iface_chain = self.iface_chain();
        let port_match: Vec<Expr> = iifname(port).into();
        let jumps_here = jumps.iter().any(|r| {
            r.exprs.starts_with(&port_match)
                && r.exprs
                    .iter()
                    .any(|e| e.jump_target() == Some(&iface_chain))
        });
        if !jumps_here {
            return Err(missing(&format!("the jump for port {port:?}")));
        }
        let accept: Vec<Expr> = ether_saddr(mac).into();
        let rules = sock
            .rules(NFPROTO_BRIDGE, TABLE, Some(&self.mac_chain()))
            .map_err(fw)?;
        if !rules.iter().any(|r| r.exprs.starts_with(&accept)) {
            return Err(missing(&format!("the rule allowing {mac}")));
        }
        Ok(())
    }

    /// GC: remove the spoof checks of attachments not in `valid` whose port
    /// is gone. (The rules do not name the network; an attachment of another
    /// network always still has its port, so it is never taken.)
    pub fn gc(
        valid: &[Attachment],
        mut port_exists: impl FnMut(&str) -> Result<bool>,
    ) -> Result<()> {
        let sock = Socket::open().map_err(fw)?;
        let rules = sock
            .rules(NFPROTO_BRIDGE, TABLE, Some(PREROUTING))
            .map_err(fw)?;
        let keep: Vec<String> = valid
            .iter()
            .map(|a| format!("{}-{}", a.container_id, a.ifname))
            .collect();
        let mut stale = Vec::new();
        for r in &rules {
            let Some(id) = r
                .comment()
                .and_then(|c| c.strip_prefix(b"macspoofchk-".as_slice()))
                .map(|id| String::from_utf8_lossy(id).into_owned())
            else {
                continue;
            };
            if keep.contains(&id) || stale.contains(&id) {
                continue;
            }
            match matched_port(&r.exprs) {
                Some(port) if port_exists(&port)? => {}
                _ => stale.push(id),
            }
        }
        for id in stale {
            SpoofCheck { id }.teardown()?;
        }
        Ok(())
    }

    /// Run one attempt after another while they lose races with other
    /// changes of the ruleset.
    fn retry(&self, attempt: impl Fn(&Socket) -> firewall::Result<()>) -> Result<()> {
        self.retry_on(&Socket::open().map_err(fw)?, attempt)
    }

    fn retry_on(
        &self,
        sock: &Socket,
        attempt: impl Fn(&Socket) -> firewall::Result<()>,
    ) -> Result<()> {
        let mut tries = 0;
        loop {
            match attempt(sock) {
                Err(e) if e.is_retry() && tries < TRIES => tries += 1,
                other => return other.map_err(fw),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_reference() {
        let s = SpoofCheck::new("c1", "eth0");
        assert_eq!(s.iface_chain(), "cni-br-iface-c1-eth0");
        assert_eq!(s.mac_chain(), "cni-br-iface-c1-eth0-mac");
        assert_eq!(s.comment(), b"macspoofchk-c1-eth0");
    }

    #[test]
    fn matches_are_padded_and_exact() {
        let [_, Expr::Cmp { data, .. }] = iifname("veth1") else {
            panic!("iifname is meta + cmp");
        };
        assert_eq!(data.len(), IFNAMSIZ);
        assert_eq!(&data[..6], b"veth1\0");
        let mut exprs: Vec<Expr> = iifname("veth1").into();
        exprs.push(verdict(NFT_JUMP, Some("x")));
        assert_eq!(matched_port(&exprs).as_deref(), Some("veth1"));
        assert_eq!(matched_port(&exprs[1..]), None);
        let [Expr::Payload { offset, len, .. }, _] = ether_saddr(Mac([2, 0, 0, 0, 0, 1])) else {
            panic!("ether saddr is payload + cmp");
        };
        assert_eq!((offset, len), (6, 6));
    }
}
