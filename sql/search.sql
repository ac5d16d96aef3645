-- GET /api/media: search with keyset pagination, newest first.
--
-- One statement per leading filter, so each is planned on the index that fits it
-- (message_id: media_files_message_idx; mime_type: media_files_search_mime_idx;
-- media_type: media_files_search_type_idx; none: media_files_search_idx), also once a
-- prepared statement switches to a generic plan. The other filters are optional
-- (NULL: not filtered). The cursor is the (created_at, id) of the last row of the
-- previous page; the first page passes ('infinity', 0) and the id is not looked at.
-- :until is exclusive, :since inclusive.

-- name: search_media_by_message
-- A message's media.
SELECT id, message_id, file_name, original_name, mime_type, file_size, media_type,
       is_compressed, compression_quality, duration, dimensions, zapi_sent,
       zapi_message_id, created_at, updated_at, chunk_size, chunk_count, sha256,
       duration_exact, waveform, media_variant_list(id) AS variants,
       NULL::varchar AS variant, content_id, placeholder,
       media_quarantine_reason(sha256) AS quarantine_reason
  FROM media_files
 WHERE upload_state = 'complete'
   AND message_id = :message_id
   AND (:media_type::text IS NULL OR media_type = :media_type)
   AND (:mime_type::text IS NULL OR mime_type = :mime_type)
   AND created_at >= coalesce(:since::timestamptz, '-infinity')
   AND created_at < coalesce(:until::timestamptz, 'infinity')
   AND (created_at, id) < (:after_at::timestamptz, :after_id::int)
 ORDER BY created_at DESC, id DESC
 LIMIT :n;

-- name: search_media_by_mime
-- Media of one MIME type.
SELECT id, message_id, file_name, original_name, mime_type, file_size, media_type,
       is_compressed, compression_quality, duration, dimensions, zapi_sent,
       zapi_message_id, created_at, updated_at, chunk_size, chunk_count, sha256,
       duration_exact, waveform, media_variant_list(id) AS variants,
       NULL::varchar AS variant, content_id, placeholder,
       media_quarantine_reason(sha256) AS quarantine_reason
  FROM media_files
 WHERE upload_state = 'complete'
   AND mime_type = :mime_type
   AND (:media_type::text IS NULL OR media_type = :media_type)
   AND created_at >= coalesce(:since::timestamptz, '-infinity')
   AND created_at < coalesce(:until::timestamptz, 'infinity')
   AND (created_at, id) < (:after_at::timestamptz, :after_id::int)
 ORDER BY created_at DESC, id DESC
 LIMIT :n;

-- name: search_media_by_type
-- Media of one media type.
SELECT id, message_id, file_name, original_name, mime_type, file_size, media_type,
       is_compressed, compression_quality, duration, dimensions, zapi_sent,
       zapi_message_id, created_at, updated_at, chunk_size, chunk_count, sha256,
       duration_exact, waveform, media_variant_list(id) AS variants,
       NULL::varchar AS variant, content_id, placeholder,
       media_quarantine_reason(sha256) AS quarantine_reason
  FROM media_files
 WHERE upload_state = 'complete'
   AND media_type = :media_type
   AND created_at >= coalesce(:since::timestamptz, '-infinity')
   AND created_at < coalesce(:until::timestamptz, 'infinity')
   AND (created_at, id) < (:after_at::timestamptz, :after_id::int)
 ORDER BY created_at DESC, id DESC
 LIMIT :n;

-- name: search_media_all
-- All media.
SELECT id, message_id, file_name, original_name, mime_type, file_size, media_type,
       is_compressed, compression_quality, duration, dimensions, zapi_sent,
       zapi_message_id, created_at, updated_at, chunk_size, chunk_count, sha256,
       duration_exact, waveform, media_variant_list(id) AS variants,
       NULL::varchar AS variant, content_id, placeholder,
       media_quarantine_reason(sha256) AS quarantine_reason
  FROM media_files
 WHERE upload_state = 'complete'
   AND created_at >= coalesce(:since::timestamptz, '-infinity')
   AND created_at < coalesce(:until::timestamptz, 'infinity')
   AND (created_at, id) < (:after_at::timestamptz, :after_id::int)
 ORDER BY created_at DESC, id DESC
 LIMIT :n;

-- name: search_media_by_sha256
-- Every media showing one content (the console's "where else is this shown"). No index
-- on sha256 here: a scan of the metadata rows (never of the chunks).
SELECT id, message_id, file_name, original_name, mime_type, file_size, media_type,
       is_compressed, compression_quality, duration, dimensions, zapi_sent,
       zapi_message_id, created_at, updated_at, chunk_size, chunk_count, sha256,
       duration_exact, waveform, media_variant_list(id) AS variants,
       NULL::varchar AS variant, content_id, placeholder,
       media_quarantine_reason(sha256) AS quarantine_reason
  FROM media_files
 WHERE upload_state = 'complete'
   AND sha256 = :sha256
   AND (:media_type::text IS NULL OR media_type = :media_type)
   AND created_at >= coalesce(:since::timestamptz, '-infinity')
   AND created_at < coalesce(:until::timestamptz, 'infinity')
   AND (created_at, id) < (:after_at::timestamptz, :after_id::int)
 ORDER BY created_at DESC, id DESC
 LIMIT :n;

-- name: search_media_by_name
-- Media whose original name contains :name, case-insensitively (a plain substring: no
-- LIKE pattern characters to escape). A scan of the metadata rows, newest first.
SELECT id, message_id, file_name, original_name, mime_type, file_size, media_type,
       is_compressed, compression_quality, duration, dimensions, zapi_sent,
       zapi_message_id, created_at, updated_at, chunk_size, chunk_count, sha256,
       duration_exact, waveform, media_variant_list(id) AS variants,
       NULL::varchar AS variant, content_id, placeholder,
       media_quarantine_reason(sha256) AS quarantine_reason
  FROM media_files
 WHERE upload_state = 'complete'
   AND strpos(lower(original_name), lower(:name)) > 0
   AND (:media_type::text IS NULL OR media_type = :media_type)
   AND created_at >= coalesce(:since::timestamptz, '-infinity')
   AND created_at < coalesce(:until::timestamptz, 'infinity')
   AND (created_at, id) < (:after_at::timestamptz, :after_id::int)
 ORDER BY created_at DESC, id DESC
 LIMIT :n;
