//! Helper for `vlan.sh`, built with plain `rustc` (std only, static):
//!
//! - `vmtool cpio <dir> <out>`: pack `<dir>` as a newc initramfs.
//! - as `/init` inside the VM: mount the basics, load the kernel modules
//!   listed in `/modules` (in order), run each line of `/commands` (a
//!   program and its arguments, split on spaces), copy their output to the
//!   second serial port, write `exit=<code>` there and power off.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

extern "C" {
    fn syscall(number: i64, ...) -> i64;
    fn mount(src: *const u8, target: *const u8, fstype: *const u8, flags: u64, data: *const u8) -> i32;
    fn reboot(cmd: i32) -> i32;
    fn sync();
}

const SYS_FINIT_MODULE: i64 = 313;
const RB_POWER_OFF: i32 = 0x4321fedc;

fn c(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn mount_fs(fstype: &str, target: &str) {
    let _ = fs::create_dir_all(target);
    let (src, t, ty) = (c(fstype), c(target), c(fstype));
    // SAFETY: NUL-terminated strings that outlive the call.
    unsafe { mount(src.as_ptr(), t.as_ptr(), ty.as_ptr(), 0, std::ptr::null()) };
}

fn insmod(path: &str) -> std::io::Result<()> {
    let f = fs::File::open(path)?;
    use std::os::fd::AsRawFd;
    let empty = c("");
    // SAFETY: a valid fd and an empty parameter string.
    let rc = unsafe { syscall(SYS_FINIT_MODULE, f.as_raw_fd() as i64, empty.as_ptr(), 0i64) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn init() -> ! {
    for (fstype, target) in [
        ("proc", "/proc"),
        ("sysfs", "/sys"),
        ("devtmpfs", "/dev"),
        ("tmpfs", "/tmp"),
        ("tmpfs", "/run"),
    ] {
        mount_fs(fstype, target);
    }
    let mut out = fs::OpenOptions::new()
        .write(true)
        .open("/dev/ttyS1")
        .expect("second serial port");
    let mut failed = false;
    for m in fs::read_to_string("/modules").unwrap_or_default().lines() {
        if let Err(e) = insmod(m) {
            let _ = writeln!(out, "insmod {m}: {e}");
            failed = true;
        }
    }
    for line in fs::read_to_string("/commands").unwrap_or_default().lines() {
        let mut words = line.split(' ').filter(|w| !w.is_empty());
        let Some(program) = words.next() else { continue };
        let _ = writeln!(out, "+ {line}");
        match Command::new(program)
            .args(words)
            .env("PATH", "/bin")
            .env("CNI_BIN_DIR", "/cni/bin")
            .env("RUST_BACKTRACE", "1")
            .output()
        {
            Ok(o) => {
                let _ = out.write_all(&o.stdout);
                let _ = out.write_all(&o.stderr);
                failed |= !o.status.success();
            }
            Err(e) => {
                let _ = writeln!(out, "cannot run {program}: {e}");
                failed = true;
            }
        }
    }
    let _ = writeln!(out, "exit={}", u8::from(failed));
    let _ = out.flush();
    // SAFETY: plain system calls; this process is init and the VM ends here.
    unsafe {
        sync();
        reboot(RB_POWER_OFF);
    }
    std::process::exit(0)
}

/// Append one newc entry.
fn entry(archive: &mut Vec<u8>, name: &str, mode: u32, data: &[u8], ino: u32) {
    let fields = [
        ino,
        mode,
        0,
        0,
        1,
        0,
        data.len() as u32,
        0,
        0,
        0,
        0,
        name.len() as u32 + 1,
        0,
    ];
    archive.extend_from_slice(b"070701");
    for f in fields {
        archive.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    archive.extend_from_slice(name.as_bytes());
    archive.push(0);
    while archive.len() % 4 != 0 {
        archive.push(0);
    }
    archive.extend_from_slice(data);
    while archive.len() % 4 != 0 {
        archive.push(0);
    }
}

fn pack(dir: &Path, rel: &str, archive: &mut Vec<u8>, ino: &mut u32) {
    let mut names: Vec<_> = fs::read_dir(dir.join(rel))
        .expect("read dir")
        .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for n in names {
        let path = if rel.is_empty() { n.clone() } else { format!("{rel}/{n}") };
        let full = dir.join(&path);
        let meta = fs::symlink_metadata(&full).expect("stat");
        *ino += 1;
        let mode = meta.mode();
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&full).expect("readlink");
            entry(archive, &path, mode, target.to_string_lossy().as_bytes(), *ino);
        } else if meta.is_dir() {
            entry(archive, &path, mode, &[], *ino);
            pack(dir, &path, archive, ino);
        } else {
            let data = fs::read(&full).expect("read file");
            let mode = 0o100000 | (meta.permissions().mode() & 0o7777);
            entry(archive, &path, mode, &data, *ino);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if std::process::id() == 1 {
        init();
    }
    match args.get(1).map(String::as_str) {
        Some("cpio") if args.len() == 4 => {
            let mut archive = Vec::new();
            let mut ino = 0;
            pack(Path::new(&args[2]), "", &mut archive, &mut ino);
            entry(&mut archive, "TRAILER!!!", 0, &[], 0);
            fs::write(&args[3], archive).expect("write archive");
        }
        _ => {
            eprintln!("usage: vmtool cpio <dir> <out>   (or run as /init)");
            std::process::exit(2);
        }
    }
}
