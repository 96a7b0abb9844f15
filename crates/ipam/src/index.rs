//! The text formats of the lease index (see the crate documentation for the
//! design): bucket files listing leases by owner, and the `meta` file that
//! says which state of the lease directory the buckets describe and which
//! exact bucket contents belong to that state.

use cni::config::is_valid_id;
use cni::skel::validate_ifname;
use std::net::IpAddr;

/// Number of bucket files; an owner's leases all live in bucket
/// `fnv1a(containerID) % BUCKETS`, so a lookup reads 1/64 of the index.
pub const BUCKETS: usize = 64;

/// First line of every index file. It also guarantees that no index file's
/// content can ever equal a lease owner string, so the reference (which reads
/// every file under the network directory) never mistakes one for a lease.
/// v1 replaced files by rename; v2 rewrites them in place and checksums them;
/// v3 also records the spare lease files in `meta`.
pub const HEADER: &str = "cni-plugins-rs host-local lease index v3";

/// 64-bit FNV-1a: stable across builds and platforms, as the on-disk format
/// needs. Used to spread owners over buckets and to detect torn or mismatched
/// index files (accidents, not attacks: every index hit is verified anyway).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

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
    (fnv1a(container_id.as_bytes()) % BUCKETS as u64) as usize
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

/// What `meta` records: the directory state the index describes, for each
/// bucket the checksum of the file content written for that state (`None`:
/// the bucket is empty and its file, if any, is not read), and how many
/// spare lease files wait in the index directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub stamp: DirStamp,
    pub sums: [Option<u64>; BUCKETS],
    pub spares: usize,
}

/// The `meta` text; its last line carries the checksum of everything before
/// it, so a torn or partly overwritten `meta` is never believed.
pub fn encode_meta(meta: &Meta) -> String {
    let s = &meta.stamp;
    let mut body = format!(
        "{HEADER}\nbuckets {BUCKETS}\ndir {} {} {} {}\nsums",
        s.dev, s.ino, s.mtime_sec, s.mtime_nsec
    );
    for sum in &meta.sums {
        match sum {
            Some(sum) => body.push_str(&format!(" {sum:016x}")),
            None => body.push_str(" -"),
        }
    }
    body.push_str(&format!("\nspares {}", meta.spares));
    let check = fnv1a(body.as_bytes());
    format!("{body}\nend {check:016x}\n")
}

/// What `meta` records; `None` when damaged, torn or of another layout.
pub fn decode_meta(text: &str) -> Option<Meta> {
    let (body, end) = text.strip_suffix('\n')?.rsplit_once('\n')?;
    if end != format!("end {:016x}", fnv1a(body.as_bytes())) {
        return None;
    }
    let mut lines = body.lines();
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
    let mut fields = lines.next()?.split(' ');
    if fields.next()? != "sums" {
        return None;
    }
    let mut sums = [None; BUCKETS];
    for slot in &mut sums {
        *slot = match fields.next()? {
            "-" => None,
            hex if hex.len() == 16 => Some(u64::from_str_radix(hex, 16).ok()?),
            _ => return None,
        };
    }
    if fields.next().is_some() {
        return None;
    }
    let spares = lines.next()?.strip_prefix("spares ")?.parse().ok()?;
    lines.next().is_none().then_some(Meta {
        stamp,
        sums,
        spares,
    })
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
            "cni-plugins-rs host-local lease index v1\nend 0\n",
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

    fn meta() -> Meta {
        let mut sums = [None; BUCKETS];
        sums[3] = Some(fnv1a(b"bucket three"));
        sums[63] = Some(0);
        Meta {
            stamp: DirStamp {
                dev: 2049,
                ino: 77,
                mtime_sec: 1_700_000_000,
                mtime_nsec: 123,
            },
            sums,
            spares: 3,
        }
    }

    #[test]
    fn meta_round_trips() {
        let m = meta();
        assert_eq!(decode_meta(&encode_meta(&m)), Some(m));
        let empty = Meta {
            sums: [None; BUCKETS],
            ..meta()
        };
        assert_eq!(decode_meta(&encode_meta(&empty)), Some(empty));
    }

    #[test]
    fn torn_or_damaged_meta_is_refused() {
        let text = encode_meta(&meta());
        // Every truncation: what a crash part-way through the in-place
        // rewrite (before the length is set) can leave of the new content.
        for cut in 0..text.len() {
            assert_eq!(decode_meta(&text[..cut]), None, "cut at {cut}");
        }
        // The new content over a longer old one, before the length is set.
        let longer = encode_meta(&Meta {
            stamp: DirStamp {
                mtime_nsec: 999_999_999,
                ..meta().stamp
            },
            ..meta()
        });
        assert!(longer.len() > text.len());
        assert_eq!(
            decode_meta(&format!("{text}{}", &longer[text.len()..])),
            None
        );
        // A change anywhere, even one that still parses, fails the checksum.
        for (from, to) in [
            ("1700000000", "1700000001"),
            (" 123\n", " 124\n"),
            (" -", " 0000000000000000"),
            ("buckets 64", "buckets 16"),
            ("spares 3", "spares 2"),
        ] {
            assert_eq!(decode_meta(&text.replacen(from, to, 1)), None, "{from}");
        }
        // Old content torn by new: the first half of one, the rest of the other.
        let other = encode_meta(&Meta {
            stamp: DirStamp {
                mtime_sec: 1_700_000_009,
                mtime_nsec: 456,
                ..meta().stamp
            },
            ..meta()
        });
        assert_eq!(other.len(), text.len());
        for cut in 1..text.len() {
            let mixed = format!("{}{}", &other[..cut], &text[cut..]);
            if mixed != text && mixed != other {
                assert_eq!(decode_meta(&mixed), None, "cut at {cut}");
            }
        }
        // The v1 layout (replaced by rename, no checksums) is not ours any more.
        let v1 = "cni-plugins-rs host-local lease index v1\nbuckets 64\ndir 1 2 3 4\nend\n";
        assert_eq!(decode_meta(v1), None);
        // Nor is v2 (no spares), even with a valid checksum.
        let v2_body = text
            .replace(" v3\n", " v2\n")
            .split_once("\nspares ")
            .map(|(body, _)| body.to_string())
            .unwrap();
        let v2 = format!("{v2_body}\nend {:016x}\n", fnv1a(v2_body.as_bytes()));
        assert_eq!(decode_meta(&v2), None);
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
            encode_meta(&Meta {
                stamp: DirStamp {
                    dev: 0,
                    ino: 0,
                    mtime_sec: 0,
                    mtime_nsec: 0,
                },
                sums: [None; BUCKETS],
                spares: 0,
            }),
        ] {
            assert!(text.trim().contains(' ') && text.trim().contains('\n'));
        }
    }
}
