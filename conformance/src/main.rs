//! Black-box CNI conformance runner over any directory of plugin binaries.
//!
//! `conformance --plugins <dir> [--filter <substr>] [--list] [--reference] [--jobs <n>]`
//!
//! Calls the plugins exactly as a runtime does (through `libcni`), in
//! namespaces and temp dirs of its own, and prints one line per case and a
//! closing `conformance: N passed, N failed, N skipped, N differ`. Exits
//! non-zero iff a case failed. See README.md.

mod cases;
mod checks;
mod harness;

use harness::{Case, Env, Outcome, Suite};
use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

const USAGE: &str =
    "usage: conformance --plugins <dir> [--filter <substr>] [--list] [--reference] [--jobs <n>]
  --plugins <dir>   directory of plugin binaries to test (also their CNI_PATH)
  --filter <substr> run only cases whose name contains <substr> (repeatable: any of them)
  --list            print the case names and exit
  --reference       the directory is a reference implementation being compared against;
                    without --plugins, use $CNI_REFERENCE_DIR or /usr/lib/cni
  --jobs <n>        cases run at once (default 8)";

struct Options {
    plugins: Option<PathBuf>,
    filters: Vec<String>,
    list: bool,
    reference: bool,
    jobs: usize,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        plugins: None,
        filters: Vec::new(),
        list: false,
        reference: false,
        jobs: 8,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--plugins" => o.plugins = Some(value("--plugins")?.into()),
            "--filter" => o.filters.push(value("--filter")?),
            "--jobs" => {
                o.jobs = value("--jobs")?
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or("--jobs needs a positive number")?
            }
            "--list" => o.list = true,
            "--reference" => o.reference = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(o)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse_args(&args) {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    let cases: Vec<Case> = cases::all()
        .into_iter()
        .filter(|c| opts.filters.is_empty() || opts.filters.iter().any(|f| c.name.contains(f)))
        .collect();
    if opts.list {
        for c in &cases {
            println!("{}", c.name);
        }
        return;
    }
    let dir = match (&opts.plugins, opts.reference) {
        (Some(d), _) => d.clone(),
        (None, true) => std::env::var_os("CNI_REFERENCE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| "/usr/lib/cni".into()),
        (None, false) => {
            eprintln!("--plugins <dir> is required\n{USAGE}");
            std::process::exit(2);
        }
    };
    let Ok(dir) = dir.canonicalize() else {
        eprintln!("plugin directory {} does not exist", dir.display());
        std::process::exit(2);
    };
    if !testutil::can_netns() {
        eprintln!("conformance creates network namespaces: run it as root");
        std::process::exit(2);
    }
    let code = run(&dir, cases, &opts);
    std::process::exit(code);
}

/// Run every case, print lines in case order as they finish, then the summary.
fn run(dir: &std::path::Path, cases: Vec<Case>, opts: &Options) -> i32 {
    let kind = if opts.reference {
        " (reference implementation)"
    } else {
        ""
    };
    println!("running {} cases over {}{kind}", cases.len(), dir.display());
    let mut plugins: Vec<&str> = cases.iter().flat_map(|c| c.needs.iter().copied()).collect();
    plugins.extend(cases::KNOWN);
    plugins.sort();
    plugins.dedup();
    let suite = Suite::new(dir, &plugins);
    quiet_panics();

    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, Outcome)>();
    let mut counts = [0usize; 4];
    std::thread::scope(|s| {
        for _ in 0..opts.jobs.min(cases.len().max(1)) {
            let tx = tx.clone();
            let (next, cases, suite) = (&next, &cases, &suite);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(case) = cases.get(i) else { break };
                if tx.send((i, run_case(suite, case))).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut done: Vec<Option<Outcome>> = vec![None; cases.len()];
        let mut printed = 0;
        for (i, outcome) in rx {
            if let Some(slot) = done.get_mut(i) {
                *slot = Some(outcome);
            }
            while let Some(Some(outcome)) = done.get(printed) {
                let name = cases.get(printed).map_or("?", |c| c.name.as_str());
                let (idx, line) = match outcome {
                    Outcome::Pass => (0, format!("pass    {name}")),
                    Outcome::Fail(why) => (1, format!("FAIL    {name}: {why}")),
                    Outcome::Skip(why) => (2, format!("skip    {name} ({why})")),
                    Outcome::Differs(what) => (3, format!("differs {name}: {what}")),
                };
                counts[idx] += 1;
                println!("{line}");
                printed += 1;
            }
        }
    });
    println!(
        "conformance: {} passed, {} failed, {} skipped, {} differ",
        counts[0], counts[1], counts[2], counts[3]
    );
    i32::from(counts[1] > 0)
}

thread_local! {
    static PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Keep panics of cases off stderr; their message becomes the FAIL reason.
fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        PANIC.with(|p| *p.borrow_mut() = Some(info.to_string()));
    }));
}

fn run_case(suite: &Suite, case: &Case) -> Outcome {
    if let Some(why) = suite.missing(&case.needs) {
        return Outcome::Skip(why);
    }
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut env = Env::new(suite);
        (case.run)(&mut env)
    }));
    match result {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(why)) => Outcome::Fail(why),
        Err(_) => Outcome::Fail(format!(
            "the case panicked: {}",
            PANIC.with(|p| p.borrow_mut().take()).unwrap_or_default()
        )),
    }
}
