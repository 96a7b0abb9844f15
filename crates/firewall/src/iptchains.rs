//! Finding the reference's iptables masquerade chains (`CNI-<hash>` in table
//! nat, jumped to from POSTROUTING) and planning their removal.
//!
//! The plan is computed once from a neutral view of table nat; two executors
//! carry it out: nf_tables messages for chains made by iptables-nft (found by
//! netlink dumps), and `iptables-restore` lines for legacy iptables.

use crate::names::{ipt_chain, parse_ipt_comment, IPT_CHAIN_LEN, IPT_CHAIN_PREFIX};
use std::collections::HashSet;

/// One rule of table nat as the planner needs it. `Id` is whatever the
/// executor deletes rules by (an nf_tables handle, or iptables-save's text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatRule<Id> {
    pub id: Id,
    pub chain: String,
    /// The chain it jumps or goes to.
    pub target: Option<String>,
    /// Its `-m comment` text.
    pub comment: Option<String>,
}

/// The chains and rules of one family's table nat.
#[derive(Debug, Clone, Default)]
pub struct NatView<Id> {
    pub chains: Vec<String>,
    pub rules: Vec<NatRule<Id>>,
}

/// One step of a removal, in order: rule deletions come before the chains
/// they referenced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<Id> {
    DeleteRule {
        chain: String,
        id: Id,
    },
    /// Delete the chain with whatever rules are still in it.
    DeleteChain(String),
}

impl<Id: Clone> NatView<Id> {
    /// Remove the chain of (network, container) and every jump to it.
    pub fn plan_del(&self, network: &str, container_id: &str) -> Vec<Step<Id>> {
        self.remove_chains(&[ipt_chain(network, container_id)])
    }

    /// Remove the chains of `network` whose container is not in `valid`. The
    /// reference's chains do not record the interface name, so a container
    /// keeps its chain while any of its attachments is valid.
    pub fn plan_gc(&self, network: &str, valid: &HashSet<&str>) -> Vec<Step<Id>> {
        let stale: Vec<String> = self
            .chains
            .iter()
            .filter(|c| c.starts_with(IPT_CHAIN_PREFIX) && c.len() == IPT_CHAIN_LEN)
            .filter(|c| match self.owner(c) {
                Some((net, cid)) => net == network && !valid.contains(cid.as_str()),
                None => false,
            })
            .cloned()
            .collect();
        self.remove_chains(&stale)
    }

    /// The (network, container) a chain belongs to, read from its comments and
    /// confirmed by its name, so chains of other tools are never claimed.
    fn owner(&self, chain: &str) -> Option<(String, String)> {
        self.rules
            .iter()
            .filter(|r| r.chain == chain || r.target.as_deref() == Some(chain))
            .filter_map(|r| parse_ipt_comment(r.comment.as_deref()?))
            .find(|(net, cid)| ipt_chain(net, cid) == chain)
    }

    fn remove_chains(&self, chains: &[String]) -> Vec<Step<Id>> {
        let present: Vec<&String> = chains.iter().filter(|c| self.chains.contains(c)).collect();
        let mut steps: Vec<Step<Id>> = self
            .rules
            .iter()
            .filter(|r| {
                r.target.as_ref().is_some_and(|t| present.contains(&t))
                    && !present.contains(&&r.chain)
            })
            .map(|r| Step::DeleteRule {
                chain: r.chain.clone(),
                id: r.id.clone(),
            })
            .collect();
        steps.extend(present.into_iter().map(|c| Step::DeleteChain(c.clone())));
        steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::ipt_comment;

    fn rule(id: u64, chain: &str, target: Option<&str>, comment: Option<String>) -> NatRule<u64> {
        NatRule {
            id,
            chain: chain.into(),
            target: target.map(Into::into),
            comment,
        }
    }

    /// The reference's layout for two containers, plus unrelated chains.
    fn view() -> NatView<u64> {
        let a = ipt_chain("net1", "ca");
        let b = ipt_chain("net1", "cb");
        let other = ipt_chain("net2", "cc");
        let (ca, cb, cc) = (
            ipt_comment("net1", "ca"),
            ipt_comment("net1", "cb"),
            ipt_comment("net2", "cc"),
        );
        NatView {
            chains: vec![
                "POSTROUTING".into(),
                a.clone(),
                b.clone(),
                other.clone(),
                "CNI-HOSTPORT-DNAT".into(),
                // Name of the right shape but comment of another network.
                "CNI-0123456789abcdef01234567".into(),
            ],
            rules: vec![
                rule(1, "POSTROUTING", Some(&a), Some(ca.clone())),
                rule(2, &a, None, Some(ca.clone())),
                rule(3, &a, None, Some(ca.clone())),
                rule(4, "POSTROUTING", Some(&b), Some(cb.clone())),
                rule(5, &b, None, Some(cb)),
                rule(6, "POSTROUTING", Some(&other), Some(cc.clone())),
                rule(7, &other, None, Some(cc)),
                rule(8, "POSTROUTING", Some(&a), Some(ca)),
                rule(
                    9,
                    "CNI-0123456789abcdef01234567",
                    None,
                    Some(ipt_comment("net1", "zz")),
                ),
                rule(10, "PREROUTING", Some("CNI-HOSTPORT-DNAT"), None),
            ],
        }
    }

    #[test]
    fn del_removes_jumps_then_chain() {
        let a = ipt_chain("net1", "ca");
        assert_eq!(
            view().plan_del("net1", "ca"),
            vec![
                Step::DeleteRule {
                    chain: "POSTROUTING".into(),
                    id: 1
                },
                Step::DeleteRule {
                    chain: "POSTROUTING".into(),
                    id: 8
                },
                Step::DeleteChain(a),
            ]
        );
        assert!(view().plan_del("net1", "absent").is_empty());
        assert!(view().plan_del("net9", "ca").is_empty());
    }

    #[test]
    fn gc_keeps_valid_and_other_networks() {
        let b = ipt_chain("net1", "cb");
        let valid: HashSet<&str> = ["ca"].into();
        assert_eq!(
            view().plan_gc("net1", &valid),
            vec![
                Step::DeleteRule {
                    chain: "POSTROUTING".into(),
                    id: 4
                },
                Step::DeleteChain(b),
            ]
        );
        let none = HashSet::new();
        let steps = view().plan_gc("net2", &none);
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[1], Step::DeleteChain(ipt_chain("net2", "cc")));
        // Nothing valid on net1: both its chains go, nothing else.
        assert_eq!(view().plan_gc("net1", &none).len(), 5);
    }
}
