-- 10: session duration. The duration each user chose (no row: the
-- limit), and the live limited sessions, kept so that a restarted mfad
-- re-arms their end.
CREATE TABLE session_choice (
    uid INTEGER PRIMARY KEY,
    secs INTEGER NOT NULL
);
CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    uid INTEGER NOT NULL,
    user TEXT NOT NULL,
    service TEXT NOT NULL,
    tty TEXT NOT NULL,
    rhost TEXT NOT NULL,
    xdg_session_id TEXT NOT NULL,
    pid INTEGER NOT NULL,
    pid_start INTEGER NOT NULL,
    started INTEGER NOT NULL,
    ends INTEGER NOT NULL
);
