-- 6: locks since the last success, for locks that double.
ALTER TABLE users ADD COLUMN locks INTEGER NOT NULL DEFAULT 0;
