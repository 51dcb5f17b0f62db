//! The SQLite schema and its migrations: the SQL files in
//! `store/migrations/sqlite/`, applied in order, and the two steps that need
//! more than SQL (resolving names to UIDs, sealing secrets with the key).

use rusqlite::{params, Connection};

use super::super::{Error, Result};
use crate::codes;
use crate::factor::{DeviceData, Kind};
use crate::seal::Keys;
use crate::users::Account;

/// Schema migrations (`store/migrations/sqlite/`), applied in order; `PRAGMA
/// user_version` counts those done. Never edit a released one: add a file.
pub(super) const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/sqlite/0001-users-devices-backup-codes.sql"),
    include_str!("../migrations/sqlite/0002-trusted-devices.sql"),
    include_str!("../migrations/sqlite/0003-sms.sql"),
    include_str!("../migrations/sqlite/0004-typed-device-data.sql"),
    include_str!("../migrations/sqlite/0005-state-by-uid.sql"),
    include_str!("../migrations/sqlite/0006-lock-count.sql"),
    include_str!("../migrations/sqlite/0007-sealed-secrets.sql"),
    include_str!("../migrations/sqlite/0008-sms-codes.sql"),
    include_str!("../migrations/sqlite/0009-grace.sql"),
    include_str!("../migrations/sqlite/0010-sessions.sql"),
    include_str!("../migrations/sqlite/0011-run-state.sql"),
];

/// The migration that moves state from names to UIDs (0005).
const BY_UID: usize = 4;
/// The migration that seals secrets and keys codes (0007).
pub(super) const SEAL: usize = 6;

pub(super) fn migrate(
    conn: &mut Connection,
    account_of: &dyn Fn(&str) -> Option<Account>,
    keys: &Keys,
) -> Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let done = usize::try_from(version).unwrap_or(usize::MAX);
    if done > MIGRATIONS.len() {
        return Err(Error::Setup(format!(
            "the state database has schema version {version}, newer than this mfad knows ({}); refusing to touch it",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        let tx = conn.transaction()?;
        if i == BY_UID {
            map_names_to_uids(&tx, account_of)?;
        }
        tx.execute_batch(sql)?;
        if i == BY_UID {
            tx.execute_batch("DROP TABLE temp.name_uid")?;
        }
        if i == SEAL {
            seal_secrets(&tx, keys)?;
        }
        tx.pragma_update(
            None,
            "user_version",
            i64::try_from(i + 1).unwrap_or(i64::MAX),
        )?;
        tx.commit()?;
    }
    if done <= SEAL {
        // The plain secrets are gone from the tables; rewrite the file and
        // empty the WAL so none stays in a free page or an old frame.
        conn.execute_batch("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);")?;
    }
    Ok(())
}

/// Migration 0007: every plain TOTP secret sealed, every code hash keyed.
fn seal_secrets(tx: &rusqlite::Transaction<'_>, keys: &Keys) -> Result<()> {
    let devices = tx
        .prepare("SELECT uid, id, kind, data FROM devices")?
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Vec<u8>>(3)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for (row_uid, id, kind, data) in devices {
        // An orphan (a name NSS no longer knew at migration 0005, kept under
        // a negative number) is sealed too, under a UID no login has.
        let uid = u32::try_from(row_uid).unwrap_or(u32::MAX);
        let Some(kind) = Kind::parse(&kind).filter(|k| DeviceData::is_plain_secret(*k, &data))
        else {
            continue;
        };
        let plain = DeviceData::decode(kind, &data, keys, uid, &id).map_err(Error::Corrupt)?;
        let sealed = plain.encode(keys, uid, &id).map_err(Error::Corrupt)?;
        tx.execute(
            "UPDATE devices SET data = ?3 WHERE uid = ?1 AND id = ?2",
            params![row_uid, id, sealed],
        )?;
    }
    for table in ["backup_codes", "sms_codes"] {
        let rows = tx
            .prepare(&format!("SELECT rowid, hash FROM {table}"))?
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for (rowid, hash) in rows {
            tx.execute(
                &format!("UPDATE {table} SET hash = ?2 WHERE rowid = ?1"),
                params![rowid, codes::key_legacy(&hash, keys)],
            )?;
        }
    }
    Ok(())
}

/// Fills `temp.name_uid` for migration 0005: each user name in the tables
/// with its account (UID and canonical name), or a negative number for a
/// name NSS no longer knows (its state is kept but never matches a login).
fn map_names_to_uids(
    tx: &rusqlite::Transaction<'_>,
    account_of: &dyn Fn(&str) -> Option<Account>,
) -> Result<()> {
    tx.execute_batch(
        "CREATE TEMP TABLE name_uid (
            name TEXT PRIMARY KEY NOT NULL, uid INTEGER NOT NULL, account TEXT NOT NULL
        )",
    )?;
    let names = tx
        .prepare(
            "SELECT name FROM users UNION SELECT user FROM trusted_devices
             UNION SELECT user FROM sms_codes UNION SELECT user FROM sms_sends",
        )?
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut orphan = 0i64;
    for name in names {
        let (uid, account) = match account_of(&name) {
            Some(a) => (i64::from(a.uid), a.name),
            None => {
                orphan -= 1;
                (orphan, name.clone())
            }
        };
        tx.execute(
            "INSERT INTO temp.name_uid (name, uid, account) VALUES (?1, ?2, ?3)",
            params![name, uid, account],
        )?;
    }
    Ok(())
}
