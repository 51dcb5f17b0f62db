-- 5: state is kept by UID, not by the name a login gave (every name of an
-- account shares one enrollment, lockout and trust). `users.name` is the
-- account name that enrolled. mfad fills temp.name_uid before this runs:
-- each name found in the tables with the UID and account name NSS gives it,
-- or a negative number for a name NSS no longer knows (kept, never matched
-- by a login).
CREATE TABLE users_v5 (
    uid INTEGER PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    last_step INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE devices_v5 (
    uid INTEGER NOT NULL REFERENCES users_v5(uid) ON DELETE CASCADE,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    label TEXT NOT NULL,
    data BLOB NOT NULL,
    created INTEGER NOT NULL,
    last_used INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (uid, id)
) WITHOUT ROWID;
CREATE TABLE backup_codes_v5 (
    uid INTEGER NOT NULL REFERENCES users_v5(uid) ON DELETE CASCADE,
    salt BLOB NOT NULL,
    hash BLOB NOT NULL
);
CREATE TABLE trusted_devices_v5 (
    uid INTEGER NOT NULL,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    identity TEXT NOT NULL,
    trusted_at INTEGER NOT NULL,
    first_used INTEGER NOT NULL,
    last_used INTEGER NOT NULL,
    PRIMARY KEY (uid, id),
    UNIQUE (uid, kind, identity)
) WITHOUT ROWID;
CREATE TABLE sms_codes_v5 (
    uid INTEGER PRIMARY KEY NOT NULL,
    salt BLOB NOT NULL,
    hash BLOB NOT NULL,
    expires INTEGER NOT NULL
);
CREATE TABLE sms_sends_v5 (
    uid INTEGER NOT NULL,
    at INTEGER NOT NULL
);
-- Two names of one UID (enrolled before this release) become one account:
-- the newest step, the higher failure count and lock, every device.
INSERT INTO users_v5 (uid, name, last_step, failures, locked_until)
    SELECT m.uid, min(m.account), max(u.last_step), max(u.failures), max(u.locked_until)
    FROM users u JOIN temp.name_uid m ON m.name = u.name GROUP BY m.uid;
INSERT OR IGNORE INTO devices_v5 (uid, id, kind, label, data, created, last_used)
    SELECT m.uid, d.id, d.kind, d.label, d.data, d.created, d.last_used
    FROM devices d JOIN temp.name_uid m ON m.name = d.user;
INSERT INTO backup_codes_v5 (uid, salt, hash)
    SELECT m.uid, b.salt, b.hash FROM backup_codes b JOIN temp.name_uid m ON m.name = b.user;
INSERT OR IGNORE INTO trusted_devices_v5
    (uid, id, kind, identity, trusted_at, first_used, last_used)
    SELECT m.uid, t.id, t.kind, t.identity, t.trusted_at, t.first_used, t.last_used
    FROM trusted_devices t JOIN temp.name_uid m ON m.name = t.user;
INSERT OR IGNORE INTO sms_codes_v5 (uid, salt, hash, expires)
    SELECT m.uid, c.salt, c.hash, c.expires FROM sms_codes c JOIN temp.name_uid m ON m.name = c.user;
INSERT INTO sms_sends_v5 (uid, at)
    SELECT m.uid, s.at FROM sms_sends s JOIN temp.name_uid m ON m.name = s.user;
DROP TABLE backup_codes;
DROP TABLE devices;
DROP TABLE trusted_devices;
DROP TABLE sms_codes;
DROP TABLE sms_sends;
DROP TABLE users;
ALTER TABLE users_v5 RENAME TO users;
ALTER TABLE devices_v5 RENAME TO devices;
ALTER TABLE backup_codes_v5 RENAME TO backup_codes;
ALTER TABLE trusted_devices_v5 RENAME TO trusted_devices;
ALTER TABLE sms_codes_v5 RENAME TO sms_codes;
ALTER TABLE sms_sends_v5 RENAME TO sms_sends;
CREATE INDEX backup_codes_uid ON backup_codes(uid);
CREATE INDEX sms_sends_uid_at ON sms_sends(uid, at);
