-- Processed imports lose the record of their stored hash; the map's sha256 and
-- file_size (the legacy file's) stay, so a re-run still recognises every file.
ALTER TABLE legacy_media DROP CONSTRAINT legacy_media_kept_bytes;
ALTER TABLE legacy_media DROP COLUMN stored_sha256;
ALTER TABLE legacy_media DROP COLUMN processed;
