//! Bad input: missing or invalid protocol variables (E-1, ER-3 code 4),
//! undecodable configuration (code 6), invalid network names (code 7), and
//! what a plugin does without CNI_COMMAND (E-2). Bad input changes nothing.

use super::*;
use crate::ensure;
use crate::harness::{expect_code, expect_ok, CaseResult, Outcome};
use cni::code;

pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for p in CORE {
        cases.push(Case::new(
            format!("E-1 missing-env-add/{p}"),
            &[p],
            move |env| missing_env_add(env, p),
        ));
        cases.push(Case::new(
            format!("E-1 missing-env-del/{p}"),
            &[p],
            move |env| missing_env_del(env, p),
        ));
        cases.push(Case::new(
            format!("E-1 missing-env-check/{p}"),
            &[p],
            move |env| missing_env_check(env, p),
        ));
        cases.push(Case::new(format!("E-2 no-command/{p}"), &[p], move |env| {
            no_command(env, p)
        }));
        cases.push(Case::new(
            format!("ER-3 unknown-command/{p}"),
            &[p],
            move |env| {
                let conf = request(env, p, env.usual_version(p).as_str());
                for cmd in ["FROB", "add", "DELETE"] {
                    let out = env
                        .call(p, cmd)
                        .attach("cid-cmd", "/run/netns/none", "eth0")
                        .run(&conf)?;
                    expect_code(&out, code::INVALID_ENV, &format!("CNI_COMMAND={cmd}"))?;
                }
                unchanged(env, p)
            },
        ));
        cases.push(Case::new(
            format!("ER-3 invalid-containerid/{p}"),
            &[p],
            move |env| invalid_container_id(env, p),
        ));
        cases.push(Case::new(
            format!("ER-3 invalid-ifname/{p}"),
            &[p],
            move |env| invalid_ifname(env, p),
        ));
        cases.push(Case::new(
            format!("ER-3 decode-failure/{p}"),
            &[p],
            move |env| {
                let ns = env.netns();
                for bad in ["", "{", "[]", "\"text\"", "{\"name\": \"x\", \"type\": "] {
                    let out = env
                        .call(p, "ADD")
                        .attach("cid-decode", &ns, "eth0")
                        .run_bytes(bad.as_bytes())?;
                    expect_code(&out, code::DECODE_FAILURE, &format!("stdin {bad:?}"))?;
                }
                unchanged(env, p)
            },
        ));
        cases.push(Case::new(
            format!("ER-3 invalid-network-name/{p}"),
            &[p],
            move |env| invalid_name(env, p),
        ));
    }
    for p in [HOST_LOCAL, STATIC] {
        cases.push(Case::new(
            format!("ER-3 invalid-config/{p}"),
            &[p],
            move |env| invalid_config(env, p),
        ));
    }
    cases
}

/// IPAM configurations with a bad value: code 7 (invalid network config),
/// nothing allocated.
fn invalid_config(env: &mut Env, p: &str) -> CaseResult {
    let ns = env.netns();
    let data_dir = env.data_dir();
    let bad: Vec<(&str, Value)> = if p == HOST_LOCAL {
        vec![
            (
                "a /33 subnet",
                json!({"ranges": [[{"subnet": "10.0.0.0/33"}]]}),
            ),
            ("no ranges", json!({})),
            (
                "rangeStart outside the subnet",
                json!({"ranges": [[{"subnet": V4_SUBNET, "rangeStart": "10.1.0.5"}]]}),
            ),
            ("ranges of the wrong type", json!({"ranges": "10.0.0.0/24"})),
        ]
    } else {
        vec![
            (
                "an address without prefix",
                json!({"addresses": [{"address": "10.0.0.5"}]}),
            ),
            (
                "an address that is no address",
                json!({"addresses": [{"address": "banana/24"}]}),
            ),
            (
                "addresses of the wrong type",
                json!({"addresses": "10.0.0.5/24"}),
            ),
        ]
    };
    let mut other_codes = Vec::new();
    for (what, ipam) in bad {
        let mut conf = request(env, p, env.usual_version(p).as_str());
        let mut ipam = ipam;
        ipam["type"] = p.into();
        ipam["dataDir"] = data_dir.clone().into();
        conf["ipam"] = ipam;
        let out = env
            .call(p, "ADD")
            .attach("cid-config", &ns, "eth0")
            .run(&conf)?;
        let e =
            crate::harness::expect_error(&out).map_err(|why| format!("ADD with {what}: {why}"))?;
        if e.code != code::INVALID_CONFIG {
            other_codes.push(format!("{what}: code {}", e.code));
        }
    }
    unchanged(env, p)?;
    if other_codes.is_empty() {
        Ok(Outcome::Pass)
    } else {
        Ok(Outcome::Differs(format!(
            "refuses invalid configurations, but not with code 7 (invalid network config): {}",
            other_codes.join("; ")
        )))
    }
}

/// Nothing may have been allocated by a refused request.
fn unchanged(env: &Env, p: &str) -> CaseResult {
    if p == HOST_LOCAL {
        let left = leases(env);
        ensure!(left.is_empty(), "a refused request left leases {left:?}");
    }
    Ok(Outcome::Pass)
}

fn missing_env_add(env: &mut Env, p: &str) -> CaseResult {
    let ns = env.netns();
    let conf = request(env, p, env.usual_version(p).as_str());
    let mut unnamed = Vec::new();
    for var in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"] {
        for how in ["unset", "empty"] {
            let call = env.call(p, "ADD").attach("cid-env", &ns, "eth0");
            let call = if how == "unset" {
                call.unset(var)
            } else {
                call.var(var, "")
            };
            let e = expect_code(
                &call.run(&conf)?,
                code::INVALID_ENV,
                &format!("ADD with {var} {how}"),
            )?;
            if !e.msg.contains(var)
                && !e.msg.contains(&var.to_lowercase())
                && !unnamed.contains(&var)
            {
                unnamed.push(var);
            }
        }
    }
    unchanged(env, p)?;
    // The spec lists CNI_PATH as optional; the reference library requires it.
    let out = env
        .call(p, "ADD")
        .attach("cid-env", &ns, "eth0")
        .unset("CNI_PATH")
        .run(&conf)?;
    if out.success() {
        let del = env
            .call(p, "DEL")
            .attach("cid-env", &ns, "eth0")
            .run(&conf)?;
        expect_ok(&del, "DEL after an ADD without CNI_PATH")?;
    } else {
        expect_code(&out, code::INVALID_ENV, "ADD without CNI_PATH")?;
    }
    unchanged(env, p)?;
    if unnamed.is_empty() {
        Ok(Outcome::Pass)
    } else {
        Ok(Outcome::Differs(format!(
            "refuses with code 4 but the message does not name the missing {unnamed:?}"
        )))
    }
}

fn missing_env_del(env: &mut Env, p: &str) -> CaseResult {
    let conf = request(env, p, env.usual_version(p).as_str());
    for var in ["CNI_CONTAINERID", "CNI_IFNAME"] {
        let out = env
            .call(p, "DEL")
            .attach("cid-env", "/run/netns/none", "eth0")
            .unset(var)
            .run(&conf)?;
        expect_code(&out, code::INVALID_ENV, &format!("DEL without {var}"))?;
    }
    // CNI_NETNS is optional for DEL (D-1).
    let out = env
        .call(p, "DEL")
        .attach("cid-env", "", "eth0")
        .unset("CNI_NETNS")
        .run(&conf)?;
    expect_ok(&out, "DEL without CNI_NETNS (it is optional for DEL)")?;
    Ok(Outcome::Pass)
}

fn missing_env_check(env: &mut Env, p: &str) -> CaseResult {
    let v = env.usual_version(p);
    if !v.supports_check() {
        return no_check(env, p);
    }
    let ns = env.netns();
    let conf = request(env, p, v.as_str());
    for var in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"] {
        let out = env
            .call(p, "CHECK")
            .attach("cid-env", &ns, "eth0")
            .unset(var)
            .run(&conf)?;
        expect_code(&out, code::INVALID_ENV, &format!("CHECK without {var}"))?;
    }
    Ok(Outcome::Pass)
}

/// E-2: without CNI_COMMAND the reference prints what it is and which
/// versions it speaks, and exits 0; users run `./plugin` to find out.
fn no_command(env: &mut Env, p: &str) -> CaseResult {
    let out = env.call(p, "").unset("CNI_COMMAND").run_bytes(b"")?;
    let text = format!("{}{}", out.stdout_text(), out.stderr_text());
    if out.success() && !text.trim().is_empty() {
        return Ok(Outcome::Pass);
    }
    Ok(Outcome::Differs(format!(
        "without CNI_COMMAND it exits {:?} printing {:?} (the reference prints its name and \
         versions and exits 0)",
        out.code,
        crate::harness::short(&text)
    )))
}

fn invalid_container_id(env: &mut Env, p: &str) -> CaseResult {
    let ns = env.netns();
    let conf = request(env, p, env.usual_version(p).as_str());
    for id in ["-x", "a b", "a/b", ".x", "../../etc/passwd", "x\ty"] {
        let out = env.call(p, "ADD").attach(id, &ns, "eth0").run(&conf)?;
        expect_code(&out, code::INVALID_ENV, &format!("CNI_CONTAINERID {id:?}"))?;
    }
    unchanged(env, p)
}

fn invalid_ifname(env: &mut Env, p: &str) -> CaseResult {
    let ns = env.netns();
    let conf = request(env, p, env.usual_version(p).as_str());
    for name in ["eth0123456789abcd", "a/b", "a:b", "a b", ".", ".."] {
        let out = env
            .call(p, "ADD")
            .attach("cid-ifname", &ns, name)
            .run(&conf)?;
        expect_code(&out, code::INVALID_ENV, &format!("CNI_IFNAME {name:?}"))?;
    }
    unchanged(env, p)
}

fn invalid_name(env: &mut Env, p: &str) -> CaseResult {
    let ns = env.netns();
    let base = request(env, p, env.usual_version(p).as_str());
    let mut missing = base.clone();
    if let Some(o) = missing.as_object_mut() {
        o.remove("name");
    }
    let mut cases = vec![("no name".to_string(), missing)];
    for bad in ["", "a/b", "../net", "has space", "-lead"] {
        let mut c = base.clone();
        c["name"] = bad.into();
        cases.push((format!("name {bad:?}"), c));
    }
    for (what, conf) in cases {
        let out = env
            .call(p, "ADD")
            .attach("cid-name", &ns, "eth0")
            .run(&conf)?;
        expect_code(&out, code::INVALID_CONFIG, &format!("ADD with {what}"))?;
    }
    unchanged(env, p)
}
