//! mfad, the mfa daemon, as a library: the binary (`main.rs`) wires these
//! modules to the system; the fuzz targets and tests call them directly.
//! See docs/architecture.md for what each module owns.

// Denied, not forbidden: the login socket takes descriptors from the
// kernel (SCM_RIGHTS, systemd's LISTEN_FDS), each under a SAFETY note.
#![deny(unsafe_code)]

pub mod audit;
pub mod check;
pub mod codes;
pub mod config;
pub mod dbus;
pub mod error;
pub mod factor;
pub mod gateway;
pub mod lockout;
pub mod login_socket;
pub mod phone;
pub mod policy;
pub mod process;
pub mod random;
pub mod ratelimit;
pub mod seal;
pub mod service;
pub mod session_time;
pub mod store;
pub mod totp;
pub mod trust;
pub mod users;

/// glibc's malloc arenas mfad may have. glibc gives each thread that
/// allocates an arena of its own, up to 8 per core, and each keeps the
/// memory it has freed: with the runtime's threads, the blocking pool's and
/// the login socket's, that was a third of mfad's memory. Two suffice on
/// the few cores mfad keeps busy; more threads wait for a lock at times.
pub const MALLOC_ARENAS: i32 = 2;

/// Caps glibc's malloc arenas at [`MALLOC_ARENAS`]. Call it first thing in
/// `main`, before any thread starts (mallopt is not for concurrent use).
#[allow(unsafe_code)]
pub fn limit_malloc_arenas() {
    // SAFETY: mallopt only sets a parameter of glibc's allocator; it is
    // called before mfad starts any thread, so no allocation runs beside
    // it. Its result (0 when refused) changes nothing mfad does.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
    }
}
