//! Codes by SMS: a phone number confirmed with a code sent to it; at login a
//! fresh 6-digit code, one live per user, used once, for `code_lifetime`.
//! Sending is `service::sms`; numbers are `crate::phone`.

use super::{Accepted, Factor, Input, Outcome};
use crate::codes::{self, Hashed};
use crate::error::Result;
use crate::random::Random;

/// SMS codes have the digits of an app code, so one prompt takes either.
pub const DIGITS: usize = crate::totp::DIGITS;
pub const MSG_EXPIRED: &str = "That SMS code expired; press Enter to get a new one.";

/// A number waiting to be confirmed with the code last sent to it.
pub struct Pending {
    pub phone: String,
    pub code: Hashed,
    pub code_expires: i64,
}

/// A fresh code to send.
pub fn new_code(random: &dyn Random) -> Result<String> {
    codes::generate_digits(DIGITS, random)
}

pub struct Sms;

impl Factor for Sms {
    fn verify(&self, a: &Input<'_>) -> Result<Outcome> {
        if a.code.len() != DIGITS {
            return Ok(Outcome::NotMine);
        }
        let (Some(sent), Some((device, _))) = (&a.state.sms_code, a.state.phone()) else {
            return Ok(Outcome::Rejected(None));
        };
        if codes::find(a.code, std::slice::from_ref(&sent.code), a.keys).is_none() {
            return Ok(Outcome::Rejected(None));
        }
        if sent.expires <= a.now {
            return Ok(Outcome::Rejected(Some(MSG_EXPIRED)));
        }
        if a.store.use_sms_code(a.uid, &device.id, &sent.code, a.now)? {
            return Ok(Outcome::Accepted(Accepted {
                method: "sms",
                device: Some(device.id.clone()),
            }));
        }
        Ok(Outcome::Rejected(None))
    }
}
