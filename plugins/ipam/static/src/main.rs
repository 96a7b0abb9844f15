//! CNI static IPAM plugin: returns the addresses, routes and DNS settings it
//! is given. It keeps no state, so DEL has nothing to undo.

#![no_main]

mod config;

use cni::{code, CniResult, Error, IpConfig, Plugin, Request, Result};
use config::Config;
use ipam::ipam_result;

struct Static;

impl Plugin for Static {
    fn add(&self, req: &Request) -> Result<CniResult> {
        let conf = Config::load(req)?;
        let ips = conf
            .addresses
            .iter()
            .map(|a| IpConfig {
                interface: None,
                address: a.address,
                gateway: a.gateway,
            })
            .collect();
        Ok(ipam_result(ips, conf.routes, conf.dns))
    }

    fn del(&self, _req: &Request) -> Result<()> {
        Ok(())
    }

    /// The configuration must be valid and, when the runtime passes the
    /// result of ADD, every address must be in it with its gateway.
    fn check(&self, req: &Request) -> Result<()> {
        let conf = Config::load(req)?;
        let Some(prev) = req.prev_result()? else {
            return Ok(());
        };
        for want in &conf.addresses {
            let found = prev
                .ips
                .iter()
                .find(|ip| ip.address.addr() == want.address.addr());
            let problem = match found {
                None => "is missing from the previous result".to_string(),
                Some(got) if want.gateway.is_some() && got.gateway != want.gateway => format!(
                    "has gateway {} in the previous result, expected {}",
                    got.gateway
                        .map(|g| g.to_string())
                        .unwrap_or_else(|| "none".into()),
                    want.gateway.map(|g| g.to_string()).unwrap_or_default()
                ),
                Some(_) => continue,
            };
            return Err(Error::new(
                code::CHECK_FAILED,
                format!(
                    "static: address {} of interface {} {problem}",
                    want.address, req.ifname
                ),
            ));
        }
        Ok(())
    }
}

cni::plugin_main!(Static, "static");
