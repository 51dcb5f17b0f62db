-- 1: users, TOTP devices, backup codes.
CREATE TABLE users (
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
CREATE INDEX backup_codes_user ON backup_codes(user);
