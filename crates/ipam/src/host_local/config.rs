//! host-local's configuration: the keys of the `ipam` object, the
//! `ipRanges` capability, and the addresses a caller asks for.

use crate::addr::parse_ip_or_cidr;
use crate::{
    check_per_family, ipam_keys, parse_range_sets, parse_routes, RangeConf, RangeSet, Requested,
    RouteConf, Source, DEFAULT_DATA_DIR,
};
use cni::{code, Error, Request, Result, Route};
use serde::Deserialize;
use std::net::IpAddr;
use std::path::PathBuf;

/// The keys of `ipam`, matched ignoring case as Go does.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct IpamKeys {
    // The legacy single range, prepended to `ranges` when `subnet` is set.
    subnet: Option<String>,
    range_start: Option<String>,
    range_end: Option<String>,
    gateway: Option<String>,
    ranges: Option<Vec<Vec<RangeConf>>>,
    routes: Option<Vec<RouteConf>>,
    data_dir: Option<String>,
    resolv_conf: Option<String>,
}

/// A validated host-local configuration.
#[derive(Debug)]
pub struct Config {
    pub network: String,
    /// `runtimeConfig.ipRanges`, then the legacy range, then `ranges`.
    pub ranges: Vec<RangeSet>,
    pub routes: Vec<Route>,
    pub data_dir: PathBuf,
    pub resolv_conf: Option<PathBuf>,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

impl Config {
    pub fn load(req: &Request) -> Result<Config> {
        let ipam: IpamKeys = ipam_keys(&req.conf)?;

        let mut sets: Vec<Vec<RangeConf>> = Vec::new();
        if let Some(v) = req.conf.runtime_config("ipRanges") {
            let runtime: Vec<Vec<RangeConf>> = cni::ci::from_value(v.clone()).map_err(|e| {
                Error::invalid_config(format!(
                    "runtimeConfig.ipRanges must be a list of range sets like ipam.ranges: {e}"
                ))
            })?;
            sets.extend(runtime);
        }
        if non_empty(ipam.subnet.clone()).is_some() {
            sets.push(vec![RangeConf {
                subnet: ipam.subnet,
                range_start: ipam.range_start,
                range_end: ipam.range_end,
                gateway: ipam.gateway,
            }]);
        }
        sets.extend(ipam.ranges.unwrap_or_default());
        if sets.is_empty() {
            return Err(Error::invalid_config(
                "no IP ranges specified: set ipam.ranges (or the single-range ipam.subnet)",
            ));
        }
        let ranges = parse_range_sets(&sets)?;
        let v4 = ranges.iter().filter(|s| s.is_v4()).count();
        check_per_family(req.version, v4, ranges.len() - v4)?;

        Ok(Config {
            network: req.conf.name.clone(),
            ranges,
            routes: parse_routes(&ipam.routes.unwrap_or_default())?,
            data_dir: PathBuf::from(
                non_empty(ipam.data_dir).unwrap_or_else(|| DEFAULT_DATA_DIR.to_string()),
            ),
            resolv_conf: non_empty(ipam.resolv_conf).map(PathBuf::from),
        })
    }

    /// The addresses asked for through `CNI_ARGS IP=`, `args.cni.ips` and
    /// `runtimeConfig.ips` together (a `/prefix` is accepted and ignored).
    pub fn requested(req: &Request) -> Result<Vec<IpAddr>> {
        let args = req.cni_args(&["IP"])?;
        let requested = Requested::gather(&req.conf, &args)?;
        requested
            .items
            .iter()
            .map(|(source, text)| {
                parse_ip_or_cidr(text).map(|(ip, _)| ip).ok_or_else(|| {
                    let code = match source {
                        Source::CniArgs => code::INVALID_ENV,
                        _ => code::INVALID_CONFIG,
                    };
                    Error::new(
                        code,
                        format!("invalid address {text:?} in {source}: expected an IP address such as 10.1.0.5"),
                    )
                })
            })
            .collect()
    }
}
