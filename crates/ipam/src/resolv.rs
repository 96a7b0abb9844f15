//! `resolv.conf` as DNS settings for a result (host-local's `resolvConf` key).

use cni::{Dns, Error, Result};
use std::path::Path;

/// Read the nameserver, domain, search and options lines of a resolv.conf;
/// comments (`#`, `;`) and other keywords are skipped.
pub fn read_resolv_conf(path: &Path) -> Result<Dns> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::invalid_config(format!(
            "could not read resolvConf {:?}: {e}; point resolvConf at a readable resolv.conf",
            path.display().to_string()
        ))
    })?;
    Ok(parse_resolv_conf(&text))
}

pub fn parse_resolv_conf(text: &str) -> Dns {
    let mut dns = Dns::default();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(key), rest) = (fields.next(), fields) else {
            continue;
        };
        let rest: Vec<String> = rest.map(str::to_string).collect();
        let Some(first) = rest.first() else { continue };
        match key {
            "nameserver" => dns.nameservers.push(first.clone()),
            "domain" => dns.domain = first.clone(),
            "search" => dns.search.extend(rest),
            "options" => dns.options.extend(rest),
            _ => {}
        }
    }
    dns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_four_keywords() {
        let dns = parse_resolv_conf(
            "# generated\nnameserver 10.0.0.53\n  nameserver fd00::53 # trailing\n; old\n\
             domain example.com\nsearch a.example b.example\noptions ndots:5 edns0\n\
             sortlist 10.0.0.0\nnameserver\nsearch c.example\n",
        );
        assert_eq!(dns.nameservers, ["10.0.0.53", "fd00::53"]);
        assert_eq!(dns.domain, "example.com");
        assert_eq!(dns.search, ["a.example", "b.example", "c.example"]);
        assert_eq!(dns.options, ["ndots:5", "edns0"]);
        assert!(parse_resolv_conf("").is_empty());
    }

    #[test]
    fn unreadable_file_is_a_config_error() {
        let e = read_resolv_conf(Path::new("/nonexistent/resolv.conf")).unwrap_err();
        assert_eq!(e.code, 7);
        assert!(e.msg.contains("/nonexistent/resolv.conf"));
    }
}
