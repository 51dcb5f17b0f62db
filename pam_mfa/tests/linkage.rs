//! The shape of the built module: what ld.so must load with it at every
//! pam_start (libpam unloads it at pam_end), and what it exports.

use std::path::PathBuf;
use std::process::Command;

/// The cdylib cargo built beside this test (target/<profile>/deps).
fn module() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let so = exe
        .parent()
        .expect("the test's directory")
        .join("libpam_mfa.so");
    assert!(so.is_file(), "{} is not built", so.display());
    so
}

fn readelf(args: &[&str]) -> String {
    let so = module();
    let out = Command::new("readelf")
        .args(args)
        .arg(&so)
        .output()
        .expect("readelf (binutils) runs");
    assert!(out.status.success(), "readelf {args:?} {}", so.display());
    String::from_utf8(out.stdout).expect("readelf prints text")
}

#[test]
fn the_module_needs_libpam_and_libc_only() {
    let needed: Vec<String> = readelf(&["-d", "--wide"])
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1))
        .map(|l| l.trim_end_matches(']').to_string())
        .collect();
    // No libgcc_s.so.1: the unwinder is linked in (src/lib.rs), one
    // library less to map and relocate at every login.
    assert!(needed.iter().any(|n| n == "libpam.so.0"), "{needed:?}");
    for n in &needed {
        assert!(
            n == "libpam.so.0" || n == "libc.so.6" || n.starts_with("ld-linux"),
            "{n} in {needed:?}"
        );
    }
}

#[test]
fn the_module_exports_the_pam_entry_points_only() {
    let mut exported: Vec<String> = readelf(&["--dyn-syms", "--wide"])
        .lines()
        .filter(|l| l.contains(" GLOBAL ") && !l.contains(" UND "))
        .filter_map(|l| l.split_whitespace().nth(7))
        .map(str::to_string)
        .collect();
    exported.sort();
    assert_eq!(
        exported,
        [
            "pam_sm_acct_mgmt",
            "pam_sm_authenticate",
            "pam_sm_chauthtok",
            "pam_sm_close_session",
            "pam_sm_open_session",
            "pam_sm_setcred",
        ]
    );
}
