-- Quotas and upload rates per API key (server/hygiene/quotas.py, migration
-- key_quotas). Usage counts what a key's uploads show (each media's size); uploads in
-- progress hold a reservation, raised batch by batch as their bytes arrive.

-- name: ensure_key_usage
-- A key's usage row (created with the key; also here, for keys made before quotas).
INSERT INTO key_usage (key_id) VALUES (:key_id) ON CONFLICT (key_id) DO NOTHING;

-- name: set_key_quota
-- `keys set-quota NAME`: the active key's limits; each NULL in :set_* leaves that one
-- as it is, :clear_* lifts it (none).
UPDATE api_keys
   SET quota_bytes = CASE WHEN :clear_bytes::boolean THEN NULL
                          ELSE coalesce(:quota_bytes::bigint, quota_bytes) END,
       quota_files = CASE WHEN :clear_files::boolean THEN NULL
                          ELSE coalesce(:quota_files::integer, quota_files) END,
       uploads_per_minute = CASE WHEN :clear_rate::boolean THEN NULL
                                 ELSE coalesce(:uploads_per_minute::integer, uploads_per_minute) END
 WHERE name = :name AND revoked_at IS NULL
RETURNING id, quota_bytes, quota_files, uploads_per_minute;

-- name: begin_reservation
-- An upload of :key_id starts: its reservation, empty so far.
WITH usage AS (
    INSERT INTO key_usage (key_id) VALUES (:key_id) ON CONFLICT (key_id) DO NOTHING
)
INSERT INTO quota_reservations (key_id) VALUES (:key_id) RETURNING id;

-- name: reserve_quota
-- :n more bytes for reservation :id, only if the key's usage, what its uploads in
-- progress hold and :n fit its quota. The UPDATE of the key's usage row is the
-- concurrency control: parallel uploads of one key queue on its row lock, and each
-- re-checks the quota against the row as the one before left it (READ COMMITTED
-- re-evaluates the WHERE on the newest version). No row back: over quota.
WITH r AS (
    SELECT id FROM quota_reservations WHERE id = :id FOR UPDATE
), taken AS (
    UPDATE key_usage u SET reserved = u.reserved + :n
      FROM api_keys k
     WHERE u.key_id = :key_id AND k.id = u.key_id AND EXISTS (SELECT FROM r)
       AND (k.quota_bytes IS NULL OR u.bytes + u.reserved + :n <= k.quota_bytes)
    RETURNING u.key_id
)
UPDATE quota_reservations SET bytes = bytes + :n, updated_at = now()
 WHERE id = :id AND EXISTS (SELECT FROM taken)
RETURNING bytes;

-- name: release_reservation
-- An upload that ends without media (refused, aborted), or one whose reservation has
-- become usage: its reservation goes, and what it held with it.
WITH gone AS (
    DELETE FROM quota_reservations WHERE id = :id RETURNING key_id, bytes
)
UPDATE key_usage u SET reserved = u.reserved - g.bytes
  FROM gone g
 WHERE u.key_id = g.key_id;

-- name: count_upload
-- In the transaction that makes media :media_id visible: it counts against :key_id
-- (its size, one file), if one more file fits the key's file quota. No row back: over.
WITH counted AS (
    UPDATE key_usage u SET bytes = u.bytes + :file_size, files = u.files + 1
      FROM api_keys k
     WHERE u.key_id = :key_id AND k.id = u.key_id
       AND (k.quota_files IS NULL OR u.files + 1 <= k.quota_files)
    RETURNING u.key_id
)
UPDATE media_files SET key_id = :key_id
 WHERE id = :media_id AND EXISTS (SELECT FROM counted)
RETURNING id;

-- name: files_full
-- Whether the key already has as many files as its quota allows (refused before a
-- byte of the body is read).
SELECT k.quota_files IS NOT NULL AND coalesce(u.files, 0) >= k.quota_files
  FROM api_keys k LEFT JOIN key_usage u ON u.key_id = k.id
 WHERE k.id = :key_id;

-- name: release_stale_reservations
-- The janitor: reservations of uploads idle for :stale_seconds (their instance died)
-- give their bytes back, a bounded batch at a time.
WITH gone AS (
    DELETE FROM quota_reservations
     WHERE id IN (SELECT id FROM quota_reservations
                   WHERE updated_at < now() - make_interval(secs => :stale_seconds)
                   ORDER BY updated_at
                   LIMIT :batch
                     FOR UPDATE SKIP LOCKED)
    RETURNING key_id, bytes
), per_key AS (
    SELECT key_id, sum(bytes) AS bytes, count(*) AS n FROM gone GROUP BY key_id
), released AS (
    UPDATE key_usage u SET reserved = u.reserved - p.bytes
      FROM per_key p WHERE u.key_id = p.key_id
)
SELECT coalesce(sum(n), 0)::integer FROM per_key;

-- name: count_upload_start
-- One more upload of :key_id in this minute, if under :per_minute. No row back: over
-- the rate.
INSERT INTO key_upload_minutes AS m (key_id, minute, count)
VALUES (:key_id, date_trunc('minute', now()), 1)
ON CONFLICT (key_id, minute) DO UPDATE SET count = m.count + 1
 WHERE m.count < :per_minute
RETURNING count;

-- name: prune_upload_minutes
-- The janitor: rate counters of past minutes.
DELETE FROM key_upload_minutes WHERE minute < now() - interval '2 minutes';

-- name: key_limits
-- What a key may upload, read at the start of each of its uploads.
SELECT quota_bytes, quota_files, uploads_per_minute FROM api_keys WHERE id = :key_id;

-- name: key_usage_by_name
-- GET /api/usage?key=NAME and the caller's own: the active key of that name.
SELECT k.name AS key, coalesce(u.bytes, 0) AS bytes, coalesce(u.files, 0) AS files,
       k.quota_bytes, k.quota_files, k.uploads_per_minute
  FROM api_keys k LEFT JOIN key_usage u ON u.key_id = k.id
 WHERE k.name = :name AND k.revoked_at IS NULL;

-- name: key_usage_page
-- GET /api/usage (admin): every active key's, by name, after :after (NULL: from the
-- start).
SELECT k.name AS key, coalesce(u.bytes, 0) AS bytes, coalesce(u.files, 0) AS files,
       k.quota_bytes, k.quota_files, k.uploads_per_minute
  FROM api_keys k LEFT JOIN key_usage u ON u.key_id = k.id
 WHERE k.revoked_at IS NULL AND (:after::text IS NULL OR k.name > :after::text)
 ORDER BY k.name
 LIMIT :page_size;

-- name: key_room
-- Bytes the key may still take (NULL: no quota), counting its uploads in progress: a
-- tus creation announcing more is refused before any byte is sent (its completion is
-- still checked as every upload is).
SELECT k.quota_bytes - coalesce(u.bytes, 0) - coalesce(u.reserved, 0)
  FROM api_keys k LEFT JOIN key_usage u ON u.key_id = k.id
 WHERE k.id = :key_id;
