-- The session lock every migrator of this service takes around yoyo's own lock.
-- PostgreSQL releases it when the session ends, however it ends, so a yoyo_lock row
-- found while holding it was left by a migrator that died (SIGKILL, OOM, lost host).

-- name: try_migration_lock
SELECT pg_try_advisory_lock(hashtext('media-store: migrations'));

-- name: release_migration_lock
SELECT pg_advisory_unlock(hashtext('media-store: migrations'));

-- name: yoyo_lock_rows
-- yoyo's own lock: a row while some migrator holds it.
SELECT count(*) FROM yoyo_lock;
