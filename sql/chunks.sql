-- Statements on content_chunks: the bytes of a content, as base64 text, one row per
-- chunk. Run only by server/store/ (the store's one writer and one reader).

-- name: append_chunks
-- The one chunk writer (store/media.py): stores a batch of consecutive chunks of a
-- 'writing' content (an upload's, or a variant's) and records the
-- upload's progress in the same statement, so the row always says how far the upload
-- got (for the janitor's idle clock, and for reading the progress back). One statement
-- for several chunks: one round trip, one commit and one progress update per batch.
-- Its commit does not wait for the WAL flush (synchronous_commit off, for this
-- statement's transaction only): a chunk of an upload in progress needs no durability
-- of its own. The upload's finalising UPDATE commits synchronously, and that flush
-- makes every chunk before it durable too; a crash before it loses only an upload
-- that was not complete anyway. It spares one WAL flush per batch.
-- Up to four chunks, from :first_seq on, in :data0..:data3 (the unused ones NULL):
-- four scalar parameters rather than one text[] because the driver copies each
-- element of an array three times on its way out, and a scalar once. They come as
-- bytea, the base64's ASCII, so the server needn't make a text copy of each chunk;
-- convert_from within the same encoding only checks it.
-- An upload may have two of these in flight (store/media.py, Upload): the progress only
-- grows, whichever commits first, so it may name one batch still being stored (an
-- upload whose write fails is deleted whole); the finalising UPDATE sets exact figures.
WITH async_commit AS (
    SELECT set_config('synchronous_commit', 'off', true)
), stored AS (
    INSERT INTO content_chunks (content_id, seq, data)
    SELECT :content_id, :first_seq + c.i - 1, c.data
      FROM unnest(ARRAY[convert_from(:data0::bytea, 'UTF8'),
                        convert_from(:data1::bytea, 'UTF8'),
                        convert_from(:data2::bytea, 'UTF8'),
                        convert_from(:data3::bytea, 'UTF8')]) WITH ORDINALITY
           AS c(data, i)
     WHERE c.data IS NOT NULL
)
-- A variant's content (written by its media's upload, not the upload's own content)
-- moves only the media's idle clock.
UPDATE media_files
   SET file_size = CASE WHEN content_id = :content_id
                        THEN greatest(file_size, :stored_bytes) ELSE file_size END,
       chunk_count = CASE WHEN content_id = :content_id
                          THEN greatest(chunk_count, :chunk_count) ELSE chunk_count END,
       updated_at = now()
 WHERE id = :media_id AND upload_state = 'uploading'
   AND EXISTS (SELECT FROM media_contents
                WHERE id = :content_id AND writer_media_id = :media_id)
   AND EXISTS (SELECT FROM async_commit);

-- name: read_chunks
-- The chunks covering a byte range, in order; the caller asks for a few at a time.
SELECT seq, data
  FROM content_chunks
 WHERE content_id = :content_id AND seq BETWEEN :first_seq AND :last_seq
 ORDER BY seq;

-- name: serve_chunks
-- read_chunks for the serving path: the base64 as bytes (convert_to within the same
-- encoding only checks it and returns it as is), so that the server can decode any
-- slice of it without copying the text first. Only while the media served still
-- exists: its content may outlive it (shown by others, or awaiting the reclaim), but a
-- deleted media's bytes are not served, even from metadata cached before the delete.
SELECT seq, convert_to(data, 'UTF8') AS data
  FROM content_chunks
 WHERE content_id = :content_id AND seq BETWEEN :first_seq AND :last_seq
   AND EXISTS (SELECT 1 FROM media_files WHERE id = :media_id)
 ORDER BY seq;

-- name: serve_chunk_batch
-- serve_chunks for single chunks of several files at once: the cache misses that
-- queued for a connection together (store/batching.py), in one round trip. A chunk
-- that does not exist has no row.
-- As serve_chunks, only for media that still exist.
SELECT k.media_id, k.content_id, k.seq, convert_to(c.data, 'UTF8') AS data
  FROM unnest(:media_ids::int[], :content_ids::bigint[], :seqs::int[])
       AS k(media_id, content_id, seq)
  JOIN content_chunks c ON c.content_id = k.content_id AND c.seq = k.seq
 WHERE EXISTS (SELECT 1 FROM media_files f WHERE f.id = k.media_id);

-- name: content_chunk_extent
-- How many chunks a content has and its highest seq (verify: nothing missing, nothing
-- extra).
SELECT count(*) AS chunks, coalesce(max(seq), -1) AS max_seq
  FROM content_chunks
 WHERE content_id = :content_id;

-- name: trim_content_chunks
-- Chunks past a content's end, dropped as it is sealed (a checksummed tus PATCH that
-- never finished may have left some).
DELETE FROM content_chunks WHERE content_id = :content_id AND seq >= :chunk_count;
