//! static's configuration and the reference's precedence between its
//! address sources:
//!
//! 1. `ipam.addresses`, plus the addresses of `CNI_ARGS IP=cidr[,cidr]`;
//!    `CNI_ARGS GATEWAY=ip[,ip]` sets the gateway of each `CNI_ARGS` address
//!    whose subnet contains it (not of the configured addresses);
//! 2. a non-empty `args.cni.ips` replaces all of those;
//! 3. a non-empty `runtimeConfig.ips` replaces everything before it.
//!
//! Addresses from `args.cni.ips` and `runtimeConfig.ips` carry no gateway.
//! Every address needs its prefix (`10.1.0.5/24`).

use cni::{code, Dns, Error, Request, Result, Route};
use ipam::addr::{parse_cidr, parse_ip};
use ipam::{check_per_family, ipam_keys, parse_routes, Requested, RouteConf, Source};
use ipnet::IpNet;
use serde::Deserialize;
use std::net::IpAddr;

#[derive(Deserialize, Default)]
#[serde(default)]
struct IpamKeys {
    addresses: Option<Vec<AddressConf>>,
    routes: Option<Vec<RouteConf>>,
    dns: Option<Dns>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AddressConf {
    address: Option<String>,
    gateway: Option<String>,
}

/// One address to hand out, with its prefix and optional gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub address: IpNet,
    pub gateway: Option<IpAddr>,
}

#[derive(Debug)]
pub struct Config {
    pub addresses: Vec<Address>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

fn cidr(text: &str, what: &str, code: u32) -> Result<IpNet> {
    parse_cidr(text).ok_or_else(|| {
        Error::new(
            code,
            format!(
                "{what} is expected to be in CIDR notation (such as 10.1.0.5/24), got: {text:?}"
            ),
        )
    })
}

impl Config {
    pub fn load(req: &Request) -> Result<Config> {
        let ipam: IpamKeys = ipam_keys(&req.conf)?;
        let args = req.cni_args(&["IP", "GATEWAY"])?;
        let requested = Requested::gather(&req.conf, &args)?;

        let from_list = |source: Source| -> Result<Vec<Address>> {
            requested
                .from(source)
                .map(|text| {
                    let what = format!("an entry of {source}");
                    Ok(Address {
                        address: cidr(text, &what, code::INVALID_CONFIG)?,
                        gateway: None,
                    })
                })
                .collect()
        };

        let mut from_env: Vec<Address> = requested
            .from(Source::CniArgs)
            .map(|text| {
                Ok(Address {
                    address: cidr(text, "CNI_ARGS IP", code::INVALID_ENV)?,
                    gateway: None,
                })
            })
            .collect::<Result<_>>()?;
        for text in args.get("GATEWAY").unwrap_or_default().split(',') {
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            let gw = parse_ip(text).ok_or_else(|| {
                Error::invalid_env(format!("invalid CNI_ARGS GATEWAY address {text:?}"))
            })?;
            for a in from_env.iter_mut().filter(|a| a.address.contains(&gw)) {
                a.gateway = Some(gw);
            }
        }

        let runtime = from_list(Source::RuntimeConfig)?;
        let args_ips = from_list(Source::Args)?;
        let addresses = if !runtime.is_empty() {
            runtime
        } else if !args_ips.is_empty() {
            args_ips
        } else {
            let mut configured = Vec::new();
            for (i, a) in ipam.addresses.unwrap_or_default().iter().enumerate() {
                let text = a.address.as_deref().unwrap_or_default();
                let address = cidr(
                    text,
                    &format!("ipam.addresses[{i}].address"),
                    code::INVALID_CONFIG,
                )?;
                let gateway = match a.gateway.as_deref().map(str::trim) {
                    None | Some("") => None,
                    Some(g) => Some(parse_ip(g).ok_or_else(|| {
                        Error::invalid_config(format!(
                            "ipam.addresses[{i}].gateway {g:?} is not an IP address"
                        ))
                    })?),
                };
                configured.push(Address { address, gateway });
            }
            configured.extend(from_env);
            configured
        };

        let v4 = addresses
            .iter()
            .filter(|a| a.address.addr().is_ipv4())
            .count();
        check_per_family(req.version, v4, addresses.len() - v4)?;
        Ok(Config {
            addresses,
            routes: parse_routes(&ipam.routes.unwrap_or_default())?,
            dns: ipam.dns.unwrap_or_default(),
        })
    }
}
