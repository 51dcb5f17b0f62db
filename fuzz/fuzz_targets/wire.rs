//! `mfa_api::wire` on any bytes, as mfad's login socket reads them from any
//! local user: the length from the first 16 bytes (capped, as the socket
//! caps it), then the message. Errors are fine; a panic is a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mfa_api::wire::{decode, message_length};

/// mfad's cap (login_socket::MAX_MESSAGE_SIZE).
const MAX: usize = 64 * 1024;

fuzz_target!(|buf: &[u8]| {
    if let Some(header) = buf.get(..16) {
        if let Ok(n) = message_length(header, MAX) {
            if let Some(message) = buf.get(..n) {
                let _ = decode(message, &[]);
            }
        }
    }
    let _ = decode(buf, &[]);
});
