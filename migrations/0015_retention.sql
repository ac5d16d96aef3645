-- Retention (MEDIA_RETENTION, `media-store purge`): a tombstone per purged media, so
-- its old id answers 410 media_purged rather than 404, and the audit log's one row
-- per purged batch naming every id in it.
-- depends: 0014_thumbnail_placeholder

-- No foreign key to media_files: the row it remembers is gone (ids are never reused,
-- media_files.id being a sequence). The message stays, and its deletion takes its
-- tombstones with it.
CREATE TABLE purged_media (
    id          INTEGER PRIMARY KEY,
    message_id  INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    media_type  VARCHAR(16) NOT NULL,
    file_size   BIGINT NOT NULL CHECK (file_size >= 0),
    created_at  TIMESTAMPTZ NOT NULL,       -- the media's, which its age was counted from
    purged_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The legacy file it was imported from (legacy_media goes with the media): its old
    -- /uploads/media URL answers 410 too, and import-legacy does not bring it back.
    legacy_name VARCHAR(1024) UNIQUE
);
-- What ON DELETE CASCADE from messages looks up.
CREATE INDEX purged_media_message_idx ON purged_media (message_id);

-- A purge batch's ids (NULL on every other row). Metadata only: no rewrite.
ALTER TABLE media_audit_log ADD COLUMN media_ids INTEGER[];
-- GET /api/audit?media_id=N finds the batch that purged N.
CREATE INDEX media_audit_log_media_ids_idx ON media_audit_log USING gin (media_ids)
    WHERE media_ids IS NOT NULL;
