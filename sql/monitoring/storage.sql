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

-- name: chunk_table_vacuum
-- The chunk table and its TOAST table: dead rows left by deletes and purges, waiting
-- for (auto)vacuum to make their space reusable, and when vacuum last ran on each.
SELECT s.relname, s.n_live_tup, s.n_dead_tup, s.last_vacuum, s.last_autovacuum
  FROM pg_stat_all_tables s
 WHERE s.relid = 'content_chunks'::regclass
    OR s.relid = (SELECT reltoastrelid FROM pg_class WHERE oid = 'content_chunks'::regclass);

-- name: purged_per_day
-- What retention removed per day over the last :days days, by media type.
SELECT date_trunc('day', purged_at) AS day, media_type, count(*) AS files,
       sum(file_size)::bigint AS bytes
  FROM purged_media
 WHERE purged_at >= now() - make_interval(days => :days)
 GROUP BY 1, 2
 ORDER BY 1 DESC, 2;
