//! All persistent state, in one SQLite database (`STATE_DIR/mfad.db`, WAL,
//! directory 0700, file 0600). Nothing else in mfad touches SQL.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::backup::Hashed;
use crate::error::{Error, Result};
use crate::lockout::Lockout;

pub const DB_FILE: &str = "mfad.db";

/// Schema migrations, applied in order; `PRAGMA user_version` counts those
/// done. Never edit a released entry: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: users, TOTP devices, backup codes.
    "CREATE TABLE users (
        name TEXT PRIMARY KEY NOT NULL,
        last_step INTEGER NOT NULL DEFAULT 0,
        failures INTEGER NOT NULL DEFAULT 0,
        locked_until INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE TABLE devices (
        user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        id TEXT NOT NULL,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        secret BLOB NOT NULL,
        created INTEGER NOT NULL,
        last_used INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (user, id)
    ) WITHOUT ROWID;
    CREATE TABLE backup_codes (
        user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        salt BLOB NOT NULL,
        hash BLOB NOT NULL
    );
    CREATE INDEX backup_codes_user ON backup_codes(user);",
    // 2: trusted devices. Expiry is not stored: it follows from trusted_at
    // and the lifetime configured now.
    "CREATE TABLE trusted_devices (
        user TEXT NOT NULL,
        id TEXT NOT NULL,
        kind TEXT NOT NULL,
        identity TEXT NOT NULL,
        trusted_at INTEGER NOT NULL,
        first_used INTEGER NOT NULL,
        last_used INTEGER NOT NULL,
        PRIMARY KEY (user, id),
        UNIQUE (user, kind, identity)
    ) WITHOUT ROWID;",
    // 3: SMS: the one live login code per user (hashed), and the sends of
    // the last hour (for max_sends_per_hour, which must survive a restart).
    "CREATE TABLE sms_codes (
        user TEXT PRIMARY KEY NOT NULL,
        salt BLOB NOT NULL,
        hash BLOB NOT NULL,
        expires INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE sms_sends (
        user TEXT NOT NULL,
        at INTEGER NOT NULL
    );
    CREATE INDEX sms_sends_user_at ON sms_sends(user, at);",
];

/// How long a send counts toward `max_sends_per_hour`.
pub const SEND_WINDOW_SECS: i64 = 3600;

/// An enrolled device as stored, secret included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    pub id: String,
    pub kind: String,
    pub name: String,
    pub secret: Vec<u8>,
    pub created: i64,
    pub last_used: i64,
}

/// A stored backup code and its row id (to delete it once used).
#[derive(Debug, Clone)]
pub struct BackupRow {
    pub rowid: i64,
    pub code: Hashed,
}

/// The SMS login code last sent to a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsCodeRow {
    pub code: Hashed,
    /// Unix time it stops working.
    pub expires: i64,
}

/// Everything a login needs to know about a user, read at once.
#[derive(Debug, Clone, Default)]
pub struct UserRow {
    pub last_step: u64,
    pub lockout: Lockout,
    pub devices: Vec<DeviceRow>,
    pub backup_codes: Vec<BackupRow>,
    pub sms_code: Option<SmsCodeRow>,
}

impl UserRow {
    /// The enrolled phone (at most one per user).
    pub fn phone(&self) -> Option<&DeviceRow> {
        self.devices
            .iter()
            .find(|d| d.kind == crate::phone::DEVICE_KIND)
    }
}

/// The outcome of [`Store::reserve_send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendSlot {
    /// A send is recorded; give the id to `release_send` if nothing went out.
    Granted(i64),
    /// The hour's sends are used up; the next one is possible at this time.
    Full { next_at: i64 },
}

/// A trusted device as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedRow {
    pub id: String,
    pub kind: String,
    pub identity: String,
    /// When the device last passed verification; trust runs from here.
    pub trusted_at: i64,
    pub first_used: i64,
    pub last_used: i64,
}

/// One line of the user list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub user: String,
    pub devices: u32,
    pub backup_codes_left: u32,
    pub locked_until: i64,
}

pub struct Store {
    conn: Connection,
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Store {
    /// Opens (creating if needed) the database in `dir`, fixing modes to
    /// 0700/0600 so a careless install cannot leave secrets readable.
    pub fn open(dir: &Path) -> Result<Store> {
        let io =
            |what: &str, e: std::io::Error| Error::Io(format!("{what} {}: {e}", dir.display()));
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
        Store::init(conn)
    }

    /// A private in-memory database, for unit tests.
    #[cfg(test)]
    pub fn open_in_memory() -> Result<Store> {
        Store::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Store> {
        // WAL for concurrent readers; FULL sync so an accepted step or a
        // failure count survives a power cut (replay and lockout state are
        // security state, not a cache).
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let mut store = Store { conn };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<()> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        let done = usize::try_from(version).unwrap_or(usize::MAX);
        if done > MIGRATIONS.len() {
            return Err(Error::Io(format!(
                "the state database has schema version {version}, newer than this mfad knows ({}); refusing to touch it",
                MIGRATIONS.len()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(
                None,
                "user_version",
                i64::try_from(i + 1).unwrap_or(i64::MAX),
            )?;
            tx.commit()?;
        }
        Ok(())
    }

    #[cfg(test)]
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    /// The user's whole state; a default row when the user is unknown.
    pub fn user(&self, user: &str) -> Result<UserRow> {
        let base = self
            .conn
            .prepare_cached("SELECT last_step, failures, locked_until FROM users WHERE name = ?1")?
            .query_row([user], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .optional()?;
        let Some((last_step, failures, locked_until)) = base else {
            return Ok(UserRow::default());
        };
        let devices = self
            .conn
            .prepare_cached(
                "SELECT id, kind, name, secret, created, last_used FROM devices
                 WHERE user = ?1 ORDER BY created, id",
            )?
            .query_map([user], |r| {
                Ok(DeviceRow {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    name: r.get(2)?,
                    secret: r.get(3)?,
                    created: r.get(4)?,
                    last_used: r.get(5)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let backup_codes = self
            .conn
            .prepare_cached("SELECT rowid, salt, hash FROM backup_codes WHERE user = ?1")?
            .query_map([user], |r| {
                Ok(BackupRow {
                    rowid: r.get(0)?,
                    code: Hashed {
                        salt: r.get(1)?,
                        hash: r.get(2)?,
                    },
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let sms_code = self
            .conn
            .prepare_cached("SELECT salt, hash, expires FROM sms_codes WHERE user = ?1")?
            .query_row([user], |r| {
                Ok(SmsCodeRow {
                    code: Hashed {
                        salt: r.get(0)?,
                        hash: r.get(1)?,
                    },
                    expires: r.get(2)?,
                })
            })
            .optional()?;
        Ok(UserRow {
            last_step: to_u64(last_step),
            lockout: Lockout {
                failures: u32::try_from(failures).unwrap_or(u32::MAX),
                locked_until,
            },
            devices,
            backup_codes,
            sms_code,
        })
    }

    /// Records a successful TOTP verification at `step`: the step becomes the
    /// user's last, failures are cleared. Returns false, changing nothing, if
    /// a step this new or newer was accepted meanwhile (replay).
    pub fn accept_totp(
        &mut self,
        user: &str,
        device_id: &str,
        step: u64,
        now: i64,
    ) -> Result<bool> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let changed = tx.execute(
            "UPDATE users SET last_step = ?2, failures = 0, locked_until = 0
             WHERE name = ?1 AND last_step < ?2",
            params![user, to_i64(step)],
        )?;
        if changed != 1 {
            return Ok(false);
        }
        tx.execute(
            "UPDATE devices SET last_used = ?3 WHERE user = ?1 AND id = ?2",
            params![user, device_id, now],
        )?;
        tx.commit()?;
        Ok(true)
    }

    /// Uses up a backup code and clears failures. Returns false if the code
    /// was used meanwhile.
    pub fn accept_backup(&mut self, user: &str, rowid: i64) -> Result<bool> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let deleted = tx.execute(
            "DELETE FROM backup_codes WHERE rowid = ?2 AND user = ?1",
            params![user, rowid],
        )?;
        if deleted != 1 {
            return Ok(false);
        }
        tx.execute(
            "UPDATE users SET failures = 0, locked_until = 0 WHERE name = ?1",
            [user],
        )?;
        tx.commit()?;
        Ok(true)
    }

    /// Uses up the SMS login code (if it is still the one that was checked
    /// and still live) and clears failures. Returns false if it was used or
    /// replaced meanwhile.
    pub fn accept_sms(
        &mut self,
        user: &str,
        device_id: &str,
        code: &Hashed,
        now: i64,
    ) -> Result<bool> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let deleted = tx.execute(
            "DELETE FROM sms_codes WHERE user = ?1 AND salt = ?2 AND hash = ?3 AND expires > ?4",
            params![user, code.salt, code.hash, now],
        )?;
        if deleted != 1 {
            return Ok(false);
        }
        tx.execute(
            "UPDATE users SET failures = 0, locked_until = 0 WHERE name = ?1",
            [user],
        )?;
        tx.execute(
            "UPDATE devices SET last_used = ?3 WHERE user = ?1 AND id = ?2",
            params![user, device_id, now],
        )?;
        tx.commit()?;
        Ok(true)
    }

    /// Makes `code` the user's one SMS login code; the one before dies.
    pub fn set_sms_code(&mut self, user: &str, code: &Hashed, expires: i64) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO sms_codes (user, salt, hash, expires) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(user) DO UPDATE SET salt = excluded.salt, hash = excluded.hash,
                 expires = excluded.expires",
            )?
            .execute(params![user, code.salt, code.hash, expires])?;
        Ok(())
    }

    /// Records a send for `user` unless `max` were recorded in the last
    /// hour. Check and record are one transaction, so parallel requests
    /// cannot overshoot the limit.
    pub fn reserve_send(&mut self, user: &str, now: i64, max: u32) -> Result<SendSlot> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let since = now - SEND_WINDOW_SECS;
        tx.execute(
            "DELETE FROM sms_sends WHERE user = ?1 AND at <= ?2",
            params![user, since],
        )?;
        let (count, oldest): (i64, Option<i64>) = tx.query_row(
            "SELECT count(*), min(at) FROM sms_sends WHERE user = ?1",
            [user],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if count >= i64::from(max) {
            return Ok(SendSlot::Full {
                next_at: oldest.unwrap_or(now) + SEND_WINDOW_SECS,
            });
        }
        tx.execute(
            "INSERT INTO sms_sends (user, at) VALUES (?1, ?2)",
            params![user, now],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(SendSlot::Granted(id))
    }

    /// Takes back a send that certainly went nowhere (the gateway refused).
    pub fn release_send(&mut self, id: i64) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM sms_sends WHERE rowid = ?1")?
            .execute([id])?;
        Ok(())
    }

    /// Changes the number of the user's phone device; the code sent to the
    /// old number dies with it.
    pub fn set_phone(&mut self, user: &str, device_id: &str, phone: &str) -> Result<bool> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE devices SET name = ?3 WHERE user = ?1 AND id = ?2",
            params![user, device_id, phone],
        )?;
        tx.execute("DELETE FROM sms_codes WHERE user = ?1", [user])?;
        tx.commit()?;
        Ok(n == 1)
    }

    /// Stores a new failure state. Only users with a row (enrolled, or
    /// enrolled once) are counted; there is nothing to lock for others.
    pub fn set_lockout(&mut self, user: &str, lockout: Lockout) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE users SET failures = ?2, locked_until = ?3 WHERE name = ?1")?
            .execute(params![user, lockout.failures, lockout.locked_until])?;
        Ok(())
    }

    /// Adds a confirmed device, marks the enrollment's codes used (`step`)
    /// and replaces the backup codes, in one transaction.
    pub fn add_device(
        &mut self,
        user: &str,
        device: &DeviceRow,
        step: u64,
        backup: &[Hashed],
    ) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO users (name, last_step) VALUES (?1, ?2)
             ON CONFLICT(name) DO UPDATE SET last_step = max(last_step, excluded.last_step)",
            params![user, to_i64(step)],
        )?;
        tx.execute(
            "INSERT INTO devices (user, id, kind, name, secret, created, last_used)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0)",
            params![
                user,
                device.id,
                device.kind,
                device.name,
                device.secret,
                device.created
            ],
        )?;
        replace_backup_codes(&tx, user, backup)?;
        tx.commit()?;
        Ok(())
    }

    /// Removes a device; with the last device go the backup codes, which
    /// would otherwise keep an account "enrolled" with no app behind it.
    /// Returns false if there was no such device.
    pub fn remove_device(&mut self, user: &str, id: &str) -> Result<bool> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "DELETE FROM devices WHERE user = ?1 AND id = ?2",
            params![user, id],
        )?;
        let left: i64 = tx.query_row(
            "SELECT count(*) FROM devices WHERE user = ?1",
            [user],
            |r| r.get(0),
        )?;
        if left == 0 {
            tx.execute("DELETE FROM backup_codes WHERE user = ?1", [user])?;
        }
        // A code sent to a phone that is gone must not log in.
        tx.execute(
            "DELETE FROM sms_codes WHERE user = ?1
             AND NOT EXISTS (SELECT 1 FROM devices WHERE user = ?1 AND kind = ?2)",
            params![user, crate::phone::DEVICE_KIND],
        )?;
        tx.commit()?;
        Ok(n == 1)
    }

    pub fn replace_backup_codes(&mut self, user: &str, backup: &[Hashed]) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        replace_backup_codes(&tx, user, backup)?;
        tx.commit()?;
        Ok(())
    }

    /// The trusted device with this identity, if any.
    pub fn trusted(&self, user: &str, kind: &str, identity: &str) -> Result<Option<TrustedRow>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT id, kind, identity, trusted_at, first_used, last_used FROM trusted_devices
                 WHERE user = ?1 AND kind = ?2 AND identity = ?3",
            )?
            .query_row(params![user, kind, identity], trusted_row)
            .optional()?)
    }

    pub fn trusted_list(&self, user: &str) -> Result<Vec<TrustedRow>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT id, kind, identity, trusted_at, first_used, last_used FROM trusted_devices
                 WHERE user = ?1 ORDER BY first_used, id",
            )?
            .query_map([user], trusted_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Trusts a device from `now` on: a new row with `new_id`, or a renewal
    /// of the row with the same identity.
    pub fn trust(
        &mut self,
        user: &str,
        new_id: &str,
        kind: &str,
        identity: &str,
        now: i64,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO trusted_devices (user, id, kind, identity, trusted_at, first_used, last_used)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?5)
                 ON CONFLICT(user, kind, identity)
                 DO UPDATE SET trusted_at = excluded.trusted_at, last_used = excluded.last_used",
            )?
            .execute(params![user, new_id, kind, identity, now])?;
        Ok(())
    }

    pub fn touch_trusted(&mut self, user: &str, id: &str, now: i64) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE trusted_devices SET last_used = ?3 WHERE user = ?1 AND id = ?2",
            )?
            .execute(params![user, id, now])?;
        Ok(())
    }

    /// Removes one trusted device (`Some(id)`) or all of the user's; returns
    /// how many went.
    pub fn untrust(&mut self, user: &str, id: Option<&str>) -> Result<u32> {
        let n = match id {
            Some(id) => self.conn.execute(
                "DELETE FROM trusted_devices WHERE user = ?1 AND id = ?2",
                params![user, id],
            )?,
            None => self
                .conn
                .execute("DELETE FROM trusted_devices WHERE user = ?1", [user])?,
        };
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Forgets the user's devices, backup codes and lockout. The last
    /// accepted step is kept, so codes seen before the reset stay dead.
    pub fn reset(&mut self, user: &str) -> Result<bool> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let devices = tx.execute("DELETE FROM devices WHERE user = ?1", [user])?;
        let codes = tx.execute("DELETE FROM backup_codes WHERE user = ?1", [user])?;
        let trusted = tx.execute("DELETE FROM trusted_devices WHERE user = ?1", [user])?;
        tx.execute("DELETE FROM sms_codes WHERE user = ?1", [user])?;
        let locks = tx.execute(
            "UPDATE users SET failures = 0, locked_until = 0 WHERE name = ?1 AND (failures > 0 OR locked_until > 0)",
            [user],
        )?;
        tx.commit()?;
        Ok(devices + codes + trusted + locks > 0)
    }

    /// Clears failures and lock. Returns false for an unknown user.
    pub fn unlock(&mut self, user: &str) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE users SET failures = 0, locked_until = 0 WHERE name = ?1",
            [user],
        )?;
        Ok(n == 1)
    }

    /// Users with a device, a backup code or a failure count, by name.
    pub fn list_users(&self) -> Result<Vec<Summary>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT u.name,
                    (SELECT count(*) FROM devices d WHERE d.user = u.name),
                    (SELECT count(*) FROM backup_codes b WHERE b.user = u.name),
                    u.locked_until, u.failures
             FROM users u ORDER BY u.name",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    Summary {
                        user: r.get(0)?,
                        devices: r.get(1)?,
                        backup_codes_left: r.get(2)?,
                        locked_until: r.get(3)?,
                    },
                    r.get::<_, i64>(4)?,
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

fn trusted_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TrustedRow> {
    Ok(TrustedRow {
        id: r.get(0)?,
        kind: r.get(1)?,
        identity: r.get(2)?,
        trusted_at: r.get(3)?,
        first_used: r.get(4)?,
        last_used: r.get(5)?,
    })
}

fn replace_backup_codes(
    tx: &rusqlite::Transaction<'_>,
    user: &str,
    backup: &[Hashed],
) -> Result<()> {
    tx.execute("DELETE FROM backup_codes WHERE user = ?1", [user])?;
    let mut insert =
        tx.prepare_cached("INSERT INTO backup_codes (user, salt, hash) VALUES (?1, ?2, ?3)")?;
    for code in backup {
        insert.execute(params![user, code.salt, code.hash])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(id: &str) -> DeviceRow {
        DeviceRow {
            id: id.into(),
            kind: "totp".into(),
            name: "phone".into(),
            secret: vec![7; 20],
            created: 1000,
            last_used: 0,
        }
    }

    fn code(n: u8) -> Hashed {
        Hashed {
            salt: vec![n; 16],
            hash: vec![n; 32],
        }
    }

    #[test]
    fn unknown_user_is_a_default_row() {
        let s = Store::open_in_memory().unwrap();
        let u = s.user("nobody").unwrap();
        assert!(u.devices.is_empty());
        assert_eq!(u.last_step, 0);
    }

    #[test]
    fn steps_are_accepted_once_and_only_forward() {
        let mut s = Store::open_in_memory().unwrap();
        s.add_device("alice", &device("d1"), 100, &[]).unwrap();
        assert!(
            !s.accept_totp("alice", "d1", 100, 5).unwrap(),
            "enrollment step reused"
        );
        assert!(s.accept_totp("alice", "d1", 101, 5).unwrap());
        assert!(!s.accept_totp("alice", "d1", 101, 6).unwrap(), "replay");
        assert!(!s.accept_totp("alice", "d1", 99, 6).unwrap(), "older step");
        let u = s.user("alice").unwrap();
        assert_eq!(u.last_step, 101);
        assert_eq!(u.devices[0].last_used, 5);
    }

    #[test]
    fn backup_codes_are_single_use_and_replaced_on_enrollment() {
        let mut s = Store::open_in_memory().unwrap();
        s.add_device("alice", &device("d1"), 1, &[code(1), code(2)])
            .unwrap();
        let u = s.user("alice").unwrap();
        assert_eq!(u.backup_codes.len(), 2);
        let row = u.backup_codes[0].rowid;
        assert!(s.accept_backup("alice", row).unwrap());
        assert!(!s.accept_backup("alice", row).unwrap());
        assert!(
            !s.accept_backup("bob", u.backup_codes[1].rowid).unwrap(),
            "another user's code"
        );
        s.add_device("alice", &device("d2"), 2, &[code(3), code(4), code(5)])
            .unwrap();
        assert_eq!(s.user("alice").unwrap().backup_codes.len(), 3);
    }

    #[test]
    fn removing_the_last_device_drops_backup_codes() {
        let mut s = Store::open_in_memory().unwrap();
        s.add_device("alice", &device("d1"), 1, &[code(1)]).unwrap();
        s.add_device("alice", &device("d2"), 2, &[code(2)]).unwrap();
        assert!(s.remove_device("alice", "d1").unwrap());
        assert_eq!(s.user("alice").unwrap().backup_codes.len(), 1);
        assert!(!s.remove_device("alice", "d1").unwrap());
        assert!(s.remove_device("alice", "d2").unwrap());
        let u = s.user("alice").unwrap();
        assert!(u.devices.is_empty() && u.backup_codes.is_empty());
        assert!(s.list_users().unwrap().is_empty());
    }

    #[test]
    fn lockout_reset_and_unlock() {
        let mut s = Store::open_in_memory().unwrap();
        s.add_device("alice", &device("d1"), 10, &[code(1)])
            .unwrap();
        let locked = Lockout {
            failures: 5,
            locked_until: 999,
        };
        s.set_lockout("alice", locked).unwrap();
        assert_eq!(s.user("alice").unwrap().lockout, locked);
        assert_eq!(s.list_users().unwrap()[0].locked_until, 999);
        assert!(s.unlock("alice").unwrap());
        assert_eq!(s.user("alice").unwrap().lockout, Lockout::default());
        s.set_lockout("alice", locked).unwrap();
        assert!(s.reset("alice").unwrap());
        let u = s.user("alice").unwrap();
        assert!(u.devices.is_empty() && u.backup_codes.is_empty());
        assert_eq!(u.lockout, Lockout::default());
        assert_eq!(u.last_step, 10, "used steps stay used");
        assert!(!s.reset("alice").unwrap());
    }

    #[test]
    fn trusted_devices_are_per_user_renewed_and_removed() {
        let mut s = Store::open_in_memory().unwrap();
        s.add_device("alice", &device("d1"), 1, &[]).unwrap();
        s.trust("alice", "t1", "key", "SHA256:x", 100).unwrap();
        s.trust("alice", "t2", "host", "10.0.0.1", 110).unwrap();
        assert_eq!(s.trusted("bob", "key", "SHA256:x").unwrap(), None);
        // Renewal keeps the id and first use.
        s.trust("alice", "t9", "key", "SHA256:x", 200).unwrap();
        let t = s.trusted("alice", "key", "SHA256:x").unwrap().unwrap();
        assert_eq!(
            (t.id.as_str(), t.first_used, t.trusted_at),
            ("t1", 100, 200)
        );
        s.touch_trusted("alice", "t1", 250).unwrap();
        assert_eq!(s.trusted_list("alice").unwrap()[0].last_used, 250);
        assert_eq!(s.untrust("alice", Some("t1")).unwrap(), 1);
        assert_eq!(s.untrust("alice", Some("t1")).unwrap(), 0);
        s.trust("alice", "t3", "key", "SHA256:y", 300).unwrap();
        assert_eq!(s.untrust("alice", None).unwrap(), 2);
        s.trust("alice", "t4", "key", "SHA256:y", 300).unwrap();
        assert!(s.reset("alice").unwrap());
        assert!(s.trusted_list("alice").unwrap().is_empty());
    }

    #[test]
    fn files_get_private_modes_and_schema_is_versioned() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let s = Store::open(&state).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&state.join(DB_FILE)), 0o600);
        drop(s);
        // Reopening applies nothing twice.
        let s = Store::open(&state).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
    }
}
