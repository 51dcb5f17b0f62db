//! `mfad migrate --to-postgres`: a host's SQLite state into the shared
//! PostgreSQL database, merged with what other hosts brought before.

use std::io::Write;
use std::sync::Arc;

use super::config::Backend;
use super::postgres::PostgresStore;
use super::sqlite::{SqliteStore, DB_FILE};
use super::Store;
use crate::config::Config;
use crate::error::Error;
use crate::random::{self, Random};
use crate::seal::Keys;
use crate::users::Account;

/// Copies every account of `STATE_DIR/mfad.db` into the `[store]`
/// database, one transaction per account, writing one line per account to
/// `out`. `account_of` resolves names of a database from before state was
/// kept by UID. `keys` are the host's, which must be the fleet's. The
/// caller holds the state directory's lock.
pub fn to_postgres(
    config: &Config,
    runtime: &tokio::runtime::Handle,
    account_of: &dyn Fn(&str) -> Option<Account>,
    keys: Arc<Keys>,
    out: &mut dyn Write,
) -> Result<(), Error> {
    if config.store.backend != Backend::Postgres {
        return Err(Error::Config(
            "migrate --to-postgres copies into the database of [store] backend = \"postgres\"; \
             the config names none"
                .into(),
        ));
    }
    let state_dir = &config.daemon.state_dir;
    if !state_dir.join(DB_FILE).exists() {
        return Err(Error::Config(format!(
            "no SQLite database to copy: {} does not exist",
            state_dir.join(DB_FILE).display()
        )));
    }
    // The host's key opens its SQLite secrets; the same key (the fleet's:
    // every host has the same key file) seals them in the shared database,
    // and its keyed backup codes stay valid there.
    let from = SqliteStore::open(state_dir, account_of, keys.clone())?;
    let settings = config.store.postgres(&config.trust_host())?;
    let to = PostgresStore::open(&settings, runtime.clone(), keys)?;
    let io = |e: std::io::Error| Error::Io(format!("cannot write the report: {e}"));
    let (mut accounts, mut skipped) = (0u32, 0u32);
    for summary in from.list_users()? {
        let Ok(uid) = u32::try_from(summary.uid) else {
            // A name NSS no longer knew when the database moved to UIDs:
            // nobody can log in with it.
            writeln!(out, "{}: skipped (no such account)", summary.user).map_err(io)?;
            skipped += 1;
            continue;
        };
        // A secret that does not open: the host's database was sealed
        // under another key than key_file (every host must have the
        // fleet's key file before it enrolls anyone).
        let state = from.user(uid).map_err(|e| match e {
            super::Error::Corrupt(why) => Error::Config(format!(
                "{} (uid {uid}): {why}; was this host's database sealed with {}? \
                 every host of the fleet must use the same key file",
                summary.user,
                config.daemon.key_path().display()
            )),
            e => e.into(),
        })?;
        let backup = from.backup_codes(uid)?;
        let trusted = from.trusted_list(uid)?;
        let spare_ids = state
            .devices
            .iter()
            .map(|_| random::hex(&random::Os as &dyn Random, 8))
            .collect::<Result<Vec<_>, _>>()?;
        let account = Account {
            uid,
            name: state.name.clone(),
        };
        let done = to.import(&account, &state, &backup, &trusted, &spare_ids)?;
        let mut line = format!(
            "{} (uid {uid}): {} of {} devices added, {} of {} backup codes, {} of {} trusted devices",
            account.name,
            done.devices,
            state.devices.len(),
            done.backup_codes,
            backup.len(),
            done.trusted,
            trusted.len()
        );
        if done.renamed > 0 {
            line.push_str(&format!(
                "; {} under a new id (the old one was taken)",
                done.renamed
            ));
        }
        if done.phones_skipped > 0 {
            line.push_str(
                "; the phone was not added: the shared database has another for this user",
            );
        }
        writeln!(out, "{line}").map_err(io)?;
        accounts += 1;
    }
    writeln!(
        out,
        "migrated {accounts} accounts from {}{}",
        state_dir.join(DB_FILE).display(),
        if skipped > 0 {
            format!(", skipped {skipped}")
        } else {
            String::new()
        }
    )
    .map_err(io)?;
    Ok(())
}
