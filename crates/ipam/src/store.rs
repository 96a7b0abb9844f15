//! The host-local lease store, byte-compatible with the reference, plus the
//! lease index described in the crate documentation.
//!
//! Layout of `<dataDir>/<network>/`:
//! - `<ip>`: one file per lease, holding `<containerID>\r\n<ifname>` (older
//!   writers: only `<containerID>`);
//! - `last_reserved_ip.<n>`: the address last handed out from range set `n`;
//! - `lock`: taken with `flock(LOCK_EX)` around every operation;
//! - `cni-plugins-rs.index/`: ours, a cache that can always be rebuilt, and
//!   up to [`SPARES_MAX`] spare lease files (`spare-<k>`) that released
//!   leases left behind for the next ones to take over.

use crate::index::{self, bucket_of, DirStamp, Entry, Meta, BUCKETS};
use cni::config::is_valid_id;
use cni::skel::validate_ifname;
use cni::{Attachment, Error, Result};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ffi::CString;
use std::fs::{self, File, FileTimes, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Where stores live when `dataDir` is not set.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";
const LOCK_FILE: &str = "lock";
const LAST_RESERVED: &str = "last_reserved_ip.";
/// Our index directory inside the network directory.
pub const INDEX_DIR: &str = "cni-plugins-rs.index";
const META_FILE: &str = "meta";
/// How many released lease files are kept, as `spare-0`, `spare-1`, … in the
/// index directory, to become leases again by rename. Enough for a node's
/// burst of containers; beyond it, released leases are removed.
pub const SPARES_MAX: usize = 64;
/// What a spare lease file holds: blank, so it can never equal an owner
/// string (the reference, which reads every file under the network
/// directory, compares trimmed content) and so that a lease written over it
/// only ever makes it longer, which needs no `ftruncate`.
pub const SPARE_CONTENT: &str = "\n";
/// How far in the past we set the directory's mtime after our own changes:
/// far more than any timestamp granularity, so a later change by anyone
/// always moves the mtime away from the recorded value.
const STAMP_AGE: Duration = Duration::from_secs(2);

/// The owner string of a lease file, as the reference writes it.
pub fn lease_content(container_id: &str, ifname: &str) -> String {
    format!("{}\r\n{}", container_id.trim(), ifname)
}

/// The owner of a lease file's content: `(containerID, Some(ifname))`, or
/// `(containerID, None)` for the legacy content. `None` when the content
/// could not match any valid request (the reference compares whole trimmed
/// strings, so such files are never anybody's lease).
pub fn parse_owner(content: &str) -> Option<(String, Option<String>)> {
    let text = content.trim();
    let (id, ifname) = match text.split_once("\r\n") {
        Some((id, ifname)) => (id, Some(ifname)),
        None => (text, None),
    };
    let ifname_ok = ifname.is_none_or(|i| validate_ifname(i).is_ok());
    (is_valid_id(id) && ifname_ok).then(|| (id.to_string(), ifname.map(str::to_string)))
}

fn failed(what: impl std::fmt::Display, path: &Path, e: io::Error) -> Error {
    Error::failed(format!("{what} {:?}: {e}", path.display().to_string()))
}

/// The lease directory of one network.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    fn network_dir(data_dir: &Path, network: &str) -> Result<PathBuf> {
        // The name was validated by the dispatcher; check again before it
        // becomes part of a path.
        if !is_valid_id(network) {
            return Err(Error::invalid_config(format!(
                "invalid network name {network:?}: it must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"
            )));
        }
        Ok(data_dir.join(network))
    }

    fn not_a_directory(path: &Path) -> Error {
        Error::invalid_config(format!(
            "dataDir: {:?} exists but is not a directory; set ipam.dataDir to a directory \
             (default {DEFAULT_DATA_DIR})",
            path.display().to_string()
        ))
    }

    /// The existing store of `network`; `None` when there is none (nothing was
    /// ever allocated there, or `dataDir` cannot hold one).
    pub fn open(data_dir: &Path, network: &str) -> Result<Option<Store>> {
        let dir = Self::network_dir(data_dir, network)?;
        match fs::metadata(&dir) {
            Ok(m) if m.is_dir() => Ok(Some(Store { dir })),
            Ok(_) => Err(Self::not_a_directory(&dir)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(failed("could not read the lease directory", &dir, e)),
        }
    }

    /// The store of `network`, created (with `dataDir`) when missing.
    pub fn create(data_dir: &Path, network: &str) -> Result<Store> {
        let dir = Self::network_dir(data_dir, network)?;
        match fs::metadata(data_dir) {
            Ok(m) if !m.is_dir() => return Err(Self::not_a_directory(data_dir)),
            _ => {}
        }
        if let Some(store) = Self::open(data_dir, network)? {
            return Ok(store);
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&dir)
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotADirectory | io::ErrorKind::AlreadyExists => {
                    Self::not_a_directory(data_dir)
                }
                _ => failed("could not create the lease directory", &dir, e),
            })?;
        Ok(Store { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Take the store's lock (shared with the reference plugin) until the
    /// returned session is committed or dropped.
    pub fn lock(&self) -> Result<Leases<'_>> {
        let path = self.dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .map_err(|e| failed("could not open the lock file", &path, e))?;
        flock_exclusive(&file).map_err(|e| failed("could not lock", &path, e))?;
        Ok(Leases {
            store: self,
            _lock: file,
            state: IndexState::Unchecked,
            buckets: BTreeMap::new(),
            dirty: BTreeSet::new(),
            sums: [None; BUCKETS],
            last_reserved: BTreeMap::new(),
            journal: Vec::new(),
            lease_reads: 0,
            spares: 0,
            unmade: BTreeSet::new(),
        })
    }

    /// The leased addresses, from the file names only (nothing is read).
    pub fn leased_ips(&self) -> Result<HashSet<IpAddr>> {
        let entries =
            fs::read_dir(&self.dir).map_err(|e| failed("could not list", &self.dir, e))?;
        Ok(entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect())
    }
}

fn flock_exclusive(file: &File) -> io::Result<()> {
    loop {
        // SAFETY: flock only reads the descriptor, which `file` keeps open.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// A lease file found by a full scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub ip: IpAddr,
    /// `(containerID, ifname)`; ifname `None` for legacy content; `None` when
    /// the content names no valid owner.
    pub owner: Option<(String, Option<String>)>,
}

/// The leases of one owner, verified against the lease files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owned {
    /// Files holding exactly `<containerID>\r\n<ifname>`.
    pub exact: Vec<IpAddr>,
    /// Files holding only `<containerID>` (written by old versions).
    pub legacy: Vec<IpAddr>,
}

impl Owned {
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.legacy.is_empty()
    }

    /// What DEL releases, as the reference: the exact matches, or when there
    /// are none, the legacy ones.
    pub fn to_release(&self) -> &[IpAddr] {
        if self.exact.is_empty() {
            &self.legacy
        } else {
            &self.exact
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IndexState {
    /// Not looked at yet in this session.
    Unchecked,
    /// The index describes the directory; buckets are read when needed.
    Fresh,
    /// Rebuilt from the lease files in this session; all buckets are loaded.
    Rebuilt,
}

/// What to undo if an ADD fails part-way.
#[derive(Debug)]
enum Undo {
    Lease {
        name: String,
        container_id: String,
    },
    LastReserved {
        set: usize,
        previous: Option<Vec<u8>>,
    },
}

/// A locked session on a store. Changes reach the index with
/// [`Leases::commit`]; dropping the session without it only leaves the index
/// detectably stale.
pub struct Leases<'a> {
    store: &'a Store,
    _lock: File,
    state: IndexState,
    buckets: BTreeMap<usize, Vec<Entry>>,
    dirty: BTreeSet<usize>,
    /// Checksum of each bucket file as `meta` records it (`None`: empty).
    sums: [Option<u64>; BUCKETS],
    /// `last_reserved_ip.<n>` contents as read or written in this session.
    last_reserved: BTreeMap<usize, Option<Vec<u8>>>,
    journal: Vec<Undo>,
    lease_reads: u64,
    /// Spare lease files, `spare-0` to `spare-<spares - 1>`, as believed.
    spares: usize,
    /// Buckets without a file, found by a rebuild.
    unmade: BTreeSet<usize>,
}

impl Leases<'_> {
    /// How many lease files this session has read (for tests and the design
    /// promise that DEL and CHECK read only the caller's own leases).
    pub fn lease_reads(&self) -> u64 {
        self.lease_reads
    }

    fn dir(&self) -> &Path {
        &self.store.dir
    }

    fn index_dir(&self) -> PathBuf {
        self.dir().join(INDEX_DIR)
    }

    fn read_lease(&mut self, name: &str) -> io::Result<String> {
        self.lease_reads += 1;
        let bytes = fs::read(self.dir().join(name))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Every lease file with its owner; reads them all.
    fn scan(&mut self) -> Result<Vec<Lease>> {
        let dir = self.dir().to_path_buf();
        let listing = fs::read_dir(&dir).map_err(|e| failed("could not list", &dir, e))?;
        let mut leases = Vec::new();
        for entry in listing {
            let entry = entry.map_err(|e| failed("could not list", &dir, e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let Ok(ip) = name.parse::<IpAddr>() else {
                continue;
            };
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            // A file that cannot be read (gone meanwhile, a dangling link)
            // can be nobody's lease, as for the reference, which skips it too.
            if let Ok(content) = self.read_lease(&name) {
                leases.push(Lease {
                    ip,
                    owner: parse_owner(&content),
                });
            }
        }
        Ok(leases)
    }

    /// Rebuild the whole index from the lease files; returns what was found.
    fn rebuild(&mut self) -> Result<Vec<Lease>> {
        let leases = self.scan()?;
        self.buckets = (0..BUCKETS).map(|b| (b, Vec::new())).collect();
        self.sums = [None; BUCKETS];
        for lease in &leases {
            let Some((id, ifname)) = &lease.owner else {
                continue;
            };
            let name = lease.ip.to_string();
            if let Some(entry) = Entry::checked(&name, id, ifname.as_deref()) {
                self.buckets.entry(bucket_of(id)).or_default().push(entry);
            }
        }
        self.dirty = (0..BUCKETS).collect();
        self.state = IndexState::Rebuilt;
        // What the index directory holds: the spares, and which bucket files
        // are still to be made (an empty one each, so that later commits
        // only ever overwrite files: making one costs far more).
        let present: HashSet<String> = fs::read_dir(self.index_dir())
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        self.spares = (0..SPARES_MAX)
            .take_while(|k| present.contains(&spare_file(*k)))
            .count();
        self.unmade = (0..BUCKETS)
            .filter(|b| !present.contains(&bucket_file(*b)))
            .collect();
        Ok(leases)
    }

    fn check_index(&mut self) -> Result<()> {
        let now = dir_stamp(self.dir()).map_err(|e| failed("could not stat", self.dir(), e))?;
        let recorded = fs::read_to_string(self.index_dir().join(META_FILE))
            .ok()
            .and_then(|t| index::decode_meta(&t));
        match recorded {
            Some(meta) if meta.stamp == now => {
                self.sums = meta.sums;
                self.spares = meta.spares.min(SPARES_MAX);
                self.state = IndexState::Fresh;
            }
            _ => {
                self.rebuild()?;
            }
        }
        Ok(())
    }

    /// Bucket `b` exactly as the last commit wrote it; `None` when its file
    /// is missing, torn, or otherwise not the content `meta` recorded.
    fn read_bucket(&self, b: usize) -> Option<Vec<Entry>> {
        let Some(sum) = self.sums.get(b).copied()? else {
            // Recorded as empty: whatever the file still holds is outdated.
            return Some(Vec::new());
        };
        let bytes = fs::read(self.index_dir().join(bucket_file(b))).ok()?;
        if index::fnv1a(&bytes) != sum {
            return None;
        }
        index::decode_bucket(std::str::from_utf8(&bytes).ok()?)
    }

    /// The index bucket holding `container_id`'s leases, loaded if needed.
    fn bucket(&mut self, container_id: &str) -> Result<&mut Vec<Entry>> {
        if self.state == IndexState::Unchecked {
            self.check_index()?;
        }
        let b = bucket_of(container_id);
        if !self.buckets.contains_key(&b) {
            match self.read_bucket(b) {
                Some(entries) => {
                    self.buckets.insert(b, entries);
                }
                None => {
                    self.rebuild()?;
                }
            }
        }
        Ok(self.buckets.entry(b).or_default())
    }

    /// The leases of `(container_id, ifname)`, each checked against its file
    /// before it is believed; index entries that fail the check are dropped.
    pub fn find(&mut self, container_id: &str, ifname: &str) -> Result<Owned> {
        let candidates: Vec<Entry> = self
            .bucket(container_id)?
            .iter()
            .filter(|e| {
                e.container_id == container_id && e.ifname.as_deref().is_none_or(|i| i == ifname)
            })
            .cloned()
            .collect();
        let mut owned = Owned::default();
        let mut stale = Vec::new();
        for entry in candidates {
            let expected = match &entry.ifname {
                Some(_) => lease_content(container_id, ifname),
                None => container_id.to_string(),
            };
            let ip = entry.name.parse::<IpAddr>().ok();
            // Unreadable or gone counts as not ours, as in a full scan.
            match (self.read_lease(&entry.name), ip) {
                (Ok(content), Some(ip)) if content.trim() == expected => match entry.ifname {
                    Some(_) => owned.exact.push(ip),
                    None => owned.legacy.push(ip),
                },
                _ => stale.push(entry),
            }
        }
        if !stale.is_empty() {
            let bucket = self.bucket(container_id)?;
            bucket.retain(|e| !stale.contains(e));
            self.dirty.insert(bucket_of(container_id));
        }
        Ok(owned)
    }

    /// Create the lease file for `ip` if it is free (`O_EXCL`), record it as
    /// the last reserved address of range set `set`. `Ok(false)` when taken.
    pub fn reserve(
        &mut self,
        ip: IpAddr,
        container_id: &str,
        ifname: &str,
        set: usize,
    ) -> Result<bool> {
        // Load the bucket before the directory changes, so a rebuild can
        // never see this lease and then have it added a second time.
        self.bucket(container_id)?;
        let name = ip.to_string();
        let path = self.dir().join(&name);
        if !self.claim(&path, &lease_content(container_id, ifname))? {
            return Ok(false);
        }
        self.journal.push(Undo::Lease {
            name: name.clone(),
            container_id: container_id.to_string(),
        });
        let entry = Entry::checked(&name, container_id, Some(ifname));
        let bucket = self.bucket(container_id)?;
        bucket.extend(entry);
        self.dirty.insert(bucket_of(container_id));

        let noted = self
            .journal
            .iter()
            .any(|u| matches!(u, Undo::LastReserved { set: s, .. } if *s == set));
        if !noted {
            let previous = self.last_reserved_bytes(set);
            self.journal.push(Undo::LastReserved { set, previous });
        }
        self.set_last_reserved(set, Some(name.into_bytes()))?;
        Ok(true)
    }

    fn spare_path(&self, k: usize) -> PathBuf {
        self.index_dir().join(spare_file(k))
    }

    /// Make the lease file `path` holding `content`, unless it exists
    /// (`Ok(false)`). A spare lease file is renamed there if there is one:
    /// creating a file allocates an inode, which on ext4 without a journal
    /// means skipping every inode freed in the last minutes (about 0.1 ms
    /// per ADD when containers come and go; seen in profiles of 64
    /// parallel ADDs). Either way the claim is atomic: `O_EXCL`, or a
    /// rename that refuses to replace.
    fn claim(&mut self, path: &Path, content: &str) -> Result<bool> {
        if let Some(k) = self.spares.checked_sub(1) {
            match rename_noreplace(&self.spare_path(k), path) {
                Ok(()) => {
                    self.spares = k;
                    return match write_in_place(path, content.as_bytes(), true) {
                        Ok(()) => Ok(true),
                        Err(e) => {
                            let _ = fs::remove_file(path);
                            Err(failed("could not write lease", path, e))
                        }
                    };
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
                // The spare is gone, or the filesystem cannot rename without
                // replacing: forget the spares and create the file.
                Err(_) => self.spares = 0,
            }
        }
        let mut file = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(failed("could not create lease", path, e)),
        };
        if let Err(e) = file.write_all(content.as_bytes()) {
            drop(file);
            let _ = fs::remove_file(path);
            return Err(failed("could not write lease", path, e));
        }
        Ok(true)
    }

    /// Remove the lease file `path` (already gone is fine), keeping it as a
    /// spare for [`Leases::claim`] while there are fewer than [`SPARES_MAX`].
    fn retire(&mut self, path: &Path) -> io::Result<()> {
        if self.spares < SPARES_MAX {
            let spare = self.spare_path(self.spares);
            // Fails when the lease or the index directory is missing, or
            // when the spare count was wrong: then the file is removed.
            if rename_noreplace(path, &spare).is_ok() {
                self.spares += 1;
                // Its old content should not look like anybody's lease. The
                // lease is gone either way: should this fail, the reference
                // could at worst remove the spare for that owner, and a
                // missing spare only means a new file later.
                let _ = write_in_place(&spare, SPARE_CONTENT.as_bytes(), true);
                return Ok(());
            }
        }
        match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn last_reserved_path(&self, set: usize) -> PathBuf {
        self.dir().join(format!("{LAST_RESERVED}{set}"))
    }

    /// The content of `last_reserved_ip.<set>`, read at most once a session.
    fn last_reserved_bytes(&mut self, set: usize) -> Option<Vec<u8>> {
        if let Some(known) = self.last_reserved.get(&set) {
            return known.clone();
        }
        let bytes = fs::read(self.last_reserved_path(set)).ok();
        self.last_reserved.insert(set, bytes.clone());
        bytes
    }

    /// Write (or with `None` remove) `last_reserved_ip.<set>`. The bytes are
    /// the reference's, but written in place rather than truncated first.
    fn set_last_reserved(&mut self, set: usize, bytes: Option<Vec<u8>>) -> Result<()> {
        let path = self.last_reserved_path(set);
        let done = match &bytes {
            Some(bytes) => {
                write_in_place(&path, bytes, false).map_err(|e| failed("could not write", &path, e))
            }
            None => match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    Err(failed("could not remove", &path, e))
                }
                _ => Ok(()),
            },
        };
        // After a failure the content is no longer known for certain.
        self.last_reserved.remove(&set);
        done?;
        self.last_reserved.insert(set, bytes);
        Ok(())
    }

    /// The address last handed out from range set `set`, if recorded.
    pub fn last_reserved(&mut self, set: usize) -> Option<IpAddr> {
        let bytes = self.last_reserved_bytes(set)?;
        crate::addr::parse_ip(std::str::from_utf8(&bytes).ok()?)
    }

    /// Remove the lease file of `ip` held by `container_id` (already gone is fine).
    pub fn release(&mut self, ip: IpAddr, container_id: &str) -> Result<()> {
        // The index first: it also says how many spares there are.
        self.bucket(container_id)?;
        let name = ip.to_string();
        let path = self.dir().join(&name);
        self.retire(&path)
            .map_err(|e| failed("could not remove lease", &path, e))?;
        self.bucket(container_id)?.retain(|e| e.name != name);
        self.dirty.insert(bucket_of(container_id));
        Ok(())
    }

    /// DEL: release what `(container_id, ifname)` holds (exact matches, else
    /// legacy ones); returns the released addresses.
    pub fn release_owner(&mut self, container_id: &str, ifname: &str) -> Result<Vec<IpAddr>> {
        let owned = self.find(container_id, ifname)?;
        let victims = owned.to_release().to_vec();
        for ip in &victims {
            self.release(*ip, container_id)?;
        }
        Ok(victims)
    }

    /// Undo every reservation of this session (a failed ADD), restoring the
    /// `last_reserved_ip` files. Best effort: errors are returned as text.
    pub fn rollback(&mut self) -> Vec<String> {
        let mut errors = Vec::new();
        while let Some(undo) = self.journal.pop() {
            let done = match undo {
                Undo::Lease { name, container_id } => match name.parse::<IpAddr>() {
                    Ok(ip) => self.release(ip, &container_id).map_err(|e| e.msg),
                    Err(_) => Ok(()),
                },
                Undo::LastReserved { set, previous } => {
                    self.set_last_reserved(set, previous).map_err(|e| e.msg)
                }
            };
            errors.extend(done.err());
        }
        errors
    }

    /// GC: release every lease whose owner is not in `valid`. A legacy lease
    /// (container ID only) is kept while any valid attachment has its
    /// container ID; files whose content names no owner are kept untouched.
    /// Reads every lease file. Returns the released addresses and the errors.
    pub fn release_all_except(
        &mut self,
        valid: &[Attachment],
    ) -> Result<(Vec<IpAddr>, Vec<String>)> {
        let keep: HashSet<(&str, &str)> = valid
            .iter()
            .map(|a| (a.container_id.as_str(), a.ifname.as_str()))
            .collect();
        let keep_ids: HashSet<&str> = valid.iter().map(|a| a.container_id.as_str()).collect();
        let leases = self.rebuild()?;
        let (mut released, mut errors) = (Vec::new(), Vec::new());
        for lease in leases {
            let Some((id, ifname)) = &lease.owner else {
                continue;
            };
            let valid = match ifname {
                Some(ifname) => keep.contains(&(id.as_str(), ifname.as_str())),
                None => keep_ids.contains(id.as_str()),
            };
            if !valid {
                match self.release(lease.ip, id) {
                    Ok(()) => released.push(lease.ip),
                    Err(e) => errors.push(e.msg),
                }
            }
        }
        Ok((released, errors))
    }

    /// Write the changed index buckets, stamp the directory and record the
    /// stamp with the buckets' checksums, `meta` last. Everything is
    /// rewritten in place (see the crate documentation for why a crash
    /// part-way is still detected). The index is a cache: a failure here only
    /// leaves it stale.
    pub fn commit(mut self) -> io::Result<()> {
        if self.state == IndexState::Unchecked || self.dirty.is_empty() {
            return Ok(());
        }
        let index_dir = self.index_dir();
        for b in std::mem::take(&mut self.dirty) {
            let entries = self.buckets.get(&b).map(Vec::as_slice).unwrap_or_default();
            // An empty bucket is recorded as such; its file is left alone,
            // or made if there is none yet.
            let sum = match entries {
                [] => {
                    if self.unmade.remove(&b) {
                        let text = index::encode_bucket(&[]);
                        write_index_file(&index_dir, &bucket_file(b), text.as_bytes())?;
                    }
                    None
                }
                _ => {
                    let text = index::encode_bucket(entries);
                    write_index_file(&index_dir, &bucket_file(b), text.as_bytes())?;
                    Some(index::fnv1a(text.as_bytes()))
                }
            };
            if let Some(slot) = self.sums.get_mut(b) {
                *slot = sum;
            }
        }
        let meta = Meta {
            stamp: stamp_dir(self.dir())?,
            sums: self.sums,
            spares: self.spares,
        };
        write_index_file(&index_dir, META_FILE, index::encode_meta(&meta).as_bytes())
    }

    /// [`Leases::commit`], reporting a failure on stderr (CNI's log channel).
    pub fn finish(self) {
        let dir = self.dir().display().to_string();
        if let Err(e) = self.commit() {
            eprintln!(
                "warning: could not update the lease index in {dir}: {e}; it will be rebuilt"
            );
        }
    }
}

fn spare_file(k: usize) -> String {
    format!("spare-{k}")
}

fn bucket_file(b: usize) -> String {
    format!("{b:02x}")
}

/// Overwrite `path` with `bytes`: written over the old content, then cut to
/// length if the old content was longer. No `O_TRUNC` and no temporary
/// file, because freeing the old data block costs ~0.3 ms or more on ext4
/// with `discard`, against a few µs for this; and no `ftruncate` unless the
/// file shrinks, because on ext4 even one to the same size costs 20-80 µs
/// (an `fstat` costs 1). Not atomic: readers must be able to tell a torn
/// result (lease index files carry checksums; `last_reserved_ip` is only a
/// hint where to start).
fn write_in_place(path: &Path, bytes: &[u8], no_follow: bool) -> io::Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(if no_follow { libc::O_NOFOLLOW } else { 0 })
        .open(path)?;
    file.write_all_at(bytes, 0)?;
    let len = bytes.len() as u64;
    if file.metadata()?.len() > len {
        file.set_len(len)?;
    }
    Ok(())
}

/// Write a file of our index (never through a link), creating the index
/// directory on first use.
fn write_index_file(index_dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let path = index_dir.join(name);
    match write_in_place(&path, bytes, true) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match fs::DirBuilder::new().mode(0o755).create(index_dir) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
            write_in_place(&path, bytes, true)
        }
        done => done,
    }
}

/// `rename(from, to)` that fails with `AlreadyExists` instead of replacing
/// `to` (`renameat2` with `RENAME_NOREPLACE`).
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
    };
    let (from, to) = (c(from)?, c(to)?);
    // SAFETY: both paths are NUL-terminated strings that outlive the call.
    let done = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    match done {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

fn dir_stamp(dir: &Path) -> io::Result<DirStamp> {
    Ok(stamp_of(&fs::metadata(dir)?))
}

fn stamp_of(m: &fs::Metadata) -> DirStamp {
    DirStamp {
        dev: m.dev(),
        ino: m.ino(),
        mtime_sec: m.mtime(),
        mtime_nsec: m.mtime_nsec(),
    }
}

/// Set the directory's mtime a little in the past and return the stamp read
/// back. Any later entry change (ours, the reference's, an operator's) sets
/// the mtime to "now", which can then never equal the recorded stamp, even
/// within one timestamp tick. Where setting times is not permitted the
/// current mtime is recorded instead (then a change within the same tick
/// could go unnoticed; every index hit is still verified).
fn stamp_dir(dir: &Path) -> io::Result<DirStamp> {
    let handle = File::open(dir)?;
    let past = SystemTime::now()
        .checked_sub(STAMP_AGE)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let _ = handle.set_times(FileTimes::new().set_modified(past));
    Ok(stamp_of(&handle.metadata()?))
}

#[cfg(test)]
mod tests;
