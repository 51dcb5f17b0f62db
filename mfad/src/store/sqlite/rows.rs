//! Reading rows into the store's types, and the statements two operations
//! share.

use rusqlite::params;

use super::super::{Device, Error, Result, Trusted};
use crate::codes::Hashed;
use crate::factor::{DeviceData, Kind};
use crate::lockout::Lockout;
use crate::seal::Keys;

pub(super) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(super) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn device_row(
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<(String, String, String, Vec<u8>, i64, i64)> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

pub(super) fn device_of(
    row: (String, String, String, Vec<u8>, i64, i64),
    keys: &Keys,
    uid: u32,
) -> Result<Device> {
    let (id, kind, label, data, created, last_used) = row;
    let kind = Kind::parse(&kind)
        .ok_or_else(|| Error::Corrupt(format!("device {id} has unknown kind {kind:?}")))?;
    let data = DeviceData::decode(kind, &data, keys, uid, &id)
        .map_err(|e| Error::Corrupt(format!("device {id}: {e}")))?;
    Ok(Device {
        id,
        label,
        data,
        created,
        last_used,
    })
}

/// (failures, locked_until, locks) as stored.
pub(super) fn lockout_of((failures, locked_until, locks): (i64, i64, i64)) -> Lockout {
    Lockout {
        failures: u32::try_from(failures).unwrap_or(u32::MAX),
        locked_until,
        locks: u32::try_from(locks).unwrap_or(u32::MAX),
    }
}

pub(super) fn trusted_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Trusted> {
    Ok(Trusted {
        id: r.get(0)?,
        kind: r.get(1)?,
        identity: r.get(2)?,
        trusted_at: r.get(3)?,
        first_used: r.get(4)?,
        last_used: r.get(5)?,
    })
}

pub(super) fn replace_backup_codes(
    tx: &rusqlite::Transaction<'_>,
    uid: u32,
    backup: &[Hashed],
) -> Result<()> {
    tx.execute("DELETE FROM backup_codes WHERE uid = ?1", [uid])?;
    let mut insert =
        tx.prepare_cached("INSERT INTO backup_codes (uid, salt, hash) VALUES (?1, ?2, ?3)")?;
    for code in backup {
        insert.execute(params![uid, code.salt, code.hash])?;
    }
    Ok(())
}
