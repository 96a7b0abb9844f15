//! The conformance suite as part of `cargo test`: over our plugins (every
//! case must pass or be skipped for a plugin not written yet), over
//! Debian's reference plugins when installed (no case may fail; differences
//! are printed), and over deliberately broken plugins (it must catch them).

use std::path::{Path, PathBuf};
use std::process::Command;

struct Run {
    code: i32,
    output: String,
    passed: usize,
    failed: usize,
    differ: usize,
}

fn conformance(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_conformance"))
        .args(args)
        .output()
        .expect("run the conformance binary");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The closing line: `conformance: N passed, N failed, N skipped, N differ`.
    let summary = output
        .lines()
        .rev()
        .find(|l| l.starts_with("conformance: ") && l.contains(" passed, "))
        .unwrap_or_else(|| panic!("no summary line in:\n{output}"));
    let counts: Vec<usize> = summary
        .trim_start_matches("conformance: ")
        .split(", ")
        .map(|part| {
            part.split(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("bad summary {summary:?}"))
        })
        .collect();
    assert_eq!(counts.len(), 4, "bad summary {summary:?}");
    Run {
        code: out.status.code().unwrap_or(-1),
        output,
        passed: counts[0],
        failed: counts[1],
        differ: counts[3],
    }
}

fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(rel)
}

fn problems(run: &Run) -> String {
    run.output
        .lines()
        .filter(|l| l.starts_with("FAIL") || l.starts_with("differs"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn needs_root() -> bool {
    if testutil::can_netns() {
        return true;
    }
    eprintln!("skipped: the suite creates network namespaces and needs root");
    false
}

#[test]
fn our_plugins_pass_every_case() {
    if !needs_root() {
        return;
    }
    let dir = testutil::bin_dir();
    let run = conformance(&["--plugins", &dir.display().to_string()]);
    println!("{}", run.output);
    assert!(
        run.passed > 0,
        "no case ran over {}: build the plugins first (cargo build --workspace)",
        dir.display()
    );
    assert_eq!(
        run.failed,
        0,
        "cases failed over our plugins:\n{}",
        problems(&run)
    );
    assert_eq!(
        run.differ,
        0,
        "our plugins differ from the spec:\n{}",
        problems(&run)
    );
    assert_eq!(run.code, 0);
}

#[test]
fn reference_plugins_fail_nothing() {
    let Some(dir) = testutil::reference_dir() else {
        eprintln!("skipped: no reference plugins installed");
        return;
    };
    if !needs_root() {
        return;
    }
    let run = conformance(&["--plugins", &dir.display().to_string(), "--reference"]);
    // Differences are expected (no 1.1.0, STATUS or GC there) and shown here.
    println!("{}", run.output);
    assert_eq!(
        run.failed,
        0,
        "cases failed over the reference:\n{}",
        problems(&run)
    );
    assert!(
        run.passed > 50,
        "too few cases passed over the reference:\n{}",
        run.output
    );
    assert_eq!(run.code, 0);
}

#[test]
fn broken_plugins_are_caught() {
    if !needs_root() {
        return;
    }
    let dir = testdata("conformance/broken");
    let run = conformance(&["--plugins", &dir.display().to_string()]);
    assert_eq!(run.code, 1, "a failing run must exit 1:\n{}", run.output);
    for case in [
        "V-2 version-honoured-0.3.1/host-local",
        "V-2 unknown-version/loopback",
        "V-4 check-gated-0.3.1/static",
        "E-1 missing-env-add/static",
        "ER-3 invalid-ifname/loopback",
        "ER-3 decode-failure/host-local",
        "CV-2 down-convert-no-ip/static",
        "C-1 check-lo-down/loopback",
        "D-2 del-twice/host-local",
        "ST-3 status-pool-exhausted/host-local",
        "G-1 gc-removes-stale/host-local",
        "R-2 runtimeconfig-ips/host-local",
        "A-6 parallel-add-distinct/host-local",
    ] {
        assert!(
            run.output
                .lines()
                .any(|l| l.starts_with(&format!("FAIL    {case}:"))),
            "{case} should fail over the broken plugins:\n{}",
            run.output
        );
    }
    assert!(
        run.failed >= 60,
        "only {} failures over broken plugins:\n{}",
        run.failed,
        run.output
    );
}

#[test]
fn list_and_filter_select_cases() {
    let out = Command::new(env!("CARGO_BIN_EXE_conformance"))
        .args([
            "--list",
            "--filter",
            "V-2 version-honoured",
            "--filter",
            "G-",
        ])
        .output()
        .expect("run the conformance binary");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = text.lines().collect();
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("V-2 version-honoured") || n.contains("G-")),
        "{text}"
    );
    // Every spec version for each of loopback, host-local, static, and ptp and bridge over host-local.
    let per_version = |suffix: &str| {
        names
            .iter()
            .filter(|n| n.starts_with("V-2") && n.ends_with(suffix))
            .count()
    };
    for plugins in [
        "/loopback",
        "/host-local",
        "/static",
        "/ptp+host-local",
        "/bridge+host-local",
    ] {
        assert_eq!(per_version(plugins), 7, "{plugins}: {text}");
    }
    assert!(names.contains(&"G-1 gc-removes-stale/host-local"), "{text}");
    let bad = Command::new(env!("CARGO_BIN_EXE_conformance"))
        .arg("--bogus")
        .output()
        .expect("run the conformance binary");
    assert_eq!(bad.status.code(), Some(2));
}
