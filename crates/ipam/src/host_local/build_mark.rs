//! Telling whether a `host-local` binary is this very build of host-local,
//! so that an interface plugin may run it in its own process instead of
//! executing it: the same code with the same stdin and environment, without
//! a second process start (about 0.8 ms of CPU per ADD here).
//!
//! The `host-local` binary, and only it, carries [`BUILD_MARK`] in an ELF
//! section of its own: a hash of every source that decides what host-local
//! does (computed by `build.rs`). Anything else on `CNI_PATH` under that
//! name — the reference plugin, another version of ours, another of our
//! plugins renamed, a wrapper script — lacks the section or carries another
//! hash, and is executed as the spec says.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

const TEXT: &str = concat!(
    "cni-plugins-rs host-local build ",
    env!("CNI_RS_HOST_LOCAL_MARK")
);

const fn bytes<const N: usize>(text: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = text.as_bytes()[i];
        i += 1;
    }
    out
}

/// What the `host-local` binary carries in its section [`SECTION_NAME`]:
/// `static` it there with `#[used]` and `#[link_section]`.
pub const BUILD_MARK: [u8; TEXT.len()] = bytes(TEXT);

/// The ELF section that holds [`BUILD_MARK`] in the `host-local` binary.
pub const SECTION_NAME: &str = ".cnirs.host_local";

/// Whether this build can vouch for binaries at all: without the workspace
/// sources (the crate built alone) the mark is "none".
fn usable() -> bool {
    !TEXT.ends_with(" none")
}

/// Whether the executable at `path` is host-local built from the same
/// sources as this binary. Any doubt (not ELF64 little-endian, no such
/// section, unreadable, odd sizes) is a no.
pub fn is_this_build(path: &Path) -> bool {
    usable()
        && File::open(path)
            .is_ok_and(|f| section(&f, SECTION_NAME.as_bytes()).is_some_and(|s| s == BUILD_MARK))
}

fn read_at(file: &File, offset: u64, len: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, offset).ok()?;
    Some(buf)
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The contents of the section called `name` (at most 4 KiB), read through
/// the ELF64 section headers. Hand-written rather than with an ELF crate:
/// it reads four small pieces of one file, and every plugin carries it.
fn section(file: &File, name: &[u8]) -> Option<Vec<u8>> {
    const SHDR: usize = 64;
    let header = read_at(file, 0, 64)?;
    // \x7fELF, 64-bit, little-endian.
    if header.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let shoff = u64_at(&header, 0x28)?;
    let (shentsize, shnum, shstrndx) = (
        usize::from(u16_at(&header, 0x3a)?),
        usize::from(u16_at(&header, 0x3c)?),
        usize::from(u16_at(&header, 0x3e)?),
    );
    if shentsize != SHDR || shnum > 4096 || shstrndx >= shnum {
        return None;
    }
    let headers = read_at(file, shoff, shnum * SHDR)?;
    let field = |index: usize, at: usize| u64_at(&headers, index * SHDR + at);
    let (names_at, names_len) = (field(shstrndx, 0x18)?, field(shstrndx, 0x20)?);
    let names = read_at(
        file,
        names_at,
        usize::try_from(names_len).ok()?.min(1 << 16),
    )?;
    (0..shnum).find_map(|i| {
        let start = usize::try_from(u32_at(&headers, i * SHDR)?).ok()?;
        let len = names.get(start..)?.iter().position(|&b| b == 0)?;
        if names.get(start..start + len)? != name {
            return None;
        }
        let size = usize::try_from(field(i, 0x20)?).ok()?;
        (size <= 4096).then_some(())?;
        read_at(file, field(i, 0x18)?, size)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp_file(tag: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!(
            "cnirs-mark-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        File::create(&path).unwrap().write_all(bytes).unwrap();
        path
    }

    // As the host-local binary carries it.
    #[used]
    #[link_section = ".cnirs.host_local"]
    static MARK: [u8; BUILD_MARK.len()] = BUILD_MARK;

    #[test]
    fn this_test_binary_carries_the_mark() {
        let exe = std::env::current_exe().unwrap();
        assert!(usable(), "built inside the workspace");
        assert!(is_this_build(&exe));
        let file = File::open(&exe).unwrap();
        assert_eq!(section(&file, SECTION_NAME.as_bytes()).unwrap(), MARK);
        assert!(section(&file, b".cnirs.no_such").is_none());
    }

    #[test]
    fn other_files_are_not_this_build() {
        assert!(!is_this_build(Path::new("/no/such/file")));
        assert!(!is_this_build(Path::new("/bin/sh")));
        let script = temp_file("script", b"#!/bin/sh\necho '{}'\n");
        assert!(!is_this_build(&script));
        // Our own binary cut short: the section headers are gone.
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let cut = temp_file("cut", &exe[..exe.len() / 2]);
        assert!(!is_this_build(&cut));
        // The same binary with another mark in the section.
        let mut other = exe.clone();
        let places: Vec<usize> = (0..exe.len() - MARK.len())
            .filter(|&at| exe[at..at + MARK.len()] == MARK)
            .collect();
        assert!(!places.is_empty(), "the mark is in the file");
        for at in places {
            other[at + MARK.len() - 1] ^= 1;
        }
        let other = temp_file("other", &other);
        assert!(!is_this_build(&other));
        for p in [script, cut, other] {
            std::fs::remove_file(p).unwrap();
        }
    }
}
