-- Rows that break the store's invariants. Each query returns nothing on a healthy
-- database; `python run.py verify` reads every byte, these only count rows.

-- name: broken_complete_without_chunks
-- Complete files whose chunk rows are not exactly 0..chunk_count-1 (some missing).
SELECT f.id, f.chunk_count, count(c.seq)::int AS chunks_found
  FROM media_files f
  LEFT JOIN media_chunks c ON c.media_id = f.id AND c.seq < f.chunk_count
 WHERE f.upload_state = 'complete'
 GROUP BY f.id, f.chunk_count
HAVING count(c.seq) <> f.chunk_count
 ORDER BY f.id;

-- name: broken_chunk_gaps
-- Files (complete or not) whose chunks are not numbered 0..n-1 without holes.
SELECT media_id, count(*)::int AS chunks, max(seq) AS max_seq
  FROM media_chunks
 GROUP BY media_id
HAVING max(seq) + 1 <> count(*)
 ORDER BY media_id;

-- name: broken_orphaned_chunks
-- Chunks past the end of a complete file (left over, never read).
SELECT c.media_id, c.seq
  FROM media_chunks c
  JOIN media_files f ON f.id = c.media_id
 WHERE f.upload_state = 'complete' AND c.seq >= f.chunk_count
 ORDER BY c.media_id, c.seq;
