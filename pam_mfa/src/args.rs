//! The module arguments from the PAM service file.
//!
//! `socket=PATH`, `bus=ADDRESS`, `failmode=secure|safe`,
//! `timeout=SECONDS`, `debug`, `breakglass=PATH`, `breakglass_users=NAME,NAME`.
//! Nothing here reads the environment: under setuid su/sudo the caller
//! controls it, so the bus address comes from the service file only.

use std::ffi::CStr;
use std::time::Duration;

/// Where the module connects unless told otherwise: the system bus.
pub const DEFAULT_BUS: &str = mfa_api::SYSTEM_BUS_ADDRESS;
/// Seconds to wait for mfad per exchange unless told otherwise.
pub const DEFAULT_TIMEOUT_SECS: u64 = 10;
/// Longest accepted `timeout=`: an hour is already far past any login
/// grace time; anything longer is a typo.
pub const MAX_TIMEOUT_SECS: u64 = 3600;

/// What to do when mfad cannot be asked (down, no owner, timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Refuse: PAM_AUTHINFO_UNAVAIL.
    Secure,
    /// Step aside: PAM_IGNORE, with a loud syslog warning.
    Safe,
}

/// Where the module asks mfad.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `socket=PATH`: mfad's login socket only.
    Socket(std::path::PathBuf),
    /// Only `bus=`: that bus only.
    Bus(String),
    /// Neither: the default login socket, then the system bus if there is
    /// no socket.
    Default,
}

/// The parsed arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub bus: String,
    /// `socket=PATH`, when given.
    pub socket: Option<std::path::PathBuf>,
    /// Whether `bus=` was given.
    pub bus_given: bool,
    pub failmode: FailMode,
    /// Per wait for mfad (connect + Begin, then each Answer); never applied
    /// while the user types.
    pub timeout: Duration,
    pub debug: bool,
    /// The break-glass codes' file; None: off.
    pub breakglass: Option<std::path::PathBuf>,
    /// Who may use a break-glass code.
    pub breakglass_users: Vec<String>,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            bus: DEFAULT_BUS.to_string(),
            socket: None,
            bus_given: false,
            failmode: FailMode::Secure,
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
            debug: false,
            breakglass: None,
            breakglass_users: vec!["root".to_string()],
        }
    }
}

/// Parses the arguments. Never fails: an unknown or malformed argument is
/// reported in the returned list (one line each, for syslog) and the
/// default stays, so a typo in a service file cannot lock everyone out nor
/// silently weaken the module (a bad `failmode=` stays `secure`).
pub fn parse(argv: &[&CStr]) -> (Args, Vec<String>) {
    let mut args = Args::default();
    let mut problems = Vec::new();
    for raw in argv {
        let Ok(arg) = raw.to_str() else {
            problems.push(format!(
                "ignoring argument that is not UTF-8: {}",
                shorten(&raw.to_string_lossy())
            ));
            continue;
        };
        let (key, value) = match arg.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (arg, None),
        };
        match (key, value) {
            ("bus", Some(v)) if !v.trim().is_empty() => {
                args.bus = v.trim().to_string();
                args.bus_given = true;
            }
            ("bus", _) => problems.push(format!(
                "ignoring `{}`: bus needs an address, e.g. bus=unix:path=/run/dbus/system_bus_socket",
                shorten(arg)
            )),
            ("socket", Some(v)) if v.starts_with('/') => args.socket = Some(v.into()),
            ("socket", _) => problems.push(format!(
                "ignoring `{}`: socket needs an absolute path, e.g. socket={}",
                shorten(arg),
                mfa_api::DEFAULT_LOGIN_SOCKET
            )),
            ("failmode", Some("secure")) => args.failmode = FailMode::Secure,
            ("failmode", Some("safe")) => args.failmode = FailMode::Safe,
            ("failmode", _) => problems.push(format!(
                "ignoring `{}`: failmode is secure or safe; keeping {}",
                shorten(arg),
                failmode_name(args.failmode)
            )),
            ("timeout", v) => match v.and_then(parse_timeout) {
                Some(t) => args.timeout = t,
                None => problems.push(format!(
                    "ignoring `{}`: timeout is whole seconds from 1 to {MAX_TIMEOUT_SECS}; keeping {}",
                    shorten(arg),
                    args.timeout.as_secs()
                )),
            },
            ("debug", None) => args.debug = true,
            ("breakglass", Some(v)) if v.starts_with('/') => args.breakglass = Some(v.into()),
            ("breakglass", _) => problems.push(format!(
                "ignoring `{}`: breakglass needs an absolute path; break-glass codes stay off",
                shorten(arg)
            )),
            ("breakglass_users", Some(v)) => {
                args.breakglass_users = v
                    .split(',')
                    .map(str::trim)
                    .filter(|u| !u.is_empty())
                    .map(String::from)
                    .collect();
            }
            _ => problems.push(format!("ignoring unknown argument `{}`", shorten(arg))),
        }
    }
    (args, problems)
}

impl Args {
    /// `socket=` wins; then `bus=`; neither is the default socket with the
    /// system bus behind it.
    pub fn target(&self) -> Target {
        match (&self.socket, self.bus_given) {
            (Some(path), _) => Target::Socket(path.clone()),
            (None, true) => Target::Bus(self.bus.clone()),
            (None, false) => Target::Default,
        }
    }
}

pub fn failmode_name(f: FailMode) -> &'static str {
    match f {
        FailMode::Secure => "secure",
        FailMode::Safe => "safe",
    }
}

fn parse_timeout(v: &str) -> Option<Duration> {
    let secs: u64 = v.trim().parse().ok()?;
    (1..=MAX_TIMEOUT_SECS)
        .contains(&secs)
        .then(|| Duration::from_secs(secs))
}

/// At most 100 characters of an argument for the log.
fn shorten(s: &str) -> String {
    const MAX: usize = 100;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(MAX).collect();
        t.push_str("...");
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    fn run(list: &[&[u8]]) -> (Args, Vec<String>) {
        let owned: Vec<CString> = list.iter().map(|a| CString::new(*a).unwrap()).collect();
        let refs: Vec<&CStr> = owned.iter().map(|c| c.as_c_str()).collect();
        parse(&refs)
    }

    #[test]
    fn break_glass_arguments() {
        let (a, p) = run(&[]);
        assert!(a.breakglass.is_none() && p.is_empty());
        assert_eq!(a.breakglass_users, ["root"]);
        let (a, p) = run(&[
            b"breakglass=/etc/mfad/break-glass",
            b"breakglass_users=root, ops,",
        ]);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(
            a.breakglass.as_deref(),
            Some(std::path::Path::new("/etc/mfad/break-glass"))
        );
        assert_eq!(a.breakglass_users, ["root", "ops"]);
        let (a, p) = run(&[b"breakglass=relative", b"breakglass"]);
        assert!(a.breakglass.is_none());
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("absolute path"), "{p:?}");
    }

    #[test]
    fn no_arguments_give_the_defaults() {
        let (a, p) = run(&[]);
        assert_eq!(a, Args::default());
        assert_eq!(a.bus, "unix:path=/run/dbus/system_bus_socket");
        assert_eq!(a.failmode, FailMode::Secure);
        assert_eq!(a.timeout, Duration::from_secs(10));
        assert!(!a.debug);
        assert!(p.is_empty());
    }

    #[test]
    fn every_known_argument_is_read() {
        let (a, p) = run(&[
            b"bus=unix:path=/tmp/x/bus",
            b"failmode=safe",
            b"timeout=3",
            b"debug",
        ]);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(
            a,
            Args {
                bus: "unix:path=/tmp/x/bus".into(),
                bus_given: true,
                failmode: FailMode::Safe,
                timeout: Duration::from_secs(3),
                debug: true,
                ..Args::default()
            }
        );
    }

    #[test]
    fn socket_and_bus_choose_the_target() {
        let (a, p) = run(&[]);
        assert!(p.is_empty());
        assert_eq!(a.target(), Target::Default);
        let (a, p) = run(&[b"bus=unix:path=/tmp/x/bus"]);
        assert!(p.is_empty());
        assert_eq!(a.target(), Target::Bus("unix:path=/tmp/x/bus".into()));
        let (a, p) = run(&[b"socket=/tmp/x/login.socket", b"bus=unix:path=/tmp/x/bus"]);
        assert!(p.is_empty());
        assert_eq!(a.target(), Target::Socket("/tmp/x/login.socket".into()));
        for bad in [&b"socket="[..], b"socket", b"socket=relative/path"] {
            let (a, p) = run(&[bad]);
            assert_eq!(a.target(), Target::Default, "{bad:?}");
            assert_eq!(p.len(), 1, "{bad:?}");
            assert!(p[0].contains("absolute path"), "{p:?}");
        }
    }

    #[test]
    fn the_last_of_repeated_arguments_wins() {
        let (a, p) = run(&[
            b"failmode=safe",
            b"failmode=secure",
            b"timeout=2",
            b"timeout=5",
        ]);
        assert!(p.is_empty());
        assert_eq!(a.failmode, FailMode::Secure);
        assert_eq!(a.timeout, Duration::from_secs(5));
    }

    #[test]
    fn unknown_arguments_are_reported_and_ignored() {
        let (a, p) = run(&[b"nullok", b"use_first_pass", b"debug=1", b"timeout=2"]);
        assert_eq!(a.timeout, Duration::from_secs(2));
        assert!(!a.debug, "debug=1 is not `debug`");
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].contains("unknown argument `nullok`"), "{p:?}");
        assert!(p[2].contains("debug=1"), "{p:?}");
    }

    #[test]
    fn bad_timeouts_keep_the_default() {
        for bad in [
            &b"timeout=0"[..],
            b"timeout=-1",
            b"timeout=abc",
            b"timeout=",
            b"timeout",
            b"timeout=2.5",
            b"timeout=3601",
            b"timeout=99999999999999999999999",
        ] {
            let (a, p) = run(&[bad]);
            assert_eq!(a.timeout, Duration::from_secs(10), "{bad:?}");
            assert_eq!(p.len(), 1, "{bad:?}");
            assert!(p[0].contains("timeout is whole seconds"), "{p:?}");
        }
        let (a, p) = run(&[b"timeout=3600"]);
        assert!(p.is_empty());
        assert_eq!(a.timeout, Duration::from_secs(3600));
        let (a, _) = run(&[b"timeout= 7 "]);
        assert_eq!(a.timeout, Duration::from_secs(7));
    }

    #[test]
    fn a_bad_failmode_stays_secure() {
        for bad in [
            &b"failmode=open"[..],
            b"failmode=",
            b"failmode",
            b"failmode=SAFE",
        ] {
            let (a, p) = run(&[bad]);
            assert_eq!(a.failmode, FailMode::Secure, "{bad:?}");
            assert_eq!(p.len(), 1);
            assert!(p[0].contains("keeping secure"), "{p:?}");
        }
        // A bad value after a good one keeps the good one.
        let (a, p) = run(&[b"failmode=safe", b"failmode=maybe"]);
        assert_eq!(a.failmode, FailMode::Safe);
        assert!(p[0].contains("keeping safe"), "{p:?}");
    }

    #[test]
    fn an_empty_bus_keeps_the_default() {
        for bad in [&b"bus="[..], b"bus", b"bus=  "] {
            let (a, p) = run(&[bad]);
            assert_eq!(a.bus, DEFAULT_BUS);
            assert_eq!(p.len(), 1, "{bad:?}");
        }
    }

    #[test]
    fn non_utf8_arguments_are_reported() {
        let (a, p) = run(&[b"bus=\xff\xfe", b"debug"]);
        assert_eq!(a.bus, DEFAULT_BUS);
        assert!(a.debug);
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("not UTF-8"), "{p:?}");
    }

    #[test]
    fn long_arguments_are_shortened_in_reports() {
        let long = format!("x{}", "y".repeat(500));
        let (_, p) = run(&[long.as_bytes()]);
        assert!(p[0].len() < 200, "{}", p[0]);
        assert!(p[0].ends_with("...`"), "{}", p[0]);
    }
}
