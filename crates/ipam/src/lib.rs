//! IP address management shared by the IPAM plugins: ranges and range sets,
//! the requested-address sources, routes, resolv.conf, results, and the
//! host-local allocator with its on-disk store.
//!
//! # The store
//!
//! [`store::Store`] is byte-compatible with the reference host-local: in
//! `<dataDir>/<network>/` a file named by each leased IP holds
//! `<containerID>\r\n<ifname>`, `last_reserved_ip.<n>` holds the address last
//! handed out from range set `n`, and every operation holds `flock` on the
//! `lock` file, so our plugin and the reference can share a node, in either
//! order, without losing or duplicating a lease.
//!
//! # The lease index
//!
//! The reference reads every lease file on each DEL and CHECK. We keep an
//! index instead, in `cni-plugins-rs.index/` inside the network directory:
//!
//! - 64 bucket files list `<ip> <containerID> [<ifname>]`; all leases of one
//!   container ID live in bucket `fnv1a(containerID) % 64`, so DEL and CHECK
//!   read one bucket and then only that owner's lease files — the cost does
//!   not grow with the number of other leases (60 000 leases ≈ 1 000 lines
//!   per bucket).
//! - `meta` records the network directory's device, inode and mtime (ns) as
//!   they were after our last change, and the FNV-1a checksum of every
//!   bucket file's content as written then (`-` for an empty bucket, whose
//!   file is then neither read nor rewritten).
//!
//! **Detecting a stale index.** Anything that adds or removes a lease file —
//! the reference plugin, an older version of us, an operator — changes the
//! directory's mtime. The index is used only while that mtime equals the
//! recorded one; otherwise (or when any index file is missing or damaged) it
//! is rebuilt from the lease files under the lock. Timestamps are coarse (a
//! kernel tick), so a change right after ours could otherwise keep the same
//! mtime: after each of our changes we therefore set the directory's mtime
//! two seconds into the past and record that value. A later change by anyone
//! sets it to the current time, which can never equal the recorded stamp.
//! (Only a wall clock stepped back by two seconds or more could defeat this,
//! and only together with a foreign change; without permission to set times
//! the plain mtime is used.) Index files start with a header line, so the
//! reference, which reads every file under the directory, never takes them
//! for leases.
//!
//! **Never trusting a hit.** Every index entry is checked against the lease
//! file's content before we act on it (a DEL removes only a file that holds
//! the caller's owner string); entries that fail the check are dropped. The
//! uniqueness of addresses never depends on the index: each claim is an
//! `O_EXCL` create of the lease file.
//!
//! **Writes, in place.** On ext4 (where `/var/lib/cni` lives) anything that
//! frees a data block — `O_TRUNC`, or a temporary file renamed over the old
//! one — costs a few hundred µs to several ms (more with `discard`), while
//! overwriting an existing block costs a few µs. So the hot path frees no
//! block and makes no inode beyond the lease file itself (a rebuild makes
//! all 64 bucket files, the empty ones too, once): index files and
//! `last_reserved_ip.<n>` are overwritten from offset 0 and cut to the new
//! length only when they shrink (the latter with exactly the reference's
//! bytes; an `ftruncate`, even to the same size, costs 20-80 µs on ext4).
//! Even the lease file is usually not new: DEL renames a released one into
//! the index directory as `spare-<k>` (up to 64, counted in `meta`, their
//! content a blank line, which is nobody's owner string), and the next ADD
//! renames it back under its new address (`RENAME_NOREPLACE`, as atomic as
//! `O_EXCL`) and writes the owner over it. On ext4 without a journal every
//! new inode has to skip all inodes freed in the last minutes, which made
//! lease creation a tenth of the CPU time of a burst of ADDs. Under the lock
//! a commit writes the changed buckets, stamps the directory, and writes
//! `meta` last. Such writes are not atomic, so nothing is believed unless it
//! proves itself whole:
//!
//! - `meta` ends with a checksum of everything before it; a torn or partly
//!   overwritten `meta` fails it, and the index is rebuilt.
//! - a bucket is used only when its bytes hash to the checksum in `meta`.
//!   A bucket torn by a crash (new content cut short, or over the rest of the
//!   old one) fails that; so does a bucket whose rewrite never reached the
//!   disk while `meta`'s did (a power loss does not keep write order).
//! - a crash after the buckets but before `meta` leaves the old `meta`, whose
//!   stamp no longer matches when a lease file was created or removed (stale,
//!   rebuilt), and whose checksums no longer match the rewritten buckets when
//!   none was (a commit that only dropped dead entries; a bucket it left as
//!   it was still holds only entries that are verified before use).
//!
//! A torn `last_reserved_ip` is harmless: it is only where the next search
//! starts (an address that is no longer the last one, or none at all), and
//! uniqueness never depends on it. A rebuild or a GC reads every lease file
//! once; STATUS lists names only.

pub mod addr;
pub mod alloc;
pub mod common;
pub mod host_local;
pub mod index;
pub mod range;
pub mod resolv;
pub mod store;

pub use alloc::{allocate, assign_requested, Allocation};
pub use common::{
    check_per_family, ipam_keys, ipam_result, parse_routes, Requested, RouteConf, Source,
};
pub use range::{parse_range_sets, Range, RangeConf, RangeSet};
pub use resolv::{parse_resolv_conf, read_resolv_conf};
pub use store::{Leases, Store, DEFAULT_DATA_DIR};
