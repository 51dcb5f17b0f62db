//! The authenticator app (TOTP): enrolled with a fresh secret confirmed by
//! two consecutive codes; a code is accepted once per time step per user.
//! The RFC 6238 arithmetic is in `crate::totp`.

use super::{Accepted, DeviceData, Factor, Input, Outcome};
use crate::error::Result;
use crate::random::Random;
use crate::totp;

pub const MSG_REPLAY: &str = "That code was already used; wait for the next one.";

/// An enrollment waiting for its two codes.
pub struct Pending {
    pub name: String,
    pub secret: Vec<u8>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret);
    }
}

/// A fresh secret for a new app.
pub fn new_secret(random: &dyn Random) -> Result<Vec<u8>> {
    let mut secret = vec![0u8; totp::SECRET_BYTES];
    random.fill(&mut secret)?;
    Ok(secret)
}

pub struct Totp;

impl Factor for Totp {
    fn verify(&self, a: &Input<'_>) -> Result<Outcome> {
        if a.code.len() != totp::DIGITS {
            return Ok(Outcome::NotMine);
        }
        let mut message = None;
        for device in &a.state.devices {
            let DeviceData::Totp { secret } = &device.data else {
                continue;
            };
            let Some(step) = totp::find_step(secret, a.code, a.now, a.totp_window, 0) else {
                continue;
            };
            if step > a.state.last_step
                && a.store.accept_totp_step(a.uid, &device.id, step, a.now)?
            {
                return Ok(Outcome::Accepted(Accepted {
                    method: "totp",
                    device: Some(device.id.clone()),
                }));
            }
            message = Some(MSG_REPLAY);
        }
        Ok(Outcome::Rejected(message))
    }
}
