//! Codes by SMS: a phone number confirmed with a code sent to it; at login a
//! fresh 6-digit code per send, each good for `code_lifetime`. The newest
//! [`KEEP`] stay live, so a slow message still works after "send again";
//! using one uses up all. Sending is `service::sms`; numbers are
//! `crate::phone`.

use super::{Accepted, Factor, Input, Outcome};
use crate::codes;
use crate::error::Result;
use crate::random::Random;
use crate::seal::Keys;
use crate::store::SmsCode;

/// SMS codes have the digits of an app code, so one prompt takes either.
pub const DIGITS: usize = crate::totp::DIGITS;
pub const MSG_EXPIRED: &str = "That SMS code expired; press Enter to get a new one.";
/// How many codes sent to one user (or one number being enrolled) stay
/// live at once: enough for two "send again", few enough to keep guessing
/// as hard as for one code in practice.
pub const KEEP: usize = 3;

/// A number waiting to be confirmed with one of the codes sent to it.
pub struct Pending {
    pub phone: String,
    /// The newest [`KEEP`] codes sent, oldest first.
    pub codes: Vec<SmsCode>,
}

impl Pending {
    pub fn new(phone: String, first: SmsCode) -> Pending {
        Pending {
            phone,
            codes: vec![first],
        }
    }

    /// Adds a code sent again; the oldest beyond [`KEEP`] dies.
    pub fn resent(&mut self, code: SmsCode) {
        self.codes.push(code);
        let extra = self.codes.len().saturating_sub(KEEP);
        self.codes.drain(..extra);
    }
}

/// The live code of `sent` that the typed `code` is; `Err(true)` when it
/// matches only expired ones, `Err(false)` when none. Every code is
/// compared (`codes::find`), so timing does not tell which matched.
pub fn check<'a>(
    code: &str,
    sent: &'a [SmsCode],
    now: i64,
    keys: &Keys,
) -> std::result::Result<&'a SmsCode, bool> {
    let (live, dead): (Vec<&SmsCode>, Vec<&SmsCode>) = sent.iter().partition(|c| c.expires > now);
    let hashes = |v: &[&SmsCode]| v.iter().map(|c| c.code.clone()).collect::<Vec<_>>();
    match codes::find(code, &hashes(&live), keys) {
        Some(i) => Ok(live[i]),
        None => Err(codes::find(code, &hashes(&dead), keys).is_some()),
    }
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
        let Some((device, _)) = a.state.phone() else {
            return Ok(Outcome::Rejected(None));
        };
        let sent = match check(a.code, &a.state.sms_codes, a.now, a.keys) {
            Ok(sent) => sent,
            Err(true) => return Ok(Outcome::Rejected(Some(MSG_EXPIRED))),
            Err(false) => return Ok(Outcome::Rejected(None)),
        };
        if a.store.use_sms_code(a.uid, &device.id, &sent.code, a.now)? {
            return Ok(Outcome::Accepted(Accepted {
                method: "sms",
                device: Some(device.id.clone()),
            }));
        }
        Ok(Outcome::Rejected(None))
    }
}
