-- Statements on media_contents: one row per stored content (its sha256), shown by any
-- number of media rows and variants; and the 'writing' contents of uploads in progress.
-- Run only by server/store/contents.py (the finishing transaction and the reclaim).

-- name: create_variant_content
-- A 'writing' content for a variant of an upload in progress: it goes with that
-- upload's row if the upload is abandoned.
INSERT INTO media_contents (chunk_size, writer_media_id)
VALUES (:chunk_size, :media_id)
RETURNING id;

-- name: lock_content_sha256
-- Serialises the finishing of contents with the same sha256 (its first 8 bytes as the
-- key) until the end of the transaction: the second of two identical uploads finishing
-- at once waits, then finds the first one's content stored.
SELECT pg_advisory_xact_lock(('x' || encode(substring(:sha256::bytea FROM 1 FOR 8), 'hex'))::bit(64)::bigint);

-- name: claim_stored_content
-- The stored content with this sha256, if any, locked (FOR UPDATE, by the UPDATE) and
-- marked as referenced now. A reclaim that chose it already waits for this lock, then
-- re-checks its grace condition on the new row and leaves it; a reclaim that deleted it
-- first makes this find nothing (the caller then keeps its own copy). clock_timestamp,
-- not now(): the grace runs from this moment, not from the transaction's start.
UPDATE media_contents SET last_referenced_at = clock_timestamp()
 WHERE sha256 = :sha256 AND state = 'stored'
RETURNING id, file_size, chunk_size, chunk_count;

-- name: seal_content
-- A 'writing' content becomes the stored copy of its sha256 (no other one exists: the
-- caller holds lock_content_sha256 and claim_stored_content found none).
UPDATE media_contents
   SET state = 'stored', sha256 = :sha256, file_size = :file_size,
       chunk_count = :chunk_count, writer_media_id = NULL,
       last_referenced_at = clock_timestamp()
 WHERE id = :id AND state = 'writing'
RETURNING id, file_size, chunk_size, chunk_count;

-- name: drop_writing_content
-- The new copy of bytes already stored, once nothing points at it (its chunks go by
-- cascade), in the finishing transaction.
DELETE FROM media_contents WHERE id = :id AND state = 'writing';

-- name: reclaim_orphaned_contents
-- The janitor: stored content that no media row and no variant shows, unreferenced for
-- :grace_seconds. Bounded per call; SKIP LOCKED passes over a content a finishing
-- transaction holds. The grace condition is repeated on the target row itself: a
-- finisher that claimed the content (claim_stored_content) after this statement
-- chose it makes the DELETE wait for its lock, then re-check that condition on the
-- updated row (READ COMMITTED's re-check) and leave it.
-- Also a 'writing' content whose writer is complete and that is older than the grace:
-- a thumbnail made on request (a variant of a complete media) by a process that died
-- before its row was written. Nothing else would take it before its media goes.
DELETE FROM media_contents c
 WHERE c.id IN (SELECT o.id FROM media_contents o
                 WHERE ((o.state = 'stored'
                         AND o.last_referenced_at
                             < now() - make_interval(secs => :grace_seconds))
                        OR (o.state = 'writing'
                            AND o.created_at < now() - make_interval(secs => :grace_seconds)
                            AND EXISTS (SELECT 1 FROM media_files w
                                         WHERE w.id = o.writer_media_id
                                           AND w.upload_state = 'complete')))
                   AND NOT EXISTS (SELECT 1 FROM media_files f WHERE f.content_id = o.id)
                   AND NOT EXISTS (SELECT 1 FROM media_variants v WHERE v.content_id = o.id)
                 ORDER BY o.id
                 LIMIT :batch
                   FOR UPDATE SKIP LOCKED)
   AND ((c.state = 'stored'
         AND c.last_referenced_at < now() - make_interval(secs => :grace_seconds))
        OR (c.state = 'writing'
            AND c.created_at < now() - make_interval(secs => :grace_seconds)))
RETURNING c.id, c.file_size;

-- name: variant_contents_of
-- The contents an upload's variants show (an aborted upload's, before its row goes).
SELECT content_id FROM media_variants WHERE media_id = :media_id;

-- name: drop_unshown_contents
-- Of these contents, those no row shows any more: an aborted upload's variants, dropped
-- at once rather than after the grace period. A content another upload has just
-- claimed or pointed at is locked by it: this waits, and the foreign key then refuses
-- the delete if a row shows it (the caller leaves it to the reclaim).
DELETE FROM media_contents c
 WHERE c.id = ANY(:ids::bigint[]) AND c.state = 'stored'
   AND NOT EXISTS (SELECT 1 FROM media_files f WHERE f.content_id = c.id)
   AND NOT EXISTS (SELECT 1 FROM media_variants v WHERE v.content_id = c.id);
