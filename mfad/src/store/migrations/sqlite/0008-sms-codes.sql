-- 8: several live SMS codes per user ("send again" must not kill a code
-- still on its way; the store keeps the newest few, in rowid order), and
-- an index for the machine-wide count of sends of the last hour.
CREATE TABLE sms_codes_v8 (
    uid INTEGER NOT NULL,
    salt BLOB NOT NULL,
    hash BLOB NOT NULL,
    expires INTEGER NOT NULL
);
INSERT INTO sms_codes_v8 (uid, salt, hash, expires)
    SELECT uid, salt, hash, expires FROM sms_codes;
DROP TABLE sms_codes;
ALTER TABLE sms_codes_v8 RENAME TO sms_codes;
CREATE INDEX sms_codes_uid ON sms_codes(uid);
CREATE INDEX sms_sends_at ON sms_sends(at);
