-- 3: SMS: the one live login code per user (hashed), and the sends of
-- the last hour (for max_sends_per_hour, which must survive a restart).
CREATE TABLE sms_codes (
    user TEXT PRIMARY KEY NOT NULL,
    salt BLOB NOT NULL,
    hash BLOB NOT NULL,
    expires INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE sms_sends (
    user TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX sms_sends_user_at ON sms_sends(user, at);
