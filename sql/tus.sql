-- Statements for resumable uploads (tus 1.0, server/tus): a tus_uploads row beside the
-- media_files row whose 'writing' content holds the bytes (sql/contents.sql). The
-- statements on those chunks are run by server/store/tus.py only.

-- name: tus_create_media
-- The invisible media_files row of a new tus upload. Its type is decided at completion
-- from the stored head, so a neutral placeholder stands until then; no instance owns it
-- (instance_id NULL): it waits for its client, not for a process.
-- Its content is created with it, as for any upload (create_upload in media.sql).
WITH ids AS (
    SELECT nextval(pg_get_serial_sequence('media_files', 'id'))::int AS media_id,
           nextval(pg_get_serial_sequence('media_contents', 'id')) AS content_id
), media AS (
    INSERT INTO media_files (id, file_name, original_name, mime_type, media_type,
                             chunk_size, instance_id, content_id)
    SELECT media_id, :file_name, :original_name, 'application/octet-stream', 'document',
           :chunk_size, NULL, content_id
      FROM ids
), content AS (
    INSERT INTO media_contents (id, chunk_size, writer_media_id)
    SELECT content_id, :chunk_size, media_id FROM ids
)
SELECT media_id FROM ids;

-- name: tus_create
-- The tus bookkeeping of a new upload.
INSERT INTO tus_uploads (id, media_id, upload_length, metadata, message_id, creator,
                         creator_identity, expires_at)
VALUES (:id, :media_id, :upload_length, :metadata, :message_id, :creator,
        :creator_identity, now() + make_interval(secs => :expiry_seconds));

-- name: tus_get
-- An upload's state: how far it got (full chunks + tail), what it expects, who made it,
-- whether a request holds it now. Once complete, media_id is the media it became.
SELECT t.id, t.media_id, t.upload_length, t.metadata, t.message_id, t.creator,
       t.creator_identity, t.expires_at, t.tail, f.file_size, f.chunk_count,
       f.chunk_size, f.content_id, f.upload_state, f.original_name, t.expires_at < now() AS expired,
       coalesce(t.lock_until > now(), false) AS held
  FROM tus_uploads t JOIN media_files f ON f.id = t.media_id
 WHERE t.id = :id;

-- name: tus_lock
-- Takes the upload's lease for one PATCH (or a termination), unless another request
-- holds a lease that has not run out: that one gets 423. Works across instances.
UPDATE tus_uploads
   SET lock_id = :lock_id, lock_until = now() + make_interval(secs => :lease_seconds)
 WHERE id = :id AND (lock_id IS NULL OR lock_until < now())
RETURNING id;

-- name: tus_unlock
-- Gives the lease back (only the holder's own).
UPDATE tus_uploads SET lock_id = NULL, lock_until = NULL
 WHERE id = :id AND lock_id = :lock_id;

-- name: tus_append_chunk
-- Stores one full chunk and the progress (a PATCH without Upload-Checksum), only while
-- this request holds the lease: a request whose lease ran out cannot write over its
-- successor. The lease is renewed. The tail is emptied, not rewritten: the chunk took
-- it in, and the bytes after the chunk are written once, by tus_save at the end of the
-- PATCH (a crash meanwhile loses them; the offset stays true). A chunk left past the
-- offset by a checksummed PATCH that never finished is overwritten.
WITH held AS (
    UPDATE tus_uploads
       SET lock_until = now() + make_interval(secs => :lease_seconds), tail = ''
     WHERE id = :id AND lock_id = :lock_id
    RETURNING media_id
), stored AS (
    INSERT INTO content_chunks (content_id, seq, data)
    SELECT f.content_id, :seq, :data FROM held JOIN media_files f ON f.id = held.media_id
    ON CONFLICT (content_id, seq) DO UPDATE SET data = excluded.data
)
UPDATE media_files
   SET file_size = :stored_bytes, chunk_count = :seq + 1, updated_at = now()
 WHERE id = (SELECT media_id FROM held) AND upload_state = 'uploading';

-- name: tus_put_chunk
-- Stores one full chunk of a PATCH with Upload-Checksum past the upload's offset, which
-- does not move: only tus_save, once the checksum matched, makes the chunk part of the
-- upload (tus_discard removes it otherwise). Only while this request holds the lease,
-- which is renewed. One left by a PATCH that never finished is overwritten.
WITH held AS (
    UPDATE tus_uploads
       SET lock_until = now() + make_interval(secs => :lease_seconds)
     WHERE id = :id AND lock_id = :lock_id AND media_id = :media_id
    RETURNING media_id
)
INSERT INTO content_chunks (content_id, seq, data)
SELECT f.content_id, :seq, :data FROM held JOIN media_files f ON f.id = held.media_id
ON CONFLICT (content_id, seq) DO UPDATE SET data = excluded.data;

-- name: tus_save
-- The end of a PATCH: the new offset (full chunks in media_files, the bytes that did
-- not fill one as the tail), and the upload length once a deferred one is declared.
-- For a checksummed PATCH this is the commit of every chunk it stored. With :release
-- the lease goes in the same statement: the client that sees the new offset can PATCH
-- at once. Written once per PATCH, so the tail costs its few bytes once.
WITH held AS (
    UPDATE tus_uploads
       SET tail = :tail, upload_length = coalesce(upload_length, :upload_length),
           reserved = NULL,
           lock_id = CASE WHEN :release THEN NULL ELSE lock_id END,
           lock_until = CASE WHEN :release THEN NULL
                             ELSE now() + make_interval(secs => :lease_seconds) END
     WHERE id = :id AND lock_id = :lock_id
    RETURNING media_id
)
UPDATE media_files
   SET file_size = :stored_bytes, chunk_count = :chunk_count, updated_at = now()
 WHERE id = (SELECT media_id FROM held) AND upload_state = 'uploading';

-- name: tus_discard
-- A checksummed PATCH whose checksum did not match (or that was cut off): the chunks it
-- stored past the offset go, the offset stays. Only by the request holding the lease.
DELETE FROM content_chunks
 WHERE content_id = (SELECT content_id FROM media_files WHERE id = :media_id)
   AND seq >= :first_seq
   AND EXISTS (SELECT 1 FROM tus_uploads
                WHERE id = :id AND lock_id = :lock_id AND media_id = :media_id);

-- name: tus_renew
-- Renews the lease of the request that holds it (a completion being processed writes
-- nothing for minutes); nothing when the lease went to another request.
UPDATE tus_uploads SET lock_until = now() + make_interval(secs => :lease_seconds)
 WHERE id = :id AND lock_id = :lock_id
RETURNING id;

-- name: tus_adopt
-- Completion, in the transaction that makes the processed media visible: the upload
-- now names that media (what HEAD reports), only while this request holds the lease.
-- Returns the invisible row that held the received bytes, for tus_drop_part.
WITH old AS (
    SELECT id, media_id FROM tus_uploads
     WHERE id = :id AND lock_id = :lock_id
       FOR UPDATE
)
UPDATE tus_uploads t
   SET media_id = :media_id, tail = ''
  FROM old
 WHERE t.id = old.id
RETURNING old.media_id AS part_id;

-- name: tus_drop_part
-- The upload's own row once the media is made (same transaction as tus_adopt). Its
-- content goes with it if still 'writing' (the media stored other bytes, or the same
-- ones were stored already); when the media's finishing sealed it, the media shows it.
DELETE FROM media_files WHERE id = :id AND upload_state = 'uploading';

-- name: tus_complete_record
-- The media a completed tus upload became (for HEAD after completion).
SELECT f.id, f.message_id, f.file_name, f.original_name, f.mime_type, f.file_size,
       f.media_type, f.is_compressed, f.compression_quality, f.duration, f.dimensions,
       f.zapi_sent, f.zapi_message_id, f.created_at, f.updated_at, f.chunk_size,
       f.chunk_count, f.sha256, f.duration_exact, f.waveform,
       media_variant_list(f.id) AS variants, NULL::varchar AS variant,
       f.content_id, f.placeholder, media_quarantine_reason(f.sha256) AS quarantine_reason
  FROM tus_uploads t JOIN media_files f ON f.id = t.media_id
 WHERE t.id = :id AND f.upload_state = 'complete';

-- name: tus_terminate
-- Termination (and a refused file at completion): the upload and its chunks go, only
-- by the request holding the lease.
DELETE FROM media_files
 WHERE id = (SELECT media_id FROM tus_uploads WHERE id = :id AND lock_id = :lock_id)
   AND upload_state = 'uploading';

-- name: tus_reclaim_expired
-- The janitor: tus uploads past their expiry that never completed. Bounded per call.
-- One whose completion is being processed (a live lease) is left to that request.
DELETE FROM media_files
 WHERE id IN (SELECT f.id
                FROM tus_uploads t JOIN media_files f ON f.id = t.media_id
               WHERE t.expires_at < now() AND f.upload_state = 'uploading'
                 AND (t.lock_until IS NULL OR t.lock_until < now())
               LIMIT :batch
                 FOR UPDATE OF f SKIP LOCKED)
RETURNING id;

-- name: tus_lock_creator
-- Serialises the creations (and deferred-length PATCHes) of one key or token until the
-- end of the transaction, so that counting its uploads and adding one is atomic: two
-- creations at the limit cannot both pass. Another creator is never held up (but for
-- a hash collision, which only makes two creators wait for each other).
SELECT pg_advisory_xact_lock(hashtextextended('media-store: tus creator ' || :identity, 0));

-- name: tus_held_by_creator
-- A key's or token's unfinished uploads (not expired; :except_id left out): how many,
-- and the bytes they hold: the declared Upload-Length, or for a deferred length what
-- was received, or what a PATCH in progress reserved if more.
SELECT count(*) AS open,
       coalesce(sum(CASE
           WHEN t.upload_length IS NOT NULL THEN t.upload_length
           WHEN t.lock_until > now()
               THEN greatest(f.file_size + octet_length(t.tail), coalesce(t.reserved, 0))
           ELSE f.file_size + octet_length(t.tail) END), 0)::bigint AS held
  FROM tus_uploads t JOIN media_files f ON f.id = t.media_id
 WHERE t.creator_identity = :identity AND f.upload_state = 'uploading'
   AND t.expires_at > now() AND t.id IS DISTINCT FROM :except_id;

-- name: tus_reserve
-- A PATCH of a deferred-length upload: the offset it may reach, counted against its
-- token's bytes while its lease lasts (tus_save clears it). Only by the lease holder.
UPDATE tus_uploads SET reserved = :reserved
 WHERE id = :id AND lock_id = :lock_id;
