-- 9: when each account's grace period for enrolling started (a row per
-- account that was let in without a device because of it).
CREATE TABLE grace (
    uid INTEGER PRIMARY KEY,
    started INTEGER NOT NULL
);
