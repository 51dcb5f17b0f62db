//! The D-Bus face of [`Service`]: thin handlers that find out who is calling,
//! move the work off the bus thread, and translate errors.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use mfa_api::{
    AccountAction, AnswerResult, BeginAction, Error as WireError, MissingUser, TrustedDevice,
    UserStatus, UserSummary,
};
use zbus::fdo::DBusProxy;
use zbus::interface;
use zbus::message::Header;
use zbus::names::BusName;

use crate::error::Error;
use crate::service::{LoginRequest, Service};

/// Unique bus names are never reused while the bus runs, so a name's UID
/// can be remembered; the map is emptied when it grows large.
const MAX_CACHED_CALLERS: usize = 4096;

/// Shared by the three interfaces: the service, and who is calling.
pub struct Context {
    service: Arc<Service>,
    bus: DBusProxy<'static>,
    callers: Mutex<HashMap<String, u32>>,
    runtime: tokio::runtime::Handle,
}

impl Context {
    pub fn new(
        service: Arc<Service>,
        bus: DBusProxy<'static>,
        runtime: tokio::runtime::Handle,
    ) -> Arc<Context> {
        Arc::new(Context {
            service,
            bus,
            callers: Mutex::new(HashMap::new()),
            runtime,
        })
    }

    /// The caller's Unix UID, as the bus daemon vouches for it.
    async fn caller(&self, header: &Header<'_>) -> Result<u32, WireError> {
        let Some(sender) = header.sender() else {
            return Err(WireError::AccessDenied(
                "The caller has no bus name.".into(),
            ));
        };
        let key = sender.as_str().to_string();
        if let Some(uid) = self.cached(&key) {
            return Ok(uid);
        }
        let uid = self
            .bus
            .get_connection_unix_user(BusName::from(sender.to_owned()))
            .await
            .map_err(|e| WireError::from(Error::from(e)))?;
        if let Ok(mut callers) = self.callers.lock() {
            if callers.len() >= MAX_CACHED_CALLERS {
                callers.clear();
            }
            callers.insert(key, uid);
        }
        Ok(uid)
    }

    fn cached(&self, key: &str) -> Option<u32> {
        self.callers.lock().ok().and_then(|c| c.get(key).copied())
    }

    /// Runs `f` on the blocking pool (it may wait on SQLite's fsync) with the
    /// current time, and turns its error into the wire error.
    async fn run<T, F>(&self, f: F) -> Result<T, WireError>
    where
        T: Send + 'static,
        F: FnOnce(&Service, i64) -> crate::error::Result<T> + Send + 'static,
    {
        let service = self.service.clone();
        let joined = self
            .runtime
            .spawn_blocking(move || {
                let now = now();
                let result = f(&service, now);
                if let Err(e) = &result {
                    if matches!(
                        e,
                        Error::Storage(_) | Error::Io(_) | Error::Internal(_) | Error::Bus(_)
                    ) {
                        service
                            .audit()
                            .warn("internal error", &[("error", &e.to_string())]);
                    }
                }
                result
            })
            .await;
        match joined {
            Ok(result) => result.map_err(WireError::from),
            Err(e) => {
                self.service
                    .audit()
                    .warn("internal error", &[("error", &e.to_string())]);
                Err(WireError::from(Error::Internal(e.to_string())))
            }
        }
    }
}

/// The time, read once per call (and by `--check-config`).
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub struct Login(pub Arc<Context>);
pub struct Account(pub Arc<Context>);
pub struct Admin(pub Arc<Context>);

#[interface(name = "org.mfad.Mfa1.Login")]
impl Login {
    #[zbus(out_args("action", "attempt", "message"))]
    async fn begin(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
        service: String,
        rhost: String,
        tty: String,
        auth_info: String,
    ) -> Result<(BeginAction, String, String), WireError> {
        let caller = self.0.caller(&header).await?;
        let req = LoginRequest {
            user,
            service,
            rhost,
            tty,
            auth_info,
        };
        self.0
            .run(move |s, now| s.login_begin(caller, &req, now))
            .await
    }

    #[zbus(out_args("result", "message"))]
    async fn answer(
        &self,
        #[zbus(header)] header: Header<'_>,
        attempt: String,
        code: Vec<u8>,
    ) -> Result<(AnswerResult, String), WireError> {
        let caller = self.0.caller(&header).await?;
        self.0
            .run(move |s, now| s.login_answer(caller, &attempt, &code, now))
            .await
    }

    #[zbus(out_args("action", "message"))]
    async fn account_check(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
        service: String,
        attempt: String,
    ) -> Result<(AccountAction, String), WireError> {
        let caller = self.0.caller(&header).await?;
        self.0
            .run(move |s, now| s.account_check(caller, &user, &service, &attempt, now))
            .await
    }
}

#[interface(name = "org.mfad.Mfa1.Account")]
impl Account {
    #[zbus(out_args("enrollment_id", "uri", "secret"))]
    async fn enroll_totp_begin(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
        name: String,
    ) -> Result<(String, String, String), WireError> {
        let caller = self.0.caller(&header).await?;
        self.0
            .run(move |s, now| s.enroll_totp_begin(caller, &user, &name, now))
            .await
    }

    #[zbus(out_args("device_id", "backup_codes"))]
    async fn enroll_totp_confirm(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
        enrollment_id: String,
        code1: String,
        code2: String,
    ) -> Result<(String, Vec<String>), WireError> {
        let caller = self.0.caller(&header).await?;
        self.0
            .run(move |s, now| {
                s.enroll_totp_confirm(caller, &user, &enrollment_id, &code1, &code2, now)
            })
            .await
    }

    #[zbus(out_args("enrollment_id", "phone"))]
    async fn enroll_sms_begin(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
        phone: String,
        code: String,
    ) -> Result<(String, String), WireError> {
        let caller = self.0.caller(&header).await?;
        self.0
            .run(move |s, now| s.enroll_sms_begin(caller, &user, &phone, &code, now))
            .await
    }

    #[zbus(out_args("phone"))]
    async fn enroll_sms_resend(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
        enrollment_id: String,
    ) -> Result<String, WireError> {
        let caller = self.0.caller(&header).await?;
        self.0
            .run(move |s, now| s.enroll_sms_resend(caller, &user, &enrollment_id, now))
            .await
    }

    #[zbus(out_args("device_id", "backup_codes"))]
    async fn enroll_sms_confirm(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
        enrollment_id: String,
        code: String,
    ) -> Result<(String, Vec<String>), WireError> {
        let caller = self.0.caller(&header).await?;
        self.0
            .run(move |s, now| s.enroll_sms_confirm(caller, &user, &enrollment_id, &code, now))
            .await
    }

    #[zbus(out_args("phone"))]
    async fn send_code(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
    ) -> Result<String, WireError> {
        let caller = self.0.caller(&header).await?;
        self.0
            .run(move |s, now| s.send_code(caller, &user, now))
            .await
    }

    #[zbus(out_args("status"))]
    async fn status(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
    ) -> Result<UserStatus, WireError> {
        let caller = self.0.caller(&header).await?;
        self.0.run(move |s, _| s.status(caller, &user)).await
    }

    async fn remove_device(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
        device_id: String,
        code: String,
    ) -> Result<(), WireError> {
        let caller = self.0.caller(&header).await?;
        self.0
            .run(move |s, now| s.remove_device(caller, &user, &device_id, &code, now))
            .await
    }

    #[zbus(out_args("backup_codes"))]
    async fn regenerate_backup_codes(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
        code: String,
    ) -> Result<Vec<String>, WireError> {
        let caller = self.0.caller(&header).await?;
        self.0
            .run(move |s, now| s.regenerate_backup_codes(caller, &user, &code, now))
            .await
    }

    #[zbus(out_args("devices"))]
    async fn trusted_devices(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
    ) -> Result<Vec<TrustedDevice>, WireError> {
        let caller = self.0.caller(&header).await?;
        self.0
            .run(move |s, _| s.trusted_devices(caller, &user))
            .await
    }

    async fn remove_trusted_device(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
        id: String,
    ) -> Result<(), WireError> {
        let caller = self.0.caller(&header).await?;
        self.0
            .run(move |s, _| s.remove_trusted_device(caller, &user, &id))
            .await
    }

    #[zbus(out_args("removed"))]
    async fn remove_all_trusted_devices(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
    ) -> Result<u32, WireError> {
        let caller = self.0.caller(&header).await?;
        self.0
            .run(move |s, _| s.remove_all_trusted_devices(caller, &user))
            .await
    }
}

#[interface(name = "org.mfad.Mfa1.Admin")]
impl Admin {
    #[zbus(out_args("users"))]
    async fn list_users(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<UserSummary>, WireError> {
        let caller = self.0.caller(&header).await?;
        self.0.run(move |s, _| s.list_users(caller)).await
    }

    #[zbus(out_args("status"))]
    async fn user_status(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
    ) -> Result<UserStatus, WireError> {
        let caller = self.0.caller(&header).await?;
        self.0.run(move |s, _| s.user_status(caller, &user)).await
    }

    async fn reset(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
    ) -> Result<(), WireError> {
        let caller = self.0.caller(&header).await?;
        self.0.run(move |s, _| s.reset(caller, &user)).await
    }

    async fn unlock(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
    ) -> Result<(), WireError> {
        let caller = self.0.caller(&header).await?;
        self.0.run(move |s, _| s.unlock(caller, &user)).await
    }

    #[zbus(out_args("devices"))]
    async fn trusted_devices(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
    ) -> Result<Vec<TrustedDevice>, WireError> {
        let caller = self.0.caller(&header).await?;
        self.0
            .run(move |s, _| s.admin_trusted_devices(caller, &user))
            .await
    }

    async fn remove_trusted_device(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
        id: String,
    ) -> Result<(), WireError> {
        let caller = self.0.caller(&header).await?;
        self.0
            .run(move |s, _| s.admin_remove_trusted_device(caller, &user, &id))
            .await
    }

    #[zbus(out_args("removed"))]
    async fn remove_all_trusted_devices(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
    ) -> Result<u32, WireError> {
        let caller = self.0.caller(&header).await?;
        self.0
            .run(move |s, _| s.admin_remove_all_trusted_devices(caller, &user))
            .await
    }

    #[zbus(out_args("users"))]
    async fn list_missing(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<MissingUser>, WireError> {
        let caller = self.0.caller(&header).await?;
        self.0.run(move |s, now| s.list_missing(caller, now)).await
    }

    async fn remove_device(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: String,
        device_id: String,
    ) -> Result<(), WireError> {
        let caller = self.0.caller(&header).await?;
        self.0
            .run(move |s, _| s.admin_remove_device(caller, &user, &device_id))
            .await
    }
}
