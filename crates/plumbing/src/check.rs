//! CHECK: compare what the kernel has with the `prevResult` of the ADD.
//!
//! Every failure is code 103 (`CHECK_FAILED`) with a message that names
//! what is missing or different.

use cni::{code, CniResult, Error, Interface, IpConfig, Request, Result};
use netlink::{Handle, LinkInfo, Netns, MAIN_TABLE};

/// A CHECK failure.
pub fn failed(msg: impl Into<String>) -> Error {
    Error::new(code::CHECK_FAILED, msg)
}

/// The `prevResult` CHECK compares against; an error when there is none.
pub fn prev_result(req: &Request) -> Result<CniResult> {
    req.prev_result()?.ok_or_else(|| {
        Error::invalid_config(
            "CHECK needs prevResult (the ADD's result) in the configuration; \
             the runtime passes it",
        )
    })
}

/// The container's interface in `result`: named `CNI_IFNAME`, inside
/// `CNI_NETNS`. Returns its index in `result.interfaces`.
pub fn container_interface<'r>(
    result: &'r CniResult,
    req: &Request,
) -> Result<(usize, &'r Interface)> {
    let i = result
        .interfaces
        .iter()
        .position(|i| i.name == req.ifname && i.sandbox == req.netns)
        .ok_or_else(|| {
            failed(format!(
                "prevResult has no interface {:?} with sandbox {:?}",
                req.ifname, req.netns
            ))
        })?;
    result
        .interfaces
        .get(i)
        .map(|iface| (i, iface))
        .ok_or_else(|| failed("prevResult changed while reading it"))
}

/// The link `iface.name` exists (through `nl`), is of `kind` and has the
/// MAC recorded in the result, if any. `place` says where, for messages.
pub fn link(nl: &mut Handle, iface: &Interface, kind: &str, place: &str) -> Result<LinkInfo> {
    let link = nl
        .find_link(&iface.name)?
        .ok_or_else(|| failed(format!("interface {:?} not found in {place}", iface.name)))?;
    if link.kind.as_deref() != Some(kind) {
        return Err(failed(format!(
            "interface {:?} in {place} is a {}, not a {kind}",
            iface.name,
            link.kind.as_deref().unwrap_or("device of no kind")
        )));
    }
    if !iface.mac.is_empty() {
        let have = link.mac.map(|m| m.to_string()).unwrap_or_default();
        if !have.eq_ignore_ascii_case(&iface.mac) {
            return Err(failed(format!(
                "interface {:?} in {place} has MAC {have}, prevResult says {}",
                iface.name, iface.mac
            )));
        }
    }
    Ok(link)
}

/// Every address in `ips` is on `link` and usable.
pub fn addresses<'i>(
    nl: &mut Handle,
    link: &LinkInfo,
    ips: impl IntoIterator<Item = &'i IpConfig>,
) -> Result<()> {
    let have = nl.addresses(Some(link.index), None)?;
    for ip in ips {
        match have.iter().find(|a| a.address == ip.address) {
            None => {
                return Err(failed(format!(
                    "address {} is not on {:?}",
                    ip.address, link.name
                )))
            }
            Some(a) if a.is_dad_failed() => {
                return Err(failed(format!(
                    "address {} on {:?} is a duplicate (IPv6 DAD failed)",
                    ip.address, link.name
                )))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// A kernel route satisfies a result route: same destination and table
/// (main unless given), same gateway and metric when the result names them.
/// A route without `gw` matches whatever gateway it was installed with
/// (the interface's gateway, or none).
pub fn route_matches(have: &netlink::Route, want: &cni::Route) -> bool {
    have.dst == want.dst.trunc()
        && have.table == Some(want.table.unwrap_or(MAIN_TABLE))
        && want.gw.is_none_or(|gw| have.gw == Some(gw))
        && want.priority.is_none_or(|p| have.metric == Some(p))
}

/// Every route in `routes` is in the namespace of `nl`.
pub fn routes(nl: &mut Handle, routes: &[cni::Route], place: &str) -> Result<()> {
    if routes.is_empty() {
        return Ok(());
    }
    let have = nl.routes(None, None)?;
    for want in routes {
        if !have.iter().any(|h| route_matches(h, want)) {
            let via = want.gw.map(|g| format!(" via {g}")).unwrap_or_default();
            return Err(failed(format!(
                "route to {}{via} is missing in {place}",
                want.dst
            )));
        }
    }
    Ok(())
}

/// The container side of a result: its interface exists as a `kind` with
/// the recorded MAC, carries the result's addresses, and the result's
/// routes are in place. Returns the interface's index in the result and
/// the link.
pub fn container(
    ns: &Netns,
    nl: &mut Handle,
    req: &Request,
    result: &CniResult,
    kind: &str,
) -> Result<(usize, LinkInfo)> {
    let place = format!("netns {}", ns.path());
    let (index, iface) = container_interface(result, req)?;
    let link = link(nl, iface, kind, &place)?;
    let ips = result
        .ips
        .iter()
        .filter(|ip| ip.interface.is_none_or(|i| i == index));
    addresses(nl, &link, ips)?;
    routes(nl, &result.routes, &place)?;
    Ok((index, link))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(dst: &str, gw: Option<&str>, table: u32, metric: Option<u32>) -> netlink::Route {
        let mut r = netlink::Route::new(dst.parse().unwrap());
        r.gw = gw.map(|g| g.parse().unwrap());
        r.table = Some(table);
        r.metric = metric;
        r
    }

    #[test]
    fn routes_without_gw_match_any_gateway() {
        let want = cni::Route::new("0.0.0.0/0".parse().unwrap(), None);
        assert!(route_matches(
            &kernel("0.0.0.0/0", Some("10.0.0.1"), 254, None),
            &want
        ));
        assert!(route_matches(&kernel("0.0.0.0/0", None, 254, None), &want));
        assert!(!route_matches(&kernel("0.0.0.0/0", None, 100, None), &want));
    }

    #[test]
    fn given_fields_must_agree() {
        let mut want = cni::Route::new(
            "10.9.0.5/16".parse().unwrap(),
            Some("10.0.0.1".parse().unwrap()),
        );
        let have = kernel("10.9.0.0/16", Some("10.0.0.1"), 254, Some(20));
        assert!(route_matches(&have, &want), "host bits of dst ignored");
        want.gw = Some("10.0.0.2".parse().unwrap());
        assert!(!route_matches(&have, &want));
        want.gw = None;
        want.priority = Some(20);
        assert!(route_matches(&have, &want));
        want.priority = Some(21);
        assert!(!route_matches(&have, &want));
        want.priority = None;
        want.table = Some(100);
        assert!(!route_matches(&have, &want));
        assert!(route_matches(
            &kernel("10.9.0.0/16", None, 100, None),
            &want
        ));
    }
}
