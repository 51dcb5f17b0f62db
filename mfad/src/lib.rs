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
