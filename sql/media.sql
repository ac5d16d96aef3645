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
-- Its bytes go to a new 'writing' content that belongs to it (sql/contents.sql): both
-- rows in one statement, their ids drawn first so that each can name the other.
WITH ids AS (
    SELECT nextval(pg_get_serial_sequence('media_files', 'id'))::int AS media_id,
           nextval(pg_get_serial_sequence('media_contents', 'id')) AS content_id
), media AS (
    INSERT INTO media_files (id, file_name, original_name, mime_type, media_type,
                             chunk_size, instance_id, content_id)
    SELECT media_id, :file_name, :original_name, :mime_type, :media_type, :chunk_size,
           :instance_id, content_id
      FROM ids
), content AS (
    INSERT INTO media_contents (id, chunk_size, writer_media_id)
    SELECT content_id, :chunk_size, media_id FROM ids
)
SELECT media_id AS id, content_id FROM ids;

-- name: create_upload_on_content
-- Starts an upload whose bytes are stored already, in the 'writing' content of another
-- upload (a completed tus upload's): nothing is written again; finishing seals (or
-- deduplicates) that content.
INSERT INTO media_files (file_name, original_name, mime_type, media_type, chunk_size,
                         instance_id, content_id)
SELECT :file_name, :original_name, :mime_type, :media_type, c.chunk_size, :instance_id,
       c.id
  FROM media_contents c
 WHERE c.id = :content_id AND c.state = 'writing'
RETURNING id, content_id, chunk_size;

-- name: finalize_upload
-- Makes an upload visible, in one statement: it is complete or it is not there. Run
-- after lock_content_sha256 (sql/contents.sql), in the same transaction. Its content is
-- the stored one with the same sha256 if there is one (claimed: locked and marked as
-- referenced now, see claim_stored_content), its own copy dropped (with :drop_copy; a
-- copy reused from a tus upload goes with that upload's row instead); else its own copy,
-- sealed as the stored content of that sha256 (chunks past its end trimmed). Nothing
-- when the upload or its copy is gone (the janitor took it).
WITH claimed AS (
    UPDATE media_contents SET last_referenced_at = clock_timestamp()
     WHERE sha256 = :sha256 AND state = 'stored'
    RETURNING id, chunk_size, chunk_count
), sealed AS (
    UPDATE media_contents
       SET state = 'stored', sha256 = :sha256, file_size = :file_size,
           chunk_count = :chunk_count, writer_media_id = NULL,
           last_referenced_at = clock_timestamp()
     WHERE id = :content_id AND state = 'writing' AND NOT EXISTS (SELECT FROM claimed)
    RETURNING id, chunk_size, chunk_count
), settled AS (
    SELECT id, chunk_size, chunk_count FROM claimed
    UNION ALL
    SELECT id, chunk_size, chunk_count FROM sealed
), trimmed AS (
    DELETE FROM content_chunks
     WHERE content_id = :content_id AND seq >= :chunk_count AND EXISTS (SELECT FROM sealed)
), dropped AS (
    DELETE FROM media_contents
     WHERE id = :content_id AND state = 'writing' AND :drop_copy
       AND EXISTS (SELECT FROM claimed)
)
UPDATE media_files f
   SET upload_state = 'complete',
       message_id   = :message_id,
       file_size    = :file_size,
       chunk_count  = s.chunk_count,
       chunk_size   = s.chunk_size,
       content_id   = s.id,
       sha256       = :sha256,
       completed_at = now(),
       updated_at   = now()
  FROM settled s
 WHERE f.id = :id AND f.upload_state = 'uploading'
RETURNING f.id, f.message_id, f.file_name, f.original_name, f.mime_type, f.file_size,
          f.media_type, f.is_compressed, f.compression_quality, f.duration, f.dimensions,
          f.zapi_sent, f.zapi_message_id, f.created_at, f.updated_at, f.chunk_size,
          f.chunk_count, f.sha256, f.duration_exact, f.waveform,
          media_variant_list(f.id) AS variants, NULL::varchar AS variant, f.content_id,
          f.placeholder, media_quarantine_reason(f.sha256) AS quarantine_reason;

-- name: delete_upload
-- Reclaims an aborted upload at once (its 'writing' content and chunks go with it by
-- cascade).
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
       NULL::varchar AS variant, content_id, placeholder,
       media_quarantine_reason(sha256) AS quarantine_reason
  FROM media_files
 WHERE id = :id AND upload_state = 'complete';

-- name: delete_media
-- Removes a complete file. Its content stays while another row shows it; once none
-- does, the reclaim takes it after the grace period (sql/contents.sql). Returns its
-- message (for the audit row).
DELETE FROM media_files WHERE id = :id AND upload_state = 'complete' RETURNING message_id;
