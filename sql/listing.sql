-- Paged listing of a message's media (keyset pagination on (created_at, id), served by
-- media_files_message_idx). A page never depends on how many rows came before it, so
-- rows inserted meanwhile neither repeat nor shift the pages that follow.

-- name: list_message_media_first
-- The first page: the oldest :page_size complete files of a message (the caller asks
-- one more than it returns, to know whether another page follows).
SELECT id, message_id, file_name, original_name, mime_type, file_size, media_type,
       is_compressed, compression_quality, duration, dimensions, zapi_sent,
       zapi_message_id, created_at, updated_at, chunk_size, chunk_count, sha256,
       duration_exact, waveform, media_variant_list(id) AS variants,
       NULL::varchar AS variant, content_id, placeholder,
       media_quarantine_reason(sha256) AS quarantine_reason
  FROM media_files
 WHERE message_id = :message_id AND upload_state = 'complete'
 ORDER BY created_at, id
 LIMIT :page_size;

-- name: list_message_media_after
-- The next page: the files strictly after the last one of the previous page.
SELECT id, message_id, file_name, original_name, mime_type, file_size, media_type,
       is_compressed, compression_quality, duration, dimensions, zapi_sent,
       zapi_message_id, created_at, updated_at, chunk_size, chunk_count, sha256,
       duration_exact, waveform, media_variant_list(id) AS variants,
       NULL::varchar AS variant, content_id, placeholder,
       media_quarantine_reason(sha256) AS quarantine_reason
  FROM media_files
 WHERE message_id = :message_id AND upload_state = 'complete'
   AND (created_at, id) > (:after_created_at, :after_id)
 ORDER BY created_at, id
 LIMIT :page_size;
