//! The iptables backend, for hosts that must stay on iptables, and the removal
//! of legacy-iptables state.
//!
//! It writes the reference's chains exactly:
//!
//! ```text
//! -A POSTROUTING -s 10.1.0.5/32 -m comment --comment "name: \"net\" id: \"cid\"" -j CNI-<hash>
//! -A CNI-<hash> -d 10.1.0.0/24 -m comment --comment "…" -j ACCEPT
//! -A CNI-<hash> ! -d 224.0.0.0/4 -m comment --comment "…" -j MASQUERADE
//! ```
//!
//! Each operation reads table nat once (`iptables-save -t nat`) and writes it
//! once (`iptables-restore --noflush`), per address family: two execs, never
//! one per rule. Whichever iptables the host's alternatives select is used.

use crate::cleanup::{self, Scope};
use crate::iptchains::{NatRule, NatView, Step};
use crate::names::{ipt_chain, ipt_comment};
use crate::{Error, Instance, Masquerade, Result};
use cni::skel::Attachment;
use ipnet::IpNet;
use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};

/// A pair of save/restore binaries for one address family.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    pub save: &'static str,
    pub restore: &'static str,
    pub v6: bool,
}

pub const IPV4: Tool = Tool {
    save: "iptables-save",
    restore: "iptables-restore",
    v6: false,
};
pub const IPV6: Tool = Tool {
    save: "ip6tables-save",
    restore: "ip6tables-restore",
    v6: true,
};
const LEGACY_IPV4: Tool = Tool {
    save: "iptables-legacy-save",
    restore: "iptables-legacy-restore",
    v6: false,
};
const LEGACY_IPV6: Tool = Tool {
    save: "ip6tables-legacy-save",
    restore: "ip6tables-legacy-restore",
    v6: true,
};

impl Tool {
    fn multicast(&self) -> &'static str {
        if self.v6 {
            "ff00::/8"
        } else {
            "224.0.0.0/4"
        }
    }

    /// Table nat as `<tool>-save` prints it; None when the tool is missing.
    pub fn save_nat(&self) -> Result<Option<Saved>> {
        let out = match Command::new(self.save)
            .args(["-t", "nat"])
            .stdin(Stdio::null())
            .output()
        {
            Ok(o) => o,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::Io {
                    what: format!("running {}", self.save),
                    source: e,
                })
            }
        };
        if !out.status.success() {
            return Err(Error::Tool {
                tool: format!("{} -t nat", self.save),
                msg: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(Some(Saved::parse(&String::from_utf8_lossy(&out.stdout))))
    }

    /// Apply `script` with one `<tool>-restore --noflush`.
    pub fn restore(&self, script: &str) -> Result<()> {
        let run = || -> std::io::Result<std::process::Output> {
            let mut child = Command::new(self.restore)
                .args(["--noflush", "--wait"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()?;
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(script.as_bytes())?;
            }
            child.wait_with_output()
        };
        let out = run().map_err(|e| Error::Io {
            what: format!("running {}", self.restore),
            source: e,
        })?;
        if !out.status.success() {
            return Err(Error::Tool {
                tool: format!("{} --noflush", self.restore),
                msg: format!(
                    "{} (input was: {})",
                    String::from_utf8_lossy(&out.stderr).trim(),
                    script.trim().replace('\n', "; ")
                ),
            });
        }
        Ok(())
    }
}

/// One `-A` line of iptables-save.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SavedRule {
    pub chain: String,
    /// Everything after `-A <chain>`, unquoted.
    pub args: Vec<String>,
    pub source: Option<String>,
    /// (negated, value)
    pub destination: Option<(bool, String)>,
    pub comment: Option<String>,
    /// `-j` or `-g` target.
    pub target: Option<String>,
}

/// The nat table from iptables-save.
#[derive(Debug, Clone, Default)]
pub struct Saved {
    pub chains: Vec<String>,
    pub rules: Vec<SavedRule>,
}

impl Saved {
    /// Read the `*nat` section; other lines are ignored.
    pub fn parse(text: &str) -> Saved {
        let mut s = Saved::default();
        let mut in_nat = false;
        for line in text.lines() {
            let line = line.trim();
            if let Some(table) = line.strip_prefix('*') {
                in_nat = table == "nat";
            } else if line == "COMMIT" {
                in_nat = false;
            } else if !in_nat {
                continue;
            } else if let Some(decl) = line.strip_prefix(':') {
                if let Some(name) = decl.split_whitespace().next() {
                    s.chains.push(name.to_string());
                }
            } else if let Some(rule) = SavedRule::parse(line) {
                s.rules.push(rule);
            }
        }
        s
    }

    pub fn view(&self) -> NatView<Vec<String>> {
        NatView {
            chains: self.chains.clone(),
            rules: self
                .rules
                .iter()
                .map(|r| NatRule {
                    id: r.args.clone(),
                    chain: r.chain.clone(),
                    target: r.target.clone(),
                    comment: r.comment.clone(),
                })
                .collect(),
        }
    }
}

impl SavedRule {
    fn parse(line: &str) -> Option<SavedRule> {
        let words = split_words(line);
        let (verb, chain, args) = match words.as_slice() {
            [verb, chain, args @ ..] => (verb, chain, args),
            _ => return None,
        };
        if verb != "-A" {
            return None;
        }
        let mut r = SavedRule {
            chain: chain.clone(),
            args: args.to_vec(),
            ..Default::default()
        };
        let mut negate = false;
        let mut it = args.iter();
        while let Some(w) = it.next() {
            let mut value = || it.next().cloned();
            match w.as_str() {
                "!" => {
                    negate = true;
                    continue;
                }
                "-s" | "--source" => r.source = value(),
                "-d" | "--destination" => r.destination = value().map(|v| (negate, v)),
                "--comment" => r.comment = value(),
                "-j" | "--jump" | "-g" | "--goto" => r.target = value(),
                _ => {}
            }
            negate = false;
        }
        Some(r)
    }
}

/// Split a line into words the way iptables-restore does: blanks separate,
/// double quotes group, and inside quotes a backslash takes the next
/// character literally.
pub fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let (mut in_word, mut quoted, mut escaped) = (false, false, false);
    for c in line.chars() {
        if quoted {
            if escaped {
                cur.push(c);
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                quoted = false;
            } else {
                cur.push(c);
            }
        } else if c == '"' {
            quoted = true;
            in_word = true;
        } else if c.is_whitespace() {
            if in_word {
                words.push(std::mem::take(&mut cur));
                in_word = false;
            }
        } else {
            cur.push(c);
            in_word = true;
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// Quote one word for iptables-restore when needed.
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| !c.is_whitespace() && c != '"' && c != '\\' && c != '\'');
    if plain {
        return word.to_string();
    }
    let mut q = String::with_capacity(word.len() + 2);
    q.push('"');
    for c in word.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// One restore line of `words`, quoted as needed.
fn line(words: &[&str]) -> String {
    let mut l = words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
    l.push('\n');
    l
}

/// The restore script for removal steps: rule deletions, then flush and
/// delete of each chain (flushes first, so chains referencing each other go).
pub fn removal_script(steps: &[Step<Vec<String>>]) -> String {
    let mut s = String::from("*nat\n");
    let mut chains = Vec::new();
    for step in steps {
        match step {
            Step::DeleteRule { chain, id } => {
                let mut w = vec!["-D", chain.as_str()];
                w.extend(id.iter().map(String::as_str));
                s.push_str(&line(&w));
            }
            Step::DeleteChain(c) => chains.push(c.as_str()),
        }
    }
    for c in &chains {
        s.push_str(&line(&["-F", c]));
    }
    for c in &chains {
        s.push_str(&line(&["-X", c]));
    }
    s.push_str("COMMIT\n");
    s
}

/// Remove what `scope` covers from legacy (x_tables) iptables, if this
/// namespace has a legacy nat table at all. Running a legacy tool otherwise
/// would instantiate the table, so the kernel's list is checked first.
pub fn cleanup_legacy(scope: &Scope) -> Result<()> {
    for (tool, names) in [
        (LEGACY_IPV4, "ip_tables_names"),
        (LEGACY_IPV6, "ip6_tables_names"),
    ] {
        // thread-self: the namespace of this thread, which may have setns'd.
        let path = format!("/proc/thread-self/net/{names}");
        let loaded = std::fs::read_to_string(&path).unwrap_or_default();
        if !loaded.lines().any(|l| l.trim() == "nat") {
            continue;
        }
        // Hosts without the -legacy names have legacy as the plain tool.
        let tool = if which(tool.save) {
            tool
        } else if tool.v6 {
            IPV6
        } else {
            IPV4
        };
        let Some(saved) = tool.save_nat()? else {
            continue; // no tool, so nothing the reference could have made
        };
        let steps = scope.plan(&saved.view());
        if !steps.is_empty() {
            tool.restore(&removal_script(&steps))?;
        }
    }
    Ok(())
}

fn which(bin: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path).any(|d| d.join(bin).is_file())
}

/// Masquerade with the reference's iptables chains.
pub struct Iptables;

impl Iptables {
    fn add_family(&self, tool: Tool, who: &Instance, addrs: &[&IpNet]) -> Result<()> {
        let chain = ipt_chain(who.network, who.container_id);
        let comment = ipt_comment(who.network, who.container_id);
        let saved = tool
            .save_nat()?
            .ok_or_else(|| Error::Config(format!("{} not found in PATH", tool.save)))?;

        // Declaring an existing chain in --noflush mode empties it; -F makes
        // that explicit for any iptables version.
        let mut s = format!("*nat\n:{chain} - [0:0]\n");
        s.push_str(&line(&["-F", &chain]));
        // The reference appends "accept own subnet" and "masquerade unless
        // multicast" per address, skipping duplicates; same order here.
        let mut rules: Vec<String> = Vec::new();
        for a in addrs {
            let net = a.trunc().to_string();
            for r in [
                line(&[
                    "-A",
                    &chain,
                    "-d",
                    &net,
                    "-m",
                    "comment",
                    "--comment",
                    &comment,
                    "-j",
                    "ACCEPT",
                ]),
                line(&[
                    "-A",
                    &chain,
                    "!",
                    "-d",
                    tool.multicast(),
                    "-m",
                    "comment",
                    "--comment",
                    &comment,
                    "-j",
                    "MASQUERADE",
                ]),
            ] {
                if !rules.contains(&r) {
                    rules.push(r);
                }
            }
        }
        rules.iter().for_each(|r| s.push_str(r));
        // Keep the jumps that are still right, drop the others.
        let mut have: Vec<IpAddr> = Vec::new();
        for r in saved
            .rules
            .iter()
            .filter(|r| r.target.as_deref() == Some(&chain))
        {
            let src = r.source.as_deref().and_then(parse_host);
            let keep = r.chain == "POSTROUTING"
                && r.comment.as_deref() == Some(&comment)
                && src.is_some_and(|a| addrs.iter().any(|n| n.addr() == a) && !have.contains(&a));
            match (keep, src) {
                (true, Some(a)) => have.push(a),
                _ => {
                    let mut w = vec!["-D", r.chain.as_str()];
                    w.extend(r.args.iter().map(String::as_str));
                    s.push_str(&line(&w));
                }
            }
        }
        for a in addrs {
            if have.contains(&a.addr()) {
                continue;
            }
            have.push(a.addr());
            let src = a.addr().to_string();
            s.push_str(&line(&[
                "-A",
                "POSTROUTING",
                "-s",
                &src,
                "-m",
                "comment",
                "--comment",
                &comment,
                "-j",
                &chain,
            ]));
        }
        s.push_str("COMMIT\n");
        tool.restore(&s)
    }

    fn check_family(&self, tool: Tool, who: &Instance, addrs: &[&IpNet]) -> Result<()> {
        let chain = ipt_chain(who.network, who.container_id);
        let comment = ipt_comment(who.network, who.container_id);
        let saved = tool
            .save_nat()?
            .ok_or_else(|| Error::Config(format!("{} not found in PATH", tool.save)))?;
        let missing = |what: String| {
            Err(Error::Missing(format!(
                "masquerade: {what} missing from {} table nat",
                tool.save.trim_end_matches("-save")
            )))
        };
        if !saved.chains.contains(&chain) {
            return missing(format!("chain {chain}"));
        }
        let rule_in = |r: &SavedRule, chain: &str, target: &str| {
            r.chain == chain
                && r.target.as_deref() == Some(target)
                && r.comment.as_deref() == Some(comment.as_str())
        };
        let has_masq = saved.rules.iter().any(|r| {
            rule_in(r, &chain, "MASQUERADE")
                && r.destination
                    .as_ref()
                    .is_some_and(|(neg, d)| *neg && parse_net(d) == parse_net(tool.multicast()))
        });
        if !has_masq {
            return missing(format!("MASQUERADE rule in {chain}"));
        }
        for a in addrs {
            let accept = saved.rules.iter().any(|r| {
                rule_in(r, &chain, "ACCEPT")
                    && r.destination
                        .as_ref()
                        .is_some_and(|(neg, d)| !*neg && parse_net(d) == Some(a.trunc()))
            });
            if !accept {
                return missing(format!("ACCEPT rule for {} in {chain}", a.trunc()));
            }
            let jump = saved.rules.iter().any(|r| {
                rule_in(r, "POSTROUTING", &chain)
                    && r.source.as_deref().and_then(parse_host) == Some(a.addr())
            });
            if !jump {
                return missing(format!("POSTROUTING jump for {} to {chain}", a.addr()));
            }
        }
        Ok(())
    }
}

/// Addresses by family, with the tool for each non-empty group.
fn by_family(addrs: &[IpNet]) -> Vec<(Tool, Vec<&IpNet>)> {
    let v4: Vec<&IpNet> = addrs.iter().filter(|a| matches!(a, IpNet::V4(_))).collect();
    let v6: Vec<&IpNet> = addrs.iter().filter(|a| matches!(a, IpNet::V6(_))).collect();
    [(IPV4, v4), (IPV6, v6)]
        .into_iter()
        .filter(|(_, a)| !a.is_empty())
        .collect()
}

fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
        .map(|n| n.trunc())
}

/// `10.1.0.5/32` or `10.1.0.5` to the address; None for real subnets.
fn parse_host(s: &str) -> Option<IpAddr> {
    match s.parse::<IpNet>() {
        Ok(n) if n.prefix_len() == n.max_prefix_len() => Some(n.addr()),
        Ok(_) => None,
        Err(_) => s.parse().ok(),
    }
}

impl Masquerade for Iptables {
    fn add(&self, who: &Instance, addrs: &[IpNet]) -> Result<()> {
        who.validate()?;
        for (tool, group) in by_family(addrs) {
            if let Err(e) = self.add_family(tool, who, &group) {
                // Undo the other family's half; the error is what matters.
                let _ = self.del(who);
                return Err(e);
            }
        }
        Ok(())
    }

    fn check(&self, who: &Instance, addrs: &[IpNet]) -> Result<()> {
        for (tool, group) in by_family(addrs) {
            self.check_family(tool, who, &group)?;
        }
        Ok(())
    }

    fn del(&self, who: &Instance) -> Result<()> {
        who.validate()?;
        cleanup::run(&Scope::Instance(who))
    }

    fn gc(&self, network: &str, valid: &[Attachment]) -> Result<()> {
        cleanup::run(&Scope::Stale { network, valid })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn save_text() -> String {
        SAVE.replace("CNI-x", &ipt_chain("n", "c"))
    }

    const SAVE: &str = r#"# Generated by iptables-save v1.8.9 (nf_tables)
*filter
:INPUT ACCEPT [0:0]
-A INPUT -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-x - [0:0]
-A POSTROUTING -s 10.1.0.5/32 -m comment --comment "name: \"n\" id: \"c\"" -j CNI-x
-A CNI-x -d 10.1.0.0/24 -m comment --comment "name: \"n\" id: \"c\"" -j ACCEPT
-A CNI-x ! -d 224.0.0.0/4 -m comment --comment "name: \"n\" id: \"c\"" -j MASQUERADE
COMMIT
"#;

    #[test]
    fn parses_nat_section_only() {
        let s = Saved::parse(SAVE);
        assert_eq!(s.chains, ["PREROUTING", "POSTROUTING", "CNI-x"]);
        assert_eq!(s.rules.len(), 3);
        let jump = &s.rules[0];
        assert_eq!(jump.chain, "POSTROUTING");
        assert_eq!(jump.source.as_deref(), Some("10.1.0.5/32"));
        assert_eq!(jump.comment.as_deref(), Some(r#"name: "n" id: "c""#));
        assert_eq!(jump.target.as_deref(), Some("CNI-x"));
        assert_eq!(
            s.rules[2].destination,
            Some((true, "224.0.0.0/4".to_string()))
        );
        assert_eq!(
            s.rules[1].destination,
            Some((false, "10.1.0.0/24".to_string()))
        );
    }

    #[test]
    fn words_round_trip_through_quoting() {
        for w in [
            "plain",
            "two words",
            r#"a "q" b"#,
            r"back\slash",
            "",
            "it's",
        ] {
            let l = format!("-A X --comment {} -j Y", quote(w));
            assert_eq!(split_words(&l)[3], w, "{l}");
        }
        assert_eq!(split_words("  a\t b  "), ["a", "b"]);
        assert_eq!(split_words(r#"-x "unterminated"#), ["-x", "unterminated"]);
    }

    #[test]
    fn removal_script_deletes_jumps_then_chains() {
        let s = Saved::parse(&save_text());
        let script = removal_script(&s.view().plan_del("n", "c"));
        let expect = "*nat\n-D POSTROUTING -s 10.1.0.5/32 -m comment --comment \"name: \\\"n\\\" id: \\\"c\\\"\" -j CNI-x\n-F CNI-x\n-X CNI-x\nCOMMIT\n";
        assert_eq!(script, expect.replace("CNI-x", &ipt_chain("n", "c")));
        assert!(s.view().plan_del("n", "other").is_empty());
    }

    #[test]
    fn hosts_and_nets() {
        assert_eq!(parse_host("10.1.0.5/32"), Some("10.1.0.5".parse().unwrap()));
        assert_eq!(parse_host("fd00::5/128"), Some("fd00::5".parse().unwrap()));
        assert_eq!(parse_host("10.1.0.0/24"), None);
        assert_eq!(parse_host("junk"), None);
        assert_eq!(
            parse_net("10.1.0.5/24"),
            Some("10.1.0.0/24".parse().unwrap())
        );
    }
}
