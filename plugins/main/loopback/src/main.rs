//! CNI loopback plugin: brings up `lo` in the container's network namespace.
//!
//! - ADD sets `lo` up and reports it with its loopback addresses, or passes
//!   `prevResult` through unchanged when it runs in a chain.
//! - DEL sets `lo` down; nothing to do when the namespace is gone.
//! - CHECK fails unless `lo` is up.
//!
//! `CNI_IFNAME` is ignored: this plugin only ever touches `lo`.

#![no_main]

use cni::{code, CniResult, Error, Interface, IpConfig, Plugin, Request, Result};
use netlink::{Family, Netns};

const LO: &str = "lo";

struct Loopback;

impl Plugin for Loopback {
    fn add(&self, req: &Request) -> Result<CniResult> {
        // Read prevResult before touching anything, so a bad one changes nothing.
        let prev = req.prev_result()?;

        let ns = Netns::open(&req.netns)?;
        let mut nl = ns.handle()?;
        let lo = nl.link_by_name(LO)?;
        nl.set_up(lo.index)?;
        // The kernel gives lo its addresses when it comes up.
        let addrs = nl.addresses(Some(lo.index), None)?;
        if let Some(odd) = addrs.iter().find(|a| !a.address.addr().is_loopback()) {
            return Err(Error::failed(format!(
                "loopback interface in {} has non-loopback address {}",
                req.netns, odd.address
            )));
        }

        if let Some(prev) = prev {
            return Ok(prev);
        }
        let first = |family| {
            addrs
                .iter()
                .find(|a| Family::of(&a.address.addr()) == family)
                .map(|a| IpConfig {
                    interface: Some(0),
                    address: a.address,
                    gateway: None,
                })
        };
        Ok(CniResult {
            interfaces: vec![Interface {
                name: LO.into(),
                mac: "00:00:00:00:00:00".into(),
                sandbox: req.netns.clone(),
                ..Interface::default()
            }],
            ips: [first(Family::V4), first(Family::V6)]
                .into_iter()
                .flatten()
                .collect(),
            ..CniResult::default()
        })
    }

    fn del(&self, req: &Request) -> Result<()> {
        let Some(ns) = Netns::open_if_exists(&req.netns)? else {
            return Ok(()); // no namespace (or none given): nothing left to undo
        };
        let mut nl = ns.handle()?;
        if let Some(lo) = nl.find_link(LO)? {
            nl.set_down(lo.index)?;
        }
        Ok(())
    }

    fn check(&self, req: &Request) -> Result<()> {
        let ns = Netns::open(&req.netns)?;
        let lo = ns.handle()?.link_by_name(LO)?;
        if !lo.up {
            return Err(Error::new(
                code::CHECK_FAILED,
                format!("loopback interface in {} is down", req.netns),
            ));
        }
        Ok(())
    }
}

cni::plugin_main!(Loopback, "loopback");
