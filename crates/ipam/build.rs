//! The build mark of host-local (see `src/host_local/build_mark.rs`): a hash
//! of every source that decides what host-local does, so two binaries carry
//! the same mark only when they run the same code.

use std::hash::{DefaultHasher, Hasher};
use std::path::{Path, PathBuf};

/// Relative to this crate; the workspace layout. Outside it (the crate
/// packaged alone) the mark is "none", which no binary is taken for.
const SOURCES: [&str; 4] = [
    "src",
    "../cni/src",
    "../../plugins/ipam/host-local/src",
    "../../Cargo.lock",
];

fn files(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(path)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        files(&entry.path(), out)?;
    }
    Ok(())
}

fn mark(root: &Path) -> std::io::Result<String> {
    // SipHash with fixed keys: the same for the same sources and toolchain.
    let mut hash = DefaultHasher::new();
    for source in SOURCES {
        let mut found = Vec::new();
        files(&root.join(source), &mut found)?;
        for file in found {
            hash.write(
                file.strip_prefix(root)
                    .unwrap_or(&file)
                    .as_os_str()
                    .as_encoded_bytes(),
            );
            hash.write(&std::fs::read(&file)?);
        }
    }
    Ok(format!("{:016x}", hash.finish()))
}

fn main() {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    for source in SOURCES {
        println!("cargo:rerun-if-changed={}", root.join(source).display());
    }
    let mark = mark(&root).unwrap_or_else(|_| "none".into());
    println!("cargo:rustc-env=CNI_RS_HOST_LOCAL_MARK={mark}");
}
