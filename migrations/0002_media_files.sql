-- Media metadata: every column of the original media_files table, plus what the
-- service needs to store the bytes in chunks and to track an upload in progress.
-- depends: 0001_messages
CREATE TABLE media_files (
    id                  SERIAL PRIMARY KEY,
    -- NULL only while uploading: a multipart form may send the file before message_id.
    message_id          INTEGER REFERENCES messages (id) ON DELETE CASCADE,
    file_name           VARCHAR(255) NOT NULL,
    original_name       VARCHAR(255) NOT NULL,
    mime_type           VARCHAR(255) NOT NULL,
    file_size           BIGINT NOT NULL DEFAULT 0 CHECK (file_size >= 0),
    media_type          VARCHAR(16) NOT NULL
                        CHECK (media_type IN ('image', 'video', 'audio', 'document')),
    is_compressed       BOOLEAN NOT NULL DEFAULT false,
    compression_quality SMALLINT CHECK (compression_quality BETWEEN 1 AND 100),
    duration            DOUBLE PRECISION CHECK (duration >= 0),   -- seconds
    dimensions          JSONB,                                    -- {"width": w, "height": h}
    zapi_sent           BOOLEAN NOT NULL DEFAULT false,
    zapi_message_id     VARCHAR(255),
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),

    -- Raw bytes per chunk, a multiple of 3 so each chunk's base64 stands alone. Kept
    -- per file so the default can change without touching stored files.
    chunk_size          INTEGER NOT NULL CHECK (chunk_size > 0 AND chunk_size % 3 = 0),
    chunk_count         INTEGER NOT NULL DEFAULT 0 CHECK (chunk_count >= 0),
    sha256              BYTEA CHECK (octet_length(sha256) = 32),
    -- 'uploading' rows are invisible to every read; file_size counts the bytes stored
    -- so far, so an upload can be resumed or reclaimed by any instance.
    upload_state        VARCHAR(16) NOT NULL DEFAULT 'uploading'
                        CHECK (upload_state IN ('uploading', 'complete')),
    completed_at        TIMESTAMPTZ,

    CONSTRAINT media_files_file_name_key UNIQUE (file_name),
    CONSTRAINT media_files_complete_is_whole CHECK (
        upload_state <> 'complete'
        OR (message_id IS NOT NULL AND sha256 IS NOT NULL AND completed_at IS NOT NULL
            AND chunk_count = (file_size + chunk_size - 1) / chunk_size))
);

-- Listing a message's media, oldest first; also what ON DELETE CASCADE from messages uses.
CREATE INDEX media_files_message_idx ON media_files (message_id, created_at, id);
-- The janitor's scan for abandoned uploads stays small: only rows still uploading.
CREATE INDEX media_files_uploading_idx ON media_files (updated_at)
    WHERE upload_state = 'uploading';

-- The bytes, as base64 text cut into chunks: one row per chunk, joined in seq order
-- they are exactly the base64 of the whole file.
CREATE TABLE media_chunks (
    media_id INTEGER NOT NULL REFERENCES media_files (id) ON DELETE CASCADE,
    seq      INTEGER NOT NULL CHECK (seq >= 0),
    data     TEXT NOT NULL,
    PRIMARY KEY (media_id, seq)
);
-- base64 of media (already compressed formats) does not shrink under pglz; EXTERNAL
-- skips the futile compression attempt on every write.
ALTER TABLE media_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

-- The original design's file_data: the whole file's base64, one call away.
-- NULL for an unknown id or an upload still in progress; '' for an empty file.
CREATE FUNCTION media_file_data(p_media_id INTEGER) RETURNS TEXT
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT string_agg(c.data, '' ORDER BY c.seq)
                       FROM media_chunks c
                      WHERE c.media_id = f.id), '')
      FROM media_files f
     WHERE f.id = p_media_id AND f.upload_state = 'complete'
$$;

-- The complete files, shaped like the original table (file_data included, computed on
-- demand: select it only for the rows you need).
CREATE VIEW media_files_complete AS
SELECT f.id, f.message_id, f.file_name, f.original_name, f.mime_type, f.file_size,
       f.media_type, f.is_compressed, f.compression_quality, f.duration, f.dimensions,
       f.zapi_sent, f.zapi_message_id, f.created_at, f.updated_at,
       encode(f.sha256, 'hex') AS sha256, media_file_data(f.id) AS file_data
  FROM media_files f
 WHERE f.upload_state = 'complete';
