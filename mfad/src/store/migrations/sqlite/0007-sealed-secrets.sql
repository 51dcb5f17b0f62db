-- 7: TOTP secrets sealed under the daemon's key and one-time codes keyed
-- with it. Done by mfad itself (seal_secrets in store/sqlite.rs), which
-- needs the key; then the database is vacuumed and its WAL truncated, so no
-- plain secret stays behind in free pages.
SELECT 1;
