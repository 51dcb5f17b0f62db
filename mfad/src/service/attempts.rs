//! Login attempts: one per `Login.Begin`, answered with codes until it is
//! verified, refused or expired, then collected once by the account phase
//! (`Login.AccountCheck`), which is where a device becomes trusted. Attempts
//! live in memory only: a restart ends them (the login fails closed).

use std::collections::HashMap;
use std::sync::Mutex;

use mfa_api::{AccountAction, AnswerResult, BeginAction};

use super::authz::LoginGrant;
use super::verify::{self, Check, MSG_WRONG, MSG_WRONG_RETRY};
use super::{lock, owned_state, sms, Core, LoginRequest};
use crate::error::{Error, Result};
use crate::factor::Kind;
use crate::policy::{self, Decision, Need};
use crate::random;
use crate::ratelimit::RateLimit;
use crate::store::{Trusted, UserState};
use crate::trust::{self, Identity, Lifetime};
use crate::users::Account;

/// Tries per attempt before the module is told to give up.
pub const TRIES: u32 = 3;
/// An attempt lives this long (sshd's LoginGraceTime is 2 minutes).
const ATTEMPT_SECS: i64 = 300;
/// A verified attempt waits this long for the account phase.
const VERIFIED_SECS: i64 = 600;
/// Bound on the attempts a caller can make us hold.
pub(super) const MAX_ATTEMPTS: usize = 10_000;
/// Non-root callers (screen lockers) may start this many logins a minute.
const SELF_LOGINS_PER_MINUTE: u32 = 10;

pub const PROMPT: &str = "Verification code: ";
/// The prompt for a user with an app and a phone.
pub const PROMPT_APP_OR_SMS: &str = "Verification code (press Enter to get a code by SMS): ";
const MSG_TRUSTED: &str = "This device is trusted; no verification code needed.";
pub const MSG_NOT_VERIFIED: &str = "2-step verification did not take place in this login.";
/// What a user who enrolls inside the login is told first.
pub const MSG_ENROLL: &str =
    "2-step verification is required for this account and not set up yet: set it up now.";
/// Devices an enrolling login may start, at most (an SMS number mistyped,
/// a change of mind).
const ENROLL_BEGINS: u32 = 3;

/// An attempt's token: 16 random bytes, 32 hex digits to the module. The
/// tables hold the bytes (up to [`MAX_ATTEMPTS`] of them).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Token([u8; 16]);

impl Token {
    /// A new token, and the text the module gets.
    fn new(random: &dyn random::Random) -> Result<(Token, String)> {
        let mut bytes = [0u8; 16];
        random.fill(&mut bytes)?;
        Ok((Token(bytes), random::to_hex(&bytes)))
    }

    /// The token `text` names; None when no token looks like it (so it
    /// names no attempt).
    fn parse(text: &str) -> Option<Token> {
        random::from_hex(text).map(Token)
    }
}

/// Kept small: a table can hold [`MAX_ATTEMPTS`] of them (verified
/// attempts wait up to [`VERIFIED_SECS`] for an account phase that some
/// stacks never run), and each counts in mfad's memory.
struct Attempt {
    uid: u32,
    caller: u32,
    labels: Labels,
    /// The device to trust once the login passed (None: never trusted).
    identity: Option<Box<Identity>>,
    tries: u32,
    /// Passed the code step (or came from a trusted device): waits for
    /// `AccountCheck`, and takes no more answers.
    verified: bool,
    expires: i64,
    /// Begun with `enroll`: takes enrollment calls, never answers.
    enroll: Option<Box<Enrolling>>,
}

impl Attempt {
    fn account(&self) -> Account {
        Account {
            uid: self.uid,
            name: self.labels.name().to_string(),
        }
    }

    /// Begun for `account` (its UID under the same name).
    fn is_for(&self, account: &Account) -> bool {
        self.uid == account.uid && self.labels.name() == account.name
    }

    fn passed(&self, expires: i64) -> Passed {
        let Origin {
            account,
            service,
            rhost,
            tty,
        } = self.origin();
        Passed {
            account,
            caller: self.caller,
            service,
            rhost,
            tty,
            expires,
        }
    }

    fn origin(&self) -> Origin {
        Origin {
            account: self.account(),
            service: self.labels.service().to_string(),
            rhost: self.labels.rhost().to_string(),
            tty: self.labels.tty().to_string(),
        }
    }
}

/// An attempt's account name, service, remote host and tty, in one
/// allocation.
struct Labels {
    text: Box<str>,
    /// Where the name, the service and the remote host end in `text`.
    ends: [u32; 3],
}

impl Labels {
    fn new(parts: [&str; 4]) -> Labels {
        let mut text = String::with_capacity(parts.iter().map(|p| p.len()).sum());
        let mut ends = [0; 3];
        for (i, part) in parts.iter().enumerate() {
            text.push_str(part);
            if let Some(end) = ends.get_mut(i) {
                // Parts come from one D-Bus message: far below 4 GiB.
                *end = u32::try_from(text.len()).unwrap_or(u32::MAX);
            }
        }
        Labels {
            text: text.into_boxed_str(),
            ends,
        }
    }

    fn part(&self, i: usize) -> &str {
        let start = i
            .checked_sub(1)
            .and_then(|j| self.ends.get(j))
            .map_or(0, |&e| e as usize);
        let end = self.ends.get(i).map_or(self.text.len(), |&e| e as usize);
        self.text.get(start..end).unwrap_or("")
    }

    fn name(&self) -> &str {
        self.part(0)
    }

    fn service(&self) -> &str {
        self.part(1)
    }

    fn rhost(&self) -> &str {
        self.part(2)
    }

    fn tty(&self) -> &str {
        self.part(3)
    }
}

/// What a new attempt waits for.
pub(super) enum Stage {
    /// A code (Answer).
    Code,
    /// The account phase: it needs no code (a trusted device).
    Verified,
    /// Enrollment calls: the user sets up a device inside the login.
    Enroll,
}

/// An attempt whose user enrolls inside the login.
#[derive(Default)]
struct Enrolling {
    /// The pending enrollment it started (in `Enrollments`), if any.
    pending: Option<(Kind, String)>,
    begins: u32,
}

/// Where an attempt comes from, for the audit log.
struct Origin {
    account: Account,
    service: String,
    rhost: String,
    tty: String,
}

impl Origin {
    fn fields(&self) -> [(&str, &str); 4] {
        [
            ("user", &self.account.name),
            ("service", &self.service),
            ("rhost", &self.rhost),
            ("tty", &self.tty),
        ]
    }
}

/// A login that passed (its account phase allowed it), waiting for its
/// session phase (`Login.OpenSession`).
#[derive(Debug, Clone)]
pub struct Passed {
    pub account: Account,
    pub caller: u32,
    pub service: String,
    pub rhost: String,
    pub tty: String,
    expires: i64,
}

/// The attempts in flight, and the rate limit on self-verification.
pub struct Attempts {
    table: Mutex<HashMap<Token, Attempt>>,
    self_logins: Mutex<RateLimit>,
    /// Logins the account phase allowed, by attempt token, for their
    /// session phase.
    passed: Mutex<HashMap<Token, Passed>>,
}

impl Default for Attempts {
    fn default() -> Self {
        Attempts::new()
    }
}

impl Attempts {
    pub fn new() -> Attempts {
        Attempts {
            table: Mutex::new(HashMap::new()),
            self_logins: Mutex::new(RateLimit::new(SELF_LOGINS_PER_MINUTE, 60)),
            passed: Mutex::new(HashMap::new()),
        }
    }

    /// `Login.Begin`: ignore, allow (trusted device), deny, or a challenge
    /// with the prompt. Returns the action, the attempt's token and a message.
    pub fn begin(
        &self,
        core: &Core,
        grant: &LoginGrant,
        req: &LoginRequest,
        now: i64,
    ) -> Result<(BeginAction, String, String)> {
        let user = grant.user();
        let limited = grant.caller() != 0;
        if limited && !lock(&self.self_logins).hit(user, now) {
            return Err(Error::RateLimited(
                "Too many verification attempts; wait a minute.".into(),
            ));
        }
        let began = self.decide(core, grant, req, now);
        // Nothing was done: the call is made again where it may wait for
        // the SMS gateway, and counts once.
        if limited && matches!(began, Err(Error::WouldWait)) {
            lock(&self.self_logins).refund(user);
        }
        began
    }

    /// Begin once the caller's rate limit let it through.
    fn decide(
        &self,
        core: &Core,
        grant: &LoginGrant,
        req: &LoginRequest,
        now: i64,
    ) -> Result<(BeginAction, String, String)> {
        // Names that cannot exist are looked up like any other (and found
        // unenrolled), so the answer does not reveal which users exist.
        let state = match owned_state(core, grant.account()) {
            Ok(state) => state,
            Err(Error::AccessDenied(message)) => {
                return Ok((BeginAction::Deny, String::new(), message))
            }
            Err(e) => return Err(e),
        };
        let (identity, trusted) = origin(core, grant, req, &state, now)?;
        let need = need_of(core, grant.account(), &req.service);
        let facts = policy::Facts {
            enrolled: state.enrolled(),
            trusted: trusted.is_some(),
            lockout: state.lockout,
            grace_start: grace_start(core, grant.account(), &need, state.enrolled(), now)?,
            // Only root (sshd, login, su, sudo) starts an enrollment: a
            // caller running as the user (a screen locker) never does. A
            // name without an account gets one too, a decoy (see
            // login_enroll), so that the answer does not tell it apart.
            can_enroll: core.config.policy.enroll_at_login && grant.caller() == 0,
        };
        let decision = policy::begin(&need, core.config.policy.rules().grace_secs, facts, now);
        let fields = [
            ("user", grant.user()),
            ("service", req.service.as_str()),
            ("rhost", &req.rhost),
            ("tty", &req.tty),
        ];
        self.act(
            core,
            grant,
            req,
            &fields,
            decision,
            &state,
            (identity, trusted),
            now,
        )
    }

    /// What Begin answers for a decision, with its audit line; a challenge
    /// or an allowed login makes an attempt.
    #[allow(clippy::too_many_arguments)]
    fn act(
        &self,
        core: &Core,
        grant: &LoginGrant,
        req: &LoginRequest,
        fields: &[(&str, &str)],
        decision: Decision,
        state: &UserState,
        (identity, trusted): (Option<Identity>, Option<Trusted>),
        now: i64,
    ) -> Result<(BeginAction, String, String)> {
        match decision {
            Decision::Ignore => Ok((BeginAction::Ignore, String::new(), String::new())),
            Decision::Exempt(why) => {
                let mut f = fields.to_vec();
                f.push(("exempt", &why));
                core.audit.info("login exempt", &f);
                Ok((BeginAction::Ignore, String::new(), String::new()))
            }
            Decision::Grace(left) => {
                let left_s = left.to_string();
                let mut f = fields.to_vec();
                f.push(("grace_left_secs", &left_s));
                core.audit.info("login in grace period", &f);
                // The message is info text for the user: `ignore` lets
                // the rest of the stack decide, as for an optional user.
                Ok((
                    BeginAction::Ignore,
                    String::new(),
                    policy::grace_message(left, core.config.policy.enroll_at_login),
                ))
            }
            Decision::Allow => {
                if let Some(t) = &trusted {
                    core.store.touch_trusted(grant.uid(), &t.id, now)?;
                    let mut f = fields.to_vec();
                    f.push(("trusted_device", &t.id));
                    core.audit.info("login allowed", &f);
                }
                let token = self.add(core, grant, req, None, Stage::Verified, now)?;
                Ok((BeginAction::Allow, token, MSG_TRUSTED.to_string()))
            }
            Decision::Deny(message) => {
                let reason = if state.enrolled() {
                    "locked out"
                } else {
                    "not enrolled"
                };
                let mut f = fields.to_vec();
                f.push(("reason", reason));
                core.audit.warn("login denied", &f);
                Ok((BeginAction::Deny, String::new(), message))
            }
            Decision::Challenge => {
                let prompt = match begin_prompt(core, state, grant.account(), now)? {
                    Ok(prompt) => prompt,
                    Err(message) => {
                        let mut f = fields.to_vec();
                        f.push(("reason", "no code could be sent by SMS"));
                        core.audit.warn("login denied", &f);
                        return Ok((BeginAction::Deny, String::new(), message));
                    }
                };
                let token = self.add(core, grant, req, identity, Stage::Code, now)?;
                Ok((BeginAction::Challenge, token, prompt))
            }
            Decision::Enroll => {
                core.audit.info("login enrolls", fields);
                let token = self.add(core, grant, req, identity, Stage::Enroll, now)?;
                Ok((BeginAction::Enroll, token, MSG_ENROLL.to_string()))
            }
        }
    }

    /// A new attempt at `stage`; returns its token.
    pub(super) fn add(
        &self,
        core: &Core,
        grant: &LoginGrant,
        req: &LoginRequest,
        identity: Option<Identity>,
        stage: Stage,
        now: i64,
    ) -> Result<String> {
        let (token, text) = Token::new(core.random.as_ref())?;
        let mut table = lock(&self.table);
        if table.len() >= MAX_ATTEMPTS {
            table.retain(|_, a| a.expires > now);
            if table.len() >= MAX_ATTEMPTS {
                evict_oldest(&mut table, |a| a.expires);
            }
        }
        let verified = matches!(stage, Stage::Verified);
        let lifetime = if verified {
            VERIFIED_SECS
        } else {
            ATTEMPT_SECS
        };
        table.insert(
            token,
            Attempt {
                uid: grant.uid(),
                caller: grant.caller(),
                labels: Labels::new([grant.user(), &req.service, &req.rhost, &req.tty]),
                identity: identity.map(Box::new),
                tries: 0,
                verified,
                expires: now + lifetime,
                enroll: matches!(stage, Stage::Enroll).then(Box::default),
            },
        );
        Ok(text)
    }

    /// `Login.Answer`: checks a code for the attempt `token`.
    pub fn answer(
        &self,
        core: &Core,
        caller: u32,
        token: &str,
        code: &[u8],
        now: i64,
    ) -> Result<(AnswerResult, String)> {
        let (token, origin) = self.live(caller, token, now)?;
        if code.iter().all(|b| b.is_ascii_whitespace()) {
            if let Some(reply) = answer_blank(core, &origin.account, now)? {
                return Ok(reply);
            }
        }
        let check = verify::check(core, &origin.account, code, now)?;
        Ok(self.settle(core, &token, &origin, check, now))
    }

    /// Who and where the attempt `token` is for, if it is live and was
    /// begun by `caller`.
    fn live(&self, caller: u32, token: &str, now: i64) -> Result<(Token, Origin)> {
        let mut table = lock(&self.table);
        let Some((token, a)) = Token::parse(token).and_then(|t| Some((t, table.get(&t)?))) else {
            return Err(Error::NotFound("No such login attempt.".into()));
        };
        // Attempts are bound to the caller that began them: a token seen by
        // someone else is useless to them.
        if a.caller != caller || a.verified || a.enroll.is_some() {
            return Err(Error::NotFound("No such login attempt.".into()));
        }
        if a.expires <= now {
            table.remove(&token);
            return Err(Error::Expired(
                "The login took too long; start again.".into(),
            ));
        }
        Ok((token, a.origin()))
    }

    /// Records a checked code in the attempt: verified, one more try, or
    /// the end of it; and what the module is told.
    fn settle(
        &self,
        core: &Core,
        token: &Token,
        origin: &Origin,
        check: Check,
        now: i64,
    ) -> (AnswerResult, String) {
        let fields = origin.fields();
        let mut table = lock(&self.table);
        match check {
            Check::Ok(how) => {
                if let Some(a) = table.get_mut(token) {
                    a.verified = true;
                    a.expires = now + VERIFIED_SECS;
                }
                drop(table);
                let mut f = fields.to_vec();
                f.push(("method", how.method));
                if let Some(device) = &how.device {
                    f.push(("device", device));
                }
                core.audit.info("verify ok", &f);
                (AnswerResult::Success, String::new())
            }
            Check::Locked(lockout) => {
                table.remove(token);
                core.audit.warn(
                    "login denied",
                    &[fields.as_slice(), &[("reason", "locked out")]].concat(),
                );
                (AnswerResult::Deny, lockout.message(now))
            }
            Check::Wrong { lockout, message } => {
                core.audit.warn("verify failed", &fields);
                if lockout.is_locked(now) {
                    table.remove(token);
                    let failures = lockout.failures.to_string();
                    core.audit.warn(
                        "lockout",
                        &[fields.as_slice(), &[("failures", &failures)]].concat(),
                    );
                    return (AnswerResult::Deny, lockout.message(now));
                }
                let tries = table.get_mut(token).map_or(TRIES, |a| {
                    a.tries += 1;
                    a.tries
                });
                if tries < TRIES {
                    return (AnswerResult::Retry, message.to_string());
                }
                table.remove(token);
                let message = if message == MSG_WRONG_RETRY {
                    MSG_WRONG
                } else {
                    message
                };
                (AnswerResult::Deny, message.to_string())
            }
        }
    }

    /// The account phase: did this login pass the code step? `token` is the
    /// attempt `Begin` gave, carried from the auth phase by the module (in
    /// the PAM environment, which survives sshd's separate auth process).
    /// Each verified attempt answers once.
    pub fn account_check(
        &self,
        core: &Core,
        grant: &LoginGrant,
        service: &str,
        token: &str,
        now: i64,
    ) -> Result<(AccountAction, String)> {
        let user = grant.user();
        // A verified attempt of this account and caller is all it takes:
        // Begin checked the account's state, and a reset since then ended
        // the attempt.
        let verified = Token::parse(token).and_then(|token| {
            let mut table = lock(&self.table);
            let ok = table.get(&token).is_some_and(|a| {
                a.verified
                    && a.is_for(grant.account())
                    && a.caller == grant.caller()
                    && a.expires > now
            });
            Some(token).zip(if ok { table.remove(&token) } else { None })
        });
        if let Some((token, attempt)) = verified {
            // Trust is given here, not at Answer: the account phase runs only
            // once the whole auth stack passed, so a right code with a wrong
            // password never makes a device trusted.
            if let Some(id) = &attempt.identity {
                trust_device(core, grant.account(), id, now)?;
            }
            // Only a limited session needs to find its login again.
            if core.config.session.max_duration.is_some() {
                self.keep_passed(token, &attempt, now);
            }
            return Ok((AccountAction::Allow, String::new()));
        }
        let enrolled = match owned_state(core, grant.account()) {
            Ok(state) => state.enrolled(),
            Err(Error::AccessDenied(message)) => return Ok((AccountAction::Deny, message)),
            Err(e) => return Err(e),
        };
        let denied = |reason: &str| {
            core.audit.warn(
                "account denied",
                &[("user", user), ("service", service), ("reason", reason)],
            )
        };
        let need = need_of(core, grant.account(), service);
        let facts = policy::Facts {
            enrolled,
            grace_start: grace_start(core, grant.account(), &need, enrolled, now)?,
            ..policy::Facts::default()
        };
        match policy::begin(&need, core.config.policy.rules().grace_secs, facts, now) {
            Decision::Exempt(_) | Decision::Grace(_) => Ok((AccountAction::Ignore, String::new())),
            Decision::Ignore => Ok((AccountAction::Ignore, String::new())),
            Decision::Deny(message) => {
                denied("not enrolled");
                Ok((AccountAction::Deny, message))
            }
            _ => {
                denied(
                    "no verification code in this login: put pam_mfa.so in the auth stack \
                     and make sshd use keyboard-interactive (AuthenticationMethods)",
                );
                Ok((AccountAction::Deny, MSG_NOT_VERIFIED.to_string()))
            }
        }
    }

    /// The account of the enrolling attempt `token`, if it is live, begun
    /// by `caller` with `enroll` and not yet verified, and the enrollment
    /// it started, if any.
    pub(super) fn enrolling(
        &self,
        caller: u32,
        token: &str,
        now: i64,
    ) -> Result<(Account, Option<(Kind, String)>)> {
        let mut table = lock(&self.table);
        let gone = || Error::NotFound("No such login attempt.".into());
        let token = Token::parse(token).ok_or_else(gone)?;
        let a = table.get(&token).ok_or_else(gone)?;
        let Some(enroll) = a
            .enroll
            .as_ref()
            .filter(|_| a.caller == caller && !a.verified)
        else {
            return Err(gone());
        };
        if a.expires <= now {
            table.remove(&token);
            return Err(Error::Expired(
                "The login took too long; start again.".into(),
            ));
        }
        Ok((a.account(), enroll.pending.clone()))
    }

    /// Counts one more enrollment started by the attempt; refused past
    /// [`ENROLL_BEGINS`].
    pub(super) fn count_enroll_begin(&self, token: &str) -> Result<()> {
        let mut table = lock(&self.table);
        let Some(e) = Token::parse(token)
            .and_then(|t| table.get_mut(&t))
            .and_then(|a| a.enroll.as_mut())
        else {
            return Err(Error::NotFound("No such login attempt.".into()));
        };
        e.begins += 1;
        if e.begins > ENROLL_BEGINS {
            return Err(Error::RateLimited(
                "Too many enrollments started in one login; start again.".into(),
            ));
        }
        Ok(())
    }

    /// Remembers the enrollment the attempt started.
    pub(super) fn set_enrollment(&self, token: &str, kind: Kind, id: String) {
        let mut table = lock(&self.table);
        if let Some(e) = Token::parse(token)
            .and_then(|t| table.get_mut(&t))
            .and_then(|a| a.enroll.as_mut())
        {
            e.pending = Some((kind, id));
        }
    }

    /// Counts a wrong confirmation: true when it was the last try, and the
    /// attempt is gone.
    pub(super) fn enroll_failed(&self, token: &str) -> bool {
        let Some(token) = Token::parse(token) else {
            return true;
        };
        let mut table = lock(&self.table);
        let tries = table.get_mut(&token).map_or(TRIES, |a| {
            a.tries += 1;
            a.tries
        });
        if tries >= TRIES {
            table.remove(&token);
            return true;
        }
        false
    }

    /// The enrollment is done: the login counts as verified, as after a
    /// code (the account phase allows it, and trusts its device).
    pub(super) fn enroll_done(&self, token: &str, now: i64) {
        let mut table = lock(&self.table);
        if let Some(a) = Token::parse(token).and_then(|t| table.get_mut(&t)) {
            a.verified = true;
            a.expires = now + VERIFIED_SECS;
        }
    }

    /// Ends the attempts of `user` (an admin reset).
    pub fn forget_user(&self, uid: u32) {
        lock(&self.table).retain(|_, a| a.uid != uid);
        lock(&self.passed).retain(|_, p| p.account.uid != uid);
    }

    fn keep_passed(&self, token: Token, a: &Attempt, now: i64) {
        let mut passed = lock(&self.passed);
        if passed.len() >= MAX_ATTEMPTS {
            passed.retain(|_, p| p.expires > now);
            if passed.len() >= MAX_ATTEMPTS {
                // The oldest go, never all: a login dropped here opens an
                // unlimited session.
                evict_oldest(&mut passed, |p| p.expires);
            }
        }
        passed.insert(token, a.passed(now + VERIFIED_SECS));
    }

    /// The session phase takes a login of the grant's account and caller
    /// through `service` that passed, once: the one with `token` when the
    /// caller kept it (su, login), else the oldest one (sshd runs its auth
    /// and account phases in another process than the session phase, and
    /// removes the token from the environment the user's session gets).
    /// One that went through the account phase, or (a stack without
    /// `account pam_mfa.so`) a verified attempt. None when no login passed
    /// 2-step (or a trusted device).
    pub fn take_passed(
        &self,
        grant: &LoginGrant,
        service: &str,
        token: &str,
        now: i64,
    ) -> Option<Passed> {
        let caller = grant.caller();
        let mine = |account: &Account, by: u32, svc: &str, expires: i64| {
            *account == *grant.account() && by == caller && svc == service && expires > now
        };
        // No token is "the oldest"; a token no attempt can have, nothing.
        let token = (!token.is_empty()).then(|| Token::parse(token));
        {
            let mut passed = lock(&self.passed);
            let key = match token {
                None => passed
                    .iter()
                    .filter(|(_, p)| mine(&p.account, p.caller, &p.service, p.expires))
                    .min_by_key(|(_, p)| p.expires)
                    .map(|(k, _)| *k),
                Some(t) => t.filter(|t| {
                    passed
                        .get(t)
                        .is_some_and(|p| mine(&p.account, p.caller, &p.service, p.expires))
                }),
            };
            if let Some(p) = key.and_then(|k| passed.remove(&k)) {
                return Some(p);
            }
        }
        let token = token.flatten()?;
        let mut table = lock(&self.table);
        let ok = table.get(&token).is_some_and(|a| {
            a.verified
                && a.is_for(grant.account())
                && a.caller == caller
                && a.labels.service() == service
                && a.expires > now
        });
        let a = if ok { table.remove(&token) } else { None }?;
        Some(a.passed(a.expires))
    }

    #[cfg(test)]
    pub fn holds(&self, token: &str) -> bool {
        Token::parse(token).is_some_and(|t| lock(&self.table).contains_key(&t))
    }

    #[cfg(test)]
    pub fn count(&self) -> usize {
        lock(&self.table).len()
    }
}

/// Whether `account` must use 2-step when logging in through `service`.
pub(super) fn need_of(core: &Core, account: &Account, service: &str) -> Need {
    policy::need(&core.config.policy.rules(), &account.name, service, |g| {
        core.users.in_group(account.uid, g)
    })
}

/// When the grace period of a user who must enroll started: stored at the
/// first such login (so it runs from there), None when it does not apply.
/// A name with no account gets a fresh one, never stored, so that it is
/// answered like a real user who has just been told to enroll.
fn grace_start(
    core: &Core,
    account: &Account,
    need: &Need,
    enrolled: bool,
    now: i64,
) -> Result<Option<i64>> {
    if enrolled || *need != Need::Required || core.config.policy.grace_period.is_zero() {
        return Ok(None);
    }
    if account.uid == super::authz::UNKNOWN_UID {
        return Ok(Some(now));
    }
    Ok(Some(core.store.start_grace(account.uid, now)?))
}

/// Where the login comes from, as a device that could be trusted, and the
/// trusted device it is, if any. Only root (sshd, login) vouches for where
/// a login comes from; a caller running as the user (a screen locker) could
/// name any host or key. A login without a remote host is never trusted.
fn origin(
    core: &Core,
    grant: &LoginGrant,
    req: &LoginRequest,
    state: &UserState,
    now: i64,
) -> Result<(Option<Identity>, Option<Trusted>)> {
    let lifetime = core.config.trusted_devices.lifetime;
    let identity = match lifetime {
        Lifetime::Off => None,
        _ if grant.caller() != 0 || req.rhost.trim().is_empty() => None,
        _ => trust::identity(&req.rhost, &req.auth_info),
    };
    let trusted = match &identity {
        Some(id) if state.enrolled() => core
            .store
            .trusted(grant.uid(), id.kind(), id.value())?
            .filter(|t| lifetime.holds(t.trusted_at, now)),
        _ => None,
    };
    Ok((identity, trusted))
}

/// The prompt of a challenge. A user with a phone and no app gets a code by
/// SMS now; if none can be sent, a backup code is the way left, and without
/// one the login is refused (`Err` holds why).
fn begin_prompt(
    core: &Core,
    state: &UserState,
    account: &Account,
    now: i64,
) -> Result<std::result::Result<String, String>> {
    let Some((_, number)) = state.phone() else {
        return Ok(Ok(PROMPT.to_string()));
    };
    if state.has_app() {
        return Ok(Ok(if core.sms.is_some() {
            PROMPT_APP_OR_SMS.to_string()
        } else {
            PROMPT.to_string()
        }));
    }
    match sms::send_login_code(core, account, number, now, Some(core.sms()?.login_wait)) {
        Ok(sent) => Ok(Ok(format!("{sent} Verification code: "))),
        // Codes sent earlier still work until they expire.
        Err(Error::RateLimited(m) | Error::Unavailable(m)) => Ok(
            match (
                state.sms_codes.iter().any(|c| c.expires > now),
                core.store.backup_codes(account.uid)?.is_empty(),
            ) {
                (true, _) => Ok(format!(
                    "{m} Verification code (one already sent by SMS, or a backup code): "
                )),
                (false, false) => Ok(format!("{m} Backup code: ")),
                (false, true) => Err(m),
            },
        ),
        Err(e) => Err(e),
    }
}

/// An empty answer from a user with a phone asks for a code by SMS: the
/// module prompts again (`prompt`). Neither a failure nor a try. None when
/// the answer should be checked as a code after all.
fn answer_blank(
    core: &Core,
    account: &Account,
    now: i64,
) -> Result<Option<(AnswerResult, String)>> {
    if core.sms.is_none() {
        return Ok(None);
    }
    let state = core.store.user(account.uid)?;
    let Some((_, number)) = state.phone() else {
        return Ok(None);
    };
    if state.lockout.is_locked(now) {
        return Ok(None);
    }
    match sms::send_login_code(core, account, number, now, Some(core.sms()?.login_wait)) {
        Ok(sent) => Ok(Some((
            AnswerResult::Prompt,
            format!("{sent} Verification code: "),
        ))),
        Err(Error::RateLimited(m) | Error::Unavailable(m)) => {
            // Codes sent before still work (a cooldown is most often hit
            // right after one was sent).
            let live = state.sms_codes.iter().any(|c| c.expires > now);
            let none_left = core.store.backup_codes(account.uid)?.is_empty();
            let other = match (live, state.has_app(), none_left) {
                (true, true, _) => {
                    " Use a code already sent by SMS, your authenticator app or a backup code."
                }
                (true, false, false) => " Use a code already sent by SMS or a backup code.",
                (true, false, true) => " Use a code already sent by SMS.",
                (false, true, _) => " Use your authenticator app or a backup code.",
                (false, false, false) => " Use a backup code.",
                (false, false, true) => "",
            };
            Ok(Some((AnswerResult::Retry, format!("{m}{other}"))))
        }
        Err(e) => Err(e),
    }
}

fn trust_device(core: &Core, account: &Account, id: &Identity, now: i64) -> Result<()> {
    let new_id = random::hex(core.random.as_ref(), 4)?;
    core.store
        .trust(account.uid, &new_id, id.kind(), id.value(), now)?;
    core.audit.info(
        "device trusted",
        &[
            ("user", &account.name),
            ("kind", id.kind()),
            ("identity", id.value()),
        ],
    );
    Ok(())
}

/// Makes room in a full table by dropping the attempts closest to expiry, a
/// hundredth of them at once (so the scan is rare). Refusing new logins
/// instead would let a table filled by verified attempts that no account
/// phase collects (stacks with only an auth line) lock everyone out. A
/// dropped login fails closed: its next call finds no attempt.
fn evict_oldest<V>(table: &mut HashMap<Token, V>, expires: impl Fn(&V) -> i64) {
    let mut by_expiry: Vec<(i64, Token)> = table
        .iter()
        .map(|(token, a)| (expires(a), *token))
        .collect();
    let n = (MAX_ATTEMPTS / 100).clamp(1, by_expiry.len());
    by_expiry.select_nth_unstable_by_key(n - 1, |e| e.0);
    for (_, token) in by_expiry.into_iter().take(n) {
        table.remove(&token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table holds up to MAX_ATTEMPTS of them (a String token and the
    /// attempt's own Strings made one 224 bytes, plus five allocations).
    #[test]
    fn an_attempt_stays_small() {
        let entry = std::mem::size_of::<(Token, Attempt)>();
        assert!(entry <= 88, "{entry} bytes");
    }

    #[test]
    fn labels_give_back_each_part() {
        for parts in [
            ["alice", "sshd", "192.0.2.7", "ssh"],
            ["", "", "", ""],
            ["bob", "", "", "/dev/pts/3"],
            ["ünï", "su", "höst", ""],
        ] {
            let l = Labels::new(parts);
            assert_eq!([l.name(), l.service(), l.rhost(), l.tty()], parts);
        }
    }

    #[test]
    fn tokens_are_32_hex_digits_and_name_themselves() {
        let (token, text) = Token::new(&random::Os).unwrap();
        assert_eq!(text.len(), 32);
        assert!(Token::parse(&text) == Some(token));
        assert!(Token::parse("0123456789abcdef0123456789abcdef").is_some());
        assert!(Token::parse("0123456789ABCDEF0123456789abcdef").is_none());
        assert!(Token::parse("").is_none());
    }
}
