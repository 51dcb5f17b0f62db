//! Where the real parts are: the workspace's binaries and the system tools.
//! Anything missing is a loud panic, never a skip.

use std::path::{Path, PathBuf};

/// The workspace root (this crate lives in `tests/`).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .expect("tests/ has a parent directory")
        .to_path_buf()
}

/// `$CARGO_TARGET_DIR/debug`, else `<workspace>/target/debug`.
pub fn target_debug() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            let dir = if dir.is_absolute() {
                dir
            } else {
                repo_root().join(dir)
            };
            dir.join("debug")
        }
        _ => repo_root().join("target").join("debug"),
    }
}

/// A file the workspace build produces; panics if it is missing.
#[track_caller]
pub fn built(name: &str) -> PathBuf {
    let path = target_debug().join(name);
    assert!(
        path.is_file(),
        "\n\n*** {} is missing. Build the workspace first: `cargo build --workspace` \
         (the integration tests run the real binaries and never skip). ***\n",
        path.display()
    );
    path
}

pub fn mfad() -> PathBuf {
    built("mfad")
}

pub fn mfactl() -> PathBuf {
    built("mfactl")
}

/// The PAM module as the build leaves it (installed as pam_mfa.so).
pub fn pam_module() -> PathBuf {
    built("libpam_mfa.so")
}

/// A helper binary of this crate (tests/src/bin); cargo builds them before
/// running integration tests.
pub fn helper(name: &str) -> PathBuf {
    built(name)
}

/// Finds a system tool on PATH or in the sbin directories; panics with the
/// Debian package to install when it is missing.
#[track_caller]
pub fn tool(name: &str, package: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for d in [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ] {
        dirs.push(PathBuf::from(d));
    }
    for d in dirs {
        let p = d.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "\n\n*** `{name}` is not installed. The integration tests need the real thing: \
         install the Debian package `{package}` (scripts/install-deps.sh does). ***\n"
    );
}

/// The tests create users, write /etc/pam.d and own a bus name only root
/// may own: they must run as root.
#[track_caller]
pub fn require_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "\n\n*** The integration tests must run as root (they create Unix users, \
         write /etc/pam.d and run mfad, which only root may run). ***\n"
    );
}
