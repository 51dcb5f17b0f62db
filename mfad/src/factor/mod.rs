//! The second factors: what each needs to be enrolled, how it checks an
//! answer, and how it describes itself.
//!
//! Devices ([`DeviceData`]) are the factors a user enrolls: an authenticator
//! app ([`totp`]) or a phone for codes by SMS ([`sms`]). Backup codes
//! ([`backup`]) come with the first device and are a factor without a
//! device. Each factor implements [`Factor`]; [`FACTORS`] lists them in the
//! order a typed code is tried.
//!
//! Adding a factor: a new file here with its `Factor` impl, a [`Kind`] and a
//! [`DeviceData`] variant (with its encoding) if it is a device, an entry in
//! [`FACTORS`], and its enrollment calls in `service::enroll`. Kinds are
//! named as strings only here and at the wire mapping.

use crate::error::Result;
use crate::store::{Device, Store, UserState};

pub mod backup;
pub mod sms;
pub mod totp;

/// The kinds of device, as stored and on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Totp,
    Sms,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Totp, Kind::Sms];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Totp => "totp",
            Kind::Sms => "sms",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A device's kind-specific data, typed.
#[derive(Clone, PartialEq, Eq)]
pub enum DeviceData {
    /// An authenticator app: the shared TOTP secret.
    Totp { secret: Vec<u8> },
    /// A phone that receives codes by SMS: its E.164 number.
    Sms { phone: String },
}

/// The stored form's version, the first byte of the encoded data; a new
/// layout gets a new number and [`DeviceData::decode`] reads both.
const DATA_V1: u8 = 1;

impl DeviceData {
    pub fn kind(&self) -> Kind {
        match self {
            DeviceData::Totp { .. } => Kind::Totp,
            DeviceData::Sms { .. } => Kind::Sms,
        }
    }

    /// The stored form: a version byte, then the kind's payload.
    pub fn encode(&self) -> Vec<u8> {
        let payload: &[u8] = match self {
            DeviceData::Totp { secret } => secret,
            DeviceData::Sms { phone } => phone.as_bytes(),
        };
        let mut out = Vec::with_capacity(payload.len() + 1);
        out.push(DATA_V1);
        out.extend_from_slice(payload);
        out
    }

    /// Reads what [`encode`](Self::encode) wrote for a device of `kind`.
    pub fn decode(kind: Kind, stored: &[u8]) -> std::result::Result<DeviceData, String> {
        let Some((&DATA_V1, payload)) = stored.split_first() else {
            return Err(format!("{} device data of unknown version", kind.as_str()));
        };
        match kind {
            Kind::Totp => Ok(DeviceData::Totp {
                secret: payload.to_vec(),
            }),
            Kind::Sms => String::from_utf8(payload.to_vec())
                .map(|phone| DeviceData::Sms { phone })
                .map_err(|_| "sms device data is not a number".to_string()),
        }
    }
}

// Never print a secret, not even in a debug log or a test failure.
impl std::fmt::Debug for DeviceData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceData::Totp { .. } => f.write_str("Totp { secret: <hidden> }"),
            DeviceData::Sms { phone } => f
                .debug_struct("Sms")
                .field("phone", &crate::phone::mask(phone))
                .finish(),
        }
    }
}

/// How much of a device a caller may see: a user sees their phone number
/// masked, an admin in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Owner,
    Admin,
}

/// The name a device is shown by.
pub fn display_name(device: &Device, view: View) -> String {
    match &device.data {
        DeviceData::Totp { .. } => device.label.clone(),
        DeviceData::Sms { phone } => match view {
            View::Owner => crate::phone::mask(phone),
            View::Admin => phone.clone(),
        },
    }
}

/// How a code was accepted, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// `totp`, `sms` or `backup`.
    pub method: &'static str,
    /// The device that produced it; None for a backup code.
    pub device: Option<String>,
}

/// What one factor made of a typed code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The code was right and is now used up.
    Accepted(Accepted),
    /// The code has this factor's form but did not pass; the message says
    /// why when it is more than "wrong" (a replay, an expired SMS code).
    Rejected(Option<&'static str>),
    /// The code is not of this factor's form.
    NotMine,
}

/// What a factor is given to check one typed code.
pub struct Input<'a> {
    pub store: &'a dyn Store,
    /// The account's UID (state is kept by it).
    pub uid: u32,
    /// The user's state as read before the check; the store re-checks
    /// whatever could have changed since (replay, one-time use, lockout).
    pub state: &'a UserState,
    /// The typed code, digits only (see `service::verify::normalize`).
    pub code: &'a str,
    pub now: i64,
    /// `[totp] window`.
    pub totp_window: u32,
}

/// One second factor.
pub trait Factor: Sync {
    /// Checks the code and, when right, uses it up in the store (one atomic
    /// store operation).
    fn verify(&self, input: &Input<'_>) -> Result<Outcome>;
}

/// Every factor, in the order a typed code is tried.
pub static FACTORS: [&dyn Factor; 3] = [&totp::Totp, &sms::Sms, &backup::Backup];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_unknown_kinds_are_none() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
        assert_eq!(Kind::parse("fido2"), None);
    }

    #[test]
    fn device_data_round_trips_and_rejects_unknown_versions() {
        for data in [
            DeviceData::Totp {
                secret: vec![0, 1, 2, 255],
            },
            DeviceData::Sms {
                phone: "+37255512345".into(),
            },
        ] {
            let stored = data.encode();
            assert_eq!(DeviceData::decode(data.kind(), &stored).unwrap(), data);
        }
        assert!(DeviceData::decode(Kind::Totp, &[2, 1, 2]).is_err());
        assert!(DeviceData::decode(Kind::Totp, &[]).is_err());
        assert!(DeviceData::decode(Kind::Sms, &[1, 0xff]).is_err());
    }

    #[test]
    fn debug_output_hides_secrets_and_masks_numbers() {
        let totp = format!(
            "{:?}",
            DeviceData::Totp {
                secret: b"SECRETBYTES".to_vec()
            }
        );
        assert!(!totp.contains("83") && !totp.contains("SECRET"), "{totp}");
        let sms = format!(
            "{:?}",
            DeviceData::Sms {
                phone: "+37255512345".into()
            }
        );
        assert!(sms.contains("+372*****345"), "{sms}");
    }
}
