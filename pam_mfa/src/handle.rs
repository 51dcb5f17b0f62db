//! The PAM side of an authentication or account check: the items and the
//! environment libpam holds, and the conversation with the user. [`Pam`]
//! is the trait the state machines use; [`PamItems`] is the real thing over
//! pam-bindings.

use std::ffi::{c_char, c_int, CStr, CString};

use pam::constants::{
    PamMessageStyle, PAM_ERROR_MSG, PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON, PAM_TEXT_INFO,
};
use pam::conv::Conv;
use pam::items::{AuthTok, RHost, Service, Tty};
use pam::module::PamHandle;

use crate::error::Error;

/// What the user typed at a prompt, as raw bytes (not necessarily UTF-8).
/// Zeroed when dropped; its Debug output never shows it.
pub struct Code(Vec<u8>);

impl Code {
    pub fn new(bytes: Vec<u8>) -> Code {
        Code(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Keeps at most `max` bytes (see [`crate::flow::MAX_CODE_BYTES`]).
    pub fn truncate(&mut self, max: usize) {
        if self.0.len() > max {
            wipe(&mut self.0[max..]);
            self.0.truncate(max);
        }
    }
}

impl Drop for Code {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Code({} bytes)", self.0.len())
    }
}

/// Overwrites `bytes` with zeros in a way the optimizer keeps.
pub(crate) fn wipe(bytes: &mut [u8]) {
    for b in bytes.iter_mut() {
        // SAFETY: `b` is a valid, aligned, exclusive reference to a u8.
        unsafe { std::ptr::write_volatile(b, 0) };
    }
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
}

/// The PAM handle as the state machine sees it.
pub trait Pam {
    /// PAM_USER (libpam may prompt for it).
    fn user(&mut self) -> Result<String, Error>;
    /// PAM_SERVICE, PAM_RHOST, PAM_TTY: empty when unset.
    fn service(&self) -> String;
    fn rhost(&self) -> String;
    fn tty(&self) -> String;
    /// sshd's `SSH_AUTH_INFO_0` from the PAM environment: empty when unset.
    fn ssh_auth_info(&self) -> String;
    /// A variable of the PAM environment (pam_getenv): `None` when unset.
    fn getenv(&self, name: &str) -> Option<String>;
    /// Sets `name=value` in the PAM environment (pam_putenv).
    fn setenv(&mut self, name: &str, value: &str) -> Result<(), Error>;
    /// Removes `name` from the PAM environment (pam_putenv with no `=`);
    /// an error if it was not set.
    fn unsetenv(&mut self, name: &str) -> Result<(), Error>;
    /// Prompts with echo off and returns what the user typed.
    fn prompt_secret(&mut self, prompt: &str) -> Result<Code, Error>;
    /// Prompts with echo on (a phone number, a choice); echo off unless
    /// the handle can do better.
    fn prompt_echo(&mut self, prompt: &str) -> Result<Code, Error> {
        self.prompt_secret(prompt)
    }
    /// Shows a PAM_ERROR_MSG.
    fn error_msg(&mut self, message: &str) -> Result<(), Error>;
    /// Shows a PAM_TEXT_INFO.
    fn text_info(&mut self, message: &str) -> Result<(), Error>;
    /// PAM_AUTHTOK, the password an earlier module of the stack read, if
    /// any.
    fn password(&self) -> Option<Code>;
    /// Keeps `value` with the PAM handle (pam_set_data) for a later hook
    /// of this PAM transaction in this process; it never reaches the
    /// user's environment.
    fn keep(&mut self, name: &str, value: &str) -> Result<(), Error> {
        let _ = (name, value);
        Err(Error::Environment("this handle keeps no data".into()))
    }
    /// What [`Pam::keep`] kept under `name` (pam_get_data).
    fn kept(&self, name: &str) -> Option<String> {
        let _ = name;
        None
    }
}

#[link(name = "pam")]
extern "C" {
    /// `const char *pam_getenv(pam_handle_t *pamh, const char *name)` from
    /// libpam (_pam_types.h); pam-bindings 0.4 does not wrap it.
    fn pam_getenv(pamh: *mut PamHandle, name: *const c_char) -> *const c_char;

    /// `int pam_putenv(pam_handle_t *pamh, const char *name_value)` from
    /// libpam (_pam_types.h): `NAME=value` sets, `NAME` removes. libpam
    /// copies the string. pam-bindings 0.4 does not wrap it.
    fn pam_putenv(pamh: *mut PamHandle, name_value: *const c_char) -> c_int;
}

/// The real PAM handle, for the duration of one module call.
pub struct PamItems<'a> {
    pamh: &'a mut PamHandle,
}

impl<'a> PamItems<'a> {
    pub fn new(pamh: &'a mut PamHandle) -> PamItems<'a> {
        PamItems { pamh }
    }

    fn send(&self, style: PamMessageStyle, message: &str) -> Result<Option<Code>, Error> {
        let conv = match self.pamh.get_item::<Conv>() {
            Ok(Some(conv)) => conv,
            Ok(None) => return Err(Error::Conversation("no conversation function".into())),
            Err(code) => return Err(Error::Conversation(format!("PAM_CONV: {code:?}"))),
        };
        let text = displayable(message);
        match conv.send(style, &text) {
            Ok(answer) => Ok(answer.map(|secret| Code::new(secret.as_bytes().to_vec()))),
            Err(code) => Err(Error::Conversation(format!("{code:?}"))),
        }
    }

    /// pam_putenv(`entry`); `name` is for the error message.
    fn putenv(&mut self, name: &str, entry: &CStr) -> Result<(), Error> {
        let pamh: *mut PamHandle = &mut *self.pamh;
        // SAFETY: `pamh` is the live handle libpam gave this module call,
        // held exclusively here; `entry` is NUL-terminated and outlives the
        // call, and libpam keeps a copy of it, not the pointer.
        let rc = unsafe { pam_putenv(pamh, entry.as_ptr()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(Error::Environment(format!(
                "pam_putenv({name}) returned {rc}"
            )))
        }
    }

    fn string_item<'b, T>(&'b self) -> String
    where
        T: pam::items::Item<'b> + std::ops::Deref<Target = &'b CStr>,
    {
        match self.pamh.get_item::<T>() {
            Ok(Some(item)) => item.to_string_lossy().into_owned(),
            _ => String::new(),
        }
    }
}

impl Pam for PamItems<'_> {
    fn user(&mut self) -> Result<String, Error> {
        match self.pamh.get_user(None) {
            Ok(user) if !user.is_empty() => Ok(user),
            Ok(_) => Err(Error::User("empty user name".into())),
            Err(code) => Err(Error::User(format!("{code:?}"))),
        }
    }

    fn service(&self) -> String {
        self.string_item::<Service>()
    }

    fn rhost(&self) -> String {
        self.string_item::<RHost>()
    }

    fn tty(&self) -> String {
        self.string_item::<Tty>()
    }

    fn ssh_auth_info(&self) -> String {
        self.getenv("SSH_AUTH_INFO_0").unwrap_or_default()
    }

    fn getenv(&self, name: &str) -> Option<String> {
        let name = CString::new(name).ok()?;
        let pamh: *const PamHandle = &*self.pamh;
        // SAFETY: `pamh` is the live handle libpam gave this module call
        // (pam_getenv only reads it, the cast to *mut matches the C
        // prototype), `name` is NUL-terminated and outlives the call, and the
        // result is NULL or a NUL-terminated string owned by libpam that
        // stays valid until the PAM environment changes, which cannot happen
        // before the copy below.
        let value = unsafe { pam_getenv(pamh.cast_mut(), name.as_ptr()) };
        if value.is_null() {
            return None;
        }
        // SAFETY: non-NULL, NUL-terminated, valid for this statement (above).
        Some(
            unsafe { CStr::from_ptr(value) }
                .to_string_lossy()
                .into_owned(),
        )
    }

    fn setenv(&mut self, name: &str, value: &str) -> Result<(), Error> {
        check_env_name(name)?;
        // The message names the variable only: the value may be a token.
        let entry = CString::new(format!("{name}={value}"))
            .map_err(|_| Error::Environment(format!("{name}: the value holds a NUL byte")))?;
        self.putenv(name, &entry)
    }

    fn unsetenv(&mut self, name: &str) -> Result<(), Error> {
        check_env_name(name)?;
        let entry = CString::new(name)
            .map_err(|_| Error::Environment("a variable name holds a NUL byte".into()))?;
        self.putenv(name, &entry)
    }

    fn prompt_secret(&mut self, prompt: &str) -> Result<Code, Error> {
        self.send(PAM_PROMPT_ECHO_OFF, prompt)?
            .ok_or_else(|| Error::Conversation("no answer to the prompt".into()))
    }

    fn prompt_echo(&mut self, prompt: &str) -> Result<Code, Error> {
        self.send(PAM_PROMPT_ECHO_ON, prompt)?
            .ok_or_else(|| Error::Conversation("no answer to the prompt".into()))
    }

    fn error_msg(&mut self, message: &str) -> Result<(), Error> {
        self.send(PAM_ERROR_MSG, message).map(drop)
    }

    fn password(&self) -> Option<Code> {
        match self.pamh.get_item::<AuthTok>() {
            Ok(Some(tok)) => Some(Code::new(tok.as_bytes().to_vec())),
            _ => None,
        }
    }

    fn text_info(&mut self, message: &str) -> Result<(), Error> {
        self.send(PAM_TEXT_INFO, message).map(drop)
    }

    fn keep(&mut self, name: &str, value: &str) -> Result<(), Error> {
        self.pamh
            .set_data(&data_key(name), Box::new(value.to_string()))
            .map_err(|code| Error::Environment(format!("pam_set_data({name}): {code:?}")))
    }

    fn kept(&self, name: &str) -> Option<String> {
        // SAFETY: only `keep` stores under these keys (prefixed with the
        // module's name), and always a String.
        unsafe { self.pamh.get_data::<String>(&data_key(name)) }
            .ok()
            .cloned()
    }
}

/// The pam_set_data key of `name`: the module's own name space.
fn data_key(name: &str) -> String {
    format!("pam_mfa:{name}")
}

/// A PAM environment variable name: not empty, no `=` (pam_putenv would
/// read what follows as a value).
fn check_env_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.contains('=') {
        return Err(Error::Environment(format!(
            "`{name}` is not a variable name"
        )));
    }
    Ok(())
}

/// A daemon message made safe for a terminal and for C: no NUL (which the
/// conversation cannot carry) and no control characters other than newline
/// and tab (no escape sequences).
pub fn displayable(message: &str) -> String {
    message
        .chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displayable_drops_nul_and_escapes() {
        assert_eq!(
            displayable("Code:\0 \u{1b}[2J ok\n\tx"),
            "Code: [2J ok\n\tx"
        );
        assert_eq!(displayable("Verification code: "), "Verification code: ");
    }

    #[test]
    fn environment_names_are_checked() {
        assert!(check_env_name(crate::flow::ATTEMPT_ENV).is_ok());
        assert!(check_env_name(crate::flow::OLD_ATTEMPT_ENV).is_ok());
        assert!(matches!(check_env_name(""), Err(Error::Environment(_))));
        assert!(matches!(check_env_name("A=B"), Err(Error::Environment(_))));
    }

    #[test]
    fn a_code_never_shows_in_debug_output() {
        let c = Code::new(b"123456".to_vec());
        assert_eq!(format!("{c:?}"), "Code(6 bytes)");
    }

    #[test]
    fn truncation_keeps_the_first_bytes() {
        let mut c = Code::new(b"123456789".to_vec());
        c.truncate(4);
        assert_eq!(c.as_bytes(), b"1234");
        c.truncate(10);
        assert_eq!(c.as_bytes(), b"1234");
    }
}
