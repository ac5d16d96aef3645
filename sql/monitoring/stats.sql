-- The figures of `python run.py stats`, as queries a DBA can run in psql.

-- name: stats_messages
-- Messages, and those with at least one complete media file.
SELECT (SELECT count(*) FROM messages)::bigint AS messages,
       (SELECT count(DISTINCT message_id) FROM media_files
         WHERE upload_state = 'complete')::bigint AS messages_with_media;

-- name: stats_media_by_type
-- Complete media by type: files, raw bytes, and the bytes of their base64 text as
-- stored (4 per 3, exact: every chunk but the last holds a multiple of 3 bytes).
SELECT media_type, count(*)::bigint AS files,
       coalesce(sum(file_size), 0)::bigint AS bytes,
       coalesce(sum(4 * ((file_size + 2) / 3)), 0)::bigint AS stored_bytes
  FROM media_files
 WHERE upload_state = 'complete'
 GROUP BY media_type
 ORDER BY media_type;

-- name: stats_uploads_in_progress
-- Uploads not complete yet, and the bytes they hold so far.
SELECT count(*)::bigint AS uploads, coalesce(sum(file_size), 0)::bigint AS bytes
  FROM media_files
 WHERE upload_state = 'uploading';

-- name: stats_legacy
-- Legacy files imported so far, and their bytes.
SELECT count(*)::bigint AS files, coalesce(sum(file_size), 0)::bigint AS bytes
  FROM legacy_media;

-- name: stats_zapi
-- Complete media sent on to WhatsApp (Z-API) and not (yet) sent; the outbox's
-- deliveries still to go (queued or being sent), and those that gave up or whose fate
-- is unknown (a timeout after the request may have reached Z-API).
-- Two counts side by side, not subqueries in the select list: on Citus media_files is
-- spread over the workers and zapi_deliveries stays on the coordinator.
WITH media AS (
    SELECT count(*) FILTER (WHERE zapi_sent)::bigint AS sent,
           count(*) FILTER (WHERE NOT zapi_sent)::bigint AS not_sent
      FROM media_files
     WHERE upload_state = 'complete'
), deliveries AS (
    SELECT count(*) FILTER (WHERE state IN ('queued', 'sending'))::bigint AS pending,
           count(*) FILTER (WHERE state IN ('failed', 'unknown'))::bigint AS stuck
      FROM zapi_deliveries
)
SELECT media.sent, media.not_sent, deliveries.pending, deliveries.stuck
  FROM media, deliveries;
