-- Bench-only statements (bench/bench_scale.py); not loaded by the service.

-- name: seed_files
-- :count complete one-chunk files on one new message, each its own content (as many
-- different files would be; the sha256 stands for its bytes), each chunk the same :data.
WITH msg AS (
    INSERT INTO messages DEFAULT VALUES RETURNING id
), ids AS (
    SELECT g, nextval(pg_get_serial_sequence('media_contents', 'id')) AS content_id,
           sha256(convert_to(:tag || '-' || g || :data, 'UTF8')) AS sha256
      FROM generate_series(1, :count) AS g
), contents AS (
    INSERT INTO media_contents (id, sha256, file_size, chunk_size, chunk_count, state)
    SELECT content_id, sha256, :file_size, 261120, 1, 'stored' FROM ids
), files AS (
    INSERT INTO media_files (message_id, file_name, original_name, mime_type, file_size,
                             media_type, chunk_size, chunk_count, sha256, upload_state,
                             completed_at, content_id)
    SELECT msg.id, 'seed-' || :tag || '-' || g || '.jpg', 'seed.jpg', 'image/jpeg',
           :file_size, 'image', 261120, 1, ids.sha256, 'complete', now(), ids.content_id
      FROM msg, ids
)
INSERT INTO content_chunks (content_id, seq, data)
SELECT content_id, 0, :data FROM ids;

-- name: seeded_ids
SELECT min(id) AS lo, max(id) AS hi FROM media_files;

-- name: chunk_table_bytes
SELECT pg_total_relation_size('content_chunks') AS bytes;
