-- 3: session duration (SQLite's migration 10). A user's choice holds on
-- every host of the fleet; a session belongs to the host it runs on.
CREATE TABLE session_choice (
    uid BIGINT PRIMARY KEY,
    secs BIGINT NOT NULL
);
CREATE TABLE sessions (
    host TEXT NOT NULL,
    id TEXT NOT NULL,
    uid BIGINT NOT NULL,
    "user" TEXT NOT NULL,
    service TEXT NOT NULL,
    tty TEXT NOT NULL,
    rhost TEXT NOT NULL,
    xdg_session_id TEXT NOT NULL,
    pid BIGINT NOT NULL,
    pid_start BIGINT NOT NULL,
    started BIGINT NOT NULL,
    ends BIGINT NOT NULL,
    PRIMARY KEY (host, id)
);
