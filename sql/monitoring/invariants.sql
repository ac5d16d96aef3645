-- Rows that break the store's invariants. Each query returns nothing on a healthy
-- database; `python run.py verify` runs them and reads every byte, these only count rows.

-- name: broken_complete_without_chunks
-- Stored contents whose chunk rows are not exactly 0..chunk_count-1 (some missing).
SELECT c.id, c.chunk_count, count(k.seq)::int AS chunks_found
  FROM media_contents c
  LEFT JOIN content_chunks k ON k.content_id = c.id AND k.seq < c.chunk_count
 WHERE c.state = 'stored'
 GROUP BY c.id, c.chunk_count
HAVING count(k.seq) <> c.chunk_count
 ORDER BY c.id;

-- name: broken_chunk_gaps
-- Contents (stored or being written) whose chunks are not numbered 0..n-1 without holes.
SELECT content_id, count(*)::int AS chunks, max(seq) AS max_seq
  FROM content_chunks
 GROUP BY content_id
HAVING max(seq) + 1 <> count(*)
 ORDER BY content_id;

-- name: broken_orphaned_chunks
-- Chunks past the end of a stored content (left over, never read).
SELECT k.content_id, k.seq
  FROM content_chunks k
  JOIN media_contents c ON c.id = k.content_id
 WHERE c.state = 'stored' AND k.seq >= c.chunk_count
 ORDER BY k.content_id, k.seq;

-- name: broken_rows_missing_content
-- Complete media and variants whose content is not a stored one with their bytes: not
-- stored (still being written) or another sha256, size or chunk layout than theirs.
SELECT 'media' AS kind, f.id AS media_id, NULL::varchar AS variant, f.content_id
  FROM media_files f
  LEFT JOIN media_contents c ON c.id = f.content_id
 WHERE f.upload_state = 'complete'
   AND (c.id IS NULL OR c.state <> 'stored' OR c.sha256 <> f.sha256
        OR c.file_size <> f.file_size OR c.chunk_size <> f.chunk_size
        OR c.chunk_count <> f.chunk_count)
UNION ALL
SELECT 'variant', v.media_id, v.name, v.content_id
  FROM media_variants v
  LEFT JOIN media_contents c ON c.id = v.content_id
 WHERE c.id IS NULL OR c.state <> 'stored' OR c.sha256 <> v.sha256
    OR c.file_size <> v.file_size OR c.chunk_size <> v.chunk_size
    OR c.chunk_count <> v.chunk_count
 ORDER BY 2, 3;

-- name: unreferenced_contents
-- Stored content that no media row and no variant shows: the reclaim's next work once
-- unreferenced for MEDIA_ORPHAN_GRACE_SECONDS. Not damage; many old ones mean the
-- janitor is not running.
SELECT c.id, c.file_size, c.last_referenced_at, now() - c.last_referenced_at AS unreferenced_for
  FROM media_contents c
 WHERE c.state = 'stored'
   AND NOT EXISTS (SELECT 1 FROM media_files f WHERE f.content_id = c.id)
   AND NOT EXISTS (SELECT 1 FROM media_variants v WHERE v.content_id = c.id)
 ORDER BY c.last_referenced_at;
