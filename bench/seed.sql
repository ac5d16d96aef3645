-- Bench-only statements (bench/bench_scale.py); not loaded by the service.

-- name: seed_files
-- :count complete one-chunk files on one new message, each chunk the same :data.
WITH msg AS (
    INSERT INTO messages DEFAULT VALUES RETURNING id
), files AS (
    INSERT INTO media_files (message_id, file_name, original_name, mime_type, file_size,
                             media_type, chunk_size, chunk_count, sha256, upload_state,
                             completed_at)
    SELECT msg.id, 'seed-' || :tag || '-' || g || '.jpg', 'seed.jpg', 'image/jpeg',
           :file_size, 'image', 261120, 1, sha256(convert_to(:data, 'UTF8')), 'complete',
           now()
      FROM msg, generate_series(1, :count) AS g
    RETURNING id
)
INSERT INTO media_chunks (media_id, seq, data)
SELECT files.id, 0, :data FROM files;

-- name: seeded_ids
SELECT min(id) AS lo, max(id) AS hi FROM media_files;

-- name: chunk_table_bytes
SELECT pg_total_relation_size('media_chunks') AS bytes;
