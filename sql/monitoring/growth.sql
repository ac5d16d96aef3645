-- Where the space goes: the largest files and growth per day.

-- name: largest_files
-- The :n largest complete files.
SELECT id, message_id, original_name, mime_type, file_size, created_at
  FROM media_files
 WHERE upload_state = 'complete'
 ORDER BY file_size DESC, id
 LIMIT :n;

-- name: growth_per_day
-- Files and bytes added per day over the last :days days (UTC), newest first.
SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*)::bigint AS files,
       sum(file_size)::bigint AS bytes
  FROM media_files
 WHERE upload_state = 'complete'
   AND created_at >= now() - make_interval(days => :days)
 GROUP BY 1
 ORDER BY 1 DESC;
