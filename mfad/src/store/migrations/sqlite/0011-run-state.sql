-- 11: the durable high-water mark of TOTP steps and whether mfad is
-- running. A TOTP accept of step s commits without an fsync only while
-- s <= hwm is on disk; running = 1 from start to a clean stop, so a start
-- that finds it set knows that the last accepts may be lost and refuses
-- every step up to hwm.
CREATE TABLE run_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    hwm INTEGER NOT NULL,
    running INTEGER NOT NULL
);
INSERT INTO run_state (id, hwm, running) VALUES (1, 0, 0);
