//! The native backend: masquerade rules in nf_tables, written over netlink in
//! the reference's nftables layout so either implementation can remove what
//! the other created:
//!
//! ```text
//! table inet cni_plugins_masquerade {
//!     chain masq_checks {
//!         ip saddr 10.1.0.5 ip daddr != 10.1.0.0/24 masquerade comment "<hash>, net: …"
//!     }
//!     chain postrouting {
//!         type nat hook postrouting priority srcnat; policy accept;
//!         ip daddr 224.0.0.0/4 return
//!         ip6 daddr ff00::/8 return
//!         goto masq_checks
//!     }
//! }
//! ```
//!
//! An ADD is one transaction: it (re)creates the table and chains and
//! rewrites postrouting unless they are already exactly so, drops the
//! attachment's stale rules and appends one rule per address. Rules are
//! found again by their comment (see [`crate::names`]).

use crate::cleanup::{self, Scope};
use crate::names::{
    nft_comment, NFT_CHECKS_CHAIN, NFT_CHECKS_COMMENT, NFT_POSTROUTING_CHAIN, NFT_TABLE,
    NFT_TABLE_COMMENT,
};
use crate::nft::wire::{
    comment_udata, consts::*, ChainRepr, Data, Expr, Hook, RuleRepr, TableRepr,
};
use crate::nft::{Batch, Socket};
use crate::{Error, Instance, Masquerade, Result};
use cni::skel::Attachment;
use ipnet::IpNet;
use std::cell::Cell;
use std::net::IpAddr;

/// Masquerade with nf_tables over netlink.
pub struct Native {
    sock: Socket,
    /// The generation read when probing, good for the first operation only.
    probed: Cell<Option<u32>>,
}

impl Native {
    /// Connect to nf_tables; None when this kernel does not have it.
    pub fn open() -> Result<Option<Native>> {
        Ok(Socket::probe()?.map(|(sock, generation)| Native {
            sock,
            probed: Cell::new(Some(generation)),
        }))
    }

    fn generation(&self) -> Result<u32> {
        match self.probed.take() {
            Some(g) => Ok(g),
            None => self.sock.generation(),
        }
    }

    /// True when the table, both chains and the postrouting rules are
    /// already what an ADD writes. Writing them again would leave the ruleset
    /// as it is, but not the kernel: updating an existing chain (or flushing
    /// its rules) leaves objects to free after an RCU grace period, and
    /// closing the socket then waits for that grace period (10-20 ms here).
    /// Adding rules leaves nothing to free. Two small requests: a get and a
    /// dump of the three-rule chain.
    fn layout_in_place(&self) -> Result<bool> {
        let Some(chain) = self
            .sock
            .chain(NFPROTO_INET, NFT_TABLE, NFT_POSTROUTING_CHAIN)?
        else {
            return Ok(false);
        };
        if chain.hook != Some(postrouting_hook()) || chain.chain_type.as_deref() != Some("nat") {
            return Ok(false);
        }
        let have = self
            .sock
            .rules(NFPROTO_INET, NFT_TABLE, Some(NFT_POSTROUTING_CHAIN))?;
        // The goto in the last rule also proves that masq_checks exists.
        let want = postrouting_rules();
        Ok(have.len() == want.len() && have.iter().zip(&want).all(|(h, w)| &h.exprs == w))
    }

    /// One attempt at ADD; with `layout`, (re)writes the table, the chains
    /// and postrouting first. Rules already there for the attachment are
    /// not looked for: that would be a dump of every container's rules on
    /// each ADD (~6 ms with 1000 containers). The spec forbids a second ADD
    /// without DEL; if a runtime does it anyway, the old rules stay beside
    /// the new ones (as with the reference's iptables backend) and DEL
    /// removes them all.
    fn try_add(&self, who: &Instance, addrs: &[IpNet], layout: bool) -> Result<()> {
        let comment = nft_comment(who.network, who.ifname, who.container_id);
        let mut b = Batch::new();
        if layout {
            self.add_layout(&mut b)?;
        }
        for a in addrs {
            let r = rule(NFT_CHECKS_CHAIN, masq_exprs(a), Some(&comment));
            b.add_rule(&r, format!("adding the masquerade rule for {a}"))?;
        }
        self.sock.commit(&b)
    }

    /// Queue the table, both chains and the postrouting rules.
    fn add_layout(&self, b: &mut Batch) -> Result<()> {
        b.add_table(&TableRepr {
            family: NFPROTO_INET,
            name: NFT_TABLE.into(),
            userdata: Some(comment_udata(NFT_TABLE_COMMENT.as_bytes())),
            ..Default::default()
        })?;
        b.add_chain(&ChainRepr {
            family: NFPROTO_INET,
            table: NFT_TABLE.into(),
            name: NFT_CHECKS_CHAIN.into(),
            userdata: Some(comment_udata(NFT_CHECKS_COMMENT.as_bytes())),
            ..Default::default()
        })?;
        b.add_chain(&ChainRepr {
            family: NFPROTO_INET,
            table: NFT_TABLE.into(),
            name: NFT_POSTROUTING_CHAIN.into(),
            hook: Some(postrouting_hook()),
            chain_type: Some("nat".into()),
            ..Default::default()
        })?;
        // Rewritten on every ADD, as the reference does, so both agree on it.
        b.flush_chain(NFPROTO_INET, NFT_TABLE, NFT_POSTROUTING_CHAIN)?;
        for exprs in postrouting_rules() {
            let r = rule(NFT_POSTROUTING_CHAIN, exprs, None);
            b.add_rule(&r, format!("adding a rule to {}", r.chain))?;
        }
        Ok(())
    }
}

impl Masquerade for Native {
    fn add(&self, who: &Instance, addrs: &[IpNet]) -> Result<()> {
        who.validate()?;
        let mut layout = !self.layout_in_place()?;
        let mut races = 0;
        loop {
            match self.try_add(who, addrs, layout) {
                Err(e) if e.is_retry() && races < 20 => races += 1,
                // The table or a chain went away after we looked.
                Err(e) if e.is_not_found() && !layout && races < 20 => {
                    races += 1;
                    layout = true;
                }
                other => return other,
            }
        }
    }

    fn check(&self, who: &Instance, addrs: &[IpNet]) -> Result<()> {
        let table = format!("table inet {NFT_TABLE}");
        let post = self
            .sock
            .rules(NFPROTO_INET, NFT_TABLE, Some(NFT_POSTROUTING_CHAIN))?;
        let want: Vec<Vec<Expr>> = postrouting_rules().into_iter().collect();
        let have: Vec<&Vec<Expr>> = post.iter().map(|r| &r.exprs).collect();
        if !want.iter().all(|w| have.contains(&w)) {
            return Err(Error::Missing(format!(
                "masquerade: chain {NFT_POSTROUTING_CHAIN} of {table} is missing or lacks its rules"
            )));
        }
        let comment = nft_comment(who.network, who.ifname, who.container_id);
        let rules = self
            .sock
            .rules(NFPROTO_INET, NFT_TABLE, Some(NFT_CHECKS_CHAIN))?;
        for a in addrs {
            let expect = masq_exprs(a);
            let found = rules
                .iter()
                .any(|r| r.comment() == Some(comment.as_slice()) && r.exprs == expect);
            if !found {
                return Err(Error::Missing(format!(
                    "masquerade: no rule for {a} of container {} in chain {NFT_CHECKS_CHAIN} of {table}",
                    who.container_id
                )));
            }
        }
        Ok(())
    }

    fn del(&self, who: &Instance) -> Result<()> {
        who.validate()?;
        cleanup::run_on(&self.sock, self.generation()?, &Scope::Instance(who))
    }

    fn gc(&self, network: &str, valid: &[Attachment]) -> Result<()> {
        cleanup::run_on(
            &self.sock,
            self.generation()?,
            &Scope::Stale { network, valid },
        )
    }
}

/// `type nat hook postrouting priority srcnat`.
fn postrouting_hook() -> Hook {
    Hook {
        num: NF_INET_POST_ROUTING,
        priority: NF_IP_PRI_NAT_SRC,
    }
}

fn rule(chain: &str, exprs: Vec<Expr>, comment: Option<&[u8]>) -> RuleRepr {
    RuleRepr {
        family: NFPROTO_INET,
        table: NFT_TABLE.into(),
        chain: chain.into(),
        exprs,
        userdata: comment.map(comment_udata),
        ..Default::default()
    }
}

/// `ip daddr 224.0.0.0/4 return`, `ip6 daddr ff00::/8 return`, `goto masq_checks`.
pub fn postrouting_rules() -> [Vec<Expr>; 3] {
    let ret = Expr::Immediate {
        dreg: NFT_REG_VERDICT,
        data: Data::Verdict {
            code: NFT_RETURN,
            chain: None,
        },
    };
    let v4_multicast = IpNet::new(IpAddr::from([224, 0, 0, 0]), 4).unwrap_or_default();
    let v6_multicast =
        IpNet::new(IpAddr::from([0xff00, 0, 0, 0, 0, 0, 0, 0]), 8).unwrap_or_default();
    let mut r1 = family_is(&v4_multicast).to_vec();
    r1.extend(addr_in(Field::Daddr, &v4_multicast, NFT_CMP_EQ));
    r1.push(ret.clone());
    let mut r2 = family_is(&v6_multicast).to_vec();
    r2.extend(addr_in(Field::Daddr, &v6_multicast, NFT_CMP_EQ));
    r2.push(ret);
    let r3 = vec![Expr::Immediate {
        dreg: NFT_REG_VERDICT,
        data: Data::Verdict {
            code: NFT_GOTO,
            chain: Some(NFT_CHECKS_CHAIN.into()),
        },
    }];
    [r1, r2, r3]
}

/// `ip saddr <addr> ip daddr != <its subnet> masquerade` for an address with
/// its prefix length (e.g. 10.1.0.5/24).
pub fn masq_exprs(addr: &IpNet) -> Vec<Expr> {
    let host = IpNet::new(addr.addr(), addr.max_prefix_len()).unwrap_or(*addr);
    let mut e = family_is(addr).to_vec();
    e.extend(addr_in(Field::Saddr, &host, NFT_CMP_EQ));
    e.extend(addr_in(Field::Daddr, &addr.trunc(), NFT_CMP_NEQ));
    e.push(Expr::Masq { flags: 0 });
    e
}

#[derive(Clone, Copy)]
enum Field {
    Saddr,
    Daddr,
}

/// `meta nfproto ipv4|ipv6`: the inet table sees both families.
fn family_is(net: &IpNet) -> [Expr; 2] {
    let proto = match net {
        IpNet::V4(_) => NFPROTO_IPV4,
        IpNet::V6(_) => NFPROTO_IPV6,
    };
    [
        Expr::Meta {
            key: NFT_META_NFPROTO,
            dreg: NFT_REG_1,
        },
        Expr::Cmp {
            sreg: NFT_REG_1,
            op: NFT_CMP_EQ,
            data: vec![proto],
        },
    ]
}

/// Compare a header address with `net` the way nft encodes it: whole bytes
/// of the prefix when it ends on a byte boundary, else the full address
/// masked.
fn addr_in(field: Field, net: &IpNet, op: u32) -> Vec<Expr> {
    let (offset, bytes): (u32, Vec<u8>) = match (net, field) {
        (IpNet::V4(n), Field::Saddr) => (12, n.network().octets().to_vec()),
        (IpNet::V4(n), Field::Daddr) => (16, n.network().octets().to_vec()),
        (IpNet::V6(n), Field::Saddr) => (8, n.network().octets().to_vec()),
        (IpNet::V6(n), Field::Daddr) => (24, n.network().octets().to_vec()),
    };
    let plen = usize::from(net.prefix_len());
    let load = |len: usize| Expr::Payload {
        dreg: NFT_REG_1,
        base: NFT_PAYLOAD_NETWORK_HEADER,
        offset,
        len: len as u32,
    };
    if plen % 8 == 0 && plen > 0 {
        let mut data = bytes;
        data.truncate(plen / 8);
        return vec![
            load(data.len()),
            Expr::Cmp {
                sreg: NFT_REG_1,
                op,
                data,
            },
        ];
    }
    let mask: Vec<u8> = match net {
        IpNet::V4(n) => n.netmask().octets().to_vec(),
        IpNet::V6(n) => n.netmask().octets().to_vec(),
    };
    vec![
        load(bytes.len()),
        Expr::Bitwise {
            sreg: NFT_REG_1,
            dreg: NFT_REG_1,
            len: bytes.len() as u32,
            op: 0,
            xor: vec![0; bytes.len()],
            mask,
        },
        Expr::Cmp {
            sreg: NFT_REG_1,
            op,
            data: bytes,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn payload(offset: u32, len: u32) -> Expr {
        Expr::Payload {
            dreg: 1,
            base: 1,
            offset,
            len,
        }
    }

    fn cmp(op: u32, data: &[u8]) -> Expr {
        Expr::Cmp {
            sreg: 1,
            op,
            data: data.to_vec(),
        }
    }

    // The expected expressions are what `nft --debug=netlink` shows nft 1.0.6
    // generating for the same rules.
    #[test]
    fn v4_rule_matches_nft() {
        let e = masq_exprs(&net("10.1.0.5/24"));
        assert_eq!(
            e,
            vec![
                Expr::Meta { key: 15, dreg: 1 },
                cmp(0, &[2]),
                payload(12, 4),
                cmp(0, &[10, 1, 0, 5]),
                payload(16, 3),
                cmp(1, &[10, 1, 0]),
                Expr::Masq { flags: 0 },
            ]
        );
        let e = masq_exprs(&net("10.1.0.5/21"));
        assert_eq!(
            e[4..7],
            [
                payload(16, 4),
                Expr::Bitwise {
                    sreg: 1,
                    dreg: 1,
                    len: 4,
                    op: 0,
                    mask: vec![255, 255, 248, 0],
                    xor: vec![0; 4]
                },
                cmp(1, &[10, 1, 0, 0]),
            ]
        );
    }

    #[test]
    fn v6_rule_matches_nft() {
        let e = masq_exprs(&net("fd00::5/64"));
        let mut addr = [0u8; 16];
        addr[0] = 0xfd;
        addr[15] = 5;
        assert_eq!(
            e,
            vec![
                Expr::Meta { key: 15, dreg: 1 },
                cmp(0, &[10]),
                payload(8, 16),
                cmp(0, &addr),
                payload(24, 8),
                cmp(1, &[0xfd, 0, 0, 0, 0, 0, 0, 0]),
                Expr::Masq { flags: 0 },
            ]
        );
    }

    #[test]
    fn postrouting_matches_nft() {
        let [r1, r2, r3] = postrouting_rules();
        assert_eq!(
            r1[2..5],
            [
                payload(16, 4),
                Expr::Bitwise {
                    sreg: 1,
                    dreg: 1,
                    len: 4,
                    op: 0,
                    mask: vec![0xf0, 0, 0, 0],
                    xor: vec![0; 4]
                },
                cmp(0, &[0xe0, 0, 0, 0]),
            ]
        );
        assert_eq!(r2[2..4], [payload(24, 1), cmp(0, &[0xff])]);
        assert_eq!(r3[0].jump_target(), Some("masq_checks"));
    }

    #[test]
    fn zero_prefix_never_matches_outside() {
        // daddr != 0.0.0.0/0 can never be true: masked compare against zero.
        let e = masq_exprs(&net("10.0.0.1/0"));
        assert!(matches!(&e[5], Expr::Bitwise { mask, .. } if mask == &vec![0; 4]));
        assert_eq!(e[6], cmp(1, &[0, 0, 0, 0]));
    }
}
