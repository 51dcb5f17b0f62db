-- 2: what SQLite's migrations 7-9 brought. Several live SMS codes per user
-- (the newest few kept, in id order), an index for the database-wide count
-- of sends of the last hour (with PostgreSQL the "host-wide" budget is
-- fleet-wide), and each account's grace period start. TOTP secrets are
-- sealed and codes keyed by mfad under the fleet's key file: no SQL here.
CREATE TABLE sms_codes_v2 (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uid BIGINT NOT NULL,
    salt BYTEA NOT NULL,
    hash BYTEA NOT NULL,
    expires BIGINT NOT NULL
);
INSERT INTO sms_codes_v2 (uid, salt, hash, expires)
    SELECT uid, salt, hash, expires FROM sms_codes;
DROP TABLE sms_codes;
ALTER TABLE sms_codes_v2 RENAME TO sms_codes;
CREATE INDEX sms_codes_uid ON sms_codes(uid);
CREATE INDEX sms_sends_at ON sms_sends(at);
CREATE TABLE grace (
    uid BIGINT PRIMARY KEY,
    started BIGINT NOT NULL
);
