//! The D-Bus face of [`Service`]: thin handlers that find out who is calling,
//! move the work off the bus thread, and translate errors.

use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use mfa_api::{
    AccountAction, AnswerResult, BeginAction, Error as WireError, MissingUser, SessionDuration,
    SessionInfo, TrustedDevice, UserStatus, UserSummary,
};
use zbus::fdo::DBusProxy;
use zbus::interface;
use zbus::message::Header;
use zbus::names::BusName;
use zbus::proxy::CacheProperties;
use zbus::{Connection, Guid};

use crate::error::Error;
use crate::ratelimit::{Budget, Take};
use crate::service::sms::without_waiting;
use crate::service::{LoginRequest, Service};

/// Unique bus names are never reused while the bus runs, so a name's UID
/// can be remembered; the map is emptied when it grows large.
const MAX_CACHED_CALLERS: usize = 4096;

/// Calls a non-root UID may make at once, across all its connections and
/// all methods; far above what mfactl or a screen locker makes.
pub const CALL_BURST: u32 = 50;
/// Calls a second a non-root UID's budget refills with.
pub const CALLS_PER_SECOND: u32 = 20;
/// Non-root calls that may run at once; more wait their turn. Root's calls
/// (sshd, login, sudo asking through pam_mfa) never wait for one, so a
/// flood of user calls cannot hold every worker or the store ahead of them.
const NON_ROOT_SLOTS: usize = 2;

/// Shared by the three interfaces: the service, and who is calling.
pub struct Context {
    service: Arc<Service>,
    callers: Mutex<HashMap<String, u32>>,
    runtime: tokio::runtime::Handle,
    fairness: Fairness,
}

/// Who gets served when one user floods mfad: see [`Context::admit`].
struct Fairness {
    budget: Mutex<Budget>,
    non_root: tokio::sync::Semaphore,
    /// The budget's clock: monotonic, so setting the time cannot refill it.
    epoch: Instant,
}

impl Context {
    /// One context serves any number of connections, on a bus or
    /// peer-to-peer: each call is answered for the connection it came on.
    pub fn new(service: Arc<Service>, runtime: tokio::runtime::Handle) -> Arc<Context> {
        Arc::new(Context {
            service,
            callers: Mutex::new(HashMap::new()),
            runtime,
            fairness: Fairness {
                budget: Mutex::new(Budget::new(CALL_BURST, CALLS_PER_SECOND)),
                non_root: tokio::sync::Semaphore::new(NON_ROOT_SLOTS),
                epoch: Instant::now(),
            },
        })
    }

    /// Lets a call by `caller` go ahead. Root is never limited. A non-root
    /// UID over its budget is refused at once (RateLimited, logged once per
    /// flood), before any work; within budget it waits for one of the few
    /// non-root slots, held (the returned permit) until the call ends.
    async fn admit(
        &self,
        caller: u32,
    ) -> Result<Option<tokio::sync::SemaphorePermit<'_>>, WireError> {
        if caller == 0 {
            return Ok(None);
        }
        let now_ms = i64::try_from(self.fairness.epoch.elapsed().as_millis()).unwrap_or(i64::MAX);
        let take = match self.fairness.budget.lock() {
            Ok(mut budget) => budget.take(caller, now_ms),
            // A poisoned lock: refuse rather than serve without a limit.
            Err(_) => Take::Refused { first: false },
        };
        if let Take::Refused { first } = take {
            if first {
                self.service.audit().warn(
                    "over the call budget, refusing calls",
                    &[("uid", &caller.to_string())],
                );
            }
            return Err(WireError::RateLimited(
                "Too many requests; try again in a few seconds.".into(),
            ));
        }
        self.fairness
            .non_root
            .acquire()
            .await
            .map(Some)
            .map_err(|e| WireError::from(Error::Internal(e.to_string())))
    }

    /// The caller's Unix UID: on a bus as the bus daemon vouches for it; on a
    /// peer-to-peer connection (no bus, no sender name) the kernel's
    /// SO_PEERCRED of the socket's other end.
    async fn caller(&self, header: &Header<'_>, conn: &Connection) -> Result<u32, WireError> {
        if !conn.is_bus() {
            return peer_uid(conn).await;
        }
        let Some(sender) = header.sender() else {
            return Err(WireError::AccessDenied(
                "The caller has no bus name.".into(),
            ));
        };
        let key = sender.as_str().to_string();
        if let Some(uid) = self.cached(&key) {
            return Ok(uid);
        }
        let bus = DBusProxy::builder(conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(|e| WireError::from(Error::from(e)))?;
        let uid = bus
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

    /// Runs `f` for `caller`, once admitted (see [`Context::admit`]), on
    /// the blocking pool (it may wait on SQLite's fsync) with the current
    /// time, and turns its error into the wire error.
    async fn run<T, F>(&self, caller: u32, f: F) -> Result<T, WireError>
    where
        T: Send + 'static,
        F: FnOnce(&Service, i64) -> crate::error::Result<T> + Send + 'static,
    {
        let _slot = self.admit(caller).await?;
        self.on_pool(f).await
    }

    /// [`Context::run`], or with [`Run::Here`] on the calling thread: no
    /// hop to the blocking pool and back. A call that would wait for the
    /// SMS gateway stops before it does anything and goes to the blocking
    /// pool, still admitted once.
    async fn run_as<T, F>(&self, how: Run, caller: u32, f: F) -> Result<T, WireError>
    where
        T: Send + 'static,
        F: Fn(&Service, i64) -> crate::error::Result<T> + Send + 'static,
    {
        if how == Run::Blocking {
            return self.run(caller, f).await;
        }
        let _slot = self.admit(caller).await?;
        let service = &self.service;
        match without_waiting(|| logged(service, f(service, now()))) {
            Err(Error::WouldWait) => self.on_pool(f).await,
            result => result.map_err(WireError::from),
        }
    }

    async fn on_pool<T, F>(&self, f: F) -> Result<T, WireError>
    where
        T: Send + 'static,
        F: FnOnce(&Service, i64) -> crate::error::Result<T> + Send + 'static,
    {
        let service = self.service.clone();
        let joined = self
            .runtime
            .spawn_blocking(move || logged(&service, f(&service, now())))
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

/// Where a call's [`Service`] work runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    /// On tokio's blocking pool: the bus's calls, and the login socket's
    /// that may wait on the outside world (an SMS sent at enrollment) or
    /// on a store that runs on the runtime (PostgreSQL).
    Blocking,
    /// On the thread that serves the connection (the login socket's own
    /// threads, with SQLite), except a call that would wait for the SMS
    /// gateway (see [`Context::run_as`]).
    Here,
}

/// `result`, with its internal error in the log (the caller is told
/// nothing of it).
fn logged<T>(service: &Service, result: crate::error::Result<T>) -> crate::error::Result<T> {
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
}

/// The UID of the process at the other end of a peer-to-peer connection;
/// refused when the socket cannot tell (not a Unix socket).
async fn peer_uid(conn: &Connection) -> Result<u32, WireError> {
    let creds = conn.peer_creds().await.map_err(|e| {
        WireError::from(Error::Io(format!(
            "cannot read the peer's credentials: {e}"
        )))
    })?;
    creds.unix_user_id().ok_or_else(|| {
        WireError::AccessDenied("The caller's user cannot be told on this connection.".into())
    })
}

/// The time, read once per call (and by `--check-config`).
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Serves the three interfaces on the server end of a peer-to-peer
/// connection over `stream`; the call returns once the peer has
/// authenticated.
pub async fn serve_peer(ctx: Arc<Context>, stream: UnixStream) -> zbus::Result<Connection> {
    zbus::connection::Builder::unix_stream(stream)
        .server(Guid::generate())
        .p2p()
        .serve_at(mfa_api::OBJECT_PATH, Login(ctx.clone()))
        .serve_at(mfa_api::OBJECT_PATH, Account(ctx.clone()))
        .serve_at(mfa_api::OBJECT_PATH, Admin(ctx))
        .build()
        .await
}

pub struct Login(pub Arc<Context>);
pub struct Account(pub Arc<Context>);
pub struct Admin(pub Arc<Context>);

#[interface(name = "org.mfad.Mfa1.Login")]
impl Login {
    // The arguments are the wire method's five plus who is calling.
    #[allow(clippy::too_many_arguments)]
    #[zbus(out_args("action", "attempt", "message"))]
    async fn begin(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        user: String,
        service: String,
        rhost: String,
        tty: String,
        auth_info: String,
    ) -> Result<(BeginAction, String, String), WireError> {
        let caller = self.0.caller(&header, conn).await?;
        let req = LoginRequest {
            user,
            service,
            rhost,
            tty,
            auth_info,
        };
        self.0.login_begin(Run::Blocking, caller, req).await
    }

    #[zbus(out_args("result", "message"))]
    async fn answer(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        attempt: String,
        code: Vec<u8>,
    ) -> Result<(AnswerResult, String), WireError> {
        let caller = self.0.caller(&header, conn).await?;
        self.0
            .login_answer(Run::Blocking, caller, attempt, code)
            .await
    }

    #[zbus(out_args("action", "message"))]
    async fn account_check(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        user: String,
        service: String,
        attempt: String,
    ) -> Result<(AccountAction, String), WireError> {
        let caller = self.0.caller(&header, conn).await?;
        self.0
            .login_account_check(Run::Blocking, caller, user, service, attempt)
            .await
    }

    #[zbus(out_args("kinds"))]
    async fn enroll_kinds(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        attempt: String,
    ) -> Result<Vec<String>, WireError> {
        let caller = self.0.caller(&header, conn).await?;
        self.0
            .login_enroll_kinds(Run::Blocking, caller, attempt)
            .await
    }

    // The wire method's six plus who is calling.
    #[allow(clippy::too_many_arguments)]
    #[zbus(out_args("session_id", "ends", "message"))]
    async fn open_session(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        user: String,
        service: String,
        attempt: String,
        tty: String,
        xdg_session_id: String,
        pidfd: zbus::OwnedFd,
    ) -> Result<(String, i64, String), WireError> {
        let caller = self.0.caller(&header, conn).await?;
        let login = crate::service::SessionLogin {
            user,
            service,
            attempt,
            tty,
            xdg_session_id,
        };
        self.0
            .login_open_session(caller, login, std::os::fd::OwnedFd::from(pidfd))
            .await
    }

    #[zbus(out_args("uri", "secret", "message"))]
    async fn enroll_begin(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        attempt: String,
        kind: String,
        phone: String,
    ) -> Result<(String, String, String), WireError> {
        let caller = self.0.caller(&header, conn).await?;
        self.0
            .login_enroll_begin(caller, attempt, kind, phone)
            .await
    }

    #[zbus(out_args("message"))]
    async fn enroll_resend(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        attempt: String,
    ) -> Result<String, WireError> {
        let caller = self.0.caller(&header, conn).await?;
        self.0.login_enroll_resend(caller, attempt).await
    }

    #[zbus(out_args("result", "message", "backup_codes"))]
    async fn enroll_confirm(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        attempt: String,
        codes: Vec<String>,
    ) -> Result<(AnswerResult, String, Vec<String>), WireError> {
        let caller = self.0.caller(&header, conn).await?;
        self.0
            .login_enroll_confirm(Run::Blocking, caller, attempt, codes)
            .await
    }

    async fn close_session(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        session_id: String,
    ) -> Result<(), WireError> {
        let caller = self.0.caller(&header, conn).await?;
        self.0
            .login_close_session(Run::Blocking, caller, session_id)
            .await
    }
}

/// The org.mfad.Mfa1.Login methods once the caller is known: the one
/// place each maps to its [`Service`] call, for the bus's handlers above
/// and the login socket's server ([`crate::login_socket`]), run as `how`
/// says. OpenSession, EnrollBegin and EnrollResend always run on the
/// blocking pool: the first two may wait for the SMS gateway before they
/// store anything, and sessions are few.
impl Context {
    pub async fn login_begin(
        &self,
        how: Run,
        caller: u32,
        req: LoginRequest,
    ) -> Result<(BeginAction, String, String), WireError> {
        self.run_as(how, caller, move |s, now| s.login_begin(caller, &req, now))
            .await
    }

    pub async fn login_answer(
        &self,
        how: Run,
        caller: u32,
        attempt: String,
        code: Vec<u8>,
    ) -> Result<(AnswerResult, String), WireError> {
        self.run_as(how, caller, move |s, now| {
            s.login_answer(caller, &attempt, &code, now)
        })
        .await
    }

    pub async fn login_account_check(
        &self,
        how: Run,
        caller: u32,
        user: String,
        service: String,
        attempt: String,
    ) -> Result<(AccountAction, String), WireError> {
        self.run_as(how, caller, move |s, now| {
            s.account_check(caller, &user, &service, &attempt, now)
        })
        .await
    }

    pub async fn login_enroll_kinds(
        &self,
        how: Run,
        caller: u32,
        attempt: String,
    ) -> Result<Vec<String>, WireError> {
        self.run_as(how, caller, move |s, now| {
            s.login_enroll_kinds(caller, &attempt, now)
        })
        .await
    }

    pub async fn login_open_session(
        &self,
        caller: u32,
        login: crate::service::SessionLogin,
        pidfd: std::os::fd::OwnedFd,
    ) -> Result<(String, i64, String), WireError> {
        self.run(caller, move |s, now| {
            s.open_session(caller, &login, pidfd, now)
        })
        .await
    }

    pub async fn login_enroll_begin(
        &self,
        caller: u32,
        attempt: String,
        kind: String,
        phone: String,
    ) -> Result<(String, String, String), WireError> {
        self.run(caller, move |s, now| {
            s.login_enroll_begin(caller, &attempt, &kind, &phone, now)
        })
        .await
    }

    pub async fn login_enroll_resend(
        &self,
        caller: u32,
        attempt: String,
    ) -> Result<String, WireError> {
        self.run(caller, move |s, now| {
            s.login_enroll_resend(caller, &attempt, now)
        })
        .await
    }

    pub async fn login_enroll_confirm(
        &self,
        how: Run,
        caller: u32,
        attempt: String,
        codes: Vec<String>,
    ) -> Result<(AnswerResult, String, Vec<String>), WireError> {
        self.run_as(how, caller, move |s, now| {
            s.login_enroll_confirm(caller, &attempt, &codes, now)
        })
        .await
    }

    pub async fn login_close_session(
        &self,
        how: Run,
        caller: u32,
        session_id: String,
    ) -> Result<(), WireError> {
        self.run_as(how, caller, move |s, now| {
            s.close_session(caller, &session_id, now)
        })
        .await
    }
}

#[interface(name = "org.mfad.Mfa1.Account")]
impl Account {
    #[zbus(out_args("enrollment_id", "uri", "secret"))]
    async fn enroll_totp_begin(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        user: String,
        name: String,
        code: String,
    ) -> Result<(String, String, String), WireError> {
        let caller = self.0.caller(&header, conn).await?;
        self.0
            .run(caller, move |s, now| {
                s.enroll_totp_begin(caller, &user, &name, &code, now)
            })
            .await
    }

    #[zbus(out_args("device_id", "backup_codes"))]
    async fn enroll_totp_confirm(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        user: String,
        enrollment_id: String,
        code1: String,
        code2: String,
    ) -> Result<(String, Vec<String>), WireError> {
        let caller = self.0.caller(&header, conn).await?;
        self.0
            .run(caller, move |s, now| {
                s.enroll_totp_confirm(caller, &user, &enrollment_id, &code1, &code2, now)
            })
            .await
    }

    #[zbus(out_args("enrollment_id", "phone"))]
    async fn enroll_sms_begin(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        user: String,
        phone: String,
        code: String,
    ) -> Result<(String, String), WireError> {
        let caller = self.0.caller(&header, conn).await?;
        self.0
            .run(caller, move |s, now| {
                s.enroll_sms_begin(caller, &user, &phone, &code, now)
            })
            .await
    }

    #[zbus(out_args("phone"))]
    async fn enroll_sms_resend(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        user: String,
        enrollment_id: String,
    ) -> Result<String, WireError> {
        let caller = self.0.caller(&header, conn).await?;
        self.0
            .run(caller, move |s, now| {
                s.enroll_sms_resend(caller, &user, &enrollment_id, now)
            })
            .await
    }

    #[zbus(out_args("device_id", "backup_codes"))]
    async fn enroll_sms_confirm(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        user: String,
        enrollment_id: String,
        code: String,
    ) -> Result<(String, Vec<String>), WireError> {
        let caller = self.0.caller(&header, conn).await?;
        self.0
            .run(caller, move |s, now| {
                s.enroll_sms_confirm(caller, &user, &enrollment_id, &code, now)
            })
            .await
    }

    #[zbus(out_args("phone"))]
    async fn send_code(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        user: String,
    ) -> Result<String, WireError> {
        let caller = self.0.caller(&header, conn).await?;
        self.0
            .run(caller, move |s, now| s.send_code(caller, &user, now))
            .await
    }

    #[zbus(out_args("status"))]
    async fn status(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        user: String,
    ) -> Result<UserStatus, WireError> {
        let caller = self.0.caller(&header, conn).await?;
        self.0
            .run(caller, move |s, _| s.status(caller, &user))
            .await
    }

    async fn remove_device(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        user: String,
        device_id: String,
        code: String,
    ) -> Result<(), WireError> {
        let caller = self.0.caller(&header, conn).await?;
        self.0
            .run(caller, move |s, now| {
                s.remove_device(caller, &user, &device_id, &code, now)
            })
            .await
    }

    #[zbus(out_args("backup_codes"))]
    async fn regenerate_backup_codes(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        user: String,
        code: String,
    ) -> Result<Vec<String>, WireError> {
        let caller = self.0.caller(&header, conn).await?;
        self.0
            .run(caller, move |s, now| {
                s.regenerate_backup_codes(caller, &user, &code, now)
            })
            .await
    }

    #[zbus(out_args("devices"))]
    async fn trusted_devices(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        user: String,
    ) -> Result<Vec<TrustedDevice>, WireError> {
        let caller = self.0.caller(&header, conn).await?;
        self.0
            .run(caller, move |s, _| s.trusted_devices(caller, &user))
            .await
    }

    async fn remove_trusted_device(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        user: String,
        id: String,
    ) -> Result<(), WireError> {
        let caller = self.0.caller(&header, conn).await?;
        self.0
            .run(caller, move |s, _| {
                s.remove_trusted_device(caller, &user, &id)
            })
            .await
    }

    #[zbus(out_args("removed"))]
    async fn remove_all_trusted_devices(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        user: String,
    ) -> Result<u32, WireError> {
        let caller = self.0.caller(&header, conn).await?;
        self.0
            .run(caller, move |s, _| {
                s.remove_all_trusted_devices(caller, &user)
            })
            .await
    }

    #[zbus(out_args("duration"))]
    async fn session_duration(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        user: String,
    ) -> Result<SessionDuration, WireError> {
        let caller = self.0.caller(&header, conn).await?;
        self.0
            .run(caller, move |s, _| s.session_duration(caller, &user))
            .await
    }

    async fn set_session_duration(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        user: String,
        duration: i64,
    ) -> Result<(), WireError> {
        let caller = self.0.caller(&header, conn).await?;
        self.0
            .run(caller, move |s, _| {
                s.set_session_duration(caller, &user, duration)
            })
            .await
    }

    #[zbus(out_args("sessions"))]
    async fn sessions(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        user: String,
    ) -> Result<Vec<SessionInfo>, WireError> {
        let caller = self.0.caller(&header, conn).await?;
        self.0
            .run(caller, move |s, _| s.sessions(caller, &user))
            .await
    }
}

#[interface(name = "org.mfad.Mfa1.Admin")]
impl Admin {
    #[zbus(out_args("users"))]
    async fn list_users(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<UserSummary>, WireError> {
        let caller = self.0.caller(&header, conn).await?;
        self.0.run(caller, move |s, _| s.list_users(caller)).await
    }

    #[zbus(out_args("status"))]
    async fn user_status(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        user: String,
    ) -> Result<UserStatus, WireError> {
        let caller = self.0.caller(&header, conn).await?;
        self.0
            .run(caller, move |s, _| s.user_status(caller, &user))
            .await
    }

    async fn reset(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        user: String,
    ) -> Result<(), WireError> {
        let caller = self.0.caller(&header, conn).await?;
        self.0.run(caller, move |s, _| s.reset(caller, &user)).await
    }

    async fn unlock(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        user: String,
    ) -> Result<(), WireError> {
        let caller = self.0.caller(&header, conn).await?;
        self.0
            .run(caller, move |s, _| s.unlock(caller, &user))
            .await
    }

    #[zbus(out_args("devices"))]
    async fn trusted_devices(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        user: String,
    ) -> Result<Vec<TrustedDevice>, WireError> {
        let caller = self.0.caller(&header, conn).await?;
        self.0
            .run(caller, move |s, _| s.admin_trusted_devices(caller, &user))
            .await
    }

    async fn remove_trusted_device(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        user: String,
        id: String,
    ) -> Result<(), WireError> {
        let caller = self.0.caller(&header, conn).await?;
        self.0
            .run(caller, move |s, _| {
                s.admin_remove_trusted_device(caller, &user, &id)
            })
            .await
    }

    #[zbus(out_args("removed"))]
    async fn remove_all_trusted_devices(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        user: String,
    ) -> Result<u32, WireError> {
        let caller = self.0.caller(&header, conn).await?;
        self.0
            .run(caller, move |s, _| {
                s.admin_remove_all_trusted_devices(caller, &user)
            })
            .await
    }

    #[zbus(out_args("users"))]
    async fn list_missing(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<MissingUser>, WireError> {
        let caller = self.0.caller(&header, conn).await?;
        self.0
            .run(caller, move |s, now| s.list_missing(caller, now))
            .await
    }

    async fn remove_device(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        user: String,
        device_id: String,
    ) -> Result<(), WireError> {
        let caller = self.0.caller(&header, conn).await?;
        self.0
            .run(caller, move |s, _| {
                s.admin_remove_device(caller, &user, &device_id)
            })
            .await
    }

    #[zbus(out_args("sessions"))]
    async fn sessions(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        user: String,
    ) -> Result<Vec<SessionInfo>, WireError> {
        let caller = self.0.caller(&header, conn).await?;
        self.0
            .run(caller, move |s, _| s.admin_sessions(caller, &user))
            .await
    }

    async fn end_session(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        session_id: String,
    ) -> Result<(), WireError> {
        let caller = self.0.caller(&header, conn).await?;
        self.0
            .run(caller, move |s, now| {
                s.end_session(caller, &session_id, now)
            })
            .await
    }

    #[zbus(out_args("ended"))]
    async fn end_sessions(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        user: String,
    ) -> Result<u32, WireError> {
        let caller = self.0.caller(&header, conn).await?;
        self.0
            .run(caller, move |s, now| s.end_sessions(caller, &user, now))
            .await
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::{Config, LogTarget};
    use crate::service::Core;
    use crate::store::sqlite::SqliteStore;
    use crate::users::Fake;
    use mfa_api::{AccountProxy, AdminProxy};

    const OTHER_UID: u32 = 4242;

    /// A context over a service with `users` and `config` and an
    /// in-memory store, on the current runtime.
    pub(crate) fn context(users: Fake, mut config: Config) -> Arc<Context> {
        config.daemon.log = LogTarget::Stderr;
        let service = Arc::new(Service::new(Core {
            config,
            issuer: "test-host".into(),
            store: Arc::new(SqliteStore::open_in_memory().unwrap()),
            audit: Arc::new(crate::audit::Audit::new(LogTarget::Stderr)),
            users: Box::new(users),
            random: Box::new(crate::random::Os),
            keys: Arc::new(crate::seal::Keys::for_tests()),
            sms: None,
        }));
        Context::new(service, tokio::runtime::Handle::current())
    }

    /// A service over `users` and `config`, served on one end of a socket
    /// pair: (the server's connection, the client's).
    async fn peer(users: Fake, config: Config) -> (Connection, Connection) {
        let ctx = context(users, config);
        let (server_end, client_end) = UnixStream::pair().unwrap();
        let client = zbus::connection::Builder::unix_stream(client_end)
            .p2p()
            .build();
        let (server, client) = tokio::join!(serve_peer(ctx, server_end), client);
        (server.unwrap(), client.unwrap())
    }

    /// No bus and no sender name: the UID the handlers act for is the one
    /// the kernel gives for the socket's other end, this test's own.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_peer_to_peer_caller_is_known_by_its_socket_credentials() {
        let me = nix::unistd::getuid().as_raw();
        let own = if me == 0 { "root" } else { "me" };
        let mut users = Fake::default()
            .with("root", 0, &["root"])
            .with("other", OTHER_UID, &[]);
        if me != 0 {
            users = users.with(own, me, &[]);
        }
        let (_server, client) = peer(users, Config::default()).await;
        assert!(!client.is_bus());

        let account = AccountProxy::builder(&client)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .unwrap();
        let status = account.status(own).await.unwrap();
        assert_eq!(status.user, own);
        assert!(!status.enrolled);

        // Another user's account and the Admin interface are root's only.
        let admin = AdminProxy::builder(&client)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .unwrap();
        let theirs = account.status("other").await;
        let listed = admin.list_users().await;
        if me == 0 {
            assert_eq!(theirs.unwrap().user, "other");
            assert!(listed.unwrap().is_empty());
        } else {
            assert!(
                matches!(theirs, Err(WireError::AccessDenied(_))),
                "{theirs:?}"
            );
            assert!(
                matches!(listed, Err(WireError::AccessDenied(_))),
                "{listed:?}"
            );
        }
    }

    /// Enrollment at login over a peer-to-peer connection (the Login
    /// interface served on a private socket): root's Begin answers enroll
    /// and the Enroll* calls work on its attempt; anyone else is refused.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn enrollment_at_login_works_peer_to_peer() {
        let me = nix::unistd::getuid().as_raw();
        let mut config = Config::default();
        config.policy.mode = crate::policy::Mode::Required;
        let users = Fake::default()
            .with("root", 0, &["root"])
            .with("other", OTHER_UID, &[]);
        let (_server, client) = peer(users, config).await;
        let login = mfa_api::LoginProxy::builder(&client)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .unwrap();
        let begun = login.begin("other", "sshd", "", "", "").await;
        if me != 0 {
            assert!(
                matches!(begun, Err(WireError::AccessDenied(_))),
                "{begun:?}"
            );
            return;
        }
        let (action, attempt, _) = begun.unwrap();
        assert_eq!(action, mfa_api::BeginAction::Enroll);
        assert_eq!(login.enroll_kinds(&attempt).await.unwrap(), ["totp"]);
        let (uri, secret, _) = login.enroll_begin(&attempt, "totp", "").await.unwrap();
        assert!(uri.contains(&secret), "{uri}");
        let (result, _, codes) = login
            .enroll_confirm(&attempt, &["000000", "000001"])
            .await
            .unwrap();
        assert_eq!((result, codes.len()), (AnswerResult::Retry, 0));
    }
}
