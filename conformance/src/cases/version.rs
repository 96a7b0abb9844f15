//! Versions: VERSION answers (VE-1), results in every version's layout
//! (V-2), a missing `cniVersion` (V-3), unknown versions (V-2) and the
//! per-verb version gates (V-4).

use super::*;
use crate::checks::{addresses, check_shape, first_of, ShapeError};
use crate::ensure;
use crate::harness::{expect_code, expect_error, expect_ok, rt, CaseResult, Outcome};
use cni::{version::ALL, CniResult, Version};

pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for p in KNOWN {
        cases.push(Case::new(
            format!("VE-1 version-reply/{p}"),
            &[],
            move |env| version_reply(env, p),
        ));
    }
    for p in CORE {
        for v in ALL.iter().copied() {
            cases.push(Case::new(
                format!("V-2 version-honoured-{v}/{p}"),
                &[p],
                move |env| honoured(env, p, v),
            ));
        }
    }
    for p in CORE {
        cases.push(Case::new(
            format!("V-2 unknown-version/{p}"),
            &[p],
            move |env| unknown_version(env, p),
        ));
        cases.push(Case::new(
            format!("V-3 missing-version/{p}"),
            &[p],
            move |env| missing_version(env, p),
        ));
        cases.push(Case::new(
            format!("V-4 check-gated-0.3.1/{p}"),
            &[p],
            move |env| {
                let out = env
                    .call(p, "CHECK")
                    .attach("cid-gate", "/run/netns/none", "eth0")
                    .run(&request(env, p, "0.3.1"))?;
                expect_code(
                    &out,
                    cni::code::INCOMPATIBLE_VERSION,
                    "CHECK with a 0.3.1 config",
                )?;
                Ok(Outcome::Pass)
            },
        ));
        for verb in ["STATUS", "GC"] {
            cases.push(Case::new(
                format!("V-4 {}-gated-1.0.0/{p}", verb.to_lowercase()),
                &[p],
                move |env| verb_gated(env, p, verb),
            ));
        }
    }
    cases
}

fn version_reply(env: &mut Env, p: &str) -> CaseResult {
    if !env.suite.dir.join(p).is_file() {
        return Ok(Outcome::Skip("plugin absent".into()));
    }
    let out = env
        .call(p, "VERSION")
        .run(&json!({"cniVersion": "0.4.0"}))?;
    let reply = expect_ok(&out, "VERSION")?.ok_or("VERSION printed nothing")?;
    let listed = reply
        .get("supportedVersions")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("no supportedVersions list in {reply}"))?;
    ensure!(!listed.is_empty(), "supportedVersions is empty");
    for v in listed {
        let s = v
            .as_str()
            .ok_or_else(|| format!("supportedVersions entry {v} is not a string"))?;
        ensure!(
            Version::parse(s).is_ok(),
            "supportedVersions lists {s:?}, which is no spec version"
        );
    }
    let answered = reply.get("cniVersion").and_then(Value::as_str);
    ensure!(
        answered.is_some_and(|a| Version::parse(a).is_ok()),
        "VERSION reply has no valid cniVersion: {reply}"
    );
    if answered != Some("0.4.0") {
        return Ok(Outcome::Differs(format!(
            "answers a 0.4.0 VERSION request with cniVersion {:?} (the spec says to echo the \
             request's version); supports {}",
            answered.unwrap_or_default(),
            env.supported(p)
        )));
    }
    Ok(Outcome::Pass)
}

/// ADD at `v` through a runtime, its result layout and content, then CHECK
/// (from 0.4.0) and DEL; afterwards nothing may be left behind.
fn honoured(env: &mut Env, p: &str, v: Version) -> CaseResult {
    let ns = env.netns();
    let add_out = || {
        env.call(p, "ADD")
            .attach("cid-version", &ns, "eth0")
            .run(&request(env, p, v.as_str()))
    };
    if !env.supports(p, v) {
        return env.unsupported(p, v, &format!("{v} results"), &add_out()?);
    }
    let list = env.list(v.as_str(), vec![plugin_conf(env, p)])?;
    let cni = env.cni();
    let attachment = rt("cid-version", &ns, "eth0");
    let result = cni
        .add_network_list(&list, &attachment)
        .map_err(|e| format!("ADD at {v}: {e}"))?;
    let mut layout = None;
    match check_shape(&result, v) {
        Ok(parsed) => expect_content(env, p, &parsed, &ns)?,
        Err(ShapeError::Broken(why)) => return Err(why),
        Err(ShapeError::Layout(why)) => layout = Some(why),
    }
    if p == LOOPBACK {
        ensure_lo_up(env, &ns)?;
    }
    if v.supports_check() {
        cni.check_network_list(&list, &attachment)
            .map_err(|e| format!("CHECK right after ADD at {v}: {e}"))?;
    }
    cni.del_network_list(&list, &attachment)
        .map_err(|e| format!("DEL at {v}: {e}"))?;
    if p == HOST_LOCAL {
        let left = leases(env);
        ensure!(left.is_empty(), "DEL at {v} left leases {left:?}");
    }
    Ok(match layout {
        Some(why) => Outcome::Differs(format!("{why}; ADD/DEL otherwise work")),
        None => Outcome::Pass,
    })
}

/// What each core plugin's default configuration must produce.
pub fn expect_content(env: &Env, p: &str, r: &CniResult, netns: &str) -> Result<(), String> {
    let addrs = addresses(r);
    match p {
        LOOPBACK => {
            ensure!(
                addrs.iter().any(|a| a == "127.0.0.1/8"),
                "loopback result lacks 127.0.0.1/8: {addrs:?}"
            );
            if !r.interfaces.is_empty() {
                let lo = &r.interfaces[0];
                ensure!(
                    lo.name == "lo",
                    "loopback reports interface {:?}, not lo",
                    lo.name
                );
                ensure!(
                    lo.sandbox.is_empty() || lo.sandbox == netns,
                    "loopback reports sandbox {:?}, not {netns}",
                    lo.sandbox
                );
            }
        }
        HOST_LOCAL => {
            let v4 = first_of(r, true).ok_or("no IPv4 address from the IPv4 range")?;
            let v6 = first_of(r, false).ok_or("no IPv6 address from the IPv6 range")?;
            let net4: ipnet::IpNet = V4_SUBNET.parse().map_err(|_| "suite bug")?;
            let net6: ipnet::IpNet = V6_SUBNET.parse().map_err(|_| "suite bug")?;
            ensure!(
                net4.contains(&v4.addr()) && v4.prefix_len() == 24,
                "{v4} is not in {V4_SUBNET}"
            );
            ensure!(
                net6.contains(&v6.addr()) && v6.prefix_len() == 64,
                "{v6} is not in {V6_SUBNET}"
            );
            let gw4 = r
                .ips
                .iter()
                .find(|i| i.address == v4)
                .and_then(|i| i.gateway);
            ensure!(
                gw4.map(|g| g.to_string()).as_deref() == Some("10.200.0.1"),
                "IPv4 gateway should default to the range's first address, got {gw4:?}"
            );
            let held = leases(env);
            ensure!(
                held.contains(&v4.addr().to_string()) && held.contains(&v6.addr().to_string()),
                "result addresses {addrs:?} are not recorded as leases ({held:?})"
            );
        }
        STATIC => {
            ensure!(
                addrs == [STATIC_V4, STATIC_V6],
                "static returned {addrs:?}, configured [{STATIC_V4}, {STATIC_V6}]"
            );
            let gw = r.ips.first().and_then(|i| i.gateway).map(|g| g.to_string());
            ensure!(
                gw.as_deref() == Some(STATIC_GW4),
                "static gateway {gw:?}, configured {STATIC_GW4}"
            );
            let dsts: Vec<String> = r.routes.iter().map(|r| r.dst.to_string()).collect();
            ensure!(
                dsts.contains(&"0.0.0.0/0".to_string())
                    && dsts.contains(&"fd00:1::/64".to_string()),
                "static routes {dsts:?} lack the configured ones"
            );
            ensure!(
                r.dns.nameservers == ["10.201.0.1"],
                "static DNS {:?} is not the configured one",
                r.dns
            );
        }
        _ => {}
    }
    Ok(())
}

/// `lo` in `netns` must be up (A-1 for loopback).
pub fn ensure_lo_up(env: &Env, netns: &str) -> Result<(), String> {
    let link = env.ip_in(netns, &["-o", "link", "show", "lo"])?;
    ensure!(
        link.contains(",UP") || link.contains("<UP"),
        "lo is not up after ADD: {link}"
    );
    let addrs = env.ip_in(netns, &["-o", "addr", "show", "lo"])?;
    ensure!(
        addrs.contains("127.0.0.1/8"),
        "lo has no 127.0.0.1/8 after ADD: {addrs}"
    );
    Ok(())
}

fn unknown_version(env: &mut Env, p: &str) -> CaseResult {
    let ns = env.netns();
    for bogus in ["9.9.9", "1.2.0"] {
        let out = env
            .call(p, "ADD")
            .attach("cid-unknown", &ns, "eth0")
            .run(&request(env, p, bogus))?;
        expect_code(
            &out,
            cni::code::INCOMPATIBLE_VERSION,
            &format!("ADD at cniVersion {bogus}"),
        )?;
    }
    if p == HOST_LOCAL {
        ensure!(
            leases(env).is_empty(),
            "a refused ADD left leases {:?}",
            leases(env)
        );
    }
    Ok(Outcome::Pass)
}

/// No `cniVersion`: the reference reads it as 0.1.0, the docs say 0.2.0;
/// either way the answer is a legacy result.
fn missing_version(env: &mut Env, p: &str) -> CaseResult {
    let ns = env.netns();
    let mut conf = request(env, p, "");
    if let Some(o) = conf.as_object_mut() {
        o.remove("cniVersion");
    }
    if !env.supports(p, Version::V0_1_0) && !env.supports(p, Version::V0_2_0) {
        let out = env
            .call(p, "ADD")
            .attach("cid-nover", &ns, "eth0")
            .run(&conf)?;
        let e = expect_error(&out)?;
        return Ok(Outcome::Differs(format!(
            "supports {} only, so a config without cniVersion (0.1.0) is refused (code {})",
            env.supported(p),
            e.code
        )));
    }
    let out = env
        .call(p, "ADD")
        .attach("cid-nover", &ns, "eth0")
        .run(&conf)?;
    let result = expect_ok(&out, "ADD without cniVersion")?.ok_or("ADD printed no result")?;
    let label = result
        .get("cniVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let v = match label {
        "0.1.0" => Version::V0_1_0,
        "0.2.0" => Version::V0_2_0,
        other => {
            return Err(format!(
                "a config without cniVersion must be answered as 0.1.0 (or 0.2.0), got {other:?}"
            ))
        }
    };
    let outcome = match check_shape(&result, v) {
        Ok(_) => Outcome::Pass,
        Err(ShapeError::Broken(why)) => return Err(why),
        Err(ShapeError::Layout(why)) => Outcome::Differs(why),
    };
    let out = env
        .call(p, "DEL")
        .attach("cid-nover", &ns, "eth0")
        .run(&conf)?;
    expect_ok(&out, "DEL without cniVersion")?;
    if p == HOST_LOCAL {
        ensure!(leases(env).is_empty(), "DEL left leases {:?}", leases(env));
    }
    Ok(outcome)
}

/// STATUS and GC exist from 1.1.0: with a 1.0.0 config they are refused with code 1.
fn verb_gated(env: &mut Env, p: &str, verb: &str) -> CaseResult {
    let out = env.call(p, verb).run(&request(env, p, "1.0.0"))?;
    if env.supports(p, Version::V1_1_0) {
        expect_code(
            &out,
            cni::code::INCOMPATIBLE_VERSION,
            &format!("{verb} with a 1.0.0 config"),
        )?;
        return Ok(Outcome::Pass);
    }
    let e =
        expect_error(&out).map_err(|why| format!("{verb} (which this plugin predates): {why}"))?;
    if e.code == cni::code::INCOMPATIBLE_VERSION {
        return Ok(Outcome::Pass);
    }
    Ok(Outcome::Differs(format!(
        "predates {verb} (supports {}): answers it with code {} ({}) instead of code 1",
        env.supported(p),
        e.code,
        e.msg
    )))
}
