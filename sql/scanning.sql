-- Virus scanning (server/hygiene/scanning.py, migration quarantine): contents stored
-- without a verdict, and the walk of `media-store scan`.

-- name: mark_unscanned
-- In the transaction that makes media :media_id visible without a verdict (clamd
-- unreachable, MEDIA_SCAN_FAIL=open): the scan worker will scan it.
INSERT INTO unscanned_contents (sha256, media_id) VALUES (:sha256, :media_id)
ON CONFLICT (sha256) DO NOTHING;

-- name: claim_unscanned
-- The scan worker: claims the oldest contents waiting for a verdict that no other
-- process holds (a claim older than :claim_seconds was left by a process that died),
-- each with a media that still shows it (any: the bytes are the same); a content no
-- media shows any more has nothing left to scan and goes.
UPDATE unscanned_contents u SET claimed_at = now()
 WHERE u.sha256 IN (SELECT sha256 FROM unscanned_contents
                     WHERE claimed_at IS NULL
                        OR claimed_at < now() - make_interval(secs => :claim_seconds)
                     ORDER BY since
                     LIMIT :batch
                       FOR UPDATE SKIP LOCKED)
RETURNING u.sha256,
          (SELECT f.id FROM media_files f
            WHERE f.sha256 = u.sha256 AND f.upload_state = 'complete'
            ORDER BY f.id LIMIT 1) AS media_id;

-- name: unclaim_unscanned
-- clamd went away again: the rest of a claimed batch waits for the next pass.
UPDATE unscanned_contents SET claimed_at = NULL WHERE sha256 = ANY(:sha256s::bytea[]);

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
