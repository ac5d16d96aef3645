-- Statements on media_files: the metadata and the life of an upload.
-- Every read the HTTP routes make filters on upload_state = 'complete': an upload in
-- progress is invisible.

-- name: message_exists
-- Checked before reading an upload's body, so a wrong message id costs no bytes.
SELECT EXISTS (SELECT 1 FROM messages WHERE id = :message_id);

-- name: create_message
-- A message to attach media to (standalone deployments and tests; the chat product
-- creates its own).
INSERT INTO messages DEFAULT VALUES RETURNING id;

-- name: create_upload
-- Starts an upload, invisible until finalize_upload. Its message is bound at the end:
-- a multipart form may send the file before the message id.
INSERT INTO media_files (file_name, original_name, mime_type, media_type, chunk_size,
                         instance_id)
VALUES (:file_name, :original_name, :mime_type, :media_type, :chunk_size, :instance_id)
RETURNING id;

-- name: finalize_upload
-- Makes an upload visible, in one statement: it is complete or it is not there. The
-- variant list is read outside the UPDATE: Citus allows no function but immutable ones
-- in a distributed UPDATE's RETURNING.
WITH done AS (
    UPDATE media_files
       SET upload_state = 'complete',
           message_id   = :message_id,
           file_size    = :file_size,
           chunk_count  = :chunk_count,
           sha256       = :sha256,
           completed_at = now(),
           updated_at   = now()
     WHERE id = :id AND upload_state = 'uploading'
    RETURNING id, message_id, file_name, original_name, mime_type, file_size, media_type,
              is_compressed, compression_quality, duration, dimensions, zapi_sent,
              zapi_message_id, created_at, updated_at, chunk_size, chunk_count, sha256,
              duration_exact, waveform
)
SELECT id, message_id, file_name, original_name, mime_type, file_size, media_type,
       is_compressed, compression_quality, duration, dimensions, zapi_sent,
       zapi_message_id, created_at, updated_at, chunk_size, chunk_count, sha256,
       duration_exact, waveform, media_variant_list(id) AS variants,
       NULL::varchar AS variant
  FROM done;

-- name: delete_upload
-- Reclaims an aborted upload at once (its chunks go with it by cascade).
DELETE FROM media_files WHERE id = :id AND upload_state = 'uploading';

-- name: reclaim_stale_uploads
-- The janitor: uploads nobody has written to for :stale_seconds were abandoned
-- (client gone, instance crashed). Bounded per call so one run never holds locks long.
DELETE FROM media_files
 WHERE id IN (SELECT id FROM media_files
               WHERE upload_state = 'uploading'
                 AND updated_at < now() - make_interval(secs => :stale_seconds)
                 -- tus uploads wait for their client until they expire (tus.sql)
                 AND NOT EXISTS (SELECT 1 FROM tus_uploads t WHERE t.media_id = media_files.id)
               ORDER BY updated_at
               LIMIT :batch
                 FOR UPDATE SKIP LOCKED)
RETURNING id;

-- name: get_media
-- One complete file's metadata.
SELECT id, message_id, file_name, original_name, mime_type, file_size, media_type,
       is_compressed, compression_quality, duration, dimensions, zapi_sent,
       zapi_message_id, created_at, updated_at, chunk_size, chunk_count, sha256,
       duration_exact, waveform, media_variant_list(id) AS variants,
       NULL::varchar AS variant
  FROM media_files
 WHERE id = :id AND upload_state = 'complete';

-- name: delete_media
-- Removes a complete file; its chunks go by ON DELETE CASCADE. Returns its message
-- (for the audit row).
DELETE FROM media_files WHERE id = :id AND upload_state = 'complete' RETURNING message_id;

-- name: notify_media_deleted
-- Tells every instance's cache, at commit, from the server the service talks to. On
-- one server the trigger on media_files has sent the same NOTIFY in the same
-- transaction, and PostgreSQL delivers it once; on Citus that trigger is gone (a
-- distributed table's trigger fires on the worker, where nobody listens:
-- docs/scaling.md). The channel is server/store/invalidation.py's.
SELECT pg_notify('media_deleted', (:id::integer)::text);
