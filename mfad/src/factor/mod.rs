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
use crate::seal::Keys;
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

/// The stored form's version, the first byte of the encoded data: 1 is the
/// payload as it is (a phone number; a TOTP secret before secrets were
/// sealed), 2 a TOTP secret sealed under the daemon's key.
const DATA_PLAIN: u8 = 1;
const DATA_SEALED: u8 = 2;

impl DeviceData {
    pub fn kind(&self) -> Kind {
        match self {
            DeviceData::Totp { .. } => Kind::Totp,
            DeviceData::Sms { .. } => Kind::Sms,
        }
    }

    /// The stored form: a version byte, then the kind's payload; a TOTP
    /// secret sealed, bound to the account and device it belongs to.
    pub fn encode(
        &self,
        keys: &Keys,
        uid: u32,
        device_id: &str,
    ) -> std::result::Result<Vec<u8>, String> {
        let mut out = Vec::new();
        match self {
            DeviceData::Totp { secret } => {
                out.push(DATA_SEALED);
                out.extend(keys.seal(&seal_context(uid, device_id), secret)?);
            }
            DeviceData::Sms { phone } => {
                out.push(DATA_PLAIN);
                out.extend_from_slice(phone.as_bytes());
            }
        }
        Ok(out)
    }

    /// Reads what [`encode`](Self::encode) wrote for the device `device_id`
    /// of `kind` of the account `uid` (and the plain secrets of before).
    pub fn decode(
        kind: Kind,
        stored: &[u8],
        keys: &Keys,
        uid: u32,
        device_id: &str,
    ) -> std::result::Result<DeviceData, String> {
        match (kind, stored.split_first()) {
            (Kind::Totp, Some((&DATA_SEALED, sealed))) => {
                let secret = keys.open(&seal_context(uid, device_id), sealed)?;
                Ok(DeviceData::Totp {
                    secret: secret.to_vec(),
                })
            }
            (Kind::Totp, Some((&DATA_PLAIN, secret))) => Ok(DeviceData::Totp {
                secret: secret.to_vec(),
            }),
            (Kind::Sms, Some((&DATA_PLAIN, phone))) => String::from_utf8(phone.to_vec())
                .map(|phone| DeviceData::Sms { phone })
                .map_err(|_| "sms device data is not a number".to_string()),
            _ => Err(format!("{} device data of unknown version", kind.as_str())),
        }
    }

    /// Whether the stored form is a plain TOTP secret (from before secrets
    /// were sealed).
    pub fn is_plain_secret(kind: Kind, stored: &[u8]) -> bool {
        kind == Kind::Totp && stored.first() == Some(&DATA_PLAIN)
    }
}

/// What a sealed secret is bound to: a secret copied to another account's
/// or device's row does not open there.
fn seal_context(uid: u32, device_id: &str) -> Vec<u8> {
    let mut c = b"mfad totp secret\0".to_vec();
    c.extend_from_slice(&uid.to_be_bytes());
    c.extend_from_slice(device_id.as_bytes());
    c
}

impl Drop for DeviceData {
    fn drop(&mut self) {
        if let DeviceData::Totp { secret } = self {
            zeroize::Zeroize::zeroize(secret);
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
    /// The key one-time codes are stored under.
    pub keys: &'a Keys,
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
        let k = Keys::for_tests();
        for data in [
            DeviceData::Totp {
                secret: vec![0, 1, 2, 255],
            },
            DeviceData::Sms {
                phone: "+37255512345".into(),
            },
        ] {
            let stored = data.encode(&k, 1000, "d1").unwrap();
            assert_eq!(
                DeviceData::decode(data.kind(), &stored, &k, 1000, "d1").unwrap(),
                data
            );
        }
        assert!(DeviceData::decode(Kind::Totp, &[3, 1, 2], &k, 1, "d").is_err());
        assert!(DeviceData::decode(Kind::Totp, &[], &k, 1, "d").is_err());
        assert!(DeviceData::decode(Kind::Sms, &[1, 0xff], &k, 1, "d").is_err());
        assert!(DeviceData::decode(Kind::Sms, &[2, 0x30], &k, 1, "d").is_err());
    }

    #[test]
    fn a_sealed_secret_opens_only_for_its_account_and_device() {
        let k = Keys::for_tests();
        let secret = b"TWENTY BYTES SECRET!".to_vec();
        let stored = DeviceData::Totp {
            secret: secret.clone(),
        }
        .encode(&k, 1000, "d1")
        .unwrap();
        assert!(!stored.windows(secret.len()).any(|w| w == secret.as_slice()));
        assert!(DeviceData::decode(Kind::Totp, &stored, &k, 1001, "d1").is_err());
        assert!(DeviceData::decode(Kind::Totp, &stored, &k, 1000, "d2").is_err());
        // A plain secret of before still reads (the migration seals it).
        let mut plain = vec![1u8];
        plain.extend_from_slice(&secret);
        assert!(DeviceData::is_plain_secret(Kind::Totp, &plain));
        assert_eq!(
            DeviceData::decode(Kind::Totp, &plain, &k, 1000, "d1").unwrap(),
            DeviceData::Totp { secret }
        );
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
