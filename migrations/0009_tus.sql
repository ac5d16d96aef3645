-- Resumable uploads (tus 1.0): what a tus upload needs beyond its media_files row.
-- depends: 0002_media_files

-- One row per tus upload; its bytes are the media_files row's chunks (the same chunk
-- store as every upload), plus a tail of bytes that did not fill a chunk yet, kept so
-- that a PATCH cut off mid-body keeps everything it received.
CREATE TABLE tus_uploads (
    id            UUID PRIMARY KEY,                 -- the unguessable id in the URL
    media_id      INTEGER NOT NULL UNIQUE REFERENCES media_files (id) ON DELETE CASCADE,
    upload_length BIGINT CHECK (upload_length >= 0),   -- NULL: deferred (defer-length)
    metadata      JSONB NOT NULL DEFAULT '{}',
    message_id    INTEGER NOT NULL,
    creator       VARCHAR(255) NOT NULL,            -- key name or token:<message id>
    expires_at    TIMESTAMPTZ NOT NULL,
    tail          BYTEA NOT NULL DEFAULT '',
    -- A lease, not a held connection: a PATCH streams for minutes and must not tie up
    -- a pooled connection; a crashed instance's lease simply runs out.
    lock_id       UUID,
    lock_until    TIMESTAMPTZ
);
CREATE INDEX tus_uploads_expires_idx ON tus_uploads (expires_at);
