//! The embedded backend: one SQLite database (`STATE_DIR/mfad.db`, WAL,
//! directory 0700, file 0600). Nothing else in mfad touches SQL.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{
    BackupCode, CodeId, Device, Error, Result, SendId, SendLimits, SendSlot, SessionRecord,
    SmsCode, Store, Summary, Trusted, UserState, SEND_WINDOW_SECS,
};
use crate::codes::Hashed;
use crate::factor::{DeviceData, Kind};
use crate::lockout::{Limits, Lockout};
use crate::seal::Keys;
use crate::totp;
use crate::users::Account;

pub const DB_FILE: &str = "mfad.db";

/// A user's unused backup codes: one statement, one snapshot.
const SELECT_BACKUP_CODES: &str = "SELECT rowid, salt, hash FROM backup_codes WHERE uid = ?1";
/// The first of a user's reads ([`Store::user`]).
const SELECT_USER: &str =
    "SELECT last_step, failures, locked_until, name, locks FROM users WHERE uid = ?1";

mod hwm;
mod migrate;
mod rows;

#[cfg(test)]
use migrate::MIGRATIONS;
use migrate::{migrate, SEAL};
use rows::{device_of, device_row, lockout_of, replace_backup_codes, to_i64, to_u64, trusted_row};

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Backend(e.to_string())
    }
}

/// Query plans made once per cached statement. Without this, SQLite
/// (built with STAT4, as the bundled one is) marks a statement whose plan
/// looked at a bound value as expired when its bindings are cleared, and
/// parses and plans it again at its next use: on every login.
fn stable_plans(conn: &Connection) -> Result<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

pub struct SqliteStore {
    // One connection: SQLite serialises writers anyway, and every method is
    // one transaction, so the lock is held for one operation at a time.
    // Reads use it too: a second, read-only connection could read while a
    // batch commits, but every write by this one would empty its page
    // cache (WAL), so that each read went to the file again; at 100,000
    // users that cost more than now and then waiting for a commit.
    conn: Arc<Mutex<Connection>>,
    keys: Arc<Keys>,
    /// The group committer's queue (see [`SqliteStore::batched`]).
    jobs: Mutex<Option<Sender<Msg>>>,
    /// The high-water mark and the light path's bookkeeping.
    mark: Arc<Mark>,
    /// Set when this start found the database still marked running: TOTP
    /// steps up to it are refused for every user.
    refused_through: Option<u64>,
    /// Joined when the store is dropped, so that the database is closed
    /// (and its WAL checkpointed away) by then.
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// The most operations one commit covers.
const MAX_BATCH: usize = 256;

/// What the store thread is asked to do.
enum Msg {
    /// An operation to commit durably, in a batch.
    Job(Job),
    /// Light commits have piled up: checkpoint the WAL now.
    Checkpoint,
}

/// The durable high-water mark `H` of TOTP steps (see `hwm.rs`) and what
/// the light path (accepts and failure counts, committed with
/// synchronous = NORMAL on the caller's thread) leaves for the store
/// thread. `hwm` changes only under the writer connection's lock, and
/// only upward, after the commit that made it durable.
struct Mark {
    /// Whether accepts and failure counts take the light path: this store
    /// serves the database (see [`SqliteStore::open_serving`]) and has not
    /// been stopped cleanly.
    light: AtomicBool,
    hwm: AtomicU64,
    /// A TOTP code was accepted since `hwm` was last raised.
    accepted: AtomicBool,
    /// Light commits since the last checkpoint.
    unsynced: AtomicUsize,
}

/// How often the store thread checkpoints light commits and raises `H`
/// ahead of time, when nothing else wakes it. An OS crash or power cut
/// loses at most the light commits of about this long (and of
/// [`CHECKPOINT_EVERY`] commits): failure counts and `last_used` times;
/// `H` covers the lost accepts.
const TICK: Duration = Duration::from_secs(1);

/// One operation for the group committer: run inside the batch's
/// transaction (under a savepoint of its own), its result sent back only
/// once the batch is committed.
struct Job {
    run: Op,
    reply: SyncSender<Result<Answer>>,
}

/// A job's result, typed again by [`SqliteStore::batched`].
type Answer = Box<dyn std::any::Any + Send>;
/// A job's operation.
type Op = Box<dyn FnOnce(&Connection) -> Result<Answer> + Send>;

/// The group committer: takes every operation waiting, runs them in one
/// transaction, each under a savepoint (a failing one is undone alone),
/// commits once (one fsync for the batch, synchronous = FULL), and only
/// then answers each. Nobody hears "accepted" before that commit is on
/// disk; a failed commit fails every operation of the batch.
///
/// The same thread checkpoints the WAL (which is also what fsyncs the
/// light commits) and raises the high-water mark ahead of the logins that
/// would need it.
fn group_committer(conn: Arc<Mutex<Connection>>, mark: Arc<Mark>, jobs: Receiver<Msg>) {
    let mut since_checkpoint = 0usize;
    let mut last_tick = Instant::now();
    loop {
        let msg = match jobs.recv_timeout(TICK) {
            Ok(msg) => Some(msg),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let guard = match conn.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut checkpoint = false;
        match msg {
            Some(Msg::Job(first)) => {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match jobs.try_recv() {
                        Ok(Msg::Job(job)) => batch.push(job),
                        Ok(Msg::Checkpoint) => checkpoint = true,
                        Err(_) => break,
                    }
                }
                let results = run_batch(&guard, &mut batch);
                for (job, result) in batch.into_iter().zip(results) {
                    let _ = job.reply.send(result);
                }
                since_checkpoint += 1;
            }
            Some(Msg::Checkpoint) => checkpoint = true,
            None => {}
        }
        // Once a tick (a busy queue never times out), whatever came.
        if last_tick.elapsed() >= TICK {
            last_tick = Instant::now();
            checkpoint |= mark.unsynced.load(Relaxed) > 0;
            raise_ahead(&guard, &mark);
        }
        // The WAL copied back into the database after the answers are
        // out, never inside a login's commit. Here on the writer, right
        // after a commit, so that the next write starts the WAL over; a
        // checkpointer beside a busy writer never catches up, and the WAL
        // (which every read searches) would grow without end.
        if checkpoint || since_checkpoint >= CHECKPOINT_EVERY {
            mark.unsynced.store(0, Relaxed);
            let _ = guard.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            since_checkpoint = 0;
        }
        drop(guard);
    }
}

/// Raises `H` on the store thread, in a commit of its own (fsynced), when
/// logins would soon need it (see [`hwm::raise_early`]).
fn raise_ahead(conn: &Connection, mark: &Mark) {
    if !mark.light.load(Relaxed) {
        return;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let Some(h) = hwm::raise_early(
        mark.hwm.load(Relaxed),
        totp::step_at(now),
        mark.accepted.load(Relaxed),
    ) else {
        return;
    };
    // On failure H stays: the next login raises it itself.
    if transaction(conn, |c| set_hwm(c, h)).is_ok() {
        mark.hwm.fetch_max(h, Relaxed);
        mark.accepted.store(false, Relaxed);
    }
}

/// Writes `h` as the high-water mark (never lowering it).
fn set_hwm(conn: &Connection, h: u64) -> Result<()> {
    conn.prepare_cached("UPDATE run_state SET hwm = max(hwm, ?1) WHERE id = 1")?
        .execute([to_i64(h)])?;
    Ok(())
}

/// Runs `op` in one transaction of its own on `conn`, committed with the
/// connection's synchronous setting (FULL unless [`light_commit`] says).
fn transaction<T>(conn: &Connection, op: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    exec(conn, "BEGIN IMMEDIATE")?;
    let result = op(conn).and_then(|v| {
        exec(conn, "COMMIT")?;
        Ok(v)
    });
    if result.is_err() {
        let _ = exec(conn, "ROLLBACK");
    }
    result
}

/// Runs the reads of `op` in one read transaction: one snapshot, and the
/// WAL's read lock taken once. BEGIN and COMMIT are cached statements
/// (rusqlite's `Transaction` parses them again at every use, on the path
/// of every login).
fn read_transaction<T>(conn: &Connection, op: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    exec(conn, "BEGIN")?;
    let result = op(conn);
    // Nothing to undo in a read transaction: COMMIT ends it either way.
    let end = exec(conn, "COMMIT");
    let value = result?;
    end?;
    Ok(value)
}

/// Runs `op` as one transaction on the writer `conn`, on the caller's
/// thread: with `fsync`, committed durably (synchronous = FULL, the
/// connection's setting); without, committed with synchronous = NORMAL
/// (written to the WAL before the reply, so a crash of mfad loses
/// nothing; fsynced by the next checkpoint).
fn light_commit<T>(
    conn: &Connection,
    fsync: bool,
    op: impl FnOnce(&Connection) -> Result<T>,
) -> Result<T> {
    if fsync {
        // Set for each durable commit, never left to the one before: a
        // switch back to FULL that failed must not leave it unsynced.
        exec(conn, FULL)?;
        return transaction(conn, op);
    }
    exec(conn, "PRAGMA synchronous = NORMAL")?;
    let result = transaction(conn, op);
    // Every other write on this connection must stay fsynced.
    exec(conn, FULL)?;
    result
}

const FULL: &str = "PRAGMA synchronous = FULL";

/// Accepts TOTP `step` (see [`Store::accept_totp_step`]) in the current
/// transaction.
fn accept_step(conn: &Connection, uid: u32, device_id: &str, step: u64, now: i64) -> Result<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE users SET last_step = ?2, failures = 0, locked_until = 0, locks = 0
             WHERE uid = ?1 AND last_step < ?2 AND locked_until <= ?3",
        )?
        .execute(params![uid, to_i64(step), now])?;
    if changed != 1 {
        return Ok(false);
    }
    conn.prepare_cached("UPDATE devices SET last_used = ?3 WHERE uid = ?1 AND id = ?2")?
        .execute(params![uid, device_id, now])?;
    Ok(true)
}

/// Counts one failure (see [`Store::record_failure`]) in the current
/// transaction.
fn count_failure(tx: &Connection, uid: u32, now: i64, limits: Limits) -> Result<Lockout> {
    let current = tx
        .prepare_cached("SELECT failures, locked_until, locks FROM users WHERE uid = ?1")?
        .query_row([uid], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .optional()?;
    let Some(current) = current else {
        // Nothing to lock for a user who never enrolled.
        return Ok(Lockout::default().after_failure(now, limits));
    };
    let next = lockout_of(current).after_failure(now, limits);
    tx.prepare_cached(
        "UPDATE users SET failures = ?2, locked_until = ?3, locks = ?4 WHERE uid = ?1",
    )?
    .execute(params![uid, next.failures, next.locked_until, next.locks])?;
    Ok(next)
}

/// Marks the database running, durably, before any light commit. When it
/// was marked running already (mfad did not stop cleanly: the last light
/// commits may be lost), raises every user's last step to `H` first, in
/// the same commit. Returns `H` and that floor.
fn start_running(conn: &mut Connection) -> Result<(u64, Option<u64>)> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (h, running): (i64, i64) =
        tx.query_row("SELECT hwm, running FROM run_state WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let h = to_u64(h);
    let floor = hwm::floor_after(running != 0, h);
    if let Some(floor) = floor {
        tx.execute(
            "UPDATE users SET last_step = ?1 WHERE last_step < ?1",
            [to_i64(floor)],
        )?;
    }
    tx.execute("UPDATE run_state SET running = 1 WHERE id = 1", [])?;
    tx.commit()?;
    Ok((h, floor))
}

/// Batches between two WAL checkpoints: a few hundred pages of WAL.
const CHECKPOINT_EVERY: usize = 100;

/// Runs `batch` in one transaction: each job's result, or the commit's
/// error for all of them.
fn run_batch(conn: &Connection, batch: &mut [Job]) -> Vec<Result<Answer>> {
    let n = batch.len();
    let fail_all = |e: rusqlite::Error| {
        let msg = e.to_string();
        (0..n)
            .map(|_| Err(Error::Backend(msg.clone())))
            .collect::<Vec<_>>()
    };
    // Durable whatever the last light commit left (see light_commit).
    if let Err(e) = exec(conn, FULL).and_then(|()| exec(conn, "BEGIN IMMEDIATE")) {
        return fail_all(e);
    }
    let mut results = Vec::with_capacity(batch.len());
    for job in batch.iter_mut() {
        let op = std::mem::replace(
            &mut job.run,
            Box::new(|_| Err(Error::Backend("run twice".into()))),
        );
        let result = match exec(conn, "SAVEPOINT op") {
            Ok(()) => {
                let r = op(conn);
                let end = if r.is_ok() {
                    exec(conn, "RELEASE op")
                } else {
                    exec(conn, "ROLLBACK TO op").and_then(|()| exec(conn, "RELEASE op"))
                };
                match end {
                    Ok(()) => r,
                    Err(e) => Err(Error::from(e)),
                }
            }
            Err(e) => Err(Error::from(e)),
        };
        results.push(result);
    }
    if let Err(e) = exec(conn, "COMMIT") {
        let _ = exec(conn, "ROLLBACK");
        return fail_all(e);
    }
    results
}

/// Runs the statement `sql` (no parameters, no rows) from the connection's
/// cache of prepared statements.
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

impl SqliteStore {
    /// Opens (creating if needed) the database in `dir`, fixing modes to
    /// 0700/0600 so a careless install cannot leave secrets readable.
    /// `account_of` resolves the user names of a database from before state
    /// was kept by UID (schema 5).
    ///
    /// This store fsyncs every write and leaves the running and stopped
    /// marks alone: for `mfad --check-config` and migrations, which may
    /// open the database beside a running mfad or after a crash.
    pub fn open(
        dir: &Path,
        account_of: &dyn Fn(&str) -> Option<Account>,
        keys: Arc<Keys>,
    ) -> Result<SqliteStore> {
        SqliteStore::open_in(dir, account_of, keys, false)
    }

    /// [`SqliteStore::open`] for the daemon that serves the database, and
    /// holds the state directory's lock (`mfad.lock`) while it does: it
    /// marks the database running (refusing steps up to the mark after an
    /// unclean stop), commits accepts and failure counts without an fsync,
    /// and marks it stopped at [`Store::stop_cleanly`].
    pub fn open_serving(
        dir: &Path,
        account_of: &dyn Fn(&str) -> Option<Account>,
        keys: Arc<Keys>,
    ) -> Result<SqliteStore> {
        SqliteStore::open_in(dir, account_of, keys, true)
    }

    fn open_in(
        dir: &Path,
        account_of: &dyn Fn(&str) -> Option<Account>,
        keys: Arc<Keys>,
        light: bool,
    ) -> Result<SqliteStore> {
        let io =
            |what: &str, e: std::io::Error| Error::Setup(format!("{what} {}: {e}", dir.display()));
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| io("cannot create state directory", e))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| io("cannot set mode 0700 on", e))?;
        let path = dir.join(DB_FILE);
        let conn = Connection::open(&path)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
            .map_err(|e| io("cannot set mode 0600 on the database in", e))?;
        let store = SqliteStore::init(conn, account_of, keys, light)?;
        // The store thread checkpoints after its answers (see
        // group_committer), often enough that SQLite's own automatic
        // checkpoint (at 1000 pages of WAL, inside a commit) is left for
        // the writes that do not go through it (enrollment, admin).
        Ok(store)
    }

    /// Whether the database in `dir` holds sealed secrets (schema 7 or
    /// newer): then it is useless without its key file, which must never be
    /// made anew.
    pub fn holds_sealed_secrets(dir: &Path) -> Result<bool> {
        let path = dir.join(DB_FILE);
        if !path.exists() {
            return Ok(false);
        }
        let conn = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        Ok(usize::try_from(version).is_ok_and(|v| v > SEAL))
    }

    /// A private in-memory database: for unit tests, the fuzz targets, and
    /// `mfad --check-config` on a machine where mfad never ran.
    pub fn open_in_memory() -> Result<SqliteStore> {
        SqliteStore::init(
            Connection::open_in_memory()?,
            &|_| None,
            Arc::new(Keys::ephemeral().map_err(Error::Setup)?),
            true,
        )
    }

    fn init(
        mut conn: Connection,
        account_of: &dyn Fn(&str) -> Option<Account>,
        keys: Arc<Keys>,
        light: bool,
    ) -> Result<SqliteStore> {
        // WAL for concurrent readers; FULL sync so that whatever is not on
        // the light path (one-time codes used, SMS sends, enrollments)
        // survives a power cut; the light path sets NORMAL per commit.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Deleted secrets and codes are overwritten, not left in free pages.
        conn.pragma_update(None, "secure_delete", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        stable_plans(&conn)?;
        migrate(&mut conn, account_of, &keys)?;
        conn.set_prepared_statement_cache_capacity(64);
        let (hwm, refused_through) = if light {
            start_running(&mut conn)?
        } else {
            (0, None)
        };
        let mark = Arc::new(Mark {
            light: AtomicBool::new(light),
            hwm: AtomicU64::new(hwm),
            accepted: AtomicBool::new(false),
            unsynced: AtomicUsize::new(0),
        });
        let conn = Arc::new(Mutex::new(conn));
        let (jobs, queue) = mpsc::channel();
        let (committer, marks) = (conn.clone(), mark.clone());
        let thread = std::thread::Builder::new()
            .name("mfad-store".into())
            .spawn(move || group_committer(committer, marks, queue))
            .map_err(|e| Error::Setup(format!("cannot start the store thread: {e}")))?;
        Ok(SqliteStore {
            conn,
            keys,
            jobs: Mutex::new(Some(jobs)),
            mark,
            refused_through,
            threads: vec![thread],
        })
    }

    /// Runs `op` on the group committer's thread, in a transaction shared
    /// with the operations that came at the same time, and returns its
    /// result once that transaction is committed. `op` is one atomic
    /// operation (its own savepoint); it must not begin a transaction.
    fn batched<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, answer) = mpsc::sync_channel(1);
        let job = Msg::Job(Job {
            run: Box::new(move |conn| op(conn).map(|v| Box::new(v) as Answer)),
            reply,
        });
        let jobs = match self.jobs.lock() {
            Ok(jobs) => jobs,
            Err(poisoned) => poisoned.into_inner(),
        };
        let gone = || Error::Backend("the store thread is gone".into());
        jobs.as_ref()
            .ok_or_else(gone)?
            .send(job)
            .map_err(|_| gone())?;
        drop(jobs);
        let result = answer
            .recv()
            .map_err(|_| Error::Backend("the store thread is gone".into()))??;
        result
            .downcast::<T>()
            .map(|b| *b)
            .map_err(|_| Error::Backend("a store result of the wrong type".into()))
    }

    /// Counts a light commit; every [`CHECKPOINT_EVERY`] asks the store
    /// thread for a checkpoint (it also does one every [`TICK`]).
    fn count_light_commit(&self) {
        if self.mark.unsynced.fetch_add(1, Relaxed) + 1 == CHECKPOINT_EVERY {
            if let Ok(jobs) = self.jobs.lock() {
                if let Some(jobs) = jobs.as_ref() {
                    let _ = jobs.send(Msg::Checkpoint);
                }
            }
        }
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // Every operation is one transaction, so a panic in another thread
        // cannot have left half of one behind: carry on.
        match self.conn.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// [`Store::user`]'s reads, in the caller's transaction.
    fn user_in(&self, conn: &Connection, uid: u32) -> Result<UserState> {
        let base = conn
            .prepare_cached(SELECT_USER)?
            .query_row([uid], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    (
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(4)?,
                    ),
                    r.get::<_, String>(3)?,
                ))
            })
            .optional()?;
        let Some((last_step, lockout, name)) = base else {
            return Ok(UserState::default());
        };
        let devices = conn
            .prepare_cached(
                "SELECT id, kind, label, data, created, last_used FROM devices
                 WHERE uid = ?1 ORDER BY created, id",
            )?
            .query_map([uid], device_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?
            .into_iter()
            .map(|row| device_of(row, &self.keys, uid))
            .collect::<Result<Vec<_>>>()?;
        let sms_codes = conn
            .prepare_cached(
                "SELECT salt, hash, expires FROM sms_codes WHERE uid = ?1 ORDER BY rowid",
            )?
            .query_map([uid], |r| {
                Ok(SmsCode {
                    code: Hashed {
                        salt: r.get(0)?,
                        hash: r.get(1)?,
                    },
                    expires: r.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(UserState {
            name,
            last_step: to_u64(last_step),
            lockout: lockout_of(lockout),
            devices,
            sms_codes,
        })
    }

    /// How often SQLite ran the statement that reads backup codes (its
    /// cached statement's own count: it starts again at 0 should the cache
    /// ever drop it).
    #[cfg(test)]
    pub fn backup_code_reads(&self) -> i32 {
        self.runs_of(SELECT_BACKUP_CODES)
    }

    /// How often SQLite ran the first of a user's reads.
    #[cfg(test)]
    pub fn user_reads(&self) -> i32 {
        self.runs_of(SELECT_USER)
    }

    #[cfg(test)]
    fn runs_of(&self, sql: &str) -> i32 {
        self.conn()
            .prepare_cached(sql)
            .map(|s| s.get_status(rusqlite::StatementStatus::Run))
            .unwrap_or(-1)
    }

    #[cfg(test)]
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn()
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the queue ends the store thread.
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.stop_cleanly();
    }
}

impl Store for SqliteStore {
    fn user(&self, uid: u32) -> Result<UserState> {
        read_transaction(&self.conn(), |conn| self.user_in(conn, uid))
    }

    fn backup_codes(&self, uid: u32) -> Result<Vec<BackupCode>> {
        let conn = self.conn();
        let codes = conn
            .prepare_cached(SELECT_BACKUP_CODES)?
            .query_map([uid], |r| {
                Ok(BackupCode {
                    id: CodeId(r.get(0)?),
                    code: Hashed {
                        salt: r.get(1)?,
                        hash: r.get(2)?,
                    },
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(codes)
    }

    fn accept_totp_step(&self, uid: u32, device_id: &str, step: u64, now: i64) -> Result<bool> {
        // On this thread, under the writer's lock (read first: a clean
        // stop ends the light path under it). Light: no fsync, unless H
        // must first cover `step`; then H and the accept share one fsynced
        // commit. Otherwise every accept is fsynced.
        let conn = self.conn();
        let light = self.mark.light.load(Relaxed);
        let raise = light
            .then(|| hwm::raise_for(self.mark.hwm.load(Relaxed), step, totp::step_at(now)))
            .flatten();
        let fsync = !light || raise.is_some();
        let accepted = light_commit(&conn, fsync, |c| {
            if let Some(h) = raise {
                set_hwm(c, h)?;
            }
            accept_step(c, uid, device_id, step, now)
        })?;
        if let Some(h) = raise {
            self.mark.hwm.fetch_max(h, Relaxed);
        }
        drop(conn);
        if accepted {
            self.mark.accepted.store(true, Relaxed);
        }
        if !fsync {
            self.count_light_commit();
        }
        Ok(accepted)
    }

    fn refused_through(&self) -> Option<u64> {
        self.refused_through
    }

    fn stop_cleanly(&self) {
        let conn = self.conn();
        // Whatever comes after the mark (a call still in flight) is
        // fsynced, as on the old path.
        if !self.mark.light.swap(false, Relaxed) {
            return;
        }
        // Every commit into the database file (fsynced), then the mark of
        // a clean stop, the last write.
        let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        let _ = transaction(&conn, |c| {
            c.execute("UPDATE run_state SET running = 0 WHERE id = 1", [])?;
            Ok(())
        });
    }

    fn use_backup_code(&self, uid: u32, id: CodeId, now: i64) -> Result<bool> {
        let id = id.0;
        self.batched(move |conn| {
            let deleted = conn
                .prepare_cached(
                    // A right code during a lockout still fails, even if the
                    // lock began after the caller read the user's state.
                    "DELETE FROM backup_codes WHERE uid = ?1 AND rowid = ?2
                     AND NOT EXISTS (SELECT 1 FROM users WHERE uid = ?1 AND locked_until > ?3)",
                )?
                .execute(params![uid, id, now])?;
            if deleted != 1 {
                return Ok(false);
            }
            conn.prepare_cached(
                "UPDATE users SET failures = 0, locked_until = 0, locks = 0 WHERE uid = ?1",
            )?
            .execute([uid])?;
            Ok(true)
        })
    }

    fn use_sms_code(&self, uid: u32, device_id: &str, code: &Hashed, now: i64) -> Result<bool> {
        let (device_id, code) = (device_id.to_string(), code.clone());
        self.batched(move |tx| {
            let deleted = tx.execute(
                "DELETE FROM sms_codes WHERE uid = ?1 AND salt = ?2 AND hash = ?3 AND expires > ?4
             AND NOT EXISTS (SELECT 1 FROM users WHERE uid = ?1 AND locked_until > ?4)",
                params![uid, code.salt, code.hash, now],
            )?;
            if deleted == 0 {
                return Ok(false);
            }
            // One login, one code: the others sent for it die with it.
            tx.execute("DELETE FROM sms_codes WHERE uid = ?1", [uid])?;
            tx.execute(
                "UPDATE users SET failures = 0, locked_until = 0, locks = 0 WHERE uid = ?1",
                [uid],
            )?;
            tx.execute(
                "UPDATE devices SET last_used = ?3 WHERE uid = ?1 AND id = ?2",
                params![uid, device_id, now],
            )?;
            Ok(true)
        })
    }

    fn record_failure(&self, uid: u32, now: i64, limits: Limits) -> Result<Lockout> {
        // Light: in the WAL before the reply (a crash of mfad keeps it),
        // fsynced by the next checkpoint (an OS crash may lose the last
        // second's counts). Otherwise fsynced.
        let conn = self.conn();
        let light = self.mark.light.load(Relaxed);
        let lockout = light_commit(&conn, !light, |c| count_failure(c, uid, now, limits))?;
        drop(conn);
        if light {
            self.count_light_commit();
        }
        Ok(lockout)
    }

    fn add_sms_code(&self, uid: u32, code: &Hashed, expires: i64, keep: usize) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO sms_codes (uid, salt, hash, expires) VALUES (?1, ?2, ?3, ?4)",
            params![uid, code.salt, code.hash, expires],
        )?;
        tx.execute(
            "DELETE FROM sms_codes WHERE uid = ?1 AND rowid NOT IN
             (SELECT rowid FROM sms_codes WHERE uid = ?1 ORDER BY rowid DESC LIMIT ?2)",
            params![uid, i64::try_from(keep).unwrap_or(i64::MAX)],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn reserve_send(&self, uid: u32, now: i64, limits: SendLimits) -> Result<SendSlot> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let since = now - SEND_WINDOW_SECS;
        tx.execute("DELETE FROM sms_sends WHERE at <= ?1", [since])?;
        let (count, oldest, newest): (i64, Option<i64>, Option<i64>) = tx.query_row(
            "SELECT count(*), min(at), max(at) FROM sms_sends WHERE uid = ?1",
            [uid],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        if let Some(newest) = newest.filter(|n| now < n + limits.cooldown) {
            return Ok(SendSlot::Cooldown {
                next_at: newest + limits.cooldown,
            });
        }
        if count >= i64::from(limits.per_user) {
            return Ok(SendSlot::UserFull {
                next_at: oldest.unwrap_or(now) + SEND_WINDOW_SECS,
            });
        }
        let (total, oldest): (i64, Option<i64>) =
            tx.query_row("SELECT count(*), min(at) FROM sms_sends", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        if total >= i64::from(limits.total) {
            return Ok(SendSlot::TotalFull {
                next_at: oldest.unwrap_or(now) + SEND_WINDOW_SECS,
            });
        }
        tx.execute(
            "INSERT INTO sms_sends (uid, at) VALUES (?1, ?2)",
            params![uid, now],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(SendSlot::Granted(SendId(id)))
    }

    fn release_send(&self, id: SendId) -> Result<()> {
        self.conn()
            .prepare_cached("DELETE FROM sms_sends WHERE rowid = ?1")?
            .execute([id.0])?;
        Ok(())
    }

    fn add_device(
        &self,
        account: &Account,
        device: &Device,
        step: u64,
        backup: Option<&[Hashed]>,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO users (uid, name, last_step) VALUES (?1, ?2, ?3)
             ON CONFLICT(uid) DO UPDATE SET name = excluded.name,
             last_step = max(last_step, excluded.last_step)",
            params![account.uid, account.name, to_i64(step)],
        )?;
        tx.execute(
            "INSERT INTO devices (uid, id, kind, label, data, created, last_used)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0)",
            params![
                account.uid,
                device.id,
                device.data.kind().as_str(),
                device.label,
                device
                    .data
                    .encode(&self.keys, account.uid, &device.id)
                    .map_err(Error::Corrupt)?,
                device.created
            ],
        )?;
        if let Some(backup) = backup {
            replace_backup_codes(&tx, account.uid, backup)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn replace_device_data(&self, uid: u32, device_id: &str, data: &DeviceData) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE devices SET data = ?4 WHERE uid = ?1 AND id = ?2 AND kind = ?3",
            params![
                uid,
                device_id,
                data.kind().as_str(),
                data.encode(&self.keys, uid, device_id)
                    .map_err(Error::Corrupt)?
            ],
        )?;
        tx.execute("DELETE FROM sms_codes WHERE uid = ?1", [uid])?;
        tx.commit()?;
        Ok(n == 1)
    }

    fn remove_device(&self, uid: u32, device_id: &str) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "DELETE FROM devices WHERE uid = ?1 AND id = ?2",
            params![uid, device_id],
        )?;
        let left: i64 =
            tx.query_row("SELECT count(*) FROM devices WHERE uid = ?1", [uid], |r| {
                r.get(0)
            })?;
        if left == 0 {
            tx.execute("DELETE FROM backup_codes WHERE uid = ?1", [uid])?;
        }
        // A code sent to a phone that is gone must not log in.
        tx.execute(
            "DELETE FROM sms_codes WHERE uid = ?1
             AND NOT EXISTS (SELECT 1 FROM devices WHERE uid = ?1 AND kind = ?2)",
            params![uid, Kind::Sms.as_str()],
        )?;
        tx.commit()?;
        Ok(n == 1)
    }

    fn replace_backup_codes(&self, uid: u32, backup: &[Hashed]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        replace_backup_codes(&tx, uid, backup)?;
        tx.commit()?;
        Ok(())
    }

    fn trusted(&self, uid: u32, kind: &str, identity: &str) -> Result<Option<Trusted>> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT id, kind, identity, trusted_at, first_used, last_used FROM trusted_devices
                 WHERE uid = ?1 AND kind = ?2 AND identity = ?3",
            )?
            .query_row(params![uid, kind, identity], trusted_row)
            .optional()?)
    }

    fn trusted_list(&self, uid: u32) -> Result<Vec<Trusted>> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT id, kind, identity, trusted_at, first_used, last_used FROM trusted_devices
                 WHERE uid = ?1 ORDER BY first_used, id",
            )?
            .query_map([uid], trusted_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn trust(&self, uid: u32, new_id: &str, kind: &str, identity: &str, now: i64) -> Result<()> {
        self.conn()
            .prepare_cached(
                "INSERT INTO trusted_devices (uid, id, kind, identity, trusted_at, first_used, last_used)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?5)
                 ON CONFLICT(uid, kind, identity)
                 DO UPDATE SET trusted_at = excluded.trusted_at, last_used = excluded.last_used",
            )?
            .execute(params![uid, new_id, kind, identity, now])?;
        Ok(())
    }

    fn touch_trusted(&self, uid: u32, id: &str, now: i64) -> Result<()> {
        let id = id.to_string();
        self.batched(move |conn| {
            conn.prepare_cached(
                "UPDATE trusted_devices SET last_used = ?3 WHERE uid = ?1 AND id = ?2",
            )?
            .execute(params![uid, id, now])?;
            Ok(())
        })
    }

    fn untrust(&self, uid: u32, id: Option<&str>) -> Result<u32> {
        let conn = self.conn();
        let n = match id {
            Some(id) => conn.execute(
                "DELETE FROM trusted_devices WHERE uid = ?1 AND id = ?2",
                params![uid, id],
            )?,
            None => conn.execute("DELETE FROM trusted_devices WHERE uid = ?1", [uid])?,
        };
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    fn reset(&self, uid: u32) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let devices = tx.execute("DELETE FROM devices WHERE uid = ?1", [uid])?;
        let codes = tx.execute("DELETE FROM backup_codes WHERE uid = ?1", [uid])?;
        let trusted = tx.execute("DELETE FROM trusted_devices WHERE uid = ?1", [uid])?;
        tx.execute("DELETE FROM sms_codes WHERE uid = ?1", [uid])?;
        // The next login that must enroll starts a new grace period.
        let grace = tx.execute("DELETE FROM grace WHERE uid = ?1", [uid])?;
        let locks = tx.execute(
            "UPDATE users SET failures = 0, locked_until = 0, locks = 0
             WHERE uid = ?1 AND (failures > 0 OR locked_until > 0 OR locks > 0)",
            [uid],
        )?;
        tx.commit()?;
        Ok(devices + codes + trusted + locks + grace > 0)
    }

    fn start_grace(&self, uid: u32, now: i64) -> Result<i64> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT OR IGNORE INTO grace (uid, started) VALUES (?1, ?2)",
            params![uid, now],
        )?;
        let started = tx.query_row("SELECT started FROM grace WHERE uid = ?1", [uid], |r| {
            r.get(0)
        })?;
        tx.commit()?;
        Ok(started)
    }

    fn grace_starts(&self) -> Result<Vec<(u32, i64)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT uid, started FROM grace ORDER BY uid")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn session_choice(&self, uid: u32) -> Result<Option<i64>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT secs FROM session_choice WHERE uid = ?1",
                [uid],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn set_session_choice(&self, uid: u32, secs: Option<i64>) -> Result<()> {
        let conn = self.conn();
        match secs {
            Some(secs) => conn.execute(
                "INSERT INTO session_choice (uid, secs) VALUES (?1, ?2)
                 ON CONFLICT (uid) DO UPDATE SET secs = excluded.secs",
                params![uid, secs],
            )?,
            None => conn.execute("DELETE FROM session_choice WHERE uid = ?1", [uid])?,
        };
        Ok(())
    }

    fn add_session(&self, s: &SessionRecord) -> Result<()> {
        self.conn().execute(
            "INSERT INTO sessions (id, uid, user, service, tty, rhost, xdg_session_id, pid,
                                   pid_start, started, ends)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                s.id,
                s.uid,
                s.user,
                s.service,
                s.tty,
                s.rhost,
                s.xdg_session_id,
                s.pid,
                to_i64(s.pid_start),
                s.started,
                s.ends
            ],
        )?;
        Ok(())
    }

    fn remove_session(&self, id: &str) -> Result<bool> {
        Ok(self
            .conn()
            .execute("DELETE FROM sessions WHERE id = ?1", [id])?
            == 1)
    }

    fn sessions(&self) -> Result<Vec<SessionRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, uid, user, service, tty, rhost, xdg_session_id, pid, pid_start,
                    started, ends
             FROM sessions ORDER BY ends, id",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(SessionRecord {
                    id: r.get(0)?,
                    uid: r.get(1)?,
                    user: r.get(2)?,
                    service: r.get(3)?,
                    tty: r.get(4)?,
                    rhost: r.get(5)?,
                    xdg_session_id: r.get(6)?,
                    pid: r.get(7)?,
                    pid_start: to_u64(r.get(8)?),
                    started: r.get(9)?,
                    ends: r.get(10)?,
                })
            })?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn unlock(&self, uid: u32) -> Result<bool> {
        let n = self.conn().execute(
            "UPDATE users SET failures = 0, locked_until = 0, locks = 0 WHERE uid = ?1",
            [uid],
        )?;
        Ok(n == 1)
    }

    fn list_users(&self) -> Result<Vec<Summary>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT u.name, u.uid,
                    (SELECT count(*) FROM devices d WHERE d.uid = u.uid),
                    (SELECT count(*) FROM backup_codes b WHERE b.uid = u.uid),
                    u.locked_until, u.failures
             FROM users u ORDER BY u.name, u.uid",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    Summary {
                        user: r.get(0)?,
                        uid: r.get(1)?,
                        devices: r.get(2)?,
                        backup_codes_left: r.get(3)?,
                        locked_until: r.get(4)?,
                    },
                    r.get::<_, i64>(5)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows
            .into_iter()
            .filter(|(s, failures)| {
                s.devices > 0 || s.backup_codes_left > 0 || *failures > 0 || s.locked_until > 0
            })
            .map(|(s, _)| s)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::store::conformance::suite!(SqliteStore::open_in_memory().unwrap());

    #[test]
    fn files_get_private_modes_and_schema_is_versioned() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let s = SqliteStore::open(&state, &|_| None, Arc::new(Keys::for_tests())).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&state.join(DB_FILE)), 0o600);
        drop(s);
        // Reopening applies nothing twice.
        let s = SqliteStore::open(&state, &|_| None, Arc::new(Keys::for_tests())).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
    }

    /// A login reads the user with cached statements: none
    /// is parsed and planned again from one login to the next.
    #[test]
    fn a_users_reads_are_not_prepared_again_at_each_login() {
        use crate::store::conformance::{alice, totp, ALICE};
        use rusqlite::StatementStatus::{RePrepare, Run as RunCount};
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path(), &|_| None, Arc::new(Keys::for_tests())).unwrap();
        s.add_device(&alice(), &totp("a1"), 1, None).unwrap();
        let now = crate::dbus::now();
        let step = crate::totp::step_at(now);
        for i in 0..3 {
            assert_eq!(s.user(ALICE).unwrap().devices.len(), 1);
            assert!(s.backup_codes(ALICE).unwrap().is_empty());
            assert!(s.accept_totp_step(ALICE, "a1", step + i, now).unwrap());
        }
        let reader = s.conn();
        for sql in [
            SELECT_USER,
            "SELECT id, kind, label, data, created, last_used FROM devices
                 WHERE uid = ?1 ORDER BY created, id",
            SELECT_BACKUP_CODES,
            "SELECT salt, hash, expires FROM sms_codes WHERE uid = ?1 ORDER BY rowid",
        ] {
            let stmt = reader.prepare_cached(sql).unwrap();
            assert_eq!(stmt.get_status(RunCount), 3, "{sql} ran from the cache");
            assert_eq!(stmt.get_status(RePrepare), 0, "{sql}");
        }
        // Their read transaction too (rusqlite's Transaction would parse
        // BEGIN and COMMIT each time).
        let begin = reader.prepare_cached("BEGIN").unwrap();
        assert_eq!(begin.get_status(RunCount), 3, "BEGIN ran from the cache");
    }

    /// A read transaction ends whatever its reads did.
    #[test]
    fn a_read_transaction_ends_after_a_failed_read() {
        let conn = Connection::open_in_memory().unwrap();
        let failed: Result<()> = read_transaction(&conn, |c| {
            c.prepare_cached("SELECT nothing FROM nowhere")?;
            Ok(())
        });
        assert!(failed.is_err());
        assert!(conn.is_autocommit(), "the transaction was left open");
        let ok = read_transaction(&conn, |c| {
            Ok(c.query_row("SELECT 7", [], |r| r.get::<_, i64>(0))?)
        });
        assert_eq!(ok.unwrap(), 7);
        assert!(conn.is_autocommit());
    }

    /// One batch, one transaction: an operation that fails is undone
    /// alone, the others commit, and each caller gets its own result.
    #[test]
    fn a_failing_operation_in_a_batch_is_undone_alone() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER)").unwrap();
        let job = |v: i64, fail: bool| {
            let (reply, _) = mpsc::sync_channel(1);
            Job {
                run: Box::new(move |c: &Connection| {
                    c.execute("INSERT INTO t VALUES (?1)", [v])?;
                    if fail {
                        return Err(Error::Backend("refused".into()));
                    }
                    Ok(Box::new(v) as Answer)
                }),
                reply,
            }
        };
        let mut batch = vec![job(1, false), job(2, true), job(3, false)];
        let results = run_batch(&conn, &mut batch);
        let oks: Vec<bool> = results.iter().map(Result::is_ok).collect();
        assert_eq!(oks, [true, false, true]);
        let kept: Vec<i64> = conn
            .prepare("SELECT v FROM t ORDER BY v")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(kept, [1, 3]);
    }

    /// A durable light_commit is FULL whatever the connection was left at;
    /// a light one is NORMAL, and leaves the connection FULL.
    #[test]
    fn light_commits_set_their_own_sync_level() {
        let conn = Connection::open_in_memory().unwrap();
        let level = |c: &Connection| -> Result<i64> {
            Ok(c.query_row("PRAGMA synchronous", [], |r| r.get(0))?)
        };
        conn.execute_batch("PRAGMA synchronous = NORMAL").unwrap();
        assert_eq!(light_commit(&conn, true, level).unwrap(), 2, "FULL");
        assert_eq!(light_commit(&conn, false, level).unwrap(), 1, "NORMAL");
        assert_eq!(level(&conn).unwrap(), 2, "FULL again after");
    }

    /// A batch commits with an fsync even on a connection some earlier
    /// commit left at synchronous = NORMAL.
    #[test]
    fn a_batch_is_durable_whatever_the_connection_was_left_at() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA synchronous = NORMAL").unwrap();
        let (reply, _) = mpsc::sync_channel(1);
        let mut batch = vec![Job {
            run: Box::new(|c: &Connection| {
                let level: i64 = c.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
                Ok(Box::new(level) as Answer)
            }),
            reply,
        }];
        let mut results = run_batch(&conn, &mut batch);
        let level = results.pop().unwrap().unwrap().downcast::<i64>().unwrap();
        assert_eq!(*level, 2, "FULL");
    }

    fn run_state(dir: &Path) -> (i64, i64) {
        Connection::open(dir.join(DB_FILE))
            .unwrap()
            .query_row("SELECT hwm, running FROM run_state", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap()
    }

    /// H is on disk before an accept above it, the database is marked
    /// running while open and stopped after a clean close; a start that
    /// finds it still running refuses every step up to H for every user,
    /// once, and says so.
    #[test]
    fn an_unclean_stop_refuses_steps_up_to_the_durable_mark() {
        use crate::store::conformance::{alice, bob, totp, ALICE, BOB};
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            SqliteStore::open_serving(dir.path(), &|_| None, Arc::new(Keys::for_tests())).unwrap()
        };
        // The real time: the store thread raises H ahead of it, too.
        let now = crate::dbus::now();
        let now_step = totp::step_at(now);
        let s = open();
        assert_eq!(s.refused_through(), None, "a new database");
        s.add_device(&alice(), &totp("a1"), now_step - 5, None)
            .unwrap();
        s.add_device(&bob(), &totp("b1"), now_step - 5, None)
            .unwrap();
        assert_eq!(run_state(dir.path()), (0, 1), "running, no H yet");
        assert!(s.accept_totp_step(ALICE, "a1", now_step, now).unwrap());
        let h = to_i64(now_step + hwm::AHEAD);
        assert_eq!(run_state(dir.path()), (h, 1), "H raised with the accept");
        // Inside H: no new mark.
        assert!(s.accept_totp_step(BOB, "b1", now_step + 1, now).unwrap());
        assert_eq!(run_state(dir.path()).0, h);
        drop(s);
        assert_eq!(run_state(dir.path()), (h, 0), "stopped cleanly");

        let s = open();
        assert_eq!(s.refused_through(), None, "after a clean stop");
        assert_eq!(s.user(ALICE).unwrap().last_step, now_step);
        drop(s);
        // As a kill leaves it: still marked running.
        Connection::open(dir.path().join(DB_FILE))
            .unwrap()
            .execute("UPDATE run_state SET running = 1", [])
            .unwrap();
        let s = open();
        assert_eq!(s.refused_through(), Some(to_u64(h)));
        for (uid, device) in [(ALICE, "a1"), (BOB, "b1")] {
            assert_eq!(s.user(uid).unwrap().last_step, to_u64(h));
            assert!(!s.accept_totp_step(uid, device, to_u64(h), now).unwrap());
        }
        let later = now + 30 * (to_i64(hwm::AHEAD) + 1);
        assert!(s
            .accept_totp_step(ALICE, "a1", to_u64(h) + 1, later)
            .unwrap());
        assert!(run_state(dir.path()).0 > h, "H raised past the new accept");
    }

    /// A second opener while mfad holds the database (`mfad
    /// --check-config`) neither reads a crash into the running mark nor
    /// clears it, and fsyncs what it writes.
    #[test]
    fn a_second_opener_leaves_the_marks_alone() {
        use crate::store::conformance::{alice, totp, ALICE};
        let dir = tempfile::tempdir().unwrap();
        let keys = || Arc::new(Keys::for_tests());
        let open = || SqliteStore::open(dir.path(), &|_| None, keys()).unwrap();
        let now = crate::dbus::now();
        let now_step = totp::step_at(now);
        let first = SqliteStore::open_serving(dir.path(), &|_| None, keys()).unwrap();
        assert!(first.mark.light.load(Relaxed));
        first
            .add_device(&alice(), &totp("a1"), now_step - 5, None)
            .unwrap();
        assert!(first
            .accept_totp_step(ALICE, "a1", now_step - 1, now)
            .unwrap());
        let h = run_state(dir.path()).0;
        let second = open();
        assert_eq!(second.refused_through(), None);
        assert!(!second.mark.light.load(Relaxed));
        let later = now + 300;
        let step = totp::step_at(later);
        assert!(second.accept_totp_step(ALICE, "a1", step, later).unwrap());
        assert_eq!(run_state(dir.path()), (h, 1), "H not needed, not touched");
        drop(second);
        assert_eq!(run_state(dir.path()), (h, 1), "still running: mfad is");
        drop(first);
        assert_eq!(run_state(dir.path()), (h, 0));

        // After an unclean stop (as a kill leaves it), a check of the
        // config opens and closes the database: the next mfad still finds
        // it running, and refuses the steps up to the mark.
        Connection::open(dir.path().join(DB_FILE))
            .unwrap()
            .execute("UPDATE run_state SET running = 1", [])
            .unwrap();
        drop(open());
        assert_eq!(run_state(dir.path()), (h, 1), "the crash is not forgotten");
        let serving = SqliteStore::open_serving(dir.path(), &|_| None, keys()).unwrap();
        assert_eq!(serving.refused_through(), Some(to_u64(h)));
    }

    /// A database as the release before typed devices and UIDs left it
    /// (schema 3: an app, a phone, backup codes, a trusted device, a live SMS
    /// code, all by name) keeps every enrollment through migrations 4 and 5.
    /// Two names of one UID become one account; a name NSS no longer knows
    /// is kept apart and matches no login.
    #[test]
    fn enrollments_survive_the_migrations_to_typed_data_and_uids() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
            let tx = conn.transaction().unwrap();
            for sql in &MIGRATIONS[..3] {
                tx.execute_batch(sql).unwrap();
            }
            tx.pragma_update(None, "user_version", 3).unwrap();
            tx.execute_batch(
                "INSERT INTO users (name, last_step, failures) VALUES ('alice', 77, 2);
                 INSERT INTO devices VALUES ('alice', 'a1', 'totp', 'phone', CAST('PLAIN-SECRET-ALICE-1' AS BLOB), 10, 20);
                 INSERT INTO devices VALUES ('alice', 's1', 'sms', '+37255512345', X'', 11, 0);
                 INSERT INTO backup_codes VALUES ('alice', X'AA', X'BB');
                 INSERT INTO trusted_devices VALUES ('alice', 't1', 'key', 'SHA256:x', 5, 5, 6);
                 INSERT INTO sms_codes VALUES ('alice', X'01', X'02', 99);
                 INSERT INTO users (name, last_step) VALUES ('ALICE', 80);
                 INSERT INTO devices VALUES ('ALICE', 'a2', 'totp', 'laptop', CAST('PLAIN-SECRET-ALICE-2' AS BLOB), 12, 0);
                 INSERT INTO users (name, last_step) VALUES ('gone', 1);
                 INSERT INTO devices VALUES ('gone', 'g1', 'totp', 'old', CAST('PLAIN-SECRET-GONE-33' AS BLOB), 13, 0);",
            )
            .unwrap();
            tx.commit().unwrap();
        }
        let account_of = |name: &str| match name {
            "alice" | "ALICE" => Some(Account {
                uid: 1000,
                name: "alice".into(),
            }),
            _ => None,
        };
        let s = SqliteStore::open(dir.path(), &account_of, Arc::new(Keys::for_tests())).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let u = s.user(1000).unwrap();
        assert_eq!(u.name, "alice", "the account's own name");
        assert_eq!(u.last_step, 80, "the newest step of either name");
        assert_eq!(u.lockout.failures, 2);
        assert_eq!(s.backup_codes(1000).unwrap().len(), 1);
        assert_eq!(s.trusted_list(1000).unwrap().len(), 1);
        let sms: Vec<i64> = u.sms_codes.iter().map(|c| c.expires).collect();
        assert_eq!(sms, [99], "the live SMS code survives 0008");
        let ids: Vec<&str> = u.devices.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["a1", "s1", "a2"]);
        assert_eq!(
            u.devices[..2],
            [
                Device {
                    id: "a1".into(),
                    label: "phone".into(),
                    data: DeviceData::Totp {
                        secret: b"PLAIN-SECRET-ALICE-1".to_vec()
                    },
                    created: 10,
                    last_used: 20,
                },
                Device {
                    id: "s1".into(),
                    label: String::new(),
                    data: DeviceData::Sms {
                        phone: "+37255512345".into()
                    },
                    created: 11,
                    last_used: 0,
                },
            ]
        );
        let listed: Vec<(String, i64)> = s
            .list_users()
            .unwrap()
            .into_iter()
            .map(|l| (l.user, l.uid))
            .collect();
        assert_eq!(
            listed,
            [("alice".to_string(), 1000), ("gone".to_string(), -1)]
        );
        // No plain secret is left in any file of the state directory: not in
        // the tables, free pages or the WAL.
        drop(s);
        for entry in fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let bytes = fs::read(&path).unwrap();
            for secret in [
                "PLAIN-SECRET-ALICE-1",
                "PLAIN-SECRET-ALICE-2",
                "PLAIN-SECRET-GONE-33",
            ] {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{secret} found in {}",
                    path.display()
                );
            }
        }
    }
}
