//! mfa's integration tests, against the real parts: a private dbus-daemon,
//! the real mfad, pam_mfa.so loaded by pamtester, sshd and `pam-run`, real
//! Unix users. They need root and run from `make test`, not from a plain
//! `cargo test` at the top (see tests/README.md).
//!
//! One test binary, one module per concern (one link step instead of one
//! per file). To add tests: put them in a new `NAME.rs` beside this file
//! and add `mod NAME;` below, in alphabetical order. The test
//! `every_file_here_is_a_module` fails for a file that is not declared.

mod account;
mod admin;
mod api_doc;
mod authz;
mod bad_input;
mod daemon;
mod durability;
mod enroll;
mod enroll_login;
mod failmode;
mod failsafe;
mod fairness;
mod fleet;
mod harness;
mod hygiene;
mod identity;
mod lockout;
mod login;
mod login_socket;
mod mfactl;
mod mfactl_sms;
mod policy;
mod rollout;
mod secrets;
mod services;
mod sessions;
mod sms_gateway;
mod sms_login;
mod ssh;
mod trusted;

/// A test file that is not declared above would never be compiled, so its
/// tests would silently not run.
#[test]
fn every_file_here_is_a_module() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration");
    let declared: std::collections::BTreeSet<String> = include_str!("main.rs")
        .lines()
        .filter_map(|l| l.strip_prefix("mod ")?.strip_suffix(';'))
        .map(str::to_owned)
        .collect();
    let mut files = std::collections::BTreeSet::new();
    for entry in
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
    {
        let path = entry.expect("directory entry").path();
        if path.extension().is_some_and(|x| x == "rs") {
            let stem = path.file_stem().expect("file name").to_string_lossy();
            if stem != "main" {
                files.insert(stem.into_owned());
            }
        }
    }
    assert!(files.len() >= 20, "too few test modules found: {files:?}");
    assert_eq!(
        files,
        declared,
        "every NAME.rs in {} needs `mod NAME;` in main.rs",
        dir.display()
    );
    // A file directly in tests/tests would be a test binary of its own.
    let top = dir.parent().expect("tests/tests");
    let stray: Vec<_> = std::fs::read_dir(top)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", top.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    assert!(
        stray.is_empty(),
        "move {stray:?} into {} as modules (mod NAME; in main.rs)",
        dir.display()
    );
}
