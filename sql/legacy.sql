-- The move from the legacy folder (/uploads/media/): the map of imported files, the
-- messages that point at them, and the redirects of their old URLs.
--
-- {url_column} is an identifier, not a value: PostgreSQL cannot take a column name as a
-- bind parameter, so server/legacy/columns.py substitutes it, and only with the name as
-- PostgreSQL itself quoted it (quote_ident, in legacy_url_column below) after finding
-- it in the catalogue. Nothing a user typed ever reaches the SQL text unchecked.

-- name: legacy_url_column
-- The messages column holding old URLs, if it exists: its quoted name and its type.
SELECT quote_ident(a.attname) AS quoted, format_type(a.atttypid, a.atttypmod) AS type
  FROM pg_attribute a
 WHERE a.attrelid = to_regclass('messages')
   AND a.attname = :column_name AND a.attnum > 0 AND NOT a.attisdropped;

-- name: legacy_message_refs
-- Messages whose URL column mentions the legacy folder, streamed by id; the exact
-- match (path, full URL with a host, percent-encoding) is decided in Python.
SELECT id, {url_column}::text AS url
  FROM messages
 WHERE strpos({url_column}::text, :needle) > 0
 ORDER BY id;

-- name: legacy_rewrite_url
-- Points one message at the new route, only if it still holds the old URL (a message
-- edited meanwhile is left as it is). Runs in the transaction that finishes the import.
UPDATE messages SET {url_column} = :new_url
 WHERE id = :id AND {url_column}::text = :old_url;

-- name: legacy_try_lock
-- One import or clean-up at a time per database: two runs would race for the same files.
SELECT pg_try_advisory_lock(hashtext('media-store: legacy'));

-- name: legacy_unlock
SELECT pg_advisory_unlock(hashtext('media-store: legacy'));

-- name: legacy_map_all
-- Everything imported so far, to decide per file: new, already there, or changed.
-- stored_sha256 is NULL on rows recorded before migration 0011 (bytes kept): sha256.
SELECT legacy_name, media_id, sha256, file_size, file_mtime, processed,
       coalesce(stored_sha256, sha256) AS stored_sha256
  FROM legacy_media;

-- name: legacy_record
-- Records one import, in the transaction that makes its media visible; a conflict
-- means another run recorded the same file first (the caller rolls back). sha256 and
-- file_size are the legacy file's; stored_sha256 what the media holds (the same bytes
-- unless processed).
INSERT INTO legacy_media (legacy_name, media_id, sha256, file_size, file_mtime,
                          processed, stored_sha256)
VALUES (:legacy_name, :media_id, :sha256, :file_size, :file_mtime, :processed,
        :stored_sha256)
ON CONFLICT (legacy_name) DO NOTHING
RETURNING media_id;

-- name: legacy_get
-- One imported file by its legacy name, with the sha256 its media holds now.
SELECT l.legacy_name, l.media_id, l.sha256, l.file_size, l.file_mtime, l.processed,
       coalesce(l.stored_sha256, l.sha256) AS stored_sha256, f.sha256 AS media_sha256
  FROM legacy_media l
  JOIN media_files f ON f.id = l.media_id AND f.upload_state = 'complete'
 WHERE l.legacy_name = :legacy_name;

-- name: get_media_by_legacy_name
-- /uploads/media/{name}: the media imported from that legacy file.
SELECT f.id, f.message_id, f.file_name, f.original_name, f.mime_type, f.file_size,
       f.media_type, f.is_compressed, f.compression_quality, f.duration, f.dimensions,
       f.zapi_sent, f.zapi_message_id, f.created_at, f.updated_at, f.chunk_size,
       f.chunk_count, f.sha256, f.duration_exact, f.waveform,
       media_variant_list(f.id) AS variants, NULL::varchar AS variant,
       f.content_id, f.placeholder, media_quarantine_reason(f.sha256) AS quarantine_reason
  FROM legacy_media l
  JOIN media_files f ON f.id = l.media_id
 WHERE l.legacy_name = :legacy_name AND f.upload_state = 'complete';

-- name: get_legacy_media_by_file_name
-- /uploads/media/{name} by the generated file_name an earlier redirect handed out:
-- only for media imported from a legacy file. Any other media's file_name is no
-- credential and gets nothing here (a 404).
SELECT f.id, f.message_id, f.file_name, f.original_name, f.mime_type, f.file_size,
       f.media_type, f.is_compressed, f.compression_quality, f.duration, f.dimensions,
       f.zapi_sent, f.zapi_message_id, f.created_at, f.updated_at, f.chunk_size,
       f.chunk_count, f.sha256, f.duration_exact, f.waveform,
       media_variant_list(f.id) AS variants, NULL::varchar AS variant,
       f.content_id, f.placeholder, media_quarantine_reason(f.sha256) AS quarantine_reason
  FROM media_files f
  JOIN legacy_media l ON l.media_id = f.id
 WHERE f.file_name = :file_name AND f.upload_state = 'complete';

-- name: media_ids_page
-- Complete media a page at a time by id (verify), optionally one message's or since a
-- date (export). Each filter is skipped when its parameter is NULL.
SELECT f.id, l.legacy_name
  FROM media_files f
  LEFT JOIN legacy_media l ON l.media_id = f.id
 WHERE f.upload_state = 'complete' AND f.id > :after
   AND (:message_id::int IS NULL OR f.message_id = :message_id)
   AND (:since::timestamptz IS NULL OR f.created_at >= :since)
 ORDER BY f.id
 LIMIT :batch;

-- name: legacy_name_of
-- The legacy name a media was imported from, if any.
SELECT legacy_name FROM legacy_media WHERE media_id = :media_id;
