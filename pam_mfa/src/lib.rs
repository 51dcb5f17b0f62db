//! pam_mfa: the PAM module of mfa. During `pam_authenticate` it asks mfad
//! (org.mfad.Mfa1 on D-Bus) what to do, prompts for the code through the
//! PAM conversation and reports mfad's answer; during `pam_acct_mgmt` it
//! asks mfad whether this login passed that step. It owns no secrets and
//! decides nothing itself.
//!
//! - [`args`]: the module arguments (`socket=`, `bus=`, `failmode=`,
//!   `timeout=`, `debug`).
//! - [`flow`]: the state machines of one authentication and one account
//!   check, and the PAM codes.
//! - [`handle`]: the PAM side (items, environment, conversation), a trait
//!   and the real one.
//! - [`enroll`]: enrolling a device inside the login (Begin: `enroll`).
//! - [`client`]: the mfad side (Login.Begin/Answer/AccountCheck, the
//!   Enroll* calls and OpenSession/CloseSession), a trait and the real one
//!   ([`client::LeanDaemon`]), on [`wire`]: the D-Bus wire protocol on a
//!   blocking unix socket, no runtime, no thread.
//! - [`log`]: syslog (AUTHPRIV).
//!
//! What `pam_sm_authenticate` returns:
//!
//! | situation | shown to the user | returns |
//! |---|---|---|
//! | Begin: `ignore` (not enrolled, policy optional) | nothing | PAM_IGNORE |
//! | Begin: `allow` (trusted device) | message, PAM_TEXT_INFO | PAM_SUCCESS, token kept |
//! | Begin: `deny` (locked out, enrollment required) | message, PAM_ERROR_MSG | PAM_AUTH_ERR |
//! | Begin: `enroll` (must use 2-step, no device; root callers only), then the device confirmed | message, QR code, secret, URI, backup codes (PAM_TEXT_INFO, also under PAM_SILENT); prompts `Code 1: `, `Code 2: ` (or `Phone number: `, `Code: `), `Press Enter to continue: ` | PAM_SUCCESS, token kept |
//! | Begin: `enroll`, 3 wrong tries or a refusal | message, PAM_ERROR_MSG | PAM_AUTH_ERR |
//! | Begin: an action this version does not know (a newer mfad), either failmode | "cannot use" note, PAM_ERROR_MSG | PAM_AUTH_ERR |
//! | Begin: `challenge`, then Answer `success` | prompt (echo off); message if any, PAM_TEXT_INFO | PAM_SUCCESS, token kept |
//! | Answer `retry` | message, PAM_ERROR_MSG; prompt again (3 tries at most) | — |
//! | Answer `deny`, or a 3rd `retry` | message, PAM_ERROR_MSG | PAM_AUTH_ERR |
//! | Answer: a result this version does not know, either failmode | "cannot use" note, PAM_ERROR_MSG | PAM_AUTH_ERR |
//! | the answer equals PAM_AUTHTOK (sshd's password method answers every prompt with the password) | "not a verification code", PAM_ERROR_MSG; mfad is not asked | PAM_AUTH_ERR |
//! | an mfad error (`org.mfad.Mfa1.Error.*`, also one this version does not know) on Begin or Answer | its message, PAM_ERROR_MSG | PAM_AUTH_ERR |
//! | conversation fails (Ctrl-D, client gone) | — | PAM_CONV_ERR |
//! | no user name | — | PAM_USER_UNKNOWN |
//! | mfad cannot be asked before Begin answers (no bus, no owner, timeout, bad `bus=`), `failmode=secure` | "unavailable" note, PAM_ERROR_MSG | PAM_AUTHINFO_UNAVAIL |
//! | same, `failmode=safe` | nothing; syslog warning | PAM_IGNORE |
//! | `bus=` is not one `unix:path=` address (an abstract socket, TCP), or org.mfad.Mfa1's owner is not UID 0 (asked of the bus before the first call), or the login socket is not served by UID 0 (SO_PEERCRED), either failmode | "unavailable" note, PAM_ERROR_MSG; syslog error | PAM_AUTHINFO_UNAVAIL |
//! | mfad lost after it asked for a code (either failmode) | "stopped answering", PAM_ERROR_MSG | PAM_AUTHINFO_UNAVAIL |
//!
//! "token kept": Begin's attempt token goes into the PAM environment as
//! `PAM_MFA_ATTEMPT` for the account phase (failing that is logged only).
//!
//! What `pam_sm_acct_mgmt` returns (it reads `PAM_MFA_ATTEMPT`, else the
//! name earlier versions used, `PAM_MFA_SESSION`, missing = "", and always
//! removes both, so the token never reaches the user's session):
//!
//! | AccountCheck says | shown to the user | returns |
//! |---|---|---|
//! | `allow` (this login passed the code step, or a trusted device) | nothing | PAM_SUCCESS |
//! | `ignore` (not enrolled, policy optional) | nothing | PAM_IGNORE |
//! | `deny` (no verified attempt for this user) | message, PAM_ERROR_MSG | PAM_PERM_DENIED |
//! | an action this version does not know (a newer mfad), either failmode | "did not pass" note, PAM_ERROR_MSG | PAM_PERM_DENIED |
//! | an mfad error | its message, PAM_ERROR_MSG | PAM_PERM_DENIED |
//! | mfad cannot be asked, `failmode=secure` | "unavailable" note, PAM_ERROR_MSG | PAM_PERM_DENIED |
//! | same, `failmode=safe` | nothing; syslog warning | PAM_IGNORE |
//! | a bad `bus=` or an impostor (as above), either failmode | "unavailable" note, PAM_ERROR_MSG; syslog error | PAM_PERM_DENIED |
//! | no user name | — | PAM_USER_UNKNOWN |
//!
//! PAM_SILENT hides PAM_TEXT_INFO only. `pam_sm_setcred` removes a
//! `PAM_MFA_ATTEMPT` (or `PAM_MFA_SESSION`) the account phase did not take
//! and returns PAM_SUCCESS; `pam_sm_chauthtok` PAM_IGNORE.
//!
//! `pam_sm_open_session` (`session required pam_mfa.so`) registers a login
//! that passed 2-step in this PAM transaction with mfad (the attempt token
//! kept with pam_set_data by the auth or account phase), which ends it
//! after the user's session duration; see [`flow::open_session`]. Other
//! logins are not limited (PAM_IGNORE). `pam_sm_close_session` tells mfad
//! the session ended.
//!
//! pam-bindings' entry points catch panics (PAM_ABORT); the code here does
//! not panic to begin with.

pub mod args;
pub mod breakglass;
pub mod client;
pub mod enroll;
pub mod error;
pub mod flow;
pub mod handle;
pub mod log;
pub mod wire;

use std::ffi::CStr;

use pam::constants::{PamFlag, PamResultCode, PAM_SILENT};
use pam::module::{PamHandle, PamHooks};
use pam::pam_hooks;

pub use error::Error;

use crate::log::Log;

// The unwinder (catching a panic at the entry points needs it), linked in
// statically as `gcc -static-libgcc` does: otherwise libgcc_s.so.1 is a
// second library for ld.so to find, map and relocate at every dlopen of
// the module, and to unmap at every dlclose (about 130 us a login here).
// Whole archive, so that it comes before std's -lgcc_s on the link line and
// the linker (--as-needed) drops that; the cdylib's version script keeps
// its symbols local.
// Where libgcc_eh.a exists: GNU toolchains on Linux.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[link(name = "gcc_eh", kind = "static", modifiers = "+whole-archive,-bundle")]
extern "C" {}

/// The module, as libpam sees it.
pub struct PamMfa;

pam_hooks!(PamMfa);

/// One hook call: the arguments, a syslog logger and an mfad client for
/// `phase` ("auth", "account"), all opened and closed within the call, so
/// no socket or thread outlives it.
fn run(
    pamh: &mut PamHandle,
    argv: &[&CStr],
    flags: PamFlag,
    phase: &str,
    step: impl FnOnce(
        &mut handle::PamItems<'_>,
        &mut client::LeanDaemon,
        &mut breakglass::File,
        flow::Options,
        &mut log::Syslog,
    ) -> flow::Outcome,
) -> PamResultCode {
    let (args, problems) = args::parse(argv);
    let mut pam = handle::PamItems::new(pamh);
    let service = handle::Pam::service(&pam);
    let mut log = log::Syslog::open(&service, phase, args.debug);
    for p in &problems {
        log.warning(p);
    }
    let options = flow::Options {
        failmode: args.failmode,
        silent: flags & PAM_SILENT != 0,
    };
    let mut daemon = match args.target() {
        args::Target::Socket(path) => client::LeanDaemon::socket(&path, None, args.timeout),
        args::Target::Bus(bus) => client::LeanDaemon::new(&bus, args.timeout),
        args::Target::Default => client::LeanDaemon::socket(
            std::path::Path::new(mfa_api::DEFAULT_LOGIN_SOCKET),
            Some(&args.bus),
            args.timeout,
        ),
    };
    let mut glass = breakglass::File::new(args.breakglass, args.breakglass_users);
    let outcome = step(&mut pam, &mut daemon, &mut glass, options, &mut log);
    daemon.close();
    log.debug(&format!("returning {:?}", outcome.code()));
    outcome.code()
}

impl PamHooks for PamMfa {
    fn sm_authenticate(pamh: &mut PamHandle, argv: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        run(
            pamh,
            &argv,
            flags,
            "auth",
            |pam, daemon, glass, options, log| {
                flow::authenticate_with(pam, daemon, glass, options, log)
            },
        )
    }

    /// sshd drops the session unless setcred succeeds; there are no
    /// credentials to set. Applications call it after the account phase,
    /// so it drops an attempt token that no `account ... pam_mfa.so` took,
    /// before sshd copies the PAM environment into the user's session.
    fn sm_setcred(pamh: &mut PamHandle, argv: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        let (args, _) = args::parse(&argv);
        let mut pam = handle::PamItems::new(pamh);
        let service = handle::Pam::service(&pam);
        let mut log = log::Syslog::open(&service, "setcred", args.debug);
        flow::forget_attempt(&mut pam, &mut log);
        PamResultCode::PAM_SUCCESS
    }

    /// The account-phase guard: refuses an enrolled user whose login did
    /// not pass the code step (e.g. sshd with a public key only).
    fn acct_mgmt(pamh: &mut PamHandle, argv: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        run(
            pamh,
            &argv,
            flags,
            "account",
            |pam, daemon, glass, options, log| flow::account_with(pam, daemon, glass, options, log),
        )
    }

    /// The session duration: registers a login that passed 2-step with
    /// mfad, which ends it on time.
    fn sm_open_session(pamh: &mut PamHandle, argv: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        run(
            pamh,
            &argv,
            flags,
            "session",
            |pam, daemon, _, options, log| flow::open_session(pam, daemon, options, log),
        )
    }

    fn sm_close_session(pamh: &mut PamHandle, argv: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        run(pamh, &argv, flags, "session", |pam, daemon, _, _, log| {
            flow::close_session(pam, daemon, log)
        })
    }

    // chauthtok keeps pam-bindings' default, PAM_IGNORE: the module has no
    // part in it.
}
