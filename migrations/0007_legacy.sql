-- The move from the legacy folder (/uploads/media/): which legacy file became which
-- media, with the file's sha256 and size as the record of what was imported; and the
-- indexes the search route (GET /api/media) walks, newest first.
-- depends: 0002_media_files

CREATE TABLE legacy_media (
    -- The file's path relative to the legacy folder ('a.jpg', '2023/05/b.mp4'), as its
    -- old URL /uploads/media/<legacy_name> names it.
    legacy_name VARCHAR(1024) PRIMARY KEY,
    media_id    INTEGER NOT NULL UNIQUE REFERENCES media_files (id) ON DELETE CASCADE,
    sha256      BYTEA NOT NULL CHECK (octet_length(sha256) = 32),
    file_size   BIGINT NOT NULL CHECK (file_size >= 0),
    -- The file's modification time when it was imported: a re-run hashes a file again
    -- only when its size or time changed.
    file_mtime  TIMESTAMPTZ NOT NULL,
    imported_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Search (GET /api/media): newest first, id as the tie-breaker of the keyset cursor.
-- Partial: only complete files are ever listed. message_id is served by
-- media_files_message_idx (message_id, created_at, id), scanned backwards.
-- IF NOT EXISTS: on a large media_files a DBA builds them beforehand with CREATE INDEX
-- CONCURRENTLY (docs/operations.md, "Migrations on a large database"), which cannot
-- run inside the transaction yoyo wraps a migration in; this migration then only
-- creates the table.
CREATE INDEX IF NOT EXISTS media_files_search_idx ON media_files (created_at DESC, id DESC)
    WHERE upload_state = 'complete';
CREATE INDEX IF NOT EXISTS media_files_search_type_idx ON media_files (media_type, created_at DESC, id DESC)
    WHERE upload_state = 'complete';
CREATE INDEX IF NOT EXISTS media_files_search_mime_idx ON media_files (mime_type, created_at DESC, id DESC)
    WHERE upload_state = 'complete';
