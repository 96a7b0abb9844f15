//! The host-local IPAM plugin: hands out one address per range set from
//! the configured ranges and records each lease on the node's disk, in the
//! same format as the reference plugin (see [`crate::store`] and its index).
//! The `host-local` binary is this plugin; interface plugins run it in
//! their own process instead when the `host-local` on `CNI_PATH` is this
//! very build ([`is_this_build`]).

mod build_mark;
mod config;

pub use build_mark::{is_this_build, BUILD_MARK, SECTION_NAME};

use crate::store::Owned;
use crate::{assign_requested, ipam_result, read_resolv_conf, Allocation, Store};
use cni::{code, CniResult, Dns, Error, Plugin, Request, Result};
use config::Config;
use std::collections::HashSet;

/// The plugin; `cni::plugin_main!(HostLocal, "host-local")` is the binary.
pub struct HostLocal;

impl Plugin for HostLocal {
    /// Allocate, all or nothing: every range set gets an address (the one
    /// requested for it, else the next free one) or nothing is kept.
    fn add(&self, req: &Request) -> Result<CniResult> {
        let conf = Config::load(req)?;
        let wanted = assign_requested(&conf.ranges, &Config::requested(req)?)?;
        let dns = match &conf.resolv_conf {
            Some(path) => read_resolv_conf(path)?,
            None => Dns::default(),
        };
        let store = Store::create(&conf.data_dir, &conf.network)?;
        let mut leases = store.lock()?;
        let allocated = crate::allocate(
            &mut leases,
            &conf.network,
            &conf.ranges,
            &wanted,
            &req.container_id,
            &req.ifname,
        );
        leases.finish();
        let ips = allocated?.iter().map(Allocation::ip_config).collect();
        Ok(ipam_result(ips, conf.routes, dns))
    }

    /// Release what the attachment holds; nothing held is success.
    fn del(&self, req: &Request) -> Result<()> {
        let conf = Config::load(req)?;
        let Some(store) = Store::open(&conf.data_dir, &conf.network)? else {
            return Ok(());
        };
        let mut leases = store.lock()?;
        let released = leases.release_owner(&req.container_id, &req.ifname);
        leases.finish();
        released.map(drop)
    }

    /// The attachment must hold at least one lease in this network.
    fn check(&self, req: &Request) -> Result<()> {
        let conf = Config::load(req)?;
        let owned = match Store::open(&conf.data_dir, &conf.network)? {
            Some(store) => {
                let mut leases = store.lock()?;
                let owned = leases.find(&req.container_id, &req.ifname);
                leases.finish();
                owned?
            }
            None => Owned::default(),
        };
        if owned.is_empty() {
            return Err(Error::new(
                code::CHECK_FAILED,
                format!(
                    "host-local: no address of network {:?} is recorded for container {} \
                     (interface {}) in {}",
                    conf.network,
                    req.container_id,
                    req.ifname,
                    conf.data_dir.join(&conf.network).display()
                ),
            ));
        }
        Ok(())
    }

    /// Ready while every range set has a free address.
    fn status(&self, req: &Request) -> Result<()> {
        let conf = Config::load(req)?;
        let leased = match Store::open(&conf.data_dir, &conf.network)? {
            Some(store) => store.leased_ips()?,
            None => HashSet::new(),
        };
        for (i, set) in conf.ranges.iter().enumerate() {
            if set.free(&leased) == 0 {
                return Err(Error::new(
                    code::NOT_AVAILABLE,
                    format!(
                        "range set {i} ({set}) of network {:?} is exhausted: no address is left \
                         to hand out; release leases or add a range",
                        conf.network
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Release every lease whose attachment is not in the runtime's valid
    /// list. Without a list nothing is released and the request fails: an
    /// absent list must never be read as "nothing is valid".
    fn gc(&self, req: &Request) -> Result<()> {
        let conf = Config::load(req)?;
        let Some(valid) = req.valid_attachments()? else {
            return Err(Error::invalid_config(
                "GC request without a cni.dev/valid-attachments list: nothing was released \
                 (send the list of attachments to keep; an empty list releases every lease)",
            ));
        };
        let Some(store) = Store::open(&conf.data_dir, &conf.network)? else {
            return Ok(());
        };
        let mut leases = store.lock()?;
        let outcome = leases.release_all_except(&valid);
        leases.finish();
        let (_released, errors) = outcome?;
        if !errors.is_empty() {
            return Err(Error::failed(format!(
                "GC could not release every stale lease of network {:?}: {}",
                conf.network,
                errors.join("; ")
            )));
        }
        Ok(())
    }
}
