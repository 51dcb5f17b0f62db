//! Session duration: limited login sessions, from `Login.OpenSession` to
//! their end. Each live session has a timer task on the daemon's runtime
//! that warns on its terminal and ends it on time (logind, else SIGHUP,
//! SIGTERM after 10 s, SIGKILL), or forgets it when its process exits
//! first. The record is in the store, so a restarted mfad re-arms it
//! ([`Sessions::rearm`]) once the process is found to be the same one (its
//! start time). When to warn and how long a session lasts is
//! [`crate::session_time`].

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use mfa_api::{SessionDuration, SessionInfo};
use rustix::process::Signal;
use tokio::sync::Notify;

use super::attempts::Passed;
use super::authz::{AccountGrant, AdminGrant, SessionCloser};
use super::{lock, Core};
use crate::audit::Audit;
use crate::error::{Error, Result};
use crate::process::{self, Tree};
use crate::random;
use crate::session_time::{self, Event};
use crate::store::{SessionRecord, Store};

/// How long each signal gets before the next, stronger one.
const SIGNAL_GRACE: Duration = Duration::from_secs(10);
/// How often the end checks whether the session's processes are gone.
const POLL: Duration = Duration::from_millis(100);
/// How often a live session's process is checked for having exited (its
/// record then goes).
const WATCH: Duration = Duration::from_secs(1);

/// Why a session ended.
#[derive(Debug, Clone, Copy)]
enum Why {
    TimeUp,
    Admin,
}

/// A session's timer task.
struct Armed {
    task: tokio::task::AbortHandle,
    end_now: Arc<Notify>,
    /// The end has begun: a close_session (the login program noticing its
    /// child died of the SIGHUP) must not stop it before SIGTERM and
    /// SIGKILL reach what ignored the SIGHUP.
    ending: Arc<AtomicBool>,
}

/// The timers of the live sessions.
#[derive(Default)]
pub struct Sessions {
    runtime: OnceLock<tokio::runtime::Handle>,
    armed: Arc<Mutex<HashMap<String, Armed>>>,
}

/// What a timer task needs of the core, kept beyond one call.
#[derive(Clone)]
struct Ender {
    store: Arc<dyn Store>,
    audit: Arc<Audit>,
    armed: Arc<Mutex<HashMap<String, Armed>>>,
}

impl Sessions {
    pub fn new() -> Sessions {
        Sessions::default()
    }

    /// From now on, sessions are armed on `runtime`. Before this (unit
    /// tests), they are recorded only.
    pub fn start(&self, runtime: tokio::runtime::Handle) {
        let _ = self.runtime.set(runtime);
    }

    fn ender(&self, core: &Core) -> Ender {
        Ender {
            store: core.store.clone(),
            audit: core.audit.clone(),
            armed: self.armed.clone(),
        }
    }

    /// `Login.OpenSession` for a login that passed (None: it did not, and
    /// the session is not limited): the record, its timer, and the id,
    /// end time and message for the user.
    pub fn open(
        &self,
        core: &Core,
        passed: Option<Passed>,
        tty: &str,
        xdg_session_id: &str,
        pidfd: OwnedFd,
        now: i64,
    ) -> Result<(String, i64, String)> {
        let Some(login) = passed else {
            return Ok((String::new(), 0, String::new()));
        };
        let uid = login.account.uid;
        let chosen = core.store.session_choice(uid)?;
        let Some(duration) = session_time::duration(&core.config.session, chosen) else {
            return Ok((String::new(), 0, String::new()));
        };
        let (pid, start, owner) = identify(&pidfd)?;
        // Only root may hand over another user's process to be ended.
        if login.caller != 0 && owner != login.caller {
            return Err(Error::AccessDenied(
                "The session's process is not yours.".into(),
            ));
        }
        let record = SessionRecord {
            id: random::hex(core.random.as_ref(), 6)?,
            uid,
            user: login.account.name.clone(),
            service: login.service.clone(),
            tty: if tty.is_empty() {
                login.tty.clone()
            } else {
                tty.to_string()
            },
            rhost: login.rhost.clone(),
            xdg_session_id: xdg_session_id.to_string(),
            pid,
            pid_start: start,
            started: now,
            ends: now.saturating_add(duration),
        };
        core.store.add_session(&record)?;
        let ends = record.ends.to_string();
        let secs = duration.to_string();
        core.audit.info(
            "session opened",
            &[
                ("user", &record.user),
                ("service", &record.service),
                ("rhost", &record.rhost),
                ("tty", &record.tty),
                ("session", &record.id),
                ("duration_secs", &secs),
                ("ends", &ends),
            ],
        );
        let (id, ends) = (record.id.clone(), record.ends);
        self.arm(core, record, pidfd, now);
        Ok((
            id,
            ends,
            format!(
                "This session lasts {} (session duration).",
                session_time::human(duration)
            ),
        ))
    }

    /// `Login.CloseSession`: the login program closed it.
    pub fn close(&self, core: &Core, _grant: &SessionCloser, id: &str, now: i64) -> Result<()> {
        let Some(record) = find(core, id)? else {
            return Ok(());
        };
        {
            let mut armed = lock(&self.armed);
            if armed
                .get(id)
                .is_some_and(|a| a.ending.load(Ordering::SeqCst))
            {
                // Its end finishes the job and removes the record.
                return Ok(());
            }
            if let Some(a) = armed.remove(id) {
                a.task.abort();
            }
        }
        self.ender(core).forget(&record, "session closed", now);
        Ok(())
    }

    /// Arms the timer of `record`; without a runtime (unit tests) nothing.
    fn arm(&self, core: &Core, record: SessionRecord, pidfd: OwnedFd, now: i64) {
        let Some(rt) = self.runtime.get() else {
            return;
        };
        let end_now = Arc::new(Notify::new());
        let ending = Arc::new(AtomicBool::new(false));
        let ender = self.ender(core);
        let id = record.id.clone();
        // Held across the spawn, so the task cannot look for its entry
        // before it is there.
        let mut armed = lock(&self.armed);
        let task = rt.spawn(ender.run(record, pidfd, (end_now.clone(), ending.clone()), now));
        armed.insert(
            id,
            Armed {
                task: task.abort_handle(),
                end_now,
                ending,
            },
        );
    }

    /// After a start: every recorded session whose process is still the
    /// same one is armed again; the others ended while mfad was down.
    pub fn rearm(&self, core: &Core, now: i64) -> Result<()> {
        for record in core.store.sessions()? {
            match process::reopen(record.pid, record.pid_start) {
                Some(pidfd) => {
                    let ends = record.ends.to_string();
                    core.audit.info(
                        "session re-armed",
                        &[
                            ("user", &record.user),
                            ("service", &record.service),
                            ("session", &record.id),
                            ("ends", &ends),
                        ],
                    );
                    self.arm(core, record, pidfd, now);
                }
                None => self
                    .ender(core)
                    .forget(&record, "session gone while mfad was down", now),
            }
        }
        Ok(())
    }

    /// Ends a session now, as its end time would. False if there is none.
    fn end_now(&self, core: &Core, record: &SessionRecord, now: i64) -> bool {
        if let Some(armed) = lock(&self.armed).get(&record.id) {
            armed.end_now.notify_one();
            return true;
        }
        // Not armed (its process could not be found): nothing to end.
        self.ender(core).forget(record, "session ended", now);
        true
    }

    /// `Admin.EndSession`.
    pub fn end(&self, core: &Core, grant: &AdminGrant, id: &str, now: i64) -> Result<()> {
        let Some(record) = find(core, id)? else {
            return Err(Error::NotFound("No such session.".into()));
        };
        grant.to_change(core, &record.user)?;
        self.end_now(core, &record, now);
        Ok(())
    }

    /// `Admin.EndSessions`: every session of the account.
    pub fn end_all(&self, core: &Core, uid: u32, now: i64) -> Result<u32> {
        let mut n = 0;
        for record in core.store.sessions()?.iter().filter(|r| r.uid == uid) {
            if self.end_now(core, record, now) {
                n += 1;
            }
        }
        Ok(n)
    }
}

/// The process behind a pidfd, its start time and its owner, all read
/// while it runs (so the PID is still its own).
fn identify(pidfd: &OwnedFd) -> Result<(i32, u64, u32)> {
    let gone = || Error::InvalidArgument("The session's process is not running.".into());
    let pid = process::pid_of(pidfd.as_fd()).map_err(|_| gone())?;
    let start = process::stat(pid).ok_or_else(gone)?.start;
    let owner = process::uid(pid).ok_or_else(gone)?;
    if !process::alive(pidfd.as_fd()) {
        return Err(gone());
    }
    Ok((pid, start, owner))
}

fn find(core: &Core, id: &str) -> Result<Option<SessionRecord>> {
    Ok(core.store.sessions()?.into_iter().find(|r| r.id == id))
}

fn info(r: &SessionRecord) -> SessionInfo {
    SessionInfo {
        id: r.id.clone(),
        user: r.user.clone(),
        service: r.service.clone(),
        tty: r.tty.clone(),
        rhost: r.rhost.clone(),
        started: r.started,
        ends: r.ends,
    }
}

/// `Account.Sessions` and `Admin.Sessions` (all users for None).
pub fn list(core: &Core, uid: Option<u32>) -> Result<Vec<SessionInfo>> {
    Ok(core
        .store
        .sessions()?
        .iter()
        .filter(|r| uid.is_none_or(|u| r.uid == u))
        .map(info)
        .collect())
}

/// `Account.SessionDuration`.
pub fn duration(core: &Core, grant: &AccountGrant) -> Result<SessionDuration> {
    let chosen = core.store.session_choice(grant.uid())?;
    let config = &core.config.session;
    Ok(SessionDuration {
        user: grant.user().to_string(),
        duration: session_time::duration(config, chosen).unwrap_or(0),
        chosen: chosen.unwrap_or(0),
        limit: config.limit_secs(),
        user_choice: config.user_choice,
    })
}

/// `Account.SetSessionDuration`: 0 goes back to the limit.
pub fn choose(core: &Core, grant: &AccountGrant, secs: i64) -> Result<()> {
    if grant.uid() == super::authz::UNKNOWN_UID {
        return Err(Error::NotFound("No such user.".into()));
    }
    if secs == 0 {
        return Ok(core.store.set_session_choice(grant.uid(), None)?);
    }
    session_time::check_choice(&core.config.session, secs).map_err(Error::InvalidArgument)?;
    core.store.set_session_choice(grant.uid(), Some(secs))?;
    core.audit.info(
        "session duration chosen",
        &[("user", grant.user()), ("duration_secs", &secs.to_string())],
    );
    Ok(())
}

impl Ender {
    /// The timer of one session: its warnings, then its end; or its
    /// process exits first and it is forgotten.
    async fn run(
        self,
        record: SessionRecord,
        pidfd: OwnedFd,
        (end_now, ending): (Arc<Notify>, Arc<AtomicBool>),
        now: i64,
    ) {
        let duration = record.ends - record.started;
        let mut why = Why::TimeUp;
        for event in session_time::schedule(record.started, record.ends, now) {
            tokio::select! {
                _ = tokio::time::sleep(until(event.at())) => {}
                _ = exited(&pidfd) => {
                    let (me, r) = (self.clone(), record.clone());
                    blocking(move || me.forget(&r, "session closed", crate::dbus::now())).await;
                    self.disarm(&record.id);
                    return;
                }
                _ = end_now.notified() => {
                    why = Why::Admin;
                    break;
                }
            }
            if let Event::Warn { left, .. } = event {
                self.warn(&record, left, duration);
            }
        }
        ending.store(true, Ordering::SeqCst);
        self.end(&record, &pidfd, why).await;
        self.disarm(&record.id);
    }

    fn disarm(&self, id: &str) {
        lock(&self.armed).remove(id);
    }

    /// Writes the warning on the session's terminal: the one PAM named, or
    /// else the one its processes have.
    fn warn(&self, r: &SessionRecord, left: i64, duration: i64) {
        let tty = process::tty_of(&r.tty).or_else(|| {
            let members = Tree::default().members(r.pid, r.uid);
            Tree::terminal(&members, r.uid)
        });
        let Some(tty) = tty else {
            return;
        };
        if let Err(e) = process::write_tty(&tty, r.uid, &session_time::warning(left, duration)) {
            self.audit.warn(
                "session warning not shown",
                &[("session", &r.id), ("tty", &tty), ("error", &e.to_string())],
            );
        }
    }

    /// Ends the session: logind when it knows the session, else signals to
    /// the registered process and everything it runs. Logged, then
    /// forgotten.
    async fn end(&self, r: &SessionRecord, pidfd: &OwnedFd, why: Why) {
        let now = crate::dbus::now();
        let secs = (now - r.started).to_string();
        self.audit.info(
            "session ended",
            &[
                ("user", &r.user),
                ("service", &r.service),
                ("rhost", &r.rhost),
                ("session", &r.id),
                ("duration_secs", &secs),
                (
                    "reason",
                    match why {
                        Why::TimeUp => "session duration reached",
                        Why::Admin => "ended by an administrator",
                    },
                ),
            ],
        );
        let mut tree = Tree::default();
        if !r.xdg_session_id.is_empty()
            && logind_terminate(&r.xdg_session_id, r.pid).await
            && gone(&mut tree, r, pidfd).await
        {
            self.remove_blocking(r).await;
            return;
        }
        for signal in [Signal::HUP, Signal::TERM, Signal::KILL] {
            let members = tree.members(r.pid, r.uid);
            let _ = process::pidfd_signal(pidfd.as_fd(), signal);
            Tree::signal(&members, signal);
            if gone(&mut tree, r, pidfd).await {
                break;
            }
        }
        self.remove_blocking(r).await;
    }

    /// [`Ender::remove`] off the runtime's threads: a store may block
    /// (PostgreSQL runs its calls on this runtime).
    async fn remove_blocking(&self, r: &SessionRecord) {
        let (me, r) = (self.clone(), r.clone());
        blocking(move || me.remove(&r)).await;
    }

    fn remove(&self, r: &SessionRecord) {
        if let Err(e) = self.store.remove_session(&r.id) {
            self.audit.warn(
                "session record not removed",
                &[("session", &r.id), ("error", &e.to_string())],
            );
        }
    }

    /// Removes the record and logs `event` once (only if it was there).
    fn forget(&self, r: &SessionRecord, event: &str, now: i64) {
        match self.store.remove_session(&r.id) {
            Ok(true) => {
                let secs = (now - r.started).to_string();
                self.audit.info(
                    event,
                    &[
                        ("user", &r.user),
                        ("service", &r.service),
                        ("rhost", &r.rhost),
                        ("session", &r.id),
                        ("duration_secs", &secs),
                    ],
                );
            }
            Ok(false) => {}
            Err(e) => self.audit.warn(
                "session record not removed",
                &[("session", &r.id), ("error", &e.to_string())],
            ),
        }
    }
}

/// Runs `f` on the blocking pool and waits for it.
async fn blocking(f: impl FnOnce() + Send + 'static) {
    let _ = tokio::task::spawn_blocking(f).await;
}

/// The time from now to Unix time `at`, to the millisecond.
fn until(at: i64) -> Duration {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Duration::from_secs(u64::try_from(at).unwrap_or(0)).saturating_sub(now)
}

/// Returns once the process has exited (checked each [`WATCH`]).
async fn exited(pidfd: &OwnedFd) {
    while process::alive(pidfd.as_fd()) {
        tokio::time::sleep(WATCH).await;
    }
}

/// Waits up to [`SIGNAL_GRACE`] for the registered process and everything
/// it ran to be gone.
async fn gone(tree: &mut Tree, r: &SessionRecord, pidfd: &OwnedFd) -> bool {
    let deadline = tokio::time::Instant::now() + SIGNAL_GRACE;
    loop {
        if !process::alive(pidfd.as_fd()) && tree.members(r.pid, r.uid).is_empty() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Asks systemd-logind, when it runs, to terminate session `id`; false when
/// it does not run, refuses, or `id` is not the logind session of `pid`
/// (the signals then do it). The id came from the PAM environment, which
/// the user may fill (pam_env's user_readenv): only the session that holds
/// the registered process is ever ended through logind.
async fn logind_terminate(id: &str, pid: i32) -> bool {
    const LOGIN1: &str = "org.freedesktop.login1";
    if !std::path::Path::new("/run/systemd/seats").is_dir() {
        return false;
    }
    let Ok(pid) = u32::try_from(pid) else {
        return false;
    };
    let call = async {
        let conn = mfa_api::connect("system").await?;
        let path: zbus::OwnedObjectPath = conn
            .call_method(
                Some(LOGIN1),
                "/org/freedesktop/login1",
                Some("org.freedesktop.login1.Manager"),
                "GetSessionByPID",
                &(pid,),
            )
            .await?
            .body()
            .deserialize()?;
        let holder: zbus::OwnedVariant = conn
            .call_method(
                Some(LOGIN1),
                path.as_str(),
                Some("org.freedesktop.DBus.Properties"),
                "Get",
                &("org.freedesktop.login1.Session", "Id"),
            )
            .await?
            .body()
            .deserialize()?;
        if String::try_from(holder).ok().as_deref() != Some(id) {
            return Err(zbus::Error::Failure(
                "not the logind session of the process".into(),
            ));
        }
        conn.call_method(
            Some("org.freedesktop.login1"),
            "/org/freedesktop/login1",
            Some("org.freedesktop.login1.Manager"),
            "TerminateSession",
            &(id,),
        )
        .await
        .map(|_| ())
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), call).await,
        Ok(Ok(()))
    )
}
