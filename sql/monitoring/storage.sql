-- Read-only queries for DBAs and dashboards; /metrics uses media_totals.

-- name: media_totals
-- Complete files and their bytes, by media type.
SELECT media_type, count(*) AS files, coalesce(sum(file_size), 0)::bigint AS bytes
  FROM media_files
 WHERE upload_state = 'complete'
 GROUP BY media_type
 ORDER BY media_type;

-- name: uploads_in_progress
-- Uploads not yet complete, oldest first: long-idle ones are the janitor's next work.
SELECT id, message_id, original_name, file_size AS stored_bytes, chunk_count,
       created_at, updated_at, now() - updated_at AS idle_for
  FROM media_files
 WHERE upload_state = 'uploading'
 ORDER BY updated_at;

-- name: chunk_table_size
-- Space the chunks take on disk, TOAST and indexes included; summed over the
-- partitions when content_chunks is partitioned (its parent holds nothing itself).
SELECT coalesce(sum(pg_total_relation_size(relid)), 0)::bigint AS bytes
  FROM (SELECT 'content_chunks'::regclass AS relid
         UNION
        SELECT relid FROM pg_partition_tree('content_chunks')) AS tree;
