//! Results passed along a chain in every version (CV-6, A-2), `prevResult`
//! without a version (CV-5), and the down-conversion rules for 0.1.0/0.2.0
//! results (CV-2).

use super::version::{ensure_lo_up, expect_content};
use super::*;
use crate::checks::{check_shape, ShapeError};
use crate::ensure;
use crate::harness::{expect_error, expect_ok, rt, CaseResult, Outcome};
use cni::{version::ALL, CniResult, Version};

pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for v in ALL.iter().copied() {
        cases.push(Case::new(
            format!("CV-6 chain-prevresult-{v}/static+loopback"),
            &[STATIC, LOOPBACK],
            move |env| chained(env, v),
        ));
    }
    cases.push(Case::new(
        "CV-5 prevresult-without-version/loopback",
        &[LOOPBACK],
        unversioned_prev_result,
    ));
    cases.push(Case::new(
        "CV-2 down-convert-no-ip/static",
        &[STATIC],
        |env| {
            let ns = env.netns();
            let v = Version::V0_2_0;
            let mut conf = request(env, STATIC, v.as_str());
            conf["ipam"]["addresses"] = json!([]);
            let out = env
                .call(STATIC, "ADD")
                .attach("cid-noip", &ns, "eth0")
                .run(&conf)?;
            if !env.supports(STATIC, v) {
                return env.unsupported(STATIC, v, "0.2.0 results", &out);
            }
            expect_error(&out).map_err(|why| {
                format!("a 0.2.0 result cannot carry zero addresses, so ADD must fail: {why}")
            })?;
            Ok(Outcome::Pass)
        },
    ));
    cases.push(Case::new(
        "CV-2 down-convert-routes-by-family/static",
        &[STATIC],
        routes_by_family,
    ));
    cases.push(Case::new(
        "CV-2 legacy-one-ip-per-family/static",
        &[STATIC],
        |env| {
            let mut conf = request(env, STATIC, "0.2.0");
            conf["ipam"]["addresses"] =
                json!([{"address": "10.201.0.5/24"}, {"address": "10.202.0.5/24"}]);
            two_per_family_refused(env, STATIC, conf)
        },
    ));
    cases.push(Case::new(
        "CV-2 legacy-one-ip-per-family/host-local",
        &[HOST_LOCAL],
        |env| {
            let mut conf = request(env, HOST_LOCAL, "0.2.0");
            conf["ipam"]["ranges"] =
                json!([[{"subnet": "10.200.0.0/24"}], [{"subnet": "10.202.0.0/24"}]]);
            let out = two_per_family_refused(env, HOST_LOCAL, conf)?;
            ensure!(
                leases(env).is_empty(),
                "the refused ADD left leases {:?}",
                leases(env)
            );
            Ok(out)
        },
    ));
    cases
}

/// [static, loopback] at `v`: loopback gets static's result as prevResult
/// and must hand back an equivalent result in the same version.
fn chained(env: &mut Env, v: Version) -> CaseResult {
    let ns = env.netns();
    for p in [STATIC, LOOPBACK] {
        if !env.supports(p, v) {
            let out = env
                .call(p, "ADD")
                .attach("cid-chain", &ns, "eth0")
                .run(&request(env, p, v.as_str()))?;
            return env.unsupported(p, v, &format!("{v} chaining"), &out);
        }
    }
    let cni = env.cni();
    let alone = env.list(v.as_str(), vec![static_plugin()])?;
    let expected = cni
        .add_network_list(&alone, &rt("cid-alone", &ns, "eth0"))
        .map_err(|e| format!("static alone at {v}: {e}"))?;
    let chain = env.list(v.as_str(), vec![static_plugin(), loopback()])?;
    let attachment = rt("cid-chain", &ns, "eth0");
    let got = cni
        .add_network_list(&chain, &attachment)
        .map_err(|e| format!("ADD of [static, loopback] at {v}: {e}"))?;
    let mut layout = None;
    match (check_shape(&expected, v), check_shape(&got, v)) {
        (Err(ShapeError::Broken(why)), _) => return Err(format!("static's own result: {why}")),
        (_, Err(ShapeError::Broken(why))) => {
            return Err(format!("loopback's chained result: {why}"))
        }
        (Err(ShapeError::Layout(why)), _) => layout = Some(format!("static: {why}")),
        (_, Err(ShapeError::Layout(why))) => layout = Some(format!("loopback: {why}")),
        (Ok(want), Ok(have)) => {
            expect_content(env, STATIC, &have, &ns)
                .map_err(|why| format!("loopback changed the prevResult it was given: {why}"))?;
            same_addressing(&want, &have)?;
        }
    }
    ensure_lo_up(env, &ns)?;
    cni.del_network_list(&chain, &attachment)
        .map_err(|e| format!("DEL of [static, loopback] at {v}: {e}"))?;
    Ok(match layout {
        Some(why) => Outcome::Differs(why),
        None => Outcome::Pass,
    })
}

/// A chained plugin must pass on every address, route and DNS setting it was given.
fn same_addressing(want: &CniResult, have: &CniResult) -> Result<(), String> {
    let ips = |r: &CniResult| {
        let mut v: Vec<String> = r
            .ips
            .iter()
            .map(|i| format!("{} gw {:?}", i.address, i.gateway))
            .collect();
        v.sort();
        v
    };
    let routes = |r: &CniResult| {
        let mut v: Vec<String> = r.plain_routes().iter().map(|r| format!("{r:?}")).collect();
        v.sort();
        v
    };
    ensure!(
        ips(want) == ips(have),
        "addresses changed along the chain: {:?} became {:?}",
        ips(want),
        ips(have)
    );
    ensure!(
        routes(want) == routes(have),
        "routes changed along the chain: {:?} became {:?}",
        routes(want),
        routes(have)
    );
    ensure!(
        want.dns == have.dns,
        "DNS changed along the chain: {:?} became {:?}",
        want.dns,
        have.dns
    );
    Ok(())
}

/// CV-5: a prevResult without `cniVersion` is read in the config's version.
fn unversioned_prev_result(env: &mut Env) -> CaseResult {
    let v = Version::V1_0_0;
    let ns = env.netns();
    let mut conf = request(env, LOOPBACK, v.as_str());
    conf["prevResult"] = json!({
        "ips": [{"address": STATIC_V4, "gateway": STATIC_GW4}],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": {"nameservers": ["10.201.0.1"]}});
    let out = env
        .call(LOOPBACK, "ADD")
        .attach("cid-cv5", &ns, "eth0")
        .run(&conf)?;
    if !env.supports(LOOPBACK, v) {
        return env.unsupported(LOOPBACK, v, "1.0.0 chaining", &out);
    }
    let result = expect_ok(&out, "ADD with an unversioned prevResult")?
        .ok_or("chained ADD printed no result")?;
    let parsed = match check_shape(&result, v) {
        Ok(r) => r,
        Err(ShapeError::Broken(why) | ShapeError::Layout(why)) => return Err(why),
    };
    ensure!(
        parsed
            .ips
            .iter()
            .any(|i| i.address.to_string() == STATIC_V4),
        "the prevResult's address {STATIC_V4} was not passed on: {result}"
    );
    Ok(Outcome::Pass)
}

/// CV-2: in 0.2.0, routes sit under the block of their family and are
/// dropped when that family has no address.
fn routes_by_family(env: &mut Env) -> CaseResult {
    let v = Version::V0_2_0;
    let ns = env.netns();
    let mut conf = request(env, STATIC, v.as_str());
    conf["ipam"]["routes"] = json!([
        {"dst": "0.0.0.0/0"},
        {"dst": "10.9.0.0/16", "gw": "10.201.0.9"},
        {"dst": "fd00:1::/64"}]);
    let out = env
        .call(STATIC, "ADD")
        .attach("cid-routes", &ns, "eth0")
        .run(&conf)?;
    if !env.supports(STATIC, v) {
        return env.unsupported(STATIC, v, "0.2.0 results", &out);
    }
    let r = expect_ok(&out, "ADD at 0.2.0")?.ok_or("ADD printed no result")?;
    if let Err(ShapeError::Broken(why) | ShapeError::Layout(why)) = check_shape(&r, v) {
        return Err(why);
    }
    let dsts = |block: &str| -> Vec<String> {
        let mut d: Vec<String> = r[block]["routes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x["dst"].as_str().map(String::from))
            .collect();
        d.sort();
        d
    };
    ensure!(
        r["ip4"]["ip"] == STATIC_V4,
        "ip4.ip is {}, want {STATIC_V4}",
        r["ip4"]["ip"]
    );
    ensure!(
        r["ip4"]["gateway"] == STATIC_GW4,
        "ip4.gateway is {}",
        r["ip4"]["gateway"]
    );
    ensure!(
        dsts("ip4") == ["0.0.0.0/0", "10.9.0.0/16"],
        "ip4.routes are {:?}",
        dsts("ip4")
    );
    ensure!(
        r["ip6"]["ip"] == STATIC_V6,
        "ip6.ip is {}, want {STATIC_V6}",
        r["ip6"]["ip"]
    );
    ensure!(
        dsts("ip6") == ["fd00:1::/64"],
        "ip6.routes are {:?}",
        dsts("ip6")
    );

    // Without an IPv6 address the IPv6 route has no block to go in.
    conf["ipam"]["addresses"] = json!([{"address": STATIC_V4}]);
    let out = env
        .call(STATIC, "ADD")
        .attach("cid-routes4", &ns, "eth0")
        .run(&conf)?;
    let r = expect_ok(&out, "ADD at 0.2.0 with IPv4 only")?.ok_or("ADD printed no result")?;
    ensure!(
        r.get("ip6").is_none(),
        "ip6 block without an IPv6 address: {r}"
    );
    let d4: Vec<&str> = r["ip4"]["routes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x["dst"].as_str())
        .collect();
    ensure!(
        !d4.contains(&"fd00:1::/64"),
        "the IPv6 route landed in the ip4 block: {d4:?}"
    );
    Ok(Outcome::Pass)
}

/// More than one address per family cannot be expressed before 0.3.0.
fn two_per_family_refused(env: &mut Env, p: &str, conf: Value) -> CaseResult {
    let ns = env.netns();
    let out = env
        .call(p, "ADD")
        .attach("cid-two", &ns, "eth0")
        .run(&conf)?;
    if !env.supports(p, Version::V0_2_0) {
        return env.unsupported(p, Version::V0_2_0, "0.2.0 results", &out);
    }
    expect_error(&out).map_err(|why| {
        format!("two IPv4 addresses cannot be expressed in 0.2.0, so ADD must fail: {why}")
    })?;
    Ok(Outcome::Pass)
}
