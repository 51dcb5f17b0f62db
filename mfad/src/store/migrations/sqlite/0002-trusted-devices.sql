-- 2: trusted devices. Expiry is not stored: it follows from trusted_at
-- and the lifetime configured now.
CREATE TABLE trusted_devices (
    user TEXT NOT NULL,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    identity TEXT NOT NULL,
    trusted_at INTEGER NOT NULL,
    first_used INTEGER NOT NULL,
    last_used INTEGER NOT NULL,
    PRIMARY KEY (user, id),
    UNIQUE (user, kind, identity)
) WITHOUT ROWID;
