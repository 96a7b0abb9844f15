use super::*;
use std::collections::BTreeSet;
use testutil::TempDir;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn listing(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// A lease file written the way the reference writes it, without our index.
fn foreign_lease(store: &Store, ip: &str, content: &str) {
    fs::write(store.dir().join(ip), content).unwrap();
}

#[test]
fn reserve_writes_the_reference_format() {
    let tmp = TempDir::new("ipam-store");
    let store = Store::create(&tmp.path, "net1").unwrap();
    let mut leases = store.lock().unwrap();
    assert!(leases.reserve(ip("10.0.0.2"), "c1", "eth0", 0).unwrap());
    assert!(!leases.reserve(ip("10.0.0.2"), "c2", "eth0", 0).unwrap());
    assert!(leases.reserve(ip("fd00::2"), "c1", "eth0", 1).unwrap());
    leases.commit().unwrap();

    let dir = tmp.path.join("net1");
    assert_eq!(fs::read(dir.join("10.0.0.2")).unwrap(), b"c1\r\neth0");
    assert_eq!(fs::read(dir.join("fd00::2")).unwrap(), b"c1\r\neth0");
    assert_eq!(
        fs::read(dir.join("last_reserved_ip.0")).unwrap(),
        b"10.0.0.2"
    );
    assert_eq!(
        fs::read(dir.join("last_reserved_ip.1")).unwrap(),
        b"fd00::2"
    );
    assert!(dir.join("lock").exists());
    assert!(dir.join(INDEX_DIR).join("meta").exists());

    let mut leases = store.lock().unwrap();
    let owned = leases.find("c1", "eth0").unwrap();
    assert_eq!(owned.exact, [ip("10.0.0.2"), ip("fd00::2")]);
    assert!(leases.find("c1", "eth1").unwrap().is_empty());
    assert!(leases.find("c2", "eth0").unwrap().is_empty());
    assert_eq!(leases.last_reserved(0), Some(ip("10.0.0.2")));
}

#[test]
fn release_owner_is_idempotent_and_exact() {
    let tmp = TempDir::new("ipam-store");
    let store = Store::create(&tmp.path, "n").unwrap();
    let mut leases = store.lock().unwrap();
    leases.reserve(ip("10.0.0.2"), "c1", "eth0", 0).unwrap();
    leases.reserve(ip("10.0.0.3"), "c1", "eth1", 0).unwrap();
    leases.commit().unwrap();

    let mut leases = store.lock().unwrap();
    assert_eq!(
        leases.release_owner("c1", "eth0").unwrap(),
        [ip("10.0.0.2")]
    );
    assert_eq!(
        leases.release_owner("c1", "eth0").unwrap(),
        Vec::<IpAddr>::new()
    );
    assert_eq!(
        leases.release_owner("never", "eth0").unwrap(),
        Vec::<IpAddr>::new()
    );
    leases.commit().unwrap();
    assert!(!store.dir().join("10.0.0.2").exists());
    assert!(store.dir().join("10.0.0.3").exists());
}

#[test]
fn legacy_leases_are_found_and_released_only_without_exact_ones() {
    let tmp = TempDir::new("ipam-store");
    let store = Store::create(&tmp.path, "n").unwrap();
    foreign_lease(&store, "10.0.0.7", "old-container\n");
    let mut leases = store.lock().unwrap();
    let owned = leases.find("old-container", "eth0").unwrap();
    assert_eq!((owned.exact.len(), owned.legacy), (0, vec![ip("10.0.0.7")]));
    assert_eq!(
        leases.release_owner("old-container", "eth0").unwrap(),
        [ip("10.0.0.7")]
    );
    leases.commit().unwrap();

    foreign_lease(&store, "10.0.0.8", "c9");
    let mut leases = store.lock().unwrap();
    leases.reserve(ip("10.0.0.9"), "c9", "eth0", 0).unwrap();
    // As the reference: exact matches win, the legacy file stays.
    assert_eq!(
        leases.release_owner("c9", "eth0").unwrap(),
        [ip("10.0.0.9")]
    );
    assert!(store.dir().join("10.0.0.8").exists());
}

#[test]
fn foreign_changes_right_after_ours_are_noticed() {
    // The reference writes lease files without touching our index, possibly
    // within the same timestamp tick as our last write.
    let tmp = TempDir::new("ipam-store");
    let store = Store::create(&tmp.path, "n").unwrap();
    for i in 0..40u8 {
        let mut leases = store.lock().unwrap();
        leases
            .reserve(ip(&format!("10.0.1.{i}")), &format!("ours{i}"), "eth0", 0)
            .unwrap();
        leases.commit().unwrap();
        foreign_lease(&store, &format!("10.0.2.{i}"), &format!("ref{i}\r\neth0"));
        let mut leases = store.lock().unwrap();
        assert_eq!(
            leases.find(&format!("ref{i}"), "eth0").unwrap().exact,
            [ip(&format!("10.0.2.{i}"))],
            "round {i}"
        );
        leases.commit().unwrap();
        // And a foreign removal: the verified lookup never reports it.
        fs::remove_file(store.dir().join(format!("10.0.1.{i}"))).unwrap();
        let mut leases = store.lock().unwrap();
        assert!(leases.find(&format!("ours{i}"), "eth0").unwrap().is_empty());
        leases.commit().unwrap();
    }
}

#[test]
fn index_hits_are_verified_against_the_files() {
    let tmp = TempDir::new("ipam-store");
    let store = Store::create(&tmp.path, "n").unwrap();
    let mut leases = store.lock().unwrap();
    leases.reserve(ip("10.0.0.2"), "c1", "eth0", 0).unwrap();
    leases.commit().unwrap();
    // Rewrite the lease in place: the directory does not change, so the
    // index still looks fresh, but it is wrong about the owner.
    let path = store.dir().join("10.0.0.2");
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    f.write_all(b"c2\r\neth0").unwrap();
    drop(f);

    let mut leases = store.lock().unwrap();
    assert!(leases.find("c1", "eth0").unwrap().is_empty());
    assert_eq!(
        leases.release_owner("c1", "eth0").unwrap(),
        Vec::<IpAddr>::new()
    );
    leases.commit().unwrap();
    assert_eq!(
        fs::read(&path).unwrap(),
        b"c2\r\neth0",
        "another owner's lease was removed"
    );
}

#[test]
fn damaged_index_is_rebuilt() {
    let tmp = TempDir::new("ipam-store");
    let store = Store::create(&tmp.path, "n").unwrap();
    let mut leases = store.lock().unwrap();
    leases.reserve(ip("10.0.0.2"), "c1", "eth0", 0).unwrap();
    leases.commit().unwrap();
    let bucket = store
        .dir()
        .join(INDEX_DIR)
        .join(format!("{:02x}", bucket_of("c1")));
    fs::write(&bucket, "garbage").unwrap();
    let mut leases = store.lock().unwrap();
    assert_eq!(leases.find("c1", "eth0").unwrap().exact, [ip("10.0.0.2")]);
    leases.commit().unwrap();
    assert!(index::decode_bucket(&fs::read_to_string(&bucket).unwrap()).is_some());

    // A planted entry pointing outside the directory makes the bucket invalid.
    fs::write(
        &bucket,
        format!("{}\n../../x c1 eth0\nend 1\n", index::HEADER),
    )
    .unwrap();
    let mut leases = store.lock().unwrap();
    assert_eq!(leases.find("c1", "eth0").unwrap().exact, [ip("10.0.0.2")]);
}

fn index_file(store: &Store, name: &str) -> PathBuf {
    store.dir().join(INDEX_DIR).join(name)
}

/// Sorted addresses of `(id, eth0)` as a fresh session reports them, and
/// whether that session had to rebuild the index (it read other leases).
fn lookup(store: &Store, id: &str) -> (Vec<IpAddr>, bool) {
    let mut leases = store.lock().unwrap();
    let mut found = leases.find(id, "eth0").unwrap().exact;
    found.sort();
    let rebuilt = leases.lease_reads() > found.len() as u64;
    leases.commit().unwrap();
    (found, rebuilt)
}

/// Three owners' leases, `c1` with two of them; the index committed.
fn three_owners(tmp: &TempDir) -> Store {
    let store = Store::create(&tmp.path, "n").unwrap();
    let mut leases = store.lock().unwrap();
    for (addr, id) in [("10.0.0.2", "c1"), ("10.0.0.3", "c2"), ("10.0.0.4", "c1")] {
        assert!(leases.reserve(ip(addr), id, "eth0", 0).unwrap());
    }
    leases.commit().unwrap();
    store
}

#[test]
fn index_files_are_rewritten_in_place() {
    use std::os::unix::fs::MetadataExt;
    let tmp = TempDir::new("ipam-store");
    let store = three_owners(&tmp);
    let bucket = index_file(&store, &format!("{:02x}", bucket_of("c1")));
    let inodes = || [&bucket, &index_file(&store, "meta")].map(|p| fs::metadata(p).unwrap().ino());
    let before = inodes();
    let mut leases = store.lock().unwrap();
    assert!(leases.reserve(ip("10.0.0.5"), "c1", "eth0", 0).unwrap());
    leases.commit().unwrap();
    let mut leases = store.lock().unwrap();
    leases.release_owner("c1", "eth0").unwrap();
    leases.commit().unwrap();
    assert_eq!(
        inodes(),
        before,
        "an index file was replaced, not rewritten"
    );
    let names = listing(&store.dir().join(INDEX_DIR));
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    assert_eq!(lookup(&store, "c1"), (vec![], false));
    assert_eq!(lookup(&store, "c2"), (vec![ip("10.0.0.3")], false));
}

#[test]
fn last_reserved_is_rewritten_to_the_exact_bytes() {
    let tmp = TempDir::new("ipam-store");
    let store = Store::create(&tmp.path, "n").unwrap();
    let file = store.dir().join("last_reserved_ip.1");
    // Long, then shorter, then longer again: the reference reads the whole
    // file, so nothing of an older, longer address may remain.
    for addr in ["fd00::1234:5678", "fd00::2", "fd00::1:2"] {
        let mut leases = store.lock().unwrap();
        assert!(leases.reserve(ip(addr), addr, "eth0", 1).unwrap());
        leases.commit().unwrap();
        assert_eq!(fs::read(&file).unwrap(), addr.as_bytes());
        assert_eq!(store.lock().unwrap().last_reserved(1), Some(ip(addr)));
    }
    // A failed ADD restores the previous bytes exactly, shorter or not.
    let mut leases = store.lock().unwrap();
    assert!(leases
        .reserve(ip("fd00::abcd:ef01"), "x", "eth0", 1)
        .unwrap());
    assert!(leases.rollback().is_empty());
    assert_eq!(fs::read(&file).unwrap(), b"fd00::1:2");
    // A failed first ADD of a range set leaves no file behind.
    assert!(leases.reserve(ip("10.0.0.9"), "x", "eth0", 0).unwrap());
    assert!(leases.rollback().is_empty());
    assert!(!store.dir().join("last_reserved_ip.0").exists());
}

/// `meta` as a commit that wrote `bucket` for `id` would leave it: the
/// directory's current stamp, that content's checksum.
fn meta_recording(store: &Store, id: &str, bucket: &[u8]) -> String {
    let text = fs::read_to_string(index_file(store, "meta")).unwrap();
    let mut meta = index::decode_meta(&text).unwrap();
    meta.stamp = dir_stamp(store.dir()).unwrap();
    meta.sums[bucket_of(id)] = Some(index::fnv1a(bucket));
    index::encode_meta(&meta)
}

/// Every way a crash can leave a bucket half rewritten in place: the first
/// `k` bytes of the new content, alone or over the rest of the old content
/// (the length not set yet), including none of it (a power loss that kept
/// `meta` but not the bucket). The directory's stamp is left current, so only
/// the checksum can tell; none of it may change an answer.
#[test]
fn torn_buckets_are_detected_and_rebuilt() {
    let tmp = TempDir::new("ipam-store");
    let store = three_owners(&tmp);
    let bucket = index_file(&store, &format!("{:02x}", bucket_of("c1")));
    let meta = index_file(&store, "meta");
    let short = fs::read(&bucket).unwrap();
    let mut leases = store.lock().unwrap();
    assert!(leases.reserve(ip("10.0.0.5"), "c1", "eth0", 0).unwrap());
    leases.commit().unwrap();
    let long = fs::read(&bucket).unwrap();
    let old_meta = fs::read(&meta).unwrap();
    assert!(long.len() > short.len());

    // A growing rewrite (ADD) and a shrinking one (DEL).
    for (from, to) in [(&short, &long), (&long, &short)] {
        let lease = store.dir().join("10.0.0.5");
        let c1 = if to == &long {
            fs::write(&lease, "c1\r\neth0").unwrap();
            vec![ip("10.0.0.2"), ip("10.0.0.4"), ip("10.0.0.5")]
        } else {
            let _ = fs::remove_file(&lease);
            vec![ip("10.0.0.2"), ip("10.0.0.4")]
        };
        for k in 0..=to.len() {
            let mut over_old = to[..k].to_vec();
            over_old.extend(from.get(k..).unwrap_or_default());
            for torn in [to[..k].to_vec(), over_old] {
                if &torn == to {
                    continue;
                }
                fs::write(&meta, meta_recording(&store, "c1", to)).unwrap();
                fs::write(&bucket, &torn).unwrap();
                let (found, rebuilt) = lookup(&store, "c1");
                assert_eq!(found, c1, "torn at {k} of {}", to.len());
                assert!(rebuilt, "a torn bucket was believed (cut at {k})");
                assert_eq!(lookup(&store, "c1"), (c1.clone(), false));
                assert_eq!(lookup(&store, "c2"), (vec![ip("10.0.0.3")], false));
            }
        }
    }

    // The crash came before `meta` was rewritten: it records an older
    // directory stamp, so the index is stale whatever the buckets hold.
    fs::write(&bucket, &short).unwrap();
    fs::write(&meta, &old_meta).unwrap();
    let mut leases = store.lock().unwrap();
    assert!(leases.reserve(ip("10.0.0.6"), "c1", "eth0", 0).unwrap());
    drop(leases);
    let (found, rebuilt) = lookup(&store, "c1");
    assert_eq!(found, [ip("10.0.0.2"), ip("10.0.0.4"), ip("10.0.0.6")]);
    assert!(rebuilt);
}

/// A torn `meta` (new content over old, or cut short) is never believed, even
/// when the part that was written names the directory's current stamp.
#[test]
fn torn_meta_is_detected_and_rebuilt() {
    let tmp = TempDir::new("ipam-store");
    let store = three_owners(&tmp);
    let meta = index_file(&store, "meta");
    let bucket = index_file(&store, &format!("{:02x}", bucket_of("c1")));
    let good = fs::read(&bucket).unwrap();
    // A foreign lease for c1 the index does not know of; any intact meta that
    // records the current stamp and that bucket would hide it.
    foreign_lease(&store, "10.0.0.9", "c1\r\neth0");
    let c1 = vec![ip("10.0.0.2"), ip("10.0.0.4"), ip("10.0.0.9")];
    let mut k = 0;
    loop {
        // Each lookup rebuilds and restamps the directory, so the contents
        // are made afresh: the truthful meta it left, and the hiding one.
        fs::write(&bucket, &good).unwrap();
        let before = fs::read(&meta).unwrap();
        let hiding = meta_recording(&store, "c1", &good).into_bytes();
        let Some(cut) = hiding.get(..k) else { break };
        let mut over_old = cut.to_vec();
        over_old.extend(before.get(k..).unwrap_or_default());
        // Cut short at even lengths, over the old content at odd ones.
        let torn = if k % 2 == 0 { cut.to_vec() } else { over_old };
        if torn != hiding {
            fs::write(&meta, &torn).unwrap();
            let (found, rebuilt) = lookup(&store, "c1");
            assert_eq!(found, c1, "torn at {k}");
            assert!(rebuilt, "a torn meta was believed (cut at {k})");
        }
        k += 1;
    }
    assert!(k > 200, "every cut of a {k}-byte meta was tried");
}

#[test]
fn rollback_restores_everything() {
    let tmp = TempDir::new("ipam-store");
    let store = Store::create(&tmp.path, "n").unwrap();
    let mut leases = store.lock().unwrap();
    leases.reserve(ip("10.0.0.2"), "c0", "eth0", 0).unwrap();
    leases.commit().unwrap();
    let before = listing(store.dir());

    let mut leases = store.lock().unwrap();
    leases.reserve(ip("10.0.0.3"), "c1", "eth0", 0).unwrap();
    leases.reserve(ip("fd00::3"), "c1", "eth0", 1).unwrap();
    assert!(leases.rollback().is_empty());
    leases.commit().unwrap();
    assert_eq!(listing(store.dir()), before);
    assert_eq!(
        fs::read(store.dir().join("last_reserved_ip.0")).unwrap(),
        b"10.0.0.2"
    );
    let mut leases = store.lock().unwrap();
    assert!(leases.find("c1", "eth0").unwrap().is_empty());
}

#[test]
fn gc_keeps_valid_attachments_only() {
    let tmp = TempDir::new("ipam-store");
    let store = Store::create(&tmp.path, "n").unwrap();
    let mut leases = store.lock().unwrap();
    for (i, (id, ifname)) in [("a", "eth0"), ("a", "eth1"), ("b", "eth0")]
        .iter()
        .enumerate()
    {
        leases
            .reserve(ip(&format!("10.0.0.{}", i + 2)), id, ifname, 0)
            .unwrap();
    }
    leases.commit().unwrap();
    foreign_lease(&store, "10.0.0.20", "legacy-kept");
    foreign_lease(&store, "10.0.0.21", "legacy-gone");
    foreign_lease(&store, "10.0.0.22", "not an owner at all");

    let valid = |id: &str, ifname: &str| Attachment {
        container_id: id.into(),
        ifname: ifname.into(),
    };
    let mut leases = store.lock().unwrap();
    let (mut released, errors) = leases
        .release_all_except(&[valid("a", "eth0"), valid("legacy-kept", "eth0")])
        .unwrap();
    released.sort();
    assert!(errors.is_empty());
    assert_eq!(released, [ip("10.0.0.3"), ip("10.0.0.4"), ip("10.0.0.21")]);
    leases.commit().unwrap();
    let left: Vec<String> = listing(store.dir())
        .into_iter()
        .filter(|n| n.parse::<IpAddr>().is_ok())
        .collect();
    assert_eq!(left, ["10.0.0.2", "10.0.0.20", "10.0.0.22"]);

    // The index agrees afterwards.
    let mut leases = store.lock().unwrap();
    assert!(leases.find("b", "eth0").unwrap().is_empty());
    assert_eq!(leases.find("a", "eth0").unwrap().exact, [ip("10.0.0.2")]);
}

#[test]
fn opening_validates_the_location() {
    let tmp = TempDir::new("ipam-store");
    assert!(Store::open(&tmp.path, "missing").unwrap().is_none());
    let file = tmp.path.join("a-file");
    fs::write(&file, "x").unwrap();
    let e = Store::create(&file, "n").unwrap_err();
    assert_eq!(e.code, 7);
    assert!(e.msg.contains("not a directory"), "{e}");
    assert!(Store::open(&file, "n").unwrap().is_none());
    fs::write(tmp.path.join("netfile"), "x").unwrap();
    assert_eq!(Store::open(&tmp.path, "netfile").unwrap_err().code, 7);
    assert_eq!(Store::create(&tmp.path, "netfile").unwrap_err().code, 7);
    for bad in ["../../etc", "", ".", "a/b"] {
        assert_eq!(Store::create(&tmp.path, bad).unwrap_err().code, 7, "{bad}");
    }
    assert_eq!(
        listing(&tmp.path),
        ["a-file", "netfile"].map(String::from).into()
    );
    assert_eq!(fs::read(&file).unwrap(), b"x");
}

#[test]
fn owners_parse_as_the_reference_compares() {
    assert_eq!(
        parse_owner("c1\r\neth0"),
        Some(("c1".into(), Some("eth0".into())))
    );
    assert_eq!(
        parse_owner(" c1\r\neth0\n"),
        Some(("c1".into(), Some("eth0".into())))
    );
    assert_eq!(parse_owner("c1\r\n"), Some(("c1".into(), None)));
    assert_eq!(parse_owner("c1"), Some(("c1".into(), None)));
    for bad in ["", "c 1", "c1\neth0", "c1\r\neth 0", "-c\r\neth0"] {
        assert_eq!(parse_owner(bad), None, "{bad:?}");
    }
}

/// DEL and CHECK cost must not grow with the number of leases: with 60 000
/// leases in the directory, after the one-time rebuild, they read one bucket
/// and only the caller's own lease files.
#[test]
fn del_and_check_read_only_their_own_leases() {
    let tmp = TempDir::new("ipam-store-big");
    let store = Store::create(&tmp.path, "big").unwrap();
    const N: u32 = 60_000;
    // Written directly, as a node that ran the reference would have them.
    for i in 0..N {
        let addr = std::net::Ipv4Addr::from(0x0a40_0000u32 + 2 + i);
        fs::write(
            store.dir().join(addr.to_string()),
            format!("ctr{i}\r\neth0"),
        )
        .unwrap();
    }

    // First use: the index does not exist, so it is built from every file.
    let mut leases = store.lock().unwrap();
    assert_eq!(
        leases.find("ctr5", "eth0").unwrap().exact,
        [ip("10.64.0.7")]
    );
    assert_eq!(
        leases.lease_reads(),
        u64::from(N) + 1,
        "a full scan, then the verified hit"
    );
    leases.commit().unwrap();

    // CHECK of a present attachment: one lease file read.
    let mut leases = store.lock().unwrap();
    assert_eq!(leases.find("ctr59999", "eth0").unwrap().exact.len(), 1);
    assert_eq!(leases.lease_reads(), 1);
    leases.commit().unwrap();

    // CHECK of an unknown one: nothing read.
    let mut leases = store.lock().unwrap();
    assert!(leases.find("nobody", "eth0").unwrap().is_empty());
    assert_eq!(leases.lease_reads(), 0);
    leases.commit().unwrap();

    // DEL: one read, one removal; DEL again: nothing read.
    for expected_reads in [1, 0] {
        let mut leases = store.lock().unwrap();
        let released = leases.release_owner("ctr123", "eth0").unwrap();
        assert_eq!(released.len() as u64, expected_reads);
        assert_eq!(leases.lease_reads(), expected_reads);
        leases.commit().unwrap();
    }

    // ADD's duplicate check and claim: nothing read but the owner's bucket.
    let mut leases = store.lock().unwrap();
    assert!(leases.find("new", "eth0").unwrap().is_empty());
    assert!(leases.reserve(ip("10.64.0.125"), "new", "eth0", 0).unwrap());
    assert_eq!(leases.lease_reads(), 0);
    leases.commit().unwrap();

    // The index stays small per lookup: one bucket of ~N/64 lines.
    let bucket = store
        .dir()
        .join(INDEX_DIR)
        .join(format!("{:02x}", bucket_of("ctr5")));
    let lines = fs::read_to_string(bucket).unwrap().lines().count();
    assert!(lines < (N as usize) / 32, "bucket has {lines} lines");
}

fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).unwrap().ino()
}

#[test]
fn released_lease_files_are_kept_as_spares_and_taken_over() {
    let tmp = TempDir::new("ipam-store");
    let store = Store::create(&tmp.path, "n").unwrap();
    let mut leases = store.lock().unwrap();
    assert!(leases.reserve(ip("10.0.0.2"), "c1", "eth0", 0).unwrap());
    leases.commit().unwrap();
    let file = inode(&store.dir().join("10.0.0.2"));

    let mut leases = store.lock().unwrap();
    assert_eq!(
        leases.release_owner("c1", "eth0").unwrap(),
        [ip("10.0.0.2")]
    );
    leases.commit().unwrap();
    let spare = index_file(&store, "spare-0");
    assert!(!store.dir().join("10.0.0.2").exists());
    assert_eq!(inode(&spare), file);
    assert_eq!(fs::read_to_string(&spare).unwrap(), SPARE_CONTENT);
    assert_eq!(parse_owner(SPARE_CONTENT), None);

    // The next lease is the same file, with exactly the new owner's bytes;
    // a taken address leaves the spare where it is.
    let mut leases = store.lock().unwrap();
    foreign_lease(&store, "10.0.0.3", "other\r\neth0");
    assert!(!leases.reserve(ip("10.0.0.3"), "c2", "eth0", 0).unwrap());
    assert!(spare.exists());
    assert!(leases.reserve(ip("10.0.0.4"), "c2", "eth0", 0).unwrap());
    leases.commit().unwrap();
    let lease = store.dir().join("10.0.0.4");
    assert_eq!(inode(&lease), file);
    assert_eq!(fs::read(&lease).unwrap(), b"c2\r\neth0");
    assert!(!spare.exists());
    assert_eq!(lookup(&store, "c2").0, [ip("10.0.0.4")]);
    assert_eq!(lookup(&store, "other").0, [ip("10.0.0.3")]);
}

#[test]
fn spares_are_capped_and_survive_a_rebuild() {
    let tmp = TempDir::new("ipam-store");
    let store = Store::create(&tmp.path, "n").unwrap();
    let n = SPARES_MAX + 3;
    let addr = |i: usize| ip(&format!("10.0.{}.{}", i / 200, 2 + i % 200));
    let mut leases = store.lock().unwrap();
    for i in 0..n {
        assert!(leases
            .reserve(addr(i), &format!("c{i}"), "eth0", 0)
            .unwrap());
    }
    leases.commit().unwrap();
    let mut leases = store.lock().unwrap();
    for i in 0..n {
        leases.release_owner(&format!("c{i}"), "eth0").unwrap();
    }
    leases.commit().unwrap();
    let spares: BTreeSet<String> = (0..SPARES_MAX).map(|k| format!("spare-{k}")).collect();
    let in_index = listing(&store.dir().join(INDEX_DIR));
    assert_eq!(
        in_index
            .iter()
            .filter(|f| f.starts_with("spare-"))
            .cloned()
            .collect::<BTreeSet<_>>(),
        spares
    );
    assert!(listing(store.dir())
        .iter()
        .all(|f| f.parse::<IpAddr>().is_err()));

    // A foreign change makes the index stale; the rebuild counts the spares
    // again, and they are taken from the top.
    foreign_lease(&store, "10.0.9.9", "foreign\r\neth0");
    let mut leases = store.lock().unwrap();
    assert!(leases.reserve(ip("10.0.9.10"), "c", "eth0", 0).unwrap());
    leases.commit().unwrap();
    assert!(!index_file(&store, &format!("spare-{}", SPARES_MAX - 1)).exists());
    assert!(index_file(&store, &format!("spare-{}", SPARES_MAX - 2)).exists());
    assert_eq!(lookup(&store, "foreign"), (vec![ip("10.0.9.9")], false));
}

#[test]
fn missing_spares_fall_back_to_new_files() {
    let tmp = TempDir::new("ipam-store");
    let store = Store::create(&tmp.path, "n").unwrap();
    let mut leases = store.lock().unwrap();
    leases.reserve(ip("10.0.0.2"), "c1", "eth0", 0).unwrap();
    leases.reserve(ip("10.0.0.3"), "c2", "eth0", 0).unwrap();
    leases.commit().unwrap();
    let mut leases = store.lock().unwrap();
    leases.release_owner("c1", "eth0").unwrap();
    leases.commit().unwrap();
    // Removed behind our back (meta still counts one).
    fs::remove_file(index_file(&store, "spare-0")).unwrap();
    let mut leases = store.lock().unwrap();
    assert!(leases.reserve(ip("10.0.0.4"), "c3", "eth0", 0).unwrap());
    leases.commit().unwrap();
    assert_eq!(
        fs::read(store.dir().join("10.0.0.4")).unwrap(),
        b"c3\r\neth0"
    );
    assert_eq!(lookup(&store, "c3"), (vec![ip("10.0.0.4")], false));

    // The whole index directory gone: DEL still removes the lease.
    fs::remove_dir_all(store.dir().join(INDEX_DIR)).unwrap();
    let mut leases = store.lock().unwrap();
    assert_eq!(
        leases.release_owner("c2", "eth0").unwrap(),
        [ip("10.0.0.3")]
    );
    leases.commit().unwrap();
    assert!(!store.dir().join("10.0.0.3").exists());
}

#[test]
fn a_rebuild_makes_every_bucket_file_so_later_commits_only_overwrite() {
    let tmp = TempDir::new("ipam-store");
    let store = Store::create(&tmp.path, "n").unwrap();
    let mut leases = store.lock().unwrap();
    assert!(leases.reserve(ip("10.0.0.2"), "c1", "eth0", 0).unwrap());
    leases.commit().unwrap();
    let index = store.dir().join(INDEX_DIR);
    let made = listing(&index);
    assert_eq!(made.len(), BUCKETS + 1, "{made:?}");
    for b in 0..BUCKETS {
        let text = fs::read_to_string(index.join(bucket_file(b))).unwrap();
        assert!(
            index::decode_bucket(&text).is_some(),
            "bucket {b}: {text:?}"
        );
    }
    // Owners in other buckets: nothing new in the index directory.
    let inodes = |names: &BTreeSet<String>| -> Vec<u64> {
        names.iter().map(|n| inode(&index.join(n))).collect()
    };
    let before = inodes(&made);
    let mut leases = store.lock().unwrap();
    for i in 0..20 {
        let addr = ip(&format!("10.0.1.{}", 2 + i));
        assert!(leases
            .reserve(addr, &format!("other{i}"), "eth0", 0)
            .unwrap());
    }
    leases.commit().unwrap();
    assert_eq!(listing(&index), made);
    assert_eq!(inodes(&made), before);
    assert_eq!(lookup(&store, "other7"), (vec![ip("10.0.1.9")], false));
}
