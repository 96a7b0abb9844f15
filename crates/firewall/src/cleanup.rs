//! DEL and GC: remove masquerade state wherever it lives, whichever backend
//! (ours or the reference's) created it.
//!
//! - nf_tables, over netlink: our table `inet cni_plugins_masquerade` (which
//!   the reference's nftables backend shares), and the reference's iptables
//!   chains when iptables is iptables-nft (they are nf_tables objects in
//!   `ip nat` / `ip6 nat`). One transaction, bound to the generation it was
//!   planned from.
//! - legacy iptables (x_tables), only when this namespace has a legacy nat
//!   table: `iptables-legacy-save` and one `iptables-legacy-restore`. Legacy
//!   tables cannot be read over netlink, and the check costs one file read.

use crate::iptables;
use crate::iptchains::{NatRule, NatView, Step};
use crate::names::{
    ipt_chain, nft_comment, nft_instance_hash, nft_network_hash, NFT_CHECKS_CHAIN, NFT_TABLE,
};
use crate::nft::wire::consts::{NFPROTO_INET, NFPROTO_IPV4, NFPROTO_IPV6, NFPROTO_UNSPEC};
use crate::nft::{Batch, Socket};
use crate::{Instance, Result};
use cni::skel::Attachment;
use std::collections::HashSet;

/// The nat table iptables-nft keeps its chains in, per family.
const IPT_NAT_TABLE: &str = "nat";
/// Deletions per transaction during GC; bigger sets are removed in rounds.
const MAX_BATCH: usize = 1000;
/// Re-planning attempts when other changes to the ruleset race with ours.
const MAX_ATTEMPTS: usize = 20;

/// Whose state to remove.
pub enum Scope<'a> {
    /// One attachment (DEL).
    Instance(&'a Instance<'a>),
    /// Everything of `network` except the valid attachments (GC).
    Stale {
        network: &'a str,
        valid: &'a [Attachment],
    },
}

impl Scope<'_> {
    /// Which of our nf_tables rules (by comment) go.
    fn nft_matcher(&self) -> impl Fn(&[u8]) -> bool + '_ {
        let (prefix, keep): (String, HashSet<Vec<u8>>) = match self {
            Scope::Instance(i) => (
                nft_instance_hash(i.network, i.ifname, i.container_id),
                HashSet::new(),
            ),
            Scope::Stale { network, valid } => (
                nft_network_hash(network),
                valid
                    .iter()
                    .map(|a| nft_comment(network, &a.ifname, &a.container_id))
                    .collect(),
            ),
        };
        move |c: &[u8]| c.starts_with(prefix.as_bytes()) && !keep.contains(c)
    }

    /// The reference's iptables chain(s) to remove from `view`.
    pub fn plan<Id: Clone>(&self, view: &NatView<Id>) -> Vec<Step<Id>> {
        match self {
            Scope::Instance(i) => view.plan_del(i.network, i.container_id),
            Scope::Stale { network, valid } => {
                let ids: HashSet<&str> = valid.iter().map(|a| a.container_id.as_str()).collect();
                view.plan_gc(network, &ids)
            }
        }
    }

    /// The only chain this scope can concern, when it is known by name.
    fn known_chain(&self) -> Option<String> {
        match self {
            Scope::Instance(i) => Some(ipt_chain(i.network, i.container_id)),
            Scope::Stale { .. } => None,
        }
    }
}

/// Remove everything `scope` covers, in nf_tables and in legacy iptables.
pub fn run(scope: &Scope) -> Result<()> {
    // No nf_tables in this kernel: nothing of ours or iptables-nft's to remove.
    if let Some((sock, generation)) = Socket::probe()? {
        nft(&sock, generation, scope)?;
    }
    iptables::cleanup_legacy(scope)
}

/// [`run`] on an open socket, starting from `generation`.
pub fn run_on(sock: &Socket, generation: u32, scope: &Scope) -> Result<()> {
    nft(sock, generation, scope)?;
    iptables::cleanup_legacy(scope)
}

fn nft(sock: &Socket, mut generation: u32, scope: &Scope) -> Result<()> {
    let mut races = 0;
    loop {
        let round = plan_nft(sock, generation, scope).and_then(|(batch, more)| {
            sock.commit(&batch)?;
            Ok(more)
        });
        match round {
            Ok(false) => return Ok(()),
            Ok(true) => {}
            Err(e) if e.is_retry() && races < MAX_ATTEMPTS => races += 1,
            Err(e) => return Err(e),
        }
        generation = sock.generation()?;
    }
}

/// One transaction of deletions, and whether more remain after it.
fn plan_nft(sock: &Socket, generation: u32, scope: &Scope) -> Result<(Batch, bool)> {
    let mut batch = Batch::new();
    batch.genid = Some(generation);
    let tables = sock.tables(NFPROTO_UNSPEC)?;
    let has = |family, name: &str| tables.iter().any(|t| t.family == family && t.name == name);

    if has(NFPROTO_INET, NFT_TABLE) {
        let doomed = scope.nft_matcher();
        for r in sock.rule_heads(NFPROTO_INET, NFT_TABLE, Some(NFT_CHECKS_CHAIN))? {
            if let (Some(h), Some(c)) = (r.handle, r.comment()) {
                if doomed(c) {
                    if batch.len() >= MAX_BATCH {
                        return Ok((batch, true));
                    }
                    batch.del_rule(NFPROTO_INET, NFT_TABLE, NFT_CHECKS_CHAIN, h)?;
                }
            }
        }
    }

    for family in [NFPROTO_IPV4, NFPROTO_IPV6] {
        if !has(family, IPT_NAT_TABLE) {
            continue;
        }
        // For DEL, skip the dump of a possibly large nat table unless the
        // container's chain exists.
        if let Some(name) = scope.known_chain() {
            if sock.chain(family, IPT_NAT_TABLE, &name)?.is_none() {
                continue;
            }
        }
        let view = nat_view(sock, family)?;
        for step in scope.plan(&view) {
            if batch.len() >= MAX_BATCH {
                return Ok((batch, true));
            }
            match step {
                Step::DeleteRule { chain, id } => {
                    batch.del_rule(family, IPT_NAT_TABLE, &chain, id)?
                }
                Step::DeleteChain(name) => batch.del_chain(family, IPT_NAT_TABLE, &name)?,
            }
        }
    }
    Ok((batch, false))
}

/// Table nat of one family as iptables-nft wrote it, in the planner's terms.
fn nat_view(sock: &Socket, family: u8) -> Result<NatView<u64>> {
    let chains = sock
        .chains(family, IPT_NAT_TABLE)?
        .into_iter()
        .map(|c| c.name)
        .collect();
    let rules = sock
        .rules(family, IPT_NAT_TABLE, None)?
        .into_iter()
        .filter_map(|r| {
            let comment = r
                .exprs
                .iter()
                .find_map(|e| e.xt_comment())
                .or_else(|| r.comment())
                .map(|c| String::from_utf8_lossy(c).into_owned());
            Some(NatRule {
                id: r.handle?,
                target: r.exprs.iter().find_map(|e| e.jump_target()).map(Into::into),
                chain: r.chain,
                comment,
            })
        })
        .collect();
    Ok(NatView { chains, rules })
}
