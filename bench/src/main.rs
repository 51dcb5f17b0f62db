//! mfa-bench: the performance benchmarks of docs/performance.md, run by
//! `make bench` (scripts/bench.sh). A measurement, not a test: it
//! prints a report with each target and PASS or MISS, and exits 0 whatever
//! the numbers; non-zero only when it could not measure.
//!
//! Usage (scripts/bench.sh starts it in private mount and PID namespaces):
//!   mfa-bench run --dir DIR --repo REPO --mfad PATH --module PATH
//!                 --host-mnt-ns NS [--users N] [--seconds S]
//!   mfa-bench pam-worker     (internal: one PAM process, see pam.rs)

mod daemon;
mod error;
mod pam;
mod pool;
mod report;
mod ssh;
mod stats;
mod totp;
mod world;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::world::Paths;

/// Seconds since 1970.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// CLOCK_MONOTONIC in nanoseconds: the same clock in every process, so the
/// workers' completion times can be put on one time line.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// What `run` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub paths: Paths,
    /// Users enrolled on the big mfad (the targets' 100,000).
    pub users: usize,
    /// Length of each throughput round through PAM.
    pub seconds: f64,
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: mfa-bench run --dir DIR --repo REPO --mfad PATH --module PATH --host-mnt-ns NS \
         [--users N] [--seconds S]\n(run it with `make bench`, which sets up the namespaces it needs)"
    );
    ExitCode::from(2)
}

fn parse(args: &[String]) -> std::result::Result<Options, String> {
    let mut dir = None;
    let mut repo = None;
    let mut mfad = None;
    let mut module = None;
    let mut ns = None;
    let mut users = 100_000usize;
    let mut seconds = 4.0f64;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value"))
        };
        match a.as_str() {
            "--dir" => dir = Some(PathBuf::from(value()?)),
            "--repo" => repo = Some(PathBuf::from(value()?)),
            "--mfad" => mfad = Some(PathBuf::from(value()?)),
            "--module" => module = Some(PathBuf::from(value()?)),
            "--host-mnt-ns" => ns = Some(value()?),
            "--users" => {
                let v = value()?;
                users = v
                    .parse()
                    .ok()
                    // Fewer users than the largest phase's logins (9,200)
                    // could not give each login a user of its own.
                    .filter(|&n: &usize| (10_000..=1_000_000).contains(&n))
                    .ok_or_else(|| {
                        format!("--users {v}: give a whole number from 10000 to 1000000")
                    })?;
            }
            "--seconds" => {
                let v = value()?;
                seconds = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| (1.0..=60.0).contains(s))
                    .ok_or_else(|| format!("--seconds {v}: give a number from 1 to 60"))?;
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let need = |v: Option<PathBuf>, name: &str| v.ok_or_else(|| format!("{name} is required"));
    Ok(Options {
        paths: Paths {
            dir: need(dir, "--dir")?,
            repo: need(repo, "--repo")?,
            mfad: need(mfad, "--mfad")?,
            module: need(module, "--module")?,
            host_mnt_ns: ns.ok_or("--host-mnt-ns is required")?,
        },
        users,
        seconds,
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("pam-worker") => match pam::worker() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mfa-bench pam-worker: {e}");
                ExitCode::FAILURE
            }
        },
        Some("flood") => match daemon::flood(&args[1..]) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("mfa-bench flood: {e}");
                ExitCode::FAILURE
            }
        },
        Some("run") => {
            let opts = match parse(&args[1..]) {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("mfa-bench: {e}");
                    return usage();
                }
            };
            let start = Instant::now();
            match run::run(&opts) {
                Ok(report) => {
                    print!("{report}");
                    eprintln!("mfa-bench: done in {:.0} s", start.elapsed().as_secs_f64());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("mfa-bench: could not measure: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => usage(),
    }
}

mod run;

/// Root is needed for the namespaces' mounts, the bus policy (only root
/// may own org.mfad.Mfa1) and mfad's state directory.
pub fn require_root() -> Result<()> {
    if nix::unistd::Uid::effective().is_root() {
        Ok(())
    } else {
        Err(Error::Setup(
            "run the benchmark as root (make bench)".into(),
        ))
    }
}
