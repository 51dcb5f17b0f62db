-- 4: typed device data. `data` is the kind's own encoding (see
-- factor::DeviceData: a version byte, then the secret or the number);
-- `label` is the name the user gave (empty for a phone, named by its
-- number). Replaces the reused columns `name` and `secret`.
CREATE TABLE devices_v4 (
    user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    label TEXT NOT NULL,
    data BLOB NOT NULL,
    created INTEGER NOT NULL,
    last_used INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user, id)
) WITHOUT ROWID;
INSERT INTO devices_v4 (user, id, kind, label, data, created, last_used)
    SELECT user, id, kind,
           CASE kind WHEN 'sms' THEN '' ELSE name END,
           CASE kind WHEN 'sms' THEN CAST(X'01' || CAST(name AS BLOB) AS BLOB)
                     ELSE CAST(X'01' || secret AS BLOB) END,
           created, last_used
    FROM devices;
DROP TABLE devices;
ALTER TABLE devices_v4 RENAME TO devices;
