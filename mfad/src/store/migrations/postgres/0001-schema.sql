-- 1: the schema SQLite reached in its migrations 1-6 (state by UID, typed
-- device data, lock counts), for a database many hosts share. Trusted
-- devices carry the host that trusts them ('' when [trusted_devices]
-- scope = "fleet"). UIDs and times are BIGINT: a UID is unsigned 32-bit.
CREATE TABLE users (
    uid BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    last_step BIGINT NOT NULL DEFAULT 0,
    failures BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT NOT NULL DEFAULT 0,
    locks BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE devices (
    uid BIGINT NOT NULL REFERENCES users(uid) ON DELETE CASCADE,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    label TEXT NOT NULL,
    data BYTEA NOT NULL,
    created BIGINT NOT NULL,
    last_used BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (uid, id)
);
CREATE TABLE backup_codes (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uid BIGINT NOT NULL REFERENCES users(uid) ON DELETE CASCADE,
    salt BYTEA NOT NULL,
    hash BYTEA NOT NULL
);
CREATE INDEX backup_codes_uid ON backup_codes(uid);
CREATE TABLE trusted_devices (
    host TEXT NOT NULL,
    uid BIGINT NOT NULL,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    identity TEXT NOT NULL,
    trusted_at BIGINT NOT NULL,
    first_used BIGINT NOT NULL,
    last_used BIGINT NOT NULL,
    PRIMARY KEY (host, uid, id),
    UNIQUE (host, uid, kind, identity)
);
CREATE TABLE sms_codes (
    uid BIGINT PRIMARY KEY,
    salt BYTEA NOT NULL,
    hash BYTEA NOT NULL,
    expires BIGINT NOT NULL
);
CREATE TABLE sms_sends (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uid BIGINT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX sms_sends_uid_at ON sms_sends(uid, at);
