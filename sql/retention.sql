-- Retention: purging old media in small batches (MEDIA_RETENTION, `media-store purge`),
-- the tombstones that make their ids answer 410, and the audit row of each batch.
-- A selection is: the media of :media_type (NULL: any type) except :except_types
-- (the types a `*` rule leaves to their own rules), complete, created more than
-- :older_than_seconds ago.

-- name: purge_batch
-- One batch, oldest first: up to :batch media (and, past the first, no more than
-- :max_bytes of them) are locked, deleted (chunks, variants and previews go by cascade)
-- and remembered in purged_media, in one statement. SKIP LOCKED: instances purging
-- at once take different batches, and a media some request holds is left for later.
-- A variant's bytes count with its media's. Quarantined content is kept for review
-- (until released, or deleted by an admin): retention passes it by.
WITH locked AS (
    SELECT id, file_size, created_at
      FROM media_files mf
     WHERE upload_state = 'complete'
       AND NOT EXISTS (SELECT 1 FROM quarantined_contents q WHERE q.sha256 = mf.sha256)
       AND (:media_type::varchar IS NULL OR media_type = :media_type::varchar)
       AND media_type <> ALL (:except_types::varchar[])
       AND created_at < now() - make_interval(secs => :older_than_seconds)
     ORDER BY created_at, id
     LIMIT :batch
       FOR UPDATE SKIP LOCKED
), doomed AS (
    SELECT r.id, l.legacy_name
      FROM (SELECT id, sum(file_size) OVER (ORDER BY created_at, id) - file_size AS before
              FROM locked) AS r
      LEFT JOIN legacy_media l ON l.media_id = r.id
     WHERE r.before < :max_bytes
), gone AS (
    DELETE FROM media_files f
     USING doomed d
     WHERE f.id = d.id
    RETURNING f.id, f.message_id, f.media_type, f.file_size, f.created_at
), tombstones AS (
    INSERT INTO purged_media (id, message_id, media_type, file_size, created_at,
                              legacy_name)
    SELECT g.id, g.message_id, g.media_type, g.file_size, g.created_at, d.legacy_name
      FROM gone g JOIN doomed d ON d.id = g.id
)
SELECT g.id, g.media_type,
       g.file_size + (SELECT coalesce(sum(v.file_size), 0)
                        FROM media_variants v
                       WHERE v.media_id = g.id)::bigint AS bytes
  FROM gone g
 ORDER BY g.id;

-- name: purge_candidates
-- What a purge of the selection would take now, by media type (`purge --dry-run`, and
-- the progress bar's total).
SELECT f.media_type, count(*) AS files,
       (coalesce(sum(f.file_size), 0) + coalesce(sum(v.bytes), 0))::bigint AS bytes
  FROM media_files f
  LEFT JOIN (SELECT media_id, sum(file_size) AS bytes
               FROM media_variants GROUP BY media_id) v ON v.media_id = f.id
 WHERE f.upload_state = 'complete'
   AND NOT EXISTS (SELECT 1 FROM quarantined_contents q WHERE q.sha256 = f.sha256)
   AND (:media_type::varchar IS NULL OR f.media_type = :media_type::varchar)
   AND f.media_type <> ALL (:except_types::varchar[])
   AND f.created_at < now() - make_interval(secs => :older_than_seconds)
 GROUP BY f.media_type
 ORDER BY f.media_type;

-- name: insert_purge_audit
-- One audit row per purged batch, in the batch's transaction, with every id in it.
INSERT INTO media_audit_log (actor, action, media_ids, outcome)
VALUES (:actor, 'purge', :media_ids::integer[], :outcome);

-- name: is_purged
-- Whether an id with no media row was purged (410) rather than never there (404).
SELECT EXISTS (SELECT 1 FROM purged_media WHERE id = :id);

-- name: is_purged_legacy_name
-- /uploads/media/{name} of a legacy file whose media retention removed: 410, never the
-- folder's copy.
SELECT EXISTS (SELECT 1 FROM purged_media WHERE legacy_name = :legacy_name);

-- name: purged_legacy_names
-- import-legacy: legacy files whose media retention removed, not to be imported again.
SELECT legacy_name FROM purged_media WHERE legacy_name IS NOT NULL;
