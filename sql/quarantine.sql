-- Quarantine of content by sha256 (server/hygiene/quarantine.py, migration quarantine):
-- every media showing the content answers 451 while it is here.

-- name: quarantine_reason
-- Why this content is quarantined; no row: it is not. Checked when an upload finishes.
SELECT reason FROM quarantined_contents WHERE sha256 = :sha256;

-- name: quarantine_content
-- Quarantine a content (again: the first reason stays). The trigger tells every
-- instance to drop what it cached of the media showing it.
INSERT INTO quarantined_contents (sha256, reason, quarantined_by, media_id)
VALUES (:sha256, :reason, :quarantined_by, :media_id)
ON CONFLICT (sha256) DO NOTHING
RETURNING sha256;

-- name: release_quarantine
-- Serve the content again.
DELETE FROM quarantined_contents WHERE sha256 = :sha256 RETURNING sha256;

-- name: media_content
-- The content a complete media shows (for the quarantine routes).
SELECT sha256 FROM media_files WHERE id = :id AND upload_state = 'complete';

-- name: quarantine_page
-- GET /api/quarantine: newest first, keyset on (quarantined_at, sha256); with how many
-- media show each content.
SELECT q.sha256, q.reason, q.quarantined_by, q.quarantined_at, q.media_id,
       (SELECT count(*) FROM media_files f
         WHERE f.sha256 = q.sha256 AND f.upload_state = 'complete')::integer AS media
  FROM quarantined_contents q
 WHERE :after_at::timestamptz IS NULL
    OR (q.quarantined_at, q.sha256) < (:after_at::timestamptz, :after_sha256::bytea)
 ORDER BY q.quarantined_at DESC, q.sha256 DESC
 LIMIT :page_size;
