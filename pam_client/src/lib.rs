//! A libpam client, in-process, as a login program (sshd, sudo, login) is
//! one: [`Handle::start`], then `authenticate`, `acct_mgmt`, `setcred`,
//! `open_session`, `close_session` in the order the program wants, then
//! [`Handle::end`]. The module's questions are answered by a scripted
//! [`Conversation`] that also records what it was asked and told.
//!
//! The integration tests' `pam-run` helper and the benchmark's PAM workers
//! use it; it is not installed.
//!
//! ```no_run
//! use std::ffi::CString;
//! use mfa_pam_client::{Conversation, Handle, PAM_SUCCESS};
//!
//! let service = CString::new("login").expect("no NUL");
//! let user = CString::new("alice").expect("no NUL");
//! let mut conv = Conversation::new(["123456"]);
//! let mut pam = Handle::start(&service, &user, &mut conv).expect("pam_start");
//! let rc = pam.authenticate(0);
//! pam.end(rc);
//! assert_eq!(rc, PAM_SUCCESS);
//! assert_eq!(conv.prompts().len(), 1);
//! ```

pub mod sys;

use std::collections::VecDeque;
use std::ffi::{c_int, c_void, CStr, CString};
use std::marker::PhantomData;
use std::path::Path;
use std::ptr::{self, NonNull};

pub use sys::{
    PAM_BUF_ERR, PAM_CONV_ERR, PAM_DELETE_CRED, PAM_ESTABLISH_CRED, PAM_SILENT, PAM_SUCCESS,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0} contains a NUL byte")]
    Nul(&'static str),
    #[error("pam_start failed: {message} ({code})")]
    Start { code: c_int, message: String },
}

/// How a prompt wants its answer shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Echo {
    Off,
    On,
}

impl Echo {
    /// "echo_off" or "echo_on".
    pub fn as_str(self) -> &'static str {
        match self {
            Echo::Off => "echo_off",
            Echo::On => "echo_on",
        }
    }
}

/// A question the module asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    pub text: String,
    pub echo: Echo,
}

/// The kind of a message the module showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Error,
    Info,
}

impl MessageKind {
    /// "error" or "info".
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Error => "error",
            MessageKind::Info => "info",
        }
    }
}

/// A message the module showed (PAM_ERROR_MSG or PAM_TEXT_INFO).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub text: String,
    pub kind: MessageKind,
}

/// The user's side of the conversation: answers given in order, one per
/// prompt; a prompt with no answer left fails the conversation
/// (PAM_CONV_ERR), as a user who gives up would. It may serve several
/// handles in turn, and keeps what they asked and showed.
#[derive(Debug, Default)]
pub struct Conversation {
    answers: VecDeque<Vec<u8>>,
    prompts: Vec<Prompt>,
    messages: Vec<Message>,
}

impl Conversation {
    /// Answers as bytes: any bytes but NUL (an answer with a NUL fails the
    /// conversation when asked for).
    pub fn new<A: Into<Vec<u8>>>(answers: impl IntoIterator<Item = A>) -> Conversation {
        Conversation {
            answers: answers.into_iter().map(Into::into).collect(),
            prompts: Vec::new(),
            messages: Vec::new(),
        }
    }

    /// The prompts so far, in order.
    pub fn prompts(&self) -> &[Prompt] {
        &self.prompts
    }

    /// The messages so far, in order.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// Answers not asked for.
    pub fn unused_answers(&self) -> usize {
        self.answers.len()
    }

    /// One message from the module; the answer to give for a prompt, or
    /// None to fail the conversation.
    fn receive(&mut self, style: c_int, text: String) -> Result<Option<CString>, ()> {
        match style {
            sys::PAM_PROMPT_ECHO_OFF | sys::PAM_PROMPT_ECHO_ON => {
                let echo = if style == sys::PAM_PROMPT_ECHO_OFF {
                    Echo::Off
                } else {
                    Echo::On
                };
                self.prompts.push(Prompt { text, echo });
                let answer = self.answers.pop_front().ok_or(())?;
                CString::new(answer).map(Some).map_err(|_| ())
            }
            sys::PAM_ERROR_MSG | sys::PAM_TEXT_INFO => {
                let kind = if style == sys::PAM_ERROR_MSG {
                    MessageKind::Error
                } else {
                    MessageKind::Info
                };
                self.messages.push(Message { text, kind });
                Ok(None)
            }
            // Binary prompts and styles this client does not know: no answer.
            _ => Ok(None),
        }
    }
}

/// The conversation function given to libpam; `appdata` is the
/// [`Conversation`] of the handle.
extern "C" fn converse(
    num_msg: c_int,
    msg: *mut *const sys::PamMessage,
    resp: *mut *mut sys::PamResponse,
    appdata: *mut c_void,
) -> c_int {
    let Ok(n) = usize::try_from(num_msg) else {
        return sys::PAM_CONV_ERR;
    };
    if n == 0 || msg.is_null() || resp.is_null() || appdata.is_null() {
        return sys::PAM_CONV_ERR;
    }
    // SAFETY: appdata is the Conversation that Handle::start put in the
    // pam_conv; the handle borrows it mutably for its whole life, and libpam
    // calls this only from inside the handle's calls, so nothing else uses it.
    let conv = unsafe { &mut *appdata.cast::<Conversation>() };
    // SAFETY: calloc of n zeroed responses (NULL strings); the module frees
    // the array and the strings in it with free(), as the conversation ABI
    // says.
    let replies = unsafe { libc::calloc(n, std::mem::size_of::<sys::PamResponse>()) }
        .cast::<sys::PamResponse>();
    if replies.is_null() {
        return sys::PAM_BUF_ERR;
    }
    for i in 0..n {
        // SAFETY: Linux-PAM passes an array of n message pointers, each to a
        // message valid for the duration of this call.
        let m = unsafe { &**msg.add(i) };
        let text = if m.msg.is_null() {
            String::new()
        } else {
            // SAFETY: msg is a NUL-terminated string owned by the caller.
            unsafe { CStr::from_ptr(m.msg) }
                .to_string_lossy()
                .into_owned()
        };
        match conv.receive(m.msg_style, text) {
            Ok(None) => {}
            Ok(Some(answer)) => {
                // SAFETY: strdup copies into malloc'ed memory that the module
                // frees; replies has n elements and i < n.
                unsafe { (*replies.add(i)).resp = libc::strdup(answer.as_ptr()) };
            }
            Err(()) => {
                free_replies(replies, n);
                return sys::PAM_CONV_ERR;
            }
        }
    }
    // SAFETY: resp is the out-pointer libpam gave; it takes the array.
    unsafe { *resp = replies };
    sys::PAM_SUCCESS
}

/// Frees a reply array that is not handed to libpam.
fn free_replies(replies: *mut sys::PamResponse, n: usize) {
    for i in 0..n {
        // SAFETY: replies has n elements from calloc, each NULL or strdup'ed.
        let r = unsafe { (*replies.add(i)).resp };
        if !r.is_null() {
            // SAFETY: r came from strdup and is not referenced elsewhere.
            unsafe { libc::free(r.cast::<c_void>()) };
        }
    }
    // SAFETY: from calloc in converse, not handed out.
    unsafe { libc::free(replies.cast::<c_void>()) };
}

/// One PAM transaction (pam_start .. pam_end). Each call returns libpam's
/// result code (PAM_SUCCESS or an error); [`Handle::strerror`] names it.
/// Dropping the handle without [`Handle::end`] ends it with the result of
/// the last call.
pub struct Handle<'c> {
    pamh: NonNull<sys::PamHandle>,
    /// Linux-PAM copies the pam_conv; kept anyway, as the API does not
    /// promise the copy.
    _pam_conv: Box<sys::PamConv>,
    /// The pam_conv's appdata: borrowed for the handle's life.
    _conv: PhantomData<&'c mut Conversation>,
    last: c_int,
    ended: bool,
}

impl<'c> Handle<'c> {
    /// pam_start with the service's file in /etc/pam.d.
    pub fn start(
        service: &CStr,
        user: &CStr,
        conv: &'c mut Conversation,
    ) -> Result<Handle<'c>, Error> {
        Handle::start_impl(service, user, None, conv)
    }

    /// pam_start_confdir: the service's file in `confdir` instead of
    /// /etc/pam.d (a private PAM configuration, no root needed).
    pub fn start_in(
        confdir: &Path,
        service: &CStr,
        user: &CStr,
        conv: &'c mut Conversation,
    ) -> Result<Handle<'c>, Error> {
        use std::os::unix::ffi::OsStrExt;
        let dir = CString::new(confdir.as_os_str().as_bytes())
            .map_err(|_| Error::Nul("the PAM configuration directory"))?;
        Handle::start_impl(service, user, Some(&dir), conv)
    }

    fn start_impl(
        service: &CStr,
        user: &CStr,
        confdir: Option<&CStr>,
        conv: &'c mut Conversation,
    ) -> Result<Handle<'c>, Error> {
        let pam_conv = Box::new(sys::PamConv {
            conv: Some(converse),
            appdata_ptr: (conv as *mut Conversation).cast::<c_void>(),
        });
        let mut pamh: *mut sys::PamHandle = ptr::null_mut();
        let rc = match confdir {
            // SAFETY: NUL-terminated strings valid for the call (libpam
            // copies them); the pam_conv lives as long as the handle; pamh is
            // an out-pointer.
            None => unsafe {
                sys::pam_start(service.as_ptr(), user.as_ptr(), &*pam_conv, &mut pamh)
            },
            // SAFETY: as above, with confdir also NUL-terminated.
            Some(dir) => unsafe {
                sys::pam_start_confdir(
                    service.as_ptr(),
                    user.as_ptr(),
                    &*pam_conv,
                    dir.as_ptr(),
                    &mut pamh,
                )
            },
        };
        // A failed pam_start has freed its handle already.
        let pamh = match NonNull::new(pamh) {
            Some(pamh) if rc == sys::PAM_SUCCESS => pamh,
            _ => {
                return Err(Error::Start {
                    code: rc,
                    message: strerror(ptr::null_mut(), rc),
                })
            }
        };
        Ok(Handle {
            pamh,
            _pam_conv: pam_conv,
            _conv: PhantomData,
            last: rc,
            ended: false,
        })
    }

    /// pam_authenticate.
    pub fn authenticate(&mut self, flags: c_int) -> c_int {
        // SAFETY: pamh is live until end/drop.
        self.record(unsafe { sys::pam_authenticate(self.pamh.as_ptr(), flags) })
    }

    /// pam_acct_mgmt.
    pub fn acct_mgmt(&mut self, flags: c_int) -> c_int {
        // SAFETY: pamh is live until end/drop.
        self.record(unsafe { sys::pam_acct_mgmt(self.pamh.as_ptr(), flags) })
    }

    /// pam_setcred, e.g. with [`PAM_ESTABLISH_CRED`].
    pub fn setcred(&mut self, flags: c_int) -> c_int {
        // SAFETY: pamh is live until end/drop.
        self.record(unsafe { sys::pam_setcred(self.pamh.as_ptr(), flags) })
    }

    /// pam_open_session.
    pub fn open_session(&mut self, flags: c_int) -> c_int {
        // SAFETY: pamh is live until end/drop.
        self.record(unsafe { sys::pam_open_session(self.pamh.as_ptr(), flags) })
    }

    /// pam_close_session.
    pub fn close_session(&mut self, flags: c_int) -> c_int {
        // SAFETY: pamh is live until end/drop.
        self.record(unsafe { sys::pam_close_session(self.pamh.as_ptr(), flags) })
    }

    /// libpam's text for a result code.
    pub fn strerror(&self, rc: c_int) -> String {
        strerror(self.pamh.as_ptr(), rc)
    }

    /// pam_end with `status` (passed to the modules' cleanup, usually the
    /// result of the last call that mattered); pam_end's own result.
    pub fn end(mut self, status: c_int) -> c_int {
        self.ended = true;
        // SAFETY: pamh is live and not used after this (self is consumed,
        // and Drop skips an ended handle).
        unsafe { sys::pam_end(self.pamh.as_ptr(), status) }
    }

    fn record(&mut self, rc: c_int) -> c_int {
        self.last = rc;
        rc
    }
}

impl Drop for Handle<'_> {
    fn drop(&mut self) {
        if !self.ended {
            // SAFETY: pamh is live and never used again.
            unsafe { sys::pam_end(self.pamh.as_ptr(), self.last) };
        }
    }
}

fn strerror(pamh: *mut sys::PamHandle, rc: c_int) -> String {
    // SAFETY: libpam's pam_strerror ignores the handle (NULL is accepted)
    // and returns a static string.
    let s = unsafe { sys::pam_strerror(pamh, rc) };
    if s.is_null() {
        return format!("PAM error {rc}");
    }
    // SAFETY: a NUL-terminated static string from libpam.
    unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests;
