//! The daemon side of an authentication (`Login.Begin`, `Login.Answer`)
//! and of an account check (`Login.AccountCheck`) on org.mfad.Mfa1.
//! [`Daemon`] is the trait the state machine uses; [`BusDaemon`] is the
//! real client.
//!
//! One connection per authentication or account check, on a private
//! runtime (see [`crate::runtime`]): connect + Begin (or AccountCheck) run
//! in one `block_on` under one deadline, each Answer in its own `block_on`
//! under its own; the conversation happens in between, outside any
//! `block_on` and outside any timeout. [`BusDaemon::close`] (or dropping it) closes the connection and
//! then the runtime, leaving no thread and no descriptor behind.

use std::future::Future;
use std::time::{Duration, Instant};

use mfa_api::{AccountAction, AnswerResult, BeginAction, LoginProxy};
use zbus::proxy::CacheProperties;

use crate::error::Error;
use crate::runtime::PrivateRuntime;

/// What `Login.Begin` is told.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BeginRequest {
    pub user: String,
    pub service: String,
    pub rhost: String,
    pub tty: String,
    /// sshd's `SSH_AUTH_INFO_0`, or empty.
    pub auth_info: String,
}

/// `Login.Begin`'s answer: action, attempt token, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeginReply {
    pub action: BeginAction,
    /// For `Answer` and `AccountCheck`; a bearer token, never logged.
    pub attempt: String,
    pub message: String,
}

/// `Login.Answer`'s answer: result, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerReply {
    pub result: AnswerResult,
    pub message: String,
}

/// `Login.AccountCheck`'s answer: `allow`, `ignore` or `deny`, and a
/// message (why denied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountReply {
    pub action: AccountAction,
    pub message: String,
}

/// mfad as the state machine sees it.
pub trait Daemon {
    fn begin(&mut self, request: &BeginRequest) -> Result<BeginReply, Error>;
    fn answer(&mut self, attempt: &str, code: &[u8]) -> Result<AnswerReply, Error>;
    /// `attempt` is the token Begin returned in the auth phase, or empty.
    fn account_check(
        &mut self,
        user: &str,
        service: &str,
        attempt: &str,
    ) -> Result<AccountReply, Error>;
}

/// The real client over D-Bus.
pub struct BusDaemon {
    /// Declared before `runtime`: fields drop in order, and the connection
    /// (whose tasks run on the runtime) must go first.
    proxy: Option<LoginProxy<'static>>,
    runtime: Option<zruntime::SharedRuntime>,
    address: String,
    timeout: Duration,
}

impl BusDaemon {
    /// Connects lazily, on the first `begin` or `account_check`. `address`
    /// is "system" or a `unix:` D-Bus address; `timeout` bounds each wait
    /// for mfad.
    pub fn new(address: &str, timeout: Duration) -> BusDaemon {
        BusDaemon {
            proxy: None,
            runtime: None,
            address: address.to_string(),
            timeout,
        }
    }

    /// Closes the connection and drops the runtime.
    pub fn close(mut self) {
        if let (Some(proxy), Some(rt)) = (self.proxy.take(), self.runtime.as_ref()) {
            let conn = proxy.inner().connection().clone();
            drop(proxy);
            // Closing waits for nobody but the socket; bounded all the same.
            // The result does not matter: dropping closes the socket anyway.
            let bound = self.timeout.min(Duration::from_secs(1));
            let _ = rt.block_on(rt.timeout(bound, conn.close()));
        }
        // Dropping `self` releases the runtime.
    }

    /// Opens a new connection and makes the first call on it (`what`, for
    /// messages), connecting and calling under one deadline. A new start on
    /// the same client starts over on a new connection.
    fn start<T, F, Fut>(&mut self, what: &str, call: F) -> Result<T, Error>
    where
        F: FnOnce(LoginProxy<'static>) -> Fut,
        Fut: Future<Output = Result<T, mfa_api::Error>>,
    {
        self.proxy = None;
        self.runtime = None;
        let address = bus_address(&self.address)?;
        let rt = zruntime::SharedRuntime::new()
            .map_err(|e| Error::Unavailable(format!("cannot create an event loop: {e}")))?;
        let deadline = deadline_after(self.timeout);
        let timeout = self.timeout;
        let result = rt.block_on(async {
            let build = zbus::connection::Builder::address(address.as_str())
                .runtime(PrivateRuntime(rt.clone()))
                .build();
            let conn = rt
                .timeout_at(deadline, build)
                .await
                .map_err(|_| timed_out("connecting to the bus", timeout))?
                .map_err(|e| Error::Unavailable(format!("cannot connect to {address}: {e}")))?;
            let proxy: LoginProxy<'static> = LoginProxy::builder(&conn)
                .cache_properties(CacheProperties::No)
                .build()
                .await
                .map_err(|e| Error::Unavailable(e.to_string()))?;
            let reply = rt
                .timeout_at(deadline, call(proxy.clone()))
                .await
                .map_err(|_| timed_out(what, timeout))?
                .map_err(Error::from_api)?;
            Ok((proxy, reply))
        });
        // On error the connection, if any, went with the future; the
        // runtime goes here.
        let (proxy, reply) = result?;
        self.proxy = Some(proxy);
        self.runtime = Some(rt);
        Ok(reply)
    }

    fn connected(&self) -> Result<(&LoginProxy<'static>, &zruntime::SharedRuntime), Error> {
        match (&self.proxy, &self.runtime) {
            (Some(p), Some(rt)) => Ok((p, rt)),
            _ => Err(Error::Unavailable("not connected to mfad".into())),
        }
    }
}

impl Daemon for BusDaemon {
    fn begin(&mut self, req: &BeginRequest) -> Result<BeginReply, Error> {
        let (action, attempt, message) = self.start("Login.Begin", |proxy| async move {
            proxy
                .begin(
                    &req.user,
                    &req.service,
                    &req.rhost,
                    &req.tty,
                    &req.auth_info,
                )
                .await
        })?;
        Ok(BeginReply {
            action,
            attempt,
            message,
        })
    }

    fn answer(&mut self, attempt: &str, code: &[u8]) -> Result<AnswerReply, Error> {
        let timeout = self.timeout;
        let (proxy, rt) = self.connected()?;
        rt.block_on(async {
            let (result, message) = rt
                .timeout(timeout, proxy.answer(attempt, code))
                .await
                .map_err(|_| timed_out("Login.Answer", timeout))?
                .map_err(Error::from_api)?;
            Ok(AnswerReply { result, message })
        })
    }

    fn account_check(
        &mut self,
        user: &str,
        service: &str,
        attempt: &str,
    ) -> Result<AccountReply, Error> {
        let (action, message) = self.start("Login.AccountCheck", |proxy| async move {
            proxy.account_check(user, service, attempt).await
        })?;
        Ok(AccountReply { action, message })
    }
}

/// The D-Bus address to connect to: "system" is the system bus socket;
/// anything else must be a `unix:` address. Other transports are refused:
/// mfad authorizes callers by their Unix uid, which only a unix socket
/// carries, and TCP would need name lookups on worker threads.
pub fn bus_address(bus: &str) -> Result<String, Error> {
    let address = mfa_api::bus_address(bus);
    if !address.starts_with("unix:") || address.contains(';') {
        return Err(Error::Unavailable(format!(
            "bus={address} is not a single unix: D-Bus address"
        )));
    }
    Ok(address.to_string())
}

fn timed_out(what: &str, timeout: Duration) -> Error {
    Error::Unavailable(format!(
        "no answer from mfad within {}s ({what})",
        timeout.as_secs()
    ))
}

/// `timeout` from now; a timeout too long for the clock never fires.
fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(Duration::from_secs(86_400)))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unix_addresses_are_accepted() {
        assert_eq!(
            bus_address("system").unwrap(),
            "unix:path=/run/dbus/system_bus_socket"
        );
        assert_eq!(
            bus_address("unix:path=/tmp/x/bus").unwrap(),
            "unix:path=/tmp/x/bus"
        );
        assert_eq!(
            bus_address("unix:abstract=mfa").unwrap(),
            "unix:abstract=mfa"
        );
        for bad in [
            "tcp:host=127.0.0.1,port=4000",
            "session",
            "",
            "unix:path=/a;unix:path=/b",
            "/run/dbus/system_bus_socket",
        ] {
            assert!(
                matches!(bus_address(bad), Err(Error::Unavailable(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn answer_before_begin_is_unavailable() {
        let mut d = BusDaemon::new("unix:path=/nonexistent", Duration::from_secs(1));
        assert!(matches!(d.answer("x", b"1"), Err(Error::Unavailable(_))));
        d.close();
    }

    #[test]
    fn a_missing_socket_is_unavailable_at_once() {
        let mut d = BusDaemon::new("unix:path=/nonexistent/bus", Duration::from_secs(5));
        let t = Instant::now();
        let r = d.begin(&BeginRequest::default());
        assert!(
            matches!(r, Err(Error::Unavailable(ref m)) if m.contains("cannot connect")),
            "{r:?}"
        );
        assert!(t.elapsed() < Duration::from_secs(2));
        d.close();
    }

    #[test]
    fn account_check_without_a_bus_is_unavailable_at_once() {
        let mut d = BusDaemon::new("unix:path=/nonexistent/bus", Duration::from_secs(5));
        let t = Instant::now();
        let r = d.account_check("alice", "sshd", "");
        assert!(
            matches!(r, Err(Error::Unavailable(ref m)) if m.contains("cannot connect")),
            "{r:?}"
        );
        assert!(t.elapsed() < Duration::from_secs(2));
        d.close();
    }

    #[test]
    fn deadlines_never_overflow() {
        let _ = deadline_after(Duration::MAX);
        let d = deadline_after(Duration::from_secs(2));
        assert!(d > Instant::now());
    }
}
