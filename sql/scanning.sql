-- Virus scanning (server/hygiene/scanning.py, migration quarantine): contents stored
-- without a verdict, and the walk of `media-store scan`.

-- name: mark_unscanned
-- In the transaction that makes media :media_id visible without a verdict (clamd
-- unreachable, MEDIA_SCAN_FAIL=open): the scan worker will scan it.
INSERT INTO unscanned_contents (sha256, media_id) VALUES (:sha256, :media_id)
ON CONFLICT (sha256) DO NOTHING;

-- name: unscanned_batch
-- The scan worker: the oldest contents waiting for a verdict, with a media that still
-- shows each (any: the bytes are the same); a content no media shows any more has
-- nothing left to scan and goes.
SELECT u.sha256,
       (SELECT f.id FROM media_files f
         WHERE f.sha256 = u.sha256 AND f.upload_state = 'complete'
         ORDER BY f.id LIMIT 1) AS media_id
  FROM unscanned_contents u
 ORDER BY u.since
 LIMIT :batch;

-- name: scanned
-- A content got its verdict (clean, or quarantined).
DELETE FROM unscanned_contents WHERE sha256 = :sha256;

-- name: count_media_since
-- `media-store scan --since`: how many media it walks (its progress bar).
SELECT count(*)::integer FROM media_files
 WHERE upload_state = 'complete' AND created_at >= :since;

-- name: media_since
-- `media-store scan`: the next complete media stored since :since, in id order after
-- :after_id (the command scans each content once, however many media show it).
SELECT id, sha256
  FROM media_files
 WHERE upload_state = 'complete' AND created_at >= :since AND id > :after_id
 ORDER BY id
 LIMIT :batch;
