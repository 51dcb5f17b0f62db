//! The D-Bus method handlers with arbitrary arguments: mfad's Login, Account
//! and Admin interfaces served on one end of a peer-to-peer connection over
//! a socket pair, called from the other end. One daemon (in-memory store,
//! fixed user directory, SMS into a recorder) serves the whole run; each
//! input starts with alice having an authenticator app and backup codes and
//! nobody else anything, then makes a sequence of calls. Codes can be wrong
//! bytes or the right ones (the harness knows the secrets, the backup codes
//! and the last SMS), so the fuzzer reaches success, replay, lockout and
//! enrollment paths.
//!
//! The caller is this process (SO_PEERCRED): run as root it acts as root;
//! run as another user it is alice.
#![no_main]

use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mfa_api::{AccountProxy, AdminProxy, Error as WireError, LoginProxy};
use mfad::codes::{self, Hashed};
use mfad::config::{Config, LogTarget};
use mfad::factor::DeviceData;
use mfad::gateway::{Message, SendError, Sender};
use mfad::service::{Core, Service, Sms};
use mfad::store::sqlite::SqliteStore;
use mfad::store::{Device, Store};
use mfad::users::{Account, Directory};
use totp_rs::{Builder, Secret};
use zbus::proxy::CacheProperties;

const ALICE_SECRET: [u8; 20] = *b"fuzz-secret-of-alice";
const BACKUP: [&str; 3] = ["12345678", "87654321", "00000000"];
const ADMINS: &str = "mfa-admins";
const BOB: u32 = 1001;

/// root, alice (this process's UID unless that is root) and bob, an admin.
struct Users {
    alice: u32,
}

impl Directory for Users {
    fn uid_of(&self, name: &str) -> Option<u32> {
        match name {
            "root" => Some(0),
            "alice" => Some(self.alice),
            "bob" => Some(BOB),
            _ => None,
        }
    }

    fn name_of(&self, uid: u32) -> Option<String> {
        match uid {
            0 => Some("root".into()),
            BOB => Some("bob".into()),
            u if u == self.alice => Some("alice".into()),
            _ => None,
        }
    }

    fn in_group(&self, uid: u32, group: &str) -> bool {
        uid == BOB && group == ADMINS
    }
}

/// Keeps the last code that went out by SMS.
#[derive(Default)]
struct Outbox(Mutex<String>);

impl Sender for Outbox {
    fn send(&self, m: &Message<'_>) -> Result<(), SendError> {
        if m.code.ends_with('0') {
            // Some sends fail, as gateways do.
            return Err(SendError::Failed("HTTP 503".into()));
        }
        if let Ok(mut last) = self.0.lock() {
            *last = m.code.to_string();
        }
        Ok(())
    }
}

#[derive(Debug, Arbitrary)]
enum User {
    Alice,
    Root,
    Bob,
    Nobody,
    Caller,
    Raw(String),
}

#[derive(Debug, Arbitrary)]
enum Code {
    /// alice's app now, or one step back.
    AppNow,
    AppPrev,
    /// The app being enrolled (the last EnrollTotpBegin's secret).
    PendingNow,
    PendingPrev,
    Backup(u8),
    LastSms,
    Raw(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum Id {
    /// The last session, enrollment or device id the daemon handed out.
    Last,
    Raw(String),
}

#[derive(Debug, Arbitrary)]
enum Call {
    Begin(User, String, String, String, String),
    Answer(Id, Code),
    AccountCheck(User, String, Id),
    EnrollTotpBegin(User, String),
    EnrollTotpConfirm(User, Id, Code, Code),
    EnrollSmsBegin(User, String, Code),
    EnrollSmsResend(User, Id),
    EnrollSmsConfirm(User, Id, Code),
    SendCode(User),
    Status(User),
    RemoveDevice(User, Id, Code),
    RegenerateBackupCodes(User, Code),
    TrustedDevices(User),
    RemoveTrustedDevice(User, String),
    RemoveAllTrustedDevices(User),
    ListUsers,
    UserStatus(User),
    Reset(User),
    Unlock(User),
    AdminTrustedDevices(User),
    AdminRemoveTrustedDevice(User, String),
    AdminRemoveAllTrustedDevices(User),
}

/// What the harness remembers across the calls of one input.
#[derive(Default)]
struct Known {
    session: String,
    enrollment: String,
    device: String,
    pending_secret: Vec<u8>,
    backup: Vec<String>,
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn totp_code(secret: &[u8], steps_back: u64) -> String {
    let step = mfad::totp::step_at(now()).saturating_sub(steps_back);
    Builder::new()
        .with_secret(Secret::from(secret.to_vec()))
        .with_digits(6)
        .with_step_duration(30)
        .build_noncompliant()
        .generate(step * 30)
        .to_string()
}

fn user(u: &User) -> String {
    match u {
        User::Alice => "alice".into(),
        User::Root => "root".into(),
        User::Bob => "bob".into(),
        User::Nobody => "nobody-at-all".into(),
        // The caller's own account, by an empty name.
        User::Caller => String::new(),
        User::Raw(s) => clean(s),
    }
}

/// D-Bus strings cannot hold NUL; a client library refuses to send one.
fn clean(s: &str) -> String {
    s.replace('\0', "")
}

fn id(i: &Id, last: &str) -> String {
    match i {
        Id::Last => last.to_string(),
        Id::Raw(s) => clean(s),
    }
}

fn code(c: &Code, known: &Known, outbox: &Outbox) -> Vec<u8> {
    match c {
        Code::AppNow => totp_code(&ALICE_SECRET, 0).into_bytes(),
        Code::AppPrev => totp_code(&ALICE_SECRET, 1).into_bytes(),
        Code::PendingNow => totp_code(&known.pending_secret, 0).into_bytes(),
        Code::PendingPrev => totp_code(&known.pending_secret, 1).into_bytes(),
        Code::Backup(i) => known.backup[usize::from(*i) % known.backup.len()]
            .clone()
            .into_bytes(),
        Code::LastSms => outbox
            .0
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
            .into_bytes(),
        Code::Raw(b) => b.clone(),
    }
}

fn text(b: Vec<u8>) -> String {
    clean(&String::from_utf8_lossy(&b))
}

/// A reply is a result or one of mfad's own errors, in one line; a
/// transport error means a handler broke the connection.
fn checked<T>(what: &str, r: Result<T, WireError>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(WireError::ZBus(e)) => panic!("{what}: transport error {e}"),
        Err(e) => {
            let m = e.message();
            assert!(!m.is_empty() && !m.contains('\n'), "{what}: {m:?}");
            None
        }
    }
}

/// Gives alice back her app and backup codes, and nothing else to anyone:
/// the state every input starts from. (The newest accepted step stays, as
/// the store keeps it through a reset, so a code once used stays dead.)
fn fresh_state(store: &SqliteStore, alice: u32) {
    for uid in [0, alice, BOB] {
        store.reset(uid).expect("reset");
    }
    let account = Account {
        uid: alice,
        name: "alice".into(),
    };
    let backup: Vec<Hashed> = BACKUP
        .iter()
        .map(|c| codes::hash(c, &mfad::random::Os).expect("random salt"))
        .collect();
    let device = Device {
        id: "app1".into(),
        label: "phone".into(),
        data: DeviceData::Totp {
            secret: ALICE_SECRET.to_vec(),
        },
        created: 1,
        last_used: 0,
    };
    store
        .add_device(&account, &device, 0, Some(&backup))
        .expect("alice's app");
}

fn service(alice: u32, store: Arc<SqliteStore>, outbox: Arc<Outbox>) -> Arc<Service> {
    let mut config = Config::default();
    config.daemon.log = LogTarget::Stderr;
    config.daemon.admin_group = ADMINS.into();
    config.lockout.max_failures = 3;
    Arc::new(Service::new(Core {
        config,
        issuer: "fuzz".into(),
        store,
        audit: Arc::new(mfad::audit::Audit::new(LogTarget::Stderr)),
        users: Box::new(Users { alice }),
        random: Box::new(mfad::random::Os),
        keys: Arc::new(mfad::seal::Keys::ephemeral().expect("randomness for a key")),
        sms: Some(Sms {
            sender: outbox,
            code_lifetime: 120,
            // High enough that SMS paths stay open for the whole run of one
            // process (sends are not forgotten by a reset).
            max_sends_per_hour: 1000,
            login_wait: Duration::from_millis(50),
        }),
    }))
}

/// One daemon and one connection for the whole process: a p2p handshake and
/// a new store per input would make this target a hundred times slower.
/// Each input starts from [`fresh_state`].
struct Daemon {
    login: LoginProxy<'static>,
    account: AccountProxy<'static>,
    admin: AdminProxy<'static>,
    store: Arc<SqliteStore>,
    outbox: Arc<Outbox>,
    alice: u32,
    _server: zbus::Connection,
    _client: zbus::Connection,
}

async fn start() -> Daemon {
    let me = nix::unistd::getuid().as_raw();
    let alice = if me == 0 { 1000 } else { me };
    let outbox = Arc::new(Outbox::default());
    let store = Arc::new(SqliteStore::open_in_memory().expect("an in-memory store"));
    let service = service(alice, store.clone(), outbox.clone());
    let ctx = mfad::dbus::Context::new(service, tokio::runtime::Handle::current());
    let (server_end, client_end) = UnixStream::pair().expect("a socket pair");
    let client = zbus::connection::Builder::unix_stream(client_end)
        .p2p()
        .build();
    let (server, client) = tokio::join!(mfad::dbus::serve_peer(ctx, server_end), client);
    let (server, client) = (server.expect("server end"), client.expect("client end"));
    let login = LoginProxy::builder(&client)
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .expect("login proxy");
    let account = AccountProxy::builder(&client)
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .expect("account proxy");
    let admin = AdminProxy::builder(&client)
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .expect("admin proxy");
    Daemon {
        login,
        account,
        admin,
        store,
        outbox,
        alice,
        _server: server,
        _client: client,
    }
}

fn daemon() -> &'static Daemon {
    static DAEMON: OnceLock<Daemon> = OnceLock::new();
    DAEMON.get_or_init(|| runtime().block_on(start()))
}

async fn run(d: &Daemon, calls: Vec<Call>) {
    fresh_state(&d.store, d.alice);
    if let Ok(mut last) = d.outbox.0.lock() {
        last.clear();
    }
    let (login, account, admin, outbox) = (&d.login, &d.account, &d.admin, &*d.outbox);
    let mut k = Known {
        backup: BACKUP.iter().map(|c| c.to_string()).collect(),
        ..Known::default()
    };
    for call in calls {
        match call {
            Call::Begin(u, service, rhost, tty, info) => {
                let r = login
                    .begin(
                        &user(&u),
                        &clean(&service),
                        &clean(&rhost),
                        &clean(&tty),
                        &clean(&info),
                    )
                    .await;
                if let Some((_, session, _)) = checked("Begin", r) {
                    if !session.is_empty() {
                        k.session = session;
                    }
                }
            }
            Call::Answer(s, c) => {
                let c = code(&c, &k, outbox);
                checked("Answer", login.answer(&id(&s, &k.session), &c).await);
            }
            Call::AccountCheck(u, service, s) => {
                let r = login
                    .account_check(&user(&u), &clean(&service), &id(&s, &k.session))
                    .await;
                checked("AccountCheck", r);
            }
            Call::EnrollTotpBegin(u, name) => {
                let r = account.enroll_totp_begin(&user(&u), &clean(&name)).await;
                if let Some((enrollment, _, secret)) = checked("EnrollTotpBegin", r) {
                    k.enrollment = enrollment;
                    k.pending_secret = Secret::try_from_base32(&secret)
                        .expect("the secret is base32")
                        .as_bytes()
                        .to_vec();
                }
            }
            Call::EnrollTotpConfirm(u, e, c1, c2) => {
                let (c1, c2) = (text(code(&c1, &k, outbox)), text(code(&c2, &k, outbox)));
                let r = account
                    .enroll_totp_confirm(&user(&u), &id(&e, &k.enrollment), &c1, &c2)
                    .await;
                if let Some((device, backup)) = checked("EnrollTotpConfirm", r) {
                    k.device = device;
                    if !backup.is_empty() {
                        k.backup = backup;
                    }
                }
            }
            Call::EnrollSmsBegin(u, phone, c) => {
                let c = text(code(&c, &k, outbox));
                let r = account
                    .enroll_sms_begin(&user(&u), &clean(&phone), &c)
                    .await;
                if let Some((enrollment, _)) = checked("EnrollSmsBegin", r) {
                    k.enrollment = enrollment;
                }
            }
            Call::EnrollSmsResend(u, e) => {
                let r = account
                    .enroll_sms_resend(&user(&u), &id(&e, &k.enrollment))
                    .await;
                checked("EnrollSmsResend", r);
            }
            Call::EnrollSmsConfirm(u, e, c) => {
                let c = text(code(&c, &k, outbox));
                let r = account
                    .enroll_sms_confirm(&user(&u), &id(&e, &k.enrollment), &c)
                    .await;
                if let Some((device, backup)) = checked("EnrollSmsConfirm", r) {
                    k.device = device;
                    if !backup.is_empty() {
                        k.backup = backup;
                    }
                }
            }
            Call::SendCode(u) => {
                checked("SendCode", account.send_code(&user(&u)).await);
            }
            Call::Status(u) => {
                checked("Status", account.status(&user(&u)).await);
            }
            Call::RemoveDevice(u, d, c) => {
                let c = text(code(&c, &k, outbox));
                let r = account
                    .remove_device(&user(&u), &id(&d, &k.device), &c)
                    .await;
                checked("RemoveDevice", r);
            }
            Call::RegenerateBackupCodes(u, c) => {
                let c = text(code(&c, &k, outbox));
                let r = account.regenerate_backup_codes(&user(&u), &c).await;
                if let Some(backup) = checked("RegenerateBackupCodes", r) {
                    assert!(!backup.is_empty(), "new backup codes");
                    k.backup = backup;
                }
            }
            Call::TrustedDevices(u) => {
                checked("TrustedDevices", account.trusted_devices(&user(&u)).await);
            }
            Call::RemoveTrustedDevice(u, i) => {
                let r = account.remove_trusted_device(&user(&u), &clean(&i)).await;
                checked("RemoveTrustedDevice", r);
            }
            Call::RemoveAllTrustedDevices(u) => {
                let r = account.remove_all_trusted_devices(&user(&u)).await;
                checked("RemoveAllTrustedDevices", r);
            }
            Call::ListUsers => {
                checked("ListUsers", admin.list_users().await);
            }
            Call::UserStatus(u) => {
                checked("UserStatus", admin.user_status(&user(&u)).await);
            }
            Call::Reset(u) => {
                checked("Reset", admin.reset(&user(&u)).await);
            }
            Call::Unlock(u) => {
                checked("Unlock", admin.unlock(&user(&u)).await);
            }
            Call::AdminTrustedDevices(u) => {
                checked(
                    "Admin.TrustedDevices",
                    admin.trusted_devices(&user(&u)).await,
                );
            }
            Call::AdminRemoveTrustedDevice(u, i) => {
                let r = admin.remove_trusted_device(&user(&u), &clean(&i)).await;
                checked("Admin.RemoveTrustedDevice", r);
            }
            Call::AdminRemoveAllTrustedDevices(u) => {
                let r = admin.remove_all_trusted_devices(&user(&u)).await;
                checked("Admin.RemoveAllTrustedDevices", r);
            }
        }
    }
}

fuzz_target!(|calls: Vec<Call>| {
    // Bounded, so one input cannot run for minutes (each call is a round
    // trip, and a login may wait for the SMS gateway).
    if calls.len() > 24 {
        return;
    }
    let d = daemon();
    runtime().block_on(run(d, calls));
});
