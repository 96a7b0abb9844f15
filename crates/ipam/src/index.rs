//! The text formats of the lease index (see the crate documentation for the
//! design): bucket files listing leases by owner, and the `meta` file that
//! says which state of the lease directory the buckets describe.

use cni::config::is_valid_id;
use cni::skel::validate_ifname;
use std::net::IpAddr;

/// Number of bucket files; an owner's leases all live in bucket
/// `fnv1a(containerID) % BUCKETS`, so a lookup reads 1/64 of the index.
pub const BUCKETS: usize = 64;

/// First line of every index file. It also guarantees that no index file's
/// content can ever equal a lease owner string, so the reference (which reads
/// every file under the network directory) never mistakes one for a lease.
pub const HEADER: &str = "cni-plugins-rs host-local lease index v1";

/// One lease as indexed: the lease file's name (an IP address), its
/// container ID and interface (`None` for the legacy content of only an ID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub container_id: String,
    pub ifname: Option<String>,
}

impl Entry {
    /// An entry whose every field is safe to act on: the name must be an IP
    /// address (so it can only ever name a file in the lease directory), the
    /// owner must be a valid container ID and interface name.
    pub fn checked(name: &str, container_id: &str, ifname: Option<&str>) -> Option<Entry> {
        let name_ok = name
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_string() == name);
        let ifname_ok = ifname.is_none_or(|i| !i.is_empty() && validate_ifname(i).is_ok());
        (name_ok && is_valid_id(container_id) && ifname_ok).then(|| Entry {
            name: name.to_string(),
            container_id: container_id.to_string(),
            ifname: ifname.map(str::to_string),
        })
    }
}

/// Which bucket holds the leases of `container_id` (FNV-1a, stable across builds).
pub fn bucket_of(container_id: &str) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in container_id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % BUCKETS as u64) as usize
}

pub fn encode_bucket(entries: &[Entry]) -> String {
    let mut out = String::with_capacity(64 + entries.len() * 96);
    out.push_str(HEADER);
    out.push('\n');
    for e in entries {
        out.push_str(&e.name);
        out.push(' ');
        out.push_str(&e.container_id);
        if let Some(ifname) = &e.ifname {
            out.push(' ');
            out.push_str(ifname);
        }
        out.push('\n');
    }
    out.push_str(&format!("end {}\n", entries.len()));
    out
}

/// Decode a bucket file; `None` when it is damaged in any way (then the
/// whole index is rebuilt from the lease files).
pub fn decode_bucket(text: &str) -> Option<Vec<Entry>> {
    let mut lines = text.lines();
    if lines.next()? != HEADER {
        return None;
    }
    let mut entries = Vec::new();
    for line in lines.by_ref() {
        let fields: Vec<&str> = line.split(' ').collect();
        match fields.as_slice() {
            ["end", n] => {
                let complete = n.parse::<usize>().ok()? == entries.len();
                return (complete && lines.next().is_none()).then_some(entries);
            }
            [name, id] => entries.push(Entry::checked(name, id, None)?),
            [name, id, ifname] => entries.push(Entry::checked(name, id, Some(ifname))?),
            _ => return None,
        }
    }
    None
}

/// The identity and modification time of the lease directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirStamp {
    pub dev: u64,
    pub ino: u64,
    pub mtime_sec: i64,
    pub mtime_nsec: i64,
}

pub fn encode_meta(stamp: &DirStamp) -> String {
    format!(
        "{HEADER}\nbuckets {BUCKETS}\ndir {} {} {} {}\nend\n",
        stamp.dev, stamp.ino, stamp.mtime_sec, stamp.mtime_nsec
    )
}

/// The stamp the index was written for; `None` when damaged or of another layout.
pub fn decode_meta(text: &str) -> Option<DirStamp> {
    let mut lines = text.lines();
    if lines.next()? != HEADER || lines.next()? != format!("buckets {BUCKETS}") {
        return None;
    }
    let dir: Vec<&str> = lines.next()?.split(' ').collect();
    let stamp = match dir.as_slice() {
        ["dir", dev, ino, sec, nsec] => DirStamp {
            dev: dev.parse().ok()?,
            ino: ino.parse().ok()?,
            mtime_sec: sec.parse().ok()?,
            mtime_nsec: nsec.parse().ok()?,
        },
        _ => return None,
    };
    (lines.next()? == "end" && lines.next().is_none()).then_some(stamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, id: &str, ifname: Option<&str>) -> Entry {
        Entry {
            name: name.into(),
            container_id: id.into(),
            ifname: ifname.map(Into::into),
        }
    }

    #[test]
    fn buckets_round_trip() {
        let entries = vec![
            entry("10.0.0.2", "abc", Some("eth0")),
            entry("fd00::2", "abc", None),
        ];
        let text = encode_bucket(&entries);
        assert_eq!(decode_bucket(&text), Some(entries));
        assert_eq!(decode_bucket(&encode_bucket(&[])), Some(vec![]));
    }

    #[test]
    fn damaged_buckets_are_refused() {
        let text = encode_bucket(&[entry("10.0.0.2", "abc", Some("eth0"))]);
        let cut = &text[..text.len() - 6];
        for bad in [
            "",
            cut,
            "cni-plugins-rs host-local lease index v0\nend 0\n",
            &text.replace("end 1", "end 2"),
            &format!("{text}10.0.0.3 x eth0\n"),
            &text.replace("abc eth0", "abc eth0 extra"),
            &text.replace("10.0.0.2", "../../etc/passwd"),
            &text.replace("10.0.0.2", "10.000.0.2"),
            &text.replace("abc", "-abc"),
        ] {
            assert_eq!(decode_bucket(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn meta_round_trips_and_refuses_damage() {
        let s = DirStamp {
            dev: 2049,
            ino: 77,
            mtime_sec: 1_700_000_000,
            mtime_nsec: 123,
        };
        let text = encode_meta(&s);
        assert_eq!(decode_meta(&text), Some(s));
        assert_eq!(decode_meta(&text.replace("buckets 64", "buckets 16")), None);
        assert_eq!(decode_meta(&text[..text.len() - 4]), None);
        assert_eq!(decode_meta(""), None);
    }

    #[test]
    fn bucket_spread_is_stable() {
        // The function is part of the on-disk format: it must never change.
        assert_eq!(bucket_of(""), (0xcbf2_9ce4_8422_2325u64 % 64) as usize);
        let mut counts = [0usize; BUCKETS];
        for i in 0..6400 {
            counts[bucket_of(&format!("container-{i:05}"))] += 1;
        }
        assert!(counts.iter().all(|c| (50..=150).contains(c)), "{counts:?}");
    }

    #[test]
    fn index_text_never_equals_an_owner_string() {
        // The reference treats a file as a lease when its trimmed content is
        // `id` or `id\r\nifname`; ours always start with the header line.
        for text in [
            encode_bucket(&[]),
            encode_meta(&DirStamp {
                dev: 0,
                ino: 0,
                mtime_sec: 0,
                mtime_nsec: 0,
            }),
        ] {
            assert!(text.trim().contains(' ') && text.trim().contains('\n'));
        }
    }
}
