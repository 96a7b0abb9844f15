//! Names and comments that identify one attachment's masquerade state.
//!
//! They must be byte-for-byte what the reference plugins compute, or our DEL
//! and GC would not find what the reference created (and vice versa).

use sha2::{Digest, Sha512};

/// The reference's nf_tables table (family inet) for masquerading.
pub const NFT_TABLE: &str = "cni_plugins_masquerade";
/// The regular chain holding one rule per masqueraded address.
pub const NFT_CHECKS_CHAIN: &str = "masq_checks";
/// The nat base chain at postrouting that jumps to [`NFT_CHECKS_CHAIN`].
pub const NFT_POSTROUTING_CHAIN: &str = "postrouting";
/// Comments the reference puts on its table and chain (informational only).
pub const NFT_TABLE_COMMENT: &str =
    "Masquerading for plugins from github.com/containernetworking/plugins";
pub const NFT_CHECKS_COMMENT: &str =
    "Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet";
/// The longest comment the reference writes (knftables' limit), in bytes.
pub const NFT_COMMENT_MAX: usize = 128;

/// iptables chain names are `CNI-` plus hex, 28 characters in all.
pub const IPT_CHAIN_PREFIX: &str = "CNI-";
pub const IPT_CHAIN_LEN: usize = 28;

/// Lowercase hex of SHA-512(`data`), truncated to `len` characters (max 128).
pub fn sha512_hex(data: &[u8], len: usize) -> String {
    let digest = Sha512::digest(data);
    let mut out = String::with_capacity(128);
    for b in digest.iter() {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
    }
    out.truncate(len);
    out
}

/// The iptables chain of one container on one network: `CNI-` and the first
/// 24 hex digits of SHA-512(network ‖ container ID). The reference ignores the
/// interface name here, so two interfaces of one container share the chain.
pub fn ipt_chain(network: &str, container_id: &str) -> String {
    let mut s = String::from(IPT_CHAIN_PREFIX);
    let data = [network.as_bytes(), container_id.as_bytes()].concat();
    s.push_str(&sha512_hex(&data, IPT_CHAIN_LEN - IPT_CHAIN_PREFIX.len()));
    s
}

/// The iptables rule comment: `name: "<network>" id: "<container id>"`, each
/// quoted the way Go's `%q` does.
pub fn ipt_comment(network: &str, container_id: &str) -> String {
    format!("name: {} id: {}", go_quote(network), go_quote(container_id))
}

/// 16 hex digits naming a network in nf_tables rule comments.
pub fn nft_network_hash(network: &str) -> String {
    sha512_hex(network.as_bytes(), 16)
}

/// `<network hash>-<hash of "ifname:container id">`: the prefix of every
/// nf_tables rule comment of one attachment.
pub fn nft_instance_hash(network: &str, ifname: &str, container_id: &str) -> String {
    let mut s = nft_network_hash(network);
    s.push('-');
    s.push_str(&sha512_hex(
        format!("{ifname}:{container_id}").as_bytes(),
        16,
    ));
    s
}

/// The full nf_tables rule comment of one attachment: the instance hash and a
/// readable tail, cut at [`NFT_COMMENT_MAX`] bytes. Bytes, not a string,
/// because the cut may split a UTF-8 sequence exactly as the reference does.
pub fn nft_comment(network: &str, ifname: &str, container_id: &str) -> Vec<u8> {
    let strip = |s: &str| s.replace('"', "");
    let mut c = format!(
        "{}, net: {}, if: {}, id: {}",
        nft_instance_hash(network, ifname, container_id),
        strip(network),
        strip(ifname),
        strip(container_id)
    )
    .into_bytes();
    c.truncate(NFT_COMMENT_MAX);
    c
}

/// Quote like Go's `strconv.Quote`. Exact for ASCII (all that valid CNI names
/// and IDs contain); other characters are kept unless they are control or
/// space characters, which Go escapes as `\u`/`\U`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            ' ' => out.push(' '),
            c if c.is_ascii() && (c.is_ascii_control()) => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() || c.is_whitespace() => {
                let n = c as u32;
                if n < 0x10000 {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Parse `name: "<net>" id: "<cid>"` back into its parts (the inverse of
/// [`ipt_comment`] for the escapes Go produces). None when it has another shape.
pub fn parse_ipt_comment(c: &str) -> Option<(String, String)> {
    let rest = c.strip_prefix("name: ")?;
    let (network, rest) = go_unquote_prefix(rest)?;
    let rest = rest.strip_prefix(" id: ")?;
    let (id, rest) = go_unquote_prefix(rest)?;
    rest.is_empty().then_some((network, id))
}

/// Read one Go-quoted string from the start of `s`; returns it and the rest.
fn go_unquote_prefix(s: &str) -> Option<(String, &str)> {
    let mut chars = s.char_indices();
    if chars.next()?.1 != '"' {
        return None;
    }
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 1..])),
            '\\' => {
                let (_, e) = chars.next()?;
                let simple = match e {
                    'a' => Some('\x07'),
                    'b' => Some('\x08'),
                    'f' => Some('\x0c'),
                    'n' => Some('\n'),
                    'r' => Some('\r'),
                    't' => Some('\t'),
                    'v' => Some('\x0b'),
                    '\\' => Some('\\'),
                    '"' => Some('"'),
                    _ => None,
                };
                if let Some(c) = simple {
                    out.push(c);
                    continue;
                }
                let digits = match e {
                    'x' => 2,
                    'u' => 4,
                    'U' => 8,
                    _ => return None,
                };
                let mut n = 0u32;
                for _ in 0..digits {
                    n = n * 16 + chars.next()?.1.to_digit(16)?;
                }
                out.push(char::from_u32(n)?);
            }
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values were computed with the reference's Go code
    // (pkg/utils FormatChainName / FormatComment / MustFormatHashWithPrefix).
    #[test]
    fn chain_names_match_reference() {
        assert_eq!(ipt_chain("mynet", "abc123"), "CNI-70a29d9dc18bc4d652ea5d59");
        let long_id = "0123456789abcdef".repeat(4);
        assert_eq!(
            ipt_chain("podman", &long_id),
            "CNI-a57a867b11d1e93fb32cd24e"
        );
        assert_eq!(ipt_chain("a\"b", "x"), "CNI-f915120d4f6905a051cf71db");
        assert_eq!(ipt_chain("mynet", "abc123").len(), IPT_CHAIN_LEN);
    }

    #[test]
    fn comments_match_reference() {
        assert_eq!(
            ipt_comment("mynet", "abc123"),
            r#"name: "mynet" id: "abc123""#
        );
        assert_eq!(ipt_comment("a\"b", "x"), r#"name: "a\"b" id: "x""#);
        assert_eq!(
            ipt_comment("tab\there\x01é\u{a0}", "z"),
            r#"name: "tab\there\x01é\u00a0" id: "z""#
        );
    }

    #[test]
    fn nft_hashes_match_reference() {
        assert_eq!(nft_network_hash("mynet"), "d23676b4f2d9fe04");
        assert_eq!(
            nft_instance_hash("mynet", "eth0", "abc123"),
            "d23676b4f2d9fe04-ebce0e3dd4dafae3"
        );
        assert_eq!(
            nft_comment("mynet", "eth0", "abc123"),
            b"d23676b4f2d9fe04-ebce0e3dd4dafae3, net: mynet, if: eth0, id: abc123"
        );
        assert_eq!(
            nft_comment("a\"b", "net1", "x"),
            b"966b9efff445ce16-d11eba000024abda, net: ab, if: net1, id: x"
        );
    }

    #[test]
    fn long_nft_comment_is_cut_like_reference() {
        let id = format!("{}0123456789", "0123456789abcdef".repeat(4));
        assert_eq!(ipt_chain("podman", &id), "CNI-f624386c0438e64f863488ed");
        let c = nft_comment("podman", "eth0", &id);
        let expect = format!(
            "1d8721804f16f412-261edeb9745b3f83, net: podman, if: eth0, id: {}01",
            "0123456789abcdef".repeat(4)
        );
        assert_eq!(String::from_utf8(c).unwrap(), expect);
        // A cut inside a multi-byte character must not panic.
        let c = nft_comment("n", "eth0", &"é".repeat(80));
        assert_eq!(c.len(), NFT_COMMENT_MAX);
    }

    #[test]
    fn ipt_comment_round_trips() {
        for (n, id) in [("mynet", "abc"), ("a\"b\\c", "x\ty"), ("é\u{a0}\x01", "z")] {
            let c = ipt_comment(n, id);
            assert_eq!(
                parse_ipt_comment(&c),
                Some((n.to_string(), id.to_string())),
                "{c}"
            );
        }
        assert_eq!(parse_ipt_comment("name: \"x\""), None);
        assert_eq!(parse_ipt_comment("name: \"x\" id: \"y\" extra"), None);
        assert_eq!(parse_ipt_comment("name: \"x\\q\" id: \"y\""), None);
        assert_eq!(parse_ipt_comment("name: \"x\\u12\" id: \"y\""), None);
        assert_eq!(parse_ipt_comment(""), None);
    }
}
